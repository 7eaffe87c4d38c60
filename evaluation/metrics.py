"""Full-duplex call metrics over a timeline, after Full-Duplex-Bench v1/v1.5.

A call is judged from `Annotations` (what the scenario's caller does) and `AgentTrack` (what the
agent did: speech intervals measured from its output audio by `speech_intervals`, floor state per
200 ms micro-turn, tool calls, text). `evaluate_call` counts per call; `summarize` pools calls into
rates and latency percentiles (numpy linear interpolation; None for no values). Times are seconds
on the call clock (0 = first caller sample); intervals are half-open [start, end). Each metric's
rule, with its defaults, is on its function (`pause_takeovers`, `turn_taking`, `barge_in_stops`,
`backchannel_false_stops`, `echo_false_stops`, `agent_backchannels`, `tool_call_accuracy`, `chrf`,
`wer`). With the background model beside the call: `meant_text` (what the agent was meant to
say: its own words and the replies it was given) and `answer_heard` (a lookup's status and date
in a transcript).

Pure Python and numpy (and the torch-free `model.tokenizer` for the reply prompter's rule): no
model weights, no audio files, no ASR.
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

from model.tokenizer import prompter_advance

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


# ------------------------------------------------------------------- with the background model


def meant_text(turns: Sequence[tuple[float, str]], replies: Sequence[tuple[float, str]]) -> str:
    """What the agent meant to say: its own written text (`turns`: (time, text written in that
    micro-turn)) and the replies it was given (`replies`: (time given, text)), in call order.
    Text it wrote while voicing a reply is that reply's (the serving rule,
    `model.tokenizer.prompter_advance`, moves the reply's cursor by it) and is counted once, as
    the whole reply, placed where the agent started saying it; a reply it never started is placed
    where it was given. A new reply replaces what is left of the last."""
    pieces: list[bytes] = []  # own text runs and whole replies, in order
    own = False  # the last piece is a run of the agent's own text
    pending = sorted(replies, key=lambda r: r[0])
    unsaid = b""
    slot: int | None = None  # where the current reply goes if it is never started
    reply = b""
    started = True

    def place(at: int | None, text: bytes) -> None:
        if at is None:
            pieces.append(text)
        else:
            pieces[at] = text

    for t, text in sorted(turns, key=lambda x: x[0]):
        while pending and pending[0][0] <= t:
            if not started and slot is not None:
                place(slot, reply)
            reply = unsaid = pending.pop(0)[1].strip().encode()
            pieces.append(b"")  # its slot, filled only if it is never started
            slot, started, own = len(pieces) - 1, False, False
        written = text.encode()
        m = prompter_advance(list(written), list(unsaid)) if unsaid else 0
        head = written[: len(written) - m]
        if head:
            if own:
                pieces[-1] += head
            else:
                pieces.append(head)
            own = True
        if m:
            if not started:
                pieces.append(reply)
                started, own = True, False
            unsaid = unsaid[m:]
    if not started and slot is not None:
        place(slot, reply)
    for _, text in pending:  # given after the agent's last words
        pieces.append(text.strip().encode())
    return " ".join(" ".join(p.decode("utf-8", "replace").split()) for p in pieces if p.strip())


MONTHS = "january february march april may june july august september october november december".split()
_UNITS = "one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_ORD_UNITS = "first second third fourth fifth sixth seventh eighth ninth".split()
_ORD_TEENS = (
    "tenth eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()


def day_forms(day: int) -> list[list[str]]:
    """How a recogniser may write day `day` of a month, as word sequences after `normalize_words`:
    "2", "2nd", "second", "two"; "twenty second", "twentysecond" (a hyphen is deleted), ..."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    forms = [[str(day)], [f"{day}{suffix}"]]
    if day < 10:
        forms += [[_ORD_UNITS[day - 1]], [_UNITS[day - 1]]]
    elif day < 20:
        forms += [[_ORD_TEENS[day - 10]], [_TEENS[day - 10]]]
    else:
        tens = {2: "twenty", 3: "thirty"}[day // 10]
        if day % 10 == 0:
            forms += [[tens[:-1] + "ieth"], [tens]]
        else:
            for unit in (_ORD_UNITS[day % 10 - 1], _UNITS[day % 10 - 1]):
                forms += [[tens, unit], [tens + unit]]
    return forms


def _at(words: Sequence[str], i: int, form: Sequence[str]) -> bool:
    return i >= 0 and list(words[i : i + len(form)]) == list(form)


def date_heard(words: Sequence[str], month: int, day: int) -> bool:
    """Whether normalised `words` say the date: the month's name with the day right after it
    ("July 2nd", "July the second") or right before it ("the 2nd of July", "2 July")."""
    name = MONTHS[month - 1]
    forms = day_forms(day)
    for i, w in enumerate(words):
        if w != name:
            continue
        for f in forms:
            after = _at(words, i + 1, f) or (
                i + 1 < len(words) and words[i + 1] == "the" and _at(words, i + 2, f)
            )
            before = _at(words, i - len(f), f) or (
                i >= 1 and words[i - 1] == "of" and _at(words, i - 1 - len(f), f)
            )
            if after or before:
                return True
    return False


def answer_heard(transcript: str, status: str, iso_date: str | None) -> bool:
    """Whether a transcript of the agent says an order's status (the word) and, when there is one,
    the date the status is about (`date_heard`; `iso_date` "YYYY-MM-DD")."""
    words = normalize_words(transcript)
    if not normalize_words(status) or not all(w in words for w in normalize_words(status)):
        return False
    if iso_date is None:
        return True
    _, month, day = (int(x) for x in iso_date.split("-"))
    return date_heard(words, month, day)


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
    # With the background model beside the call (None / empty without):
    meant_word_errors: tuple[int, int] | None = None  # the same transcript against `meant_text`
    lookups_heard: bool | None = None  # a successful lookup's status and date in the transcript
    delays: dict[str, list[float]] = field(default_factory=dict)  # DELAYS -> seconds
    background: bool = False

    @property
    def chrf(self) -> float | None:
        return None if self.chrf_stats is None else chrf_from_stats(self.chrf_stats)


# The background model's delays (seconds), which the training data's are drawn around:
# a caller speech segment's end -> its `caller_words` event; the caller words, or a tool's result,
# the reasoner last read -> the `reply` event; an annotated caller turn end -> the next reply.
DELAYS = ("words", "reply_after_words", "reply_after_tool", "reply_after_turn_end")


def evaluate_call(
    ann: Annotations,
    track: AgentTrack,
    asr_text: str | None = None,
    *,
    meant: str | None = None,
    lookups: Sequence[tuple[str, str | None]] = (),
    delays: dict[str, list[float]] | None = None,
    turn_window_s: float = 2.0,
    bc_max_s: float = 1.0,
    pause_grace_s: float = MICRO_TURN_S,
    stop_tolerance_s: float = 0.5,
    echo_tail_s: float = 0.25,
) -> CallResult:
    """All metrics of one call. `asr_text` is a recogniser's transcript of the agent's audio; its
    WER is taken against the agent's own text. With the background model (`delays` given): the
    transcript's WER against `meant` (`meant_text`), and whether it says the (status, ISO date)
    of every successful lookup in `lookups` (`answer_heard`; None without lookups or transcript)."""
    agent = merge_intervals(track.speech)
    caller = caller_time(ann)
    errors = meant_errors = heard = None
    if asr_text is not None and normalize_words(track.text):
        errors = word_errors(track.text, asr_text)
    if asr_text is not None and meant is not None and normalize_words(meant):
        meant_errors = word_errors(meant, asr_text)
    if asr_text is not None and lookups:
        heard = all(answer_heard(asr_text, status, date) for status, date in lookups)
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
        meant_word_errors=meant_errors,
        lookups_heard=heard,
        delays={k: list(v) for k, v in (delays or {}).items()},
        background=delays is not None,
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
        **_background_summary(results),
    }


def _background_summary(results: Sequence[CallResult]) -> dict[str, Any]:
    """The background model's figures over the calls that ran it (none: an empty dict)."""
    mine = [r for r in results if r.background]
    if not mine:
        return {}
    meant = [r.meant_word_errors for r in mine if r.meant_word_errors is not None]
    heard = [r.lookups_heard for r in mine if r.lookups_heard is not None]
    out: dict[str, Any] = {
        "background_calls": len(mine),
        "agent_meant_wer": _rate(sum(e for e, _ in meant), sum(n for _, n in meant)),
        "agent_meant_words": sum(n for _, n in meant),
        "lookup_heard": _rate(sum(heard), len(heard)),
        "n_lookup_calls": len(heard),
    }
    for key in DELAYS:
        values = [x for r in mine for x in r.delays.get(key, [])]
        p = percentiles(values)
        out.update(
            {f"delay_{key}_p50": p["p50"], f"delay_{key}_p90": p["p90"], f"n_delay_{key}": len(values)}
        )
    return out


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """A 1024x1024 float32 numpy matmul's GFLOP/s, printed beside figures so machines compare."""
    import time

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return round(2 * n**3 * repeats / (time.perf_counter() - t) / 1e9, 1)
