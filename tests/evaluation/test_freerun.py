"""The free-run diagnostic steps the model as the server does and feeds back what it is told to."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corpus.labels import micro_turn_labels
from corpus.render import Event, RenderedCall, config_text
from corpus.scripts import generate_script
from evaluation.freerun import floor_strip, free_run, main
from model.config import ModelConfig
from model.interaction import InteractionModel

CFG = ModelConfig.from_name("tiny")


@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(7)
    return InteractionModel(CFG).eval()


@pytest.fixture(scope="module")
def call() -> RenderedCall:
    n = 30 * 3200
    rng = np.random.default_rng(0)
    caller = (0.1 * rng.standard_normal(n)).astype(np.float32)
    return RenderedCall(
        caller,
        np.zeros(n, np.float32),
        16000,
        [],
        [Event(0, "config", config_text("support")), Event(1000, "dtmf", "4")],
        [],
        generate_script("support", 0),
        0,
        True,
        "en-us",
        None,
    )


def test_free_run_is_reproducible_and_one_decision_per_micro_turn(tiny, call):
    labels = micro_turn_labels(call, CFG)
    a = free_run(tiny, call, labels, seed=3)
    b = free_run(tiny, call, labels, seed=3)
    assert a.floor == b.floor and a.p_speak == b.p_speak
    assert len(a.floor) == labels.n_turns == 30 and all(0.0 <= p <= 1.0 for p in a.p_speak)
    assert len(floor_strip(a.floor)) == 30
    assert len(free_run(tiny, call, labels, turns=5).floor) == 5


def test_feeding_every_channel_back_from_the_labels_changes_the_run(tiny, call):
    """With the labels' (silent, listening) outputs fed back the model sees other inputs than its
    own samples, so its speak probabilities differ from the free run's after the first step."""
    labels = micro_turn_labels(call, CFG)
    free = free_run(tiny, call, labels, seed=1)
    fed = free_run(tiny, call, labels, frozenset({"text", "audio", "floor"}), seed=1)
    assert fed.p_speak[0] == free.p_speak[0] and fed.p_speak[1:] != free.p_speak[1:]
    with pytest.raises(ValueError, match="unknown feed channel"):
        free_run(tiny, call, labels, frozenset({"tool"}))


def test_command_line_prints_label_and_variants(tmp_path, capsys, monkeypatch, tiny, call):
    from corpus import render
    from model.checkpoint import save_checkpoint

    save_checkpoint(tiny, tmp_path / "ck")
    monkeypatch.setattr(render.CorpusCache, "call", lambda self, agent, seed, held_out: call)
    main(["--checkpoint", str(tmp_path / "ck"), "--seeds", "5", "--feed", "free,text+floor", "--turns", "12"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "== support 5: 12 of 30 micro-turns"
    assert [ln.split()[0] for ln in lines[1:]] == ["label", "free", "p(S)", "text+floor", "p(S)"]
    assert all(len(ln.split()[-1]) == 12 for ln in lines[1:])


def test_a_words_model_runs_free_on_a_background_call():
    """Words-mode checkpoints get whole events ([marker, *payload]) from the labels' payloads."""
    pytest.importorskip("espeakng_loader")
    from corpus.render import render_call

    cfg = ModelConfig.from_name("small2").replace(
        **{
            k: v
            for k, v in ModelConfig.from_name("tiny").to_dict().items()
            if k not in ("event_repr", "prompter_bytes", "event_kinds")
        }
    )
    torch.manual_seed(0)
    model = InteractionModel(cfg).eval()
    bg = render_call(generate_script("support", 3), 3, background=True)
    labels = micro_turn_labels(bg, cfg)
    assert labels.event_payloads and sum(map(len, labels.event_payloads)) == sum(map(len, labels.events))
    run = free_run(model, bg, labels, turns=labels.n_turns, seed=2)
    assert len(run.floor) == labels.n_turns
