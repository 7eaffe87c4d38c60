"""The model server: one websocket session per call, one 200 ms tick loop for all of them.

    ws://HOST:8765/session   one call (the contract: model.protocol)
    GET /healthz             JSON: slots, active sessions, tick p50/p99, late frames
    GET /metrics             Prometheus text format

The event loop only moves bytes: sessions push caller frames and events into the `Scheduler`; the
tick loop asks it for a plan every 200 ms on a monotonic clock, runs the plan on the `Runner` in a
worker thread (so sockets keep flowing while the model steps), and hands each stepped slot's
output to that session's sender task. A client that does not read its messages loses them (counted)
instead of stalling the tick for everyone else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from model.protocol import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    FRAME_BYTES,
    MAX_EVENT_PAYLOAD_BYTES,
    MICRO_TURN_MS,
    SAMPLE_RATE,
    Bye,
    CloseCode,
    Error,
    Hello,
    ProtocolError,
    Ready,
    ToolCall,
    Turn,
    check_frame,
    parse_client_message,
)
from model.runner import Runner, SlotResult
from model.scheduler import Sampling, Scheduler
from model.tokenizer import ByteTokenizer

log = logging.getLogger(__name__)


class ModelServerSettings(BaseSettings):
    """Model-server settings; every field can be set as PARLEY_MODEL_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_MODEL_")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8765, ge=0, le=65535, description="port to listen on (0: any free port)")
    max_slots: int = Field(16, ge=1, le=4096, description="concurrent calls; past it sessions are refused")
    tick_ms: int = Field(MICRO_TURN_MS, ge=10, le=2000, description="tick period (200 ms micro-turns)")
    max_queued_frames: int = Field(3, ge=1, le=50, description="caller frames buffered per call")
    catch_up_after: int = Field(5, ge=1, description="ticks a backlog may stand before a frame is skipped")
    max_event_payload: int = Field(
        MAX_EVENT_PAYLOAD_BYTES, ge=16, description="bytes of one injected event's payload"
    )
    hello_timeout_s: float = Field(10.0, gt=0, description="time a new connection has to say hello")
    outbox: int = Field(64, ge=4, description="messages queued to a slow client before dropping")
    max_message_bytes: int = Field(65536, ge=FRAME_BYTES, description="largest websocket message accepted")


@dataclass
class _Session:
    id: str
    call_id: str
    slot: int
    ws: ServerConnection
    outbox: asyncio.Queue
    seq: int = 0
    dropped_out: int = 0
    sender: asyncio.Task | None = None


@dataclass
class _Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ticks = Counter("parley_model_ticks", "Ticks run", registry=r)
        self.overruns = Counter("parley_model_tick_overruns", "Tick deadlines missed", registry=r)
        self.late = Counter("parley_model_late_frames", "Caller frames late for their tick", registry=r)
        self.dropped = Counter(
            "parley_model_dropped_frames", "Caller frames dropped (inbox full)", registry=r
        )
        self.skipped = Counter("parley_model_skipped_frames", "Caller frames skipped to catch up", registry=r)
        self.refused = Counter("parley_model_sessions_refused", "Sessions refused at capacity", registry=r)
        self.sessions = Counter("parley_model_sessions", "Sessions admitted", registry=r)
        self.bad_messages = Counter("parley_model_bad_messages", "Malformed client messages", registry=r)
        self.active = Gauge("parley_model_active_slots", "Slots holding a call", registry=r)
        self.tick_ms = Gauge("parley_model_tick_ms", "Tick execution time", ["quantile"], registry=r)


def _percentile(values, q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ModelServer:
    def __init__(
        self, runner: Runner, settings: ModelServerSettings | None = None, model_name: str = "model"
    ) -> None:
        self.runner = runner
        self.settings = settings or ModelServerSettings()
        self.model_name = model_name
        cfg = runner.cfg
        if self.settings.max_slots > runner.state.max_slots:
            raise ValueError(
                f"max_slots={self.settings.max_slots} exceeds the runner's {runner.state.max_slots} slots"
            )
        self.scheduler = Scheduler(
            self.settings.max_slots,
            cfg.max_event_tokens,
            self.settings.max_queued_frames,
            catch_up_after=self.settings.catch_up_after,
            event_repr=cfg.event_repr,
        )
        self.tokenizer = ByteTokenizer()
        self.metrics = _Metrics()
        self._sessions: dict[int, _Session] = {}
        self.ended: deque[dict] = deque(maxlen=1000)  # per-session counters of finished calls
        self._tick_ms: deque[float] = deque(maxlen=500)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner")
        self._server: Server | None = None
        self._ticker: asyncio.Task | None = None
        self._max_prefix = cfg.max_prefix

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._server = await serve(
            self._handler,
            s.host,
            s.port,
            process_request=self._http,
            max_size=s.max_message_bytes,
            ping_interval=20,
            ping_timeout=20,
        )
        self._ticker = asyncio.create_task(self._tick_loop(), name="tick-loop")
        log.info(
            "model server listening on ws://%s:%d/session (%d slots, model %s)",
            s.host,
            self.port,
            s.max_slots,
            self.model_name,
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}/session"

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for session in list(self._sessions.values()):
            await session.ws.close(CloseCode.GOING_AWAY, "model server shutting down")
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> ModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- HTTP ----------------------------------------------------------------------------------

    def health(self) -> dict:
        return {
            "status": "ok",
            "model": self.model_name,
            "max_slots": self.settings.max_slots,
            "active": self.scheduler.active,
            "ticks": self.scheduler.tick,
            "tick_ms_p50": round(_percentile(self._tick_ms, 0.5), 3),
            "tick_ms_p99": round(_percentile(self._tick_ms, 0.99), 3),
            "late_frames": self.scheduler.total_late,
            "dropped_frames": self.scheduler.total_dropped,
            "skipped_frames": self.scheduler.total_skipped,
        }

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/session":
            return None  # websocket handshake goes on
        if path == "/healthz":
            resp = connection.respond(HTTPStatus.OK, json.dumps(self.health()) + "\n")
            resp.headers["Content-Type"] = "application/json"
            return resp
        if path == "/metrics":
            self.metrics.active.set(self.scheduler.active)
            self.metrics.tick_ms.labels("0.5").set(_percentile(self._tick_ms, 0.5))
            self.metrics.tick_ms.labels("0.99").set(_percentile(self._tick_ms, 0.99))
            resp = connection.respond(HTTPStatus.OK, generate_latest(self.metrics.registry).decode())
            resp.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return resp
        return connection.respond(HTTPStatus.NOT_FOUND, "not found: use /session, /healthz or /metrics\n")

    # -- sessions ------------------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        try:
            hello = await self._hello(ws)
        except ConnectionClosed:
            return
        if hello is None:
            return
        prefix, sampling, call_id = hello
        slot = self.scheduler.admit(call_id, prefix, sampling)
        if slot is None:
            self.metrics.refused.inc()
            log.warning("session refused: at capacity (%d slots)", self.settings.max_slots)
            await ws.close(
                CloseCode.TRY_AGAIN_LATER,
                f"at capacity: {self.settings.max_slots} of {self.settings.max_slots} slots busy",
            )
            return
        session = _Session(uuid.uuid4().hex[:12], call_id, slot, ws, asyncio.Queue(self.settings.outbox))
        session.sender = asyncio.create_task(self._sender(session))
        self._sessions[slot] = session
        self.metrics.sessions.inc()
        log.info("session %s admitted to slot %d", session.id, slot)
        try:
            await ws.send(
                Ready(
                    session.id,
                    slot,
                    SAMPLE_RATE,
                    FRAME_BYTES,
                    self.settings.tick_ms,
                    self.model_name,
                    self.runner.cfg.event_kinds,
                ).to_json()
            )
            async for message in ws:
                if isinstance(message, bytes):
                    self._on_frame(session, message)
                elif isinstance(self._on_text(session, message), Bye):
                    await ws.close(CloseCode.NORMAL, "bye")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._sessions.pop(slot, None)
            stats = self.scheduler.release(slot)
            session.sender.cancel()
            if stats:
                self.ended.append(
                    {
                        "session_id": session.id,
                        "call_id": session.call_id,
                        "frames": stats.frames,
                        "stepped": stats.stepped,
                        "late": stats.late,
                        "dropped": stats.dropped,
                        "skipped": stats.skipped,
                        "undelivered": session.dropped_out,
                    }
                )
                log.info(
                    "session %s ended: %d frames, %d stepped, %d late, %d dropped, %d undelivered",
                    session.id,
                    stats.frames,
                    stats.stepped,
                    stats.late,
                    stats.dropped,
                    session.dropped_out,
                )

    async def _hello(self, ws: ServerConnection):
        try:
            raw = await asyncio.wait_for(ws.recv(), self.settings.hello_timeout_s)
        except TimeoutError:
            await ws.close(CloseCode.POLICY_VIOLATION, "no hello within the timeout")
            return None
        try:
            hello = Hello.from_json(raw, max_config_bytes=self.settings.max_message_bytes)
        except ProtocolError as exc:
            await ws.close(CloseCode.POLICY_VIOLATION, str(exc))
            return None
        seed = int.from_bytes(uuid.uuid4().bytes[:4], "little") if hello.seed is None else hello.seed
        temperature = DEFAULT_TEMPERATURE if hello.temperature is None else hello.temperature
        top_p = DEFAULT_TOP_P if hello.top_p is None else hello.top_p
        prefix = self.tokenizer.encode_prefix(hello.config, self._max_prefix)
        return prefix, Sampling(float(temperature), float(top_p), seed & 0xFFFFFFFF), hello.call_id

    def _error(self, session: _Session, message: str) -> None:
        self.metrics.bad_messages.inc()
        self._enqueue(session, Error(message).to_json())

    def _on_frame(self, session: _Session, frame: bytes) -> None:
        try:
            check_frame(frame)
        except ProtocolError as exc:
            self._error(session, str(exc))
            return
        dropped = self.scheduler.push_frame(session.slot, frame)
        if dropped:
            self.metrics.dropped.inc(dropped)

    def _on_text(self, session: _Session, text: str) -> Bye | None:
        try:
            msg = parse_client_message(text)
        except ProtocolError as exc:
            self._error(session, str(exc))
            return None
        if isinstance(msg, Bye):
            return msg
        size = len(msg.payload.encode("utf-8"))
        if size > self.settings.max_event_payload:
            self._error(session, f"event payload of {size} bytes exceeds {self.settings.max_event_payload}")
            return None
        tokens = self.tokenizer.encode_event_as(self.runner.cfg.event_repr, msg.kind, msg.payload)
        if not self.scheduler.push_event(session.slot, tokens):
            self._error(session, "event backlog full: event dropped")
        return None

    def _enqueue(self, session: _Session, message: str | bytes) -> None:
        try:
            session.outbox.put_nowait(message)
        except asyncio.QueueFull:
            session.dropped_out += 1

    async def _sender(self, session: _Session) -> None:
        try:
            while True:
                await session.ws.send(await session.outbox.get())
        except ConnectionClosed:
            pass

    # -- the tick loop -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.settings.tick_ms / 1000.0
        deadline = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            late_before, skipped_before = self.scheduler.total_late, self.scheduler.total_skipped
            plan = self.scheduler.plan()
            # The sessions the plan stepped: one that leaves while the tick runs may see its slot
            # taken by a new call before the results come back, which must not get them.
            stepped = {slot: self._sessions.get(slot) for slot in plan.step}
            self.metrics.late.inc(self.scheduler.total_late - late_before)
            self.metrics.skipped.inc(self.scheduler.total_skipped - skipped_before)
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.runner.execute, plan)
            except Exception:  # one bad tick must not stop every call
                log.exception("tick %d failed", plan.tick)
                results = {}
            if plan.step:
                self._tick_ms.append((time.perf_counter() - t0) * 1000)
            self.metrics.ticks.inc()
            for slot, result in results.items():
                session = self._sessions.get(slot)
                if session is not None and session is stepped.get(slot):
                    self._deliver(session, result, plan.frame_index[slot])
            deadline += period
            now = loop.time()
            if now > deadline:  # overran: skip the missed ticks rather than bursting
                missed = int((now - deadline) // period) + 1
                self.metrics.overruns.inc(missed)
                deadline += missed * period

    def _deliver(self, session: _Session, result: SlotResult, frame: int) -> None:
        seq, t_ms = session.seq, session.seq * self.settings.tick_ms
        session.seq += 1
        turn = Turn(seq, t_ms, result.floor, result.text, frame)
        messages: list[str | bytes] = [turn.to_json(), result.pcm]
        if (tool := result.tool_call) is not None:
            raw = tool.raw if tool.arguments is None else None
            call = ToolCall(seq, t_ms, f"{session.id}-{seq}", tool.name, tool.arguments, raw)
            messages.append(call.to_json())
        # A turn and its audio travel together or not at all.
        if session.outbox.maxsize - session.outbox.qsize() < len(messages):
            session.dropped_out += 1
            return
        for message in messages:
            session.outbox.put_nowait(message)


async def serve_forever(server: ModelServer) -> None:
    await server.start()
    try:
        await asyncio.Future()
    finally:
        await server.stop()
