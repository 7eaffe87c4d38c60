"""Evaluation scenarios: a caller WAV plus a JSON of annotations, loaded, validated and generated.

A scenario directory holds, per scenario `<name>`:

    <name>.wav         the caller's audio, call clock t = 0 at its first sample: mono, any sample
                       rate, PCM16 or float32 (resampled to 16 kHz with soxr on loading)
    <name>.json        what happens in the call (below)
    <name>.agent.wav   optional: a reference recording of the scripted agent (see agent_reference)

`<name>.json` (times in seconds on the call clock; every key but "agent" optional; any key not
listed here is an error):

    {"agent": "support" | "translate-en-es",        # a shipped agent (agent/config.py)
     "annotations": {                                # evaluation.metrics.Annotations
        "turn_ends": [t, ...],                       # caller turn ends the agent should answer
        "pauses": [[s, e], ...],                     # mid-turn caller pauses: no take-over
        "backchannels": [[s, e], ...],               # caller "uh-huh"s over the agent: keep talking
        "barge_ins": [t, ...],                       # caller onsets that cut the agent: stop
        "tool_calls": [{"name": n, "arguments": {...}}, ...],   # expected, in order
        "translations": ["...", ...],                # reference translations, in order
        "echoes": [[s, e], ...],                     # agent voice already on the caller channel
        "caller_speech": [[s, e], ...]},             # the caller's own turns
     "echo": {"delay_ms": 80, "attenuation_db": 25}, # the harness leaks the agent's ACTUAL output
                                                     # back into what the model hears
     "tool_results": [{"name": n, "arguments": {...}, "result": {...} | "error": "...",
                       "delay_s": 1.5}, ...],        # answers to the model's tool calls
     "agent_lines": [{"text": "...", "after_turn_end": 0 | null, "lang": "en"}, ...],
                                                     # the scripted agent's lines (the VAD cascade
                                                     # speaks them); after_turn_end indexes the
                                                     # turn end the line answers, null = before
                                                     # any (a greeting)
     "events": [{"t": 12.4, "kind": "dtmf" | "timer" | "system", "payload": "..."}, ...],
     "agent_reference": {"wav": "<name>.agent.wav", "text": "..."},
                                                     # the scripted agent's audio and its words:
                                                     # the recogniser's reference WER
     "interjections": [{"kind": "barge_in" | "backchannel",
                        "wav": "<name>.int0.wav",    # the caller's clip (mono, any rate, like the
                                                     # caller WAV); its first sample is the onset
                        "not_before": 4.0,           # earliest onset [0]
                        "after_speech_s": 0.8,       # the agent's unbroken speech it waits for [1.0]
                        "not_after": 40.0,           # latest onset [null: while the clip fits]
                        "text": "..."}, ...],        # what the clip says, not read
     "source": {...}}                                # free-form provenance, not read

Interjections are what the fixed caller WAV cannot do: interrupt the agent under test or say
"uh-huh" over it while it is actually talking (the WAV was rendered against a scripted agent that
spoke at other times, so its barge-ins and backchannels mostly meet a silent agent and measure
nothing). The harness plays each clip reactively, added to the caller WAV, and `InterjectionPlayer`
is the rule, the same for the model (evaluation.run, on its actual output) and the VAD cascade:
at each 200 ms frame boundary t on the call clock, an interjection not played yet starts at t when
t >= not_before, t <= not_after, the clip fits in the call and overlaps none of the annotated
caller speech (caller_speech, pauses, backchannels: the caller does not talk over itself), no
other clip is playing, and the agent's audio before t holds speech for the last after_speech_s
without a break (`speaking_for`: metrics.speech_intervals' rule, the one the scoring uses), all of
it after the previous clip ended. Only audio that has sounded by t counts: the model's micro-turn
k sounds over [(k+1)N, (k+2)N), so the decision at frame k reads its micro-turns up to k-2.
Candidates are tried in list order; one that can no longer start (past not_after, or no room left)
is not triggered. A played clip is scored (evaluation.run.with_interjections) as a barge-in at
its onset plus caller speech, or as a caller backchannel over [onset, onset + clip length].

Tool results are matched on the name and the arguments after `metrics.normalize_arguments`; an
unmatched call gets a tool_error "unknown request". Loading checks every key and names the file
and the key in its error (`ScenarioError`).

`write_held_out(out_dir, n)` renders held-out synthetic calls (corpus.render with the held-out
caller voices) into this format: the caller WAV is the caller channel rendered with the agent's
voice muted (same speech, noise and line; no scripted echo: when the call had echo its parameters
go to "echo", so the model hears its own voice instead), annotations from the placed utterances
(see `scenario_from_call`), the scripted tool results, agent lines, DTMF and timer events, and the
clean scripted agent channel as `<name>.agent.wav`. Support calls also get two interjections
(`held_out_interjections`): a barge-in ("Wait, wait, that's not my order.") and a backchannel
("uh-huh"), in the call's caller voice and prosody, trimmed to their audible speech and put
through the call's line (level, band, mu-law; the WAV already has the noise), written as
`<name>.int0.wav` and `<name>.int1.wav`; drawn from the seed, so the same seed gives the same
bytes. Interpreting calls get none: their caller talks on while the interpreter speaks, by design.

This module knows nothing of the model server, metrics' rules or reports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from model.config import MICRO_TURN_SAMPLES
from evaluation.metrics import Annotations

SAMPLE_RATE = 16_000
AGENTS = ("support", "translate-en-es")
EVENT_KINDS = ("dtmf", "timer", "system")  # tool events come from the tool router, not the scenario
HELD_OUT_SEED0 = 900_000  # far from the training corpus' seeds (which also use other caller voices)
KEYS = ("agent", "annotations", "echo", "tool_results", "agent_lines", "events", "agent_reference",
        "interjections", "source")
INTERVAL_KEYS = ("pauses", "backchannels", "echoes", "caller_speech")
INTERJECTION_KINDS = ("barge_in", "backchannel")
INTERJECTION_KEYS = ("kind", "wav", "not_before", "after_speech_s", "not_after", "text")
FRAME = MICRO_TURN_SAMPLES  # interjections start on micro-turn (200 ms frame) boundaries
SPEECH_HOP = SAMPLE_RATE * 20 // 1000  # metrics.speech_intervals' 20 ms frames


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Echo:
    delay_ms: float
    attenuation_db: float


@dataclass(frozen=True)
class ToolResult:
    name: str
    arguments: dict
    result: Any = None
    error: str | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class AgentLine:
    text: str
    after_turn_end: int | None  # index into annotations.turn_ends; None: before the first
    lang: str = "en"


@dataclass(frozen=True)
class ScenarioEvent:
    t: float
    kind: str
    payload: str


@dataclass(frozen=True, eq=False)
class Interjection:
    """A caller clip the harness plays reactively (see the module docstring)."""

    kind: str  # INTERJECTION_KINDS
    wav: str  # the clip's file name, beside the scenario JSON
    audio: np.ndarray  # [S] float32 16 kHz; its first sample is the onset
    not_before: float = 0.0
    after_speech_s: float = 1.0
    not_after: float | None = None  # None: as long as the clip still fits in the call
    text: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(eq=False)
class Scenario:
    name: str
    agent: str
    audio: np.ndarray  # [S] float32, 16 kHz mono: the caller
    annotations: Annotations
    echo: Echo | None = None
    tool_results: list[ToolResult] = field(default_factory=list)
    agent_lines: list[AgentLine] = field(default_factory=list)
    events: list[ScenarioEvent] = field(default_factory=list)
    reference_audio: np.ndarray | None = None  # [S] float32 16 kHz: the scripted agent
    reference_text: str | None = None
    path: Path | None = None  # the JSON file
    interjections: list[Interjection] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def caller_busy(self) -> list[tuple[float, float]]:
        """Where the fixed caller WAV speaks (annotated): no interjection may overlap it."""
        ann = self.annotations
        return list(ann.caller_speech) + list(ann.pauses) + list(ann.backchannels)


# -------------------------------------------------------------------------------------------- WAV


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples, rate) of a mono WAV: PCM16, PCM32 or IEEE float32/64 (plain or extensible)."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ScenarioError(f"{path}: not a RIFF/WAVE file")
    fmt = body = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunk = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = chunk
        elif cid == b"data":
            body = chunk
        pos += 8 + size + (size & 1)
    if fmt is None or body is None or len(fmt) < 16:
        raise ScenarioError(f"{path}: WAV without a fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels != 1:
        raise ScenarioError(f"{path}: {channels} channels; scenario WAVs are mono")
    kinds = {(1, 16): "<i2", (1, 32): "<i4", (3, 32): "<f4", (3, 64): "<f8"}
    if (tag, bits) not in kinds:
        raise ScenarioError(f"{path}: format {tag} with {bits} bits; use PCM16 or float32")
    x = np.frombuffer(body[:len(body) // (bits // 8) * (bits // 8)], dtype=kinds[tag, bits])
    if tag == 1:
        return (x.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32), rate
    return x.astype(np.float32), rate


def load_audio(path: str | Path) -> np.ndarray:
    """A mono WAV as float32 at 16 kHz (soxr HQ)."""
    x, rate = read_wav(path)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


def write_wav(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    from corpus.tts import write_wav as write

    write(path, audio, rate)


# ------------------------------------------------------------------------------------ validation


class _Check:
    """Type checks whose errors name the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> None:
        raise ScenarioError(f"{self.path}: {key}: {problem}")

    def obj(self, value, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            self.fail(key, f"unknown keys {unknown}; allowed: {', '.join(allowed)}")
        for k in required:
            if k not in value:
                self.fail(key, f"missing key {k!r}")
        return value

    def mapping(self, value, key: str) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object, got {type(value).__name__}")
        return value

    def list(self, value, key: str) -> list:
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {type(value).__name__}")
        return value

    def number(self, value, key: str, lo: float = 0.0, hi: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            self.fail(key, f"must be a number in [{lo:g}, {hi:g}], got {value!r}")
        return float(value)

    def text(self, value, key: str) -> str:
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__}")
        return value


def _annotations(c: _Check, raw) -> Annotations:
    raw = c.obj(raw, "annotations", tuple(Annotations.__dataclass_fields__))
    for key in ("turn_ends", "barge_ins"):
        for i, t in enumerate(c.list(raw.get(key, []), f"annotations.{key}")):
            c.number(t, f"annotations.{key}[{i}]")
    for key in INTERVAL_KEYS:
        for i, iv in enumerate(c.list(raw.get(key, []), f"annotations.{key}")):
            where = f"annotations.{key}[{i}]"
            if not isinstance(iv, list) or len(iv) != 2:
                c.fail(where, f"must be a [start, end] pair, got {iv!r}")
            s, e = c.number(iv[0], where), c.number(iv[1], where)
            if e < s:
                c.fail(where, f"ends before it starts ({s:g} > {e:g})")
    for i, call in enumerate(c.list(raw.get("tool_calls", []), "annotations.tool_calls")):
        where = f"annotations.tool_calls[{i}]"
        c.obj(call, where, ("name", "arguments"), ("name",))
        c.text(call["name"], f"{where}.name")
        c.mapping(call.get("arguments", {}), f"{where}.arguments")
    for i, s in enumerate(c.list(raw.get("translations", []), "annotations.translations")):
        c.text(s, f"annotations.translations[{i}]")
    return Annotations.from_dict(raw)


def _interjections(c: _Check, raw, clips: dict[str, np.ndarray]) -> list[Interjection]:
    out = []
    for i, ij in enumerate(c.list(raw, "interjections")):
        where = f"interjections[{i}]"
        c.obj(ij, where, INTERJECTION_KEYS, ("kind", "wav"))
        if ij["kind"] not in INTERJECTION_KINDS:
            c.fail(f"{where}.kind", f"{ij['kind']!r} is not one of {', '.join(INTERJECTION_KINDS)}")
        wav = c.text(ij["wav"], f"{where}.wav")
        if wav not in clips:
            c.fail(f"{where}.wav", f"{wav} is missing")
        if not len(clips[wav]):
            c.fail(f"{where}.wav", f"{wav} holds no samples")
        not_before = c.number(ij.get("not_before", 0.0), f"{where}.not_before")
        not_after = ij.get("not_after")
        if not_after is not None:
            not_after = c.number(not_after, f"{where}.not_after", not_before)
        out.append(Interjection(ij["kind"], wav, clips[wav], not_before,
                                c.number(ij.get("after_speech_s", 1.0), f"{where}.after_speech_s", 0, 600),
                                not_after, c.text(ij.get("text", ""), f"{where}.text")))
    return out


def parse_scenario(data, path: Path, audio: np.ndarray, reference_audio: np.ndarray | None = None,
                   clips: dict[str, np.ndarray] | None = None) -> Scenario:
    """A scenario from its parsed JSON (validated; errors name `path` and the key). `clips`: the
    interjections' audio by their "wav" name (16 kHz float32)."""
    c = _Check(path)
    c.obj(data, "(top level)", KEYS, ("agent",))
    if data["agent"] not in AGENTS:
        c.fail("agent", f"unknown agent {data['agent']!r}; known: {', '.join(AGENTS)}")
    ann = _annotations(c, data.get("annotations", {}))
    echo = None
    if data.get("echo") is not None:
        e = c.obj(data["echo"], "echo", ("delay_ms", "attenuation_db"), ("delay_ms", "attenuation_db"))
        echo = Echo(c.number(e["delay_ms"], "echo.delay_ms", 0, 1000),
                    c.number(e["attenuation_db"], "echo.attenuation_db", 0, 120))
    tools = []
    for i, t in enumerate(c.list(data.get("tool_results", []), "tool_results")):
        where = f"tool_results[{i}]"
        c.obj(t, where, ("name", "arguments", "result", "error", "delay_s"), ("name",))
        if ("result" in t) == ("error" in t):
            c.fail(where, "needs exactly one of 'result' and 'error'")
        args = c.mapping(t.get("arguments", {}), f"{where}.arguments")
        tools.append(ToolResult(c.text(t["name"], f"{where}.name"), dict(args), t.get("result"),
                                c.text(t["error"], f"{where}.error") if "error" in t else None,
                                c.number(t.get("delay_s", 0.0), f"{where}.delay_s", 0, 600)))
    lines = []
    for i, line in enumerate(c.list(data.get("agent_lines", []), "agent_lines")):
        where = f"agent_lines[{i}]"
        c.obj(line, where, ("text", "after_turn_end", "lang"), ("text",))
        after = line.get("after_turn_end")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)
                                  or not 0 <= after < len(ann.turn_ends)):
            c.fail(f"{where}.after_turn_end", f"must be null or an index into annotations.turn_ends "
                                              f"(0..{len(ann.turn_ends) - 1}), got {after!r}")
        lines.append(AgentLine(c.text(line["text"], f"{where}.text"), after,
                               c.text(line.get("lang", "en"), f"{where}.lang")))
    events = []
    for i, ev in enumerate(c.list(data.get("events", []), "events")):
        where = f"events[{i}]"
        c.obj(ev, where, ("t", "kind", "payload"), ("t", "kind"))
        if ev["kind"] not in EVENT_KINDS:
            c.fail(f"{where}.kind", f"{ev['kind']!r} is not one of {', '.join(EVENT_KINDS)}")
        events.append(ScenarioEvent(c.number(ev["t"], f"{where}.t"), ev["kind"],
                                    c.text(ev.get("payload", ""), f"{where}.payload")))
    ref_text = None
    if data.get("agent_reference") is not None:
        ref = c.obj(data["agent_reference"], "agent_reference", ("wav", "text"), ("wav", "text"))
        c.text(ref["wav"], "agent_reference.wav")
        ref_text = c.text(ref["text"], "agent_reference.text")
    interjections = _interjections(c, data.get("interjections", []), clips or {})
    return Scenario(path.stem, data["agent"], audio, ann, echo, tools, lines,
                    sorted(events, key=lambda e: e.t), reference_audio, ref_text, path, interjections)


def load_scenario(json_path: str | Path) -> Scenario:
    """`<name>.json` and `<name>.wav` (and the agent reference, when named) beside it."""
    path = Path(json_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON ({exc})") from None
    wav = path.with_suffix(".wav")
    if not wav.is_file():
        raise ScenarioError(f"{path}: the caller audio {wav.name} is missing")
    reference = None
    if isinstance(data, dict) and isinstance(data.get("agent_reference"), dict) \
            and isinstance(data["agent_reference"].get("wav"), str):
        ref_path = path.parent / data["agent_reference"]["wav"]
        if not ref_path.is_file():
            raise ScenarioError(f"{path}: agent_reference.wav: {ref_path.name} is missing")
        reference = load_audio(ref_path)
    clips = {}
    raw = data.get("interjections") if isinstance(data, dict) else None
    for ij in raw if isinstance(raw, list) else []:
        if isinstance(ij, dict) and isinstance(ij.get("wav"), str) and ij["wav"] not in clips:
            clip_path = path.parent / ij["wav"]
            if clip_path.is_file():  # a missing one is refused by parse_scenario, naming the key
                clips[ij["wav"]] = load_audio(clip_path)
    return parse_scenario(data, path, load_audio(wav), reference, clips)


def load_scenarios(directory: str | Path, limit: int | None = None) -> list[Scenario]:
    """Every `<name>.json` of `directory` in name order (`<name>.agent.json` is not a thing)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(f"{directory}: no such scenario directory")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ScenarioError(f"{directory}: no scenarios (<name>.json + <name>.wav)")
    return [load_scenario(p) for p in files[:limit]]


# --------------------------------------------------------------------------------- interjections


def speaking_for(agent: np.ndarray, t: int, seconds: float, since: int = 0) -> bool:
    """Has the agent been speaking over the last `seconds` before sample `t` without a break, all of
    it at or after sample `since`? `agent`: its audio on the call clock (float or int), of which
    only [0, t) is read. Speech is `metrics.speech_intervals`' (20 ms frames at -45 dBFS, gaps under
    150 ms bridged): read over a window `seconds` + 0.2 s long on its 20 ms grid, which decides as the
    whole track would (`t` on the grid: a frame boundary)."""
    from evaluation.metrics import speech_intervals

    need = int(round(seconds * SAMPLE_RATE))
    if t - need < since or t <= 0:
        return False
    lo = max(0, (t - need - FRAME) // SPEECH_HOP * SPEECH_HOP)
    window = agent[lo:t]
    if len(window) < t - lo:  # the track ends before t: silence there
        return False
    iv = speech_intervals(window, SAMPLE_RATE)
    return bool(iv) and iv[-1][1] * SAMPLE_RATE >= t - lo - 0.5 \
        and lo + iv[-1][0] * SAMPLE_RATE <= t - need + 0.5


class InterjectionPlayer:
    """Plays a scenario's interjections against an agent as its output comes (the module docstring
    has the rule). Frame by frame, k = 0, 1, ...: `step(k, agent)` decides whether one starts at
    t = k * FRAME, from `agent` (the agent's audio on the call clock, only [0, t) read);
    `audio(k)` is what the played clips add to caller frame k. `onsets[i]`: interjection i's onset
    in samples, None while (and if) it is not played. The same decisions for the same audio."""

    def __init__(self, interjections: list[Interjection], n_samples: int,
                 caller_busy: list[tuple[float, float]] = ()) -> None:
        self.interjections = list(interjections)
        self.n_samples = n_samples
        self.busy = [(int(round(s * SAMPLE_RATE)), int(round(e * SAMPLE_RATE))) for s, e in caller_busy]
        self.onsets: list[int | None] = [None] * len(self.interjections)
        self._done = [False] * len(self.interjections)
        self._free_from = 0  # the latest played clip's end

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> InterjectionPlayer:
        return cls(scenario.interjections, len(scenario.audio), scenario.caller_busy)

    @property
    def pending(self) -> bool:
        """Some interjection may still start."""
        return not all(self._done)

    @property
    def onsets_s(self) -> list[float | None]:
        return [None if t is None else t / SAMPLE_RATE for t in self.onsets]

    def step(self, k: int, agent: np.ndarray) -> int | None:
        """Decide at frame k; the index of the interjection that starts at k * FRAME, or None."""
        t = k * FRAME
        for i, ij in enumerate(self.interjections):
            if self._done[i]:
                continue
            end = t + len(ij.audio)
            if (ij.not_after is not None and t > ij.not_after * SAMPLE_RATE + 0.5) or end > self.n_samples:
                self._done[i] = True  # too late, or no room left for the clip: not played
                continue
            if t < self._free_from or t < ij.not_before * SAMPLE_RATE - 0.5:
                continue
            if any(s < end and e > t for s, e in self.busy):
                continue
            if speaking_for(agent, t, ij.after_speech_s, self._free_from):
                self.onsets[i], self._done[i], self._free_from = t, True, end
                return i
        return None

    def audio(self, k: int) -> np.ndarray:
        """[FRAME] float32: the played clips' samples in caller frame k."""
        out = np.zeros(FRAME, np.float32)
        lo = k * FRAME
        for ij, t in zip(self.interjections, self.onsets):
            if t is not None and t < lo + FRAME and t + len(ij.audio) > lo:
                a, b = max(t, lo), min(t + len(ij.audio), lo + FRAME)
                out[a - lo:b - lo] += ij.audio[a - t:b - t]
        return out

    def track(self, n: int) -> np.ndarray:
        """[n] float32: every played clip at its onset (what they add to the whole caller channel)."""
        out = np.zeros(n, np.float32)
        for ij, t in zip(self.interjections, self.onsets):
            if t is not None and t < n:
                part = ij.audio[:n - t]
                out[t:t + len(part)] += part
        return out


# -------------------------------------------------------------------------------- held-out calls


class _MutedAgent:
    """A TTS that speaks the agent's lines as silence of the same length: rendering a call with it
    gives the same caller speech, noise and line, and no echo of the agent (the renderer draws its
    random numbers the same way whatever the agent's audio holds). It keeps every caller
    utterance it synthesised, in order (the renderer synthesises Says in item order)."""

    def __init__(self, tts, agent_voices) -> None:
        self.tts, self.agent_voices = tts, set(agent_voices)
        self.caller_audio: list[np.ndarray] = []

    def synthesize_16k(self, text: str, voice: str, *args, **kw):
        result = self.tts.synthesize_16k(text, voice, *args, **kw)
        if voice in self.agent_voices:
            return dataclasses.replace(result, audio=np.zeros_like(result.audio))
        self.caller_audio.append(result.audio)
        return result


def audible_edges(call, caller_audio: list[np.ndarray]) -> dict[int, tuple[int, int]]:
    """item -> (start, end) samples of each caller Say without the synthesiser's leading and
    trailing silence (speech_intervals of the clean utterance at the synthesiser's level)."""
    from evaluation.metrics import speech_intervals

    says = sorted((s for s in call.says if s.speaker == "caller"), key=lambda s: s.item)
    if len(says) != len(caller_audio):
        raise ValueError(f"{len(caller_audio)} caller utterances synthesised for {len(says)} caller Says")
    edges = {}
    for s, x in zip(says, caller_audio):
        iv = speech_intervals(x[:s.end_sample - s.start_sample], call.sample_rate)
        edges[s.item] = (s.start_sample + round(iv[0][0] * call.sample_rate),
                         s.start_sample + round(iv[-1][1] * call.sample_rate)) if iv else (s.start_sample,
                                                                                            s.end_sample)
    return edges


def scenario_from_call(call, name: str, edges: dict[int, tuple[int, int]] | None = None) -> dict:
    """The scenario JSON of a `RenderedCall` (corpus.render). A caller Say spans its placed
    [start, end) samples, or `edges[item]` when given (`audible_edges`). The definitions:

    - caller_speech: every caller turn part [start, end) (not caller backchannels);
    - turn_ends: the end of each caller turn (its last part, after any mid-turn pauses) that an
      agent Say (turn, filler or translation) answers;
    - pauses: support calls only, the silence between two parts of one caller turn (interpreters
      are meant to speak in those);
    - backchannels: caller Says of role backchannel; barge_ins: onsets of caller Says that cut an
      agent turn (the agent's cut is onset + one micro-turn);
    - tool_calls: the scripted calls in issue order; translations: the interpreter's Spanish
      lines as spoken; agent_lines: the agent's turns and fillers as scripted (not backchannels),
      each after the latest turn end at or before its start (a translation: after the end of the
      turn its source is part of);
    - events: DTMF keys and timers as they arrived (tool results come from tool_results).
    """
    from corpus.render import BARGE_CUT_SAMPLES
    from corpus.call_script import Say, ToolCall

    sr = call.sample_rate
    items = call.script.items
    edges = edges or {}

    def sec(n: int) -> float:
        return round(n / sr, 4)

    def start(s) -> int:
        return edges.get(s.item, (s.start_sample, s.end_sample))[0]

    def end(s) -> int:
        return edges.get(s.item, (s.start_sample, s.end_sample))[1]

    says = sorted(call.says, key=lambda s: (s.start_sample, s.item))
    by_item = {s.item: s for s in says}
    caller_turns = [s for s in says if s.speaker == "caller" and s.role == "turn"]
    continued = {it.after.of for it in items if isinstance(it, Say) and it.pause_inside_turn}
    answered = {it.after.of for it in items
                if isinstance(it, Say) and it.speaker == "agent" and it.role != "backchannel"}
    turn_ends = [end(s) for s in caller_turns if s.item in answered and s.item not in continued]
    pauses = []
    if call.script.agent == "support":
        for s in caller_turns:
            it = items[s.item]
            if it.pause_inside_turn and it.after.of in by_item:
                pauses.append([sec(end(by_item[it.after.of])), sec(start(s))])
    cut_onsets = {s.cut_sample - BARGE_CUT_SAMPLES for s in says if s.speaker == "agent" and s.cut_sample}
    barge_ins = sorted(start(s) for s in says if s.speaker == "caller" and s.start_sample in cut_onsets)
    lines = []
    for s in says:
        if s.speaker == "agent" and s.role != "backchannel":
            source = items[s.item].translates
            if source is not None and source in by_item:  # a translation answers its source's turn
                after = next((k for k, t in enumerate(turn_ends) if t >= end(by_item[source])), None)
            else:
                after = max((k for k, t in enumerate(turn_ends) if t <= s.start_sample), default=None)
            lines.append({"text": items[s.item].text, "after_turn_end": after, "lang": s.lang})
    tool_results, events = [], []
    for it in items:
        if isinstance(it, ToolCall):
            answer = {"error": it.error} if it.error is not None else {"result": it.result}
            tool_results.append({"name": it.name, "arguments": it.arguments, **answer,
                                 "delay_s": it.latency_ms / 1000})
    for ev in call.events:
        if ev.kind in EVENT_KINDS:
            events.append({"t": ev.t_ms / 1000, "kind": ev.kind, "payload": ev.payload})
    scenario = {
        "agent": call.script.agent,
        "annotations": {
            "turn_ends": [sec(t) for t in turn_ends],
            "pauses": pauses,
            "backchannels": [[sec(start(s)), sec(end(s))] for s in says
                             if s.speaker == "caller" and s.role == "backchannel"],
            "barge_ins": [sec(t) for t in barge_ins],
            "tool_calls": [{"name": t.name, "arguments": json.loads(t.arguments_json)} for t in call.tool_calls],
            "translations": [s.text for s in says if s.speaker == "agent" and s.lang == "es" and s.text],
            "caller_speech": [[sec(start(s)), sec(end(s))] for s in caller_turns],
        },
        "tool_results": tool_results,
        "agent_lines": lines,
        "events": events,
        "agent_reference": {"wav": f"{name}.agent.wav",
                            "text": " ".join(s.text for s in says if s.speaker == "agent" and s.text)},
        "source": {"generator": "corpus.render", "agent": call.script.agent, "seed": call.seed,
                   "held_out": call.held_out, "agent_voice": call.agent_voice,
                   "scenario": call.script.scenario,
                   "features": sorted(call.script.features()), "channel": call.channel.to_dict()},
    }
    if call.channel.echo_delay_ms is not None:
        scenario["echo"] = {"delay_ms": call.channel.echo_delay_ms,
                            "attenuation_db": call.channel.echo_attenuation_db}
    return scenario


INTERJECTION_SALT = 0x494E544A  # "INTJ": the interjections' random numbers, apart from the call's
BARGE_IN_LINES = ("Sorry, actually, can I change the delivery address?", "Wait, wait, that's not my order.",
                  "Sorry to interrupt, can you say that again?", "Hang on, I gave you the wrong number.")
BACKCHANNEL_LINES = ("uh-huh", "okay", "right", "mm-hmm")


def _caller_voice(call) -> tuple[str, int, int, int]:
    """(voice, rate wpm, pitch, pitch range) of a rendered call's caller (corpus.render keeps
    only the voice's name with the call); the name alone, at the middle of the ranges, should the
    two ever disagree."""
    from corpus.render import caller_voice

    c = caller_voice(call.script, call.seed, call.held_out)
    if c.name != call.caller_voice:
        return call.caller_voice, 165, 50, 55
    return c.name, int(np.clip(round(c.rate_wpm), 80, 450)), c.pitch, c.pitch_range


def held_out_interjections(call, tts, scenario: dict, name: str) -> list[tuple[dict, np.ndarray]]:
    """A support call's interjections (the module docstring) as (JSON entry, clip at 16 kHz) pairs:
    a barge-in and a backchannel, in an order drawn from the seed, each allowed from 0.5 s after
    the first caller turn end until the call's end less the clip and 1.5 s (room to stop)."""
    from corpus.effects import apply_channel
    from evaluation.metrics import speech_intervals

    rng = np.random.default_rng([INTERJECTION_SALT, int(call.seed)])
    voice, rate, pitch, spread = _caller_voice(call)
    ann = scenario["annotations"]
    first = ann["turn_ends"][0] if ann["turn_ends"] \
        else min((e for _, e in ann["caller_speech"]), default=0.0)
    duration = len(call.caller) / call.sample_rate
    line = dataclasses.replace(call.channel, noise="none", echo_delay_ms=None)  # the WAV has the noise
    plan = [("barge_in", str(rng.choice(BARGE_IN_LINES)), round(float(rng.uniform(0.6, 1.2)), 2)),
            ("backchannel", str(rng.choice(BACKCHANNEL_LINES)), round(float(rng.uniform(0.8, 1.4)), 2))]
    if rng.random() < 0.5:
        plan.reverse()
    out = []
    for kind, text, after in plan:
        x = tts.synthesize_16k(text, voice, rate, pitch, spread).audio.astype(np.float32)
        iv = speech_intervals(x, SAMPLE_RATE)  # without the synthesiser's silence: onset = first sample
        if iv:
            x = x[int(iv[0][0] * SAMPLE_RATE):int(round(iv[-1][1] * SAMPLE_RATE))]
        clip = apply_channel(x, np.zeros_like(x), line, np.random.default_rng(0))
        not_before = round(first + 0.5, 3)
        not_after = round(duration - len(clip) / SAMPLE_RATE - 1.5, 3)
        if not_after < not_before:
            continue
        wav = f"{name}.int{len(out)}.wav"
        out.append(({"kind": kind, "wav": wav, "not_before": not_before, "after_speech_s": after,
                     "not_after": not_after, "text": text}, clip))
    return out


def write_held_out(out_dir: str | Path, n: int, agents: tuple[str, ...] = AGENTS,
                   seed0: int = HELD_OUT_SEED0, agent_voice: str = "espeak") -> list[Path]:
    """Render `n` held-out calls (agents in turn, seeds seed0, seed0 + 1, ...) as scenarios, the
    agent's lines in `agent_voice` (corpus.render.AGENT_VOICE_CHOICES)."""
    from corpus.render import agent_tts, agent_voices, render_call
    from corpus.scripts import generate_script

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tts = agent_tts(agent_voice)
    paths = []
    for i in range(n):
        agent, seed = agents[i % len(agents)], seed0 + i
        script = generate_script(agent, seed)
        call = render_call(script, seed, held_out=True, tts=tts, agent_voice=agent_voice)
        muted = _MutedAgent(tts, agent_voices(agent_voice).values())
        caller = render_call(script, seed, held_out=True, tts=muted, agent_voice=agent_voice).caller
        name = f"{agent}-{seed}"
        write_wav(out / f"{name}.wav", caller)
        write_wav(out / f"{name}.agent.wav", call.agent)
        scenario = scenario_from_call(call, name, audible_edges(call, muted.caller_audio))
        if agent == "support":
            interjections = held_out_interjections(call, tts, scenario, name)
            for entry, clip in interjections:
                write_wav(out / entry["wav"], clip)
            scenario["interjections"] = [entry for entry, _ in interjections]
        path = out / f"{name}.json"
        path.write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
