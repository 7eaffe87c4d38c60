"""Evaluation scenarios: a caller WAV plus a JSON of annotations, loaded and validated.

The format (files, keys, defaults) is README.md "Scenario format"; `KEYS` and `parse_scenario` are its
definition. Times are seconds on the call clock, t = 0 at the caller WAV's first sample; all audio
(any rate, PCM16 or float32, mono) is resampled to 16 kHz float32 with soxr on loading. Any unknown
key or bad value is a `ScenarioError` naming the file and the key.

What it does not know: the model server, metrics' rules, reports, how interjections are played
(evaluation.interjections) or how held-out scenarios are written (evaluation.held_out).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from agent.config import get_agent, mirror_problem
from evaluation.metrics import Annotations
from model.protocol import SAMPLE_RATE
from telephony.wav import WavError, read_float

AGENTS = ("support", "translate-en-es", "translate-es-en")  # a scenario's agent
DEFAULT_AGENTS = AGENTS[:2]  # what held-out scenarios are written for unless asked (the test set)
BRIDGE_AGENTS = ("translate-es-en",)  # party B's interpreter in a bridged scenario (the `bridge` key)
EVENT_KINDS = ("dtmf", "timer", "system")  # tool events come from the tool router, not the scenario
KEYS = (
    "agent",
    "annotations",
    "echo",
    "tool_results",
    "agent_lines",
    "events",
    "agent_reference",
    "interjections",
    "source",
    "bridge",
)
BRIDGE_KEYS = ("agent", "wav", "annotations")
INTERVAL_KEYS = ("pauses", "backchannels", "echoes", "caller_speech")
INTERJECTION_KINDS = ("barge_in", "backchannel")
INTERJECTION_KEYS = ("kind", "wav", "not_before", "after_speech_s", "not_after", "text")


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
    """A caller clip the harness plays reactively (the rule: evaluation.interjections.InterjectionPlayer)."""

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


@dataclass(frozen=True, eq=False)
class BridgeParty:
    """Party B of a bridged scenario: who interprets its speech, its audio and what it does."""

    agent: str  # the interpreter of B's speech (speaking into A's leg)
    wav: str  # B's audio file, beside the scenario JSON
    audio: np.ndarray  # [S] float32 16 kHz, on the same clock as party A's
    annotations: Annotations


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
    bridge: BridgeParty | None = None  # a bridged call: party B (party A is the fields above)

    @property
    def duration_s(self) -> float:
        n = len(self.audio) if self.bridge is None else max(len(self.audio), len(self.bridge.audio))
        return n / SAMPLE_RATE

    @property
    def caller_busy(self) -> list[tuple[float, float]]:
        """Where the fixed caller WAV speaks (annotated): no interjection may overlap it."""
        ann = self.annotations
        return list(ann.caller_speech) + list(ann.pauses) + list(ann.backchannels)


# -------------------------------------------------------------------------------------------- WAV


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples, rate) of a mono WAV: PCM16, PCM32 or IEEE float32/64 (plain or extensible)."""
    try:
        x, rate = read_float(path)
    except WavError as exc:
        raise ScenarioError(str(exc)) from None
    if x.shape[1] != 1:
        raise ScenarioError(f"{path}: {x.shape[1]} channels; scenario WAVs are mono")
    return x[:, 0], rate


def load_audio(path: str | Path) -> np.ndarray:
    """A mono WAV as float32 at 16 kHz (soxr HQ)."""
    x, rate = read_wav(path)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


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


def _annotations(c: _Check, raw, at: str = "annotations") -> Annotations:
    raw = c.obj(raw, at, tuple(Annotations.__dataclass_fields__))
    for key in ("turn_ends", "barge_ins"):
        for i, t in enumerate(c.list(raw.get(key, []), f"{at}.{key}")):
            c.number(t, f"{at}.{key}[{i}]")
    for key in INTERVAL_KEYS:
        for i, iv in enumerate(c.list(raw.get(key, []), f"{at}.{key}")):
            where = f"{at}.{key}[{i}]"
            if not isinstance(iv, list) or len(iv) != 2:
                c.fail(where, f"must be a [start, end] pair, got {iv!r}")
            s, e = c.number(iv[0], where), c.number(iv[1], where)
            if e < s:
                c.fail(where, f"ends before it starts ({s:g} > {e:g})")
    for i, call in enumerate(c.list(raw.get("tool_calls", []), f"{at}.tool_calls")):
        where = f"{at}.tool_calls[{i}]"
        c.obj(call, where, ("name", "arguments"), ("name",))
        c.text(call["name"], f"{where}.name")
        c.mapping(call.get("arguments", {}), f"{where}.arguments")
    for i, s in enumerate(c.list(raw.get("translations", []), f"{at}.translations")):
        c.text(s, f"{at}.translations[{i}]")
    return Annotations.from_dict(raw)


def _bridge(c: _Check, raw, agent: str, ann: Annotations, audio_b: np.ndarray | None) -> BridgeParty:
    """Party B of a bridged scenario. Its interpreter must interpret back party A's; each party's
    `translations` pair up with its `caller_speech` (one reference per utterance, in order)."""
    raw = c.obj(raw, "bridge", BRIDGE_KEYS, ("agent", "wav"))
    if raw["agent"] not in BRIDGE_AGENTS:
        c.fail("bridge.agent", f"unknown agent {raw['agent']!r}; known: {', '.join(BRIDGE_AGENTS)}")
    problem = mirror_problem(get_agent(agent), get_agent(raw["agent"]))
    if problem is not None:
        c.fail("bridge.agent", problem)
    wav = c.text(raw["wav"], "bridge.wav")
    if audio_b is None:
        c.fail("bridge.wav", f"{wav} is missing")
    b = _annotations(c, raw.get("annotations", {}), "bridge.annotations")
    for at, x in (("annotations", ann), ("bridge.annotations", b)):
        if len(x.translations) != len(x.caller_speech):
            c.fail(
                f"{at}.translations",
                f"a bridged scenario needs one reference per caller_speech interval "
                f"({len(x.caller_speech)}), got {len(x.translations)}",
            )
    return BridgeParty(raw["agent"], wav, audio_b, b)


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
        out.append(
            Interjection(
                ij["kind"],
                wav,
                clips[wav],
                not_before,
                c.number(ij.get("after_speech_s", 1.0), f"{where}.after_speech_s", 0, 600),
                not_after,
                c.text(ij.get("text", ""), f"{where}.text"),
            )
        )
    return out


def parse_scenario(
    data,
    path: Path,
    audio: np.ndarray,
    reference_audio: np.ndarray | None = None,
    clips: dict[str, np.ndarray] | None = None,
    audio_b: np.ndarray | None = None,
) -> Scenario:
    """A scenario from its parsed JSON (validated; errors name `path` and the key). `clips`: the
    interjections' audio by their "wav" name (16 kHz float32); `audio_b`: a bridged scenario's
    party B (its `bridge.wav`)."""
    c = _Check(path)
    c.obj(data, "(top level)", KEYS, ("agent",))
    if data["agent"] not in AGENTS:
        c.fail("agent", f"unknown agent {data['agent']!r}; known: {', '.join(AGENTS)}")
    ann = _annotations(c, data.get("annotations", {}))
    echo = None
    if data.get("echo") is not None:
        e = c.obj(data["echo"], "echo", ("delay_ms", "attenuation_db"), ("delay_ms", "attenuation_db"))
        echo = Echo(
            c.number(e["delay_ms"], "echo.delay_ms", 0, 1000),
            c.number(e["attenuation_db"], "echo.attenuation_db", 0, 120),
        )
    tools = []
    for i, t in enumerate(c.list(data.get("tool_results", []), "tool_results")):
        where = f"tool_results[{i}]"
        c.obj(t, where, ("name", "arguments", "result", "error", "delay_s"), ("name",))
        if ("result" in t) == ("error" in t):
            c.fail(where, "needs exactly one of 'result' and 'error'")
        args = c.mapping(t.get("arguments", {}), f"{where}.arguments")
        tools.append(
            ToolResult(
                c.text(t["name"], f"{where}.name"),
                dict(args),
                t.get("result"),
                c.text(t["error"], f"{where}.error") if "error" in t else None,
                c.number(t.get("delay_s", 0.0), f"{where}.delay_s", 0, 600),
            )
        )
    lines = []
    for i, line in enumerate(c.list(data.get("agent_lines", []), "agent_lines")):
        where = f"agent_lines[{i}]"
        c.obj(line, where, ("text", "after_turn_end", "lang"), ("text",))
        after = line.get("after_turn_end")
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < len(ann.turn_ends)
        ):
            c.fail(
                f"{where}.after_turn_end",
                f"must be null or an index into annotations.turn_ends "
                f"(0..{len(ann.turn_ends) - 1}), got {after!r}",
            )
        lines.append(
            AgentLine(
                c.text(line["text"], f"{where}.text"), after, c.text(line.get("lang", "en"), f"{where}.lang")
            )
        )
    events = []
    for i, ev in enumerate(c.list(data.get("events", []), "events")):
        where = f"events[{i}]"
        c.obj(ev, where, ("t", "kind", "payload"), ("t", "kind"))
        if ev["kind"] not in EVENT_KINDS:
            c.fail(f"{where}.kind", f"{ev['kind']!r} is not one of {', '.join(EVENT_KINDS)}")
        events.append(
            ScenarioEvent(
                c.number(ev["t"], f"{where}.t"), ev["kind"], c.text(ev.get("payload", ""), f"{where}.payload")
            )
        )
    ref_text = None
    if data.get("agent_reference") is not None:
        ref = c.obj(data["agent_reference"], "agent_reference", ("wav", "text"), ("wav", "text"))
        c.text(ref["wav"], "agent_reference.wav")
        ref_text = c.text(ref["text"], "agent_reference.text")
    interjections = _interjections(c, data.get("interjections", []), clips or {})
    bridge = None
    if data.get("bridge") is not None:
        bridge = _bridge(c, data["bridge"], data["agent"], ann, audio_b)
    return Scenario(
        path.stem,
        data["agent"],
        audio,
        ann,
        echo,
        tools,
        lines,
        sorted(events, key=lambda e: e.t),
        reference_audio,
        ref_text,
        path,
        interjections,
        bridge,
    )


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
    if (
        isinstance(data, dict)
        and isinstance(data.get("agent_reference"), dict)
        and isinstance(data["agent_reference"].get("wav"), str)
    ):
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
    audio_b = None
    bridge = data.get("bridge") if isinstance(data, dict) else None
    if isinstance(bridge, dict) and isinstance(bridge.get("wav"), str):
        b_path = path.parent / bridge["wav"]
        if b_path.is_file():  # a missing one is refused by parse_scenario, naming the key
            audio_b = load_audio(b_path)
    return parse_scenario(data, path, load_audio(wav), reference, clips, audio_b)


def load_scenarios(directory: str | Path, limit: int | None = None) -> list[Scenario]:
    """Every `<name>.json` of `directory` in name order (`<name>.agent.json` is not a thing)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(f"{directory}: no such scenario directory")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ScenarioError(f"{directory}: no scenarios (<name>.json + <name>.wav)")
    return [load_scenario(p) for p in files[:limit]]
