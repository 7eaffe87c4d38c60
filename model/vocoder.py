"""Streaming vocoder: dequantised dMel frames in, 16 kHz waveform out, 3200 samples per micro-turn.

Timing: frame k is synthesised into samples [k*hop, k*hop + n_fft), complete for [k*hop, (k+1)*hop)
once frame k is known, so each micro-turn emits exactly frames_per_turn * hop = 3200 samples and
carries the n_fft - hop overlap-add tail to the next. `forward` (offline) and `stream` share one
code path and agree to float rounding. The first n_fft - hop samples of a call get a smaller window
gain (no frames before frame 0); the normalisation is the steady-state one.
Delay: dMel frame k is centred at (k+1)*hop - win/2 (`model.dmel`), its synthesis window at
k*hop + n_fft/2, so output sample n reproduces source sample n - delay,
delay = n_fft/2 + win/2 - hop (640 samples = 40 ms = 2 frames by default; `vocoder_delay_samples`,
which the trainer shifts its targets by).

What it does not know: quantisation (it takes float log-mel, e.g. `DMel.dequantize` output), the
interaction model, slots or masking. Per-call state (conv history, overlap-add tail) is returned,
never stored: the caller owns one row per slot and scatters the rows of the slots that stepped.

Shape key: B batch (slots), T frames, F frames in one call of `stream`, M mel bins, D vocoder
width, L vocoder layers, C causal conv context (kernel - 1), K spectrum bins (n_fft // 2 + 1),
N n_fft, H hop, S samples.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.config import ModelConfig

MAX_LOG_MAGNITUDE = 7.0  # exp(7) ~ 1100: bounds the spectrum of an untrained or diverging head


def vocoder_delay_samples(cfg: ModelConfig) -> int:
    """Samples by which the vocoder's output lags the audio its dMel frames were analysed from."""
    return cfg.vocoder_n_fft // 2 + cfg.win_length // 2 - cfg.hop_length


class CausalBlock(nn.Module):
    """ConvNeXt-like block over frames: causal depthwise conv, LayerNorm, MLP (x3), residual."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.context = kernel - 1
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 3 * dim)
        self.down = nn.Linear(3 * dim, dim)

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, F, D], history [B, C, D] (last C inputs) -> (y [B, F, D], new history)."""
        frames = x.shape[1]
        seen = torch.cat([history, x], dim=1)  # [B, C + F, D]
        h = F.conv1d(
            seen.transpose(1, 2), self.dwconv.weight, self.dwconv.bias, groups=seen.shape[2]
        )  # [B, D, F]
        h = self.down(F.gelu(self.up(self.norm(h.transpose(1, 2)))))  # [B, F, D]
        return x + h, seen[:, frames:]  # the last C inputs: [B, C, D]


class Vocoder(nn.Module):
    """Causal frame-rate iSTFT vocoder in the style of Vocos (Siuzdenko 2023): a linear input
    projection, ConvNeXt-like residual blocks whose depthwise convolutions see only past frames, and
    a head predicting one complex spectrum per frame, which an inverse real FFT, a periodic Hann
    synthesis window and overlap-add turn into samples. `stream` is pure; `forward` is `stream`
    from zero state."""

    synthesis_window: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_mels = cfg.n_mels
        self.dim = cfg.vocoder_dim
        self.n_layers = cfg.vocoder_layers
        self.kernel = cfg.vocoder_kernel
        self.n_fft = cfg.vocoder_n_fft
        self.hop = cfg.hop_length
        self.n_bins = self.n_fft // 2 + 1
        self.frames_per_turn = cfg.frames_per_turn
        self.delay_samples = vocoder_delay_samples(cfg)
        # Fixed affine map of [dmel_min, dmel_max] onto [-1, 1] so the first layer starts from
        # inputs of unit scale; not a parameter (the linear layer after it can absorb any other).
        self.in_center = 0.5 * (cfg.dmel_max + cfg.dmel_min)
        self.in_scale = 2.0 / (cfg.dmel_max - cfg.dmel_min)

        self.proj_in = nn.Linear(self.n_mels, self.dim)
        self.blocks = nn.ModuleList(CausalBlock(self.dim, self.kernel) for _ in range(self.n_layers))
        self.norm_out = nn.LayerNorm(self.dim)
        self.head = nn.Linear(self.dim, 2 * self.n_bins)  # log-magnitude | phase

        # Synthesis window divided by the overlap-add envelope sum_j w[n + j*H]^2 (analysis and
        # synthesis are both Hann in the iSTFT sense), so overlapping frames sum to a constant
        # gain in steady state. For periodic Hann at H = N/4 the envelope is 1.5 at every sample;
        # other N/H ratios get the per-position envelope, which `__init__` checks is not ~0.
        hann = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64, device="cpu")  # [N]
        envelope = (hann**2).reshape(self.n_fft // self.hop, self.hop).sum(0)  # [H]
        if envelope.min() < 1e-3 * envelope.max():
            raise ValueError(
                f"Vocoder: vocoder_n_fft={self.n_fft} with hop_length={self.hop} leaves samples "
                "that no Hann window covers; use vocoder_n_fft >= 2 * hop_length"
            )
        window = hann / envelope.repeat(self.n_fft // self.hop)  # [N]
        self.register_buffer("synthesis_window", window.float(), persistent=False)

    # -- state ---------------------------------------------------------------------------------

    def init_state(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state of a fresh call: (conv history [B, L, C, D], overlap-add tail [B, N - H])."""
        conv_history = torch.zeros(
            batch, self.n_layers, self.kernel - 1, self.dim, device=device, dtype=dtype
        )
        ola = torch.zeros(batch, self.n_fft - self.hop, device=device, dtype=dtype)
        return conv_history, ola

    # -- synthesis -----------------------------------------------------------------------------

    def spectrum(
        self, log_mel: torch.Tensor, conv_history: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log-mel [B, F, M] -> (complex spectrum [B, F, K], new conv history [B, L, C, D])."""
        x = self.proj_in((log_mel - self.in_center) * self.in_scale)  # [B, F, D]
        new_history = []
        for i, block in enumerate(self.blocks):
            x, h = block(x, conv_history[:, i])  # [B, F, D], [B, C, D]
            new_history.append(h)
        out = self.head(self.norm_out(x))  # [B, F, 2K]
        log_magnitude, phase = out.split(self.n_bins, dim=-1)  # [B, F, K] each
        magnitude = torch.exp(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE))
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return spec, torch.stack(new_history, dim=1)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """Windowed frames [B, F, N] -> overlap-added samples [B, F*H + N - H], frame k at k*H."""
        b, f, _ = frames.shape
        ratio = self.n_fft // self.hop
        pieces = frames.reshape(b, f, ratio, self.hop)  # [B, F, N/H, H]
        total = None
        for r in range(ratio):  # piece r of frame k lands in hop-chunk k + r
            placed = F.pad(pieces[:, :, r], (0, 0, r, ratio - 1 - r))  # [B, F + N/H - 1, H]
            total = placed if total is None else total + placed
        return total.reshape(b, (f + ratio - 1) * self.hop)

    def stream(
        self, log_mel: torch.Tensor, conv_history: torch.Tensor, ola: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log-mel [B, F, M], conv history [B, L, C, D], overlap-add tail [B, N - H]
        -> (audio [B, F*H], new conv history [B, L, C, D], new tail [B, N - H]).

        Pure: the inputs are never written. 10 frames in, 3200 samples out; feeding a sequence in
        chunks gives the offline `forward` output.
        """
        if log_mel.dim() != 3 or log_mel.shape[2] != self.n_mels:
            raise ValueError(
                f"Vocoder.stream: log_mel must be [B, F, n_mels={self.n_mels}], got {tuple(log_mel.shape)}"
            )
        b, f, _ = log_mel.shape
        spec, new_history = self.spectrum(log_mel, conv_history)  # [B, F, K]
        frames = torch.fft.irfft(spec, n=self.n_fft) * self.synthesis_window  # [B, F, N]
        samples = self._overlap_add(frames)  # [B, F*H + N - H]
        tail_len = self.n_fft - self.hop
        samples = samples + F.pad(ola, (0, samples.shape[1] - tail_len))  # add the carried tail
        audio, new_ola = samples.split([f * self.hop, tail_len], dim=1)
        return audio, new_history, new_ola

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Offline from zero state: log-mel [B, T, M] -> audio [B, T*H] (the tail is dropped)."""
        conv_history, ola = self.init_state(log_mel.shape[0], log_mel.device, log_mel.dtype)
        audio, _, _ = self.stream(log_mel, conv_history, ola)
        return audio

    # -- cost ----------------------------------------------------------------------------------

    def count_flops_per_turn(self) -> int:
        """Approximate floating-point operations (2 per multiply-add) for one slot's micro-turn:
        matmuls, depthwise convs, the inverse FFT (~2.5 N log2 N real ops) and windowed
        overlap-add. Norms, GELU and exp/cos/sin are left out."""
        d, k = self.dim, self.n_bins
        per_frame = 2 * self.n_mels * d  # proj_in
        per_frame += self.n_layers * (2 * self.kernel * d + 2 * 2 * d * 3 * d)  # conv + MLP
        per_frame += 2 * d * 2 * k  # head
        per_frame += int(2.5 * self.n_fft * max(1, self.n_fft.bit_length() - 1))  # irfft
        per_frame += 2 * self.n_fft  # window + overlap-add
        return per_frame * self.frames_per_turn

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, delay_samples={self.delay_samples}"
