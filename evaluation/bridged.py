"""Bridged translation calls through a real gateway and model server, scored per direction.

`run_bridged_scenarios` starts the real model server in-process (`evaluation.run.model_server`)
and a real websocket gateway in front of it (`gateway`, a factory the composition root passes in:
evaluation sits below `parley` and cannot build one itself), then runs each two-party scenario
(`Scenario.bridge`) as a bridged call (`run_bridged_call`): party A opens a room over the native
protocol (`telephony.ws.client.NativeCallClient`), party B joins it by its id, and both stream
their WAVs in real time, 20 ms a message, on one clock (t = 0: both files' first sample), then
`tail_s` of silence. What each party hears is recorded on that clock, at the arrival time of every
packet, so the gateway's and the model's delays are in it. Party A hangs up at the end, and the
notice B then hears is cut off.

The interpreters run with ducking off by default (`ducking_db=None`): what a listener hears is
the interpreter alone. With the speaker's voice under it, a recogniser forced to the listener's
language would also transcribe (or translate) the original speech and credit it to the interpreter.

`evaluate_bridged` scores both directions of every call with `evaluation.bridge_metrics`: A -> B
(`translate-en-es`: A's English, B hears Spanish) and B -> A (`translate-es-en`). The recogniser
of the listener's language runs on what the listener heard: Whisper tiny.en for English, the
multilingual Whisper base for Spanish (`evaluation.asr`); without the `eval` extra, chrF is
scored on the interpreter's own text only (`text_chrf`, always reported), and a note says so.
Beside it, `reference_chrf`: the same recogniser on the references spoken by the interpreter's
trained voice (espeak-ng, where installed), the heard chrF a perfect interpreter would get.

Knows nothing of HTML or plots (`evaluation.report`) nor of how scenarios are generated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.config import AgentRegistry, StaticAgentRegistry, get_agent
from evaluation.bridge_metrics import (
    DirectionResult,
    direction_goals,
    direction_result,
    pooled_chrf,
    summarize_direction,
)
from evaluation.metrics import chrf_from_stats, chrf_stats, speech_intervals
from evaluation.run import model_server, run_longest_first
from evaluation.scenarios import SAMPLE_RATE, Scenario
from telephony.ws.client import NativeCallClient

log = logging.getLogger(__name__)

# (model server url, the agents) -> a running gateway's base url ("ws://host:port"), while entered.
GatewayFactory = Callable[[str, AgentRegistry], AbstractAsyncContextManager[str]]

CHUNK = SAMPLE_RATE // 50  # 20 ms a media message
TAIL_S = 1.0  # silence streamed after the scenario's audio (generated scenarios end in their own)
JOIN_TIMEOUT_S = 20.0  # to open the room, join it and start both interpreters
LATE_S = 0.1  # a chunk sent this long after its time counts as late
DIRECTIONS = (("a", "b"), ("b", "a"))  # (speaker, listener)


def direction_name(speaker: str, listener: str) -> str:
    return f"{speaker}_to_{listener}"


@dataclass(eq=False)
class BridgedRecord:
    """What each party of one bridged call heard, on the scenario's clock."""

    scenario: Scenario
    heard: dict[str, np.ndarray]  # party -> [n] int16 16 kHz: sample i at i / 16000 s of the call
    text: dict[str, str]  # party -> the text the interpreter speaking to it wrote
    session: dict  # counters: per party packets and close, late chunks, join time

    @property
    def agents(self) -> dict[str, str]:
        """party -> the interpreter of that party's speech."""
        assert self.scenario.bridge is not None
        return {"a": self.scenario.agent, "b": self.scenario.bridge.agent}


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _room_event(client: NativeCallClient, status: str) -> dict | None:
    return next((e for e in client.events if e["kind"] == "room" and e.get("status") == status), None)


async def _open_room(url: str, agent: str, timeout: float) -> tuple[NativeCallClient, str]:
    a = await NativeCallClient(url + "/stream", agent, parameters={"room": "new"}).open()
    await a.wait_for(lambda: _room_event(a, "waiting") is not None or a.closed is not None, timeout)
    waiting = _room_event(a, "waiting")
    if waiting is None:
        await a.close()
        raise RuntimeError(f"the gateway did not open a room: {a.closed}")
    return a, str(waiting["room"])


async def stream_paced(clients: Sequence[NativeCallClient], audio: Sequence[np.ndarray], start: float) -> int:
    """Send each client its int16 audio, `CHUNK` samples a message, chunk i at `start` + i * 20 ms
    (the clients' clock), all clients' chunk i together; a closed client gets nothing more.
    Returns how many chunk times were missed by more than `LATE_S` (a busy machine)."""
    clock = clients[0].clock
    late = 0
    for i in range(max(len(x) for x in audio) // CHUNK):
        due = start + i * CHUNK / SAMPLE_RATE
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > LATE_S:
            late += 1
        for client, x in zip(clients, audio):
            if client.closed is None:
                await client.send_audio(x[i * CHUNK : (i + 1) * CHUNK])
    return late


def _heard(client: NativeCallClient, start: float, n: int) -> np.ndarray:
    """What the client heard from `start` (its clock) on, `n` samples."""
    offset = int(round((start - client.t0) * SAMPLE_RATE))
    part = client.agent_audio[offset : offset + n]
    out = np.zeros(n, np.int16)
    out[: len(part)] = part
    return out


def _party(client: NativeCallClient) -> dict:
    return {
        "agent_packets": client.counters["agent_packets"],
        "chunks_sent": client.counters["chunks_sent"],
        "transcripts": client.counters["transcript"],
        "closed": list(client.closed) if client.closed else None,
    }


async def run_bridged_call(
    scenario: Scenario, url: str, *, tail_s: float = TAIL_S, join_timeout_s: float = JOIN_TIMEOUT_S
) -> BridgedRecord:
    """One bridged scenario as one bridged call on the gateway at `url` (module docstring)."""
    if scenario.bridge is None:
        raise ValueError(f"{scenario.name}: not a bridged scenario (no `bridge`)")
    t = time.monotonic()
    a, room = await _open_room(url, scenario.agent, join_timeout_s)
    b = NativeCallClient(url + "/stream", scenario.bridge.agent, parameters={"room": room})
    try:
        await b.open()
        for c in (a, b):
            await c.wait_for(
                lambda c=c: _room_event(c, "joined") is not None or c.closed is not None, join_timeout_s
            )
            if c.closed is not None:
                raise RuntimeError(f"{scenario.name}: a party was refused: {c.closed}")
        joined_s = time.monotonic() - t
        n = round(scenario.duration_s * SAMPLE_RATE) + round(tail_s * SAMPLE_RATE)
        n = -(-n // CHUNK) * CHUNK
        audio = []
        for x in (scenario.audio, scenario.bridge.audio):
            padded = np.zeros(n, np.int16)
            padded[: len(x)] = _pcm16(x)
            audio.append(padded)
        start = a.clock() + 0.05
        late = await stream_paced((a, b), audio, start)
        cut = {p: list(c.closed) for p, c in (("a", a), ("b", b)) if c.closed is not None}
        heard = {"a": _heard(a, start, n), "b": _heard(b, start, n)}
        text = {p: "".join(str(e.get("text") or "") for e in c.transcript) for p, c in (("a", a), ("b", b))}
    finally:
        await a.stop()  # A hangs up; B hears the notice (after the recording) and is hung up
        if b.ws is not None:
            try:
                await b.wait_for(lambda: b.closed is not None, 10.0)
            except TimeoutError:
                log.warning("bridged scenario %s: party B was not hung up within 10 s", scenario.name)
            await b.close()
    session = {
        "join_s": round(joined_s, 3),
        "seconds": round(n / SAMPLE_RATE, 3),
        "late_chunks": late,
        "cut_short": cut,  # party -> (code, reason) of a call that ended before the scenario did
        "parties": {"a": _party(a), "b": _party(b)},
    }
    return BridgedRecord(scenario, heard, text, session)


def bridge_registry(scenarios: Sequence[Scenario], ducking_db: float | None = None) -> StaticAgentRegistry:
    """The shipped interpreters the scenarios name, each with `ducking_db` (None: no ducking)."""
    names = sorted({n for sc in scenarios if sc.bridge is not None for n in (sc.agent, sc.bridge.agent)})
    return StaticAgentRegistry(
        [get_agent(n).model_copy(update={"bridge_ducking_db": ducking_db}) for n in names]
    )


async def run_bridged_scenarios(
    model,
    scenarios: Sequence[Scenario],
    gateway: GatewayFactory,
    *,
    max_calls: int = 2,
    device: str = "cpu",
    model_name: str = "model",
    ducking_db: float | None = None,
    tail_s: float = TAIL_S,
) -> tuple[list[BridgedRecord], dict]:
    """Every bridged scenario as a bridged call, up to `max_calls` at once (two model-server slots
    each, the longest first), through one model server and one gateway. Returns the records in
    scenario order and the server's health at the end."""
    calls = max(1, min(max_calls, len(scenarios)))
    registry = bridge_registry(scenarios, ducking_db)
    async with model_server(model, 2 * calls, device=device, model_name=model_name) as server:
        async with gateway(server.url, registry) as url:

            async def one(i: int, sc: Scenario) -> BridgedRecord:
                return await run_bridged_call(sc, url, tail_s=tail_s)

            records = await run_longest_first(scenarios, calls, one, "bridged scenario")
        health = server.health()
    return records, health


# ----------------------------------------------------------------------------------------- scoring


def _recognisers(languages: set[str], notes: list[str]) -> dict[str, Any]:
    """A recogniser per listener language, or none (with a note) where it is not installed."""
    try:
        from evaluation import asr
    except ImportError as exc:
        notes.append(f"chrF of what the listeners hear not measured ({exc}); text_chrf only.")
        return {}
    out = {}
    for lang in sorted(languages):
        model = asr.DEFAULT_MODEL if lang == "en" else asr.MULTILINGUAL
        reason = asr.unavailable_reason(model)
        if reason:
            notes.append(f"chrF of what the {lang} listeners hear not measured: {reason}; text_chrf only.")
            continue
        out[lang] = asr.Recogniser(model, threads=2, language=lang)
        notes.append(f"Listeners hearing {lang!r} are recognised with Whisper {model}.")
    return out


def _voice_references(notes: list[str]):
    """A function (references, language) -> the references spoken by the interpreter's trained
    voice (corpus.render.AGENT_VOICES, espeak-ng) with 0.3 s between them, or None (with a note)
    when espeak-ng is not installed. The recogniser's chrF on it is what a perfect interpreter
    with that voice would score: the ceiling of the heard chrF."""
    try:
        from corpus.render import AGENT_RATE_WPM, AGENT_VOICES
        from corpus.tts import Espeak

        tts = Espeak.instance()
    except (ImportError, OSError) as exc:
        notes.append(f"No reference chrF (the references in the agent voice): espeak-ng unavailable ({exc}).")
        return None

    def speak(references: Sequence[str], language: str) -> np.ndarray:
        gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
        parts = [
            tts.synthesize_16k(r, AGENT_VOICES[language], AGENT_RATE_WPM).audio
            for r in references
            if r.strip()
        ]
        return np.concatenate([gap] + [x for p in parts for x in (p, gap)])

    return speak


def _direction(
    rec: BridgedRecord, speaker: str, listener: str, recognisers: dict, speak=None
) -> tuple[DirectionResult, dict]:
    """One direction of one call: the speaker's phrases and references against what the listener
    heard; the details go to the call's entry in results.json."""
    sc = rec.scenario
    assert sc.bridge is not None
    ann = {"a": sc.annotations, "b": sc.bridge.annotations}
    language = get_agent(rec.agents[speaker]).translation_target or "en"
    heard = rec.heard[listener]
    heard_iv = speech_intervals(heard, SAMPLE_RATE)
    heard_text = None
    if language in recognisers:
        heard_text = recognisers[language].transcribe(heard.astype(np.float32) / 32768.0, SAMPLE_RATE)
    result = direction_result(
        ann[speaker].caller_speech,
        ann[speaker].translations,
        ann[listener].caller_speech,
        heard_iv,
        heard_text,
        rec.text[listener],
    )
    detail = {
        "interpreter": rec.agents[speaker],
        "language": language,
        "heard_speech": [[round(s, 3), round(e, 3)] for s, e in heard_iv],
        "heard_text": heard_text,
        "interpreter_text": rec.text[listener],
        "references": list(ann[speaker].translations),
        "ear_voice_spans": [None if x is None else round(x, 3) for x in result.spans],
        "chrf": result.chrf,
        "text_chrf": result.text_chrf,
        "overlap_s": round(result.overlap_s, 3),
        "listener_speech_s": round(result.listener_s, 3),
    }
    if speak is not None and language in recognisers and ann[speaker].translations:
        voiced = recognisers[language].transcribe(speak(ann[speaker].translations, language), SAMPLE_RATE)
        detail["reference_asr_text"] = voiced
        detail["reference_chrf_stats"] = chrf_stats(voiced, " ".join(ann[speaker].translations))
    return result, detail


def evaluate_bridged(
    records: Sequence[BridgedRecord], *, asr: bool = True, notes: list[str] | None = None
) -> dict:
    """Both directions of every call scored (`evaluation.bridge_metrics`), as the results dict
    `evaluation.report.write_bridged_report` writes: {"calls": [...], "summary": {direction:
    {...}}, "goals": {direction: [...]}, "notes": [...]}; directions are "a_to_b" and "b_to_a"."""
    notes = notes if notes is not None else []
    languages = {get_agent(a).translation_target or "en" for r in records for a in r.agents.values()}
    recognisers = _recognisers(languages, notes) if asr else {}
    speak = _voice_references(notes) if recognisers else None
    if not asr:
        notes.append("Recogniser skipped (--no-asr): chrF on the interpreters' own text only (text_chrf).")
    pooled: dict[str, list[DirectionResult]] = {direction_name(*d): [] for d in DIRECTIONS}
    ceiling: dict[str, list] = {direction_name(*d): [] for d in DIRECTIONS}
    calls = []
    for rec in records:
        call: dict[str, Any] = {
            "name": rec.scenario.name,
            "agents": rec.agents,
            "duration_s": round(rec.scenario.duration_s, 3),
            "session": rec.session,
            "speech": {
                "a": [list(iv) for iv in rec.scenario.annotations.caller_speech],
                "b": [list(iv) for iv in rec.scenario.bridge.annotations.caller_speech],
            },
        }
        for speaker, listener in DIRECTIONS:
            result, detail = _direction(rec, speaker, listener, recognisers, speak)
            pooled[direction_name(speaker, listener)].append(result)
            stats = detail.pop("reference_chrf_stats", None)
            if stats is not None:
                ceiling[direction_name(speaker, listener)].append(stats)
                detail["reference_chrf"] = chrf_from_stats(stats)
            call[direction_name(speaker, listener)] = detail
        calls.append(call)
    summary = {}
    for (speaker, _), (name, results) in zip(DIRECTIONS, pooled.items()):
        agents = {r.agents[speaker] for r in records}
        summary[name] = {
            "interpreter": ", ".join(sorted(agents)),
            **summarize_direction(results),
            "reference_chrf": pooled_chrf(ceiling[name]),
        }
    cut = [r.scenario.name for r in records if r.session.get("cut_short")]
    if cut:
        notes.append(
            f"{len(cut)} of {len(records)} calls ended before their scenario did (an interpreter's "
            f"end_call, or a refusal): what followed was heard as silence ({', '.join(cut)})."
        )
    goals = {name: direction_goals(s) for name, s in summary.items()}
    return {"calls": calls, "summary": summary, "goals": goals, "notes": notes}
