"""evaluation.metrics on hand-built timelines whose answers are worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation import metrics as m
from evaluation.metrics import AgentTrack, Annotations

SR = 16_000
approx = pytest.approx


def three_turn_call() -> tuple[Annotations, AgentTrack]:
    """Caller turns end at 2, 6, 10 s, each with a mid-turn pause; the agent answers 0.3 s after
    each turn end and is silent in every pause."""
    ann = Annotations(
        turn_ends=[2.0, 6.0, 10.0],
        pauses=[(1.0, 1.5), (5.0, 5.6), (9.0, 9.8)],
        caller_speech=[(0.0, 1.0), (1.5, 2.0), (4.4, 5.0), (5.6, 6.0), (8.5, 9.0), (9.8, 10.0)],
    )
    track = AgentTrack(speech=[(2.3, 4.0), (6.3, 8.0), (10.3, 12.0)])
    return ann, track


# ---------------------------------------------------------------------------- turn taking, pauses


def test_prompt_agent_takes_every_turn_and_no_pause():
    ann, track = three_turn_call()
    r = m.evaluate_call(ann, track)
    assert r.turns == approx([0.3, 0.3, 0.3])
    assert r.pauses == [False, False, False]
    s = m.summarize([r])
    assert s["turn_taking_rate"] == 1.0
    assert s["turn_latency_p50"] == approx(0.3)
    assert s["turn_latency_p90"] == approx(0.3)
    assert s["pause_takeover_rate"] == 0.0
    assert s["n_pauses"] == 3 and s["n_turn_ends"] == 3


def test_turn_not_taken_when_late_or_caller_speaks_first():
    agent = [(2.8, 4.0)]
    # caller resumes at 2.5, before the agent's onset at 2.8
    assert m.turn_taking([2.0], agent, caller_speech=[(0.0, 2.0), (2.5, 3.0)]) == [None]
    # nobody speaks again: 0.8 s is inside the 2 s window
    assert m.turn_taking([2.0], agent) == [approx(0.8)]
    assert m.turn_taking([2.0], [(4.5, 6.0)]) == [None]
    assert m.turn_taking([2.0], [(4.5, 6.0)], window_s=3.0) == [approx(2.5)]


def test_speech_running_at_turn_end_counts_only_for_an_interpreter():
    assert m.turn_taking([2.0], [(1.5, 4.0)], overlap_counts=True) == [0.0]
    # a support agent still talking at the caller's turn end talked over it: not a take
    assert m.turn_taking([2.0], [(1.5, 4.0)]) == [None]
    assert m.turn_taking([2.0], [(1.5, 2.5), (3.0, 4.0)]) == [approx(1.0)]
    interpreting = m.Annotations(turn_ends=[2.0], translations=["hola"])
    support = m.Annotations(turn_ends=[2.0])
    running = m.AgentTrack(speech=[(1.5, 4.0)])
    assert m.evaluate_call(interpreting, running).turns == [0.0]
    assert m.evaluate_call(support, running).turns == [None]


def test_turn_taking_rate_and_percentiles_pool_over_calls():
    ann, track = three_turn_call()
    late = AgentTrack(speech=[(2.5, 4.0), (6.9, 8.0), (13.0, 14.0)])  # 0.5, 0.9, missed
    s = m.summarize([m.evaluate_call(ann, track), m.evaluate_call(ann, late)])
    assert s["turn_taking_rate"] == approx(5 / 6)
    # latencies 0.3 0.3 0.3 0.5 0.9: median 0.3, p90 = 0.5 + 0.6 * 0.4
    assert s["turn_latency_p50"] == approx(0.3)
    assert s["turn_latency_p90"] == approx(0.74)


def test_pause_takeover_rule():
    pauses = [(1.0, 1.8)]
    assert m.pause_takeovers(pauses, [(1.3, 3.0)]) == [True]  # long speech in the pause
    assert m.pause_takeovers(pauses, [(1.3, 1.9)]) == [False]  # 0.6 s backchannel: allowed
    assert m.pause_takeovers(pauses, [(1.9, 4.0)]) == [True]  # within the 0.2 s grace
    assert m.pause_takeovers(pauses, [(2.1, 4.0)]) == [False]  # after the caller resumed
    assert m.pause_takeovers(pauses, [(0.0, 4.0)]) == [False]  # no onset in the pause
    ann = Annotations(pauses=[(1.0, 1.8), (5.0, 6.0)])
    r = m.evaluate_call(ann, AgentTrack(speech=[(1.2, 3.0)]))
    assert m.summarize([r])["pause_takeover_rate"] == 0.5


# ------------------------------------------------------------------------ barge-in, false stops


def test_barge_in_stop_latency():
    agent = [(5.0, 8.4)]
    assert m.barge_in_stops([8.0], agent) == [approx(0.4)]
    assert m.barge_in_stops([9.0], agent) == []  # the agent was silent: nothing to stop
    ann = Annotations(barge_ins=[8.0, 20.0])
    track = AgentTrack(speech=[(5.0, 8.4), (15.0, 22.5)])
    s = m.summarize([m.evaluate_call(ann, track)])
    assert s["n_barge_ins"] == 2
    assert s["barge_in_stop_p50"] == approx(1.45)  # latencies 0.4 and 2.5
    assert s["barge_in_success_rate"] == 0.5  # 2.5 s is past the 2 s window
    assert m.summarize([m.evaluate_call(ann, track)], barge_window_s=3.0)["barge_in_success_rate"] == 1.0


def test_false_stops_on_caller_backchannels():
    bc = [(3.0, 3.5)]
    assert m.backchannel_false_stops(bc, [(0.0, 10.0)]) == [False]  # kept talking
    assert m.backchannel_false_stops(bc, [(0.0, 3.8)]) == [True]  # stopped 0.3 s after it
    assert m.backchannel_false_stops(bc, [(0.0, 4.2)]) == [False]  # 0.7 s after: its own end
    assert m.backchannel_false_stops(bc, [(4.0, 6.0)]) == []  # agent silent: not counted
    ann = Annotations(backchannels=[(3.0, 3.5), (7.0, 7.4)])
    r = m.evaluate_call(ann, AgentTrack(speech=[(0.0, 3.8), (6.0, 12.0)]))
    s = m.summarize([r])
    assert s["false_stop_rate_backchannel"] == 0.5 and s["n_caller_backchannels"] == 2


def test_false_stops_on_echo():
    echo = [(0.1, 5.1)]  # the agent's (0, 5) voice leaking back 100 ms late
    assert m.echo_false_stops(echo, [(0.0, 5.0)]) == [False]
    assert m.echo_false_stops(echo, [(0.0, 3.0)]) == [True]  # went quiet mid-utterance
    assert m.echo_false_stops(echo, [(6.0, 7.0)]) == []
    ann = Annotations(echoes=[(0.1, 5.1), (8.1, 10.1)])
    r = m.evaluate_call(ann, AgentTrack(speech=[(0.0, 5.0), (8.0, 9.0)]))
    assert m.summarize([r])["false_stop_rate_echo"] == 0.5


# ---------------------------------------------------------------------------- agent backchannels


def backchannel_scenario() -> Annotations:
    # one minute of caller time: two turns with a 0.8 s pause bridged between them
    return Annotations(pauses=[(30.0, 30.8)], caller_speech=[(0.0, 30.0), (30.8, 60.0)])


def test_backchannels_per_minute_from_floor_states():
    floor = ["listen"] * 400
    floor[9] = floor[10] = "backchannel"  # one run starting at 0.2 + 9 * 0.2 = 2.0 s
    floor[152] = "backchannel"  # 30.6 s: inside the bridged pause
    floor[330] = "backchannel"  # 66.2 s: caller silent, not counted
    r = m.evaluate_call(backchannel_scenario(), AgentTrack(floor=floor))
    assert r.agent_backchannels == 2
    assert r.caller_minutes == approx(1.0)
    assert m.summarize([r])["agent_backchannels_per_minute"] == approx(2.0)


def test_backchannels_per_minute_from_short_speech():
    # two short ones in caller time; a long turn and a short one while the caller is silent excluded
    speech = [(5.0, 5.4), (40.0, 40.5), (50.0, 55.0), (65.0, 65.3)]
    r = m.evaluate_call(backchannel_scenario(), AgentTrack(speech=speech))
    s = m.summarize([r, r])
    assert s["agent_backchannels_per_minute"] == approx(2.0)
    assert s["caller_minutes"] == approx(2.0)


# ------------------------------------------------------------------------------------ tool calls


EXPECTED = [("lookup_order", {"order_id": "AB-1234"}), ("book", {"date": "2024-05-01", "party": 4})]


def test_tool_accuracy_normalises_arguments():
    made = [
        (1.0, "lookup_order", {"order_id": "ab 1234"}),
        (5.0, "book", {"Date": "20240501", "party": "4.0"}),
    ]
    score = m.tool_call_accuracy(EXPECTED, made)
    assert (score.expected, score.correct, score.extra) == (2, 1, 0)  # "4.0" the string is not 4
    made[1] = (5.0, "book", {"Date": "2024 – 05 – 01", "party": 4.0})
    assert m.tool_call_accuracy(EXPECTED, made).accuracy == 1.0


def test_tool_accuracy_wrong_arguments_extras_and_order():
    wrong = [
        (1.0, "lookup_order", {"order_id": "AB-1235"}),
        (5.0, "book", {"date": "2024-05-01", "party": 4}),
    ]
    assert m.tool_call_accuracy(EXPECTED, wrong).accuracy == 0.5
    extra = [(0.5, "transfer", {})] + [(1.0, *EXPECTED[0]), (5.0, *EXPECTED[1])]
    assert m.tool_call_accuracy(EXPECTED, extra).accuracy == approx(2 / 3)
    # book before lookup: lookup matches, nothing after it for book; the early book is an extra
    swapped = [(1.0, *EXPECTED[1]), (5.0, *EXPECTED[0])]
    score = m.tool_call_accuracy(EXPECTED, swapped)
    assert (score.correct, score.extra) == (1, 1) and score.accuracy == approx(1 / 3)
    assert m.tool_call_accuracy([], []).accuracy is None
    assert m.tool_call_accuracy([], [(1.0, "transfer", {})]).accuracy == 0.0


def test_tool_accuracy_pools_in_summary():
    ann = Annotations(tool_calls=EXPECTED)
    good = m.evaluate_call(ann, AgentTrack(tool_calls=[(1.0, *EXPECTED[0]), (5.0, *EXPECTED[1])]))
    missed = m.evaluate_call(ann, AgentTrack(tool_calls=[(1.0, *EXPECTED[0])]))
    assert m.summarize([good, missed])["tool_call_accuracy"] == approx(3 / 4)


# ------------------------------------------------------------------------------------ chrF, WER


def test_chrf_identical_is_100_and_whitespace_is_ignored():
    assert m.chrf("¿Dónde está mi pedido?", "¿Dónde está mi pedido?") == approx(100.0)
    assert m.chrf("a b c", "abc") == approx(100.0)
    assert m.chrf("xyz", "abc") == 0.0


def test_chrf_hand_computed():
    # n=1: {a,b,c} vs {a,b,d}: P = R = 2/3; n=2: {ab,bc} vs {ab,bd}: 1/2; n=3: 0; n>3: neither side
    # P = R = (2/3 + 1/2 + 0) / 3 = 7/18, so F = 7/18
    assert m.chrf("abc", "abd") == approx(100 * 7 / 18)
    # "ab" vs "abc": P = (1 + 1 + 0)/3 = 2/3, R = (2/3 + 1/2 + 0)/3 = 7/18 (n=3 only the reference)
    # F2 = 5 P R / (4 P + R) = (70/54) / (55/18) = 14/33
    assert m.chrf("ab", "abc") == approx(100 * 14 / 33)


def test_chrf_summary_pools_ngram_counts():
    a = m.evaluate_call(Annotations(translations=["abc"]), AgentTrack(text="abd"))
    b = m.evaluate_call(Annotations(translations=["abc"]), AgentTrack(text="abc"))
    assert a.chrf == approx(100 * 7 / 18)
    # pooled n=1: 5/6, n=2: 3/4, n=3: 1/2, so P = R = (5/6 + 3/4 + 1/2)/3 = 25/36
    assert m.summarize([a, b])["chrf"] == approx(100 * 25 / 36)
    assert m.summarize([m.evaluate_call(Annotations(), AgentTrack(text="x"))])["chrf"] is None


def test_wer_known_values():
    assert m.wer("The cat, sat!", "the cat sat") == 0.0
    assert m.wer("a b c d", "a x c") == 0.5  # one substitution, one deletion
    assert m.wer("a b", "a b c") == 0.5  # one insertion
    assert m.wer("order number two", "") == 1.0
    assert m.word_errors("I'm here.", "im here") == (0, 2)
    with pytest.raises(ValueError):
        m.wer("", "anything")


def test_wer_pools_over_calls():
    r1 = m.evaluate_call(Annotations(), AgentTrack(text="a b c d"), asr_text="a x c")
    r2 = m.evaluate_call(Annotations(), AgentTrack(text="e f g h i j"), asr_text="e f g h i j")
    assert m.summarize([r1, r2])["wer"] == approx(2 / 10)
    assert m.summarize([m.evaluate_call(Annotations(), AgentTrack())])["wer"] is None


def test_percentiles():
    assert m.percentiles([0.1, 0.2, 0.3, 0.4, 0.5]) == {"p50": approx(0.3), "p90": approx(0.46)}
    assert m.percentiles([]) == {"p50": None, "p90": None}


# ------------------------------------------------------------------------------- audio intervals


def tone(seconds: float, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), np.float32)


def test_speech_intervals_merges_short_gaps_only():
    x = np.concatenate([silence(1.0), tone(0.5), silence(0.1), tone(0.3), silence(1.0)])
    assert m.speech_intervals(x, SR) == [approx((1.0, 1.9))]
    y = np.concatenate([silence(1.0), tone(0.5), silence(0.3), tone(0.3), silence(1.0)])
    assert m.speech_intervals(y, SR) == [approx((1.0, 1.5)), approx((1.8, 2.1))]
    pcm = (y * 32768).astype(np.int16)
    assert m.speech_intervals(pcm, SR) == [approx((1.0, 1.5)), approx((1.8, 2.1))]


def test_speech_intervals_threshold_and_edges():
    quiet = np.concatenate([tone(0.5, amplitude=0.003), silence(0.5)])  # about -53 dBFS
    assert m.speech_intervals(quiet, SR) == []
    assert m.speech_intervals(quiet, SR, threshold_db=-60) == [approx((0.0, 0.5))]
    ends_loud = np.concatenate([silence(0.5), tone(0.31)])  # last frame is short
    assert m.speech_intervals(ends_loud, SR) == [approx((0.5, 0.81))]
    assert m.speech_intervals(np.zeros(0), SR) == []


# --------------------------------------------------------------------------------- annotations


def test_annotations_load_round_trip(tmp_path):
    d = {
        "turn_ends": [2.0],
        "pauses": [[1.0, 1.5]],
        "backchannels": [[3, 3.4]],
        "barge_ins": [8],
        "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "AB-1"}}],
        "translations": ["hola"],
        "echoes": [[0.1, 0.5]],
        "caller_speech": [[0, 2]],
    }
    path = tmp_path / "call.json"
    path.write_text(json.dumps(d))
    ann = Annotations.load(path)
    assert ann.pauses == [(1.0, 1.5)] and ann.barge_ins == [8.0]
    assert ann.tool_calls == [("lookup_order", {"order_id": "AB-1"})]
    assert ann.echoes == [(0.1, 0.5)] and ann.caller_speech == [(0.0, 2.0)]
    with pytest.raises(ValueError, match="unknown keys"):
        Annotations.from_dict({"turn_end": [1.0]})


# ------------------------------------------------------------------- with the background model


def test_meant_text_counts_a_voiced_reply_once_and_keeps_the_agents_own_words():
    reply = "Your order is shipped."
    # "Sure." while the reply is coming, then the reply voiced over three micro-turns (the first
    # also ends the agent's own words), then words of its own.
    turns = [(1.0, "Sure. "), (1.6, "Ok. Your o"), (1.8, "rder is "), (2.0, "shipped."), (3.0, " Bye.")]
    assert m.meant_text(turns, [(1.5, reply)]) == "Sure. Ok. Your order is shipped. Bye."
    # The same reply never voiced: placed where it was given, whole.
    own = [(1.0, "Sure. "), (2.0, "Hmm. "), (3.0, "Bye.")]
    assert m.meant_text(own, [(1.5, reply)]) == "Sure. Your order is shipped. Hmm. Bye."
    # Cut short (the agent stopped after "Your"): still meant whole.
    assert m.meant_text([(1.6, "Your ")], [(1.5, reply)]) == reply
    # Given after the agent's last words, or with nothing written at all.
    assert m.meant_text([(1.0, "Hi.")], [(4.0, reply)]) == "Hi. " + reply
    assert m.meant_text([], [(0.5, "One."), (0.7, "Two.")]) == "One. Two."
    assert m.meant_text([(0.2, "He"), (0.4, "llo.")], []) == "Hello."


def test_meant_text_a_new_reply_replaces_what_is_left_of_the_last():
    turns = [(1.2, "Let me "), (2.2, "It is "), (2.4, "here.")]
    out = m.meant_text(turns, [(1.0, "Let me check that."), (2.0, "It is here.")])
    assert out == "Let me check that. It is here."


@pytest.mark.parametrize(
    "said",
    [
        "It shipped and arrives July 2nd.",
        "it was shipped, arriving july 2",
        "Shipped. It should arrive on July second.",
        "shipped, it will be there the 2nd of July",
        "Shipped, July the two.",
    ],
)
def test_answer_heard_is_tolerant_of_how_the_date_is_written(said):
    assert m.answer_heard(said, "shipped", "2025-07-02")


@pytest.mark.parametrize(
    "said",
    [
        "It arrives July 2nd.",  # no status
        "It shipped and arrives July 3rd.",  # the wrong day
        "It shipped and arrives June 2nd.",  # the wrong month
        "It shipped on the 2nd.",  # no month
        "It shipped in July and cost 2 dollars.",  # the day not next to the month
    ],
)
def test_answer_heard_wants_the_status_and_the_right_date(said):
    assert not m.answer_heard(said, "shipped", "2025-07-02")


def test_answer_heard_two_word_days_and_no_date():
    for said in ("delivered July twenty-second", "delivered July 22nd", "delivered july twenty two"):
        assert m.answer_heard(said, "delivered", "2025-07-22"), said
    assert not m.answer_heard("delivered July twenty", "delivered", "2025-07-22")
    assert m.answer_heard("delivered on July thirtieth", "delivered", "2025-07-30")
    assert m.answer_heard("it is processing", "processing", None)
    assert not m.answer_heard("it is shipped", "processing", None)


def test_background_figures_pool_over_the_calls_that_ran_it():
    ann = Annotations(turn_ends=[1.0], caller_speech=[(0.0, 1.0)])
    track = AgentTrack(speech=[(1.2, 3.0)], text="hello there")
    asr = "hello there it shipped july second"
    a = m.evaluate_call(
        ann,
        track,
        asr,
        meant="hello there it shipped july 2nd",
        lookups=[("shipped", "2025-07-02")],
        delays={"words": [0.6, 0.8], "reply_after_words": [1.0]},
    )
    assert a.word_errors == (4, 2) and a.meant_word_errors == (1, 6) and a.lookups_heard is True
    b = m.evaluate_call(
        ann,
        track,
        "hello",
        meant="hello there",
        lookups=[("shipped", "2025-07-02")],
        delays={"words": [1.0], "reply_after_tool": [2.0]},
    )
    assert b.meant_word_errors == (1, 2) and b.lookups_heard is False
    without = m.evaluate_call(ann, track, asr)  # no background: not pooled into its figures
    s = m.summarize([a, b, without])
    assert s["background_calls"] == 2
    assert s["agent_meant_wer"] == approx(2 / 8) and s["agent_meant_words"] == 8
    assert s["lookup_heard"] == 0.5 and s["n_lookup_calls"] == 2
    assert s["delay_words_p50"] == approx(0.8) and s["n_delay_words"] == 3
    assert s["delay_words_p90"] == approx(0.96)
    assert s["delay_reply_after_tool_p50"] == 2.0 and s["n_delay_reply_after_turn_end"] == 0
    assert s["delay_reply_after_turn_end_p50"] is None
    assert "agent_meant_wer" not in m.summarize([without])
    # No transcript: nothing heard or missed.
    c = m.evaluate_call(ann, track, None, meant="x", lookups=[("shipped", None)], delays={})
    assert c.lookups_heard is None and c.meant_word_errors is None and c.background
