"""The background model's tasks: hearing (a caller speech segment -> words) and reasoning (the call
so far, under the agent's instructions and tool schemas -> a tool call, a reply, or nothing yet).

They are tasks like the tools (`workers.tools.tool`): the same request (`workers.protocol.
ToolRequest`: an idempotency key, the call, the reply channel), the same outcome stored first
writer wins under the key and published on the reply channel, the same redelivery when a worker
dies; only their names and queues are their own (`HEAR_TASK` on `hearing`, `REASON_TASK` on
`reasoning`). Each worker process loads its model once, on its first task: the recogniser
(`workers.hearing.Transcriber`, Whisper base by default, from packages) or the reasoner
(`workers.reasoner`, SmolLM2 through llama.cpp from a package, or any OpenAI-compatible endpoint
set by `PARLEY_REASONER_URL`). Their work, `hear_audio` and `decide` (JSON arguments in, the
outcome out, any model passed in), is plain functions, so it runs in-process too.

A reasoner's failure is an outcome too (`{"kind": "error"}`): the call hears "I could not do
that" and goes on. Logs carry call ids, timings and outcome kinds, never words, arguments or
results.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from typing import Any

from celery import signals

from workers import protocol
from workers.protocol import HEAR_TASK, REASON_TASK, ToolRequest
from workers.store import ShopStore
from workers.tools import tool

log = logging.getLogger(__name__)

MAX_SEGMENT_S = 30.0  # Whisper's window: a longer segment is refused (the segmenter cuts at 15 s)


class _Models:
    """Per-process models (a prefork child loads its own, lazily, after the fork)."""

    pid = -1
    transcriber = None
    reasoner = None

    @classmethod
    def here(cls) -> type[_Models]:
        if cls.pid != os.getpid():
            cls.pid, cls.transcriber, cls.reasoner = os.getpid(), None, None
        return cls


def transcriber():
    models = _Models.here()
    if models.transcriber is None:
        from workers.hearing import Transcriber

        threads = int(os.environ.get("PARLEY_HEARING_THREADS", "1"))
        model = os.environ.get("PARLEY_HEARING_MODEL", "base")  # workers.hearing.MODELS
        models.transcriber = Transcriber(model=model, threads=threads)
    return models.transcriber


def reasoner():
    models = _Models.here()
    if models.reasoner is None:
        from workers.reasoner_settings import ReasonerSettings, reasoner_from_settings

        models.reasoner = reasoner_from_settings(ReasonerSettings())
    return models.reasoner


@signals.worker_process_init.connect
def _warm(**_: Any) -> None:
    """A worker started for the background queues (`PARLEY_BACKGROUND_WARM=hearing,reasoning`)
    loads its model in each new process, before the first segment waits for it."""
    warm = os.environ.get("PARLEY_BACKGROUND_WARM", "")
    try:
        if "hearing" in warm:
            transcriber().transcribe(b"\0\0" * 16_000, 16_000)
        if "reasoning" in warm:
            # The model only: an agent's shared prompt start is evaluated by its first decision
            # and reused after (llama.cpp keeps the longest common prefix); an endpoint loads nothing.
            getattr(reasoner(), "warm", lambda: None)()
    except Exception as exc:  # the first task loads it again and says what is wrong
        log.warning("background model not loaded ahead: %s", type(exc).__name__)


def hear_audio(arguments: Any, model=None, call_id: str = "") -> dict[str, Any]:
    """The hearing task's work: its JSON arguments ({"audio": base64 int16 at 16 kHz, "segment": N})
    -> its outcome. `model`: a `workers.hearing.Transcriber` (default: this process's). In-process
    callers (agent.background_local) call it as the task does."""
    args = arguments if isinstance(arguments, dict) else {}
    try:
        audio = base64.b64decode(args.get("audio", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        return protocol.error("audio must be base64 of 16-bit PCM")
    if not audio or len(audio) % 2 or len(audio) > MAX_SEGMENT_S * 32_000:
        return protocol.error(f"audio must be 16-bit PCM at 16 kHz, at most {MAX_SEGMENT_S:.0f} s")
    try:
        heard = (model or transcriber()).transcribe(audio, 16_000)
    except ValueError as exc:
        return protocol.error(str(exc)[:200])
    log.info(
        "heard a segment: %.2f s of audio in %.3f s",
        heard.audio_s,
        heard.work_s,
        extra={"call_id": call_id, "segment": args.get("segment")},
    )
    return protocol.result(
        {"text": heard.text, "audio_s": round(heard.audio_s, 3), "work_s": round(heard.work_s, 4)}
    )


@tool("hear", task_name=HEAR_TASK, soft_time_limit_s=10.0, time_limit_s=12.0, redelivery_safe=True)
def hear(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return hear_audio(request.arguments, call_id=request.call_id)


def brief_from(raw: dict[str, Any]):
    """The reasoner's `Brief` from a task's JSON (agent.background.brief_for wrote it)."""
    from workers.reasoner import Brief, ToolSpec

    return Brief(
        name=str(raw["name"]),
        instructions=str(raw["instructions"]),
        greeting=str(raw.get("greeting", "")),
        tools=tuple(
            ToolSpec(
                str(t["name"]),
                str(t.get("description", "")),
                dict(t["parameters"]),
                tuple(str(k) for k in t.get("result_keys", ())),
            )
            for t in raw.get("tools", ())
        ),
        examples=tuple(e for e in raw.get("examples", ()) if isinstance(e, dict)),
    )


def decide(arguments: Any, model=None, call_id: str = "") -> dict[str, Any]:
    """The reasoning task's work: its JSON arguments ({"brief", "history"}) -> its outcome.
    `model`: a `workers.reasoner.Reasoner` (default: this process's)."""
    args = arguments if isinstance(arguments, dict) else {}
    try:
        brief = brief_from(args["brief"])
        history = [h for h in args["history"] if isinstance(h, dict)]
    except (KeyError, TypeError, ValueError):
        return protocol.error("reasoning needs a brief and a history")
    decision = (model or reasoner()).decide(brief, history)
    log.info(
        "reasoned: %s in %.3f s",
        decision.kind,
        decision.work_s,
        extra={"call_id": call_id, "decision": decision.kind, "tool": decision.tool},
    )
    return protocol.result(
        {
            "kind": decision.kind,
            "tool": decision.tool,
            "arguments": decision.arguments,
            "text": decision.text,
            "work_s": round(decision.work_s, 4),
            "first_token_s": decision.first_token_s,
        }
    )


@tool("reason", task_name=REASON_TASK, soft_time_limit_s=20.0, time_limit_s=25.0, redelivery_safe=True)
def reason(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return decide(request.arguments, call_id=request.call_id)
