"""What a gateway process uses of the admin API's Redis: `GatewayLink`.

- Configuration per call: `registry` (an `agent.config.AgentRegistry`) reads the agent from Redis
  on every lookup, so an update applies to the next call with no restart; `agent_for_number`
  reads a dialled number's agent and `translation_line` its translation line. If Redis cannot be
  reached, the last configuration read for that agent is used (and failing that, a shipped agent
  of that name), so a Redis restart does not refuse calls. A store that was never seeded gets the
  shipped agents on first use.
- Media authentication: `keys_configured()` (any active API key, re-read every few seconds) and
  `token_valid(agent, token)` (a stream token of that agent).
- Call records: `call_started` registers a live call and `call_ended` replaces it with its record
  (`build_record`: summary, transcript, timeline, tool calls, turn-taking latencies; for a bridged
  call both legs and both interpreters, under the opener's call id, while the joining leg's live
  entry is dropped by `leg_ended`); a lease
  renewed every `lease_s / 3` keeps live entries alive while the gateway is, so a dead gateway's
  calls drop off the live list by themselves. Failures to write are logged (call id only) and never
  end a call.
- Hang-up: a listener on `parley:call:control` hands each hang-up command to the gateway's
  callback, which ends the call if it holds it.

Nothing here imports FastAPI. Logs carry call ids and agent names only: no transcripts, numbers
or tool arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

from admin.store import names
from admin.store.agents import AgentStore
from admin.store.calls import CallStore
from admin.store.credentials import CredentialStore
from admin.store.numbers import NumberStore
from agent.config import BUILTIN_AGENTS, AgentConfig, UnknownAgent
from agent.lines import TranslationLine

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
MAX_STORED_EVENTS = 5000
HangupHandler = Callable[[str, str], Awaitable[bool]]


class DeletedAgent(UnknownAgent):
    """The agent existed and was deleted through the admin API."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.args = (f"agent {name[:64]!r} was deleted",)


class LinkedRegistry:
    """Agents from Redis, read per lookup (see the module docstring)."""

    def __init__(self, agents: AgentStore) -> None:
        self._agents = agents
        self._last: dict[str, tuple[AgentConfig, int]] = {}
        self._seeded = False

    async def get_versioned(self, name: str) -> tuple[AgentConfig, int]:
        """The agent called `name` and its version (0: not from the store); raises UnknownAgent."""
        try:
            stored = await self._agents.get(name)
            if stored is None and not self._seeded:
                if await self._agents.ensure_defaults():
                    logger.info("wrote the shipped agents to the admin store")
                self._seeded = True
                stored = await self._agents.get(name)
            if stored is None:  # callers are not told which agents exist
                self._last.pop(name, None)
                if await self._agents.deleted_at(name) is not None:
                    raise DeletedAgent(name)
                raise UnknownAgent(name)
        except REDIS_ERRORS as exc:
            if name in self._last:
                logger.warning(
                    "admin store unreachable: using agent %s as last read",
                    name,
                    extra={"agent": name, "error": type(exc).__name__},
                )
                return self._last[name]
            logger.warning(
                "admin store unreachable: using the shipped agent %s",
                name,
                extra={"agent": name, "error": type(exc).__name__},
            )
            return BUILTIN_AGENTS.lookup(name), 0
        self._last[name] = (stored.config, stored.version)
        return stored.config, stored.version

    async def get(self, name: str) -> AgentConfig:
        return (await self.get_versioned(name))[0]

    async def names(self) -> list[str]:
        return await self._agents.names()


def tool_calls(events: list[dict]) -> list[dict]:
    """The tool calls of a timeline, each with its outcome and latency (call out -> answer in)."""
    calls: dict[str, dict] = {}
    for event in events:
        kind, ident = event.get("kind"), event.get("id")
        if kind == "tool_call" and ident not in calls:
            calls[ident] = {
                "id": ident,
                "name": event.get("name"),
                "arguments": event.get("arguments"),
                "arguments_raw": event.get("arguments_raw"),
                "at_ms": event.get("at_ms"),
                "outcome": "action" if event.get("name") in ("end_call", "transfer") else "none",
                "latency_ms": None,
                "work_ms": None,
                "pending_notices": 0,
            }
        elif kind in ("tool_result", "tool_error") and ident in calls and calls[ident]["latency_ms"] is None:
            call = calls[ident]
            call["outcome"] = "result" if kind == "tool_result" else "error"
            call["latency_ms"] = max(0, int(event.get("at_ms", 0)) - int(call["at_ms"] or 0))
            call["work_ms"] = event.get("work_ms")
        elif kind == "tool_pending" and ident in calls:
            calls[ident]["pending_notices"] += 1
    return list(calls.values())


def live_entry(info: Any, agent: AgentConfig, version: int, started_at: float, gateway: str) -> dict:
    """A live call's summary from the transport's `CallInfo`."""
    params: Mapping[str, str] = info.parameters
    return {
        "call_id": info.call_id,
        "status": "live",
        "agent": agent.name,
        "agent_version": version,
        "protocol": info.protocol,
        "number": params.get("number"),
        "caller": params.get("caller") or params.get("from"),
        "external_id": info.external_id,
        "started_at": started_at,
        "ended_at": None,
        "duration_s": None,
        "ended": None,
        "model": None,
        "gateway": gateway,
    }


def build_record(
    entry: dict, summary: dict, agent: AgentConfig, turn_latency_ms: list[int], ended_at: float
) -> dict:
    """A finished call's record: its live entry completed from `CallSession.summary()`."""
    timeline = dict(summary.get("timeline") or {})
    events = list(timeline.get("events") or [])
    if len(events) > MAX_STORED_EVENTS:
        timeline["events_dropped"] = int(timeline.get("events_dropped", 0)) + len(events) - MAX_STORED_EVENTS
        timeline["events"] = events[-MAX_STORED_EVENTS:]
    return {
        **{k: v for k, v in entry.items() if k != "gateway"},
        "status": "ended",
        "ended_at": ended_at,
        "duration_s": round(max(0.0, ended_at - entry["started_at"]), 3),
        "ended": summary.get("ended"),
        "model": summary.get("model"),
        "agent_config": agent.model_dump(mode="json"),
        "frames_sent": summary.get("frames_sent", 0),
        "turns_received": summary.get("turns_received", 0),
        "unanswered_frames": summary.get("unanswered_frames", 0),
        "transcript": summary.get("transcript", []),
        "timeline": timeline,
        "tool_calls": tool_calls(events),
        "turn_latency_ms": list(turn_latency_ms),
        "background": summary.get("background"),
        "bridge": summary.get("bridge"),
        "dial": summary.get("dial"),
    }


class GatewayLink:
    """One per gateway process. `start(on_hangup)` once, `close()` at the end."""

    def __init__(
        self,
        redis_url: str,
        *,
        lease_s: float = 30.0,
        keys_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.redis_url = redis_url
        self.lease_s = lease_s
        self.keys_ttl_s = keys_ttl_s
        self.clock = clock
        self.redis = aioredis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=1.0
        )
        self.agents = AgentStore(self.redis, clock)
        self.numbers = NumberStore(self.redis, clock)
        self.credentials = CredentialStore(self.redis, clock=clock)
        self.calls = CallStore(self.redis, clock)
        self.registry = LinkedRegistry(self.agents)
        self.live: dict[str, dict] = {}
        self.listening = asyncio.Event()
        self._keys: tuple[float, bool] | None = None  # (read at, any active key)
        self._tasks: list[asyncio.Task] = []
        self._on_hangup: HangupHandler | None = None
        self._warned = False

    # --- life --------------------------------------------------------------------------------------
    async def start(self, on_hangup: HangupHandler) -> None:
        self._on_hangup = on_hangup
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._renew())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.redis.aclose()

    # --- configuration -----------------------------------------------------------------------------
    async def agent_for_number(self, number: str) -> str | None:
        """The agent configured for a dialled number, or None when the number is not configured
        (or Redis is unreachable)."""
        try:
            stored = await self.numbers.get(number)
        except REDIS_ERRORS:
            return None
        return stored.agent if stored is not None else None

    async def translation_line(self, number: str) -> TranslationLine | None:
        """The translation line configured on a dialled number, or None (a plain number, none
        configured, Redis unreachable, or a stored line that no longer validates: logged)."""
        try:
            stored = await self.numbers.get(number)
        except REDIS_ERRORS:
            return None
        if stored is None or stored.translation is None:
            return None
        try:
            return TranslationLine.model_validate(stored.translation)
        except ValueError:
            logger.warning("a stored translation line does not validate: the number answers as a plain one")
            return None

    async def keys_configured(self) -> bool:
        """Whether any API key is active (read again after `keys_ttl_s`); when Redis cannot be
        reached, the last answer, or True (refuse rather than let a call in unchecked)."""
        now = time.monotonic()
        if self._keys is not None and now - self._keys[0] < self.keys_ttl_s:
            return self._keys[1]
        try:
            value = await self.credentials.any_active_key()
        except REDIS_ERRORS:
            return self._keys[1] if self._keys is not None else True
        self._keys = (now, value)
        return value

    async def token_valid(self, agent: str, token: str | None) -> bool:
        try:
            return await self.credentials.token_valid(agent, token)
        except REDIS_ERRORS:
            return False

    # --- calls -------------------------------------------------------------------------------------
    async def call_started(self, info: Any, agent: AgentConfig, version: int) -> None:
        entry = live_entry(info, agent, version, self.clock(), self.id)
        self.live[info.call_id] = entry
        try:
            await self.calls.register_live(entry, self.lease_s)
        except REDIS_ERRORS as exc:
            logger.warning(
                "call %s: not registered as live (%s)",
                info.call_id,
                type(exc).__name__,
                extra={"call_id": info.call_id},
            )

    async def call_ended(
        self, call_id: str, summary: dict, agent: AgentConfig, turn_latency_ms: list[int]
    ) -> None:
        entry = self.live.pop(call_id, None)
        if entry is None:
            return
        record = build_record(entry, summary, agent, turn_latency_ms, self.clock())
        try:
            await self.calls.finish(record)
        except REDIS_ERRORS as exc:
            logger.warning(
                "call %s: record not stored (%s)", call_id, type(exc).__name__, extra={"call_id": call_id}
            )

    async def leg_ended(self, call_id: str) -> None:
        """A bridged call's joining leg ended: it leaves the live calls, and its record is the
        bridged call's (stored under the opener's call id by `call_ended`)."""
        if self.live.pop(call_id, None) is None:
            return
        try:
            await self.calls.drop_live(call_id)
        except REDIS_ERRORS as exc:
            logger.warning(
                "call %s: live entry not dropped (%s)",
                call_id,
                type(exc).__name__,
                extra={"call_id": call_id},
            )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not self.live:
                continue
            try:
                await self.calls.renew_live(list(self.live.values()), self.lease_s)
                self._warned = False
            except REDIS_ERRORS as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning("live calls not renewed: %s", type(exc).__name__)

    async def _listen(self) -> None:
        """Hang-up commands from the admin API, through any number of Redis restarts."""
        client = aioredis.Redis.from_url(self.redis_url, decode_responses=True, socket_connect_timeout=1.0)
        delay = 0.05
        try:
            while True:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(names.CONTROL)
                    self.listening.set()
                    delay = 0.05
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            await self._command(message.get("data"))
                except REDIS_ERRORS:
                    self.listening.clear()
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
        finally:
            await client.aclose()

    async def _command(self, data: Any) -> None:
        try:
            command = json.loads(data)
            call_id, reason = (
                str(command["call_id"]),
                str(command.get("reason") or "hung up by the admin API"),
            )
        except (TypeError, ValueError, KeyError):
            logger.warning("malformed call control command dropped")
            return
        if command.get("op") != "hangup" or call_id not in self.live or self._on_hangup is None:
            return
        if await self._on_hangup(call_id, reason[:200]):
            logger.info("call %s: hung up by the admin API", call_id, extra={"call_id": call_id})
