"""Agents in Redis: the current configuration of each, and every earlier version.

An agent is an `agent.config.AgentConfig`, validated exactly as the in-code ones are, stored as
JSON with a version number that each update raises by one; every version (create, update) is
appended to the agent's history. Updates are compare-and-set (WATCH/MULTI): an update that names
the version it was based on (`expected_version`) and finds another is refused with `Conflict`.

The shipped agents (`agent.config.SHIPPED_AGENTS`: `support`, `translate-en-es`) are written
once, the first time any process finds the store unseeded (`ensure_defaults`); after that the
store alone decides, so a deleted `support` stays deleted. Deleting an agent removes its history
and stream tokens and leaves a tombstone, so the numbers that still point at it can say why they
refuse calls.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from admin.store import names
from admin.store.errors import Conflict, Invalid, NotFound
from agent.config import SHIPPED_AGENTS, AgentConfig

MAX_VERSIONS = 100


@dataclasses.dataclass(frozen=True)
class StoredAgent:
    config: AgentConfig
    version: int
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True)
class AgentVersion:
    version: int
    config: AgentConfig
    created_at: float
    change: str  # "create" | "update"
    key_id: str | None  # the API key that made it (None: the shipped defaults)


def _stored(data: dict) -> StoredAgent:
    return StoredAgent(
        AgentConfig.model_validate_json(data["config"]),
        int(data["version"]),
        float(data["created_at"]),
        float(data["updated_at"]),
    )


def _version_json(version: int, config: AgentConfig, at: float, change: str, key_id: str | None) -> str:
    return json.dumps(
        {
            "version": version,
            "config": config.model_dump(mode="json"),
            "created_at": at,
            "change": change,
            "key_id": key_id,
        },
        separators=(",", ":"),
    )


class AgentStore:
    """Agents by name, in one Redis (a `redis.asyncio.Redis` with decode_responses=True)."""

    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    # --- defaults ----------------------------------------------------------------------------------
    async def ensure_defaults(self) -> bool:
        """Write the shipped agents if the store was never seeded; True when this call did it."""
        if await self.redis.exists(names.AGENTS_SEEDED):
            return False
        keys = [names.AGENTS_SEEDED, *(names.agent(a.name) for a in SHIPPED_AGENTS)]

        async def txn(pipe) -> bool:
            # `transaction` WATCHes `keys`, runs this, EXECs and retries on WatchError. Returning
            # before `multi()` leaves an empty MULTI/EXEC: harmless (retried, so rechecked, only if
            # a watched key changed meanwhile). The same holds wherever a txn returns early.
            if await pipe.exists(names.AGENTS_SEEDED):
                return False
            present = [bool(await pipe.exists(names.agent(a.name))) for a in SHIPPED_AGENTS]
            now = self.clock()
            pipe.multi()
            pipe.set(names.AGENTS_SEEDED, repr(now))
            for agent, exists in zip(SHIPPED_AGENTS, present):
                if not exists:
                    self._write(pipe, agent, 1, now, now, "create", None)
            return True

        return await self.redis.transaction(txn, *keys, value_from_callable=True)

    def _write(
        self,
        pipe,
        config: AgentConfig,
        version: int,
        created: float,
        now: float,
        change: str,
        key_id: str | None,
    ) -> None:
        pipe.hset(
            names.agent(config.name),
            mapping={
                "config": config.model_dump_json(),
                "version": version,
                "created_at": repr(created),
                "updated_at": repr(now),
            },
        )
        pipe.sadd(names.AGENTS, config.name)
        pipe.rpush(names.agent_versions(config.name), _version_json(version, config, now, change, key_id))
        pipe.ltrim(names.agent_versions(config.name), -MAX_VERSIONS, -1)

    # --- reading -----------------------------------------------------------------------------------
    async def get(self, name: str) -> StoredAgent | None:
        data = await self.redis.hgetall(names.agent(name))
        return _stored(data) if data else None

    async def names(self) -> list[str]:
        return sorted(await self.redis.smembers(names.AGENTS))

    async def list(self) -> list[StoredAgent]:
        found = []
        for name in await self.names():
            agent = await self.get(name)
            if agent is not None:
                found.append(agent)
        return found

    async def versions(self, name: str) -> list[AgentVersion]:
        if not await self.redis.exists(names.agent(name)):
            raise NotFound(f"no agent {name!r}", "name")
        out = []
        for raw in await self.redis.lrange(names.agent_versions(name), 0, -1):
            item = json.loads(raw)
            out.append(
                AgentVersion(
                    item["version"],
                    AgentConfig.model_validate(item["config"]),
                    item["created_at"],
                    item["change"],
                    item.get("key_id"),
                )
            )
        return out

    async def deleted_at(self, name: str) -> float | None:
        value = await self.redis.get(names.agent_deleted(name))
        return float(value) if value is not None else None

    # --- writing -----------------------------------------------------------------------------------
    async def create(self, config: AgentConfig, key_id: str | None = None) -> StoredAgent:
        key = names.agent(config.name)

        async def txn(pipe) -> StoredAgent:
            if await pipe.exists(key):
                raise Conflict(f"an agent called {config.name!r} exists", "name")
            now = self.clock()
            pipe.multi()
            pipe.delete(names.agent_versions(config.name), names.agent_deleted(config.name))
            self._write(pipe, config, 1, now, now, "create", key_id)
            return StoredAgent(config, 1, now, now)

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def update(
        self,
        name: str,
        change: Callable[[AgentConfig], AgentConfig],
        *,
        expected_version: int | None = None,
        key_id: str | None = None,
    ) -> StoredAgent:
        """Apply `change` to the current configuration and store the result as the next version.
        Whatever `change` raises (pydantic's ValidationError, `Invalid`) goes to the caller."""
        key = names.agent(name)

        async def txn(pipe) -> StoredAgent:
            data = await pipe.hgetall(key)
            if not data:
                raise NotFound(f"no agent {name!r}", "name")
            current = _stored(data)
            if expected_version is not None and expected_version != current.version:
                raise Conflict(
                    f"agent {name!r} is at version {current.version}, not {expected_version}",
                    "expected_version",
                )
            config = change(current.config)
            if config.name != name:
                raise Invalid("an agent's name cannot change", "name")
            now = self.clock()
            version = current.version + 1
            pipe.multi()
            self._write(pipe, config, version, current.created_at, now, "update", key_id)
            return StoredAgent(config, version, current.created_at, now)

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def delete(self, name: str) -> None:
        key = names.agent(name)

        async def txn(pipe) -> None:
            if not await pipe.exists(key):
                raise NotFound(f"no agent {name!r}", "name")
            tokens = await pipe.smembers(names.stream_tokens(name))
            pipe.multi()
            pipe.delete(
                key,
                names.agent_versions(name),
                names.stream_tokens(name),
                *(names.stream_token(t) for t in tokens),
            )
            pipe.srem(names.AGENTS, name)
            pipe.set(names.agent_deleted(name), repr(self.clock()))

        await self.redis.transaction(txn, key, names.stream_tokens(name))
