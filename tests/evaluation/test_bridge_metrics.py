"""evaluation.bridge_metrics on hand-built intervals and text, and on a constructed heard signal."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.bridge_metrics import (
    direction_goals,
    direction_result,
    ear_voice_spans,
    intersection_s,
    overlap_share,
    summarize_direction,
)
from evaluation.metrics import chrf, speech_intervals

SR = 16_000


def test_each_phrase_takes_the_next_heard_onset_in_order():
    sources = [(1.0, 2.0), (2.2, 3.0), (8.0, 9.0)]
    heard = [(2.5, 4.0), (4.3, 5.0), (9.5, 10.0)]
    assert ear_voice_spans(sources, heard) == pytest.approx([1.5, 2.1, 1.5])


def test_speech_already_sounding_at_a_phrase_onset_is_not_its_translation():
    # The interpreter is still translating the first phrase when the second starts at 3.0.
    sources = [(0.5, 1.5), (3.0, 4.0)]
    heard = [(1.4, 3.6), (4.5, 5.5)]
    assert ear_voice_spans(sources, heard) == pytest.approx([0.9, 1.5])


def test_a_phrase_with_nothing_within_the_window_is_missed_and_takes_nothing():
    sources = [(1.0, 2.0), (20.0, 21.0)]
    heard = [(22.0, 23.0)]
    assert ear_voice_spans(sources, heard, window_s=10.0) == [None, pytest.approx(2.0)]
    assert ear_voice_spans([(1.0, 2.0)], []) == [None]
    # Two phrases never share one onset: the second finds none left.
    assert ear_voice_spans([(1.0, 1.5), (1.6, 2.0)], [(2.5, 4.0)]) == [pytest.approx(1.5), None]


def test_overlap_share_is_listener_speech_with_the_interpreter_sounding():
    listener = [(0.0, 2.0), (5.0, 6.0)]
    interpreter = [(1.0, 5.5), (7.0, 8.0)]
    overlap, total = overlap_share(listener, interpreter)
    assert (overlap, total) == pytest.approx((1.5, 3.0))
    assert intersection_s([(0, 1), (0.5, 2)], [(1.5, 3)]) == pytest.approx(0.5)  # overlapping input merged
    assert overlap_share([], interpreter) == (0.0, 0.0)


def test_direction_result_on_a_constructed_heard_signal():
    """A listener's audio with two bursts of 'interpreter' speech, heard 1.2 s after each phrase."""
    heard = np.zeros(8 * SR, np.float32)
    t = np.arange(SR) / SR
    for onset in (1.7, 4.2):
        heard[int(onset * SR) : int(onset * SR) + SR] = 0.2 * np.sin(2 * np.pi * 220 * t)
    iv = speech_intervals(heard, SR)
    result = direction_result(
        sources=[(0.5, 1.5), (3.0, 4.0)],
        references=["Hola, me llamo Ana", "y llamo por mi cita"],
        listener=[(4.5, 6.0)],
        heard=iv,
        heard_text="hola me llamo Ana y llamo por mi cita",
        interpreter_text="hola me llamo",
    )
    assert result.spans == pytest.approx([1.2, 1.2], abs=0.021)  # 20 ms energy frames
    assert result.overlap_s == pytest.approx(0.7, abs=0.021) and result.listener_s == pytest.approx(1.5)
    assert result.chrf == pytest.approx(
        chrf("hola me llamo Ana y llamo por mi cita", "Hola, me llamo Ana y llamo por mi cita")
    )
    assert 0 < result.text_chrf < result.chrf
    unheard = direction_result([(0.5, 1.5)], ["hola"], [], [], None, "")
    assert unheard.chrf is None and unheard.spans == [None] and unheard.text_chrf == 0.0


def test_summary_pools_calls_and_says_which_goals_are_met():
    a = direction_result(
        [(0.0, 1.0), (2.0, 3.0)],
        ["buenos días", "gracias"],
        [(5.0, 6.0)],
        [(1.0, 2.5), (3.5, 5.5)],
        "buenos días gracias",
        "buenos",
    )
    b = direction_result([(0.0, 1.0)], ["adiós"], [(0.0, 2.0)], [(4.0, 4.5)], "hola", "adiós")
    s = summarize_direction([a, b])
    assert s["calls"] == 2 and s["n_phrases"] == 3 and s["n_phrases_missed"] == 0
    assert s["ear_voice_span_p50"] == pytest.approx(1.5) and s["ear_voice_span_p90"] == pytest.approx(
        3.5
    )  # of 1.0, 1.5, 4.0
    assert s["overlap_share"] == pytest.approx(0.5 / 3.0) and s["listener_speech_s"] == pytest.approx(3.0)
    # chrF pools the n-gram counts: between the two calls' own scores.
    assert min(a.chrf, b.chrf) < s["chrf"] < max(a.chrf, b.chrf)
    rows = {g["key"]: g for g in direction_goals(s)}
    assert rows["ear_voice_span_p50"]["met"] is True and rows["chrf"]["goal"] == ">= 30"
    assert rows["chrf"]["met"] is (s["chrf"] >= 30)
    empty = summarize_direction([])
    assert empty["chrf"] is None and empty["overlap_share"] is None
    assert [g["met"] for g in direction_goals(empty)] == [None, None]
