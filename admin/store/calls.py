"""Calls in Redis: live calls, finished calls' records, hang-up commands, and the call metrics.

Gateways write here (`parley.admin_link.GatewayLink`): a call is registered as live when it starts,
under a lease its gateway renews while the call lasts (so the calls of a gateway that died leave
the live list by themselves), and replaced by its record when it ends. A record is the call's
summary (who, when, how it ended) plus its transcript, timeline and tool calls; it expires after
the retention period (`call_retention_s`, which the admin API writes to `parley:cfg:settings`).
The summary is also stored on its own, so listings never parse transcripts.

Hang-up: `request_hangup` publishes a command on `parley:call:control`; every gateway listens
and the one holding the call ends it.

Metrics: each finished record adds to counters and histograms (turn-taking latency, tool
latency) in Redis, so /metrics on any admin process sees every gateway's calls.

Records hold call data (transcripts, caller numbers, tool arguments): they are returned by the
API to keys with scope read, and never logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from admin.store import names

DEFAULT_RETENTION_S = 7 * 86_400
TURN_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
TOOL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
HISTOGRAMS = {"turn_taking": TURN_BUCKETS_S, "tool": TOOL_BUCKETS_S}
SCAN_LIMIT = 20_000  # finished calls a filtered listing looks at, newest first
SUMMARY_FIELDS = (
    "call_id",
    "status",
    "agent",
    "agent_version",
    "protocol",
    "number",
    "caller",
    "external_id",
    "started_at",
    "ended_at",
    "duration_s",
    "ended",
    "model",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _bucket(value_s: float, buckets: tuple[float, ...]) -> str:
    for i, upper in enumerate(buckets):
        if value_s <= upper:
            return str(i)
    return "inf"


def summary_of(record: dict) -> dict:
    return {k: record.get(k) for k in SUMMARY_FIELDS}


class CallStore:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    # --- settings ----------------------------------------------------------------------------------
    async def retention_s(self) -> int:
        value = await self.redis.hget(names.SETTINGS, "call_retention_s")
        return int(value) if value else DEFAULT_RETENTION_S

    async def set_retention(self, seconds: int) -> None:
        await self.redis.hset(names.SETTINGS, "call_retention_s", int(seconds))

    # --- gateway side ------------------------------------------------------------------------------
    async def register_live(self, entry: dict, lease_s: float) -> None:
        call_id = entry["call_id"]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(names.live_call(call_id), _dumps(entry), px=int(lease_s * 1000))
            pipe.zadd(names.LIVE, {call_id: self.clock() + lease_s})
            pipe.hincrby(names.COUNTERS, "calls_started", 1)
            await pipe.execute()

    async def renew_live(self, entries: Iterable[dict], lease_s: float) -> None:
        expiry = self.clock() + lease_s
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.set(names.live_call(entry["call_id"]), _dumps(entry), px=int(lease_s * 1000))
                pipe.zadd(names.LIVE, {entry["call_id"]: expiry})
            await pipe.execute()

    async def finish(self, record: dict, retention_s: int | None = None) -> None:
        """Store a finished call's record (replacing its live entry) and count it in the metrics."""
        retention = retention_s or await self.retention_s()
        call_id, agent = record["call_id"], record["agent"]
        started = float(record.get("started_at") or self.clock())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(names.call_record(call_id), _dumps(record), ex=retention)
            pipe.set(names.call_summary(call_id), _dumps(summary_of(record)), ex=retention)
            pipe.zadd(names.call_index(), {call_id: started})
            pipe.zadd(names.call_index(agent), {call_id: started})
            pipe.zrem(names.LIVE, call_id)
            pipe.delete(names.live_call(call_id))
            pipe.hincrby(names.COUNTERS, "calls_ended", 1)
            skipped = int(record.get("timeline", {}).get("counters", {}).get("skipped_turns", 0))
            if skipped:
                pipe.hincrby(names.COUNTERS, "skipped_turns", skipped)
            for ms in record.get("turn_latency_ms") or ():
                self._observe(pipe, "turn_taking", ms / 1000)
            for call in record.get("tool_calls") or ():
                if call.get("latency_ms") is not None:
                    pipe.hincrby(names.COUNTERS, "tool_calls", 1)
                    self._observe(pipe, "tool", call["latency_ms"] / 1000)
            await pipe.execute()

    def _observe(self, pipe, name: str, value_s: float) -> None:
        key = names.histogram(name)
        pipe.hincrby(key, _bucket(value_s, HISTOGRAMS[name]), 1)
        pipe.hincrbyfloat(key, "sum", value_s)
        pipe.hincrby(key, "count", 1)

    async def request_hangup(self, call_id: str, reason: str) -> int:
        """Ask the gateways to end `call_id`; the number of gateways that heard it."""
        command = {"op": "hangup", "call_id": call_id, "reason": reason}
        return int(await self.redis.publish(names.CONTROL, _dumps(command)))

    async def drop_live(self, call_id: str) -> None:
        """Forget a live entry no gateway holds (its gateway is gone)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(names.LIVE, call_id)
            pipe.delete(names.live_call(call_id))
            await pipe.execute()

    # --- reading -----------------------------------------------------------------------------------
    async def live(self) -> list[dict]:
        now = self.clock()
        await self.redis.zremrangebyscore(names.LIVE, "-inf", now)
        ids = await self.redis.zrange(names.LIVE, 0, -1)
        if not ids:
            return []
        raw = await self.redis.mget([names.live_call(i) for i in ids])
        calls = [json.loads(r) for r in raw if r is not None]
        return sorted(calls, key=lambda c: (c.get("started_at") or 0, c["call_id"]))

    async def live_count(self) -> int:
        return int(await self.redis.zcount(names.LIVE, self.clock(), "+inf"))

    async def get(self, call_id: str) -> dict | None:
        raw = await self.redis.get(names.call_record(call_id))
        if raw is not None:
            return json.loads(raw)
        raw = await self.redis.get(names.live_call(call_id))
        return json.loads(raw) if raw is not None else None

    async def is_live(self, call_id: str) -> bool:
        score = await self.redis.zscore(names.LIVE, call_id)
        return score is not None and score > self.clock()

    async def list(
        self,
        *,
        agent: str | None = None,
        protocol: str | None = None,
        number: str | None = None,
        ended_by: str | None = None,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict], int]:
        """Finished calls' summaries, newest first, filtered; (page, total matching)."""
        index = names.call_index(agent)
        retention = await self.retention_s()
        await self.redis.zremrangebyscore(index, "-inf", self.clock() - retention - 86_400)
        ids = await self.redis.zrevrangebyscore(
            index,
            "+inf" if until is None else until,
            "-inf" if since is None else since,
            start=0,
            num=SCAN_LIMIT,
        )
        filtered = protocol is not None or number is not None or ended_by is not None
        if not filtered:
            page_ids = ids[offset : offset + limit]
            summaries = await self._summaries(index, page_ids)
            return summaries, len(ids)
        matched: list[dict] = []
        for start in range(0, len(ids), 500):
            for summary in await self._summaries(index, ids[start : start + 500]):
                if protocol is not None and summary.get("protocol") != protocol:
                    continue
                if number is not None and summary.get("number") != number:
                    continue
                if ended_by is not None and (summary.get("ended") or {}).get("by") != ended_by:
                    continue
                matched.append(summary)
        return matched[offset : offset + limit], len(matched)

    async def _summaries(self, index: str, ids: list[str]) -> list[dict]:
        if not ids:
            return []
        raw = await self.redis.mget([names.call_summary(i) for i in ids])
        gone = [i for i, r in zip(ids, raw) if r is None]
        if gone:  # expired since the index was trimmed
            await self.redis.zrem(index, *gone)
        return [json.loads(r) for r in raw if r is not None]

    # --- metrics -----------------------------------------------------------------------------------
    async def metrics(self, queues: Iterable[str]) -> dict:
        queues = list(queues)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(names.COUNTERS)
            pipe.zcount(names.LIVE, self.clock(), "+inf")
            for name in HISTOGRAMS:
                pipe.hgetall(names.histogram(name))
            for queue in queues:
                pipe.llen(queue)
            results = await pipe.execute()
        counters, live = results[0], results[1]
        hists = dict(zip(HISTOGRAMS, results[2 : 2 + len(HISTOGRAMS)]))
        depths = dict(zip(queues, results[2 + len(HISTOGRAMS) :]))
        return {
            "counters": {k: int(v) for k, v in counters.items()},
            "live": int(live),
            "histograms": {name: _histogram(raw, HISTOGRAMS[name]) for name, raw in hists.items()},
            "queues": {k: int(v) for k, v in depths.items()},
        }


def _histogram(raw: dict, buckets: tuple[float, ...]) -> dict:
    """Cumulative bucket counts [(upper bound, count)], with +Inf, and the sum."""
    cumulative, running = [], 0
    for i, upper in enumerate(buckets):
        running += int(raw.get(str(i), 0))
        cumulative.append((upper, running))
    running += int(raw.get("inf", 0))
    cumulative.append((float("inf"), running))
    return {"buckets": cumulative, "sum": float(raw.get("sum", 0.0)), "count": int(raw.get("count", 0))}
