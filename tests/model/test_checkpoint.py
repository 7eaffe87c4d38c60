"""model.checkpoint: round trips, bfloat16, and refusal of mismatched configs and NaN weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.interaction import StepInputs
from model.state import StreamState


def test_checkpoint_round_trip_gives_identical_steps(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    audio = torch.randn(2, 3200) * 0.1
    a = tiny.step(StreamState.allocate(tiny.cfg, 2), StepInputs(audio=audio), [0, 1])
    b = loaded.step(StreamState.allocate(loaded.cfg, 2), StepInputs(audio=audio), [0, 1])
    assert torch.equal(a.audio, b.audio) and torch.equal(a.pcm, b.pcm)


def test_bfloat16_checkpoint_loads(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "bf", dtype=torch.bfloat16)
    loaded = load_checkpoint(tmp_path / "bf")
    assert next(loaded.parameters()).dtype == torch.float32


def test_checkpoint_whose_config_does_not_match_is_refused(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "d_expert": 96}))
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.0\.moe\.w1 has shape"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "n_layers": 3}))
    with pytest.raises(CheckpointError, match="missing tensor backbone.blocks.2"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "n_layers": 1}))
    with pytest.raises(CheckpointError, match="unexpected tensor backbone.blocks.1"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "top_k": 9}))
    with pytest.raises(CheckpointError, match=r"ModelConfig\.top_k=9"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ck)


def test_checkpoint_with_nan_weights_is_refused(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "ck")
    tensors = load_file(str(ck / "model.safetensors"))
    tensors["floor_head.weight"][0, 0] = float("nan")
    save_file(tensors, str(ck / "model.safetensors"))
    with pytest.raises(CheckpointError, match="floor_head.weight holds NaN"):
        load_checkpoint(ck)
