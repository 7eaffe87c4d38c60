"""Cutting a stream of int16 samples into fixed-size frames, for one direction of one call.

`Framer` takes int16 mono PCM in pieces of any length (the resampler hands over whatever it has:
nothing, part of a frame or several) and hands back exact frames of `frame_samples` samples, 3200
by default (200 ms at 16 kHz, the model's micro-turn). It counts samples only: it knows nothing of
sample rates (the resampler upstream fixes the rate for the whole call), codecs, clocks or the
model.
"""

from __future__ import annotations

import logging

import numpy as np

from model.protocol import FRAME_SAMPLES

logger = logging.getLogger(__name__)


class Framer:
    """int16 pieces of any length in, exact frames of `frame_samples` out.

    Every frame returned is a new array that owns its memory (never a view of an input). Samples
    that do not fill a frame yet wait in the framer (`pending` of them) for the next push.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if isinstance(frame_samples, bool) or not isinstance(frame_samples, int) or frame_samples <= 0:
            raise ValueError(f"Framer: frame_samples={frame_samples!r} must be a positive integer")
        self._frame_samples = frame_samples
        self._buf = np.zeros(frame_samples, dtype=np.int16)
        self._fill = 0

    def __repr__(self) -> str:
        return f"Framer(frame_samples={self._frame_samples}, pending={self._fill})"

    @property
    def frame_samples(self) -> int:
        return self._frame_samples

    @property
    def pending(self) -> int:
        """Samples held that do not make a whole frame yet (0 <= pending < frame_samples)."""
        return self._fill

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Add samples; return the frames completed by them, oldest first (often none)."""
        if not isinstance(pcm, np.ndarray):
            raise ValueError(f"Framer.push: expected a numpy int16 array, got {type(pcm).__name__}")
        if pcm.dtype != np.int16:
            raise ValueError(f"Framer.push: expected int16 samples, got dtype {pcm.dtype}")
        if pcm.ndim != 1:
            raise ValueError(f"Framer.push: expected mono (1-D) samples, got shape {pcm.shape}")
        n, size = self._frame_samples, pcm.size
        frames: list[np.ndarray] = []
        start = 0
        if self._fill:
            take = min(n - self._fill, size)
            self._buf[self._fill : self._fill + take] = pcm[:take]
            self._fill += take
            start = take
            if self._fill < n:
                return frames
            frames.append(self._buf)
            self._buf = np.zeros(n, dtype=np.int16)
            self._fill = 0
        whole = (size - start) // n
        if whole:
            for _ in range(whole):
                frames.append(pcm[start : start + n].copy())
                start += n
        rest = size - start
        if rest:
            self._buf[:rest] = pcm[start:]
            self._fill = rest
        return frames

    def flush(self) -> np.ndarray | None:
        """End of stream: the partial frame zero-padded to `frame_samples`, or None when empty."""
        if not self._fill:
            return None
        frame = self._buf
        frame[self._fill :] = 0
        self._buf = np.zeros(self._frame_samples, dtype=np.int16)
        self._fill = 0
        return frame

    def clear(self) -> None:
        """Drop the pending samples (a new call)."""
        self._fill = 0
