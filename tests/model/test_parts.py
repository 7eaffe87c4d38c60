"""Config presets and validation, tokenizer, sampling, MoE routing, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.config import PRESETS, ModelConfig
from model.interaction import InteractionModel, StepInputs
from model.moe import MoE
from model.sampling import sample, sample_decision, sample_until, uniform
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer, StreamDecoder


# -- config ------------------------------------------------------------------------------------

def test_presets_meet_their_size_targets():
    with torch.device("meta"):
        sizes = {name: InteractionModel(ModelConfig.from_name(name)).parameter_counts() for name in PRESETS}
    assert sizes["large"][0] >= 1_000_000_000
    assert sizes["xl"][1] >= 1_000_000_000
    total, active = sizes["small"]
    assert total * 2 < 100 * 2**20  # ships under 100 MB as bfloat16
    assert active < total
    assert sizes["tiny"][0] < sizes["small"][0]


@pytest.mark.parametrize("changes, field", [
    (dict(top_k=5, n_experts=4), "top_k"),
    (dict(d_model=65), "d_model"),
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(hop_length=333), "hop_length"),
    (dict(window=0), "window"),
    (dict(max_event_tokens=40, window=32), "max_event_tokens"),
    (dict(dmel_min=3.0), "dmel_max"),
    (dict(vocab_size=100), "vocab_size"),
    (dict(n_layers=True), "n_layers"),
])
def test_config_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
        ModelConfig.from_name("tiny").replace(**changes)


def test_config_round_trips_and_refuses_unknown():
    cfg = ModelConfig.from_name("small")
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.frames_per_turn == 10 and cfg.micro_turn_samples == 3200
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelConfig.from_name("huge")


# -- tokenizer ---------------------------------------------------------------------------------

def test_tokenizer_round_trips_any_text_and_streams_split_characters():
    tok = ByteTokenizer()
    text = "Hola, ¿cómo está? Order #A-1234 → 5€ 👍"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    dec = StreamDecoder()
    pieces = [dec.push(ids[i:i + 3] + [SPECIAL.EOT, SPECIAL.PAD]) for i in range(0, len(ids), 3)]
    assert "".join(pieces) + dec.flush() == text


def test_tokenizer_events_and_tool_calls():
    tok = ByteTokenizer()
    ev = tok.encode_event("dtmf", "42")
    assert ev[0] == SPECIAL.DTMF and ev[-1] == SPECIAL.EVENT_END and tok.decode(ev) == "42"
    with pytest.raises(ValueError, match="unknown event kind"):
        tok.encode_event("fax")
    call = tok.encode_tool_call("lookup_order", '{"order_id": "A1"}')
    assert tok.parse_tool_call(call) == ("lookup_order", '{"order_id": "A1"}')
    assert tok.parse_tool_call(tok.encode("!!! {}")) is None


# -- sampling ----------------------------------------------------------------------------------

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


# -- MoE ---------------------------------------------------------------------------------------

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
    dense = torch.stack([torch.nn.functional.silu(flat @ moe.w1[i].t()) * (flat @ moe.w3[i].t()) @ moe.w2[i].t()
                         for i in range(cfg.n_experts)], 1)  # [N, E, D]
    want = (dense.gather(1, e[..., None].expand(-1, -1, cfg.d_model)) * w[..., None]).sum(1) + moe.shared(flat)
    torch.testing.assert_close(moe(x)[0].reshape(-1, cfg.d_model), want, atol=1e-5, rtol=1e-5)
    # The balance loss has a gradient into the router.
    moe.train()
    moe(x)[1].backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0


# -- checkpoints -------------------------------------------------------------------------------

def test_checkpoint_round_trip_gives_identical_steps(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    audio = torch.randn(2, 3200) * 0.1
    a = tiny.step(StreamState.allocate(tiny.cfg, 2), StepInputs(audio=audio), [0, 1])
    b = loaded.step(StreamState.allocate(loaded.cfg, 2), StepInputs(audio=audio), [0, 1])
    assert torch.equal(a.audio, b.audio) and torch.equal(a.pcm, b.pcm)


def test_bfloat16_checkpoint_loads(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "bf", dtype=torch.bfloat16)
    loaded = load_checkpoint(tmp_path / "bf")
    assert next(loaded.parameters()).dtype == torch.float32


def test_checkpoint_whose_config_does_not_match_is_refused(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "d_expert": 96}))
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.0\.moe\.w1 has shape"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "n_layers": 3}))
    with pytest.raises(CheckpointError, match="missing tensor backbone.blocks.2"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "n_layers": 1}))
    with pytest.raises(CheckpointError, match="unexpected tensor backbone.blocks.1"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "top_k": 9}))
    with pytest.raises(CheckpointError, match=r"ModelConfig\.top_k=9"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ck)


def test_checkpoint_with_nan_weights_is_refused(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "ck")
    tensors = load_file(str(ck / "model.safetensors"))
    tensors["floor_head.weight"][0, 0] = float("nan")
    save_file(tensors, str(ck / "model.safetensors"))
    with pytest.raises(CheckpointError, match="floor_head.weight holds NaN"):
        load_checkpoint(ck)
