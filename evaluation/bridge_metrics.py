"""Metrics of one direction of a bridged translation call: speaker -> interpreter -> listener.

A direction is judged from the speaker's source phrases (their [start, end) on the call clock, one
reference translation each), the listener's own speech (the listener talks too, and the
interpreter speaking to them should not drown them), and what the listener heard: the speech
intervals of the audio it received (`metrics.speech_intervals`), a recogniser's transcript of that
audio and the interpreter's own text. `direction_result` counts one call; `summarize_direction`
pools calls: chrF over pooled n-gram counts, ear-voice span percentiles, the overlap share.

Rules (each on its function): `ear_voice_spans` (source onset -> onset of the listener's next
heard speech, matched in order, within a window), `overlap_share` (the share of the listener's
speech time with the interpreter sounding to them). Times are seconds, intervals half-open.

Pure Python and numpy: no audio files, no recogniser, no gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.metrics import (
    Interval,
    NgramStats,
    chrf_from_stats,
    chrf_stats,
    merge_intervals,
    percentiles,
)

EVS_WINDOW_S = 10.0  # a translation starting later than this after its source is not its translation


def ear_voice_spans(
    sources: Sequence[Interval], heard: Sequence[Interval], window_s: float = EVS_WINDOW_S
) -> list[float | None]:
    """Per source phrase (in order of onset): the ear-voice span, onset of its translation in the
    listener's audio - onset of the phrase in the speaker's, or None when none was found.

    The phrases and the heard speech onsets are matched in order: phrase i takes the first heard
    onset at or after its own onset that no earlier phrase took, if it lies within `window_s`
    (otherwise the phrase is missed and takes nothing). Speech already sounding when a phrase
    starts is the translation of something before it. Without word alignment this is the rule a
    listener's ear applies: the next thing the interpreter starts saying."""
    onsets = sorted(s for s, _ in merge_intervals(heard))
    out: list[float | None] = []
    k = 0  # the first onset not yet taken
    for s, _ in sorted(sources):
        j = k
        while j < len(onsets) and onsets[j] < s:
            j += 1
        if j < len(onsets) and onsets[j] - s <= window_s:
            out.append(onsets[j] - s)
            k = j + 1
        else:
            out.append(None)
    return out


def intersection_s(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    """Total time (s) in both unions of intervals."""
    total, ua, ub = 0.0, merge_intervals(a), merge_intervals(b)
    i = j = 0
    while i < len(ua) and j < len(ub):
        lo, hi = max(ua[i][0], ub[j][0]), min(ua[i][1], ub[j][1])
        total += max(0.0, hi - lo)
        if ua[i][1] < ub[j][1]:
            i += 1
        else:
            j += 1
    return total


def overlap_share(listener: Sequence[Interval], interpreter: Sequence[Interval]) -> tuple[float, float]:
    """(seconds of the listener's own speech during which the interpreter speaking to them also
    sounds, seconds of the listener's speech): how often the interpreter talks over its listener.
    The share is their ratio; `summarize_direction` pools the two sums over calls."""
    return intersection_s(listener, interpreter), sum(e - s for s, e in merge_intervals(listener))


@dataclass
class DirectionResult:
    """What one call contributes to one direction's figures."""

    spans: list[float | None]  # per source phrase: ear-voice span, None = no translation found
    overlap_s: float  # listener speech with the interpreter sounding
    listener_s: float  # listener speech
    chrf_stats: NgramStats | None  # recogniser transcript of the heard audio vs the references
    text_chrf_stats: NgramStats  # the interpreter's own text vs the references

    @property
    def chrf(self) -> float | None:
        return None if self.chrf_stats is None else chrf_from_stats(self.chrf_stats)

    @property
    def text_chrf(self) -> float:
        return chrf_from_stats(self.text_chrf_stats)


def direction_result(
    sources: Sequence[Interval],
    references: Sequence[str],
    listener: Sequence[Interval],
    heard: Sequence[Interval],
    heard_text: str | None,
    interpreter_text: str,
    window_s: float = EVS_WINDOW_S,
) -> DirectionResult:
    """One call's direction: `sources` the speaker's phrases with `references` their translations
    (joined for chrF), `listener` the listener's own speech, `heard` the speech intervals of the
    listener's received audio, `heard_text` a recogniser's transcript of it (None: not run)."""
    reference = " ".join(references)
    overlap, listener_s = overlap_share(listener, heard)
    return DirectionResult(
        spans=ear_voice_spans(sources, heard, window_s),
        overlap_s=overlap,
        listener_s=listener_s,
        chrf_stats=None if heard_text is None else chrf_stats(heard_text, reference),
        text_chrf_stats=chrf_stats(interpreter_text, reference),
    )


def pooled_chrf(stats: Sequence[NgramStats]) -> float | None:
    """Corpus chrF of several calls: their per-order counts summed (None: no calls)."""
    if not stats:
        return None
    pooled = [tuple(sum(x) for x in zip(*per_order)) for per_order in zip(*stats)]
    return chrf_from_stats(pooled)


def summarize_direction(results: Sequence[DirectionResult]) -> dict[str, Any]:
    """Pooled figures of one direction: chrF of what the listener heard (recognised) and of the
    interpreter's text, ear-voice span p50/p90 over the phrases a translation was found for (and
    how many were missed), and the overlap share."""
    spans = [x for r in results for x in r.spans]
    found = [x for x in spans if x is not None]
    p = percentiles(found)
    listener_s = sum(r.listener_s for r in results)
    return {
        "calls": len(results),
        "chrf": pooled_chrf([r.chrf_stats for r in results if r.chrf_stats is not None]),
        "text_chrf": pooled_chrf([r.text_chrf_stats for r in results]),
        "ear_voice_span_p50": p["p50"],
        "ear_voice_span_p90": p["p90"],
        "n_phrases": len(spans),
        "n_phrases_missed": len(spans) - len(found),
        "overlap_share": sum(r.overlap_s for r in results) / listener_s if listener_s > 0 else None,
        "listener_speech_s": round(listener_s, 3),
    }


GOALS = (  # issue 16: (label, summary key, comparison, target), per direction
    ("chrF of what the listener hears", "chrf", ">=", 30.0),
    ("Ear-voice span p50 (s)", "ear_voice_span_p50", "<=", 2.0),
)


def direction_goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per goal: its label, the value and whether it is met (None: not measured)."""
    rows = []
    for label, key, op, target in GOALS:
        value = summary.get(key)
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        rows.append({"metric": label, "key": key, "goal": f"{op} {target:g}", "value": value, "met": met})
    return rows
