"""Synthetic call data."""
