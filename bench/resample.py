"""`parley bench resample`: what the gateway's resampling does to latency and pacing, side by side.

Two streamed resamplers on the same audio in one run: soxr's own `soxr.ResampleStream` (HQ, what
the gateway used before) and `telephony.resample.ResampleStream` (soxr HQ one-shot over a sliding
window). For each, on the gateway's two directions of an 8 kHz Twilio call:

- caller side (8 -> 16 kHz, 20 ms chunks in): when each 200 ms model frame is complete, as the
  time from the chunk that ends it in the input to the chunk whose push hands its last sample
  over (0 ms = at once); p50 / max over the frames;
- agent side (16 -> 8 kHz, one 200 ms frame a tick in): how many samples each push returns and
  how far the output lags the input (min / max, ms), and the gaps a 20 ms pacer would leave on an
  ideal clock (frames arriving exactly every 200 ms; a run starts at a push, a gap is the time the
  queue was dry before the next push);
- CPU microseconds per second of audio, each direction.

Pure computation, no sockets: prints one JSON object.
"""

from __future__ import annotations

import math
import time

import numpy as np
import soxr

from telephony.resample import ResampleStream

FRAME_MS = 200
CHUNK_MS = 20


def _signal(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    x = 9000 * np.sin(2 * math.pi * 440 * t) + 2000 * rng.standard_normal(t.size)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class _SoxrStream:
    """soxr's own stream with the gateway's old float32-and-round-once wrapping."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._rs = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def push(self, pcm: np.ndarray) -> np.ndarray:
        y = self._rs.resample_chunk(pcm.astype(np.float32) / 32768)
        return np.clip(np.rint(y * 32768), -32768, 32767).astype(np.int16)


def _caller_side(make, seconds: float) -> dict:
    rate_in, rate_out = 8000, 16000
    x = _signal(rate_in, seconds)
    chunk, frame_out = rate_in * CHUNK_MS // 1000, rate_out * FRAME_MS // 1000
    rs = make(rate_in, rate_out)
    have, waits, cpu = 0, [], 0.0
    n_chunks = x.size // chunk
    for i in range(n_chunks):
        t = time.perf_counter()
        have += rs.push(x[i * chunk : (i + 1) * chunk]).size
        cpu += time.perf_counter() - t
        end_ms = (i + 1) * CHUNK_MS
        # frames that became complete with this push: their last input chunk ended at k * 200 ms
        while (len(waits) + 1) * frame_out <= have:
            waits.append(end_ms - (len(waits) + 1) * FRAME_MS)
    return {
        "frame_wait_ms_p50": float(np.percentile(waits, 50)),
        "frame_wait_ms_max": float(max(waits)),
        "cpu_us_per_s": round(cpu / seconds * 1e6, 1),
    }


def _agent_side(make, seconds: float) -> dict:
    rate_in, rate_out = 16000, 8000
    x = _signal(rate_in, seconds)
    frame = rate_in * FRAME_MS // 1000
    rs = make(rate_in, rate_out)
    sizes, lags, cpu = [], [], 0.0
    out_total = 0
    for k in range(x.size // frame):
        t = time.perf_counter()
        n = rs.push(x[k * frame : (k + 1) * frame]).size
        cpu += time.perf_counter() - t
        sizes.append(n)
        out_total += n
        lags.append(((k + 1) * FRAME_MS) - out_total * 1000 / rate_out)
    # A pacer on an ideal clock: push k arrives at k * 200 ms and plays after what is queued.
    playing_until, gaps = 0.0, []
    for k, n in enumerate(sizes):
        now = k * FRAME_MS
        if n == 0:
            continue
        if now > playing_until and k > 0:
            gaps.append(now - playing_until)
        playing_until = max(playing_until, now) + n * 1000 / rate_out
    return {
        "push_sizes": sorted(set(sizes)),
        "lag_ms_min": round(min(lags[1:]), 2),
        "lag_ms_max": round(max(lags[1:]), 2),
        "pacer_gaps": len(gaps),
        "pacer_gap_ms_total": round(sum(gaps), 1),
        "cpu_us_per_s": round(cpu / seconds * 1e6, 1),
    }


def run(seconds: float = 20.0) -> dict:
    makers = {
        "soxr_stream": _SoxrStream,
        "windowed": ResampleStream,
        "windowed_frame_at_a_time": lambda a, b: ResampleStream(a, b, min_out=b * FRAME_MS // 1000),
    }
    out: dict = {"seconds": seconds, "caller_side_8k_to_16k": {}, "agent_side_16k_to_8k": {}}
    for name, make in makers.items():
        out["caller_side_8k_to_16k"][name] = _caller_side(make, seconds)
        if name != "windowed_frame_at_a_time":
            out["agent_side_16k_to_8k"][name] = _agent_side(make, seconds)
    return out
