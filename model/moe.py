"""Mixture-of-Experts feed-forward layer: E SwiGLU experts, top-k routing, optional shared expert.

Routing follows Mixtral: a linear router scores the E experts, the top A are kept and their
softmax weights renormalised over the kept ones. The load-balancing loss is Switch Transformer's:
E * sum_e(fraction of assignments to e * mean router probability of e), 1.0 when perfectly even.

Tokens are grouped by expert and each expert runs once on its group (a loop over E), so compute
follows the active parameters, not the total. The layer knows nothing about positions or slots.

Shape key: N tokens, D model width, F expert width, E experts, A active experts per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, d_hidden, bias=False)
        self.w3 = nn.Linear(d_model, d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_experts = cfg.n_experts
        self.top_k = cfg.top_k
        self.jitter = cfg.router_jitter
        d, f, e = cfg.d_model, cfg.d_expert, cfg.n_experts
        self.router = nn.Linear(d, e, bias=False)
        scale = d**-0.5
        self.w1 = nn.Parameter(torch.randn(e, f, d) * scale)  # [E, F, D]
        self.w3 = nn.Parameter(torch.randn(e, f, d) * scale)  # [E, F, D]
        self.w2 = nn.Parameter(torch.randn(e, d, f) * f**-0.5)  # [E, D, F]
        self.shared = SwiGLU(d, f) if cfg.shared_expert else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [..., D] -> (y [..., D], load-balancing loss as a scalar)."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, D]
        n = x.shape[0]
        logits = self.router(x)  # [N, E]
        if self.training and self.jitter > 0:
            logits = logits * torch.empty_like(logits).uniform_(1 - self.jitter, 1 + self.jitter)
        probs = logits.float().softmax(dim=-1)  # [N, E]
        weights, experts = probs.topk(self.top_k, dim=-1)  # [N, A]
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)

        flat = experts.reshape(-1)  # [N*A]
        order = flat.argsort(stable=True)
        token = order // self.top_k  # [N*A] which token each sorted assignment belongs to
        counts = torch.bincount(flat, minlength=self.n_experts).tolist()
        xs = x[token]  # [N*A, D]
        ys = []
        start = 0
        for e, count in enumerate(counts):
            if count:
                xe = xs[start : start + count]
                h = F.silu(xe @ self.w1[e].t()) * (xe @ self.w3[e].t())  # [n_e, F]
                ys.append(h @ self.w2[e].t())  # [n_e, D]
            start += count
        y_sorted = torch.cat(ys) * weights.reshape(-1)[order].unsqueeze(-1)
        y = torch.zeros_like(x).index_add_(0, token, y_sorted)
        if self.shared is not None:
            y = y + self.shared(x)

        if self.training:
            assigned = torch.tensor(counts, dtype=probs.dtype, device=x.device) / max(n * self.top_k, 1)
            balance = self.n_experts * (assigned * probs.mean(dim=0)).sum()
        else:
            balance = x.new_zeros(())
        return y.reshape(shape), balance

    def active_parameters(self) -> int:
        per_expert = self.w1[0].numel() + self.w3[0].numel() + self.w2[0].numel()
        shared = sum(p.numel() for p in self.shared.parameters()) if self.shared else 0
        return self.router.weight.numel() + self.top_k * per_expert + shared
