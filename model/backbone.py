"""The decoder-only MoE transformer backbone, in two modes that compute the same function.

Positions come in two regions:
- the pinned prefix: the call's configuration tokens, written once per call and never evicted;
- the stream: one position per 200 ms micro-turn plus one per injected event token.

Every stream position attends to the whole prefix and to the last `window` stream positions
(itself included), so a call of any length runs in constant memory. Rotary embeddings use
absolute stream positions among stream tokens (exact relative distances inside the window) and a
fixed anchor (`max_prefix`) when a stream query looks at prefix keys, so the distance from any
stream position to prefix token p is always `max_prefix - p`, however long the call has run.
Rotation angles are computed in float64 so hour-long calls keep their precision.

`forward_full` runs a whole teacher-forced sequence (training, tests); `step` runs a chunk of new
stream positions against a KV cache (serving). The backbone holds weights only: the cache is
passed in by the caller (model.state). It knows nothing about audio, text or heads.

Shape key: B batch, P prefix, T new positions, W window, H heads, K kv heads, G heads per kv head,
S key positions, D model width, Dh head width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig
from model.moe import MoE


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_angles(pos: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """pos [...] int64 -> cos, sin [..., Dh/2] float32 (angles computed in float64)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=pos.device) / head_dim)
    ang = pos.to(torch.float64).unsqueeze(-1) * inv
    return ang.cos().float(), ang.sin().float()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, Dh]; cos, sin [B, T, Dh/2] (or broadcastable) -> x rotated pairwise."""
    x1, x2 = x.float().chunk(2, dim=-1)
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).to(x.dtype)


@dataclass
class LayerCache:
    """One layer's keys and values for the B slots of this step (views or gathered copies)."""

    k_prefix: torch.Tensor  # [B, K, P, Dh]
    v_prefix: torch.Tensor  # [B, K, P, Dh]
    k_window: torch.Tensor  # [B, K, W, Dh]
    v_window: torch.Tensor  # [B, K, W, Dh]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, k, dh, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.d_model
        self.wq = nn.Linear(d, h * dh, bias=False)
        self.wk = nn.Linear(d, k * dh, bias=False)
        self.wv = nn.Linear(d, k * dh, bias=False)
        self.wo = nn.Linear(h * dh, d, bias=False)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        c = self.cfg
        q = self.wq(x).view(b, t, c.n_heads, c.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = self.wk(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)  # [B, K, T, Dh]
        v = self.wv(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)  # [B, K, T, Dh]
        return q, k, v

    def _attend(
        self, blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """blocks of (q [B, H, T, Dh], k [B, K, S, Dh], v [B, K, S, Dh], visible [B, T, S]).

        One softmax over the keys of all blocks. Returns [B, T, H*Dh].
        """
        c = self.cfg
        g = c.n_heads // c.n_kv_heads
        scale = c.head_dim**-0.5
        scores, values = [], []
        for q, k, v, visible in blocks:
            b, _, t, dh = q.shape
            q5 = q.reshape(b, c.n_kv_heads, g, t, dh)  # [B, K, G, T, Dh]
            s = (q5 @ k.unsqueeze(2).transpose(-1, -2)) * scale  # [B, K, G, T, S]
            s = s.float().masked_fill(~visible[:, None, None], torch.finfo(torch.float32).min)
            scores.append(s)
            values.append(v)
        p = torch.cat(scores, dim=-1).softmax(dim=-1)
        out, start = 0, 0
        for v in values:
            n = v.shape[2]
            out = out + p[..., start : start + n].to(v.dtype) @ v.unsqueeze(2)  # [B, K, G, T, Dh]
            start += n
        b, _, _, t, dh = out.shape
        return out.reshape(b, c.n_heads, t, dh).transpose(1, 2).reshape(b, t, c.n_heads * dh)

    def prefix(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prefix tokens attend causally among themselves. x [B, P, D], valid [B, P].

        Returns (y [B, P, D], k [B, K, P, Dh], v [B, K, P, Dh]) with k already rotated.
        """
        b, p, _ = x.shape
        q, k, v = self._project(x)
        cos, sin = rope_angles(torch.arange(p, device=x.device)[None], self.cfg.head_dim, self.cfg.rope_base)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        causal = torch.ones(p, p, dtype=torch.bool, device=x.device).tril()
        visible = causal[None] & valid[:, None, :]  # [B, P, P]
        return self.wo(self._attend([(q, k, v, visible)])), k, v

    def stream(
        self,
        x: torch.Tensor,  # [B, T, D]
        pos: torch.Tensor,  # [B, T] absolute stream positions
        valid: torch.Tensor,  # [B, T]
        k_prefix: torch.Tensor,  # [B, K, P, Dh]
        v_prefix: torch.Tensor,
        prefix_valid: torch.Tensor,  # [B, P]
        k_past: torch.Tensor | None = None,  # [B, K, W, Dh] cached stream keys
        v_past: torch.Tensor | None = None,
        past_pos: torch.Tensor | None = None,  # [B, W] their positions, -1 where empty
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stream positions attend to the prefix, to cached stream keys and to each other.

        Returns (y [B, T, D], k [B, K, T, Dh], v [B, K, T, Dh]) for the new positions.
        """
        c = self.cfg
        q, k, v = self._project(x)
        cos, sin = rope_angles(pos, c.head_dim, c.rope_base)
        q_stream, k = rotate(q, cos, sin), rotate(k, cos, sin)
        anchor = torch.full_like(pos, c.max_prefix)
        a_cos, a_sin = rope_angles(anchor, c.head_dim, c.rope_base)
        q_anchor = rotate(q, a_cos, a_sin)

        t = x.shape[1]
        blocks = [(q_anchor, k_prefix, v_prefix, prefix_valid[:, None, :].expand(-1, t, -1))]
        if k_past is not None:
            d = pos[:, :, None] - past_pos[:, None, :]  # [B, T, W]
            seen = (past_pos[:, None, :] >= 0) & (d > 0) & (d < c.window)
            blocks.append((q_stream, k_past, v_past, seen))
        d = pos[:, :, None] - pos[:, None, :]  # [B, T, T]
        own = valid[:, None, :] & (d >= 0) & (d < c.window)
        blocks.append((q_stream, k, v, own))
        return self.wo(self._attend(blocks)), k, v


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.moe = MoE(cfg)

    def ffn(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D]. With `valid` [B, T], only valid positions go through the experts (packed):
        a chunk padded for one slot's event tokens costs the others nothing in the MoE."""
        if valid is None or bool(valid.all()):
            y, balance = self.moe(self.ffn_norm(x))
            return x + y, balance
        y, balance = self.moe(self.ffn_norm(x[valid]))  # [N, D]
        out = x.clone()
        out[valid] = x[valid] + y
        return out, balance


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)

    def prefix(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run prefix tokens x [B, P, D]; returns per-layer rotated keys and values."""
        ks, vs = [], []
        for blk in self.blocks:
            y, k, v = blk.attn.prefix(blk.attn_norm(x), valid)
            x, _ = blk.ffn(x + y)
            ks.append(k)
            vs.append(v)
        return ks, vs

    def forward_full(
        self,
        prefix: torch.Tensor,  # [B, P, D]
        prefix_valid: torch.Tensor,  # [B, P]
        stream: torch.Tensor,  # [B, T, D]
        stream_valid: torch.Tensor,  # [B, T]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced: the whole stream at once. Returns (hidden [B, T, D] normed, balance loss)."""
        pos = (stream_valid.long().cumsum(dim=1) - 1).clamp_min(0)  # [B, T]
        balance = stream.new_zeros(())
        x_p, x = prefix, stream
        for blk in self.blocks:
            y_p, k_p, v_p = blk.attn.prefix(blk.attn_norm(x_p), prefix_valid)
            y, _, _ = blk.attn.stream(blk.attn_norm(x), pos, stream_valid, k_p, v_p, prefix_valid)
            x_p, bal_p = blk.ffn(x_p + y_p)
            x, bal = blk.ffn(x + y)
            balance = balance + bal
        return self.norm(x), balance / len(self.blocks)

    def step(
        self,
        x: torch.Tensor,  # [B, T, D]
        pos: torch.Tensor,  # [B, T]
        valid: torch.Tensor,  # [B, T]
        prefix_valid: torch.Tensor,  # [B, P]
        past_pos: torch.Tensor,  # [B, W]
        caches: list[LayerCache],
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """New stream positions against the cache. Returns (hidden [B, T, D] normed, new (k, v) per layer)."""
        new_kv = []
        for blk, cache in zip(self.blocks, caches):
            y, k, v = blk.attn.stream(
                blk.attn_norm(x),
                pos,
                valid,
                cache.k_prefix,
                cache.v_prefix,
                prefix_valid,
                cache.k_window,
                cache.v_window,
                past_pos,
            )
            x, _ = blk.ffn(x + y, valid)
            new_kv.append((k, v))
        return self.norm(x), new_kv
