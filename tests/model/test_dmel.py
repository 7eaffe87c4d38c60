"""Tests of model.dmel: causal framing, streaming vs offline, range, quantisation, filterbank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.config import ModelConfig
from model.dmel import (
    DMel,
    hz_to_mel,
    max_quantization_error,
    mel_center_frequencies,
    mel_filterbank,
    mel_to_hz,
)
from model.protocol import SAMPLE_RATE

PRESETS = ["tiny", "small"]


def sine(freq_hz: float, seconds: float, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE), dtype=torch.float64) / SAMPLE_RATE
    return (amplitude * torch.sin(2 * math.pi * freq_hz * t)).float()


def speechlike(seconds: float, seed: int) -> torch.Tensor:
    """Voiced harmonics with a gliding pitch and two formant-like peaks, syllable-rate amplitude
    modulation, and some breath noise: spectrally and dynamically closer to speech than a sine."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    f0 = 110.0 + 30.0 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SAMPLE_RATE
    voiced = torch.zeros(n, dtype=torch.float64)
    for h in range(1, 40):
        freq = h * 120.0
        gain = math.exp(-(((freq - 600) / 250) ** 2)) + 0.5 * math.exp(-(((freq - 1800) / 400) ** 2))
        voiced += (gain + 0.02) / h**0.5 * torch.sin(h * phase)
    envelope = 0.5 * (1 + torch.sin(2 * math.pi * 4.0 * t)) ** 2
    noise = torch.randn(n, generator=g, dtype=torch.float64) * 0.01
    x = envelope * voiced + noise
    return (0.3 * x / x.abs().max()).float()


@pytest.fixture(params=PRESETS)
def cfg(request) -> ModelConfig:
    return ModelConfig.from_name(request.param)


def test_one_micro_turn_gives_frames_per_turn_frames(cfg):
    dmel = DMel(cfg)
    audio = torch.randn(3, cfg.micro_turn_samples) * 0.1
    out, history = dmel.stream(audio, dmel.init_history(3, "cpu"))
    assert cfg.frames_per_turn == 10
    assert out.shape == (3, 10, cfg.n_mels)
    assert out.dtype == torch.float32
    assert history.shape == (3, cfg.win_length - cfg.hop_length)
    assert dmel.log_mel(audio).shape == (3, 10, cfg.n_mels)
    assert dmel.log_mel(torch.zeros(2, 7 * cfg.hop_length)).shape == (2, 7, cfg.n_mels)


def test_no_learnable_parameters(cfg):
    dmel = DMel(cfg)
    assert list(dmel.parameters()) == []
    assert dict(dmel.named_buffers()).keys() == {"window", "filterbank"}


def test_length_not_multiple_of_hop_is_refused(cfg):
    dmel = DMel(cfg)
    with pytest.raises(ValueError, match="hop_length"):
        dmel.log_mel(torch.zeros(1, cfg.hop_length + 1))
    with pytest.raises(ValueError, match="history"):
        dmel.stream(torch.zeros(1, cfg.micro_turn_samples), torch.zeros(1, 3))


def test_streaming_in_micro_turns_equals_offline(cfg):
    dmel = DMel(cfg)
    turns = 7
    rows = [
        speechlike(turns * 0.2, seed=1),
        torch.randn(turns * 3200, generator=torch.Generator().manual_seed(2)) * 0.2,
        sine(440.0, turns * 0.2, 0.8),
    ]
    audio = torch.stack(rows)  # [3, turns*3200]
    offline = dmel.log_mel(audio)

    history = dmel.init_history(3, "cpu")
    chunks = []
    for i in range(turns):
        chunk = audio[:, i * 3200 : (i + 1) * 3200]
        chunk_before, history_before = chunk.clone(), history.clone()
        out, new_history = dmel.stream(chunk, history)
        assert torch.equal(chunk, chunk_before) and torch.equal(history, history_before)  # pure
        assert torch.equal(new_history, chunk[:, -(cfg.win_length - cfg.hop_length) :])
        chunks.append(out)
        history = new_history
    streamed = torch.cat(chunks, dim=1)
    assert streamed.shape == offline.shape == (3, turns * cfg.frames_per_turn, cfg.n_mels)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)


def test_framing_is_causal(cfg):
    """Frame k depends only on samples before (k+1)*hop and not on anything older than win."""
    dmel = DMel(cfg)
    hop, win = cfg.hop_length, cfg.win_length
    audio = speechlike(0.4, seed=3)[None]
    base = dmel.log_mel(audio)
    k = 9
    later = audio.clone()
    later[:, (k + 1) * hop :] = 0.5  # change only the future of frame k
    torch.testing.assert_close(dmel.log_mel(later)[:, : k + 1], base[:, : k + 1], atol=0, rtol=0)
    earlier = audio.clone()
    earlier[:, : (k + 1) * hop - win] = 0.5  # change only what lies before frame k's window
    assert torch.equal(dmel.log_mel(earlier)[:, k], base[:, k])
    assert not torch.equal(dmel.log_mel(earlier)[:, k - 2], base[:, k - 2])


def test_silence_is_dmel_min(cfg):
    dmel = DMel(cfg)
    out = dmel.log_mel(torch.zeros(2, 3200))
    assert torch.all(out == cfg.dmel_min)
    assert torch.all(dmel.quantize(out) == 0)


def test_loud_signals_stay_below_dmel_max(cfg):
    """Full-scale sines, full-scale white noise and a full-scale square wave are not clipped."""
    dmel = DMel(cfg)
    g = torch.Generator().manual_seed(0)
    signals = [sine(f, 0.5) for f in (100.0, 1000.0, 4000.0, 7500.0)]
    signals.append(torch.rand(8000, generator=g) * 2 - 1)
    signals.append(torch.sign(sine(3000.0, 0.5)))
    out = dmel.log_mel(torch.stack(signals))
    assert out.max().item() < cfg.dmel_max - 1.0


def test_realistic_signals_are_mostly_inside_the_range(cfg):
    dmel = DMel(cfg)
    audio = torch.stack([speechlike(2.0, seed=s) for s in range(3)])
    out = dmel.log_mel(audio)
    inside = (out > cfg.dmel_min) & (out < cfg.dmel_max)
    assert inside.float().mean().item() > 0.95
    levels = dmel.quantize(out)
    assert len(levels.unique()) >= cfg.dmel_levels // 2  # the levels are actually used
    # Speech peaking at -50 dBFS still rises above the floor in most frames.
    quiet = dmel.log_mel(audio * 1e-2)
    assert (quiet.amax(dim=-1) > cfg.dmel_min).float().mean().item() > 0.6


def test_quantize_dequantize_error_is_bounded(cfg):
    dmel = DMel(cfg)
    bound = max_quantization_error(cfg)
    assert bound == pytest.approx((cfg.dmel_max - cfg.dmel_min) / (2 * (cfg.dmel_levels - 1)))
    audio = torch.stack([speechlike(1.0, seed=4), torch.randn(16000) * 0.05])
    log_mel = dmel.log_mel(audio)
    levels = dmel.quantize(log_mel)
    assert levels.dtype == torch.long
    assert levels.min().item() >= 0 and levels.max().item() <= cfg.dmel_levels - 1
    back = dmel.dequantize(levels)
    assert back.dtype == torch.float32
    clamped = log_mel.clamp(cfg.dmel_min, cfg.dmel_max)
    assert (back - clamped).abs().max().item() <= bound + 1e-5
    # A dense sweep of the range (and beyond it) obeys the same bound after clamping.
    sweep = torch.linspace(cfg.dmel_min - 3, cfg.dmel_max + 3, 10_001)
    err = dmel.dequantize(dmel.quantize(sweep)) - sweep.clamp(cfg.dmel_min, cfg.dmel_max)
    assert err.abs().max().item() <= bound + 1e-5
    assert err.abs().max().item() > 0.9 * bound  # the bound is tight, not vacuous


def test_levels_sit_on_the_range_ends(cfg):
    dmel = DMel(cfg)
    centres = dmel.dequantize(torch.arange(cfg.dmel_levels))
    assert centres[0].item() == pytest.approx(cfg.dmel_min)
    assert centres[-1].item() == pytest.approx(cfg.dmel_max)
    assert torch.equal(dmel.quantize(centres), torch.arange(cfg.dmel_levels))


@pytest.mark.parametrize("freq_hz", [250.0, 1000.0, 3000.0])
def test_sine_peaks_in_the_nearest_mel_bin(cfg, freq_hz):
    dmel = DMel(cfg)
    out = dmel.log_mel(sine(freq_hz, 0.5, amplitude=0.5)[None])  # [1, T, M]
    steady = out[0, 5:]  # past the zero history
    centres = mel_center_frequencies(cfg.n_mels, SAMPLE_RATE)
    nearest = int(np.argmin(np.abs(centres - freq_hz)))
    assert torch.all(steady.argmax(dim=-1) == nearest)


def test_filterbank_shape_and_coverage():
    fb = mel_filterbank(640, 80)
    assert fb.shape == (321, 80)
    assert fb.dtype == torch.float32
    assert fb.min().item() >= 0.0 and fb.max().item() <= 1.0 + 1e-6
    assert torch.all((fb > 0).sum(dim=0) >= 1)  # no empty filter
    peaks = fb.argmax(dim=0)
    assert torch.all(peaks[1:] >= peaks[:-1])  # filters ascend in frequency
    assert mel_filterbank(1280, 40, 16000).shape == (641, 40)


def test_slaney_mel_scale_round_trips_and_breaks_at_1khz():
    hz = np.array([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-6)
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(hz_to_mel(500.0)) == pytest.approx(7.5)  # linear below the break
    assert float(hz_to_mel(6400.0)) == pytest.approx(42.0)  # 27 steps per factor 6.4 above it
