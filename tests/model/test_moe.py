"""model.moe: top-k routing equals the dense mixture, and the balance loss trains the router."""

from __future__ import annotations

import torch

from model.config import ModelConfig
from model.moe import MoE


def test_moe_routes_top_k_and_balances():
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny")
    moe = MoE(cfg).train()
    x = torch.randn(3, 50, cfg.d_model)
    y, balance = moe(x)
    assert y.shape == x.shape and 0.0 < float(balance.detach()) < cfg.n_experts
    # Same output as computing every expert densely and mixing with the renormalised top-k weights.
    moe.eval()
    flat = x.reshape(-1, cfg.d_model)
    probs = moe.router(flat).softmax(-1)
    w, e = probs.topk(cfg.top_k, -1)
    w = w / w.sum(-1, keepdim=True)
    dense = torch.stack(
        [
            torch.nn.functional.silu(flat @ moe.w1[i].t()) * (flat @ moe.w3[i].t()) @ moe.w2[i].t()
            for i in range(cfg.n_experts)
        ],
        1,
    )  # [N, E, D]
    want = (dense.gather(1, e[..., None].expand(-1, -1, cfg.d_model)) * w[..., None]).sum(1) + moe.shared(
        flat
    )
    torch.testing.assert_close(moe(x)[0].reshape(-1, cfg.d_model), want, atol=1e-5, rtol=1e-5)
    # The balance loss has a gradient into the router.
    moe.train()
    moe(x)[1].backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
