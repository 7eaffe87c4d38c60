"""Vocoder training: the agent's dMel levels in, the agent's voice out.

The interaction model predicts the agent's dMel levels; the vocoder turns them into samples. Its
targets are waveforms, not tokens, and its parameters get no gradient from the model's losses, so
it trains on its own, on the agent channel of the same generated calls:

- Segments of `segment_frames` dMel frames cut where the agent speaks, analysed exactly as the
  audio labels are (`corpus.labels.dmel_levels`, the same DMel), dequantised to the level
  centres, optionally jittered by one level in a few bins (the model's predictions are off by a
  level now and then; the vocoder should not fall apart when they are).
- The target is the source audio delayed by `vocoder_delay_samples` (see `model.vocoder`).
- Loss: multi-resolution STFT loss (spectral convergence + log-magnitude L1 at FFT sizes 256, 512
  and 1024) plus a log-mel L1 at the model's own analysis, skipping the first `n_fft` samples
  where the vocoder has no past frames.

No discriminator: on two CPU cores a GAN is out of budget, and the spectral losses alone give a
buzzy but intelligible voice. The run directory holds `vocoder.safetensors` (loadable into any
model of the same preset, see `training.export`), `vocoder_state.pt` (optimizer, step) and
`vocoder_losses.jsonl`; a stopped run resumes exactly, since segment `i` of step `s` depends only
on (seed, s, i).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from corpus.labels import dmel_analyzer, dmel_levels
from corpus.render import CorpusCache
from model.config import ModelConfig
from model.vocoder import Vocoder, vocoder_delay_samples
from training.data import CallStream, DataConfig
from training.loop import truncate_records

WEIGHTS = "vocoder.safetensors"
STATE = "vocoder_state.pt"
LOSSES = "vocoder_losses.jsonl"
STFT_SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class VocoderTrainConfig:
    batch_size: int = 16
    segment_frames: int = 60  # 1.2 s
    corpus_calls: int = 300  # calls whose agent channel is cut into segments
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    total_steps: int = 4000
    jitter_share: float = 0.02  # share of (frame, bin) levels moved by +-1
    checkpoint_every: int = 200
    seed: int = 0
    agent_voice: str = "espeak"  # the voice it learns: corpus.render.AGENT_VOICE_CHOICES


def _lr(step: int, c: VocoderTrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = min(1.0, (step - c.warmup_steps) / max(1, c.total_steps - c.warmup_steps))
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def stft_loss(pred: torch.Tensor, target: torch.Tensor, sizes: tuple[int, ...] = STFT_SIZES) -> torch.Tensor:
    """Multi-resolution STFT loss [B, S] x [B, S] -> scalar: spectral convergence + log-magnitude L1."""
    total = pred.new_zeros(())
    for n in sizes:
        window = torch.hann_window(n, device=pred.device)
        p = torch.stft(pred, n, n // 4, window=window, return_complex=True).abs().clamp_min(1e-7)
        t = torch.stft(target, n, n // 4, window=window, return_complex=True).abs().clamp_min(1e-7)
        total = total + torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(1e-7)
        total = total + F.l1_loss(p.log(), t.log())
    return total / len(sizes)


class SegmentPool:
    """Agent-channel audio, and where in it the agent speaks: the segments a step draws from."""

    def __init__(self, cfg: ModelConfig, c: VocoderTrainConfig, audio: list[np.ndarray]) -> None:
        self.cfg, self.c, self.audio = cfg, c, audio
        hop = cfg.hop_length
        self.starts: list[tuple[int, int]] = []  # (audio index, first sample) of every usable segment
        for idx, track in enumerate(audio):
            frames = track[: len(track) // hop * hop].reshape(-1, hop)
            loud = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 10 ** (-45 / 20)
            for f in range(0, len(frames) - c.segment_frames, c.segment_frames // 4):
                if loud[f : f + c.segment_frames].mean() >= 0.5:
                    self.starts.append((idx, f * hop))
        if not self.starts:
            raise ValueError("SegmentPool: no segment of the audio is at least half speech")

    @classmethod
    def from_corpus(
        cls, cfg: ModelConfig, c: VocoderTrainConfig, cache: CorpusCache | None = None
    ) -> SegmentPool:
        """The agent channel of the first `c.corpus_calls` calls of the training corpus."""
        stream = CallStream(cfg, DataConfig(corpus_calls=c.corpus_calls, agent_voice=c.agent_voice), cache)
        return cls(cfg, c, [stream.cache.call(*stream.call(c.seed, n)).agent for n in range(c.corpus_calls)])

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(dequantised log-mel [B, T, M], target audio [B, T*hop]) of training step `step`."""
        c, cfg = self.c, self.cfg
        rng = np.random.default_rng([c.seed, step, 77])
        picks = rng.integers(0, len(self.starts), size=c.batch_size)
        seg = c.segment_frames * cfg.hop_length
        delay = vocoder_delay_samples(cfg)
        sources, targets = [], []
        for p in picks:
            call, start = self.starts[int(p)]
            audio = self.audio[call]
            src = audio[start : start + seg]
            before = audio[max(0, start - delay) : start]  # target sample n is source sample n - delay
            tgt = np.concatenate([np.zeros(delay - len(before), np.float32), before, src])[:seg]
            sources.append(src)
            targets.append(tgt)
        levels = torch.from_numpy(np.stack([dmel_levels(s, cfg).reshape(-1, cfg.n_mels) for s in sources]))
        levels = levels.long()  # [B, T, M]
        jitter = torch.from_numpy(rng.random(levels.shape) < c.jitter_share)
        signs = torch.from_numpy(rng.integers(0, 2, size=levels.shape) * 2 - 1)
        levels = (levels + jitter.long() * signs).clamp(0, cfg.dmel_levels - 1)
        return dmel_analyzer(cfg).dequantize(levels), torch.from_numpy(np.stack(targets))


def vocoder_losses(
    vocoder: Vocoder, cfg: ModelConfig, log_mel: torch.Tensor, target: torch.Tensor
) -> dict[str, torch.Tensor]:
    pred = vocoder(log_mel)  # [B, S]
    skip = cfg.vocoder_n_fft
    pred, target = pred[:, skip:], target[:, skip:]
    stft = stft_loss(pred, target)
    dmel = dmel_analyzer(cfg)
    mel = F.l1_loss(
        dmel.log_mel(pred[:, : pred.shape[1] // cfg.hop_length * cfg.hop_length]),
        dmel.log_mel(target[:, : target.shape[1] // cfg.hop_length * cfg.hop_length]),
    )
    return {"stft": stft, "mel": mel, "total": stft + 0.5 * mel}


class VocoderTrainer:
    def __init__(
        self,
        cfg: ModelConfig,
        out: str | Path,
        c: VocoderTrainConfig = VocoderTrainConfig(),
        vocoder: Vocoder | None = None,
        pool: SegmentPool | None = None,
        device: str = "cpu",
    ) -> None:
        self.cfg, self.c, self.out, self.device = cfg, c, Path(out), torch.device(device)
        self.vocoder = (vocoder or Vocoder(cfg)).to(self.device)
        self.opt = torch.optim.AdamW(self.vocoder.parameters(), lr=c.lr, betas=(0.8, 0.99), weight_decay=0.01)
        self._pool = pool
        self.step = 0
        self.elapsed_s = 0.0

    @property
    def pool(self) -> SegmentPool:
        if self._pool is None:
            self._pool = SegmentPool.from_corpus(self.cfg, self.c)
        return self._pool

    def resume(self) -> bool:
        state_path = self.out / STATE
        if not state_path.is_file():
            return False
        state = torch.load(state_path, map_location=self.device, weights_only=True)
        self.vocoder.load_state_dict(load_file(self.out / WEIGHTS, device=str(self.device)))
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        truncate_records(self.out / LOSSES, self.step)
        return True

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.vocoder.state_dict().items()}
        _atomic(self.out / WEIGHTS, lambda p: save_file(tensors, str(p)))
        state = {
            "opt": self.opt.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "config": asdict(self.c),
        }
        _atomic(self.out / STATE, lambda p: torch.save(state, p))

    def train_step(self) -> dict[str, float]:
        t0 = time.monotonic()
        self.vocoder.train()
        for group in self.opt.param_groups:
            group["lr"] = _lr(self.step, self.c)
        log_mel, target = self.pool.batch(self.step)
        losses = vocoder_losses(self.vocoder, self.cfg, log_mel.to(self.device), target.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.vocoder.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        record = {k: round(float(v.detach()), 5) for k, v in losses.items()}
        self.elapsed_s += time.monotonic() - t0
        record.update(
            step=self.step,
            lr=_lr(self.step - 1, self.c),
            grad_norm=round(float(grad_norm), 4),
            elapsed_s=round(self.elapsed_s, 1),
        )
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOSSES, "a") as f:
            f.write(json.dumps(record) + "\n")
        return record

    def run(
        self,
        steps: int | None = None,
        hours: float | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> None:
        end = self.c.total_steps if steps is None else min(self.c.total_steps, self.step + steps)
        deadline = time.monotonic() + hours * 3600 if hours else math.inf
        while self.step < end and time.monotonic() < deadline:
            record = self.train_step()
            if progress:
                progress(record)
            if self.step % self.c.checkpoint_every == 0:
                self.save()
        self.save()


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)
