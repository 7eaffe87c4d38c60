"""The training corpus's agent mix: --es-en-share adds translate-es-en calls, and its default keeps
every existing run's corpus call for call (a resumed run must not change its data)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")  # CorpusCache names its directory after espeak-ng's version

from corpus.render import CorpusCache  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from training.cli import _same_data  # noqa: E402
from training.data import CallStream, DataConfig  # noqa: E402

CFG = ModelConfig.from_name("tiny")
CALLS = range(4000)


def stream(tmp_path, **data) -> CallStream:
    return CallStream(CFG, DataConfig(**data), CorpusCache(tmp_path))


def test_the_default_stream_is_the_one_every_run_had(tmp_path):
    """Pinned: (agent, seed) of corpus seed 0 before --es-en-share existed; and the same as the
    rule the stream had then, for other corpus seeds."""
    calls = [stream(tmp_path).call(0, n) for n in CALLS]
    digest = hashlib.sha256(repr(calls).encode()).hexdigest()
    assert digest == "5917a21d1719ec2314477e7e92cf87a710e3791fff3744ffe7ad93b55a84d08d"
    for seed in (1, 7):
        before = [
            (
                "translate-en-es" if np.random.default_rng([seed, n]).random() < 0.3 else "support",
                seed * 1_000_003 + n,
            )
            for n in CALLS
        ]
        assert [stream(tmp_path, es_en_share=0.0).call(seed, n) for n in CALLS] == before


def test_a_positive_es_en_share_turns_that_share_of_interpreting_calls_around(tmp_path):
    plain = [stream(tmp_path).call(0, n) for n in CALLS]
    mixed = [stream(tmp_path, es_en_share=0.5).call(0, n) for n in CALLS]
    assert [s for _, s in mixed] == [s for _, s in plain]  # the same script seeds
    assert [a == "support" for a, _ in mixed] == [a == "support" for a, _ in plain]  # support as was
    interpreting = [a for a, _ in mixed if a != "support"]
    share = interpreting.count("translate-es-en") / len(interpreting)
    assert 0.45 < share < 0.55 and set(interpreting) == {"translate-en-es", "translate-es-en"}
    everything = [stream(tmp_path, es_en_share=1.0).call(0, n)[0] for n in CALLS]
    assert "translate-en-es" not in everything and "translate-es-en" in everything


def test_resuming_with_another_es_en_share_is_refused(tmp_path):
    run = tmp_path / "run"
    _same_data(run, {"agent_voice": "espeak"}, existing=False)  # a run from before the option
    _same_data(run, {"agent_voice": "espeak"}, existing=True)  # resumed with the same options
    with pytest.raises(SystemExit, match=r"--es-en-share 0.0 \(asked for 0.5\)"):
        _same_data(run, {"agent_voice": "espeak", "es_en_share": 0.5}, existing=True)
    new = tmp_path / "new"
    _same_data(new, {"agent_voice": "espeak", "es_en_share": 0.5}, existing=False)
    assert json.loads((new / "data.json").read_text())["es_en_share"] == 0.5
    with pytest.raises(SystemExit, match=r"--es-en-share 0.5 \(asked for 0.0\)"):
        _same_data(new, {"agent_voice": "espeak"}, existing=True)


def test_an_es_en_stream_renders_its_calls_into_their_own_cache_directory(tmp_path):
    s = stream(
        tmp_path, batch_size=1, max_positions=64, corpus_calls=1, interpreting_share=1.0, es_en_share=1.0
    )
    batch = s(0, 0)
    assert batch.kind.shape == (1, 64)
    files = list(s.cache.dir.rglob("*.npz"))
    assert [f.relative_to(s.cache.dir).parts[:2] for f in files] == [("translate-es-en", "train")]
