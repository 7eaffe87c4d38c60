"""model.sampling: counter-based uniforms, top-p and greedy sampling, decisions and stopping."""

from __future__ import annotations

import torch

from model.sampling import sample, sample_decision, sample_until, uniform


def test_uniforms_are_reproducible_independent_and_spread():
    seed, counter = torch.tensor([1, 2, 1]), torch.tensor([5, 5, 5])
    u = uniform(seed, counter, 3, 4096)
    assert torch.equal(u[0], u[2]) and not torch.equal(u[0], u[1])
    assert torch.equal(u, uniform(seed, counter, 3, 4096))
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.02
    assert not torch.equal(uniform(seed, counter + 1, 3, 8), uniform(seed, counter, 3, 8))


def test_sample_respects_greedy_top_p_and_distribution():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    n = 20000
    rows = logits.expand(n, 4)
    u = uniform(torch.zeros(n, dtype=torch.int64), torch.arange(n), 0, 1)[:, 0]
    ones = torch.ones(n)
    picks = sample(rows, ones, ones, u)
    freq = torch.bincount(picks, minlength=4).float() / n
    assert torch.allclose(freq, logits.exp(), atol=0.02)
    nucleus = sample(rows, ones, torch.full((n,), 0.7), u)
    assert set(nucleus.unique().tolist()) == {0, 1}  # 0.5 + 0.3 reach 0.7
    greedy = sample(rows, torch.zeros(n), ones, u)
    assert bool((greedy == 0).all())
    big = torch.randn(4, 300)
    assert torch.equal(sample(big, torch.zeros(4), torch.ones(4), torch.rand(4)), big.argmax(-1))


def test_decisions_keep_their_odds_and_stopping_is_a_decision():
    """sample_decision ignores the slot's sharpening and nucleus; sample_until stops as often as the
    model says whatever the temperature, and sharpens only what it writes when it goes on."""
    n = 20000
    u = uniform(torch.zeros(n, dtype=torch.int64), torch.arange(n), 0, 2)
    cold, top = torch.full((n,), 0.3), torch.full((n,), 0.9)
    speak = torch.log(torch.tensor([0.92, 0.08])).expand(n, 2)
    freq = float((sample_decision(speak, cold, u[:, 0]) == 1).float().mean())
    assert abs(freq - 0.08) < 0.01
    assert bool((sample_decision(speak, torch.zeros(n), u[:, 0]) == 0).all())  # greedy stays greedy
    # stop token 0 at 40%, the rest spread: 0.3 / 0.2 / 0.1
    text = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1])).expand(n, 4)
    picks = sample_until(text, 0, cold, top, u[:, 0], u[:, 1])
    freq = torch.bincount(picks, minlength=4).float() / n
    assert abs(float(freq[0]) - 0.4) < 0.015  # plain sampling at 0.3 would stop ~80% of the time
    assert float(freq[1] / (1 - freq[0])) > 0.7 and float(freq[3]) < 0.01  # what it writes is sharpened
    greedy = sample_until(text, 0, torch.zeros(n), top, u[:, 0], u[:, 1])
    assert bool((greedy == 0).all())
