"""Full-duplex call metrics over a timeline, after Full-Duplex-Bench v1/v1.5.

A call is judged from `Annotations` (what the scenario's caller does) and `AgentTrack` (what the
agent did: speech intervals measured from its output audio by `speech_intervals`, floor state per
200 ms micro-turn, tool calls, text). `evaluate_call` counts per call; `summarize` pools calls into
rates and latency percentiles (numpy linear interpolation; None for no values). Times are seconds
on the call clock (0 = first caller sample); intervals are half-open [start, end). Each metric's
rule, with its defaults, is on its function (`pause_takeovers`, `turn_taking`, `barge_in_stops`,
`backchannel_false_stops`, `echo_false_stops`, `agent_backchannels`, `tool_call_accuracy`, `chrf`,
`wer`).

Pure Python and numpy: no model, no audio files, no ASR.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Interval = tuple[float, float]
NgramStats = list[tuple[int, int, int]]  # per order n: (hypothesis n-grams, reference n-grams, matched)

MICRO_TURN_S = 0.2  # one micro-turn; model.config.MICRO_TURN_MS, repeated so this module stays torch-free
CHRF_ORDER = 6
CHRF_BETA = 2.0


# --------------------------------------------------------------------------------------------- data


@dataclass
class Annotations:
    """What the scenario's caller does. JSON keys are the field names; tool calls are
    {"name": str, "arguments": {...}} objects, intervals [start, end] pairs, times seconds."""

    turn_ends: list[float] = field(default_factory=list)
    pauses: list[Interval] = field(default_factory=list)  # mid-turn pauses: the agent must not take over
    backchannels: list[Interval] = field(default_factory=list)  # caller backchannels over the agent
    barge_ins: list[float] = field(default_factory=list)  # caller onsets that cut the agent
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)  # expected, in order
    translations: list[str] = field(default_factory=list)  # reference translations, in order
    echoes: list[Interval] = field(default_factory=list)  # agent voice leaking onto the caller channel
    caller_speech: list[Interval] = field(default_factory=list)  # the caller's own turns

    @classmethod
    def from_dict(cls, d: dict) -> Annotations:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Annotations: unknown keys {sorted(unknown)}")

        def pairs(key: str) -> list[Interval]:
            return [(float(a), float(b)) for a, b in d.get(key, [])]

        return cls(
            turn_ends=[float(t) for t in d.get("turn_ends", [])],
            pauses=pairs("pauses"),
            backchannels=pairs("backchannels"),
            barge_ins=[float(t) for t in d.get("barge_ins", [])],
            tool_calls=[(c["name"], dict(c.get("arguments", {}))) for c in d.get("tool_calls", [])],
            translations=[str(s) for s in d.get("translations", [])],
            echoes=pairs("echoes"),
            caller_speech=pairs("caller_speech"),
        )

    @classmethod
    def load(cls, path: str | Path) -> Annotations:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class AgentTrack:
    """What the agent did. `floor[k]` is micro-turn k's floor state ("listen" / "backchannel" /
    "speak" / "yield"), sounding in [floor_start_s + k*0.2, floor_start_s + (k+1)*0.2): micro-turn
    k's output plays one micro-turn after its input, hence the default 0.2 s."""

    speech: list[Interval] = field(default_factory=list)  # from the agent's output audio
    floor: list[str] = field(default_factory=list)
    tool_calls: list[tuple[float, str, dict]] = field(default_factory=list)  # (time, name, arguments)
    text: str = ""
    floor_start_s: float = MICRO_TURN_S


# ----------------------------------------------------------------------------------------- audio


def speech_intervals(
    samples: np.ndarray, rate: int, frame_ms: float = 20, threshold_db: float = -45, min_gap_ms: float = 150
) -> list[Interval]:
    """Energy-based speech intervals of one channel (the agent's own clean output; no noise model).

    A frame (the last one may be short) is speech when its RMS in dBFS is at least `threshold_db`;
    runs of speech frames are intervals, and intervals separated by less than `min_gap_ms` merge.
    Integer samples are scaled to [-1, 1) by their dtype's range.
    """
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    x = x.astype(np.float64).reshape(-1)
    hop = max(1, int(round(rate * frame_ms / 1000)))
    n = math.ceil(len(x) / hop)
    if n == 0:
        return []
    padded = np.zeros(n * hop)
    padded[: len(x)] = x**2
    counts = np.full(n, hop, dtype=np.float64)
    counts[-1] = len(x) - (n - 1) * hop
    db = 10 * np.log10(padded.reshape(n, hop).sum(axis=1) / counts + 1e-20)
    active = np.concatenate([[False], db >= threshold_db, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))
    runs = [(s * hop / rate, min(e * hop, len(x)) / rate) for s, e in zip(edges[::2], edges[1::2])]
    return merge_intervals(runs, min_gap_ms / 1000)


def merge_intervals(intervals: Iterable[Interval], min_gap_s: float = 0.0) -> list[Interval]:
    """Sorted union of intervals; neighbours separated by less than `min_gap_s` merge too."""
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and (s <= out[-1][1] or s - out[-1][1] < min_gap_s):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _active(intervals: Sequence[Interval], t: float) -> Interval | None:
    """The interval holding time t, if any."""
    for s, e in intervals:
        if s <= t < e:
            return (s, e)
    return None


def _inside(intervals: Sequence[Interval], t: float) -> bool:
    return _active(intervals, t) is not None


# ---------------------------------------------------------------------------------------- timing


def pause_takeovers(
    pauses: Sequence[Interval],
    agent: Sequence[Interval],
    bc_max_s: float = 1.0,
    grace_s: float = MICRO_TURN_S,
) -> list[bool]:
    """Per pause (s, e): did an agent interval of at least `bc_max_s` start in [s, e + grace_s)?
    grace is one micro-turn: a decision taken in the pause sounds one output window later. Shorter
    intervals are backchannels, welcome in a pause; speech already running at s is no onset."""
    return [any(s <= a < e + grace_s and b - a >= bc_max_s for a, b in agent) for s, e in pauses]


def turn_taking(
    turn_ends: Sequence[float],
    agent: Sequence[Interval],
    caller_speech: Sequence[Interval] = (),
    window_s: float = 2.0,
    overlap_counts: bool = False,
) -> list[float | None]:
    """Per caller turn end t: the agent's response latency, or None when it did not take the turn.
    Taken when the agent's speech starts in (t, deadline], deadline = min(t + window_s, the caller's
    next onset after t); latency = onset - t. `overlap_counts` (interpreting calls only, where
    talking over the caller is the job): speech running at t is a take with latency 0; any other
    agent still talking at t has talked over the turn, not taken it."""
    out: list[float | None] = []
    for t in turn_ends:
        if overlap_counts and _inside(agent, t):
            out.append(0.0)
            continue
        deadline = min([t + window_s] + [s for s, _ in caller_speech if s > t])
        onsets = [a for a, _ in agent if t < a <= deadline]
        out.append(min(onsets) - t if onsets else None)
    return out


def barge_in_stops(onsets: Sequence[float], agent: Sequence[Interval]) -> list[float]:
    """Per barge-in onset at which the agent was speaking: end of that speech - onset (onsets while
    the agent is silent are not counted; `summarize` calls a stop within its window a success)."""
    out = []
    for b in onsets:
        iv = _active(agent, b)
        if iv is not None:
            out.append(iv[1] - b)
    return out


def backchannel_false_stops(
    events: Sequence[Interval], agent: Sequence[Interval], tolerance_s: float = 0.5
) -> list[bool]:
    """Per caller backchannel (s, e) with the agent speaking at s: did that speech end in
    [s, e + tolerance_s]? (a false stop)"""
    out = []
    for s, e in events:
        iv = _active(agent, s)
        if iv is not None:
            out.append(iv[1] <= e + tolerance_s)
    return out


def echo_false_stops(
    echoes: Sequence[Interval], agent: Sequence[Interval], tail_s: float = 0.25
) -> list[bool]:
    """Per echo interval (s, e) with the agent speaking at s: did that speech end before e - tail_s?
    Echo is the agent's own voice leaking back, so its speech naturally ends up to the echo delay
    before the echo does; tail_s (0.25 s) exceeds the 200 ms maximum echo delay, so a stop here means
    the agent went silent while its echo still had more than the delay to run."""
    out = []
    for s, e in echoes:
        iv = _active(agent, s)
        if iv is not None:
            out.append(iv[1] < e - tail_s)
    return out


def caller_time(ann: Annotations) -> list[Interval]:
    """The caller's turns with their mid-turn pauses bridged."""
    return merge_intervals(list(ann.caller_speech) + list(ann.pauses))


def agent_backchannels(track: AgentTrack, caller: Sequence[Interval], bc_max_s: float = 1.0) -> int:
    """Agent backchannels starting in caller time (`caller_time`: the caller's turns and mid-turn
    pauses; `summarize` rates them per minute of it). With floor states, each run of consecutive
    "backchannel" micro-turns is one; without (a cascade baseline), each speech interval shorter
    than `bc_max_s`."""
    if track.floor:
        starts = [
            track.floor_start_s + k * MICRO_TURN_S
            for k, f in enumerate(track.floor)
            if f == "backchannel" and (k == 0 or track.floor[k - 1] != "backchannel")
        ]
    else:
        starts = [s for s, e in track.speech if e - s < bc_max_s]
    return sum(_inside(caller, t) for t in starts)


# ------------------------------------------------------------------------------------ tool calls


_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212"


def normalize_value(v: Any) -> Any:
    """Scalars become comparable strings: case folded, whitespace and dashes removed, integral
    numbers without ".0", booleans "true"/"false"; dicts (keys lower-cased) and lists recurse."""
    if isinstance(v, dict):
        return {str(k).strip().lower(): normalize_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [normalize_value(x) for x in v]
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).casefold()
    return "".join(c for c in s if not c.isspace() and c not in _DASHES)


def normalize_arguments(arguments: dict) -> dict:
    return normalize_value(arguments)


@dataclass
class ToolScore:
    expected: int
    correct: int
    extra: int

    @property
    def accuracy(self) -> float | None:
        n = self.expected + self.extra
        return self.correct / n if n else None


def tool_call_accuracy(
    expected: Sequence[tuple[str, dict]], made: Sequence[tuple[float, str, dict]]
) -> ToolScore:
    """Match expected calls in order against the calls made (sorted by time): each takes the first
    not-yet-matched call after the previous match with the same name, and is correct when the
    arguments are equal after `normalize_arguments`. Calls never matched are extras;
    accuracy = correct / (expected + extras), None when both are zero."""
    made = sorted(made, key=lambda c: c[0])
    used = [False] * len(made)
    pos = correct = 0
    for name, args in expected:
        for i in range(pos, len(made)):
            if made[i][1] == name:
                used[i] = True
                pos = i + 1
                correct += normalize_arguments(made[i][2]) == normalize_arguments(args)
                break
    return ToolScore(expected=len(expected), correct=correct, extra=used.count(False))


# ------------------------------------------------------------------------------------------ chrF


def chrf_stats(hypothesis: str, reference: str, order: int = CHRF_ORDER) -> list[tuple[int, int, int]]:
    """Per n = 1..order: (hypothesis n-grams, reference n-grams, matched n-grams), whitespace removed."""
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    out = []
    for n in range(1, order + 1):
        h = Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
        out.append((sum(h.values()), sum(r.values()), sum((h & r).values())))
    return out


def chrf_from_stats(stats: Sequence[tuple[int, int, int]], beta: float = CHRF_BETA) -> float:
    """chrF (0..100) from per-order counts: P and R averaged over orders either side has."""
    orders = [(nh, nr, m) for nh, nr, m in stats if nh or nr]
    if not orders:
        return 100.0  # both sides empty
    p = sum(m / nh if nh else 0.0 for nh, _, m in orders) / len(orders)
    r = sum(m / nr if nr else 0.0 for _, nr, m in orders) / len(orders)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return 100 * (1 + b2) * p * r / (b2 * p + r)


def chrf(hypothesis: str, reference: str, beta: float = CHRF_BETA) -> float:
    """chrF per Popović (2015): character n-grams n = 1..6, whitespace removed, precision and recall
    each averaged over the orders either side has n-grams of, F_beta with beta = 2, 0..100. Corpus
    chrF pools the counts of all calls; a call's hypothesis is the agent's whole text, its
    reference the scenario's translations joined."""
    return chrf_from_stats(chrf_stats(hypothesis, reference), beta)


def _add_stats(a: NgramStats, b: NgramStats) -> NgramStats:
    return [(x[0] + y[0], x[1] + y[1], x[2] + y[2]) for x, y in zip(a, b)]


# ------------------------------------------------------------------------------------------- WER


def normalize_words(text: str) -> list[str]:
    """Lower-case, delete punctuation (Unicode category P*), split on whitespace."""
    text = "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    return text.split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference words) after `normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, hw in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word edit distance (substitutions + deletions + insertions) / reference words, after
    `normalize_words`; `summarize` pools errors and words over calls."""
    errors, n = word_errors(reference, hypothesis)
    if n == 0:
        raise ValueError("wer: the reference has no words")
    return errors / n


# ---------------------------------------------------------------------------------- percentiles


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 90)) -> dict[str, float | None]:
    v = np.asarray(list(values), dtype=np.float64)
    return {f"p{q:g}": (float(np.percentile(v, q)) if v.size else None) for q in qs}


# ----------------------------------------------------------------------------------- per call


@dataclass
class CallResult:
    """Every count one call contributes; `summarize` pools these."""

    pauses: list[bool]  # per pause: taken over
    turns: list[float | None]  # per turn end: latency, None = not taken
    barge_in_latencies: list[float]  # per barge-in during agent speech
    backchannel_stops: list[bool]  # per caller backchannel during agent speech
    echo_stops: list[bool]  # per echo during agent speech
    agent_backchannels: int
    caller_minutes: float
    tools: ToolScore
    chrf_stats: list[tuple[int, int, int]] | None  # None without reference translations
    word_errors: tuple[int, int] | None  # (errors, reference words) of an ASR transcript

    @property
    def chrf(self) -> float | None:
        return None if self.chrf_stats is None else chrf_from_stats(self.chrf_stats)


def evaluate_call(
    ann: Annotations,
    track: AgentTrack,
    asr_text: str | None = None,
    *,
    turn_window_s: float = 2.0,
    bc_max_s: float = 1.0,
    pause_grace_s: float = MICRO_TURN_S,
    stop_tolerance_s: float = 0.5,
    echo_tail_s: float = 0.25,
) -> CallResult:
    """All metrics of one call. `asr_text` is a recogniser's transcript of the agent's audio; its
    WER is taken against the agent's own text."""
    agent = merge_intervals(track.speech)
    caller = caller_time(ann)
    errors = None
    if asr_text is not None and normalize_words(track.text):
        errors = word_errors(track.text, asr_text)
    return CallResult(
        pauses=pause_takeovers(ann.pauses, agent, bc_max_s, pause_grace_s),
        turns=turn_taking(
            ann.turn_ends, agent, ann.caller_speech, turn_window_s, overlap_counts=bool(ann.translations)
        ),
        barge_in_latencies=barge_in_stops(ann.barge_ins, agent),
        backchannel_stops=backchannel_false_stops(ann.backchannels, agent, stop_tolerance_s),
        echo_stops=echo_false_stops(ann.echoes, agent, echo_tail_s),
        agent_backchannels=agent_backchannels(track, caller, bc_max_s),
        caller_minutes=sum(e - s for s, e in caller) / 60,
        tools=tool_call_accuracy(ann.tool_calls, track.tool_calls),
        chrf_stats=chrf_stats(track.text, " ".join(ann.translations)) if ann.translations else None,
        word_errors=errors,
    )


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def summarize(results: Sequence[CallResult], barge_window_s: float = 2.0) -> dict[str, Any]:
    """Pool per-call counts into rates (None when nothing was counted) and latency percentiles.
    A barge-in stop succeeds when its latency is at most `barge_window_s`."""
    pauses = [x for r in results for x in r.pauses]
    turns = [x for r in results for x in r.turns]
    latencies = [x for x in turns if x is not None]
    barge = [x for r in results for x in r.barge_in_latencies]
    bc_stops = [x for r in results for x in r.backchannel_stops]
    echo_stops = [x for r in results for x in r.echo_stops]
    minutes = sum(r.caller_minutes for r in results)
    n_bc = sum(r.agent_backchannels for r in results)
    tools = ToolScore(*(sum(getattr(r.tools, k) for r in results) for k in ("expected", "correct", "extra")))
    chrf_all = [r.chrf_stats for r in results if r.chrf_stats is not None]
    chrf_pooled = None
    if chrf_all:
        pooled = chrf_all[0]
        for s in chrf_all[1:]:
            pooled = _add_stats(pooled, s)
        chrf_pooled = chrf_from_stats(pooled)
    words = [r.word_errors for r in results if r.word_errors is not None]
    n_words = sum(n for _, n in words)
    lat = percentiles(latencies)
    stop = percentiles(barge)
    return {
        "calls": len(results),
        "pause_takeover_rate": _rate(sum(pauses), len(pauses)),
        "n_pauses": len(pauses),
        "turn_taking_rate": _rate(len(latencies), len(turns)),
        "n_turn_ends": len(turns),
        "turn_latency_p50": lat["p50"],
        "turn_latency_p90": lat["p90"],
        "barge_in_success_rate": _rate(sum(x <= barge_window_s for x in barge), len(barge)),
        "n_barge_ins": len(barge),
        "barge_in_stop_p50": stop["p50"],
        "barge_in_stop_p90": stop["p90"],
        "false_stop_rate_backchannel": _rate(sum(bc_stops), len(bc_stops)),
        "n_caller_backchannels": len(bc_stops),
        "false_stop_rate_echo": _rate(sum(echo_stops), len(echo_stops)),
        "n_echoes": len(echo_stops),
        "agent_backchannels_per_minute": n_bc / minutes if minutes > 0 else None,
        "caller_minutes": minutes,
        "tool_call_accuracy": tools.accuracy,
        "tool_calls_expected": tools.expected,
        "tool_calls_correct": tools.correct,
        "tool_calls_extra": tools.extra,
        "chrf": chrf_pooled,
        "n_translated_calls": len(chrf_all),
        "wer": _rate(sum(e for e, _ in words), n_words),
        "wer_reference_words": n_words,
    }


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """A 1024x1024 float32 numpy matmul's GFLOP/s, printed beside figures so machines compare."""
    import time

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return round(2 * n**3 * repeats / (time.perf_counter() - t) / 1e9, 1)
