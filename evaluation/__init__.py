"""Evaluation of the interaction model: metrics over call timelines (`metrics`).

The metrics know nothing about the model, audio files or reports; they read an annotated scenario
(`metrics.Annotations`) and what the agent did in it (`metrics.AgentTrack`).
"""
