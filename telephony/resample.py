"""Streaming sample-rate conversion for one direction of one call.

`ResampleStream` turns a continuous stream of int16 mono PCM at one rate into int16 at another,
chunk by chunk, carrying the filter state across chunks so that the chunked output equals what a
one-shot conversion of the whole signal would give. It wraps `soxr.ResampleStream` at quality HQ
(never QQ, which aliases). Rates are fixed at construction: audio at another rate needs another
stream. It knows nothing of codecs, packets, frames or the model.

Internally it runs soxr in float32 and rounds once on the way out. Measured on the 2-core box
(soxr 1.1, 20 ms chunks): float32 is about 7-10 us a chunk including the int16 conversions and its
chunked output is bit-identical to a one-shot float32 conversion rounded once; soxr's own int16
path is about 3-5.5 us a chunk but its chunked output wanders up to 2 LSB from its one-shot output.
Both costs are noise next to a 20 ms budget, so exactness wins.

Latency: soxr HQ works in internal blocks, so output is bursty. Fed 20 ms chunks at 8 kHz it
returns nothing for about 100 ms and then ~104 ms at once; fed 200 ms chunks at 16 kHz it returns
830, 1660, 1660, ... samples at 8 kHz (not 1600 each), averaging out to the exact rate. Callers
must accept any output length, including zero.

Gaps: never `clear()` a stream because the input had a gap (it clicks); feed silence or nothing.
`clear()` is for reusing the object for a new call; `flush()` is for the end of a call.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import soxr

logger = logging.getLogger(__name__)

QUALITY = "HQ"
_TO_FLOAT = np.float32(1.0 / 32768.0)


class ResampleStream:
    """int16 mono PCM at `in_rate` -> int16 mono PCM at `out_rate`, streamed.

    `push(pcm)` returns the samples available now (possibly none); `flush()` returns the tail at the
    end of the stream; `clear()` forgets everything, ready for a new stream at the same rates.
    When `in_rate == out_rate` it is the identity and soxr is not involved.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
                raise ValueError(f"ResampleStream: {name}={rate!r} must be a positive integer (Hz)")
        self._in_rate = int(in_rate)
        self._out_rate = int(out_rate)
        self._soxr: Optional[soxr.ResampleStream] = None
        if self._in_rate != self._out_rate:
            self._soxr = soxr.ResampleStream(
                self._in_rate, self._out_rate, 1, dtype="float32", quality=QUALITY
            )
        self._flushed = False
        self._clipped = 0
        self._discard = 0  # output samples still to drop (see `discard_held`)

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
        return self._soxr is None

    @property
    def clipped(self) -> int:
        """Output samples clipped to the int16 range since construction or the last `clear()`."""
        return self._clipped

    @property
    def delay(self) -> float:
        """Output samples soxr is holding back right now (0 for the identity)."""
        return 0.0 if self._soxr is None else float(self._soxr.delay())

    def push(self, pcm: np.ndarray, rate: Optional[int] = None) -> np.ndarray:
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
        if self._flushed:
            raise RuntimeError(f"{self!r}: push after flush(); call clear() to start a new stream")
        if self._soxr is None:
            return pcm.copy()
        if pcm.size == 0:
            return np.zeros(0, dtype=np.int16)
        return self._to_int16(self._soxr.resample_chunk(pcm.astype(np.float32) * _TO_FLOAT))

    def push_float(self, samples: np.ndarray) -> np.ndarray:
        """`push` for samples already scaled to float32 in [-1, 1) (int16 / 32768, as
        `g711.decode_float` gives them): the same output as `push` of the int16 samples, without
        the conversion. Returns int16 samples at `out_rate`, possibly none."""
        if not isinstance(samples, np.ndarray) or samples.dtype != np.float32 or samples.ndim != 1:
            got = type(samples).__name__
            if isinstance(samples, np.ndarray):
                got = f"{samples.dtype}{samples.shape}"
            raise ValueError(f"{self!r}.push_float: expected 1-D float32 samples, got {got}")
        if self._flushed:
            raise RuntimeError(f"{self!r}: push after flush(); call clear() to start a new stream")
        if self._soxr is None:
            return self._to_int16(samples)
        if samples.size == 0:
            return np.zeros(0, dtype=np.int16)
        return self._to_int16(self._soxr.resample_chunk(samples))

    def discard_held(self) -> int:
        """Drop from the coming output the samples soxr holds back right now, keeping its filter
        state (clearing it clicks). For a barge-in: what the resampler still holds is the cut
        utterance, never to be played. Returns how many samples will be dropped."""
        self._discard = int(round(self.delay))
        return self._discard

    def flush(self) -> np.ndarray:
        """End of stream: return the samples soxr still holds. Later pushes need `clear()` first."""
        if self._flushed or self._soxr is None:
            self._flushed = True
            return np.zeros(0, dtype=np.int16)
        self._flushed = True
        return self._to_int16(self._soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True))

    def clear(self) -> None:
        """Forget all state, ready for a new stream (a new call). Never use it to paper over a gap."""
        if self._soxr is not None:
            self._soxr.clear()
        self._flushed = False
        self._clipped = 0
        self._discard = 0

    def _to_int16(self, out: np.ndarray) -> np.ndarray:
        if not out.size:  # soxr HQ answers most 20 ms chunks with nothing
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
