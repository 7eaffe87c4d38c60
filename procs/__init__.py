"""Local child processes: supervised children (`children`) and the embedded Redis (`redis_server`).

The lowest layer: used by `parley serve`, the benchmarks and the tests; imports nothing of Parley.
"""
