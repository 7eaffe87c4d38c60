"""Reactive caller interjections: the trigger rule on hand-made agent tracks, the scoring, and
`run_call` against the real model server with the tiny preset (random weights), whose output is
noise loud enough to count as speech, so the interjections meet it talking."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from evaluation.interjections import FRAME, InterjectionPlayer, speaking_for
from evaluation.metrics import Annotations, speech_intervals
from evaluation.run import N, evaluate, run_scenarios, with_interjections
from evaluation.scenarios import Interjection, Scenario

SR = 16_000
pytestmark = pytest.mark.timeout(120)


def voiced(seconds: float, level: float = 0.1) -> np.ndarray:
    """Harmonics of 140 Hz: speech to `metrics.speech_intervals`."""
    t = np.arange(int(round(seconds * SR))) / SR
    return (level * sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))).astype(np.float32)


def track(spans: list[tuple[float, float]], seconds: float) -> np.ndarray:
    x = np.zeros(int(round(seconds * SR)), np.float32)
    for s, e in spans:
        part = voiced(e - s)
        x[int(round(s * SR)) : int(round(s * SR)) + len(part)] = part
    return x


def clip(
    kind: str,
    seconds: float = 0.4,
    not_before: float = 0.0,
    after: float = 0.6,
    not_after: float | None = None,
) -> Interjection:
    return Interjection(kind, f"{kind}.wav", voiced(seconds), not_before, after, not_after)


def play(player: InterjectionPlayer, agent: np.ndarray) -> list[float | None]:
    """Every frame in turn, as the harness does (the agent's audio fixed in advance)."""
    for k in range(-(-player.n_samples // FRAME)):
        player.step(k, agent)
    return player.onsets_s


# ------------------------------------------------------------------------------------ the rule


def test_speaking_for_follows_the_metrics_speech_rule():
    agent = track([(1.0, 2.0), (2.1, 3.0), (3.4, 5.0)], 6.0)  # 100 ms gap bridged, 400 ms not
    assert [tuple(round(x, 2) for x in iv) for iv in speech_intervals(agent, SR)] == [(1.0, 3.0), (3.4, 5.0)]
    at = lambda t, s, since=0.0: speaking_for(agent, int(t * SR), s, int(since * SR))  # noqa: E731
    assert at(1.6, 0.6) and not at(1.6, 0.61) and not at(1.0, 0.0)
    assert at(2.6, 1.6)  # across the bridged gap
    assert at(3.0, 2.0) and not at(3.2, 0.1)  # silent in the last 20 ms before t
    assert at(4.0, 0.6) and not at(4.0, 0.61)  # the 400 ms gap breaks the run
    assert not at(2.6, 0.6, since=2.2) and at(2.8, 0.6, since=2.2)
    assert not speaking_for(agent[: int(2 * SR)], int(2.4 * SR), 0.2)  # audio not there yet: silence


def test_a_clip_starts_at_the_first_frame_after_enough_unbroken_speech():
    agent = track([(0.5, 1.0), (1.3, 4.0)], 8.0)
    player = InterjectionPlayer([clip("barge_in", after=0.7)], len(agent))
    assert play(player, agent) == [2.0]  # speech from 1.3: 0.7 s at 2.0, a frame boundary
    player = InterjectionPlayer([clip("barge_in", after=0.7, not_before=2.5)], len(agent))
    assert play(player, agent) == [2.6]
    out = player.track(len(agent))
    assert not out[: int(2.6 * SR)].any() and np.array_equal(out[int(2.6 * SR) : int(3.0 * SR)], voiced(0.4))
    frames = np.concatenate([player.audio(k) for k in range(len(agent) // FRAME)])
    assert np.array_equal(frames, out)


def test_clips_wait_for_each_other_the_caller_and_their_window():
    agent = track([(0.4, 7.0)], 9.0)
    caller_speech = [(1.0, 2.2)]  # the fixed caller WAV talks there: no clip over it
    player = InterjectionPlayer(
        [clip("backchannel", 0.4, after=0.4), clip("barge_in", 0.5, after=0.6)], len(agent), caller_speech
    )
    # 0.8 has 0.4 s of speech, but a clip over [0.8, 1.2) would overlap the caller; from 2.2 both
    # may start, the first in the list wins; the second needs 0.6 s more speech after it ends (2.6)
    assert play(player, agent) == [2.2, 3.2]
    silent = np.zeros(len(agent), np.float32)
    player = InterjectionPlayer([clip("barge_in")], len(agent))
    assert play(player, silent) == [None] and not player.pending
    player = InterjectionPlayer(
        [clip("barge_in", not_after=0.8), clip("backchannel", 1.5, after=0.2)], int(1.6 * SR)
    )
    assert play(player, agent[: int(1.6 * SR)]) == [None, None]  # too late; no room left in the call


def test_played_interjections_go_to_the_annotations_and_unplayed_ones_add_nothing():
    ann = Annotations(turn_ends=[1.0], barge_ins=[5.0], backchannels=[(3.0, 3.3)], caller_speech=[(0.2, 1.0)])
    ijs = [clip("barge_in", 0.5), clip("backchannel", 0.3), clip("barge_in", 0.5)]
    out = with_interjections(ann, ijs, [2.0, 4.0, None])
    assert out.barge_ins == [2.0, 5.0] and out.turn_ends == [1.0]
    assert out.caller_speech == [(0.2, 1.0), (2.0, 2.5)]
    assert out.backchannels == [(3.0, 3.3), (4.0, 4.3)]
    assert ann.barge_ins == [5.0] and ann.caller_speech == [(0.2, 1.0)]  # not changed in place
    assert with_interjections(ann, ijs, [None] * 3) == ann


# ------------------------------------------------------------------------ through the model server


@pytest.fixture(scope="module")
def record():
    import torch

    from model.checkpoint import load_model

    torch.set_num_threads(1)
    caller = track([(0.2, 1.0)], 6.0)
    sc = Scenario(
        "interjecting",
        "support",
        caller,
        Annotations(turn_ends=[1.0], caller_speech=[(0.2, 1.0)]),
        interjections=[
            clip("barge_in", 0.5, not_before=1.0, after=0.6, not_after=4.0),
            clip("backchannel", 0.3, not_before=1.0, after=0.4),
            clip("barge_in", 0.5, after=0.6, not_after=0.1),
        ],
    )  # never: too early
    records, _ = asyncio.run(run_scenarios(load_model("tiny", None, device="cpu"), [sc], tick_ms=100))
    return records[0]


def test_the_model_meets_interjections_only_after_speaking_long_enough(record):
    sc = record.scenario
    onsets = record.interjections
    assert [x["onset_s"] for x in record.session["interjections"]] == onsets
    assert onsets[2] is None
    speech = speech_intervals(record.agent_audio, SR)
    assert speech, "the tiny preset's random output should be loud enough to count as speech"
    free_from = 0.0
    for ij, t in zip(sc.interjections[:2], onsets[:2]):
        assert t is not None and abs(t / 0.2 - round(t / 0.2)) < 1e-6  # on a frame boundary
        assert t >= ij.not_before and t >= free_from + ij.after_speech_s - 1e-9
        # the agent had been speaking the whole after_speech_s before the onset ...
        assert any(s <= t - ij.after_speech_s + 1e-9 and e >= t - 1e-9 for s, e in speech)
        if record.session["interjection_late_frames"] == 0:  # ... and not at the frame before
            k = round(t * SR) // N
            assert k * N / SR - 0.2 < max(ij.not_before, free_from) or not speaking_for(
                record.agent_audio, (k - 1) * N, ij.after_speech_s, round(free_from * SR)
            )
        free_from = t + ij.duration_s


def test_what_the_model_heard_holds_the_clips(record):
    sc = record.scenario
    heard = record.heard.astype(np.int32)
    for ij, t in zip(sc.interjections, record.interjections):
        if t is None:
            continue
        a = round(t * SR)
        expected = np.round((sc.audio[a : a + len(ij.audio)] + ij.audio) * 32768.0)
        assert np.abs(heard[a : a + len(ij.audio)] - expected).max() <= 1
    silent_caller = np.ones(len(record.heard), bool)
    silent_caller[round(0.2 * SR) : SR] = False
    for ij, t in zip(sc.interjections, record.interjections):
        if t is not None:
            silent_caller[round(t * SR) : round(t * SR) + len(ij.audio)] = False
    assert not heard[silent_caller].any()  # no echo in this scenario: the rest is silence


def test_played_interjections_are_scored_where_they_were_played(record):
    results = evaluate([record], baseline=False, asr=False)
    call = results["calls"][0]
    barge, bc, never = record.interjections
    ann = call["annotations"]
    assert ann["barge_ins"] == [barge] and ann["backchannels"] == [(bc, round(bc + 0.3, 4))]
    assert ann["caller_speech"] == [(0.2, 1.0), (barge, round(barge + 0.5, 4))] and ann["turn_ends"] == [1.0]
    speech = call["model"]["speech"]
    m = call["model"]["metrics"]
    assert len(m["barge_in_latencies"]) == sum(s <= barge < e for s, e in speech)
    assert len(m["backchannel_stops"]) == sum(s <= bc < e for s, e in speech)
    summary = results["summary"]["model"]
    assert summary["n_interjections_planned"] == 3 and summary["n_interjections_triggered"] == 2
    assert summary["n_barge_ins"] == len(m["barge_in_latencies"])
    by_agent = results["summary"]["by_agent"]["support"]["model"]
    assert by_agent["n_interjections_triggered"] == 2
