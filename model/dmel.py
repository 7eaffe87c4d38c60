"""dMel: causal log-mel features quantised to a few levels per bin (Bai et al. 2024).

This module holds the audio front end shared by both directions of a call. Caller audio becomes
dMel frames here (`DMel.log_mel` offline, `DMel.stream` one 200 ms micro-turn at a time) and every
bin is quantised to `dmel_levels` uniform levels (`DMel.quantize` / `DMel.dequantize`); agent audio
is predicted by the model as the same levels and turned back into a waveform by `model.vocoder`.

Framing is causal: frame k covers samples [(k+1)*hop - win, (k+1)*hop), with zeros before the
start of the signal, so a micro-turn of 3200 samples yields exactly `frames_per_turn` frames and
needs only the last `win - hop` samples of the previous micro-turn as history.

Normalisation (chosen so the defaults dmel_min=-11.5, dmel_max=2.5 of `ModelConfig` fit):
  - STFT magnitude of the periodic-Hann-windowed frame divided by the window's sum, so a sine of
    amplitude a peaks at a/2 in its FFT bin (and no bin can exceed max|x| <= 1);
  - mel filters are triangles of peak 1 on the Slaney mel scale (linear below 1 kHz, logarithmic
    above), fmin 0 Hz, fmax sample_rate/2, without area normalisation;
  - natural log of the mel magnitude (not power), floored at exp(dmel_min) and clamped above at
    dmel_max. Digital silence lands exactly at dmel_min (exp(-11.5) ~ 1e-5 ~ -100 dB), a full-scale
    sine near -0.3, full-scale white noise below 0 and ordinary speech between about -9 and -1.

The module holds no learnable parameters and no per-call state: the caller owns the history
tensor (one row per slot) and scatters what `stream` returns. It knows nothing about the model,
the vocoder or telephony codecs.

Shape key: B batch (slots), N samples, T frames, W window length, K FFT bins, M mel bins.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from model.config import ModelConfig
from model.protocol import SAMPLE_RATE

# Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15.0
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel of a frequency in Hz (vectorised)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_MEL + np.log(np.maximum(hz, 1e-12) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz < _SLANEY_BREAK_HZ, linear, log)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel < _SLANEY_BREAK_MEL, linear, log)


def _mel_edges_hz(n_mels: int, sample_rate: int) -> np.ndarray:
    """n_mels + 2 frequencies equally spaced in mel from 0 Hz to Nyquist: filter m rises from
    edge m, peaks at edge m+1 and falls to zero at edge m+2."""
    top = hz_to_mel(sample_rate / 2.0)
    return mel_to_hz(np.linspace(0.0, float(top), n_mels + 2))


def mel_center_frequencies(n_mels: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Centre (peak) frequency in Hz of each of the n_mels filters of `mel_filterbank`: [M]."""
    return _mel_edges_hz(n_mels, sample_rate)[1:-1]


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Triangular mel filters of peak 1 on the Slaney scale, 0 Hz to Nyquist.

    Returns float32 [K, M] with K = n_fft // 2 + 1, so `magnitude @ filterbank` maps [.., K] FFT
    magnitudes to [.., M] mel magnitudes. Every filter covers at least one FFT bin for the sizes
    Parley uses (n_fft 640, 80 mels: filters are >= 75 Hz wide, FFT bins 25 Hz apart).
    """
    if n_fft < 2 or n_mels < 1:
        raise ValueError(f"mel_filterbank: n_fft={n_fft} must be >= 2 and n_mels={n_mels} >= 1")
    edges = _mel_edges_hz(n_mels, sample_rate)  # [M + 2]
    bins_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # [K]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # [M] each
    rising = (bins_hz[:, None] - lower[None, :]) / (centre - lower)[None, :]  # [K, M]
    falling = (upper[None, :] - bins_hz[:, None]) / (upper - centre)[None, :]  # [K, M]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return torch.from_numpy(weights.astype(np.float32))


def max_quantization_error(cfg: ModelConfig) -> float:
    """Largest |dequantize(quantize(x)) - x| for x inside [dmel_min, dmel_max]: half a level."""
    return (cfg.dmel_max - cfg.dmel_min) / (2 * (cfg.dmel_levels - 1))


class DMel(nn.Module):
    """Causal log-mel analysis and uniform quantisation. Buffers only, no parameters."""

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.hop = cfg.hop_length
        self.win = cfg.win_length
        self.n_mels = cfg.n_mels
        self.levels = cfg.dmel_levels
        self.frames_per_turn = cfg.frames_per_turn
        self.micro_turn_samples = cfg.micro_turn_samples
        self.dmel_min = float(cfg.dmel_min)
        self.dmel_max = float(cfg.dmel_max)
        self.step = (self.dmel_max - self.dmel_min) / (self.levels - 1)  # level spacing
        self.history_len = self.win - self.hop
        window = torch.hann_window(self.win, periodic=True, dtype=torch.float64, device="cpu")
        # Dividing by the window's sum makes the FFT of a sine of amplitude a peak at a/2.
        self.register_buffer("window", (window / window.sum()).float(), persistent=False)  # [W]
        self.register_buffer(
            "filterbank", mel_filterbank(self.win, self.n_mels, SAMPLE_RATE), persistent=False
        )  # [K, M]
        self._floor = math.exp(self.dmel_min)

    # -- analysis ------------------------------------------------------------------------------

    def init_history(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zeros [B, win - hop]: the history of a call that has not sent any audio yet."""
        return torch.zeros(batch, self.history_len, device=device, dtype=self.window.dtype)

    def _check_audio(self, audio: torch.Tensor, where: str) -> torch.Tensor:
        if audio.dim() != 2:
            raise ValueError(f"DMel.{where}: audio must be [B, N], got shape {tuple(audio.shape)}")
        if audio.shape[1] % self.hop:
            raise ValueError(
                f"DMel.{where}: audio length {audio.shape[1]} is not a multiple of hop_length={self.hop}"
            )
        return audio.to(self.window.dtype)

    def _frames_to_log_mel(self, padded: torch.Tensor) -> torch.Tensor:
        """padded [B, (win - hop) + N] -> log-mel [B, N // hop, M]; frame k = padded[k*hop:+win]."""
        frames = padded.unfold(-1, self.win, self.hop)  # [B, T, W]
        spectrum = torch.fft.rfft(frames * self.window, n=self.win)  # [B, T, K] complex
        mel = spectrum.abs() @ self.filterbank  # [B, T, M]
        return torch.log(mel.clamp_min(self._floor)).clamp_max(self.dmel_max)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole signal, zeros before its start: audio [B, N] in [-1, 1] -> [B, N // hop, M]."""
        audio = self._check_audio(audio, "log_mel")
        padded = nn.functional.pad(audio, (self.history_len, 0))  # [B, win - hop + N]
        return self._frames_to_log_mel(padded)

    def stream(self, audio: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One micro-turn: audio [B, 3200], history [B, win - hop] (the previous samples, zeros at
        the start of a call) -> (log-mel [B, frames_per_turn, M], new history [B, win - hop]).

        Any multiple of hop_length is accepted. Pure: new tensors are returned and the inputs are
        left alone, so the caller can scatter the rows of the slots that actually stepped.
        Concatenating the outputs over micro-turns equals `log_mel` of the whole signal.
        """
        audio = self._check_audio(audio, "stream")
        if history.shape != (audio.shape[0], self.history_len):
            raise ValueError(
                f"DMel.stream: history must be [B={audio.shape[0]}, win-hop={self.history_len}], "
                f"got {tuple(history.shape)}"
            )
        padded = torch.cat([history.to(audio.dtype), audio], dim=1)  # [B, win - hop + N]
        new_history = padded[:, padded.shape[1] - self.history_len :].clone()  # [B, win - hop]
        return self._frames_to_log_mel(padded), new_history

    # -- quantisation --------------------------------------------------------------------------

    def quantize(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log-mel [..., M] float -> levels [..., M] long in [0, L-1] (values outside the range are
        clamped first). Level i stands for dmel_min + i * step; levels 0 and L-1 sit on the ends."""
        scaled = (log_mel.clamp(self.dmel_min, self.dmel_max) - self.dmel_min) / self.step
        return scaled.round().long().clamp(0, self.levels - 1)

    def dequantize(self, levels: torch.Tensor) -> torch.Tensor:
        """levels [..., M] long -> log-mel [..., M] float32 at the level centres."""
        return levels.to(torch.float32) * self.step + self.dmel_min

    def extra_repr(self) -> str:
        return (
            f"hop={self.hop}, win={self.win}, n_mels={self.n_mels}, levels={self.levels}, "
            f"range=[{self.dmel_min}, {self.dmel_max}]"
        )
