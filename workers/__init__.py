"""Celery workers on Redis that run tools and lookups during a call. Never imports torch or model/."""
