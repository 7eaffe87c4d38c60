"""Vocoder training: the loss falls on a short run, a stopped run resumes exactly, and export
puts the trained vocoder into a serving checkpoint."""

from __future__ import annotations

import json

import numpy as np
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.interaction import InteractionModel
from training.export import export_run
from training.vocoder import SegmentPool, VocoderTrainConfig, VocoderTrainer, stft_loss

CFG = ModelConfig.from_name("tiny")
C = VocoderTrainConfig(
    batch_size=4, segment_frames=30, lr=3e-3, warmup_steps=3, total_steps=200, checkpoint_every=3
)


def _voice(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A buzzy 'voice': harmonics of a gliding pitch, on for 0.8 s, off for 0.2 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16_000
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    gate = (t % 1.0) < 0.8
    return (0.1 * x * gate + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def _pool() -> SegmentPool:
    return SegmentPool(CFG, C, [_voice(seed=0), _voice(seed=1)])


def test_stft_loss_is_zero_for_equal_signals_and_grows_with_difference():
    x = torch.from_numpy(_voice(1.0))[None]
    assert float(stft_loss(x, x)) < 1e-4
    assert float(stft_loss(0.5 * x, x)) > float(stft_loss(0.9 * x, x)) > 0.01


def test_pool_keeps_only_segments_that_are_mostly_speech():
    silent = np.zeros(32_000, np.float32)
    pool = SegmentPool(CFG, C, [silent, _voice()])
    assert pool.starts and all(idx == 1 for idx, _ in pool.starts)
    log_mel, target = pool.batch(0)
    assert log_mel.shape == (C.batch_size, C.segment_frames, CFG.n_mels)
    assert target.shape == (C.batch_size, C.segment_frames * CFG.hop_length)
    same = pool.batch(0)
    assert torch.equal(log_mel, same[0]) and torch.equal(target, same[1])


def test_short_run_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    trainer = VocoderTrainer(CFG, tmp_path, C, pool=_pool())
    history = [trainer.train_step() for _ in range(40)]
    first = sum(h["total"] for h in history[:5]) / 5
    last = sum(h["total"] for h in history[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_resumed_run_continues_exactly(tmp_path):
    torch.manual_seed(0)
    straight = VocoderTrainer(CFG, tmp_path / "a", C, pool=_pool())
    straight.run(steps=6)
    torch.manual_seed(0)
    first = VocoderTrainer(CFG, tmp_path / "b", C, pool=_pool())
    first.run(steps=4)  # checkpoint at 3, final save at 4
    torch.manual_seed(99)
    resumed = VocoderTrainer(CFG, tmp_path / "b", C, pool=_pool())
    assert resumed.resume() and resumed.step == 4
    resumed.run(steps=2)
    for (name, a), (_, b) in zip(straight.vocoder.state_dict().items(), resumed.vocoder.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "b" / "vocoder_losses.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_export_overlays_the_trained_vocoder_in_bfloat16(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(InteractionModel(CFG), tmp_path / "run")
    trainer = VocoderTrainer(CFG, tmp_path / "run" / "vocoder", C, pool=_pool())
    trainer.run(steps=2)
    record = export_run(tmp_path / "run", tmp_path / "ship")
    shipped = load_checkpoint(tmp_path / "ship")
    for name, want in trainer.vocoder.state_dict().items():
        got = shipped.vocoder.state_dict()[name]
        assert torch.allclose(got, want.to(torch.bfloat16).float()), name
    assert record["vocoder"]["step"] == 2 and record["dtype"] == "bfloat16"
    assert json.loads((tmp_path / "ship" / "training.json").read_text())["vocoder"]["step"] == 2
