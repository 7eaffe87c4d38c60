"""`parley bench step`: tick latency of the batched model step on synthetic calls.

Steps N live slots for T ticks on synthetic caller audio (speech-band noise bursts and silences)
and reports one JSON object: tick latency p50/p99, the real-time factor against the 200 ms budget,
and peak memory. A benchmark, not a test: it prints numbers and asserts nothing about them.
"""

from __future__ import annotations

import math
import resource
import time

import torch

from model.config import MICRO_TURN_MS, MICRO_TURN_SAMPLES
from model.interaction import InteractionModel, StepInputs
from model.state import StreamState
from model.tokenizer import ByteTokenizer


def synthetic_audio(slots: int, tick: int, gen: torch.Generator) -> torch.Tensor:
    """[S, 3200] float32: each slot alternates ~1.4 s of noisy tone bursts and ~0.6 s of quiet."""
    t = torch.arange(MICRO_TURN_SAMPLES) / 16_000.0
    rows = []
    for s in range(slots):
        talking = (tick + 3 * s) % 10 < 7
        f0 = 120.0 + 15.0 * s
        amp = 0.2 if talking else 0.002
        tone = sum(torch.sin(2 * math.pi * f0 * k * (t + tick * 0.2)) / k for k in range(1, 6))
        rows.append(amp * (0.5 * tone + 0.3 * torch.randn(MICRO_TURN_SAMPLES, generator=gen)))
    return torch.stack(rows).float()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def run(model: InteractionModel, preset: str, slots: int, ticks: int, device: str, warmup: int = 5,
        events_every: int = 25) -> dict:
    dev = torch.device(device)
    model = model.to(dev).eval()
    tok = ByteTokenizer()
    state = StreamState.allocate(model.cfg, slots, dev)
    config = tok.encode_event("config", "agent=support lang=en")[: model.cfg.max_prefix]
    for s in range(slots):
        model.prefill(state, s, config)
    gen = torch.Generator().manual_seed(0)
    audio = [synthetic_audio(slots, i, gen).to(dev) for i in range(min(ticks + warmup, 50))]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    timings = []
    everyone = torch.ones(slots, dtype=torch.bool, device=dev)
    event = tok.encode_event("tool_result", '{"ok":true}')[: model.cfg.max_event_tokens]
    for i in range(warmup + ticks):
        events = {s: event for s in range(slots) if (i + s) % events_every == 0}
        inputs = StepInputs(audio=audio[i % len(audio)], events=events)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        out = model.step(state, inputs, everyone)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            timings.append((time.perf_counter() - t0) * 1000)
        assert torch.isfinite(out.pcm).all()
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total, active = model.parameter_counts()
    return {
        "preset": preset,
        "slots": slots,
        "ticks": ticks,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "params_total": total,
        "params_active": active,
        "tick_ms_p50": round(p50, 3),
        "tick_ms_p99": round(p99, 3),
        "tick_ms_max": round(max(timings), 3),
        "realtime_factor": round(MICRO_TURN_MS / p99, 2),
        "slot_ms_p50": round(p50 / slots, 3),
        "state_bytes": state.nbytes(),
        "peak_mem_bytes": peak,
        "peak_mem_kind": "cuda_max_allocated" if dev.type == "cuda" else "process_max_rss",
    }
