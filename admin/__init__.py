"""The FastAPI admin API: agents, numbers, keys, calls."""
