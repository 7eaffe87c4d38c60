"""Bridged scenarios: the turn plan, the two parties' audio and annotations, the `bridge` key's
validation, and writing them (with a stand-in synthesiser; once with espeak-ng where installed)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import pytest

from evaluation.bridged_scenarios import (
    AGENT_A,
    AGENT_B,
    LEAD_S,
    SPANISH_VOICES,
    bridged_scenario,
    plan_turns,
    write_bridged,
)
from evaluation.metrics import merge_intervals, speech_intervals
from evaluation.scenarios import SAMPLE_RATE, ScenarioError, load_scenario, parse_scenario
from workers.shop import Shop


@dataclass
class Said:
    audio: np.ndarray


class ToneTTS:
    """A synthesiser stand-in: a tone as long as the text (60 ms a character) between 100 ms of
    silence, so the audible edges are known; it keeps what it was asked to say."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def synthesize_16k(self, text, voice, rate, pitch, spread) -> Said:
        self.calls.append((text, voice))
        n = int(0.06 * len(text) * SAMPLE_RATE)
        tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(n) / SAMPLE_RATE)
        pad = np.zeros(SAMPLE_RATE // 10)
        return Said(np.concatenate([pad, tone, pad]).astype(np.float32))


def test_turns_alternate_between_the_parties_and_sometimes_start_early():
    early = waited = 0
    for seed in range(40):
        rng = random.Random(seed)
        utterances = plan_turns(rng, Shop.generate(seed), 4)
        turns = [utterances[0].party]
        for prev, u in zip(utterances, utterances[1:]):
            assert u.start_s >= prev.start_s + prev.est_s  # the plan never overlaps two utterances
            if u.party != prev.party:
                turns.append(u.party)
                gap = u.start_s - (prev.start_s + prev.est_s)
                translation_s = 62.0 * len(prev.reference) / 1000
                early += gap < translation_s
                waited += gap >= translation_s
        assert turns == ["a", "b", "a", "b"] and utterances[0].start_s == LEAD_S
        assert all(u.text and u.reference and u.text != u.reference for u in utterances)
    assert early and waited  # both kinds of turn taking occur


def test_a_speaks_english_b_spanish_with_references_in_the_other_language():
    tts = ToneTTS()
    scenario, a, b = bridged_scenario(950_123, tts)
    said = scenario["source"]["said"]
    assert scenario["agent"] == AGENT_A and scenario["bridge"]["agent"] == AGENT_B
    assert len(a) == len(b)
    voices = {voice for _, voice in tts.calls}
    assert len(voices) == 2 and scenario["source"]["voices"]["b"]["name"] in SPANISH_VOICES
    for party, audio, ann in (("a", a, scenario["annotations"]), ("b", b, scenario["bridge"]["annotations"])):
        spans = ann["caller_speech"]
        assert len(spans) == len(ann["translations"]) == len(said[party])
        # Each annotated span is where the party's audio sounds (trimmed to audible speech).
        heard = speech_intervals(audio, SAMPLE_RATE)
        annotated = merge_intervals([tuple(s) for s in spans], 0.15)
        assert np.allclose(np.array(annotated), np.array(heard), atol=0.021)
        assert all(s[1] <= t[0] for s, t in zip(spans, spans[1:]))  # a party never overlaps itself
        assert set(ann["turn_ends"]) <= {e for _, e in spans}
    # Spanish references for A's English and English ones for B's Spanish (the bank's two sides).
    assert any(c in "".join(scenario["annotations"]["translations"]) for c in "áéíóúñ¿")
    assert any(c in "".join(said["b"]) for c in "áéíóúñ¿")
    again, a2, _ = bridged_scenario(950_123, ToneTTS())
    assert again == scenario and np.array_equal(a, a2)  # the seed decides everything


def test_written_scenarios_load_as_two_party_scenarios(tmp_path):
    (path,) = write_bridged(tmp_path, 1, seed0=950_007, tts=ToneTTS())
    sc = load_scenario(path)
    assert sc.bridge is not None and sc.bridge.agent == AGENT_B and sc.bridge.wav == f"{path.stem}.b.wav"
    assert len(sc.bridge.audio) == len(sc.audio) and sc.duration_s == len(sc.audio) / SAMPLE_RATE
    assert len(sc.annotations.translations) == len(sc.annotations.caller_speech)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{path.stem}.b.wav",
        f"{path.stem}.json",
        f"{path.stem}.wav",
    ]


@pytest.mark.parametrize(
    "bridge, message",
    [
        ({"agent": "translate-en-es", "wav": "b.wav"}, "bridge.agent: unknown agent"),
        ({"agent": "translate-es-en"}, "bridge: missing key 'wav'"),
        ({"agent": "translate-es-en", "wav": "b.wav", "x": 1}, "bridge: unknown keys ['x']"),
        (
            {"agent": "translate-es-en", "wav": "b.wav", "annotations": {"caller_speech": [[0, 1]]}},
            "bridge.annotations.translations: a bridged scenario needs one reference per caller_speech",
        ),
        (
            {"agent": "translate-es-en", "wav": "b.wav", "annotations": {"turn_ends": [-1]}},
            "bridge.annotations.turn_ends[0]",
        ),
    ],
)
def test_bad_bridges_are_refused_naming_the_key(tmp_path, bridge, message):
    data = {"agent": "translate-en-es", "bridge": bridge}
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(
            data, tmp_path / "s.json", np.zeros(100, np.float32), audio_b=np.zeros(100, np.float32)
        )


def test_party_b_must_interpret_back_and_its_audio_must_exist(tmp_path):
    bridge = {"agent": "translate-es-en", "wav": "b.wav"}
    with pytest.raises(ScenarioError, match="bridge.agent: .* does not interpret"):
        parse_scenario({"agent": "support", "bridge": bridge}, tmp_path / "s.json", np.zeros(1, np.float32))
    (tmp_path / "s.json").write_text(json.dumps({"agent": "translate-en-es", "bridge": bridge}))
    from telephony.wav import write_float

    write_float(tmp_path / "s.wav", np.zeros(160, np.float32), SAMPLE_RATE)
    with pytest.raises(ScenarioError, match="bridge.wav: b.wav is missing"):
        load_scenario(tmp_path / "s.json")


def test_espeak_voices_both_parties(tmp_path):
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    (path,) = write_bridged(tmp_path, 1, seed0=950_001)
    sc = load_scenario(path)
    for audio, ann in ((sc.audio, sc.annotations), (sc.bridge.audio, sc.bridge.annotations)):
        assert speech_intervals(audio, SAMPLE_RATE) and ann.caller_speech
        first = ann.caller_speech[0]
        assert np.abs(audio[int(first[0] * SAMPLE_RATE) : int(first[1] * SAMPLE_RATE)]).max() > 0.1
