"""evaluation.cascade on a hand-built caller channel whose turn ends, pause and barge-in are known.

The caller channel is espeak-ng speech placed at known times. Caller speech times are measured
from each utterance's own audio (energy), so the expected answer times do not depend on the VAD.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("silero_vad", reason="silero-vad is not installed (pip install -e '.[eval]')")
pytest.importorskip("espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')")

import torch

from corpus.tts import Espeak
from evaluation import metrics
from evaluation.cascade import CHUNK_MS, AgentLine, run_cascade

SR = 16_000
SILENCE_MS = 600
PROCESSING_MS = 300
BARGE_MIN_MS = 200
CALLER_VOICE = "en-gb+m3"  # not the agent's variant (f3)

# Silero marks the end of speech 0-2 chunks late, and a decision happens at a chunk end: the
# answer may come up to this much after silence_ms + processing_ms past the true end.
END_SLACK_S = 0.15
ONSET_SLACK_S = CHUNK_MS / 1000 + 0.04  # onset found in the chunk holding it or the next


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Call:
    caller: np.ndarray
    turn_ends: list[float]  # true ends of the caller turns the agent should answer
    pause: tuple[float, float]  # the mid-turn pause (shorter than silence_ms)
    barge_onset: float  # true onset of the caller's barge-in
    lines: list[AgentLine]


def _utterance(text: str) -> tuple[np.ndarray, float, float]:
    """Audio and its energy-measured speech start and end (seconds within the audio)."""
    audio = Espeak.instance().synthesize_16k(text, CALLER_VOICE, 165).audio.astype(np.float32)
    iv = metrics.speech_intervals(audio, SR)
    return audio, iv[0][0], iv[-1][1]


def _line_seconds(text: str) -> float:
    from corpus.render import AGENT_RATE_WPM, AGENT_VOICES

    return len(Espeak.instance().synthesize_16k(text, AGENT_VOICES["en"], AGENT_RATE_WPM).audio) / SR


def build_call() -> Call:
    """Caller: turn 1 in two parts with a 0.35 s pause; the agent answers (line 0); turn 2; the
    agent answers with a long line (1) and the caller barges in 1.2 s into it; after the
    barge-in the agent answers once more (line 2)."""
    lines = [
        AgentLine("I can help with that, what is the order number?"),
        AgentLine(
            "Thank you. I can see the order, it left our warehouse on Monday and the courier "
            "expects to deliver it on Thursday afternoon between two and five."
        ),
        AgentLine("Of course, go ahead."),
    ]
    expected_latency = (SILENCE_MS + PROCESSING_MS) / 1000
    pieces: list[tuple[float, np.ndarray]] = []
    t = 0.5

    def place(text: str) -> tuple[float, float]:
        audio, s, e = _utterance(text)
        pieces.append((t, audio))
        return t + s, t + e

    _, p0 = place("Hi, I'm calling about my order.")
    t = p0 + 0.35  # mid-turn pause, shorter than silence_ms
    p1, end1 = place("It has not arrived yet.")
    answer1 = end1 + expected_latency
    t = answer1 + _line_seconds(lines[0].text) + 0.8
    _, end2 = place("The number is four eight two one three.")
    answer2 = end2 + expected_latency
    assert _line_seconds(lines[1].text) > 3.0
    t = answer2 + END_SLACK_S + 1.2
    barge, end3 = place("Sorry, wait, one more thing.")
    n = int((end3 + expected_latency + _line_seconds(lines[2].text) + 1.0) * SR)
    caller = np.zeros(n, dtype=np.float32)
    for start, audio in pieces:
        i = int(round(start * SR))
        caller[i : i + len(audio)] += audio
    return Call(caller, [end1, end2, end3], (p0, p1), barge, lines)


@pytest.fixture(scope="module")
def call() -> Call:
    return build_call()


@pytest.fixture(scope="module")
def result(call):
    return run_cascade(
        call.caller, call.lines, silence_ms=SILENCE_MS, barge_min_ms=BARGE_MIN_MS, processing_ms=PROCESSING_MS
    )


def test_answers_each_turn_end_after_silence_plus_processing(call, result):
    spoken = [t for t in result.turns if t.start_s is not None]
    assert [t.line for t in spoken] == [0, 1, 2]
    base = (SILENCE_MS + PROCESSING_MS) / 1000
    for turn, end in zip(spoken, call.turn_ends):
        latency = turn.start_s - end
        assert base - 0.01 <= latency <= base + END_SLACK_S, (turn, end)
    # the metric sees the same: every turn end taken, latency about silence + processing
    latencies = metrics.turn_taking(call.turn_ends, result.track.speech)
    assert all(x is not None and base - 0.01 <= x <= base + END_SLACK_S + 0.02 for x in latencies)


def test_no_answer_in_the_mid_turn_pause(call, result):
    s, e = call.pause
    assert e - s < SILENCE_MS / 1000
    assert not np.any(result.agent_audio[int(s * SR) : int((e + 0.5) * SR)])
    assert metrics.pause_takeovers([call.pause], result.track.speech) == [False]


def test_barge_in_stops_the_agent_within_barge_min_plus_a_chunk(call, result):
    cut = result.turns[1]
    assert cut.outcome == "barged_in"
    assert cut.start_s < call.barge_onset < cut.end_s
    assert cut.end_s - call.barge_onset <= BARGE_MIN_MS / 1000 + ONSET_SLACK_S
    assert cut.end_s - call.barge_onset >= BARGE_MIN_MS / 1000 - 0.01
    # silent (after the 8 ms fade) from then until the next answer
    quiet_from = int((cut.end_s + 0.01) * SR)
    assert not np.any(result.agent_audio[quiet_from : int(result.turns[2].start_s * SR)])
    stops = metrics.barge_in_stops([call.barge_onset], result.track.speech)
    assert len(stops) == 1 and stops[0] <= BARGE_MIN_MS / 1000 + ONSET_SLACK_S + 0.03
    # the cut line's text keeps only the words begun before the cut
    full = call.lines[1].text.split()
    assert 0 < len(cut.text.split()) < len(full)
    assert full[: len(cut.text.split())] == cut.text.split()


def test_result_shape_text_and_determinism(call, result):
    assert result.agent_audio.dtype == np.float32
    assert result.agent_audio.shape == call.caller.shape
    assert result.track.floor == [] and result.track.tool_calls == []
    assert [t.outcome for t in result.turns] == ["finished", "barged_in", "finished"]
    assert result.track.text == " ".join(t.text for t in result.turns)
    assert result.track.text.startswith(call.lines[0].text)
    assert result.track.text.endswith(call.lines[2].text)
    assert len(result.vad_probs) == -(-len(call.caller) // 512)
    again = run_cascade(
        call.caller, call.lines, silence_ms=SILENCE_MS, barge_min_ms=BARGE_MIN_MS, processing_ms=PROCESSING_MS
    )
    assert np.array_equal(again.agent_audio, result.agent_audio)
    assert again.turns == result.turns


def test_runs_much_faster_than_real_time(call):
    t0 = time.perf_counter()
    run_cascade(call.caller, call.lines)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.2 * len(call.caller) / SR


def test_caller_backchannel_during_agent_speech_stops_the_cascade(call):
    """The cascade's weakness: a 0.4 s "uh-huh" over the agent cuts it like a barge-in."""
    audio, s, _ = _utterance("uh-huh, okay.")
    x = call.caller.copy()
    start = call.turn_ends[1] + (SILENCE_MS + PROCESSING_MS) / 1000 + 1.2 + END_SLACK_S
    i = int(round((start - s) * SR))
    end = call.turn_ends[2] - 0.5  # drop the real barge-in: keep only the backchannel
    x[int((start - 0.1) * SR) : int(end * SR) + 4 * SR] = 0.0
    x[i : i + len(audio)] += audio
    r = run_cascade(
        x, call.lines, silence_ms=SILENCE_MS, barge_min_ms=BARGE_MIN_MS, processing_ms=PROCESSING_MS
    )
    assert r.turns[1].outcome == "barged_in"
    assert metrics.backchannel_false_stops([(start, start + len(audio) / SR)], r.track.speech) == [True]


def test_own_echo_without_cancellation_cuts_the_agent(call):
    """With its own voice leaking back (no echo cancellation), the first line cuts itself."""
    r = run_cascade(
        call.caller,
        call.lines[:1],
        silence_ms=SILENCE_MS,
        barge_min_ms=BARGE_MIN_MS,
        processing_ms=PROCESSING_MS,
        echo_gain=0.5,
        echo_delay_ms=60,
    )
    first = r.turns[0]
    assert first.outcome == "barged_in"
    assert first.end_s - first.start_s <= (60 + BARGE_MIN_MS) / 1000 + ONSET_SLACK_S + 0.05


def test_a_pending_answer_is_cancelled_by_caller_speech_and_kept_for_later(call):
    """Caller resumes after silence_ms but before the processing latency has passed."""
    audio, _, _ = _utterance("And another thing.")
    x = call.caller.copy()
    resume = call.turn_ends[0] + SILENCE_MS / 1000 + 0.1
    x[int(resume * SR) : int(resume * SR) + len(audio)] += audio
    r = run_cascade(x, call.lines, silence_ms=SILENCE_MS, barge_min_ms=BARGE_MIN_MS, processing_ms=800)
    assert r.turns[0].outcome == "cancelled" and r.turns[0].start_s is None
    assert r.turns[1].line == 0 and r.turns[1].start_s is not None  # the same line, later


def test_after_turn_end_holds_a_line_back(call):
    lines = [AgentLine(call.lines[0].text, after_turn_end=1)]
    r = run_cascade(call.caller, lines, silence_ms=SILENCE_MS, processing_ms=PROCESSING_MS)
    assert len(r.turns) == 1
    base = (SILENCE_MS + PROCESSING_MS) / 1000
    assert base - 0.01 <= r.turns[0].start_s - call.turn_ends[1] <= base + END_SLACK_S


@pytest.mark.parametrize(
    "bad, why",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 1600), dtype=np.float32), "1-D"),
        (np.zeros(1600, dtype=np.int16), "float32"),
        (np.full(1600, np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_rejects_bad_caller(bad, why):
    with pytest.raises(ValueError, match=why):
        run_cascade(bad, [])


def test_rejects_unknown_language_and_bad_parameters():
    x = np.zeros(1600, dtype=np.float32)
    with pytest.raises(ValueError, match="lang"):
        run_cascade(x, [AgentLine("hola", lang="fr")])
    with pytest.raises(ValueError, match="silence_ms"):
        run_cascade(x, [], silence_ms=-1)
    with pytest.raises(ValueError, match="threshold"):
        run_cascade(x, [], threshold=0.3, neg_threshold=0.4)


def test_silence_gives_silence():
    r = run_cascade(np.zeros(2 * SR, dtype=np.float32), [AgentLine("Hello.")])
    assert r.turns == [] and not np.any(r.agent_audio) and r.track.speech == [] and r.track.text == ""


# --------------------------------------------------------------------------- a reactive caller


def _clip(text: str) -> np.ndarray:
    """The caller saying `text`, from its first audible sample (an interjection's onset)."""
    audio, s, e = _utterance(text)
    return audio[int(s * SR) : int(round(e * SR))]


def test_an_interjection_meets_the_cascade_talking_and_cuts_it(call):
    from evaluation.cascade import run_cascade_reactive
    from evaluation.interjections import FRAME, InterjectionPlayer, speaking_for
    from evaluation.scenarios import Interjection

    kw = {"silence_ms": SILENCE_MS, "barge_min_ms": BARGE_MIN_MS, "processing_ms": PROCESSING_MS}
    x = call.caller.copy()
    x[int((call.barge_onset - 0.1) * SR) :] = 0.0  # no scripted barge-in: the long line plays out
    base = run_cascade(x, call.lines, **kw)
    line = base.turns[1]
    assert line.outcome in ("finished", "call_ended") and line.end_s - line.start_s > 3.0
    ij = Interjection(
        "barge_in",
        "wait.wav",
        _clip("Sorry, wait, one more thing."),
        not_before=line.start_s,
        after_speech_s=1.0,
    )
    player = InterjectionPlayer([ij], len(x))
    r = run_cascade_reactive(x, call.lines, player, **kw)
    onset = player.onsets[0]
    expected = next(
        k * FRAME
        for k in range(len(x) // FRAME)
        if k * FRAME >= line.start_s * SR and speaking_for(base.agent_audio, k * FRAME, 1.0)
    )
    assert onset == expected and onset / SR >= line.start_s + 1.0
    assert np.array_equal(r.agent_audio[:onset], base.agent_audio[:onset])  # causal: same until then
    cut = r.turns[1]
    assert cut.line == 1 and cut.outcome == "barged_in" and cut.start_s < onset / SR < cut.end_s
    stops = metrics.barge_in_stops([onset / SR], r.track.speech)
    assert len(stops) == 1
    assert BARGE_MIN_MS / 1000 - 0.01 <= stops[0] <= BARGE_MIN_MS / 1000 + ONSET_SLACK_S + 0.03


def test_a_backchannel_interjection_cuts_the_cascade_too(call):
    from evaluation.cascade import run_cascade_reactive
    from evaluation.interjections import InterjectionPlayer
    from evaluation.scenarios import Interjection

    kw = {"silence_ms": SILENCE_MS, "barge_min_ms": BARGE_MIN_MS, "processing_ms": PROCESSING_MS}
    x = call.caller.copy()
    x[int((call.barge_onset - 0.1) * SR) :] = 0.0
    clip = _clip("uh-huh, okay.")
    player = InterjectionPlayer([Interjection("backchannel", "bc.wav", clip, after_speech_s=1.5)], len(x))
    r = run_cascade_reactive(x, call.lines, player, **kw)
    onset = player.onsets_s[0]
    assert onset is not None and r.turns[0].start_s + 1.5 <= onset < r.turns[0].end_s
    assert r.turns[0].outcome == "barged_in"
    assert metrics.backchannel_false_stops([(onset, onset + len(clip) / SR)], r.track.speech) == [True]


def test_without_interjections_the_reactive_cascade_is_the_cascade(call, result):
    from evaluation.cascade import run_cascade_reactive
    from evaluation.interjections import InterjectionPlayer
    from evaluation.scenarios import Interjection

    kw = {"silence_ms": SILENCE_MS, "barge_min_ms": BARGE_MIN_MS, "processing_ms": PROCESSING_MS}
    never = Interjection("barge_in", "late.wav", _clip("Wait."), not_after=0.1)
    for player in (InterjectionPlayer([], len(call.caller)), InterjectionPlayer([never], len(call.caller))):
        r = run_cascade_reactive(call.caller, call.lines, player, **kw)
        assert np.array_equal(r.agent_audio, result.agent_audio) and r.turns == result.turns
        assert player.onsets == [None] * len(player.interjections)
