"""Training data: generated calls as a function of (seed, index), the loop's only data position.

Batch `index` holds `batch_size` calls drawn from a fixed corpus of `corpus_calls` scripted calls
(rendered once into the corpus cache, then reused across epochs), each cropped at a seeded random
micro-turn to `max_positions` stream positions. Agents are mixed by fixed ratios:
`interpreting_share` of the calls are an interpreter's, and `es_en_share` of those are
"translate-es-en" (Spanish callers) instead of "translate-en-es". The direction is drawn after the
interpreting choice from the same per-call stream, so with es_en_share=0 (the default, what every
run before it had) the corpus is call for call what it was. Call seeds for
training and for evaluation come from disjoint ranges (`EVAL_SEED_BASE`), and evaluation also uses
held-out caller voices. `agent_voice` picks the agent's English voice (corpus.render:
"espeak", what the shipped checkpoint was trained on, or "piper"); each has its own corpus cache.
`perturb_share` of the calls (chosen per call, so a call is always the same) have their caller's
voice, level and line perturbed (corpus.perturb), in a cache of their own. `background`: every
call has a background model beside it (corpus.background_calls: caller words and replies as
events, acknowledgements while a reply is coming), in caches of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpus.labels import build_example, to_batch
from corpus.render import CorpusCache
from model.config import ModelConfig
from model.interaction import Batch

EVAL_SEED_BASE = 10_000_000


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 8
    max_positions: int = 256
    corpus_calls: int = 4000
    interpreting_share: float = 0.3
    es_en_share: float = 0.0  # of the interpreting calls: translate-es-en's (the rest translate-en-es's)
    agent_voice: str = "espeak"  # corpus.render.AGENT_VOICE_CHOICES
    perturb_share: float = 0.0  # calls whose caller voice and line are perturbed (corpus.perturb)
    background: bool = False  # calls with a background model beside them (corpus.background_calls)


class CallStream:
    """Callable (seed, index) -> Batch, deterministic; renders on first use, then reads the cache."""

    def __init__(
        self, cfg: ModelConfig, data: DataConfig = DataConfig(), cache: CorpusCache | None = None
    ) -> None:
        self.cfg = cfg
        self.data = data
        self.cache = cache or CorpusCache(agent_voice=data.agent_voice, background=data.background)
        if self.cache.background != data.background:
            raise ValueError(
                f"DataConfig.background={data.background} but the cache's is {self.cache.background}"
            )
        perturbed = data.perturb_share > 0
        self.perturbed = (
            CorpusCache(self.cache.root, data.agent_voice, perturb=True, background=data.background)
            if perturbed
            else self.cache
        )

    def call(self, seed: int, n: int) -> tuple[str, int]:
        """The n-th call of the corpus: (agent, script seed)."""
        rng = np.random.default_rng([seed, n])
        agent = "support"
        if rng.random() < self.data.interpreting_share:
            agent = "translate-es-en" if rng.random() < self.data.es_en_share else "translate-en-es"
        return agent, seed * 1_000_003 + n

    def cache_of(self, seed: int, n: int) -> CorpusCache:
        """Where the n-th call renders: perturbed for a fixed `perturb_share` of the corpus."""
        perturbed = np.random.default_rng([seed, n, 2]).random() < self.data.perturb_share
        return self.perturbed if perturbed else self.cache

    def __call__(self, seed: int, index: int) -> Batch:
        d = self.data
        picks = np.random.default_rng([seed, index, 1]).integers(0, d.corpus_calls, size=d.batch_size)
        labels = [
            build_example(*self.call(seed, int(n)), self.cfg, cache=self.cache_of(seed, int(n)))
            for n in picks
        ]
        return to_batch(labels, self.cfg, d.max_positions, seed=seed * 7919 + index)
