"""Running scenarios through the real model server, exactly as calls are served, and scoring them.

`run_scenarios` starts a `ModelServer` in-process (`model_server`, which the bridged calls of
evaluation.bridged share) and drives one `agent.CallSession` per scenario through an `EvalLeg`
(`run_call`); `evaluate` scores the records. How calls are scored, the echo
and the baseline: README.md "Scenario format". Invariant: micro-turn k reads caller frame k and its
audio is laid over [(k+1)N, (k+2)N) of the call clock (N = 3200 samples = 200 ms) whatever the
wall-clock jitter; a skipped micro-turn stays silent and is counted. The cascade baseline and the
recogniser are optional, imported lazily and skipped with a note when missing. With `background`
(`parley eval --background`) each call runs the background model beside it and its tool calls
are the ones scored (`evaluation.background_run`).

This module knows nothing of HTML or plots (`evaluation.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.background import BackgroundSettings, BackgroundTasks
from agent.config import get_agent
from agent.model_client import ModelRefused, ToolCall
from agent.session import CallSession, ToolEvent
from corpus.effects import db_to_gain
from evaluation import background_run
from evaluation.interjections import InterjectionPlayer
from evaluation.metrics import (
    MICRO_TURN_S,
    AgentTrack,
    Annotations,
    evaluate_call,
    merge_intervals,
    normalize_arguments,
    normalize_words,
    speech_intervals,
    summarize,
    word_errors,
)
from evaluation.scenarios import SAMPLE_RATE, Interjection, Scenario
from model.protocol import FRAME_SAMPLES
from telephony.leg import CallInfo

log = logging.getLogger(__name__)

N = FRAME_SAMPLES  # samples per micro-turn
CUT_ECHO_S = 1.0  # how far past a false stop the agent's echo is taken to run (> metrics' 0.25 s tail)


# ---------------------------------------------------------------------------------------- the leg


class EvalLeg:
    """A `telephony.leg.Leg` that records the agent's side on the caller's clock: micro-turn k's
    audio (the turn message says which frame k it read) is laid at [(k+1)N, (k+2)N), as an ideal
    transport one micro-turn behind the caller would play it. It accepts transfers."""

    def __init__(self, call_id: str, agent: str, n_frames: int) -> None:
        self.info = CallInfo(call_id, "eval", agent, SAMPLE_RATE, "pcm16")
        self.n_frames = n_frames
        self.audio = np.zeros((n_frames + 1) * N, np.int16)  # micro-turn k at [(k+1)N, (k+2)N)
        self.floor: dict[int, str] = {}
        self.text: dict[int, str] = {}
        self.seq_frame: dict[int, int] = {}
        self.answered = -1  # the latest caller frame a turn has answered
        self.interrupts = self.utterances = self.stray_frames = 0
        self.transfers: list[str] = []
        self.hangup_reason: str | None = None
        self._frame: int | None = None
        self._changed = asyncio.Event()

    def notify(self, kind: str, data: Mapping[str, object]) -> None:
        if kind == "turn":
            self._frame = int(data["frame"])
            self.seq_frame[int(data["seq"])] = self._frame
            if 0 <= self._frame < self.n_frames:
                self.floor[self._frame] = str(data["floor"])
        elif kind == "transcript" and self._frame is not None:
            self.text[self._frame] = self.text.get(self._frame, "") + str(data["text"])

    def play(self, frame: np.ndarray) -> None:
        k = self._frame
        if k is None or not 0 <= k < self.n_frames or len(frame) != N:
            self.stray_frames += 1
            return
        self.audio[(k + 1) * N : (k + 2) * N] = frame
        self.answered = max(self.answered, k)
        self._changed.set()

    def utterance_end(self) -> None:
        self.utterances += 1

    def interrupt(self) -> None:
        self.interrupts += 1

    async def transfer(self, target: str) -> bool:
        self.transfers.append(target)
        return True

    async def hangup(self, code: int, reason: str) -> None:
        self.hangup_reason = self.hangup_reason or reason
        self._changed.set()

    async def wait_answered(self, frame: int, timeout: float) -> bool:
        """Until a turn has answered caller frame `frame` (or a later one); False on timeout."""

        async def wait() -> None:
            while self.answered < frame and self.hangup_reason is None:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return self.answered >= frame


# -------------------------------------------------------------------------------------- the tools


class ScenarioToolRouter:
    """Answers tool calls from a scenario's "tool_results" (evaluation only: calls go to Celery):
    same name and arguments equal after `metrics.normalize_arguments`, after their delay, else a
    tool_error "unknown request". `end_call` and `transfer` stay the session's own, as in a call."""

    def __init__(self, scenario: Scenario, time_scale: float = 1.0) -> None:
        self.results = scenario.tool_results
        self.time_scale = time_scale
        self.unmatched = 0
        self.answers: list[dict] = []  # per call: id, name, arguments, and result or error

    async def call(self, session: CallSession, call: ToolCall) -> ToolEvent:
        answer = {"id": call.id, "name": call.name, "arguments": call.arguments}
        if call.arguments is not None:
            args = normalize_arguments(call.arguments)
            for r in self.results:
                if r.name == call.name and normalize_arguments(r.arguments) == args:
                    await asyncio.sleep(r.delay_s * self.time_scale)
                    if r.error is not None:
                        self.answers.append({**answer, "error": r.error})
                        return ToolEvent.error(call, r.error)
                    self.answers.append({**answer, "result": r.result})
                    return ToolEvent.result(call, r.result)
        self.unmatched += 1
        self.answers.append({**answer, "error": "unknown request"})
        return ToolEvent.error(call, "unknown request")


# ---------------------------------------------------------------------------------------- one call


@dataclass(eq=False)
class CallRecord:
    """What happened in one scenario's call, on the caller's clock."""

    scenario: Scenario
    agent_audio: np.ndarray  # [(n+1)N] int16: micro-turn k's audio at [(k+1)N, (k+2)N)
    heard: np.ndarray  # [nN] int16: the caller frames as sent (with the echo)
    floor: list[str]  # per caller frame; "listen" for frames no turn answered
    text: dict[int, str]  # caller frame -> text written in that micro-turn
    tool_calls: list[dict]  # {"frame", "t", "name", "by", "arguments" | "arguments_raw"}
    session: dict  # counters: frames sent, turns, missing frames, how it ended, ...
    interjections: list[float | None] = field(default_factory=list)  # per scenario interjection: onset (s)
    background: dict | None = None  # the background model's part (background_run.background_record)

    @property
    def n_frames(self) -> int:
        return len(self.floor)


def _frame(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(N, np.float32)
    part = x[k * N : (k + 1) * N]
    out[: len(part)] = part
    return out


async def run_call(
    scenario: Scenario,
    url: str,
    *,
    tick_s: float = MICRO_TURN_S,
    seed: int = 0,
    temperature: float | None = None,
    connect_tries: int = 50,
    background: BackgroundTasks | None = None,
    background_settings: BackgroundSettings | None = None,
) -> CallRecord:
    """One scenario as one call through `CallSession` against the model server at `url`.

    Caller side: frame k (caller samples [kN, (k+1)N)) goes at t0 + k * tick. Scenario events
    (DTMF, timers) go in before the frame of the micro-turn they arrive in, as the training labels
    inject them. With "echo", frame k also carries the agent's own output, delayed and attenuated
    (one tap, wideband), so it waits for micro-turn k-1's audio; the caller's clock slips by the wait
    rather than sending the next frames in a burst (which would leave the server a frame behind for
    good). Waits are counted; a micro-turn the server skipped leaks silence.
    Interjections (`interjections.InterjectionPlayer`): before frame k the player decides from the
    agent audio that has sounded by kN (micro-turns up to k-2; the harness waits for k-2 while one
    may still start, slipping the clock likewise) whether a clip starts at kN; frame k carries the
    clips from then on. The onsets (seconds, None: not played) go in the record and its counters.
    With `background`, the session runs the background model on it (`background_settings`, enabled
    whatever the environment says) and the record holds its part."""
    n = -(-len(scenario.audio) // N)
    leg = EvalLeg(f"eval-{scenario.name}", scenario.agent, n)
    scale = tick_s / MICRO_TURN_S
    router = ScenarioToolRouter(scenario, scale)
    session = CallSession(
        get_agent(scenario.agent),
        leg,
        model_url=url,
        tool_router=router,
        call_id=leg.info.call_id,
        seed=seed,
        temperature=temperature,
        tool_timeout=max(30.0, 30.0 * scale),
        background=background,
        background_settings=(
            (background_settings or BackgroundSettings()).model_copy(update={"enabled": True})
            if background is not None
            else None
        ),
    )
    for attempt in range(connect_tries):  # a slot freed a moment ago may not be released yet
        try:
            await session.start()
            break
        except ModelRefused:
            if attempt == connect_tries - 1:
                raise
            await asyncio.sleep(0.1)
    runner = asyncio.create_task(session.run())
    loop = asyncio.get_running_loop()
    due = start = loop.time()
    sent = 0
    sent_ms: list[int] = []  # per caller frame: the session time it was sent
    heard = np.zeros(n * N, np.int16)
    echo = scenario.echo
    delay = round(echo.delay_ms * SAMPLE_RATE / 1000) if echo else 0
    gain = db_to_gain(-echo.attenuation_db) if echo else 0.0
    events = list(scenario.events)
    late_echo = late_interjection = 0  # frames sent before the agent audio they depend on was back
    player = InterjectionPlayer.for_scenario(scenario)
    for k in range(n):
        if session.ended is not None:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        x = _frame(scenario.audio, k)
        if echo is not None:
            if k and not await leg.wait_answered(k - 1, 2 * tick_s):
                late_echo += 1  # a skipped micro-turn: its echo is silence
            due = max(due, loop.time())  # after a wait the clock slips: frames never bunch up
            lo = k * N - delay
            agent = leg.audio[max(0, lo) : lo + N].astype(np.float32) / 32768.0
            x[N - len(agent) :] += gain * agent
        if player.pending:  # decided on the audio sounded by kN: micro-turns up to k-2
            if echo is None and k >= 2:
                if not await leg.wait_answered(k - 2, 2 * tick_s):
                    late_interjection += 1  # a skipped micro-turn: silence to the caller
                due = max(due, loop.time())
            player.step(k, leg.audio)
        x += player.audio(k)
        while events and int(events[0].t / MICRO_TURN_S + 1e-9) <= k:  # events, then their frame
            ev = events.pop(0)
            if ev.kind == "dtmf":
                await session.caller_dtmf(ev.payload)
            else:  # timers and system events: CallSession has no caller-side call for them (yet)
                await session._send_event(ev.kind, ev.payload)
        pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
        heard[k * N : (k + 1) * N] = pcm
        sent_ms.append(session.timeline.now_ms())
        await session.caller_frame(pcm)
        sent += 1
        due += tick_s
    await leg.wait_answered(n - 1, 5.0 + 4 * tick_s)
    await session.caller_ended("scenario over")
    await asyncio.wait_for(runner, 15.0)
    summary = session.summary()
    tool_calls = []
    for ev in summary["timeline"]["events"]:
        if ev["kind"] == "tool_call":
            frame = leg.seq_frame.get(ev["seq"], ev["seq"])
            call = {
                "frame": frame,
                "t": round((frame + 1) * MICRO_TURN_S, 3),
                "name": ev["name"],
                "by": ev.get("by", "model"),
            }
            if ev.get("arguments") is not None:
                call["arguments"] = ev["arguments"]
            else:
                call["arguments_raw"] = ev.get("arguments_raw")
            tool_calls.append(call)
    counters = summary["timeline"].get("counters", {})
    floor = [leg.floor.get(k, "listen") for k in range(n)]
    onsets = [None if t is None else round(t, 4) for t in player.onsets_s]
    bg = None
    if session.background is not None:
        reads = session.ready.events if session.ready is not None else ()
        bg = background_run.background_record(summary, sent_ms, tick_s, reads, router.answers)
    return CallRecord(
        scenario,
        leg.audio,
        heard,
        floor,
        dict(leg.text),
        tool_calls,
        {
            "frames": n,
            "frames_sent": summary["frames_sent"],
            "turns": summary["turns_received"],
            "missing_frames": n - len(leg.floor),
            "echo_late_frames": late_echo,
            "interjections": [
                {"kind": ij.kind, "onset_s": t} for ij, t in zip(scenario.interjections, onsets)
            ],
            "interjection_late_frames": late_interjection,
            "clock_slip_s": round(due - start - sent * tick_s, 3),
            "interrupts": leg.interrupts,
            "utterances": leg.utterances,
            "stray_frames": leg.stray_frames,
            "transfers": len(leg.transfers),
            "unmatched_tool_calls": router.unmatched,
            "ended": summary["ended"],
            "counters": dict(counters),
        },
        onsets,
        bg,
    )


@contextlib.asynccontextmanager
async def model_server(
    model, slots: int, *, tick_ms: int = 200, device: str = "cpu", model_name: str = "model"
) -> AsyncIterator[Any]:
    """The real model server (`model.server.ModelServer` with a `Runner` of `slots` slots) on a free
    loopback port, in this event loop, for the scenarios' calls: its `url` is where sessions go."""
    from model.runner import Runner
    from model.server import ModelServer, ModelServerSettings

    settings = ModelServerSettings(host="127.0.0.1", port=0, max_slots=slots, tick_ms=tick_ms)
    async with ModelServer(Runner(model, slots, device), settings, model_name=model_name) as server:
        yield server


async def run_scenarios(
    model,
    scenarios: Sequence[Scenario],
    *,
    max_slots: int = 8,
    tick_ms: int = 200,
    device: str = "cpu",
    model_name: str = "model",
    seed: int = 0,
    temperature: float | None = None,
    background: BackgroundTasks | None = None,
    background_settings: BackgroundSettings | None = None,
) -> tuple[list[CallRecord], dict]:
    """Every scenario through one in-process model server, up to `max_slots` calls at once (the
    longest first), each with the background model beside it when `background` is given. Returns
    the records in scenario order and the server's health at the end."""
    slots = max(1, min(max_slots, len(scenarios)))

    async def one(i: int, sc: Scenario) -> CallRecord:
        return await run_call(
            sc,
            server.url,
            tick_s=tick_ms / 1000,
            seed=seed + i,
            temperature=temperature,
            background=background,
            background_settings=background_settings,
        )

    async with model_server(model, slots, tick_ms=tick_ms, device=device, model_name=model_name) as server:
        records = await run_longest_first(scenarios, slots, one)
        health = server.health()
    return records, health


async def run_longest_first(
    scenarios: Sequence[Scenario],
    at_once: int,
    call: Callable[[int, Scenario], Awaitable],
    what: str = "scenario",
) -> list:
    """`call(i, scenario)` for every scenario, `at_once` at a time, the longest first (so no long
    call starts last); the results in scenario order."""
    gate = asyncio.Semaphore(at_once)

    async def one(i: int, sc: Scenario):
        async with gate:
            t = time.perf_counter()
            result = await call(i, sc)
            log.info(
                "%s %d/%d done in %.1f s (%.1f s of audio)",
                what,
                i + 1,
                len(scenarios),
                time.perf_counter() - t,
                sc.duration_s,
            )
            return result

    order = sorted(range(len(scenarios)), key=lambda i: -scenarios[i].duration_s)
    tasks = {i: asyncio.create_task(one(i, scenarios[i])) for i in order}
    await asyncio.gather(*tasks.values())
    return [tasks[i].result() for i in range(len(scenarios))]


# ----------------------------------------------------------------------------------------- scoring


SESSION_TOOLS = ("end_call", "transfer")  # the interaction model's own, with a background model too


def agent_track(record: CallRecord) -> AgentTrack:
    """With the background model, the tool calls made are its own and those the session acts on
    for the interaction model (`SESSION_TOOLS`); the model's other calls were refused, not made."""
    calls = record.tool_calls
    if record.background is not None:
        calls = [c for c in calls if c.get("by") == "background" or c["name"] in SESSION_TOOLS]
    return AgentTrack(
        speech=speech_intervals(record.agent_audio, SAMPLE_RATE),
        floor=list(record.floor),
        tool_calls=[(c["t"], c["name"], c.get("arguments") or {}) for c in calls],
        text="".join(record.text[k] for k in sorted(record.text)),
    )


def model_cuts(track: AgentTrack) -> list[float]:
    """Ends of the model's speech where it yielded the floor (its barge-in decision): a "yield"
    micro-turn sounds within one micro-turn of the end."""
    yields = [track.floor_start_s + MICRO_TURN_S * k for k, f in enumerate(track.floor) if f == "yield"]
    return [
        e
        for _, e in merge_intervals(track.speech)
        if any(e - 2 * MICRO_TURN_S <= t <= e + MICRO_TURN_S for t in yields)
    ]


def echo_intervals(
    speech: Sequence[tuple[float, float]],
    delay_s: float,
    ann: Annotations,
    cuts: Sequence[float] = (),
    extend_s: float = CUT_ECHO_S,
) -> list[tuple[float, float]]:
    """Where the agent's own voice is on the caller channel: each speech interval delayed by
    `delay_s`. An interval that the agent cut itself (its end is within 0.25 s of one of `cuts`:
    the model yielded, the cascade's VAD fired) while the caller was silent, i.e. with only its
    own echo on the line, stopped short of what it meant to say: its echo interval runs on
    `extend_s` longer, so `metrics.echo_false_stops` counts it. Without `cuts` every echo interval
    ends with its speech and no stop can count. (An agent that stops on its echo without any
    barge-in decision looks like one that finished: this rule cannot see it.)"""
    caller = merge_intervals(
        list(ann.caller_speech) + list(ann.backchannels) + [(t, t + MICRO_TURN_S) for t in ann.barge_ins]
    )
    out = []
    for s, e in merge_intervals(speech):
        cut = any(abs(e - c) <= 0.25 for c in cuts)
        heard = any(cs < e and ce > e - 0.5 for cs, ce in caller)  # the caller spoke just before the stop
        out.append((s + delay_s, e + delay_s + (extend_s if cut and not heard else 0.0)))
    return out


def with_interjections(
    ann: Annotations, interjections: Sequence[Interjection], onsets: Sequence[float | None]
) -> Annotations:
    """`ann` plus the interjections that were played (`onsets[i]` None: not played). A barge-in:
    its onset to barge_ins and its clip to caller_speech (a caller turn part, as the generated
    scenarios annotate barge-ins; no turn end, since nothing scripted answers it). A backchannel:
    its clip to backchannels only (caller_speech, and the caller time that agent backchannels are
    counted in, are the caller's turns, as generated)."""
    out = dataclasses.replace(
        ann,
        barge_ins=list(ann.barge_ins),
        backchannels=list(ann.backchannels),
        caller_speech=list(ann.caller_speech),
    )
    for ij, t in zip(interjections, onsets):
        if t is None:
            continue
        span = (round(t, 4), round(t + ij.duration_s, 4))
        if ij.kind == "barge_in":
            out.barge_ins = sorted(out.barge_ins + [span[0]])
            out.caller_speech = sorted(out.caller_speech + [span])
        else:
            out.backchannels = sorted(out.backchannels + [span])
    return out


def _result_dict(result) -> dict:
    d = dataclasses.asdict(result)
    d["chrf"] = result.chrf
    d["tool_accuracy"] = result.tools.accuracy
    return d


def _intervals(iv) -> list[list[float]]:
    return [[round(s, 3), round(e, 3)] for s, e in iv]


def _annotations_dict(ann: Annotations) -> dict:
    d = dataclasses.asdict(ann)
    d["tool_calls"] = [{"name": n, "arguments": a} for n, a in ann.tool_calls]
    return d


def _track_dict(track: AgentTrack) -> dict:
    return {
        "speech": _intervals(track.speech),
        "floor": track.floor,
        "floor_start_s": track.floor_start_s,
        "tool_calls": [{"t": t, "name": n, "arguments": a} for t, n, a in track.tool_calls],
        "text": track.text,
    }


def english(agent: str) -> bool:
    return get_agent(agent).translation_target is None


def evaluate(
    records: Sequence[CallRecord], *, baseline: bool = True, asr: bool = True, notes: list[str] | None = None
) -> dict:
    """Scores (and, when available, the cascade baseline and the recogniser) as the results dict
    that `evaluation.report` writes out: {"calls": [...], "summary": {...}, "notes": [...]}.
    Per record: speech from `metrics.speech_intervals` of the agent audio, the `AgentTrack` (floor
    per micro-turn, tool calls at the end of the micro-turn that made them, text), the played
    interjections added to the annotations (`with_interjections`) and counted (planned / triggered)
    per system, echo intervals from the agent's own speech and stops (`echo_intervals`). The cascade
    (`cascade.run_cascade_reactive`) speaks the agent lines, hears its own echo under the same delay
    and attenuation, and meets the interjections against its own output; the recogniser
    (`asr.Recogniser`) scores English agents only, beside its WER on the scripted agent recording."""
    notes = notes if notes is not None else []
    cascade = _cascade(notes) if baseline else None
    recogniser = _recogniser(notes) if asr else None
    calls, model_results, cascade_results, ref_errors = [], [], [], []
    agents: list[str] = []  # the scenario's agent, index by index with the results
    played: list[tuple[int, int, int | None]] = []  # per call: planned, model's, cascade's (or None)
    for rec in records:
        sc = rec.scenario
        track = agent_track(rec)
        ann = with_interjections(sc.annotations, sc.interjections, rec.interjections)
        if sc.echo is not None:
            ann.echoes = list(ann.echoes) + echo_intervals(
                track.speech, sc.echo.delay_ms / 1000, ann, model_cuts(track)
            )
        bg: dict[str, Any] = {}
        if rec.background is not None:
            bg = {
                "meant": background_run.meant(rec.background, rec.text),
                "lookups": background_run.lookups(rec.background),
                "delays": background_run.delays(rec.background, sc.annotations.turn_ends),
            }
        asr_text = None
        if (
            recogniser is not None
            and english(sc.agent)
            and (normalize_words(track.text) or normalize_words(bg.get("meant", "")))
        ):
            asr_text = recogniser.transcribe(rec.agent_audio.astype(np.float32) / 32768.0, SAMPLE_RATE)
        result = evaluate_call(ann, track, asr_text, **bg)
        model_results.append(result)
        agents.append(sc.agent)
        call: dict[str, Any] = {
            "name": sc.name,
            "agent": sc.agent,
            "duration_s": round(sc.duration_s, 3),
            "echo": dataclasses.asdict(sc.echo) if sc.echo else None,
            "annotations": _annotations_dict(ann),
            "model": {
                "metrics": _result_dict(result),
                **_track_dict(track),
                "asr_text": asr_text,
                "session": rec.session,
                **({"background": {**rec.background, "meant": bg["meant"]}} if bg else {}),
            },
        }
        if (
            recogniser is not None
            and english(sc.agent)
            and sc.reference_audio is not None
            and sc.reference_text
        ):
            ref_asr = recogniser.transcribe(sc.reference_audio, SAMPLE_RATE)
            errors, words = word_errors(sc.reference_text, ref_asr)
            ref_errors.append((sc.agent, (errors, words)))
            call["reference"] = {"asr_text": ref_asr, "errors": errors, "words": words}
        c_played = None
        if cascade is not None:
            c, c_onsets = cascade(sc)
            c_ann = with_interjections(sc.annotations, sc.interjections, c_onsets)
            c_played = sum(t is not None for t in c_onsets)
            if sc.echo is not None:
                cuts = [t.end_s for t in c.turns if t.outcome == "barged_in"]
                c_ann.echoes = list(c_ann.echoes) + echo_intervals(
                    c.track.speech, sc.echo.delay_ms / 1000, c_ann, cuts
                )
            c_result = evaluate_call(c_ann, c.track)
            cascade_results.append(c_result)
            call["cascade"] = {
                "metrics": _result_dict(c_result),
                **_track_dict(c.track),
                "interjections": c_onsets,
            }
        played.append((len(sc.interjections), sum(t is not None for t in rec.interjections), c_played))
        calls.append(call)
    summary = _pooled(model_results, cascade_results, [e for _, e in ref_errors], played)
    if cascade_results:
        notes.append(
            "The cascade baseline speaks scripted lines and makes no tool calls: its tool-call "
            "accuracy is not applicable."
        )
    # The agents do different jobs (an interpreter talks over the caller by design), so a pooled
    # figure can hide an agent that never takes its turn: each agent's calls pooled on their own.
    summary["by_agent"] = {}
    for name in sorted(set(agents)):
        mine = [i for i, a in enumerate(agents) if a == name]
        summary["by_agent"][name] = _pooled(
            [model_results[i] for i in mine],
            [cascade_results[i] for i in mine] if cascade_results else [],
            [e for a, e in ref_errors if a == name],
            [played[i] for i in mine],
        )
    return {"calls": calls, "summary": summary, "notes": notes}


def _pooled(
    model_results: Sequence,
    cascade_results: Sequence,
    ref_errors: Sequence[tuple[int, int]],
    played: Sequence[tuple[int, int, int | None]] = (),
) -> dict:
    """The summary of some calls: each system's pooled metrics, how many of the calls' interjections
    it met (`played`: per call planned, the model's, the cascade's) and the reference recording's WER."""
    planned = sum(p for p, _, _ in played)
    summary: dict[str, Any] = {"model": summarize(model_results)}
    summary["model"].update(
        n_interjections_planned=planned, n_interjections_triggered=sum(m for _, m, _ in played)
    )
    if cascade_results:
        summary["cascade"] = summarize(cascade_results)
        summary["cascade"]["tool_call_accuracy"] = None  # it speaks scripted lines, calls no tools
        summary["cascade"].update(
            n_interjections_planned=planned, n_interjections_triggered=sum(c or 0 for _, _, c in played)
        )
    words = sum(w for _, w in ref_errors)
    summary["reference"] = {"wer": sum(e for e, _ in ref_errors) / words if words else None, "words": words}
    return summary


def _cascade(notes: list[str]):
    """The baseline as a function of a scenario, or None (with a note) when it is not installed."""
    try:
        from evaluation import cascade
    except ImportError as exc:
        notes.append(f"VAD cascade baseline not available ({exc}); model only.")
        return None

    def run(sc: Scenario) -> tuple[Any, list[float | None]]:
        # One response per caller turn: the lines answering turn end k (a filler, then the answer
        # after the tool result) are said as one line. Lines before the first turn end (a greeting)
        # are left out: a cascade only speaks after it has detected a turn end.
        by_turn: dict[int, list] = {}
        for line in sc.agent_lines:
            if line.after_turn_end is not None:
                by_turn.setdefault(line.after_turn_end, []).append(line)
        lines = [
            cascade.AgentLine(" ".join(x.text for x in group), group[0].lang, k)
            for k, group in sorted(by_turn.items())
        ]
        echo = (
            {}
            if sc.echo is None
            else {"echo_gain": db_to_gain(-sc.echo.attenuation_db), "echo_delay_ms": sc.echo.delay_ms}
        )
        player = InterjectionPlayer.for_scenario(sc)
        result = cascade.run_cascade_reactive(sc.audio, lines, player, **echo)
        return result, [None if t is None else round(t, 4) for t in player.onsets_s]

    return run


def _recogniser(notes: list[str]):
    try:
        from evaluation import asr
    except ImportError as exc:
        notes.append(f"Intelligibility not measured: the recogniser is not available ({exc}).")
        return None
    reason = asr.unavailable_reason()
    if reason:
        notes.append(f"Intelligibility not measured: {reason}.")
        return None
    notes.append(
        "Intelligibility: Whisper tiny.en (English) on the support agent's audio; the "
        "interpreter's Spanish is scored by chrF only."
    )
    return asr.Recogniser()
