"""The gateway's view of the registered webhook tools: read from a real Redis, a hit and a miss
both cached for the TTL, then read again (a fake clock, no waiting)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from agent.tool_catalog import WebhookCatalog
from procs.redis_server import EmbeddedRedis
from workers.webhooks import WebhookTool, tool_key


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis") / "data").start()
    yield server
    server.stop()


async def test_tools_and_their_absence_are_cached_for_the_ttl(redis_server):
    now = [100.0]
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        catalog = WebhookCatalog(client, ttl_s=2.0, clock=lambda: now[0])
        tool = WebhookTool(
            "book", "Books.", {"d": {"type": "string", "required": True}}, "https://a.example/", 3.0
        )
        assert await catalog.get("book") is None
        await client.set(tool_key("book"), tool.to_json())
        assert await catalog.get("book") is None  # the miss is remembered
        now[0] += 2.5
        assert await catalog.get("book") == tool
        assert (await catalog.get("book")).schema() == {
            "description": "Books.",
            "parameters": tool.parameters,
        }
        await client.delete(tool_key("book"))
        assert await catalog.get("book") == tool  # until the TTL runs out
        now[0] += 2.5
        assert await catalog.get("book") is None
        uncached = WebhookCatalog(client, ttl_s=0)
        await client.set(tool_key("book"), tool.to_json())
        assert await uncached.get("book") == tool
    finally:
        await client.aclose()
