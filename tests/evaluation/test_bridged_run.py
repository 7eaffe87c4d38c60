"""evaluation.bridged: its per-direction scoring on a hand-built record, and `parley eval --bridged`
end to end with the tiny preset (random weights): a short two-party
scenario as a bridged call, both parties over real websockets into one room of the real gateway in
front of the real model server, in real time. Asserted: the structure (both parties' audio was
recorded, both directions scored, the report written), never quality. The recogniser runs where
the `eval` extra is installed; without it chrF is None and a note says why."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from evaluation import asr
from evaluation.bridged import BridgedRecord, evaluate_bridged
from evaluation.metrics import Annotations
from evaluation.scenarios import BridgeParty, Scenario
from parley.cli import main
from telephony.wav import write_pcm16
from tests.evaluation.test_run import bursts

pytestmark = pytest.mark.timeout(180)

A_SPEECH = [(0.3, 1.3)]
B_SPEECH = [(1.9, 2.9)]
SECONDS = 3.4


def write_bridged_scenario(directory) -> None:
    for name, spans in (("call", A_SPEECH), ("call.b", B_SPEECH)):
        x = bursts(spans, SECONDS, 16000)
        write_pcm16(directory / f"{name}.wav", np.round(x * 32767).astype("<i2"), 16000)
    (directory / "call.json").write_text(
        json.dumps(
            {
                "agent": "translate-en-es",
                "annotations": {"caller_speech": A_SPEECH, "translations": ["Hola, buenos días."]},
                "bridge": {
                    "agent": "translate-es-en",
                    "wav": "call.b.wav",
                    "annotations": {"caller_speech": B_SPEECH, "translations": ["Thank you very much."]},
                },
            }
        )
    )


def test_each_direction_is_scored_on_what_its_listener_heard():
    """A hand-built record: B heard A's interpreter at 2.0-3.5 s (over B's own speech from 3.0 s),
    A heard B's at 5.0-6.0 s."""
    ann_a = Annotations(caller_speech=[(0.5, 1.5)], translations=["hola amigos"])
    ann_b = Annotations(caller_speech=[(3.0, 4.0)], translations=["thank you"])
    n = 7 * 16000
    sc = Scenario("s", "translate-en-es", np.zeros(n, np.float32), ann_a)
    sc.bridge = BridgeParty("translate-es-en", "s.b.wav", np.zeros(n, np.float32), ann_b)
    heard = {"a": np.zeros(n, np.int16), "b": np.zeros(n, np.int16)}
    heard["b"][2 * 16000 : int(3.5 * 16000)] = 3000
    heard["a"][5 * 16000 : 6 * 16000] = 3000
    record = BridgedRecord(sc, heard, {"a": "thank you", "b": "hola"}, {})
    results = evaluate_bridged([record], asr=False)
    (call,) = results["calls"]
    a_to_b, b_to_a = call["a_to_b"], call["b_to_a"]
    assert (a_to_b["interpreter"], a_to_b["language"], b_to_a["language"]) == ("translate-en-es", "es", "en")
    assert a_to_b["ear_voice_spans"] == [1.5] and b_to_a["ear_voice_spans"] == [2.0]
    assert (a_to_b["overlap_s"], a_to_b["listener_speech_s"]) == (0.5, 1.0) and b_to_a["overlap_s"] == 0.0
    assert b_to_a["text_chrf"] == 100.0 and 0 < a_to_b["text_chrf"] < 100  # "hola" of "hola amigos"
    assert a_to_b["heard_text"] is None and results["summary"]["a_to_b"]["chrf"] is None
    assert results["summary"]["a_to_b"]["overlap_share"] == 0.5
    assert [g["met"] for g in results["goals"]["a_to_b"]] == [None, True]  # no chrF; span 1.5 <= 2.0


def test_parley_eval_bridged_end_to_end_with_the_tiny_preset(tmp_path, capsys):
    scen = tmp_path / "scenarios"
    scen.mkdir()
    write_bridged_scenario(scen)
    with_asr = asr.available() and asr.available(asr.MULTILINGUAL)
    out = tmp_path / "report"
    argv = ["eval", "--bridged", "--preset", "tiny", "--scenarios", str(scen), "--out", str(out)]
    argv += ["--threads", "1", "--max-slots", "2", "--save-audio"] + ([] if with_asr else ["--no-asr"])
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["calls"] == 1 and printed["goals"] == {"a_to_b": 2, "b_to_a": 2}

    results = json.loads((out / "results.json").read_text())
    (call,) = results["calls"]
    assert call["agents"] == {"a": "translate-en-es", "b": "translate-es-en"}
    session = call["session"]
    n_chunks = round(session["seconds"] * 50)
    assert session["seconds"] >= SECONDS + 1.0  # the scenario, then the tail
    for party in ("a", "b"):
        assert session["parties"][party]["closed"] is not None
    if session["cut_short"]:  # random weights made an end_call: the call ended for both, early
        assert set(session["cut_short"]) == {"a", "b"} and any("end_call" in n for n in results["notes"])
    else:  # both parties streamed everything and heard their interpreter
        for party in ("a", "b"):
            p = session["parties"][party]
            assert p["chunks_sent"] == n_chunks and p["agent_packets"] > 0.5 * n_chunks
        assert session["parties"]["a"]["closed"][0] == 1000  # A hung up, then B was, with the reason
        assert session["parties"]["b"]["closed"] == [1000, "the other party hung up"]
    with wave.open(str(out / "audio" / "call.wav")) as w:  # what A heard (left) and B heard (right)
        assert w.getnchannels() == 2 and w.getnframes() == n_chunks * 320

    for direction, interpreter, language in (
        ("a_to_b", "translate-en-es", "es"),
        ("b_to_a", "translate-es-en", "en"),
    ):
        d = call[direction]
        assert (d["interpreter"], d["language"]) == (interpreter, language)
        assert len(d["ear_voice_spans"]) == 1 and len(d["references"]) == 1
        assert all(x is None or 0.0 <= x <= 10.0 for x in d["ear_voice_spans"])
        assert all(0.0 <= s < e <= session["seconds"] + 1e-6 for s, e in d["heard_speech"])
        assert 0.0 <= d["overlap_s"] <= d["listener_speech_s"] == pytest.approx(1.0, abs=0.02)
        assert 0.0 <= d["text_chrf"] <= 100.0
        s = results["summary"][direction]
        assert s["interpreter"] == interpreter and s["n_phrases"] == 1 and s["calls"] == 1
        assert s["overlap_share"] is not None and 0.0 <= s["overlap_share"] <= 1.0
        if with_asr:
            assert isinstance(d["heard_text"], str) and 0.0 <= s["chrf"] <= 100.0
            # The references in the interpreter's trained voice: the recogniser's ceiling (espeak-ng).
            assert s["reference_chrf"] is None or 0.0 <= s["reference_chrf"] <= 100.0
        else:
            assert d["heard_text"] is None and s["chrf"] is None
        assert [g["key"] for g in results["goals"][direction]] == ["chrf", "ear_voice_span_p50"]
    assert results["meta"]["calls"] == 1 and results["meta"]["ducking_db"] is None
    if not with_asr:
        assert any("text_chrf" in n for n in results["notes"])
    html = (out / "report.html").read_text()
    assert "bridged calls" in html and "timelines/call.png" in html and "translate-es-en" in html
    assert (out / "timelines" / "call.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plain_eval_refuses_a_directory_of_bridged_scenarios_only(tmp_path):
    scen = tmp_path / "scenarios"
    scen.mkdir()
    write_bridged_scenario(scen)
    argv = ["eval", "--preset", "tiny", "--scenarios", str(scen), "--out", str(tmp_path / "out"), "--no-asr"]
    assert main(argv) == 2  # nothing left to run: a clear error, not a bridged call run as a plain one
