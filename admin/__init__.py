"""The admin API (`parley admin`): agents, numbers, API keys, calls, tools and metrics, stored in Redis.

- `admin.core`: the one `Settings`, secrets (API keys and stream tokens: generation, salted
  hashes, verification);
- `admin.store`: the Redis storage every process shares (the gateway reads agents and numbers
  from it per call and writes call records to it);
- `admin.api` and `admin.main`: the FastAPI app.

Only `admin.api` and `admin.main` import FastAPI; a gateway process reaches the storage through
`parley.admin_link` (the composition root), which imports `admin.store` alone.
"""
