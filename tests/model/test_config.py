"""model.config: presets meet their size targets, validation names the field, JSON round trips."""

from __future__ import annotations

import json

import pytest
import torch

from model.config import PRESETS, ModelConfig
from model.interaction import InteractionModel


def test_small2_is_small_reading_words_with_a_prompter():
    from model.protocol import EVENT_KINDS

    small, small2 = ModelConfig.from_name("small"), ModelConfig.from_name("small2")
    assert small2 == small.replace(event_repr="words", prompter_bytes=24, event_kinds=EVENT_KINDS)
    assert "reply" in small2.event_kinds and small.event_repr == "bytes" and small.prompter_bytes == 0


def test_presets_meet_their_size_targets():
    with torch.device("meta"):
        sizes = {name: InteractionModel(ModelConfig.from_name(name)).parameter_counts() for name in PRESETS}
    assert sizes["large"][0] >= 1_000_000_000
    assert sizes["xl"][1] >= 1_000_000_000
    total, active = sizes["small"]
    assert total * 2 < 100 * 2**20  # ships under 100 MB as bfloat16
    assert active < total
    assert sizes["tiny"][0] < sizes["small"][0]


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(top_k=5, n_experts=4), "top_k"),
        (dict(d_model=65), "d_model"),
        (dict(n_kv_heads=3), "n_kv_heads"),
        (dict(hop_length=333), "hop_length"),
        (dict(window=0), "window"),
        (dict(max_event_tokens=40, window=32), "max_event_tokens"),
        (dict(dmel_min=3.0), "dmel_max"),
        (dict(vocab_size=100), "vocab_size"),
        (dict(n_layers=True), "n_layers"),
        (dict(event_repr="subwords"), "event_repr"),
        (dict(prompter_bytes=16), "prompter_bytes"),  # needs event_repr="words"
        (dict(event_repr="words", prompter_bytes=-1), "prompter_bytes"),
        (dict(event_repr="words", prompter_bytes=64, max_reply_bytes=32), "prompter_bytes"),
        (dict(event_buckets=0), "event_buckets"),
    ],
)
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
