"""espeak-ng speech for synthetic calls: `Espeak` turns text into float32 audio with word timings.

`Espeak.instance()` is the process-wide synthesiser. libespeak-ng (from the `espeakng-loader`
package, GPL-3.0: data generation and evaluation only, never the serving path) runs in a helper
process, `corpus.espeak_server`, that forks a fresh child per utterance, because the library
carries waveform state across utterances and would otherwise never give the same samples twice;
see that module's docstring. Output is therefore a pure function of (text, voice, rate, pitch,
pitch range, volume) for a given espeakng-loader version, and a crash inside the library is an
`EspeakError`, not a dead process. One lock serialises requests; call it from any thread. A
process forked from one that used it (DataLoader or Celery workers) starts its own helper.

Voices: the 141 espeak-ng voices, named by identifier ("gmw/en-US"), its last part ("en-US"),
a language tag ("en-us", "es") or display name ("English (America)"), case-insensitive,
optionally with one of the library's variants ("en-us+f3"). Anything else is a ValueError.

Results: `SynthResult` holds audio at espeak's native 22.05 kHz (`synthesize`) or resampled with
soxr (`synthesize_16k`), with word and phoneme (IPA) onsets in samples of that rate and in ms.

What it does not know: telephony codecs, call scripts, labels built from the word timings.

CLI: python -m corpus.tts --text "..." --voice en-us --out caller.wav [--rate 16000]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soxr

from corpus import espeak_server
from corpus.espeak_server import encode_message
from telephony.wav import write_float

SAMPLE_RATE_16K = 16000
RATE_WPM_RANGE = (80, 450)
PITCH_RANGE = (0, 100)
PITCH_SPREAD_RANGE = (0, 100)
VOLUME_RANGE = (0, 200)
_GENDERS = {0: "unknown", 1: "male", 2: "female"}
_SERVER_SCRIPT = Path(espeak_server.__file__).resolve()
_STARTUP_TIMEOUT_S = 30.0
_TIMEOUT_MARGIN_S = 10.0  # the server enforces timeout_s; the client waits this much longer


class EspeakError(RuntimeError):
    """The synthesis helper failed: it could not start, crashed, or timed out."""


@dataclass(frozen=True)
class VoiceInfo:
    name: str  # display name, e.g. "English (America)"
    identifier: str  # e.g. "gmw/en-US"; accepted by `synthesize`
    languages: tuple[str, ...]  # lower-case tags, most preferred first, e.g. ("en-us", "en")
    gender: str  # "male", "female" or "unknown"


class WordEvent(NamedTuple):
    """Onset of one word espeak spoke; text[text_offset:text_offset + length] is its source."""

    start_ms: int  # from the start of the audio
    text_offset: int  # 0-based, in code points of the text passed to synthesize
    length: int  # in code points
    start_sample: int  # at the result's sample_rate


class PhonemeEvent(NamedTuple):
    start_ms: int
    phoneme: str  # IPA, with stress marks (e.g. "ˈoʊ"); pauses are not reported
    start_sample: int


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare fields yourself
class SynthResult:
    audio: np.ndarray  # [S] float32 mono in [-1, 1)
    sample_rate: int
    words: tuple[WordEvent, ...]
    phonemes: tuple[PhonemeEvent, ...]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    def resampled(self, sample_rate: int) -> SynthResult:
        """The same utterance at another rate (soxr HQ); event samples are rescaled and rounded."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if sample_rate == self.sample_rate:
            return self
        ratio = sample_rate / self.sample_rate
        audio = soxr.resample(self.audio, self.sample_rate, sample_rate, quality="HQ")
        return SynthResult(
            audio=np.ascontiguousarray(audio, dtype=np.float32),
            sample_rate=sample_rate,
            words=tuple(w._replace(start_sample=round(w.start_sample * ratio)) for w in self.words),
            phonemes=tuple(p._replace(start_sample=round(p.start_sample * ratio)) for p in self.phonemes),
        )


def _check_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must be in [{bounds[0]}, {bounds[1]}], got {value}")
    return int(value)


class _Server:
    """One running espeak_server process and the pipes to it (used under Espeak's lock)."""

    def __init__(self, library_path: str, data_path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(_SERVER_SCRIPT), library_path, data_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.owner_pid = os.getpid()
        hello, _ = self.receive(_STARTUP_TIMEOUT_S)
        if not hello["ok"]:
            self.close()
            raise EspeakError(hello["error"])
        self.hello = hello

    def alive(self) -> bool:
        return self.owner_pid == os.getpid() and self.proc.poll() is None

    def request(self, header: dict, timeout_s: float) -> tuple[dict, bytes]:
        try:
            self.proc.stdin.write(encode_message(header))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise EspeakError(f"espeak helper is gone: {exc}") from exc
        return self.receive(timeout_s)

    def receive(self, timeout_s: float) -> tuple[dict, bytes]:
        """Read one frame from the helper, raw from the fd, with a deadline."""
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        head = self._read_exact(fd, 4, deadline)
        n = int.from_bytes(head, "big")
        if n > espeak_server.MAX_HEADER_BYTES:
            self.close()
            raise EspeakError(f"espeak helper sent a {n}-byte header")
        body = self._read_exact(fd, n, deadline)
        header = json.loads(body)
        return header, self._read_exact(fd, header["payload_bytes"], deadline)

    def _read_exact(self, fd: int, n: int, deadline: float) -> bytes:
        parts, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.close()
                raise EspeakError("espeak helper did not answer in time")
            chunk = os.read(fd, n - got)
            if not chunk:
                self.close()
                raise EspeakError(f"espeak helper exited (status {self.proc.poll()})")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self.owner_pid != os.getpid():
            return  # a forked child's copy: the helper belongs to the parent
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the helper exits at end of input
                self.proc.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


_live: weakref.WeakSet[Espeak] = weakref.WeakSet()


class Espeak:
    """Process-wide espeak-ng synthesiser; see the module docstring."""

    _instance: Espeak | None = None
    _instance_lock = threading.Lock()

    def __init__(
        self, library_path: str | None = None, data_path: str | None = None, timeout_s: float = 60.0
    ) -> None:
        """Start a helper on libespeak-ng at `library_path` with data at `data_path` (default:
        the ones shipped in espeakng-loader). `timeout_s` bounds one synthesis."""
        if library_path is None or data_path is None:
            import espeakng_loader  # GPL-3.0 data-generation dependency, imported only here

            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self._library_path, self._data_path = library_path, data_path
        self.timeout_s = float(timeout_s)
        self._lock = threading.Lock()
        self._server: _Server | None = _Server(library_path, data_path)
        hello = self._server.hello
        self.version: str = hello["version"]
        self.sample_rate: int = hello["sample_rate"]
        self._voices = tuple(
            VoiceInfo(
                name=v["name"],
                identifier=v["identifier"],
                languages=tuple(tag.lower() for _, tag in sorted(v["languages"], key=lambda p: p[0])),
                gender=_GENDERS.get(v["gender"], "unknown"),
            )
            for v in hello["voices"]
        )
        self._variants = {name.lower(): name for name in hello["variants"]}
        self._by_key = self._voice_keys(hello["voices"])
        _live.add(self)

    @classmethod
    def instance(cls) -> Espeak:
        """The shared synthesiser of this process, started on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    # ---- voices -----------------------------------------------------------------------------

    @staticmethod
    def _voice_keys(voices: list[dict]) -> dict[str, str]:
        """Lower-case name -> identifier, earlier rules winning: identifier, its last part,
        language tag (the voice listing it with the smallest priority number, as espeak picks),
        display name."""
        keys: dict[str, str] = {}
        for v in voices:
            keys.setdefault(v["identifier"].lower(), v["identifier"])
        for v in voices:
            keys.setdefault(v["identifier"].rpartition("/")[2].lower(), v["identifier"])
        by_priority = sorted(
            (
                (priority, i, tag.lower(), v["identifier"])
                for i, v in enumerate(voices)
                for priority, tag in v["languages"]
            ),
        )
        for _, _, tag, identifier in by_priority:
            keys.setdefault(tag, identifier)
        for v in voices:
            keys.setdefault(v["name"].lower(), v["identifier"])
        return keys

    def voices(self, language_prefix: str | None = None) -> list[VoiceInfo]:
        """All voices, or those with a language tag equal to `language_prefix` or starting with
        it at a subtag boundary ("en" -> en, en-us, en-gb-scotland, ...; not "eo")."""
        if language_prefix is None:
            return list(self._voices)
        prefix = language_prefix.lower()
        return [
            v for v in self._voices if any(t == prefix or t.startswith(prefix + "-") for t in v.languages)
        ]

    def resolve_voice(self, voice: str) -> str:
        """The exact espeak name for `voice` ("en-us+f3" -> "gmw/en-US+f3"); ValueError if unknown."""
        if not isinstance(voice, str):
            raise ValueError(f"voice must be a string, got {voice!r}")
        base, plus, variant = voice.strip().partition("+")
        identifier = self._by_key.get(base.strip().lower())
        if identifier is None:
            raise ValueError(f"unknown espeak-ng voice {voice!r}; see Espeak.voices()")
        if not plus:
            return identifier
        variant_name = self._variants.get(variant.strip().lower())
        if variant_name is None:
            raise ValueError(
                f"unknown espeak-ng voice variant {variant!r} in {voice!r}; "
                f"known: {', '.join(sorted(self._variants.values()))}"
            )
        return f"{identifier}+{variant_name}"

    # ---- synthesis --------------------------------------------------------------------------

    def synthesize(
        self,
        text: str,
        voice: str = "en-us",
        rate_wpm: int = 170,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
    ) -> SynthResult:
        """Speak `text` at the native rate (22050 Hz). Same arguments, same samples.

        rate_wpm 80-450 words per minute, pitch 0-100 (50 is the voice's own), pitch_range 0-100
        (0 is monotone), volume 0-200 (100 is normal; above ~140 the peaks saturate). ValueError
        for empty text, a NUL character or a lone surrogate, an unknown voice or an out-of-range
        parameter; EspeakError if the helper crashed or timed out (the next call starts a new one).
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty")
        if "\0" in text:
            raise ValueError("text contains a NUL character")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text is not encodable Unicode ({exc.reason})") from None
        request = {
            "text": text,
            "voice": self.resolve_voice(voice),
            "rate": _check_range("rate_wpm", rate_wpm, RATE_WPM_RANGE),
            "pitch": _check_range("pitch", pitch, PITCH_RANGE),
            "range": _check_range("pitch_range", pitch_range, PITCH_SPREAD_RANGE),
            "volume": _check_range("volume", volume, VOLUME_RANGE),
            "timeout_s": self.timeout_s,
        }
        header, payload = self._request(request)
        pcm = np.frombuffer(payload, dtype="<i2")
        return SynthResult(
            audio=pcm.astype(np.float32) / 32768.0,
            sample_rate=self.sample_rate,
            words=tuple(
                WordEvent(start_ms=ms, text_offset=max(position - 1, 0), length=length, start_sample=sample)
                for ms, sample, position, length in header["words"]
            ),
            phonemes=tuple(
                PhonemeEvent(start_ms=ms, phoneme=ipa, start_sample=sample)
                for ms, sample, ipa in header["phonemes"]
            ),
        )

    def synthesize_16k(
        self,
        text: str,
        voice: str = "en-us",
        rate_wpm: int = 170,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
    ) -> SynthResult:
        """`synthesize` resampled to 16 kHz (soxr HQ), event samples rescaled."""
        return self.synthesize(text, voice, rate_wpm, pitch, pitch_range, volume).resampled(SAMPLE_RATE_16K)

    def _request(self, request: dict) -> tuple[dict, bytes]:
        with self._lock:
            if self._server is None or not self._server.alive():
                if self._server is not None:
                    self._server.close()
                self._server = _Server(self._library_path, self._data_path)
            header, payload = self._server.request(request, self.timeout_s + _TIMEOUT_MARGIN_S)
        if not header["ok"]:
            raise EspeakError(header["error"])
        return header, payload

    def close(self) -> None:
        """Stop the helper; a later call starts a new one."""
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None

    def __enter__(self) -> Espeak:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread of the parent may have held it


def _reset_after_fork() -> None:
    Espeak._instance_lock = threading.Lock()
    for tts in list(_live):
        tts._after_fork_in_child()


def _close_all() -> None:
    for tts in list(_live):
        tts.close()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_close_all)


# ---- CLI ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus.tts", description=__doc__.splitlines()[0])
    parser.add_argument("--text", help="what to say")
    parser.add_argument(
        "--voice", default="en-us", help="voice, e.g. en-us, es, en-us+f3 (piper's joe: corpus.piper_voice)"
    )
    parser.add_argument("--out", help="output .wav (mono PCM16)")
    parser.add_argument("--rate", type=int, default=None, help="output sample rate (default 22050)")
    parser.add_argument("--wpm", type=int, default=170, help="speaking rate, words per minute")
    parser.add_argument("--pitch", type=int, default=50)
    parser.add_argument("--pitch-range", type=int, default=50)
    parser.add_argument("--volume", type=int, default=100)
    parser.add_argument("--list-voices", action="store_true", help="print the voices and exit")
    args = parser.parse_args(argv)
    if not args.list_voices and (args.text is None or args.out is None):
        parser.error("--text and --out are required (or --list-voices)")
    tts = Espeak.instance()
    if args.list_voices:
        for v in tts.voices():
            print(f"{v.identifier:28s} {v.gender:8s} {','.join(v.languages):30s} {v.name}")
        return 0
    try:
        result = tts.synthesize(args.text, args.voice, args.wpm, args.pitch, args.pitch_range, args.volume)
        if args.rate is not None:
            result = result.resampled(args.rate)
    except ValueError as exc:
        parser.error(str(exc))
    write_float(args.out, result.audio, result.sample_rate)
    print(
        f"wrote {args.out}: {result.duration_s:.2f} s at {result.sample_rate} Hz, "
        f"{len(result.words)} words, espeak-ng {tts.version}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
