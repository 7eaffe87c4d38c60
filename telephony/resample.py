"""Streaming sample-rate conversion for one direction of one call.

`ResampleStream` turns a continuous stream of int16 mono PCM at one rate into int16 at another,
chunk by chunk, so that the chunked output equals (within 1 LSB) what a one-shot conversion of the
whole signal would give. It uses soxr at quality HQ (never QQ, which aliases), in float32, rounded
once. Rates are fixed at construction: audio at another rate needs another stream. It knows
nothing of codecs, packets, frames or the model.

How: soxr's own stream resampler is bursty (~104 ms blocks; see the README and `parley bench
resample`), so every push runs soxr one-shot over a sliding window: the input from `CONTEXT_S`
before the first output sample still owed, keeping only the output at least `LOOKAHEAD_S` (10 ms)
before the end of the input. The filter reaches ~10 ms each way, so away from a window's edges
this equals a one-shot resample of the whole stream; output arrives in exact proportion to the
input, a fixed 10 ms behind it. Output is produced on the grid where both rates meet in whole
samples (1 input sample per 2 at 16 -> 8 kHz, 441 -> 160 at 44.1 -> 16 kHz), so any chunking gives
the same samples. `min_out` makes it wait until that many output samples are owed (the caller's
side asks for whole model frames): fewer, larger windows cost less.

Gaps: never `clear()` a stream because the input had a gap (it clicks); feed silence or nothing.
`clear()` is for reusing the object for a new call; `flush()` is for the end of a call.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import soxr

logger = logging.getLogger(__name__)

QUALITY = "HQ"
CONTEXT_S = 0.012  # input kept before the next output sample (the filter reaches ~10 ms back)
LOOKAHEAD_S = 0.010  # input needed after an output sample before it is final (and ~10 ms ahead)
_TO_FLOAT = np.float32(1.0 / 32768.0)


class ResampleStream:
    """int16 mono PCM at `in_rate` -> int16 mono PCM at `out_rate`, streamed.

    `push(pcm)` returns the samples available now (possibly none); `flush()` returns the tail at the
    end of the stream; `clear()` forgets everything, ready for a new stream at the same rates.
    When `in_rate == out_rate` it is the identity and soxr is not involved. `min_out` (output
    samples) holds output back until at least that much is ready; `flush()` always gives the rest.
    """

    def __init__(self, in_rate: int, out_rate: int, *, min_out: int = 1) -> None:
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
                raise ValueError(f"ResampleStream: {name}={rate!r} must be a positive integer (Hz)")
        if not isinstance(min_out, int) or min_out < 1:
            raise ValueError(f"ResampleStream: min_out={min_out!r} must be a whole number of samples >= 1")
        self._in_rate = int(in_rate)
        self._out_rate = int(out_rate)
        self._identity = self._in_rate == self._out_rate
        g = math.gcd(self._in_rate, self._out_rate)
        self._q_in, self._q_out = self._in_rate // g, self._out_rate // g  # the grid both rates share
        self._context = math.ceil(CONTEXT_S * self._in_rate)
        self._lookahead = math.ceil(LOOKAHEAD_S * self._in_rate)
        self._min_out = min_out
        self.clear()

    def __repr__(self) -> str:
        return f"ResampleStream({self._in_rate} -> {self._out_rate})"

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    @property
    def identity(self) -> bool:
        """True when the rates are equal and samples pass through unchanged."""
        return self._identity

    @property
    def clipped(self) -> int:
        """Output samples clipped to the int16 range since construction or the last `clear()`."""
        return self._clipped

    @property
    def delay(self) -> float:
        """Output samples owed to the input pushed so far but not returned yet (0 for the identity)."""
        if self._identity or self._flushed:
            return 0.0
        return float(max(0, self._in_pos * self._out_rate // self._in_rate - self._out_pos))

    def push(self, pcm: np.ndarray, rate: int | None = None) -> np.ndarray:
        """Feed int16 samples at `in_rate`; return the int16 samples at `out_rate` ready now.

        `rate`, when given, is the rate the caller believes `pcm` is at; a different rate than the
        one fixed at construction is refused (a mid-stream rate change needs a new stream).
        The returned array is always new (never the input itself) and may be empty.
        """
        if rate is not None and rate != self._in_rate:
            raise ValueError(
                f"{self!r}: pushed audio at {rate} Hz but this stream's input rate is fixed at "
                f"{self._in_rate} Hz; a rate change mid-stream needs a new ResampleStream"
            )
        pcm = _check_mono_int16(pcm, f"{self!r}.push")
        self._check_open()
        if self._identity:
            return pcm.copy()
        return self._feed(pcm.astype(np.float32) * _TO_FLOAT)

    def push_float(self, samples: np.ndarray) -> np.ndarray:
        """`push` for samples already scaled to float32 in [-1, 1) (int16 / 32768, as
        `g711.decode_float` gives them): the same output as `push` of the int16 samples, without
        the conversion. Returns int16 samples at `out_rate`, possibly none."""
        if not isinstance(samples, np.ndarray) or samples.dtype != np.float32 or samples.ndim != 1:
            got = type(samples).__name__
            if isinstance(samples, np.ndarray):
                got = f"{samples.dtype}{samples.shape}"
            raise ValueError(f"{self!r}.push_float: expected 1-D float32 samples, got {got}")
        self._check_open()
        if self._identity:
            return self._to_int16(samples)
        return self._feed(samples)

    def discard_held(self) -> int:
        """Drop from the coming output what is owed to the input pushed so far, keeping the input
        as filter context (starting cold clicks). For a barge-in: what the resampler still holds is
        the cut utterance, never to be played. Returns how many samples will be dropped."""
        self._discard = int(round(self.delay))
        return self._discard

    def flush(self) -> np.ndarray:
        """End of stream: return everything still owed. Later pushes need `clear()` first."""
        if self._flushed or self._identity:
            self._flushed = True
            return np.zeros(0, dtype=np.int16)
        self._flushed = True
        return self._emit(final=True)

    def clear(self) -> None:
        """Forget all state, ready for a new stream (a new call). Never use it to paper over a gap."""
        self._buf = np.zeros(0, dtype=np.float32)  # input from absolute sample `_buf_start` on
        self._buf_start = 0
        self._in_pos = 0  # input samples pushed
        self._out_pos = 0  # output samples accounted for (returned or discarded)
        self._flushed = False
        self._clipped = 0
        self._discard = 0

    # --- the sliding window ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._flushed:
            raise RuntimeError(f"{self!r}: push after flush(); call clear() to start a new stream")

    def _feed(self, samples: np.ndarray) -> np.ndarray:
        if samples.size:
            self._buf = np.concatenate([self._buf, samples])
            self._in_pos += samples.size
        return self._emit(final=False)

    def _emit(self, final: bool) -> np.ndarray:
        """Resample the window and return the output owed up to the lookahead (or the end)."""
        w0 = self._window_start(self._out_pos)
        w0_out = w0 // self._q_in * self._q_out
        if not final:
            target = (self._in_pos - self._lookahead) // self._q_in * self._q_out
            if target - self._out_pos < self._min_out:
                return np.zeros(0, dtype=np.int16)
        window = self._buf[w0 - self._buf_start :]
        y = soxr.resample(window, self._in_rate, self._out_rate, quality=QUALITY) if window.size else window
        if final:
            target = w0_out + y.size
        out = y[self._out_pos - w0_out : target - w0_out]
        self._out_pos = target
        keep = self._window_start(target)  # only the input the next window reaches back to
        if keep > self._buf_start:
            self._buf = self._buf[keep - self._buf_start :]
            self._buf_start = keep
        return self._to_int16(out)

    def _window_start(self, out_pos: int) -> int:
        """Where the window for output from `out_pos` on starts in the input: `CONTEXT_S` before
        that output's input position, on the grid both rates share."""
        first_in = out_pos // self._q_out * self._q_in
        return max(0, (first_in - self._context) // self._q_in * self._q_in)

    def _to_int16(self, out: np.ndarray) -> np.ndarray:
        if not out.size:
            return np.zeros(0, dtype=np.int16)
        scaled = out * np.float32(32768.0)
        np.rint(scaled, out=scaled)
        if scaled.max() > 32767 or scaled.min() < -32768:  # rare: count and clip only then
            self._clipped += int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
            np.clip(scaled, -32768, 32767, out=scaled)
        pcm = scaled.astype(np.int16)
        if self._discard:
            cut = min(self._discard, pcm.size)
            pcm, self._discard = pcm[cut:], self._discard - cut
        return pcm


def _check_mono_int16(pcm: object, what: str) -> np.ndarray:
    if not isinstance(pcm, np.ndarray):
        raise ValueError(f"{what}: expected a numpy int16 array, got {type(pcm).__name__}")
    if pcm.dtype != np.int16:
        raise ValueError(f"{what}: expected int16 samples, got dtype {pcm.dtype}")
    if pcm.ndim != 1:
        raise ValueError(f"{what}: expected mono (1-D) samples, got shape {pcm.shape}")
    return pcm
