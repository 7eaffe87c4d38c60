"""The admin API (`parley admin`): agents, numbers, API keys, calls, tools and metrics, stored in Redis.

- `admin.core`: the one `Settings`, secrets (API keys and stream tokens: generation, salted
  hashes, verification);
- `admin.store`: the Redis storage every process shares (the gateway reads agents and numbers
  from it per call and writes call records to it);
- `parley.admin_link`: what a gateway process uses of that storage (`GatewayLink`);
- `admin.api` and `admin.main`: the FastAPI app.

Only `admin.api` and `admin.main` import FastAPI; the gateway imports `parley.admin_link` and
`admin.store` alone.
"""
