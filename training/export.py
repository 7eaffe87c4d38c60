"""Export a training run as a serving checkpoint: the model's weights with the vocoder's overlaid.

The interaction model (`parley train`) and the vocoder (`parley train --part vocoder`) train in
one run directory, the vocoder under `vocoder/`. `export_run` loads the model checkpoint, replaces
its vocoder tensors with the vocoder run's, and saves config.json + model.safetensors (bfloat16 by
default: half the bytes, and the loader casts back to float32) plus `training.json`: the steps,
the mean of each loss over the last 50 steps of each part, and the training configurations, so
the shipped checkpoint says how it was made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from model.checkpoint import load_checkpoint, save_checkpoint
from training.vocoder import LOSSES as VOCODER_LOSSES
from training.vocoder import WEIGHTS as VOCODER_WEIGHTS

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _tail_means(path: Path, n: int = 50) -> dict:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][-n:]
    if not rows:
        return {}
    keys = [k for k in rows[-1] if k not in ("step", "lr", "grad_norm", "elapsed_s")]
    means = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys}
    return {"step": rows[-1]["step"], "elapsed_s": rows[-1].get("elapsed_s"), "loss_mean_last": means}


def export_run(run: str | Path, out: str | Path, dtype: str = "bfloat16") -> dict:
    run, out = Path(run), Path(out)
    model = load_checkpoint(run)
    record: dict = {"model": _tail_means(run / "losses.jsonl"), "dtype": dtype}
    trainer = run / "trainer.pt"
    if trainer.is_file():
        record["model"]["train_config"] = torch.load(trainer, map_location="cpu", weights_only=False)[
            "train_config"
        ]
    vocoder_dir = run / "vocoder"
    if (vocoder_dir / VOCODER_WEIGHTS).is_file():
        tensors = load_file(str(vocoder_dir / VOCODER_WEIGHTS))
        missing = set(model.vocoder.state_dict()) - set(tensors)
        if missing:
            raise ValueError(f"{vocoder_dir / VOCODER_WEIGHTS}: missing tensor {sorted(missing)[0]}")
        model.vocoder.load_state_dict(tensors)
        record["vocoder"] = _tail_means(vocoder_dir / VOCODER_LOSSES)
    else:
        record["vocoder"] = None  # untrained: the model would speak noise; say so in the record
    save_checkpoint(model, out, DTYPES[dtype], metadata={"step": str(record["model"].get("step"))})
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    for png in (run / "losses.png", vocoder_dir / "vocoder_losses.png"):
        if png.is_file():
            shutil.copyfile(png, out / png.name)
    return record
