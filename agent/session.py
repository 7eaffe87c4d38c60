"""`CallSession`: one call, binding a transport leg to one model-server session.

Caller side: 200 ms frames of 16 kHz audio, DTMF and the end of the caller's side go to the model
session (frames as binary, DTMF and the hang-up as events). Agent side (`run`): each micro-turn's
200 ms of agent audio is played on the leg; floors become the two things a transport can do with
queued audio: a speaking run that ends -> `leg.utterance_end()` (Twilio: a mark), the floor yielded
mid-utterance -> `leg.interrupt()` first (Twilio: clear). Nothing else decides when the agent stops.
Micro-turns the server skipped get no audio: it is never invented late (`unanswered_frames`; a new
high is a `model_behind` timeline event).

Tool calls go to a `ToolRouter` concurrently with the conversation, with a timeout, and the model
always hears back (`_on_tool_call`). `end_call` and `transfer` are handled here; a transfer only
ever goes to the agent's configured `handoff_number`, never a number the model wrote.

Logging: call ids, agent names, counters and codes only. Transcripts, DTMF digits and tool
arguments stay in the session's transcript and timeline (call data), never in log lines. Nothing
here knows which transport the leg is or how the model works inside.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import numpy as np

from agent.background import BackgroundModel, BackgroundSettings, BackgroundTasks
from agent.config import AgentConfig, render_prefix
from agent.events import (
    TOOL_PENDING_AFTER_S,
    TOOL_PENDING_EVERY_S,
    event_json,
    tool_pending_payload,
)
from agent.model_client import (
    Closed,
    Hello,
    ModelClient,
    ModelConnectionClosed,
    Ready,
    ServerError,
    ToolCall,
    Turn,
)
from agent.timeline import Timeline, Transcript
from model import protocol
from telephony.leg import CloseCode, Leg
from workers.protocol import FAILED

logger = logging.getLogger(__name__)

SPEAKING = frozenset({"speak", "backchannel"})
TOOL_EVENT_KINDS = ("tool_result", "tool_error", "tool_pending")


@dataclasses.dataclass(frozen=True)
class ToolTimer:
    """A timer event a tool result asks for (a booked callback): due at Unix time `at`."""

    at: float
    payload: str


@dataclasses.dataclass(frozen=True)
class ToolEvent:
    """What goes back into the model for a tool call: kind and a JSON text payload."""

    kind: str  # "tool_result" | "tool_error" | "tool_pending"
    payload: str
    timer: ToolTimer | None = None  # fired into the call when due
    work_s: float | None = None  # the tool's own time, when the router knows it (timeline, bench)

    # The payload is the compact JSON of the result (or of the error message) and nothing else:
    # `event_json`, the same function the training data uses, and short, because event tokens
    # reach the model at a bounded rate per micro-turn.

    @classmethod
    def error(cls, call: ToolCall, message: str, *, work_s: float | None = None) -> ToolEvent:
        return cls("tool_error", event_json(message), work_s=work_s)

    @classmethod
    def result(
        cls,
        call: ToolCall,
        value: object,
        *,
        timer: ToolTimer | None = None,
        work_s: float | None = None,
    ) -> ToolEvent:
        return cls("tool_result", event_json(value), timer, work_s)

    @classmethod
    def pending(cls, call: ToolCall, seconds: float) -> ToolEvent:
        """A still-working notice for a slow tool: {"seconds": N} (agent.events.tool_pending_payload)."""
        return cls("tool_pending", tool_pending_payload(seconds))


class ToolRouter(Protocol):
    """Runs the tool calls a session's model makes (`agent.tool_router.CeleryToolRouter`)."""

    async def call(self, session: CallSession, call: ToolCall) -> ToolEvent: ...


class UnavailableToolRouter:
    """The router until tools exist: every call is answered with a tool_error "tool unavailable"."""

    async def call(self, session: CallSession, call: ToolCall) -> ToolEvent:
        return ToolEvent.error(call, "tool unavailable")


@dataclasses.dataclass(frozen=True)
class CallEnd:
    by: str  # "caller" | "agent" | "model" | "admin"
    reason: str
    code: int  # a telephony.leg.CloseCode


class CallSession:
    """One call: a `Leg` on one side, a model-server session on the other.

    `start()` opens the model session (raises `ModelRefused` / `ModelUnavailable`); then the
    transport calls `caller_frame`/`caller_dtmf` while `run()` runs, and `caller_ended` once.
    Implements telephony's `CallHandler`.
    """

    def __init__(
        self,
        agent: AgentConfig,
        leg: Leg,
        *,
        model_url: str,
        tool_router: ToolRouter | None = None,
        call_id: str | None = None,
        seed: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        connect_timeout: float = 5.0,
        tool_timeout: float = 30.0,
        tool_pending_after: float = TOOL_PENDING_AFTER_S,
        tool_pending_every: float = TOOL_PENDING_EVERY_S,
        max_tools_in_flight: int = 4,
        background: BackgroundTasks | None = None,
        background_settings: BackgroundSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.leg = leg
        self.call_id = call_id or uuid.uuid4().hex
        self.transcript = Transcript()
        self.timeline = Timeline(clock)
        self.ended: CallEnd | None = None
        self.ready: Ready | None = None
        self._model_url = model_url
        self._router: ToolRouter = tool_router or UnavailableToolRouter()
        self._hello = Hello(self.call_id, render_prefix(agent), seed, temperature, top_p)
        self._connect_timeout = connect_timeout
        self._tool_timeout = tool_timeout
        self._pending_after = tool_pending_after
        self._pending_every = tool_pending_every
        self._max_tools = max_tools_in_flight
        self._client: ModelClient | None = None
        self._tasks: set[asyncio.Task] = set()
        self._tool_tasks: set[asyncio.Task] = set()
        self._background: set[asyncio.Task] = set()
        self._hangup_task: asyncio.Task | None = None
        self._floor = "listen"
        self._speaking = False
        self._last_seq: int | None = None
        self._server_error: str | None = None
        self._max_behind = 0
        self._clock = clock
        self._frame_times: collections.deque[tuple[int, float]] = collections.deque(maxlen=64)
        self.turn_latency_ms: list[int] = []  # per turn the agent took (see `_turn_taken`), at most 1000
        self._background_tasks = background
        self._background_settings = background_settings
        self.background: BackgroundModel | None = None
        self._utterance: list[str] = []  # the agent's text since its utterance began
        self._background_calls = 0

    def _log_extra(self, **fields: object) -> dict:
        return {"call_id": self.call_id, "agent": self.agent.name, **fields}

    # --- start -------------------------------------------------------------------------------------
    async def start(self) -> Ready:
        self._client = await ModelClient.connect(self._model_url, self._hello, timeout=self._connect_timeout)
        self.ready = self._client.ready
        if self._background_tasks is not None:
            self.background = BackgroundModel(
                self.agent, self, self._background_tasks, self._background_settings, clock=self._clock
            )
        self.timeline.add(
            "model_ready", session_id=self.ready.session_id, slot=self.ready.slot, model=self.ready.model
        )
        logger.info(
            "call %s: model session started (agent %s, slot %d, model %s)",
            self.call_id,
            self.agent.name,
            self.ready.slot,
            self.ready.model,
            extra=self._log_extra(slot=self.ready.slot, model=self.ready.model),
        )
        return self.ready

    # --- caller side -------------------------------------------------------------------------------
    async def caller_frame(self, frame: np.ndarray) -> None:
        if self._client is None or self.ended is not None:
            self.timeline.count("caller_frames_dropped")
            return
        try:
            await self._client.send_frame(frame)
        except ModelConnectionClosed:
            self.timeline.count("caller_frames_dropped")
            return
        self._frame_times.append((self._client.frames_sent - 1, self._clock()))
        self.timeline.count("caller_frames")
        if self.background is not None:
            self.background.caller_frame(frame)

    async def caller_dtmf(self, digits: str) -> None:
        self.timeline.add("dtmf", digits=digits)
        self.timeline.count("dtmf")
        await self._send_event("dtmf", digits)
        if self.background is not None:
            self.background.caller_dtmf(digits)

    async def caller_ended(self, reason: str) -> None:
        if self.ended is None:
            self._end(CallEnd("caller", reason, CloseCode.NORMAL), hangup=False)
            await self._send_event("caller_hangup", reason)
        if self._client is not None:
            await self._client.close()

    # --- agent side --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Pump the model session until it closes; hang up the leg when the agent side ended."""
        client = self._client
        if client is None:
            raise RuntimeError("CallSession.run() before start()")
        try:
            async for message in client:
                if isinstance(message, Turn):
                    self._on_turn(message)
                elif isinstance(message, ToolCall):
                    await self._on_tool_call(message)
                elif isinstance(message, ServerError):
                    self._server_error = message.message
                    self.timeline.add("model_error", message=message.message[:200])
                    logger.warning(
                        "call %s: model server error",
                        self.call_id,
                        extra=self._log_extra(error=message.message[:200]),
                    )
                elif isinstance(message, Closed):
                    self._on_closed(message)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self.background is not None:
                await self.background.close()
            if client.open:
                try:
                    await asyncio.wait_for(client.abort(protocol.CloseCode.NORMAL, "session over"), 2.0)
                except (TimeoutError, Exception):
                    pass
        if self._hangup_task is not None:
            await self._hangup_task
        end = self.ended
        logger.info(
            "call %s: session ended by %s (%s %s)",
            self.call_id,
            end.by if end else "?",
            end.code if end else "-",
            end.reason if end else "",
            extra=self._log_extra(
                by=end.by if end else None,
                code=end.code if end else None,
                reason=end.reason if end else None,
                counters=dict(self.timeline.counters),
            ),
        )

    def _on_turn(self, turn: Turn) -> None:
        self.timeline.count("turns")
        if self._last_seq is not None:
            gap = turn.seq - self._last_seq - 1
            if gap > 0:
                self.timeline.count("skipped_turns", gap)
                self.timeline.add("skipped_turns", count=gap, after_seq=self._last_seq)
            elif gap < 0:
                self.timeline.count("seq_out_of_order")
        self._last_seq = turn.seq if self._last_seq is None else max(self._last_seq, turn.seq)
        if self._client is not None:  # our own count: caller frames the model has not answered yet
            behind = self._client.frames_sent - self._client.turns
            if behind > self._max_behind:
                self._max_behind = behind
                self.timeline.add("model_behind", frames=behind, seq=turn.seq)
        if self.ended is not None:
            return  # the call is ending: nothing more goes to the caller
        if turn.floor != self._floor:
            self.timeline.add("floor", floor=turn.floor, seq=turn.seq, t_ms=turn.t_ms)
            self._floor = turn.floor
        speaking = turn.floor in SPEAKING
        if turn.floor == "speak" and not self._speaking:
            self._turn_taken(turn)
        if self._speaking and not speaking:
            if turn.floor == "yield":
                self.leg.interrupt()
                self.timeline.count("interrupts")
                self.timeline.add("interrupt", seq=turn.seq)
            self.leg.utterance_end()
            self.timeline.count("utterances")
            self.timeline.add("utterance_end", seq=turn.seq)
            if self.background is not None:
                self.background.agent_said("".join(self._utterance))
            self._utterance.clear()
        self._speaking = speaking
        self.leg.notify(
            "turn", {"seq": turn.seq, "t_ms": turn.t_ms, "frame": turn.frame, "floor": turn.floor}
        )
        self.leg.play(turn.audio)
        if self.background is not None:  # it plays over the caller's frame turn.frame + 1
            self.background.agent_audio(turn.audio, (turn.frame + 1) * protocol.MICRO_TURN_MS / 1000)
        self.timeline.count("agent_frames")
        if turn.text:
            if speaking:
                self._utterance.append(turn.text)
            self.transcript.add_agent(turn.seq, turn.t_ms, turn.text)
            self.leg.notify("transcript", {"role": "agent", "t_ms": turn.t_ms, "text": turn.text})

    def _turn_taken(self, turn: Turn) -> None:
        """Turn-taking latency as the platform adds it: from the arrival of the caller frame the
        model read when it took the floor to this, the first agent frame of the turn, being
        queued for the caller (the wait for the tick, the step, both websocket hops)."""
        frame = turn.frame if turn.frame >= 0 else turn.seq  # a server that does not say: seq n read frame n
        for index, arrived in reversed(self._frame_times):
            if index == frame:
                if len(self.turn_latency_ms) < 1000:
                    self.turn_latency_ms.append(int(round((self._clock() - arrived) * 1000)))
                return
            if index < frame:
                return

    async def _on_tool_call(self, call: ToolCall) -> None:
        """A name outside the agent's allowed tools gets a `tool_error` "tool not allowed";
        `end_call` ends the call (the leg hangs up after the queued audio has played); `transfer`
        asks the leg to transfer to the agent's `handoff_number` and ends the call, or gets a
        `tool_error` when the transport cannot transfer; both are also handed to the router
        afterwards as a record whose answer nobody waits for. Every other allowed tool goes to the
        router with a timeout; while it runs, the model gets a `tool_pending` event after
        `tool_pending_after` seconds and every `tool_pending_every` seconds after that (payload
        `{"tool": NAME, "status": "working", "seconds": N}`). A result may carry a timer (a booked
        callback), injected as a `timer` event when due unless the call is over by then."""
        self.timeline.count("tool_calls")
        self.timeline.add(
            "tool_call",
            id=call.id,
            name=call.name[:64],
            seq=call.seq,
            t_ms=call.t_ms,
            arguments=call.arguments if call.arguments is not None else None,
            arguments_raw=(call.arguments_raw or "")[:500] or None,
        )
        if self.ended is not None:
            return
        if call.name not in self.agent.tools:
            self.timeline.count("tools_not_allowed")
            logger.info(
                "call %s: tool call refused: not allowed",
                self.call_id,
                extra=self._log_extra(tool=call.name[:64]),
            )
            await self._reply(call, ToolEvent.error(call, "tool not allowed"))
        elif call.name == "end_call":
            self._end(CallEnd("agent", "the agent ended the call", CloseCode.NORMAL))
            self._spawn(self._record(call, {}), track=False)
        elif call.name == "transfer":
            self._spawn(self._transfer(call))
        elif self.background is not None:
            # The background model owns the substance: it decides and runs the tools, so a
            # lookup or a booking never happens twice. The interaction model hears why.
            self.timeline.count("tools_left_to_background")
            await self._reply(call, ToolEvent.error(call, "the background model runs tools on this call"))
        elif len(self._tool_tasks) >= self._max_tools:
            await self._reply(call, ToolEvent.error(call, "too many tool calls in flight"))
        else:
            task = self._spawn(self._route(call))
            self._tool_tasks.add(task)
            task.add_done_callback(self._tool_tasks.discard)

    async def _route(self, call: ToolCall) -> ToolEvent:
        started = time.monotonic()
        task = asyncio.ensure_future(asyncio.wait_for(self._router.call(self, call), self._tool_timeout))
        try:
            wait = self._pending_after
            while not (await asyncio.wait({task}, timeout=wait))[0]:  # still working: say so
                await self._reply(call, ToolEvent.pending(call, time.monotonic() - started))
                wait = self._pending_every
            event = task.result()
            if event.kind not in TOOL_EVENT_KINDS or not isinstance(event.payload, str):
                raise TypeError(f"tool router returned a {event.kind!r} event")
        except TimeoutError:
            event = ToolEvent.error(call, "tool timed out")
        except Exception:
            logger.exception(
                "call %s: tool router failed", self.call_id, extra=self._log_extra(tool=call.name[:64])
            )
            event = ToolEvent.error(call, FAILED)
        finally:
            task.cancel()
        await self._reply(call, event)
        return event

    async def _record(self, call: ToolCall, arguments: dict) -> None:
        """Hand an action the session already took (transfer, end of call) to the router as a
        record; nobody waits for the answer and the model does not hear it."""
        record = dataclasses.replace(call, arguments=arguments, arguments_raw=None)
        try:
            event = await asyncio.wait_for(self._router.call(self, record), self._tool_timeout)
            failed = event.kind == "tool_error"
        except Exception:
            failed = True
        if failed:
            logger.debug(
                "call %s: %s not recorded", self.call_id, call.name, extra=self._log_extra(tool=call.name)
            )

    async def _fire_timer(self, call: ToolCall, timer: ToolTimer) -> None:
        await asyncio.sleep(max(0.0, timer.at - time.time()))
        if self.ended is None:
            self.timeline.count("timers")
            self.timeline.add("timer", id=call.id)
            await self._send_event("timer", timer.payload)

    async def _transfer(self, call: ToolCall) -> ToolEvent | None:
        """Transfer to the hand-off number and end the call (None), or the error the model heard."""
        target = self.agent.handoff_number
        if target is None:
            event = ToolEvent.error(call, "no hand-off number configured")
        elif await self.leg.transfer(target):
            self.timeline.add("transfer", id=call.id)
            self._end(CallEnd("agent", "transferred to a human", CloseCode.NORMAL))
            reason = (call.arguments or {}).get("reason")
            reason = reason[:200] if isinstance(reason, str) and reason else "not given"
            self._spawn(self._record(call, {"reason": reason}), track=False)
            return None
        else:
            event = ToolEvent.error(call, "transfer not available on this line")
        await self._reply(call, event)
        return event

    async def _reply(self, call: ToolCall, event: ToolEvent) -> None:
        self.timeline.count(event.kind)
        work = {"work_ms": round(event.work_s * 1000, 3)} if event.work_s is not None else {}
        self.timeline.add(event.kind, id=call.id, **work)
        await self._send_event(event.kind, event.payload)
        if event.timer is not None and self.ended is None:
            self._spawn(self._fire_timer(call, event.timer))

    def _on_closed(self, closed: Closed) -> None:
        self.timeline.add("model_closed", code=closed.code, reason=closed.reason[:200])
        if self.ended is None:  # the model server ended the session by itself
            detail = self._server_error or closed.reason or "no reason"
            self._end(
                CallEnd(
                    "model",
                    f"model server closed the session ({closed.code}: {detail})",
                    CloseCode.BAD_GATEWAY,
                ),
                close_model=False,
            )
            logger.warning(
                "call %s: model server closed the session (%d)",
                self.call_id,
                closed.code,
                extra=self._log_extra(code=closed.code, reason=closed.reason[:200]),
            )

    # --- ending ------------------------------------------------------------------------------------
    def hang_up(self, reason: str, by: str = "admin") -> bool:
        """End the call from outside the conversation (the admin API): the leg hangs up after the
        queued audio, the model session closes. False when the call was ending already."""
        if self.ended is not None:
            return False
        self.timeline.count("hangups")
        self._end(CallEnd(by, reason, CloseCode.NORMAL))
        return True

    def _end(self, end: CallEnd, *, hangup: bool = True, close_model: bool = True) -> None:
        if self.ended is not None:
            return
        self.ended = end
        self.timeline.add("end", by=end.by, reason=end.reason, code=end.code)
        if hangup:
            self._hangup_task = self._spawn(self.leg.hangup(end.code, end.reason), track=False)
        if close_model and self._client is not None and end.by != "caller":
            self._spawn(self._client.close(), track=False)

    def _spawn(self, coro, track: bool = True) -> asyncio.Task:
        """A task the session holds on to; `track=False` ones outlive `run()` (hang-up, bye)."""
        task = asyncio.get_running_loop().create_task(coro)
        group = self._tasks if track else self._background
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    async def _send_event(self, kind: str, payload: str) -> None:
        if self._client is None:
            return
        if self.ready is not None and kind not in self.ready.events:
            self.timeline.count(f"events_not_read_{kind}")  # this checkpoint was not trained on them
            return
        try:
            await self._client.send_event(kind, payload)
        except ModelConnectionClosed:
            self.timeline.count("events_dropped")

    # --- the background model's host (agent.background.CallHost) -----------------------------------
    async def send_event(self, kind: str, payload: str) -> None:
        if self.ended is None:
            self.timeline.count(f"background_{kind}_events")
            await self._send_event(kind, payload)

    async def run_tool(self, name: str, arguments: dict) -> tuple[str, str]:
        """A tool call the background model decided on, run as the model's own would be (the
        agent's allowed tools only, the router with its timeout and pending notices, `transfer`
        only to the hand-off number): (kind, payload) of the event the model then heard."""
        self._background_calls += 1
        seq = self._last_seq if self._last_seq is not None else 0
        call = ToolCall(seq, seq * protocol.MICRO_TURN_MS, f"bg-{self._background_calls}", name, arguments)
        self.timeline.count("tool_calls")
        self.timeline.add(
            "tool_call", id=call.id, name=name[:64], seq=seq, by="background", arguments=arguments
        )
        if self.ended is not None:
            return "tool_error", event_json("the call has ended")
        if name not in self.agent.tools:
            event = ToolEvent.error(call, "tool not allowed")
        elif name == "transfer":
            failed = await self._transfer(call)
            if failed is not None:
                return failed.kind, failed.payload
            return "tool_result", event_json("transferred to a human")  # the call has ended
        elif len(self._tool_tasks) >= self._max_tools:
            event = ToolEvent.error(call, "too many tool calls in flight")
        else:
            task = asyncio.current_task()
            if task is not None:
                self._tool_tasks.add(task)
            try:
                return (event := await self._route(call)).kind, event.payload
            finally:
                self._tool_tasks.discard(task)
        await self._reply(call, event)
        return event.kind, event.payload

    # --- record ------------------------------------------------------------------------------------
    def summary(self) -> dict:
        end = self.ended
        client = self._client
        return {
            "call_id": self.call_id,
            "agent": self.agent.name,
            "model": self.ready.model if self.ready else None,
            "ended": dataclasses.asdict(end) if end else None,
            "frames_sent": client.frames_sent if client else 0,
            "turns_received": client.turns if client else 0,
            "unanswered_frames": (client.frames_sent - client.turns) if client else 0,
            "transcript": self.transcript.to_list(),
            "timeline": self.timeline.to_dict(),
            **({"background": self.background.summary()} if self.background is not None else {}),
        }
