"""`parley bench hearing`: what hearing costs, for sizing gateways (VAD) and worker boxes (Whisper).

Prints one JSON object:
- `matmul_gflops`: a 1024x1024 float32 numpy matmul, to compare machines;
- `vad_ms_per_frame`: agent.hearing.Segmenter's CPU per 200 ms frame (p50 / p90 over a call of
  speech and silence), and its share of one core per call;
- `transcribe`: workers.hearing.Transcriber's wall time per clip length (p50 / p90, 2 threads, one
  clip at a time) and CPU seconds per caller-second;
- `concurrent`: `--calls` worker processes (1 thread each) transcribing clips at once, as a
  worker box with that many calls' segments in flight would: wall time per clip (p50 / p90) and
  CPU seconds per caller-second.

Speech: espeak-ng sentences (the `data` extra) when installed, else voice-like harmonics.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from agent.hearing import Segmenter
from evaluation.metrics import matmul_gflops
from model.protocol import FRAME_SAMPLES, SAMPLE_RATE
from workers.hearing import Transcriber

SENTENCES = (
    "Yes.",
    "I'm calling about my order.",
    "I'm calling about my order, the number is A 4 8 2 1 3.",
    "Hi, I bought a blue jacket last week and it doesn't fit, so I'd like to return it and get a refund.",
)
LENGTHS_S = (1.0, 2.0, 4.0, 8.0, 12.0)


def _speech() -> np.ndarray:
    """About 20 s of speech: espeak-ng sentences with pauses, or gated harmonics without it."""
    try:
        from corpus.tts import Espeak

        tts = Espeak.instance()
        parts = []
        for s in SENTENCES * 2:
            parts += [tts.synthesize_16k(s, "en-us").audio, np.zeros(SAMPLE_RATE // 2, np.float32)]
        return np.concatenate(parts).astype(np.float32)
    except ImportError:
        t = np.arange(20 * SAMPLE_RATE) / SAMPLE_RATE
        voiced = sum(np.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 8))
        return (0.2 * voiced * (np.sin(2 * math.pi * 1.5 * t) > 0)).astype(np.float32)


def _clip(speech: np.ndarray, seconds: float) -> bytes:
    n = round(seconds * SAMPLE_RATE)
    x = np.resize(speech, n)  # repeats the speech when it is shorter
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _pct(values, qs=(50, 90)) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in qs}


def bench_vad(speech: np.ndarray) -> dict:
    seg = Segmenter()
    x = np.concatenate([speech, np.zeros(-len(speech) % FRAME_SAMPLES, np.float32)])
    costs = []
    for k in range(0, len(x), FRAME_SAMPLES):
        c = time.process_time()
        seg.push(x[k : k + FRAME_SAMPLES])
        costs.append(time.process_time() - c)
    ms = np.array(costs) * 1000
    return {**_pct(ms), "core_share_per_call": round(float(ms.mean()) / 200, 4)}


def bench_transcribe(speech: np.ndarray, repeats: int) -> dict:
    tr = Transcriber(threads=2)
    tr.load()
    tr.transcribe(_clip(speech, 2.0))  # warm-up
    out, cpu, audio = {}, 0.0, 0.0
    for seconds in LENGTHS_S:
        clip = _clip(speech, seconds)
        walls = []
        for _ in range(repeats):
            c = time.process_time()
            walls.append(tr.transcribe(clip).work_s)
            cpu += time.process_time() - c
            audio += seconds
        out[f"{seconds:g}s"] = _pct(walls)
    return {"wall_s": out, "cpu_per_caller_s": round(cpu / audio, 4), "threads": 2}


def _worker_init() -> None:
    Transcriber(threads=1).load()


def _worker_clip(clip: bytes) -> tuple[float, float, float]:
    c = time.process_time()
    heard = Transcriber(threads=1).transcribe(clip)
    return heard.work_s, time.process_time() - c, heard.audio_s


def bench_concurrent(speech: np.ndarray, calls: int, per_call: int) -> dict:
    clips = [_clip(speech, LENGTHS_S[i % 4]) for i in range(calls * per_call)]
    with ProcessPoolExecutor(calls, initializer=_worker_init) as pool:
        list(pool.map(_worker_clip, clips[:calls]))  # every process loaded and warm
        t = time.perf_counter()
        results = list(pool.map(_worker_clip, clips))
        wall = time.perf_counter() - t
    audio = sum(a for _, _, a in results)
    return {
        "calls": calls,
        "clip_wall_s": _pct([w for w, _, _ in results]),
        "cpu_per_caller_s": round(sum(c for _, c, _ in results) / audio, 4),
        "caller_s_per_wall_s": round(audio / wall, 2),
    }


def run(calls: tuple[int, ...] = (1, 8), repeats: int = 5, per_call: int = 4) -> dict:
    speech = _speech()
    return {
        "cores": os.cpu_count(),
        "matmul_gflops": round(matmul_gflops(), 1),
        "vad_ms_per_frame": bench_vad(speech),
        "transcribe": bench_transcribe(speech, repeats),
        "concurrent": [bench_concurrent(speech, n, per_call) for n in calls],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="parley bench hearing", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, nargs="+", default=[1, 8], help="concurrent transcribing processes")
    p.add_argument("--repeats", type=int, default=5, help="clips per length in the one-at-a-time run")
    p.add_argument("--per-call", type=int, default=4, help="clips per process in the concurrent runs")
    args = p.parse_args(argv)
    print(json.dumps(run(tuple(args.calls), args.repeats, args.per_call), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
