"""`CeleryToolRouter`: a session's tool calls as Celery tasks, their outcomes back as events.

One router per gateway process, shared by all its calls. A tool call is checked against its schema
(`agent.config.check_tool_call`, or a registered webhook tool's from `agent.tool_catalog`, which is
then sent as the one `webhook` task; a bad call is answered at once and no task is sent), queued as the
message Celery's `send_task` would queue (`workers.protocol.ToolRequest` with a fresh idempotency
key, built by Celery and pushed with an asyncio Redis client, so no thread hand-off or restarting
Redis holds the call up), and its outcome awaited on this process's one Redis pub/sub reply
channel, re-checked in the store every `recheck_s`. After `result_timeout_s` the router fences the
key: "tool timed out" is stored unless an outcome is stored already (then that one is the answer),
so a booking the caller was told timed out never happens later, and one that happened is never
reported as failed.

Replies are matched by idempotency key and call id: one nobody waits for any more is dropped and
counted (`counters`), never handed to another call. Outcomes become `ToolEvent`s whose payload is
`agent.events.event_json` of the result or error, byte for byte what the training calls carried.
Logs carry call ids, tool names and counters, never arguments or results.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from agent.config import TOOL, TOOL_SCHEMAS, check_tool_call
from agent.events import event_json
from agent.model_client import ToolCall
from agent.session import ToolEvent, ToolTimer
from agent.tool_catalog import WebhookCatalog
from workers import protocol, webhooks
from workers.app import make_app, queue_for
from workers.settings import WorkerSettings

if TYPE_CHECKING:
    from agent.session import CallSession

logger = logging.getLogger(__name__)

TIMED_OUT = "tool timed out"
UNAVAILABLE = "tools unavailable"
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class ToolRouterSettings(BaseSettings):
    """The gateway side of the tools (env `PARLEY_TOOLS_*`; the Redis address is `REDIS_URL`)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_TOOLS_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "PARLEY_TOOLS_REDIS_URL", "redis_url"),
        description="Redis of the tool workers (REDIS_URL); unset: tools answer 'tool unavailable'.",
    )
    result_timeout_s: float = Field(
        20.0,
        gt=0,
        description=(
            "Seconds a tool call waits for its outcome before the model hears 'tool timed out': "
            "longer than a dead worker's redelivery plus a tool's hard limit, shorter than the "
            "gateway's PARLEY_TOOL_TIMEOUT_S (which cancels the wait without fencing the key)."
        ),
    )
    send_timeout_s: float = Field(
        3.0, gt=0, description="Seconds to keep trying to queue a task while Redis is unreachable."
    )
    recheck_s: float = Field(
        1.0, gt=0, description="How often a waiting tool call looks for its stored outcome (a lost reply)."
    )
    webhook_cache_s: float = Field(
        2.0, ge=0, le=60, description="Seconds a registered webhook tool's schema (or its absence) is cached."
    )

    @model_validator(mode="after")
    def _order(self) -> ToolRouterSettings:
        if self.send_timeout_s >= self.result_timeout_s:
            raise ValueError("send_timeout_s must be below result_timeout_s")
        return self


@dataclass
class _Waiter:
    call_id: str
    future: asyncio.Future
    work_s: float | None = None


class CeleryToolRouter:
    """Runs tool calls on the Celery workers (see the module docstring). `start()` once, `close()`."""

    def __init__(self, settings: ToolRouterSettings | None = None, *, app=None) -> None:
        self.settings = settings or ToolRouterSettings()
        if not self.settings.redis_url:
            raise ValueError("CeleryToolRouter needs a Redis URL (REDIS_URL)")
        self.id = uuid.uuid4().hex[:12]
        self.channel = protocol.reply_channel(self.id)
        self.counters: collections.Counter[str] = collections.Counter()
        self._app = app
        self._redis: aioredis.Redis | None = None
        self._waiters: dict[str, _Waiter] = {}
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task | None = None
        self._start_lock = asyncio.Lock()
        self._webhooks: WebhookCatalog | None = None

    @classmethod
    def from_env(cls) -> CeleryToolRouter | None:
        """A router when REDIS_URL is set, else None (the session's UnavailableToolRouter)."""
        settings = ToolRouterSettings()
        return cls(settings) if settings.redis_url else None

    # --- life ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._listener is not None:
                return
            if self._app is None:
                self._app = make_app(WorkerSettings(redis_url=self.settings.redis_url))
            self._redis = aioredis.Redis.from_url(
                self.settings.redis_url,
                socket_timeout=2.0,
                socket_connect_timeout=1.0,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
            )
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        for waiter in self._waiters.values():  # calls still waiting hear that tools are gone
            if not waiter.future.done():
                waiter.future.set_result(protocol.error(UNAVAILABLE))
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def wait_ready(self, timeout: float) -> None:
        """Until this router hears replies (tests, benchmarks)."""
        await self.start()
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    # --- a tool call -------------------------------------------------------------------------------
    async def call(self, session: CallSession, call: ToolCall) -> ToolEvent:
        task, problem = await self._route(call)
        if problem is not None:
            self.counters["rejected"] += 1
            return ToolEvent.error(call, problem)
        outcome, work_s = await self.run(
            session.call_id, protocol.task_name(task), call.arguments, tool_call_id=call.id, tool=call.name
        )
        return self._event(call, outcome, work_s)

    async def run(
        self,
        call_id: str,
        task: str,
        arguments: dict[str, Any],
        *,
        tool_call_id: str = "",
        timeout_s: float | None = None,
        tool: str = "",
    ) -> tuple[dict[str, Any], float | None]:
        """Run one task on the workers for a call: (its outcome, the worker's own seconds).

        The outcome is `{"result": ...}` or `{"error": ...}`, never an exception: "tools
        unavailable" when it could not be queued, "tool timed out" (fenced) after `timeout_s`
        (default `result_timeout_s`). Tools and the background model's tasks both come this way."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self.settings.result_timeout_s)
        request = protocol.ToolRequest(uuid.uuid4().hex, call_id, tool_call_id, arguments, self.channel, tool)
        waiter = _Waiter(call_id, loop.create_future())
        self._waiters[request.key] = waiter
        name = protocol.tool_of(task)
        extra = {"call_id": call_id, "tool": name, "tool_call_id": tool_call_id}
        try:
            if not await self._send(task, request):
                self.counters["unavailable"] += 1
                logger.warning("call %s: %s not sent: Redis unreachable", call_id, name, extra=extra)
                return protocol.error(UNAVAILABLE), None
            self.counters["sent"] += 1
            outcome = await self._wait(request.key, waiter, deadline)
            if outcome is None:
                outcome = await self._fence(request.key)
                if outcome.get("error") == TIMED_OUT:
                    self.counters["timed_out"] += 1
                    logger.warning("call %s: %s timed out", call_id, name, extra=extra)
            return outcome, waiter.work_s
        finally:
            self._waiters.pop(request.key, None)

    # --- webhook tools: registered in Redis (workers.webhooks), all sent as one task ----------------
    async def tool_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's schema as `agent.config.TOOL_SCHEMAS` holds it: a built-in's, a registered
        webhook tool's (cached), or None (unknown, or Redis unreachable)."""
        if name in TOOL_SCHEMAS:
            return TOOL_SCHEMAS[name]
        if not re.fullmatch(TOOL, name):
            return None
        try:
            tool = await self._webhook(name)
        except REDIS_ERRORS:
            return None
        return tool.schema() if tool is not None else None

    async def _webhook(self, name: str):
        """The registered webhook tool `name` (a `workers.webhooks.WebhookTool`) or None, from the
        cached catalog; Redis errors go to the caller."""
        await self.start()
        if self._webhooks is None:
            self._webhooks = WebhookCatalog(self._redis, self.settings.webhook_cache_s)
        return await self._webhooks.get(name)

    async def _route(self, call: ToolCall) -> tuple[str, str | None]:
        """(the tool name the task is sent under, what is wrong with the call or None). A built-in
        tool is its own task; another name is looked up among the registered webhook tools (cached
        `webhook_cache_s`) and, when it is one, checked against its schema and sent as `webhook`."""
        if call.name in TOOL_SCHEMAS or not re.fullmatch(TOOL, call.name):
            return call.name, check_tool_call(call.name, call.arguments)
        try:
            tool = await self._webhook(call.name)
        except REDIS_ERRORS:
            return call.name, UNAVAILABLE
        schema = tool.schema() if tool is not None else None
        return webhooks.TASK, check_tool_call(call.name, call.arguments, schema)

    def task_message(self, task: str, request: protocol.ToolRequest) -> tuple[str, str]:
        """(queue, message): what `app.send_task` would push onto the queue's Redis list (kombu's
        JSON envelope around Celery's task message); CPU only, no I/O."""
        queue = queue_for(self._app, task)
        kwargsrepr = f"<{protocol.tool_of(task)}: withheld>"
        message = self._app.amqp.as_task_v2(
            request.key,
            task,
            args=(),
            kwargs=request.kwargs(),
            expires=self.settings.result_timeout_s,
            argsrepr="()",
            kwargsrepr=kwargsrepr,
        )
        body = json.dumps(message.body).encode("utf-8")
        envelope = {
            "body": base64.b64encode(body).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": message.headers,
            "properties": {
                **message.properties,
                "argsrepr": "()",
                "kwargsrepr": kwargsrepr,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return queue, json.dumps(envelope)

    async def _send(self, task: str, request: protocol.ToolRequest) -> bool:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.send_timeout_s
        queue, message = self.task_message(task, request)
        backoff = 0.02
        while True:
            try:
                await asyncio.wait_for(self._subscribed.wait(), max(0.01, give_up - loop.time()))
                await self._redis.lpush(queue, message)
                return True
            except TimeoutError:
                return False
            except REDIS_ERRORS as exc:
                self.counters["send_retries"] += 1
                if loop.time() + backoff >= give_up:
                    logger.debug("tool send failed: %s", type(exc).__name__)
                    return False
                await asyncio.sleep(backoff)
                backoff = min(0.5, backoff * 2)

    async def _wait(self, key: str, waiter: _Waiter, deadline: float) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait({waiter.future}, timeout=min(self.settings.recheck_s, remaining))
            if done:
                return waiter.future.result()
            stored = await self._stored(key)
            if stored is not None:
                self.counters["recovered"] += 1  # the reply itself was lost (Redis reconnecting)
                return stored
        return None

    async def _stored(self, key: str) -> dict[str, Any] | None:
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(protocol.outcome_key(key))
        except REDIS_ERRORS:
            return None
        return json.loads(raw) if raw is not None else None

    async def _fence(self, key: str) -> dict[str, Any]:
        """Store 'tool timed out' unless an outcome exists; the outcome that stands."""
        timed_out = protocol.error(TIMED_OUT)
        if self._redis is None:
            return timed_out
        try:
            if await self._redis.set(protocol.outcome_key(key), json.dumps(timed_out), nx=True, ex=86_400):
                return timed_out
            return await self._stored(key) or timed_out
        except REDIS_ERRORS:
            return timed_out

    def _event(self, call: ToolCall, outcome: dict[str, Any], work_s: float | None) -> ToolEvent:
        if "result" in outcome:
            self.counters["results"] += 1
            timer = outcome.get("timer")
            if isinstance(timer, dict):
                payload = event_json({"timer": timer.get("note", ""), "seconds": timer.get("seconds")})
                timer = ToolTimer(float(timer["at"]), payload)
            else:
                timer = None
            return ToolEvent.result(call, outcome["result"], timer=timer, work_s=work_s)
        self.counters["errors"] += 1
        return ToolEvent.error(call, str(outcome.get("error", protocol.FAILED)), work_s=work_s)

    # --- replies -----------------------------------------------------------------------------------
    async def _listen(self) -> None:
        backoff = 0.02
        lost = False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                if lost:
                    logger.info("tool replies: reconnected to Redis", extra={"router": self.id})
                    lost, backoff = False, 0.02
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_reply(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._subscribed.clear()
                if not lost:
                    self.counters["redis_disconnects"] += 1
                    logger.warning(
                        "tool replies: lost Redis (%s); reconnecting",
                        type(exc).__name__,
                        extra={"router": self.id},
                    )
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(0.5, backoff * 2)
            finally:
                try:
                    await asyncio.shield(pubsub.aclose())
                except Exception:
                    pass

    def _on_reply(self, data: bytes) -> None:
        try:
            reply = json.loads(data)
            key, call_id, outcome = reply["key"], reply["call_id"], reply["outcome"]
        except (ValueError, KeyError, TypeError):
            self.counters["bad_replies"] += 1
            return
        waiter = self._waiters.get(key)
        if waiter is None:
            self.counters["late_results"] += 1  # its call ended, or it was answered and timed out
            logger.info("tool reply for a call that no longer waits: dropped", extra={"call_id": call_id})
        elif waiter.call_id != call_id:
            self.counters["misrouted_replies"] += 1
        elif waiter.future.done():
            self.counters["duplicate_replies"] += 1
        else:
            waiter.work_s = reply.get("work_s")
            waiter.future.set_result(outcome)

    def stats(self) -> dict[str, int]:
        return {**self.counters, "in_flight": len(self._waiters)}
