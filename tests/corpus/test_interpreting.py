"""Both interpreters' calls: translate-es-en scripts from the same bank as translate-en-es, Spanish
callers with their own voice split, the agent's English lines voiced and labelled, and
translate-en-es calls unchanged (the corpus cache holds them)."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest

from corpus import call_builder as cb
from corpus import call_script as sc
from corpus import interpreting_calls as ic
from corpus.call_script import CallScript, Say, ScriptError
from corpus.interpreting_calls import CLOSINGS, DIRECTIONS, SENTENCES
from corpus.scripts import generate_script
from workers.shop import FIRST_NAMES

SEEDS = range(300)


def words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", re.sub(r"\{\w+\}", " ", text).lower())


def vocabulary(lang: str) -> set[str]:
    """Every word a call may say in `lang`: its side of the bank, the slot values, the lines of
    its own (names and cities belong to both)."""
    side = 0 if lang == "en" else 1
    texts = [chunk[side] for line in SENTENCES + CLOSINGS for chunk in line] + [*ic.CITIES, *FIRST_NAMES]
    if lang == "en":
        texts += [*ic.INTRO_ES_EN, *ic.DAYS_EN, *cb.ONES, *cb.TENS, *(r[0] for r in ic.RELATIONS)]
        texts += [p[0] for p in ic.PERIODS]
    else:
        texts += [*ic.CORRECTIONS_ES, *ic.FILLERS_ES, *ic.LEADS_ES, *ic.DAYS_ES, *ic.ES_NUM, *ic.ES_TENS]
        texts += [*(r[1] for r in ic.RELATIONS), *(f"{p[1]} {p[2]}" for p in ic.PERIODS)]
    return {w for t in texts for w in words(t)}


EN, ES = vocabulary("en"), vocabulary("es")


@pytest.fixture(scope="module")
def es_en() -> list[CallScript]:
    return [generate_script("translate-es-en", s) for s in SEEDS]


def says(script: CallScript, speaker: str) -> list[Say]:
    return [it for it in script.items if isinstance(it, Say) and it.speaker == speaker]


def test_es_en_scripts_validate_and_cover_the_scenarios(es_en):
    for script in es_en:
        script.validate()
        assert CallScript.from_json(script.to_json()).to_json() == script.to_json()
    assert {s.scenario for s in es_en} == set(sc.SCENARIOS["translate-es-en"])
    seen = set().union(*(s.features() for s in es_en))
    assert {"early_translation", "barge_in", "mid_turn_pause", "end_call"} <= seen


def test_es_en_callers_speak_spanish_and_the_interpreter_english(es_en):
    assert len(ES - EN) > 100 and len(EN - ES) > 100
    for script in es_en:
        for it in says(script, "caller"):
            said = set(words(it.text))
            assert it.lang == "es" and said <= ES and said - EN, it.text
        for i, it in enumerate(script.items):
            if isinstance(it, Say) and it.speaker == "agent":
                assert it.lang == "en" and set(words(it.text)) <= EN, it.text
                if i > 0:  # the intro aside, every agent line translates a Spanish caller line
                    source = script.items[it.translates]
                    assert source.speaker == "caller" and source.lang == "es"


def test_both_directions_share_one_bank():
    """Each direction says one side of the same chunk and voices the other."""
    en_es, es_en = DIRECTIONS["translate-en-es"], DIRECTIONS["translate-es-en"]
    for chunk in (c for line in SENTENCES + CLOSINGS for c in line):
        assert en_es.pair(chunk) == chunk and es_en.pair(chunk) == chunk[::-1]
    for name, d in DIRECTIONS.items():
        assert (d.source, d.target) == sc.INTERPRETERS[name]


def test_the_validator_holds_es_en_calls_to_their_languages(es_en):
    script = next(s for s in es_en if says(s, "agent")[0].translates is not None)
    first_translation = script.items.index(says(script, "agent")[0])
    spanish_agent = dataclasses.replace(script, items=list(script.items))
    spanish_agent.items[first_translation] = dataclasses.replace(
        spanish_agent.items[first_translation], lang="es"
    )
    with pytest.raises(ScriptError, match="expected en"):
        spanish_agent.validate()
    english_caller = dataclasses.replace(script, items=list(script.items))
    english_caller.items[0] = dataclasses.replace(english_caller.items[0], lang="en")
    with pytest.raises(ScriptError, match="expected es"):
        english_caller.validate()


def test_en_es_and_support_scripts_are_what_they_were():
    """The corpus cache holds calls rendered from these scripts: they must not change.
    (Digest of the scripts before translate-es-en existed.)"""
    text = "".join(generate_script(a, s).to_json() for a in ("support", "translate-en-es") for s in range(40))
    assert (
        hashlib.sha256(text.encode()).hexdigest()
        == "cba5493d45d833527c8a452fcc87456e88f1117c82c07e9cc5a5d2cc46e29d45"
    )


# -- rendering and labels (espeak-ng, the data extra) -------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    pytest.importorskip("espeakng_loader")
    from corpus.render import render_call

    seed = 3
    return render_call(generate_script("translate-es-en", seed), seed)


def test_es_en_caller_voices_are_spanish_and_split():
    pytest.importorskip("espeakng_loader")
    from corpus import render as rd
    from corpus.tts import Espeak

    train, held = set(rd.TRAIN_CALLER_VOICES_ES), set(rd.HELD_OUT_CALLER_VOICES_ES)
    assert train and held and not train & held
    assert not set(rd.TRAIN_CALLER_BASES_ES) & set(rd.HELD_OUT_CALLER_BASES_ES)
    assert rd.caller_voices(lang="es") == rd.TRAIN_CALLER_VOICES_ES
    assert rd.caller_voices(True, lang="es") == rd.HELD_OUT_CALLER_VOICES_ES
    tts = Espeak.instance()
    for voice in sorted(train | held):
        assert tts.resolve_voice(voice).startswith("roa/es"), voice  # a Spanish voice espeak-ng knows
    with pytest.raises(ValueError, match="English only"):
        rd.caller_voices(True, "kokoro", "es")


def test_an_es_en_call_renders_with_spanish_caller_and_english_agent(rendered):
    from corpus import render as rd

    call = rendered
    assert call.caller_voice in rd.TRAIN_CALLER_VOICES_ES
    assert call.events[0].kind == "config" and call.events[0].payload.startswith("translate-es-en|es>en|")
    agent = [s for s in call.says if s.speaker == "agent"]
    assert agent and all(s.lang == "en" and s.text for s in agent)
    assert all(s.lang == "es" for s in call.says if s.speaker == "caller")
    for s in agent:  # the agent's lines are in its channel, where they were placed
        assert abs(call.agent[s.start_sample : s.end_sample]).max() > 0.01
    held = rd.render_call(call.script, call.seed, held_out=True)
    assert held.caller_voice in rd.HELD_OUT_CALLER_VOICES_ES
    assert [s.text for s in held.says if s.speaker == "agent"] == [s.text for s in agent]


def test_the_agent_voices_english_lines_in_the_runs_english_voice():
    pytest.importorskip("espeakng_loader")
    from corpus import render as rd

    seen = []

    class Recording:
        def synthesize_16k(self, text, voice, *args):
            seen.append(voice)
            return rd.Espeak.instance().synthesize_16k(text, voice, *args)

    script = generate_script("translate-es-en", 3)
    rd.render_call(script, 3, tts=Recording())
    n_agent = len(says(script, "agent"))
    assert seen.count(rd.AGENT_VOICES["en"]) == n_agent
    assert rd.AGENT_VOICES["es"] not in seen
    assert len(seen) - n_agent == len(says(script, "caller"))


def test_labels_of_an_es_en_call_hold_the_agents_english_text(rendered):
    from corpus.labels import micro_turn_labels
    from model.config import ModelConfig

    labels = micro_turn_labels(rendered, ModelConfig.from_name("tiny"))
    assert labels.agent == "translate-es-en"
    text = bytes(tok for row in labels.text for tok in row if tok < 256).decode()
    spoken = " ".join(
        s.text for s in sorted(rendered.says, key=lambda s: s.start_sample) if s.speaker == "agent"
    )
    assert text.split() == spoken.split()
    assert "Wednesday" in text and set(words(text)) <= EN


def test_es_en_calls_have_their_own_cache_keys(tmp_path):
    pytest.importorskip("espeakng_loader")
    from corpus.render import CorpusCache

    cache = CorpusCache(tmp_path)
    assert cache.path("translate-es-en", 5) != cache.path("translate-en-es", 5)
    assert cache.path("translate-en-es", 5).relative_to(cache.dir).parts == (
        "translate-en-es",
        "train",
        "5.npz",
    )
    assert cache.dir.name.startswith(f"render1-script{sc.SCRIPT_VERSION}-espeak")
