"""The background model of one call: it hears the caller's words, reasons under the agent's own
instructions and tools, acts, and sends what it finds into the live stream.

Beside the conversation, never in its way: `caller_frame` runs a VAD over the same 16 kHz frames
the model server gets (`agent.hearing.Segmenter`, ~1 ms a frame) and hands each finished speech
segment to the workers' `hearing` queue; its words come back as a `caller_words` event for the
interaction model and a line of the call's transcript. Each new line (or DTMF) asks the workers'
`reasoning` queue what to do, given the agent's brief (instructions, greeting, its tools' schemas)
and the call so far; a decision is one of

- a tool call: the model hears `tool_pending` at once (so it can say "let me check"), the tool runs
  through the session's tool path (the same Celery tools, idempotency keys, timeouts and pending
  notices as any tool call; `transfer` only ever to the agent's hand-off number), its result goes to
  the model as `tool_result` and into the history, and the reasoner is asked again;
- a reply: its words go to the model as a `reply` event, for the interaction model to voice;
- wait: nothing to do yet (the caller said "mm-hmm", or is not done);
- an error (the reasoner timed out, wrote garbage or a tool the agent lacks): the model hears a
  `reply` saying the agent could not do that, and the call goes on.

Hearing keeps segment order (one segment per call at a time); reasoning runs one at a time per call
and runs once more if the call moved on while it ran. A line that ends in digits while the caller
talks on ("my order is A-1-2-2", a pause, "3-7") waits up to `id_hold_s` for its rest, and the two
are one caller line of the history: the reasoner looks up the whole id, not its first digits.

An interpreter (an agent with a `translation_target`) is only heard: its words go to the model
and the transcript, but nothing reasons or replies for it, since what it says is its own
translation (as in the training calls, whose interpreters read caller words and no replies).

Nothing here decides when the agent speaks: the interaction model voices replies when it takes
the floor. `end_call` is not offered to the reasoner (ending the call is the conversation's
business: the interaction model hears goodbye).

Logs carry call ids, kinds and timings; words, arguments and results stay in the call record.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.config import TOOL_SCHEMAS, AgentConfig
from agent.echo import EchoCheck
from agent.events import tool_pending_payload
from agent.hearing import Segment, Segmenter
from agent.timeline import Timeline, Transcript
from model.protocol import SAMPLE_RATE
from workers.protocol import HEAR_TASK, REASON_TASK
from workers.spoken import normalize_spoken

logger = logging.getLogger(__name__)

COULD_NOT = "Sorry, I could not do that just now."
DECISIONS = ("tool", "reply", "wait", "error")  # what a reasoning task answers (workers.reasoner)
NOT_FOR_REASONER = frozenset({"end_call"})
_ENDS_IN_DIGITS = re.compile(r"\d\W*$")


class BackgroundSettings(BaseSettings):
    """The background model beside each call (env `PARLEY_BACKGROUND_*`)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_BACKGROUND_", extra="ignore", frozen=True)

    enabled: bool = Field(True, description="Run the background model beside every call (needs REDIS_URL).")
    hear_timeout_s: float = Field(
        12.0, gt=0, description="Seconds a speech segment's words may take (a dead worker's redelivery too)."
    )
    reason_timeout_s: float = Field(
        25.0, gt=0, description="Seconds one reasoning step may take (an agent's first is the slowest)."
    )
    max_tool_steps: int = Field(
        3, ge=1, le=10, description="Tool calls in a row the reasoner may make before it must reply."
    )
    history_entries: int = Field(
        24, ge=4, le=200, description="The most recent entries of the call the reasoner reads."
    )
    echo_check: bool = Field(
        True, description="Drop speech segments that are only the agent's own echo (agent.echo)."
    )
    id_hold_s: float = Field(
        2.0,
        ge=0,
        le=10,
        description="Seconds the reasoner waits for the rest of a line that ends in digits while the "
        "caller speaks on (an order number given in pieces).",
    )


class BackgroundTasks(Protocol):
    """Where hearing and reasoning run (`CeleryBackgroundTasks`: the workers). Each returns an
    outcome, `{"result": {...}}` or `{"error": "..."}`, and never raises."""

    async def hear(self, call_id: str, segment: Segment, timeout_s: float) -> dict[str, Any]: ...

    async def reason(
        self, call_id: str, brief: dict[str, Any], history: list[dict[str, Any]], timeout_s: float
    ) -> dict[str, Any]: ...

    async def tool_schemas(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The schemas of tools registered outside the code (webhook tools), by name."""


class CeleryBackgroundTasks:
    """Hearing and reasoning as tasks on the workers, through the gateway's `CeleryToolRouter`."""

    def __init__(self, router) -> None:
        self.router = router

    async def hear(self, call_id: str, segment: Segment, timeout_s: float) -> dict[str, Any]:
        arguments = {"audio": base64.b64encode(segment.audio).decode("ascii"), "segment": segment.index}
        outcome, _ = await self.router.run(
            call_id, HEAR_TASK, arguments, tool_call_id=f"hear-{segment.index}", timeout_s=timeout_s
        )
        return outcome

    async def reason(
        self, call_id: str, brief: dict[str, Any], history: list[dict[str, Any]], timeout_s: float
    ) -> dict[str, Any]:
        arguments = {"brief": brief, "history": history}
        outcome, _ = await self.router.run(call_id, REASON_TASK, arguments, timeout_s=timeout_s)
        return outcome

    async def tool_schemas(self, names: list[str]) -> dict[str, dict[str, Any]]:
        found = {name: await self.router.tool_schema(name) for name in names}
        return {name: schema for name, schema in found.items() if schema is not None}


class CallHost(Protocol):
    """What the background model needs of its call (`agent.session.CallSession`)."""

    call_id: str
    timeline: Timeline
    transcript: Transcript

    async def send_event(self, kind: str, payload: str) -> None: ...

    async def run_tool(self, name: str, arguments: dict[str, Any]) -> tuple[str, str]:
        """Run a tool the background model decided on: (event kind, JSON payload) of its outcome,
        already sent to the interaction model."""


def brief_for(agent: AgentConfig, registered: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the reasoner reads of an agent: its instructions, greeting and tools with schemas (the
    built-in ones', and `registered`: webhook tools' from the admin API)."""
    schemas = {**(registered or {}), **TOOL_SCHEMAS}
    tools = [
        {"name": name, **schemas[name]}
        for name in agent.tools
        if name in schemas and name not in NOT_FOR_REASONER
    ]
    offered = {t["name"] for t in tools}
    examples = [
        e.model_dump(exclude_none=True) for e in agent.examples if e.tool is None or e.tool in offered
    ]
    return {
        "name": agent.name,
        "instructions": agent.instructions,
        "greeting": agent.greeting,
        "tools": tools,
        "examples": examples,
    }


class BackgroundModel:
    """One call's background model (see the module docstring). `caller_frame` per caller frame,
    `caller_dtmf`, `agent_said`; `close()` at the end of the call."""

    def __init__(
        self,
        agent: AgentConfig,
        host: CallHost,
        tasks: BackgroundTasks,
        settings: BackgroundSettings | None = None,
        *,
        segmenter: Segmenter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.host = host
        self.tasks = tasks
        self.settings = settings or BackgroundSettings()
        self.segmenter = segmenter or Segmenter()
        self.echo = EchoCheck()
        self.brief = brief_for(agent)
        self._registered = [n for n in agent.tools if n not in TOOL_SCHEMAS and n not in NOT_FOR_REASONER]
        self.history: list[dict[str, Any]] = []  # the reasoner shows the greeting itself
        self.heard: list[dict[str, Any]] = []  # per segment: words, times, latency
        self.decisions: list[dict[str, Any]] = []
        self._clock = clock
        self._hearing: asyncio.Queue[tuple[Segment, float, float]] = asyncio.Queue()
        self._reasoning: asyncio.Task | None = None
        self._again = False
        self._hearer: asyncio.Task | None = None
        self._held: asyncio.TimerHandle | None = None  # a line ending in digits, waiting for its rest
        self._closed = False

    # --- the call's inputs -------------------------------------------------------------------------
    def caller_frame(self, frame: np.ndarray) -> None:
        if self._closed:
            return
        if frame.dtype == np.int16:
            frame = frame.astype(np.float32) / 32768.0
        for segment in self.segmenter.push(frame):
            if segment.final and self.settings.echo_check and self._echo_only(segment):
                self.host.timeline.count("caller_segments_echo")
            elif segment.final:
                # The VAD's share of the latency: caller audio heard after the end of speech.
                self._hear(segment, max(0.0, self.segmenter.t_s - segment.end_s))

    def agent_audio(self, frame: np.ndarray, start_s: float) -> None:
        """The agent's audio as the call plays it, from `start_s` on the caller's clock: what
        comes back as echo in the caller's channel is not heard as the caller (agent.echo)."""
        if not self._closed:
            self.echo.agent(frame.astype(np.float32) / 32768.0 if frame.dtype == np.int16 else frame, start_s)

    def _echo_only(self, segment: Segment) -> bool:
        audio = np.frombuffer(segment.audio, "<i2").astype(np.float32) / 32768.0
        return self.echo.is_echo(audio, self.segmenter.t_s - len(audio) / SAMPLE_RATE)  # it ends now

    def caller_dtmf(self, digits: str) -> None:
        if not self._closed:
            self.history.append({"role": "dtmf", "digits": digits})
            self._reason()

    def agent_said(self, text: str) -> None:
        """What the interaction model said in one utterance (its own text)."""
        text = " ".join(text.split())
        if text and not self._closed:
            self.history.append({"role": "agent", "text": text})

    async def close(self) -> None:
        if not self._closed:
            self.segmenter.close()
        self._closed = True
        self._release()
        running = [t for t in (self._hearer, self._reasoning) if t is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        return {"heard": list(self.heard), "decisions": list(self.decisions)}

    # --- hearing -----------------------------------------------------------------------------------
    def _hear(self, segment: Segment, vad_s: float) -> None:
        self._hearing.put_nowait((segment, self._clock(), vad_s))
        if self._hearer is None:
            self._hearer = asyncio.get_running_loop().create_task(self._hear_in_order())

    async def _hear_in_order(self) -> None:
        while True:
            segment, emitted, vad_s = await self._hearing.get()
            try:
                await self._hear_one(segment, emitted, vad_s)
            except Exception:
                logger.exception(
                    "call %s: hearing failed", self.host.call_id, extra={"call_id": self.host.call_id}
                )

    async def _hear_one(self, segment: Segment, emitted: float, vad_s: float) -> None:
        outcome = await self.tasks.hear(self.host.call_id, segment, self.settings.hear_timeout_s)
        timeline = self.host.timeline
        # From the end of the caller's speech: the VAD's wait for silence, then the workers (the
        # queue, Whisper, the reply).
        vad_ms = round(vad_s * 1000)
        hear_ms = round((self._clock() - emitted) * 1000)
        if "error" in outcome:
            timeline.count("hearing_errors")
            timeline.add("hearing_error", segment=segment.index, error=str(outcome["error"])[:200])
            return
        result = outcome.get("result") or {}
        words = " ".join(str(result.get("text", "")).split())
        entry = {
            "segment": segment.index,
            "start_ms": round(segment.start_s * 1000),
            "end_ms": round(segment.end_s * 1000),
            "text": words,
            "hear_ms": hear_ms,
            "vad_ms": vad_ms,
            "latency_ms": hear_ms + vad_ms,
            "work_ms": round(float(result.get("work_s", 0.0)) * 1000),
        }
        self.heard.append(entry)
        timeline.count("caller_segments")
        if not words:
            timeline.count("caller_segments_empty")
            return
        timeline.add("caller_words", **entry)
        self.host.transcript.add_caller(entry["start_ms"], entry["end_ms"], words)
        if self._held is not None and self.history and self.history[-1]["role"] == "caller":
            # The rest of a line held for its digits: one caller line, as the caller meant it.
            self.history[-1] = {"role": "caller", "text": f"{self.history[-1]['text']} {words}"}
        else:
            self.history.append({"role": "caller", "text": words})
        await self.host.send_event("caller_words", words)
        self._release()
        if self.segmenter.speaking and _ENDS_IN_DIGITS.search(normalize_spoken(words)):
            # "My order is A-1-2-2" and the caller talks on: the rest of the id is coming. Reason
            # on the whole line (or after id_hold_s), not on a lookup of its first digits.
            timeline.count("caller_lines_held")
            self._held = asyncio.get_running_loop().call_later(self.settings.id_hold_s, self._reason_held)
        else:
            self._reason()

    def _release(self) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None

    def _reason_held(self) -> None:
        self._held = None
        self._reason()

    # --- reasoning and acting ----------------------------------------------------------------------
    def _reason(self) -> None:
        if self._closed or self.agent.translation_target is not None:
            return  # an interpreter's substance is its own translation: it is heard, never answered
        if self._reasoning is not None and not self._reasoning.done():
            self._again = True  # the call moved on while it thinks: think once more after
            return
        self._reasoning = asyncio.get_running_loop().create_task(self._reason_loop())

    async def _reason_loop(self) -> None:
        try:
            self._again = True
            while self._again and not self._closed:
                self._again = False
                await self._step()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "call %s: reasoning failed", self.host.call_id, extra={"call_id": self.host.call_id}
            )

    async def _step(self) -> None:
        """Reason until a reply, a wait or an error: at most `max_tool_steps` tool calls first."""
        if self._registered:  # webhook tools: their schemas come from the admin API's Redis, once
            self.brief = brief_for(self.agent, await self.tasks.tool_schemas(self._registered))
            self._registered = []
        for _ in range(self.settings.max_tool_steps + 1):
            started = self._clock()
            history = self.history[-self.settings.history_entries :]
            outcome = await self.tasks.reason(
                self.host.call_id, self.brief, history, self.settings.reason_timeout_s
            )
            decision = outcome.get("result") if "result" in outcome else None
            if not isinstance(decision, dict) or decision.get("kind") not in DECISIONS:
                decision = {"kind": "error", "text": str(outcome.get("error", "no decision"))[:200]}
            elapsed_ms = round((self._clock() - started) * 1000)
            kind = decision["kind"]
            record = {"kind": kind, "ms": elapsed_ms, "work_ms": _ms(decision.get("work_s"))}
            if kind == "tool":
                name, arguments = decision.get("tool"), decision.get("arguments")
                if (
                    name not in self.agent.tools
                    or name in NOT_FOR_REASONER
                    or not isinstance(arguments, dict)
                ):
                    kind, decision = (
                        "error",
                        {"kind": "error", "text": f"tool {str(name)[:40]!r} not allowed"},
                    )
                    record["kind"] = "error"
                else:
                    record.update(tool=name, arguments=arguments)
                    self._decided(record)
                    self.history.append({"role": "tool_call", "tool": name, "arguments": arguments})
                    await self.host.send_event("tool_pending", tool_pending_payload(0))
                    event_kind, payload = await self.host.run_tool(name, arguments)
                    self.history.append(_tool_entry(name, event_kind, payload))
                    record["outcome"] = event_kind
                    continue
            if kind == "reply":
                text = " ".join(str(decision.get("text", "")).split())
                if not text:
                    record["kind"] = "wait"
                    self._decided(record)
                    return
                record.update(text=text, first_token_ms=_ms(decision.get("first_token_s")))
                self._decided(record)
                self.history.append({"role": "agent", "text": text})
                await self.host.send_event("reply", text)
                return
            if kind == "wait":
                self._decided(record)
                self.history.append({"role": "wait"})  # the reasoner sees that it waited
                return
            record["error"] = str(decision.get("text", ""))[:200]
            self._decided(record)
            self.host.timeline.count("background_errors")
            await self.host.send_event("reply", COULD_NOT)
            return
        self._decided({"kind": "error", "error": "too many tool calls in a row"})
        await self.host.send_event("reply", COULD_NOT)

    def _decided(self, record: dict[str, Any]) -> None:
        self.decisions.append(record)
        self.host.timeline.count(f"background_{record['kind']}")
        self.host.timeline.add(
            "background_decision", **{("decision" if k == "kind" else k): v for k, v in record.items()}
        )
        logger.info(
            "call %s: background decided %s in %s ms",
            self.host.call_id,
            record["kind"],
            record.get("ms"),
            extra={"call_id": self.host.call_id, "decision": record["kind"], "tool": record.get("tool")},
        )


def _ms(seconds: object) -> int | None:
    return round(float(seconds) * 1000) if isinstance(seconds, int | float) else None


def _tool_entry(name: str, kind: str, payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        value = payload
    if kind == "tool_result":
        return {"role": "tool_result", "tool": name, "result": value}
    return {"role": "tool_error", "tool": name, "error": value if isinstance(value, str) else str(value)}
