"""Per-call sessions, agent configuration and the `parley` command line."""
