"""The `parley` command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

REQUIRED_INFO = {
    "preset",
    "layers",
    "d_model",
    "experts",
    "top_k",
    "params_total",
    "params_active",
    "micro_turn_ms",
    "window_micro_turns",
    "kv_bytes_per_slot",
}
REQUIRED_BENCH = {"slots", "device", "tick_ms_p50", "tick_ms_p99", "realtime_factor", "peak_mem_bytes"}


def parley(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("preset", ["tiny", "small", "large", "xl"])
def test_model_info_prints_one_json_object(preset):
    res = parley("model", "info", "--preset", preset)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert REQUIRED_INFO <= set(info)
    assert info["micro_turn_ms"] == 200 and info["preset"] == preset
    assert info["params_active"] <= info["params_total"]


def test_model_info_of_a_checkpoint(tmp_path):
    import torch

    from model.checkpoint import save_checkpoint
    from model.config import ModelConfig
    from model.interaction import InteractionModel

    save_checkpoint(InteractionModel(ModelConfig.from_name("tiny")), tmp_path / "ck", dtype=torch.bfloat16)
    res = parley("model", "info", "--checkpoint", str(tmp_path / "ck"))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["d_model"] == 64


def test_bench_step_prints_figures():
    res = parley("bench", "step", "--preset", "tiny", "--slots", "3", "--ticks", "4")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert REQUIRED_BENCH <= set(out)
    assert out["slots"] == 3 and out["device"] == "cpu" and out["tick_ms_p99"] >= out["tick_ms_p50"] > 0
    assert "RANDOM weights" in res.stderr  # said loudly


def test_demo_writes_a_call_and_its_timeline(tmp_path):
    res = parley("demo", "--preset", "tiny", "--seconds", "1", "--out", str(tmp_path), "--agent", "support")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    assert out["micro_turns"] == len(timeline) == 5 and sum(out["floor_counts"].values()) == 5
    assert [e["t_ms"] for e in timeline] == [0, 200, 400, 600, 800]
    assert (tmp_path / "call.wav").stat().st_size == 44 + 5 * 3200 * 2 * 2  # stereo PCM16


def test_unknown_preset_is_a_clear_error():
    res = parley("model", "info", "--preset", "huge")
    assert res.returncode == 2
    assert "unknown model preset 'huge'" in res.stderr and "Traceback" not in res.stderr


def test_bench_resample_compares_soxr_stream_and_the_windowed_stream():
    res = parley("bench", "resample", "--seconds", "4")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    caller, agent = out["caller_side_8k_to_16k"], out["agent_side_16k_to_8k"]
    # The windowed stream hands each frame over one 20 ms chunk after it ends, and returns 200 ms
    # of agent audio per 200 ms frame a fixed 10 ms behind (soxr's stream: bursts, ~14-115 ms).
    assert caller["windowed"]["frame_wait_ms_max"] == 20
    assert caller["windowed_frame_at_a_time"]["frame_wait_ms_max"] == 20
    assert caller["soxr_stream"]["frame_wait_ms_max"] > 20
    assert agent["windowed"]["lag_ms_min"] == agent["windowed"]["lag_ms_max"] == 10
    assert agent["windowed"]["push_sizes"] == [1520, 1600] and 830 in agent["soxr_stream"]["push_sizes"]


def test_bench_gateway_and_e2e_print_figures():
    res = parley("bench", "gateway", "--calls", "2", "--seconds", "1")
    assert res.returncode == 0, res.stderr
    gw = json.loads(res.stdout)
    assert gw["calls"] == 2 and gw["cpu_us_per_call_second"] > 0 and gw["media_received"] > 0
    res = parley("bench", "e2e", "--preset", "tiny", "--calls", "2", "--seconds", "2")
    assert res.returncode == 0, res.stderr
    e2e = json.loads(res.stdout)
    assert e2e["turns"] > 0 and e2e["e2e_ms_p99"] >= e2e["e2e_ms_p50"] > 0 and e2e["dropped_frames"] == 0
