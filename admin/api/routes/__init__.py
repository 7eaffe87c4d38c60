"""One module per resource under /v1: agents, numbers, keys, calls, tools."""
