"""A resumable training loop for the interaction model.

The data source is a function of (seed, index) -> Batch, so the loop's position in the data is one
integer and a run stopped at any point resumes exactly where it stopped: same batches, same
optimizer moments, same learning rate, same RNG. A run directory holds:

    config.json, model.safetensors   the latest weights (a loadable checkpoint)
    trainer.pt                       optimizer, step, data cursor, RNG states, loss history
    losses.jsonl                     one line per step

Writes are atomic (temporary file, then rename), so a kill during a save leaves the previous
checkpoint intact. Same code on CPU and CUDA.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from model.checkpoint import save_checkpoint
from model.interaction import Batch, InteractionModel
from training.losses import LossWeights, compute_losses

log = logging.getLogger(__name__)

TRAINER_FILE = "trainer.pt"
LOSSES_FILE = "losses.jsonl"


@dataclass
class TrainConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    total_steps: int = 20_000
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    data_seed: int = 0
    feedback_noise: float = 0.15  # see InteractionModel.forward
    self_feed: float = 0.0  # share of micro-turns fed the model's own samples (InteractionModel.own_outputs)


def lr_at(step: int, c: TrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = min(1.0, (step - c.warmup_steps) / max(1, c.total_steps - c.warmup_steps))
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _to(batch: Batch, device: torch.device) -> Batch:
    return Batch(**{k: None if v is None else v.to(device) for k, v in vars(batch).items()})


def truncate_records(path: Path, step: int) -> None:
    """Drop the loss records past `step`: written after the checkpoint a run resumes from, they
    will be written again."""
    if path.is_file():
        keep = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        path.write_text("".join(line + "\n" for line in keep))


class Trainer:
    def __init__(
        self,
        model: InteractionModel,
        data: Callable[[int, int], Batch],
        out_dir: str | Path,
        config: TrainConfig | None = None,
        weights: LossWeights = LossWeights(),
        device: str | torch.device = "cpu",
    ) -> None:
        config = config if config is not None else TrainConfig()  # each trainer its own (mutable)
        self.model = model.to(device)
        self.data = data
        self.out = Path(out_dir)
        self.cfg = config
        self.weights = weights
        self.device = torch.device(device)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
        other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.95),
        )
        self.step = 0
        self.elapsed_s = 0.0  # training wall time over all runs of this directory

    # -- persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / ".saving"
        save_checkpoint(self.model, tmp, metadata={"step": str(self.step)})
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "optimizer": self.opt.state_dict(),
            "train_config": asdict(self.cfg),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        torch.save(state, tmp / TRAINER_FILE)
        for name in ("config.json", "model.safetensors", TRAINER_FILE):
            os.replace(tmp / name, self.out / name)
        tmp.rmdir()

    def resume(self) -> bool:
        path = self.out / TRAINER_FILE
        if not path.is_file():
            return False
        from model.checkpoint import load_checkpoint

        loaded = load_checkpoint(self.out, self.device)
        if loaded.cfg != self.model.cfg:
            raise ValueError(f"{self.out} holds a {loaded.cfg} model; this run trains {self.model.cfg}")
        self.model.load_state_dict(loaded.state_dict())
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.opt.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        truncate_records(self.out / LOSSES_FILE, self.step)
        log.info("resumed %s at step %d", self.out, self.step)
        return True

    # -- training ------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        t0 = time.monotonic()
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        batch = _to(self.data(self.cfg.data_seed, self.step), self.device)
        own = None
        if self.cfg.self_feed > 0:
            own = self.model.own_outputs(batch, self.cfg.self_feed, self.cfg.feedback_noise)
        losses = compute_losses(self.model(batch, self.cfg.feedback_noise, own), batch, self.weights)
        self.opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        record = {k: round(float(v.detach()), 5) for k, v in losses.items()}
        self.elapsed_s += time.monotonic() - t0
        record.update(
            step=self.step,
            lr=lr_at(self.step - 1, self.cfg),
            grad_norm=round(float(grad_norm), 4),
            elapsed_s=round(self.elapsed_s, 1),
        )
        return record

    def run(
        self,
        steps: int | None = None,
        hours: float | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train until `steps` more steps, `hours` of wall time, or total_steps, whichever is first."""
        self.out.mkdir(parents=True, exist_ok=True)
        end = self.cfg.total_steps if steps is None else min(self.cfg.total_steps, self.step + steps)
        deadline = time.monotonic() + hours * 3600 if hours else math.inf
        history = []
        with open(self.out / LOSSES_FILE, "a") as losses_file:
            while self.step < end and time.monotonic() < deadline:
                record = self.train_step()
                history.append(record)
                losses_file.write(json.dumps(record) + "\n")
                if progress:
                    progress(record)
                if self.step % self.cfg.checkpoint_every == 0:
                    losses_file.flush()
                    self.save()
        self.save()
        return history
