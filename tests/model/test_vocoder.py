"""Tests of model.vocoder: streaming equals offline, exact sizes, purity, determinism, causality."""

from __future__ import annotations

import pytest
import torch

from model.config import ModelConfig
from model.dmel import DMel
from model.vocoder import Vocoder, vocoder_delay_samples

PRESETS = ["tiny", "small"]


@pytest.fixture(params=PRESETS)
def cfg(request) -> ModelConfig:
    return ModelConfig.from_name(request.param)


def make_vocoder(cfg: ModelConfig, seed: int = 0) -> Vocoder:
    torch.manual_seed(seed)
    return Vocoder(cfg).eval()


def random_log_mel(cfg: ModelConfig, batch: int, frames: int, seed: int) -> torch.Tensor:
    """Dequantised dMel levels, as the model would emit them."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, cfg.dmel_levels, (batch, frames, cfg.n_mels), generator=g)
    return DMel(cfg).dequantize(levels)


def run_stream(voc: Vocoder, log_mel: torch.Tensor, chunk: int) -> torch.Tensor:
    conv_history, ola = voc.init_state(log_mel.shape[0], log_mel.device)
    pieces = []
    for start in range(0, log_mel.shape[1], chunk):
        audio, conv_history, ola = voc.stream(log_mel[:, start : start + chunk], conv_history, ola)
        pieces.append(audio)
    return torch.cat(pieces, dim=1)


def test_init_state_shapes(cfg):
    voc = make_vocoder(cfg)
    conv_history, ola = voc.init_state(5, "cpu")
    assert conv_history.shape == (5, cfg.vocoder_layers, cfg.vocoder_kernel - 1, cfg.vocoder_dim)
    assert ola.shape == (5, cfg.vocoder_n_fft - cfg.hop_length)
    assert conv_history.dtype == ola.dtype == torch.float32
    assert not conv_history.any() and not ola.any()
    ch64, ola64 = voc.init_state(1, "cpu", dtype=torch.float64)
    assert ch64.dtype == ola64.dtype == torch.float64


def test_ten_frames_give_exactly_one_micro_turn(cfg):
    voc = make_vocoder(cfg)
    log_mel = random_log_mel(cfg, 3, cfg.frames_per_turn, seed=1)
    audio, conv_history, ola = voc.stream(log_mel, *voc.init_state(3, "cpu"))
    assert audio.shape == (3, cfg.micro_turn_samples) == (3, 3200)
    assert conv_history.shape == (3, cfg.vocoder_layers, cfg.vocoder_kernel - 1, cfg.vocoder_dim)
    assert ola.shape == (3, cfg.vocoder_n_fft - cfg.hop_length)
    assert torch.isfinite(audio).all() and audio.abs().max() > 0
    assert voc(log_mel).shape == (3, 3200)
    assert voc(random_log_mel(cfg, 2, 7, seed=2)).shape == (2, 7 * cfg.hop_length)


@torch.no_grad()
def test_streaming_micro_turns_equals_offline(cfg):
    voc = make_vocoder(cfg)
    turns = 6
    log_mel = random_log_mel(cfg, 4, turns * cfg.frames_per_turn, seed=3)  # rows differ
    offline = voc(log_mel)
    streamed = run_stream(voc, log_mel, cfg.frames_per_turn)
    assert streamed.shape == offline.shape == (4, turns * cfg.micro_turn_samples)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
    # Odd chunk sizes (shorter than the overlap-add tail, and not dividing T) agree too.
    for chunk in (1, 3, 7):
        torch.testing.assert_close(run_stream(voc, log_mel, chunk), offline, atol=1e-5, rtol=0)


@torch.no_grad()
def test_batch_rows_are_independent(cfg):
    """A row streamed alone equals the same row streamed within a batch of other calls."""
    voc = make_vocoder(cfg)
    log_mel = random_log_mel(cfg, 3, 3 * cfg.frames_per_turn, seed=4)
    batched = run_stream(voc, log_mel, cfg.frames_per_turn)
    for row in range(3):
        alone = run_stream(voc, log_mel[row : row + 1], cfg.frames_per_turn)
        torch.testing.assert_close(alone, batched[row : row + 1], atol=1e-5, rtol=0)
    assert not torch.allclose(batched[0], batched[1])


@torch.no_grad()
def test_stream_does_not_modify_its_inputs(cfg):
    voc = make_vocoder(cfg)
    log_mel = random_log_mel(cfg, 2, 2 * cfg.frames_per_turn, seed=5)
    _, conv_history, ola = voc.stream(log_mel[:, :10], *voc.init_state(2, "cpu"))
    assert conv_history.any() and ola.any()  # a non-trivial state to check
    inputs = (log_mel[:, 10:], conv_history, ola)
    copies = [t.clone() for t in inputs]
    _, new_history, new_ola = voc.stream(*inputs)
    for before, after in zip(copies, inputs):
        assert torch.equal(before, after)
    assert new_history.data_ptr() != conv_history.data_ptr()
    assert new_ola.data_ptr() != ola.data_ptr()


@torch.no_grad()
def test_output_is_causal_in_frames(cfg):
    """Samples before k*hop do not depend on frame k or any later frame."""
    voc = make_vocoder(cfg)
    log_mel = random_log_mel(cfg, 1, 20, seed=6)
    base = voc(log_mel)
    k = 12
    changed = log_mel.clone()
    changed[:, k:] = cfg.dmel_max
    out = voc(changed)
    assert torch.equal(out[:, : k * cfg.hop_length], base[:, : k * cfg.hop_length])
    assert not torch.allclose(out[:, k * cfg.hop_length :], base[:, k * cfg.hop_length :])


def test_output_is_finite_for_extreme_inputs(cfg):
    voc = make_vocoder(cfg)
    for value in (cfg.dmel_min, cfg.dmel_max, 1e4, -1e4):
        log_mel = torch.full((2, cfg.frames_per_turn, cfg.n_mels), value)
        assert torch.isfinite(voc(log_mel)).all()


def test_parameters_are_deterministic_with_a_seed(cfg):
    a = make_vocoder(cfg, seed=123).state_dict()
    b = make_vocoder(cfg, seed=123).state_dict()
    c = make_vocoder(cfg, seed=124).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], c[name]) for name in a)
    assert "synthesis_window" not in a  # derived from the config, not saved


def test_overlap_add_envelope_is_constant(cfg):
    """Frames whose spectrum is a constant reproduce a constant gain in steady state: the summed
    synthesis windows (divided by the computed envelope) times the Hann windows equal 1."""
    voc = make_vocoder(cfg)
    hann = torch.hann_window(cfg.vocoder_n_fft, periodic=True, dtype=torch.float64)
    frames = (voc.synthesis_window.double() * hann).expand(1, 12, -1)  # [1, T, N]
    summed = voc._overlap_add(frames)[0]
    steady = summed[cfg.vocoder_n_fft : 12 * cfg.hop_length]
    torch.testing.assert_close(steady, torch.ones_like(steady), atol=1e-6, rtol=0)


def test_delay_follows_the_framing(cfg):
    delay = vocoder_delay_samples(cfg)
    assert delay == cfg.vocoder_n_fft // 2 + cfg.win_length // 2 - cfg.hop_length
    assert delay == 640  # 40 ms for the shipped sizes
    assert make_vocoder(cfg).delay_samples == delay


def test_gradients_reach_every_parameter(cfg):
    voc = make_vocoder(cfg).train()
    audio = voc(random_log_mel(cfg, 2, 2 * cfg.frames_per_turn, seed=7))
    audio.pow(2).mean().backward()
    for name, p in voc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_flop_count_is_positive_and_grows_with_width():
    tiny = make_vocoder(ModelConfig.from_name("tiny")).count_flops_per_turn()
    small = make_vocoder(ModelConfig.from_name("small")).count_flops_per_turn()
    assert 0 < tiny < small
