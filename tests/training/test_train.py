"""Training: losses fall on a short tiny run, and a resumed run continues exactly."""

from __future__ import annotations

import json

import pytest
import torch

from model.config import ModelConfig
from model.interaction import KIND_EVENT, KIND_TURN, Batch, InteractionModel
from model.tokenizer import SPECIAL
from training.loop import TrainConfig, Trainer


def structured_batch(cfg: ModelConfig, seed: int, index: int) -> Batch:
    """A learnable toy batch: the agent speaks (fixed text, loud audio) iff the caller was quiet."""
    g = torch.Generator().manual_seed(seed * 1000 + index % 4)
    b, t, f, m = 2, 24, cfg.frames_per_turn, cfg.n_mels
    kind = torch.full((b, t), KIND_TURN)
    kind[:, 5] = KIND_EVENT
    token = torch.full((b, t), SPECIAL.PAD)
    token[:, 5] = SPECIAL.TIMER
    loud = torch.rand(b, t, generator=g) < 0.5
    caller = torch.where(
        loud[..., None, None], torch.full((b, t, f, m), 12), torch.zeros(b, t, f, m, dtype=torch.long)
    )
    floor = torch.where(loud, 0, 2)
    text = torch.full((b, t, cfg.max_text_tokens), SPECIAL.PAD)
    text[..., 0] = torch.where(loud, SPECIAL.EOT, ord("h"))
    text[..., 1] = torch.where(loud, SPECIAL.PAD, SPECIAL.EOT)
    tool = torch.full((b, t, cfg.max_tool_tokens), SPECIAL.PAD)
    tool[:, 7, :3] = torch.tensor([ord("e"), ord("n"), SPECIAL.EOT])
    audio = torch.where(
        loud[..., None, None], torch.zeros(b, t, f, m, dtype=torch.long), torch.full((b, t, f, m), 9)
    )
    prefix = torch.tensor([[SPECIAL.CONFIG, 65, SPECIAL.EVENT_END]] * b)
    return Batch(
        prefix=prefix,
        prefix_len=torch.tensor([3] * b),
        kind=kind,
        token=token,
        caller=caller,
        floor=floor,
        text=text,
        tool=tool,
        audio=audio,
    )


def data(seed: int, index: int) -> Batch:
    return structured_batch(ModelConfig.from_name("tiny"), seed, index)


def _tiny(seed=0) -> InteractionModel:
    torch.manual_seed(seed)
    return InteractionModel(ModelConfig.from_name("tiny"))


def test_short_tiny_run_lowers_the_loss(tmp_path):
    cfg = TrainConfig(lr=3e-3, warmup_steps=5, total_steps=60, checkpoint_every=1000)
    history = Trainer(_tiny(), data, tmp_path, cfg).run(steps=60)
    first = sum(h["total"] for h in history[:5]) / 5
    last = sum(h["total"] for h in history[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert history[-1]["floor"] < 0.3
    lines = (tmp_path / "losses.jsonl").read_text().splitlines()
    assert len(lines) == 60 and json.loads(lines[-1])["step"] == 60


def test_resumed_run_continues_exactly(tmp_path):
    cfg = TrainConfig(lr=1e-3, warmup_steps=2, total_steps=100, checkpoint_every=3)
    straight = Trainer(_tiny(), data, tmp_path / "a", cfg)
    straight.run(steps=6)

    first = Trainer(_tiny(), data, tmp_path / "b", cfg)
    first.run(steps=4)  # checkpoint at 3, final save at 4
    resumed = Trainer(_tiny(seed=99), data, tmp_path / "b", cfg)
    assert resumed.resume() and resumed.step == 4
    resumed.run(steps=2)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_parley_train_runs_on_generated_calls_and_resumes(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    common = [
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--max-positions",
        "64",
        "--corpus-calls",
        "3",
        "--checkpoint-every",
        "2",
    ]
    env_cache = {"PARLEY_CACHE_DIR": str(tmp_path / "cache")}
    import os

    env = {**os.environ, **env_cache}
    res = subprocess.run(
        [sys.executable, "-m", "parley.cli", "train", *common, "--steps", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["step"] == 3
    assert (out / "losses.png").stat().st_size > 1000 and (out / "model.safetensors").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "parley.cli", "train", *common, "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert again.returncode != 0 and "--resume" in again.stderr  # never silently overwrites a run
    res = subprocess.run(
        [sys.executable, "-m", "parley.cli", "train", *common, "--resume", "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["step"] == 5
    steps = [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    # Resuming with other data (agent voice, perturbed share) would silently switch corpora:
    # refused, nothing trained.
    assert json.loads((out / "data.json").read_text()) == {"agent_voice": "espeak"}
    for option, value, said in (
        ("--agent-voice", "piper", "--agent-voice espeak (asked for piper)"),
        ("--perturb-share", "0.5", "--perturb-share 0.0 (asked for 0.5)"),
    ):
        other = subprocess.run(
            [sys.executable, "-m", "parley.cli", "train", *common, "--resume", "--steps", "1", option, value],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert other.returncode != 0 and said in other.stderr
    assert len((out / "losses.jsonl").read_text().splitlines()) == 5


def test_a_fixed_share_of_the_corpus_is_perturbed(tmp_path):
    from corpus.render import CorpusCache
    from training.data import CallStream, DataConfig

    cfg = ModelConfig.from_name("tiny")
    stream = CallStream(cfg, DataConfig(perturb_share=0.3), CorpusCache(tmp_path))
    caches = [stream.cache_of(0, n) for n in range(1000)]
    share = sum(c.perturb for c in caches) / len(caches)
    assert 0.25 < share < 0.35 and caches == [stream.cache_of(0, n) for n in range(1000)]
    assert stream.perturbed.root == tmp_path and stream.perturbed.dir != stream.cache.dir
    plain = CallStream(cfg, DataConfig(), CorpusCache(tmp_path))
    assert not any(plain.cache_of(0, n).perturb for n in range(200))


def test_a_background_stream_gives_words_and_the_prompter(tmp_path):
    from corpus.background_calls import BACKGROUND_VERSION
    from corpus.render import CorpusCache
    from model.protocol import EVENT_KINDS
    from training.data import CallStream, DataConfig

    cfg = ModelConfig.from_name("tiny").replace(
        event_repr="words", prompter_bytes=16, event_kinds=EVENT_KINDS
    )
    data = DataConfig(
        batch_size=2, max_positions=128, corpus_calls=3, interpreting_share=0.0, background=True
    )
    stream = CallStream(cfg, data, CorpusCache(tmp_path, background=True))
    batch = stream(0, 0)
    assert batch.event_words.shape == (2, 128, cfg.event_words) and batch.prompter.shape == (2, 128, 16)
    assert stream.cache.dir.name.endswith(f"-background{BACKGROUND_VERSION}")
    assert any(stream.cache.dir.rglob("*.npz"))
    with pytest.raises(ValueError, match="background"):
        CallStream(cfg, data, CorpusCache(tmp_path))


def test_feedback_noise_corrupts_only_what_the_model_reads_back():
    model = _tiny().train()
    batch = data(0, 0)
    torch.manual_seed(0)
    clean = model(batch)
    torch.manual_seed(0)
    again = model(batch, feedback_noise=0.0)
    assert torch.equal(clean.floor_logits, again.floor_logits)
    torch.manual_seed(0)
    noisy = model(batch, feedback_noise=0.5)
    assert not torch.allclose(clean.floor_logits, noisy.floor_logits)
    assert torch.equal(clean.prev_floor, noisy.prev_floor)  # the loss sees the true previous floor


def test_self_feed_reads_back_the_models_own_samples_and_keeps_the_targets():
    model = _tiny().train()
    batch = data(0, 0)
    torch.manual_seed(1)
    own = model.own_outputs(batch, share=1.0)
    is_turn = batch.kind == KIND_TURN
    assert torch.equal(own.mask, is_turn)  # every micro-turn at share 1, never an event position
    # Text is a well-formed micro-turn: bytes, exactly one EOT, then PAD.
    eot = own.text == SPECIAL.EOT
    assert bool((eot.sum(-1) == 1).all())
    after = torch.arange(own.text.shape[-1]) > eot.int().argmax(-1, keepdim=True)
    assert bool((own.text[after] == SPECIAL.PAD).all())
    assert own.audio.shape == batch.audio.shape and int(own.audio.max()) < model.cfg.dmel_levels
    # Fed back, the own samples change what the model reads, not what it is scored against.
    clean, fed = model(batch), model(batch, own=own)
    assert not torch.allclose(clean.floor_logits, fed.floor_logits)
    assert torch.equal(clean.prev_floor, fed.prev_floor)
    none = model.own_outputs(batch, share=0.0)
    assert not bool(none.mask.any()) and torch.equal(model(batch, own=none).floor_logits, clean.floor_logits)


def test_self_fed_run_lowers_the_loss_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(lr=1e-3, warmup_steps=2, total_steps=100, checkpoint_every=3, self_feed=0.3)
    straight = Trainer(_tiny(), data, tmp_path / "a", cfg)
    records = straight.run(steps=6)
    first = Trainer(_tiny(), data, tmp_path / "b", cfg)
    first.run(steps=4)
    resumed = Trainer(_tiny(seed=99), data, tmp_path / "b", cfg)
    assert resumed.resume() and resumed.step == 4
    resumed.run(steps=2)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert records[-1]["total"] < records[0]["total"]


def test_parley_train_starts_from_a_checkpoint_or_says_why_not(tmp_path):
    """--init-from: a checkpoint whose tensors the preset holds starts the run; one it cannot
    hold is refused before any step, naming the option."""
    import os
    import subprocess
    import sys

    from model.checkpoint import save_checkpoint

    save_checkpoint(InteractionModel(ModelConfig.from_name("tiny")), tmp_path / "ckpt")
    env = {**os.environ, "PARLEY_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--batch-size", "1", "--max-positions", "32", "--corpus-calls", "1", "--steps", "1"]

    def train(out: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "parley.cli", "train", "--out", str(tmp_path / out), *common, *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    ok = train("a", "--preset", "tiny", "--init-from", str(tmp_path / "ckpt"))
    assert ok.returncode == 0, ok.stderr
    assert "starting from" in ok.stderr
    bad = train("b", "--preset", "small", "--init-from", str(tmp_path / "ckpt"))
    assert bad.returncode != 0 and "--init-from" in bad.stderr
    assert not (tmp_path / "b" / "trainer.pt").exists()
