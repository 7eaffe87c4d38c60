"""The admin API's storage in Redis, shared by every process of the platform.

One module per resource: `agents` (configurations with their version history, and the shipped
defaults), `numbers` (dialled number -> agent), `credentials` (API keys and per-agent stream
tokens, stored as salted hashes; per-key rate limits), `calls` (live calls, finished calls'
records with transcript and timeline, hang-up commands, and the counters /metrics reads), `tools`
(webhook tools agents may call, in `workers.webhooks`' format).
`names` holds every Redis key name, so the layout can be read in one place. All of it is
asyncio (redis.asyncio) and knows nothing of FastAPI or of how calls are carried.
"""

from admin.store.errors import Conflict, Invalid, NotFound, StoreError

__all__ = ["Conflict", "Invalid", "NotFound", "StoreError"]
