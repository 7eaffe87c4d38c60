"""Per-slot sampling that is reproducible whatever else is in the batch.

A global torch.Generator would make a call's samples depend on which other calls happened to share
its tick. Instead every random number is a hash of (slot seed, slot step counter, draw index,
element index): counter-based, stateless, the same on CPU and CUDA, and identical whether a slot
is stepped alone or in a batch of 64. Temperature and top-p are per slot.

Shapes: B slots, K choices (vocabulary), N independent draws per slot.
This module knows nothing about the model.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
# Odd multipliers below 2**31 so every product of a 32-bit value fits in int64 without overflow.
_M1 = 0x2C1B3C6D
_M2 = 0x297A2D39
_M3 = 0x5BD1E995


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser on int64 tensors holding values in [0, 2**32)."""
    x = x & _MASK32
    x = ((x ^ (x >> 16)) * _M1) & _MASK32
    x = ((x ^ (x >> 15)) * _M2) & _MASK32
    x = ((x ^ (x >> 16)) * _M3) & _MASK32
    return x ^ (x >> 15)


def uniform(seed: torch.Tensor, counter: torch.Tensor, draw: int, n: int) -> torch.Tensor:
    """Uniform floats in [0, 1): one row of n per slot.

    seed, counter: [B] int64. `draw` separates the different uses within one step.
    Returns [B, n] float32.
    """
    idx = torch.arange(n, device=seed.device, dtype=torch.int64)  # [n]
    h = _mix32(seed.unsqueeze(1) * 0x9E37 + 0x1234567)  # [B, 1]
    h = _mix32(h ^ _mix32(counter.unsqueeze(1) + 0x6A09E667))
    h = _mix32(h ^ (draw * 0x3C6EF372 & _MASK32))
    h = _mix32(h ^ _mix32(idx.unsqueeze(0) + 0x510E527F))  # [B, n]
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


MAX_CANDIDATES = 32


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    u: torch.Tensor,
) -> torch.Tensor:
    """Sample one index per row of logits [..., K] with per-row temperature and top-p.

    temperature, top_p, u: broadcastable to logits[..., 0]. Temperature <= 0 means greedy.
    Over large vocabularies the nucleus is taken within the MAX_CANDIDATES most likely choices
    (top-k then top-p; a full sort of the vocabulary per token costs 7x more on CPU).
    Returns [...] int64.
    """
    greedy = logits.argmax(dim=-1)
    t = temperature.clamp_min(1e-4).unsqueeze(-1)
    probs = torch.softmax(logits.float() / t, dim=-1)  # [..., K]
    if probs.shape[-1] > MAX_CANDIDATES:
        sorted_p, order = probs.topk(MAX_CANDIDATES, dim=-1)  # sorted, descending
    else:
        sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    # Keep the smallest prefix whose mass reaches top_p (always at least the first choice).
    keep = (cum - sorted_p) < top_p.unsqueeze(-1)
    kept = sorted_p * keep
    kept_cum = kept.cumsum(dim=-1)
    target = u.unsqueeze(-1) * kept_cum[..., -1:]
    pick = (kept_cum <= target).sum(dim=-1, keepdim=True).clamp_max(sorted_p.shape[-1] - 1)
    drawn = order.gather(-1, pick).squeeze(-1)
    return torch.where(temperature <= 0, greedy, drawn)


def sample_decision(logits: torch.Tensor, temperature: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample a decision (speak or not, call a tool or not) from the model's own distribution:
    temperature 1 and no nucleus, greedy only where temperature <= 0.

    Sharpening or truncating a decision does not make it more careful, it removes the rare
    choice: top-p 0.9 never takes a choice the model gives 9%, and the micro-turn that starts a
    turn or a tool call is exactly where that choice is rare. Returns [...] int64.
    """
    decide_t = torch.where(temperature <= 0, temperature, torch.ones_like(temperature))
    return sample(logits, decide_t, torch.ones_like(decide_t), u)


def sample_until(
    logits: torch.Tensor,
    stop: int,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    u_stop: torch.Tensor,
    u: torch.Tensor,
) -> torch.Tensor:
    """Sample the next token of a sequence that ends with `stop`: whether to stop is a decision,
    drawn at the model's own odds of `stop` (as `sample_decision` draws; greedy: stop where `stop`
    is the argmax); what to write, if not stopping, is content, sampled with the slot's
    temperature and top-p from the other tokens.

    A low temperature then makes the words more likely ones without making the model silent: at
    temperature 0.4 a text head that gives "write nothing this micro-turn" 40% and spreads the
    rest over many bytes would otherwise never write a byte.
    logits [..., K]; temperature, top_p, u_stop, u: broadcastable to logits[..., 0]. Returns [...] int64.
    """
    p_stop = torch.softmax(logits.float(), dim=-1)[..., stop]
    greedy_stop = logits.argmax(dim=-1) == stop
    stopping = torch.where(temperature <= 0, greedy_stop, u_stop < p_stop)
    content = logits.float().clone()
    content[..., stop] = float("-inf")
    drawn = sample(content, temperature, top_p, u)
    return torch.where(stopping, torch.full_like(drawn, stop), drawn)
