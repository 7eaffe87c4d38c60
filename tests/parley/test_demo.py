"""The demo and the step benchmark prefix their calls with what the server pins for the agent."""

from __future__ import annotations

import pytest
import torch

from agent.config import get_agent, render_prefix
from bench.step import run as bench_step
from model.config import ModelConfig
from model.engine import Engine
from model.interaction import InteractionModel
from parley.demo import run_demo


@pytest.fixture
def configs(monkeypatch) -> list[str]:
    seen: list[str] = []
    admit = Engine.admit
    monkeypatch.setattr(
        Engine,
        "admit",
        lambda self, config, sampling=None: seen.append(config) or admit(self, config, sampling),
    )
    return seen


@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(0)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


def test_demo_and_bench_prefix_calls_with_the_rendered_agent(tiny, configs, tmp_path):
    run_demo(tiny, 0.4, tmp_path, agent="translate-en-es")
    out = bench_step(tiny, "tiny", slots=2, ticks=2, device="cpu", warmup=1)
    assert configs == [render_prefix(get_agent("translate-en-es"))] + 2 * [
        render_prefix(get_agent("support"))
    ]
    assert out["slots"] == 2 and out["tick_ms_p99"] >= out["tick_ms_p50"] > 0
