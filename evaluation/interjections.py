"""Interjections: caller clips played reactively, against the agent's actual output.

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

This module holds that rule (`InterjectionPlayer`) and `speaking_for`; the clips and their
limits come from the scenario (evaluation.scenarios). It knows nothing of the model server or of
how a clip is scored.
"""

from __future__ import annotations

import numpy as np

from evaluation.metrics import speech_intervals
from evaluation.scenarios import SAMPLE_RATE, Interjection, Scenario
from model.config import MICRO_TURN_SAMPLES

FRAME = MICRO_TURN_SAMPLES  # interjections start on micro-turn (200 ms frame) boundaries
SPEECH_HOP = SAMPLE_RATE * 20 // 1000  # metrics.speech_intervals' 20 ms frames


def speaking_for(agent: np.ndarray, t: int, seconds: float, since: int = 0) -> bool:
    """Has the agent been speaking over the last `seconds` before sample `t` without a break, all of
    it at or after sample `since`? `agent`: its audio on the call clock (float or int), of which
    only [0, t) is read. Speech is `metrics.speech_intervals`' (20 ms frames at -45 dBFS, gaps under
    150 ms bridged): read over a window `seconds` + 0.2 s long on its 20 ms grid, which decides as the
    whole track would (`t` on the grid: a frame boundary)."""
    need = int(round(seconds * SAMPLE_RATE))
    if t - need < since or t <= 0:
        return False
    lo = max(0, (t - need - FRAME) // SPEECH_HOP * SPEECH_HOP)
    window = agent[lo:t]
    if len(window) < t - lo:  # the track ends before t: silence there
        return False
    iv = speech_intervals(window, SAMPLE_RATE)
    return (
        bool(iv)
        and iv[-1][1] * SAMPLE_RATE >= t - lo - 0.5
        and lo + iv[-1][0] * SAMPLE_RATE <= t - need + 0.5
    )


class InterjectionPlayer:
    """Plays a scenario's interjections against an agent as its output comes (the module docstring
    has the rule). Frame by frame, k = 0, 1, ...: `step(k, agent)` decides whether one starts at
    t = k * FRAME, from `agent` (the agent's audio on the call clock, only [0, t) read);
    `audio(k)` is what the played clips add to caller frame k. `onsets[i]`: interjection i's onset
    in samples, None while (and if) it is not played. The same decisions for the same audio."""

    def __init__(
        self, interjections: list[Interjection], n_samples: int, caller_busy: list[tuple[float, float]] = ()
    ) -> None:
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
                out[a - lo : b - lo] += ij.audio[a - t : b - t]
        return out

    def track(self, n: int) -> np.ndarray:
        """[n] float32: every played clip at its onset (what they add to the whole caller channel)."""
        out = np.zeros(n, np.float32)
        for ij, t in zip(self.interjections, self.onsets):
            if t is not None and t < n:
                part = ij.audio[: n - t]
                out[t : t + len(part)] += part
        return out
