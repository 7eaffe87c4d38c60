"""`generate_script(agent, seed)`: one synthetic call for a shipped agent, as a `CallScript`.

It draws the scenario, the shop and the caller's style from a seeded rng and hands a
`CallBuilder` to the agent's flow: the customer-service flows live in `corpus.support_calls`, the
interpreters' (English to Spanish and Spanish to English) in `corpus.interpreting_calls`. The
same agent and seed always give the same script; tool results come from a seeded
`workers.shop.Shop`. The items, their timing relations and the validator are
`corpus.call_script`'s; this module knows none of the flows' phrases, and nothing of audio,
voices or tensors.
"""

from __future__ import annotations

import random

from corpus.call_builder import CallBuilder
from corpus.call_script import AGENTS, MOODS, SCENARIOS, CallerStyle, CallScript
from corpus.interpreting_calls import interpret_call
from corpus.support_calls import support_call
from workers.shop import Shop


def _style(rng: random.Random, scenario: str) -> CallerStyle:
    if scenario in ("angry", "confused"):
        mood = scenario
    else:
        mood = rng.choices(MOODS, (0.9, 0.06, 0.04))[0]
    patience = {"neutral": (0.3, 1.0), "angry": (0.05, 0.4), "confused": (0.6, 1.0)}[mood]
    rate = {"neutral": (0.85, 1.2), "angry": (1.0, 1.3), "confused": (0.75, 0.95)}[mood]
    return CallerStyle(round(rng.uniform(*rate), 2), round(rng.uniform(*patience), 2), mood)


def generate_script(agent: str, seed: int) -> CallScript:
    """One synthetic call for `agent`; the same agent and seed always give the same script."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; known: {', '.join(AGENTS)}")
    rng = random.Random(f"parley-script:{agent}:{seed}")
    names, weights = zip(*SCENARIOS[agent].items())
    scenario = rng.choices(names, weights)[0]
    shop = Shop.generate(rng.randrange(1_000_000))
    call = CallBuilder(agent, seed, scenario, rng, shop, _style(rng, scenario))
    (support_call if agent == "support" else interpret_call)(call)
    return call.script()
