"""Webhook tools in Redis: what the admin API registers and the gateways and workers read.

The record and its keys are `workers.webhooks`' (the workers and the gateway's router read them
there); this module writes them. Creating is refused when the name is taken (`Conflict`);
changing goes through `update` with compare-and-set on the record (WATCH/MULTI); deleting is
refused while an agent lists the tool, and the check runs in the same transaction as the delete,
watching every agent's record. (An agent created or updated while a delete is under way can still
list the tool: its check reads the tool's existence before its own transaction. The gateway then
answers that tool's calls "unknown tool NAME".)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from admin.store import names
from admin.store.errors import Conflict, NotFound
from agent.config import AgentConfig
from workers.webhooks import TOOLS, WebhookTool, tool_key


class ToolStore:
    """Webhook tools by name, in one Redis (a `redis.asyncio.Redis` with decode_responses=True)."""

    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    async def names(self) -> list[str]:
        return sorted(await self.redis.smembers(TOOLS))

    async def get(self, name: str) -> WebhookTool | None:
        raw = await self.redis.get(tool_key(name))
        return WebhookTool.from_json(raw) if raw is not None else None

    async def list(self) -> list[WebhookTool]:
        found = []
        for name in await self.names():
            tool = await self.get(name)
            if tool is not None:
                found.append(tool)
        return found

    async def create(self, tool: WebhookTool) -> WebhookTool:
        key = tool_key(tool.name)

        async def txn(pipe) -> WebhookTool:
            if await pipe.exists(key):
                raise Conflict(f"a tool called {tool.name!r} exists (PUT or PATCH changes it)", "name")
            now = self.clock()
            stored = dataclasses.replace(tool, created_at=now, updated_at=now)
            pipe.multi()
            pipe.set(key, stored.to_json())
            pipe.sadd(TOOLS, tool.name)
            return stored

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def update(self, name: str, change: Callable[[WebhookTool], WebhookTool]) -> WebhookTool:
        """Apply `change` to the stored tool and store the result; whatever `change` raises goes to
        the caller."""
        key = tool_key(name)

        async def txn(pipe) -> WebhookTool:
            raw = await pipe.get(key)
            if raw is None:
                raise NotFound(f"no tool {name!r}", "name")
            current = WebhookTool.from_json(raw)
            stored = dataclasses.replace(
                change(current), name=name, created_at=current.created_at, updated_at=self.clock()
            )
            pipe.multi()
            pipe.set(key, stored.to_json())
            return stored

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def delete(self, name: str) -> WebhookTool:
        """Delete a tool no agent lists; `Conflict` naming the agents that do."""
        key = tool_key(name)
        agents = sorted(await self.redis.smembers(names.AGENTS))
        watched = [key, names.AGENTS, *(names.agent(a) for a in agents)]

        async def txn(pipe) -> WebhookTool:
            raw = await pipe.get(key)
            if raw is None:
                raise NotFound(f"no tool {name!r}", "name")
            users = []
            for agent in sorted(await pipe.smembers(names.AGENTS)):
                config = await pipe.hget(names.agent(agent), "config")
                if config is not None and name in AgentConfig.model_validate_json(config).tools:
                    users.append(agent)
            if users:
                raise Conflict(
                    f"tool {name!r} is used by agent(s) {', '.join(users)}; remove it from them first", "name"
                )
            pipe.multi()
            pipe.delete(key)
            pipe.srem(TOOLS, name)
            return WebhookTool.from_json(raw)

        return await self.redis.transaction(txn, *watched, value_from_callable=True)
