"""Held-out bridged scenarios: two callers who take turns, party A in English and party B in Spanish.

`write_bridged(out_dir, n)` writes `n` two-party scenarios (README "Scenario format", the `bridge`
key): `<name>.wav` is party A (English, for `translate-en-es`), `<name>.b.wav` party B (Spanish, for
`translate-es-en`), both 16 kHz, silent where that party is not speaking, on one clock (t = 0 at
both files' first sample). The lines come from the interpreter's sentence bank
(`corpus.interpreting_calls.SENTENCES`, "English = Spanish" per chunk, slots filled as its calls
fill them): A says a sentence's English side, with the Spanish side as its reference translation;
B says another sentence's Spanish side, with the English side as its reference. Each chunk is one
utterance (one `caller_speech` interval, one entry of `translations`, in the same order).

Timing (`plan_turns`): A and B alternate, one sentence a turn. The next party usually waits for
the translation of what it heard (the last chunk's end + an assumed interpreting lag + the
translation's estimated length + a short gap); in `EARLY_P` of the turns it starts while that
translation is still playing, as people on a call do. Chunks of one sentence follow each other
with short pauses.

Voices: A speaks with one of corpus.render's held-out English caller voices, B with a Spanish
espeak-ng base (`SPANISH_BASES`) and one of the held-out variants (never the agent's), rate and
pitch drawn as corpus.render draws a caller's. Evaluation-time data tooling (espeak-ng is GPL):
never imported by the serving path. Every draw comes from the seed: the same seed gives the same
bytes.

Knows the scenario format and the sentence bank; nothing of gateways, model servers or metrics.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from corpus.call_builder import est_ms
from corpus.interpreting_calls import SENTENCES, _slots
from corpus.render import CALLER_RATE_WPM, HELD_OUT_CALLER_VARIANTS, HELD_OUT_CALLER_VOICES
from evaluation.metrics import speech_intervals
from evaluation.scenarios import SAMPLE_RATE
from telephony.wav import write_float
from workers.shop import Shop

BRIDGED_SEED0 = 950_000  # apart from the single-party held-out seeds (900000 + n)
AGENT_A, AGENT_B = "translate-en-es", "translate-es-en"
SPANISH_BASES = ("es", "es-419")
SPANISH_VOICES = tuple(f"{b}+{v}" for b in SPANISH_BASES for v in HELD_OUT_CALLER_VARIANTS)
TURNS = (4, 6)  # sentences per call, alternating A, B, A, ...
LAG_S = 1.5  # the interpreting lag a listener is assumed to wait for, before the translation's length
EARLY_P = 0.3  # share of turns that start while the other's translation is still playing
EARLY_S = (0.6, 1.6)  # such a turn starts this long after the other's last chunk
REPLY_GAP_S = (0.3, 1.0)  # otherwise after the translation's estimated end
CHUNK_GAP_S = (0.1, 0.45)  # between chunks of one sentence
LEAD_S = 0.5  # silence before the first utterance
TAIL_S = 4.0  # silence after the last: its translation still has to come
LEVEL = 0.3  # peak of each utterance


@dataclass(frozen=True)
class Utterance:
    party: str  # "a" | "b"
    text: str  # what the party says
    reference: str  # its translation, in the other party's language
    start_s: float  # planned onset on the call clock
    est_s: float  # planned length (before synthesis)


@dataclass(frozen=True)
class Voice:
    name: str
    rate_wpm: int
    pitch: int
    pitch_range: int


def _sentence(rng: random.Random, shop: Shop, sentence) -> list[tuple[str, str]]:
    """A bank sentence's chunks as (English, Spanish) with its slots filled."""
    slots = _slots(SimpleNamespace(rng=rng, pick=rng.choice, shop=shop))
    return [(en.format(**slots), es.format(**slots)) for en, es in sentence]


def plan_turns(rng: random.Random, shop: Shop, n_turns: int) -> list[Utterance]:
    """The utterances of one call, alternating parties a sentence a turn (module docstring)."""
    out: list[Utterance] = []
    t = LEAD_S
    last_reference = ""
    for turn, sentence in enumerate(rng.sample(SENTENCES, n_turns)):
        party = "ab"[turn % 2]
        chunks = _sentence(rng, shop, sentence)
        if turn:
            if rng.random() < EARLY_P:
                t += rng.uniform(*EARLY_S)
            else:
                t += LAG_S + est_ms(last_reference) / 1000 + rng.uniform(*REPLY_GAP_S)
        for k, (en, es) in enumerate(chunks):
            said, reference = (en, es) if party == "a" else (es, en)
            if k:
                t += rng.uniform(*CHUNK_GAP_S)
            est = est_ms(said) / 1000
            out.append(Utterance(party, said, reference, round(t, 3), est))
            t += est
            last_reference = reference
    return out


def _voice(rng: random.Random, voices: tuple[str, ...]) -> Voice:
    return Voice(
        rng.choice(voices),
        int(round(rng.uniform(*CALLER_RATE_WPM))),
        rng.randint(30, 70),
        rng.randint(30, 80),
    )


def _audible(x: np.ndarray) -> np.ndarray:
    """The utterance without the synthesiser's leading and trailing silence, at `LEVEL` peak."""
    iv = speech_intervals(x, SAMPLE_RATE)
    if iv:
        x = x[int(iv[0][0] * SAMPLE_RATE) : int(round(iv[-1][1] * SAMPLE_RATE))]
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (LEVEL / peak) if peak > 0 else x).astype(np.float32)


def render_bridged(utterances: list[Utterance], voices: dict[str, Voice], tts) -> dict:
    """Both parties' audio and annotations. Utterances are synthesised in order and placed at
    their planned onset, pushed later when the party's previous one (as synthesised) has not
    ended by then: each party's utterances never overlap each other."""
    clips: dict[str, list[tuple[int, np.ndarray, Utterance]]] = {"a": [], "b": []}
    free = {"a": 0, "b": 0}  # the sample after each party's last utterance
    for u in utterances:
        v = voices[u.party]
        x = _audible(tts.synthesize_16k(u.text, v.name, v.rate_wpm, v.pitch, v.pitch_range).audio)
        start = max(round(u.start_s * SAMPLE_RATE), free[u.party] + round(0.1 * SAMPLE_RATE))
        clips[u.party].append((start, x, u))
        free[u.party] = start + len(x)
    n = max(free.values()) + round(TAIL_S * SAMPLE_RATE)
    out = {}
    for party, placed in clips.items():
        audio = np.zeros(n, np.float32)
        for start, x, _ in placed:
            audio[start : start + len(x)] = x
        spans = [[round(s / SAMPLE_RATE, 4), round((s + len(x)) / SAMPLE_RATE, 4)] for s, x, _ in placed]
        out[party] = {
            "audio": audio,
            "annotations": {
                "caller_speech": spans,
                "turn_ends": _turn_ends(spans, utterances, party),
                "translations": [u.reference for _, _, u in placed],
            },
            "text": [u.text for _, _, u in placed],
        }
    return out


def _turn_ends(spans: list[list[float]], utterances: list[Utterance], party: str) -> list[float]:
    """The end of each of the party's turns (its last chunk before the other party speaks)."""
    mine = [i for i, u in enumerate(utterances) if u.party == party]
    return [
        spans[k][1]
        for k, i in enumerate(mine)
        if i + 1 == len(utterances) or utterances[i + 1].party != party
    ]


def bridged_scenario(seed: int, tts) -> tuple[dict, np.ndarray, np.ndarray]:
    """(scenario JSON without file names, party A's audio, party B's audio) of seed `seed`."""
    rng = random.Random(seed)
    shop = Shop.generate(rng.randrange(1_000_000))
    voices = {"a": _voice(rng, HELD_OUT_CALLER_VOICES), "b": _voice(rng, SPANISH_VOICES)}
    utterances = plan_turns(rng, shop, rng.randint(*TURNS))
    parties = render_bridged(utterances, voices, tts)
    scenario = {
        "agent": AGENT_A,
        "annotations": parties["a"]["annotations"],
        "bridge": {"agent": AGENT_B, "annotations": parties["b"]["annotations"]},
        "source": {
            "generator": "evaluation.bridged_scenarios",
            "seed": seed,
            "held_out": True,
            "voices": {p: vars(v) for p, v in voices.items()},
            "said": {p: parties[p]["text"] for p in "ab"},
        },
    }
    return scenario, parties["a"]["audio"], parties["b"]["audio"]


def write_bridged(out_dir: str | Path, n: int, seed0: int = BRIDGED_SEED0, tts=None) -> list[Path]:
    """`n` bridged scenarios (seeds seed0, seed0 + 1, ...) as `bridged-<seed>.json`, `.wav` (party
    A) and `.b.wav` (party B) in `out_dir`; `tts`: an espeak-ng-like synthesiser (default:
    corpus.tts.Espeak)."""
    if tts is None:
        from corpus.tts import Espeak

        tts = Espeak.instance()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        seed = seed0 + i
        name = f"bridged-{seed}"
        scenario, a, b = bridged_scenario(seed, tts)
        bridge = scenario["bridge"]
        scenario["bridge"] = {
            "agent": bridge["agent"],
            "wav": f"{name}.b.wav",
            "annotations": bridge["annotations"],
        }
        write_float(out / f"{name}.wav", a, SAMPLE_RATE)
        write_float(out / f"{name}.b.wav", b, SAMPLE_RATE)
        path = out / f"{name}.json"
        path.write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
