"""Losses of the interaction model over a teacher-forced `Batch`.

Every head is trained at micro-turn positions only: floor state, tool-call flag, the text tokens
up to and including the micro-turn's EOT, the tool-call text up to its EOT, and the agent's dMel
levels (per bin, per frame). The MoE load-balancing loss is added with a small weight. Event and
padding positions carry no targets. The vocoder is trained separately (training.vocoder) on
waveforms, since its targets are audio, not tokens.

Shape key as in model.interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.interaction import KIND_TURN, Batch, Outputs
from model.tokenizer import SPECIAL


@dataclass(frozen=True)
class LossWeights:
    floor: float = 1.0
    tool: float = 1.0
    text: float = 1.0
    tool_text: float = 1.0
    audio: float = 1.0
    balance: float = 0.01
    # per floor state, in FLOOR_STATES order (listen, backchannel, speak, yield): "yield" is ~0.2% of
    # micro-turns and "backchannel" ~2%, yet they are the moments a duplex agent is judged by
    floor_classes: tuple[float, ...] = (1.0, 2.0, 1.0, 4.0)
    # micro-turns where the floor changes (take the turn, stop, start a backchannel) are ~5% of
    # the floor labels and all of what is hard about them: copying the previous state gets the rest
    floor_transition: float = 5.0


def _upto_eot(tokens: torch.Tensor) -> torch.Tensor:
    """[..., N] -> bool mask of positions up to and including the first EOT (all if none)."""
    is_eot = tokens == SPECIAL.EOT
    after = (is_eot.long().cumsum(dim=-1) - is_eot.long()) > 0
    return ~after


def _masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask].float(), target[mask])


def _floor_loss(out: Outputs, batch: Batch, turn: torch.Tensor, w: LossWeights) -> torch.Tensor:
    """Weighted mean cross-entropy: class weights times `floor_transition` where the floor changes."""
    if not bool(turn.any()):
        return out.floor_logits.sum() * 0.0
    target = batch.floor[turn]
    weight = torch.tensor(w.floor_classes, device=target.device)[target]
    weight = weight * torch.where(out.prev_floor[turn] != target, w.floor_transition, 1.0)
    ce = F.cross_entropy(out.floor_logits[turn].float(), target, reduction="none")
    return (ce * weight).sum() / weight.sum()


def compute_losses(out: Outputs, batch: Batch, w: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:
    turn = batch.kind == KIND_TURN  # [B, T]
    has_tool = batch.tool[..., 0] != SPECIAL.PAD
    losses = {
        "floor": _floor_loss(out, batch, turn, w),
        "tool": _masked_ce(out.tool_logits, has_tool.long(), turn),
        "text": _masked_ce(out.text_logits, batch.text, turn.unsqueeze(-1) & _upto_eot(batch.text)),
        "audio": _masked_ce(out.audio_logits, batch.audio, turn[..., None, None].expand_as(batch.audio)),
        "balance": out.balance_loss,
    }
    if out.tool_positions.shape[0]:
        tq = batch.tool[out.tool_positions[:, 0], out.tool_positions[:, 1]]
        losses["tool_text"] = _masked_ce(out.tool_text_logits, tq, _upto_eot(tq))
    else:
        losses["tool_text"] = out.tool_text_logits.sum() * 0.0
    losses["total"] = sum(getattr(w, k) * v for k, v in losses.items())
    return losses
