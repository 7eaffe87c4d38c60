"""The evaluation harness: its leg, tool router and echo rule on hand-built inputs, and `parley eval`
end to end with the tiny preset (random weights) through the real model server."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from agent.model_client import ToolCall
from evaluation.metrics import AgentTrack, Annotations
from evaluation.run import EvalLeg, N, ScenarioToolRouter, echo_intervals, model_cuts
from evaluation.scenarios import Scenario, ToolResult
from parley.cli import main
from telephony.wav import write_pcm16

pytestmark = pytest.mark.timeout(120)


def call(name: str, arguments: dict | None) -> ToolCall:
    return ToolCall(seq=3, t_ms=600, id="s-3", name=name, arguments=arguments)


async def test_tool_router_answers_matching_calls_and_refuses_the_rest():
    sc = Scenario(
        "t",
        "support",
        np.zeros(N, np.float32),
        Annotations(),
        tool_results=[
            ToolResult("lookup_order", {"order_id": "A-12"}, result={"status": "shipped"}),
            ToolResult("create_return", {"order_id": "A-12"}, error="return window closed"),
        ],
    )
    router = ScenarioToolRouter(sc)
    ok = await router.call(None, call("lookup_order", {"Order_ID": "a12"}))  # normalised arguments match
    assert (ok.kind, json.loads(ok.payload)) == ("tool_result", {"status": "shipped"})
    err = await router.call(None, call("create_return", {"order_id": "A-12"}))
    assert (err.kind, json.loads(err.payload)) == ("tool_error", "return window closed")
    for wrong in (
        call("lookup_order", {"order_id": "B-7"}),
        call("search_faq", {"order_id": "A-12"}),
        call("lookup_order", None),
    ):
        miss = await router.call(None, wrong)
        assert (miss.kind, json.loads(miss.payload)) == ("tool_error", "unknown request")
    assert router.unmatched == 3


async def test_eval_leg_lays_each_micro_turn_one_frame_after_the_frame_it_read():
    leg = EvalLeg("c", "support", n_frames=6)
    waiter = asyncio.create_task(leg.wait_answered(3, timeout=5))
    leg.notify("turn", {"seq": 0, "t_ms": 0, "frame": 3, "floor": "speak"})
    leg.play(np.full(N, 7, np.int16))
    leg.notify("transcript", {"role": "agent", "t_ms": 0, "text": "hi"})
    assert await waiter
    assert (
        np.all(leg.audio[4 * N : 5 * N] == 7)
        and not leg.audio[: 4 * N].any()
        and not leg.audio[5 * N :].any()
    )
    assert leg.floor == {3: "speak"} and leg.text == {3: "hi"} and leg.seq_frame == {0: 3}
    assert not await leg.wait_answered(4, timeout=0.01)
    leg.notify("turn", {"seq": 1, "t_ms": 200, "frame": 9, "floor": "speak"})  # past the call: not laid
    leg.play(np.full(N, 1, np.int16))
    assert leg.stray_frames == 1


def test_model_cuts_are_speech_ends_next_to_a_yield():
    floor = (
        ["speak"] * 5 + ["yield", "listen"] + ["speak"] * 3 + ["listen"] * 2
    )  # floor k sounds at 0.2 + 0.2k
    track = AgentTrack(speech=[(0.2, 1.2), (1.6, 2.2)], floor=floor)
    assert model_cuts(track) == [1.2]


def test_echo_runs_on_past_a_stop_made_while_only_the_echo_was_heard():
    speech = [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
    ann = Annotations(caller_speech=[(3.7, 4.5)])
    # cut at 2.0 with the caller silent: a false stop; cut at 4.0 while the caller spoke: a barge-in
    echoes = echo_intervals(speech, 0.1, ann, cuts=[2.0, 4.0], extend_s=1.0)
    assert echoes == [(1.1, 3.1), (3.1, 4.1), (5.1, 6.1)]
    assert echo_intervals(speech, 0.1, ann) == [(s + 0.1, e + 0.1) for s, e in speech]


# ------------------------------------------------------------------------------------- end to end


def bursts(spans: list[tuple[float, float]], seconds: float, rate: int = 8000) -> np.ndarray:
    """Voiced-sounding bursts (harmonics of 140 Hz) at `spans`, silence elsewhere."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    gate = np.zeros_like(t)
    for s, e in spans:
        gate[(t >= s) & (t < e)] = 1.0
    return (0.1 * gate * voiced).astype(np.float32)


def write_scenario(directory: Path, name: str, spans, seconds: float, data: dict) -> None:
    x = bursts(spans, seconds)
    write_pcm16(directory / f"{name}.wav", np.round(x * 32767).astype("<i2"), 8000)
    (directory / f"{name}.json").write_text(json.dumps(data))


def test_parley_eval_end_to_end_with_the_tiny_preset(tmp_path, capsys):
    scen = tmp_path / "scenarios"
    scen.mkdir()
    # "wait!" once the agent talks 0.4 s
    write_pcm16(scen / "order.int0.wav", np.round(bursts([(0.0, 0.3)], 0.3) * 32767).astype("<i2"), 8000)
    write_scenario(
        scen,
        "order",
        [(0.2, 1.0), (1.5, 2.2), (3.4, 3.9)],
        4.0,
        {
            "agent": "support",
            "annotations": {
                "turn_ends": [2.2],
                "pauses": [[1.0, 1.5]],
                "barge_ins": [3.4],
                "caller_speech": [[0.2, 1.0], [1.5, 2.2], [3.4, 3.9]],
                "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-12"}}],
            },
            "echo": {"delay_ms": 60, "attenuation_db": 20},
            "tool_results": [
                {
                    "name": "lookup_order",
                    "arguments": {"order_id": "A-12"},
                    "result": {"status": "shipped"},
                    "delay_s": 0.5,
                }
            ],
            "agent_lines": [{"text": "Let me check.", "after_turn_end": 0}],
            "events": [{"t": 0.6, "kind": "dtmf", "payload": "1"}],
            "interjections": [
                {"kind": "barge_in", "wav": "order.int0.wav", "not_before": 2.4, "after_speech_s": 0.4}
            ],
        },
    )
    write_scenario(
        scen,
        "interpret",
        [(0.2, 1.4)],
        3.0,
        {
            "agent": "translate-en-es",
            "annotations": {
                "turn_ends": [1.4],
                "caller_speech": [[0.2, 1.4]],
                "translations": ["Hola, buenos días."],
            },
            "agent_lines": [{"text": "Hola, buenos días.", "after_turn_end": 0, "lang": "es"}],
        },
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "--preset",
                "tiny",
                "--scenarios",
                str(scen),
                "--out",
                str(out),
                "--no-asr",
                "--tick-ms",
                "100",
                "--threads",
                "1",
                "--save-audio",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["calls"] == 2 and printed["goals"] == 8

    html = (out / "report.html").read_text()
    assert "latency_cdf.png" in html and "timelines/order.png" in html and "not met" in html
    assert "interjections played" in html
    for png in ("latency_cdf.png", "timelines/order.png", "timelines/interpret.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with wave.open(str(out / "audio" / "order.wav")) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 16000 and w.getnframes() == 21 * N

    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["calls"] == 2 and results["meta"]["tick_ms"] == 100
    calls = {c["name"]: c for c in results["calls"]}
    assert set(calls) == {"order", "interpret"}
    order = calls["order"]["model"]
    frames = 20  # 4 s of caller audio
    assert order["session"]["frames"] == frames and order["session"]["frames_sent"] == frames
    assert order["session"]["turns"] >= frames - 3  # a loaded machine may skip a late frame or two
    assert len(order["floor"]) == frames and set(order["floor"]) <= {
        "listen",
        "backchannel",
        "speak",
        "yield",
    }
    assert all(0 <= s < e <= (frames + 1) * 0.2 + 1e-9 for s, e in order["speech"])
    m = order["metrics"]
    assert len(m["turns"]) == 1 and len(m["pauses"]) == 1
    assert all(x is None or 0 <= x <= 2.0 for x in m["turns"])
    assert m["tools"]["expected"] == 1 and m["word_errors"] is None
    assert calls["order"]["echo"] == {"delay_ms": 60, "attenuation_db": 20}
    assert len(calls["order"]["annotations"]["echoes"]) == len(order["speech"])  # one per utterance
    assert calls["interpret"]["model"]["metrics"]["chrf"] is not None
    (played,) = order["session"]["interjections"]
    assert played["kind"] == "barge_in" and (played["onset_s"] is None or 2.4 <= played["onset_s"] <= 3.7)
    if played["onset_s"] is not None:  # scored as a barge-in at its onset
        assert played["onset_s"] in calls["order"]["annotations"]["barge_ins"]

    summary = results["summary"]["model"]
    assert summary["calls"] == 2 and summary["n_turn_ends"] == 2 and summary["n_pauses"] == 1
    assert summary["n_interjections_planned"] == 1
    assert summary["n_interjections_triggered"] == (played["onset_s"] is not None)
    for key in ("pause_takeover_rate", "turn_taking_rate", "false_stop_rate_echo", "tool_call_accuracy"):
        assert summary[key] is None or 0.0 <= summary[key] <= 1.0
    assert 0.0 <= summary["chrf"] <= 100.0
    assert [g["key"] for g in results["goals"]][-1] == "wer" and results["goals"][-1]["model_met"] is None
    # Each agent's calls pooled on their own: the interpreter's turn does not hide the support agent's.
    by_agent = results["summary"]["by_agent"]
    assert set(by_agent) == {"support", "translate-en-es"}
    support, interpreter = by_agent["support"]["model"], by_agent["translate-en-es"]["model"]
    assert support["n_pauses"] == 1 and interpreter["n_pauses"] == 0
    assert support["chrf"] is None and interpreter["chrf"] is not None
    assert support["tool_calls_expected"] == 1 and interpreter["tool_calls_expected"] == 0
    assert printed["turn_taking_by_agent"] == {a: s["model"]["turn_taking_rate"] for a, s in by_agent.items()}
    assert "translate-en-es calls only" in html
    if "cascade" in results["summary"]:  # the baseline ran (silero-vad and espeak-ng installed)
        assert all("cascade" in c for c in results["calls"])
        assert results["summary"]["cascade"]["n_turn_ends"] == 2
        cascade = by_agent["support"]["cascade"]
        assert cascade["n_turn_ends"] == 1 and cascade["tool_call_accuracy"] is None
        assert cascade["n_interjections_planned"] == 1
        assert len(calls["order"]["cascade"]["interjections"]) == 1
    else:
        assert any("cascade" in n for n in results["notes"])
