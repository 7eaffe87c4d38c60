"""Phone numbers in Redis: which agent answers each dialled number (E.164).

The gateways read a number's agent per call (a Twilio stream's `number` parameter, which the
gateway's TwiML sets from Twilio's `To`; a SIP call's request-URI number), so a change applies to
the next call. A number may point at an agent that was deleted since: it stays, and its calls are
refused with the reason, until it is pointed elsewhere or deleted.

A number may also be a translation line (`agent.lines.TranslationLine`, validated by the routes):
its `translation` field holds the line's JSON ("" for a plain number), so the gateway reads the
agent and the line in one read.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from admin.store import names
from admin.store.errors import Conflict, NotFound


@dataclasses.dataclass(frozen=True)
class StoredNumber:
    number: str
    agent: str
    label: str
    created_at: float
    updated_at: float
    translation: dict | None = None  # a translation line's configuration (TranslationLine JSON)


def _stored(number: str, data: dict) -> StoredNumber:
    line = data.get("translation") or ""
    return StoredNumber(
        number,
        data["agent"],
        data.get("label", ""),
        float(data["created_at"]),
        float(data["updated_at"]),
        json.loads(line) if line else None,
    )


def _line(translation: dict | None) -> str:
    return json.dumps(translation, sort_keys=True) if translation is not None else ""


UNCHANGED = object()  # `update(translation=...)` default: keep the line as it is (None removes it)


class NumberStore:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    async def get(self, number: str) -> StoredNumber | None:
        data = await self.redis.hgetall(names.number(number))
        return _stored(number, data) if data else None

    async def list(self, agent: str | None = None) -> list[StoredNumber]:
        found = []
        for number in sorted(await self.redis.smembers(names.NUMBERS)):
            stored = await self.get(number)
            if stored is not None and (agent is None or stored.agent == agent):
                found.append(stored)
        return found

    async def create(
        self, number: str, agent: str, label: str = "", translation: dict | None = None
    ) -> StoredNumber:
        key = names.number(number)
        now = self.clock()

        async def txn(pipe) -> StoredNumber:
            if await pipe.exists(key):
                raise Conflict(f"number {number} is configured already", "number")
            pipe.multi()
            pipe.hset(
                key,
                mapping={
                    "agent": agent,
                    "label": label,
                    "translation": _line(translation),
                    "created_at": repr(now),
                    "updated_at": repr(now),
                },
            )
            pipe.sadd(names.NUMBERS, number)
            return StoredNumber(number, agent, label, now, now, translation)

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def update(
        self,
        number: str,
        *,
        agent: str | None = None,
        label: str | None = None,
        translation: dict | None | object = UNCHANGED,
    ) -> StoredNumber:
        key = names.number(number)

        async def txn(pipe) -> StoredNumber:
            data = await pipe.hgetall(key)
            if not data:
                raise NotFound(f"no number {number}", "number")
            changes = {"updated_at": repr(self.clock())}
            if agent is not None:
                changes["agent"] = agent
            if label is not None:
                changes["label"] = label
            if translation is not UNCHANGED:
                changes["translation"] = _line(translation)  # type: ignore[arg-type]
            pipe.multi()
            pipe.hset(key, mapping=changes)
            return _stored(number, {**data, **changes})

        return await self.redis.transaction(txn, key, value_from_callable=True)

    async def delete(self, number: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(names.number(number))
            pipe.srem(names.NUMBERS, number)
            deleted, _ = await pipe.execute()
        if not deleted:
            raise NotFound(f"no number {number}", "number")
