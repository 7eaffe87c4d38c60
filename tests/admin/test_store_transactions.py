"""The store's compare-and-set transactions retry when a watched key changes under them.

An update whose `change` is running while another process updates the same agent must not lose
that other update: its EXEC fails (the key it WATCHes changed), and it runs again on what the
other one wrote.
"""

from __future__ import annotations

import asyncio
import threading

import redis.asyncio as aioredis

from admin.store.agents import AgentStore
from agent.config import AgentConfig


def _config(name: str, greeting: str) -> AgentConfig:
    return AgentConfig(name=name, languages=("en",), instructions="Help the caller.", greeting=greeting)


def _update_elsewhere(url: str, name: str, greeting: str) -> None:
    """Update `name` as another admin process would: its own client, its own event loop."""

    async def go() -> None:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            await AgentStore(client).update(name, lambda c: c.model_copy(update={"greeting": greeting}))
        finally:
            await client.aclose()

    thread = threading.Thread(target=lambda: asyncio.run(go()))
    thread.start()
    thread.join()


async def test_an_update_raced_by_another_is_retried_on_top_of_it(redis_server):
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = AgentStore(client)
        await store.create(_config("txn-race", "original"))
        seen = []

        def change(config: AgentConfig) -> AgentConfig:
            seen.append(config.greeting)
            if len(seen) == 1:  # between this WATCH and its EXEC, another process updates the agent
                _update_elsewhere(redis_server.url, "txn-race", "theirs")
            return config.model_copy(update={"greeting": config.greeting + " + mine"})

        updated = await store.update("txn-race", change)

        assert seen == ["original", "theirs"]  # retried, on what the other update wrote
        assert (updated.version, updated.config.greeting) == (3, "theirs + mine")
        stored = await store.get("txn-race")
        assert (stored.version, stored.config.greeting) == (3, "theirs + mine")
        history = await store.versions("txn-race")
        assert [(v.version, v.change, v.config.greeting) for v in history] == [
            (1, "create", "original"),
            (2, "update", "theirs"),
            (3, "update", "theirs + mine"),
        ]
    finally:
        await client.aclose()
