"""Checkpoints: safetensors weights plus a JSON config, loaded with validation.

A checkpoint is a directory holding `config.json` (the `ModelConfig` fields) and
`model.safetensors` (the weights; float32, or bfloat16/float16 to halve the size on disk). Loading
checks that every tensor the config implies is present with the right shape and that nothing else
is, and refuses a mismatch with an error that names the tensor. `warm_start` fills a model of a
newer config (one that adds modules, as `small2` adds to `small`) from an older checkpoint, leaving
only the added tensors as initialised. `DEFAULT_CHECKPOINT` is where the shipped, trained `small2`
model lives (its predecessor `small`, bytes events, is in the history: git log model/checkpoints/small).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from model.config import ModelConfig
from model.interaction import InteractionModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
log = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "small2"


class CheckpointError(ValueError):
    pass


def save_checkpoint(
    model: InteractionModel,
    directory: str | Path,
    dtype: torch.dtype = torch.float32,
    metadata: dict[str, str] | None = None,
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata=metadata or {})
    (directory / CONFIG_FILE).write_text(model.cfg.to_json() + "\n")
    return directory


def load_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory}: missing {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {directory}: {CONFIG_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {directory}: {CONFIG_FILE} must hold a JSON object")
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {directory}: {exc}") from exc


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory}: missing {WEIGHTS_FILE}")
    return load_file(str(weights), device="cpu")


def _refuse_mismatch(
    directory: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], against: str
) -> None:
    """Every tensor of the checkpoint is one `expected` holds, of the same shape, and finite."""
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(
            f"checkpoint {directory} does not match {against}: unexpected tensor {extra[0]}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    for name, ref in expected.items():
        got = tensors.get(name)
        if got is None:
            continue
        if got.shape != ref.shape:
            raise CheckpointError(
                f"checkpoint {directory} does not match {against}: {name} has shape "
                f"{tuple(got.shape)}, config implies {tuple(ref.shape)}"
            )
        if not torch.isfinite(got.float()).all():
            raise CheckpointError(f"checkpoint {directory}: {name} holds NaN or Inf")


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> InteractionModel:
    """Build the model its config describes and load the weights, refusing any mismatch."""
    directory = Path(directory)
    cfg = load_config(directory)
    tensors = _weights(directory)
    model = InteractionModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(
            f"checkpoint {directory} does not match its config: missing tensor {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    _refuse_mismatch(directory, tensors, expected, "its config")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.to(device).eval()


def warm_start(model: InteractionModel, directory: str | Path) -> list[str]:
    """Load an older checkpoint's weights into `model`, whose config may add modules to the
    checkpoint's (words-mode events, the reply prompter): every tensor of the checkpoint must be
    one the model has, with the same shape; the model's tensors the checkpoint lacks keep their
    initial values. Returns those tensors' names, sorted. The config files are not compared: the
    shapes are what must agree."""
    directory = Path(directory)
    tensors = _weights(directory)
    expected = model.state_dict()
    _refuse_mismatch(directory, tensors, expected, "the model's config")
    with torch.no_grad():
        for name, value in tensors.items():
            expected[name].copy_(value)
    fresh = sorted(set(expected) - set(tensors))
    log.info("warm start from %s: %d tensors loaded, %d initialised", directory, len(tensors), len(fresh))
    return fresh


def source_name(preset: str | None = None, checkpoint: str | Path | None = None) -> str:
    """What `load_model(preset, checkpoint)` loads, in words, for logs and health reports."""
    if checkpoint is not None:
        return str(checkpoint)
    if preset is None and (DEFAULT_CHECKPOINT / WEIGHTS_FILE).is_file():
        return f"shipped checkpoint {DEFAULT_CHECKPOINT.name}"
    return f"{preset or 'small'} (random weights)"


def load_model(
    preset: str | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> InteractionModel:
    """A checkpoint when given (or, with neither argument, the shipped one if present); else a preset
    with random weights, which is said loudly: such a model babbles."""
    if checkpoint is not None:
        return load_checkpoint(checkpoint, device)
    if preset is None and (DEFAULT_CHECKPOINT / WEIGHTS_FILE).is_file():
        return load_checkpoint(DEFAULT_CHECKPOINT, device)
    name = preset or "small"
    log.warning("NO TRAINED CHECKPOINT: using preset %r with RANDOM weights (seed %d)", name, seed)
    torch.manual_seed(seed)
    return InteractionModel(ModelConfig.from_name(name)).to(device).eval()
