"""The registered webhook tools as the gateway sees them: read from Redis, cached for a few seconds.

`WebhookCatalog.get(name)` is the tool's `workers.webhooks.WebhookTool` or None, from the record
the admin API writes; answers (a miss too, so a model that calls made-up names costs no Redis
round trip per call) are kept `ttl_s` seconds, so a tool registered, changed or deleted through
the admin API is seen by every gateway within that time. Redis errors go to the caller. Knows
nothing of Celery or of calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from workers.webhooks import WebhookTool, tool_key

MAX_ENTRIES = 1024  # names remembered at once; past this the cache starts over


class WebhookCatalog:
    """Webhook tools by name over one asyncio Redis client."""

    def __init__(
        self, redis: aioredis.Redis, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.clock = clock
        self._cache: dict[str, tuple[float, WebhookTool | None]] = {}

    async def get(self, name: str) -> WebhookTool | None:
        now = self.clock()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self.redis.get(tool_key(name))
        tool = WebhookTool.from_json(raw) if raw is not None else None
        if self.ttl_s > 0:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[name] = (now + self.ttl_s, tool)
        return tool
