"""`parley bench step`: tick latency of the batched model step on synthetic calls.

Runs N calls for T ticks through the offline engine (`model.engine`, the server's scheduler and
runner) on synthetic caller audio (speech-band noise bursts and silences, sent as PCM16 frames),
every call prefixed with the agent's rendered configuration, and reports one JSON object: the
latency of the runner's batched step per tick (p50/p99), the real-time factor against the 200 ms
budget, and peak memory. Every call gets a tool result every `events_every` ticks; a checkpoint
with a reply prompter also gets a reply at its first tick and a new one every `events_every` ticks,
so a reply is in flight throughout (random weights seldom say it). A benchmark, not a test: it
prints numbers and asserts nothing about them.
"""

from __future__ import annotations

import math
import resource

import torch

from agent.config import get_agent, render_prefix
from model.engine import Call, Engine
from model.interaction import InteractionModel
from model.protocol import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, FRAME_SAMPLES, MICRO_TURN_MS, SAMPLE_RATE
from model.scheduler import Sampling
from telephony.g711 import float_to_pcm16

REPLY = (
    "Your order B40808 shipped on Monday and should arrive by Thursday; the tracking number is in "
    "the email we sent you. Is there anything else I can help you with today?"
)


def synthetic_audio(slots: int, tick: int, gen: torch.Generator) -> torch.Tensor:
    """[S, 3200] float32: each slot alternates ~1.4 s of noisy tone bursts and ~0.6 s of quiet."""
    t = torch.arange(FRAME_SAMPLES) / SAMPLE_RATE
    rows = []
    for s in range(slots):
        talking = (tick + 3 * s) % 10 < 7
        f0 = 120.0 + 15.0 * s
        amp = 0.2 if talking else 0.002
        tone = sum(torch.sin(2 * math.pi * f0 * k * (t + tick * 0.2)) / k for k in range(1, 6))
        rows.append(amp * (0.5 * tone + 0.3 * torch.randn(FRAME_SAMPLES, generator=gen)))
    return torch.stack(rows).float()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def run(
    model: InteractionModel,
    preset: str,
    slots: int,
    ticks: int,
    device: str,
    warmup: int = 5,
    events_every: int = 25,
    agent: str = "support",
) -> dict:
    dev = torch.device(device)
    engine = Engine(model, slots, dev)
    config = render_prefix(get_agent(agent))
    gen = torch.Generator().manual_seed(0)
    pcm = [float_to_pcm16(synthetic_audio(slots, i, gen).numpy()) for i in range(min(ticks + warmup, 50))]
    frames = [[row.tobytes() for row in tick] for tick in pcm]  # [tick % 50][slot]
    cfg = model.cfg
    result = engine.encode_event("tool_result", '{"ok":true}')
    reply = engine.encode_event("reply", REPLY) if cfg.prompter_bytes else None

    def events(i: int, s: int) -> list:
        if cfg.event_repr == "bytes":
            return result[: cfg.max_event_tokens] if (i + s) % events_every == 0 else []
        due = [result] if (i + s) % events_every == 0 else []
        if reply is not None and (i == 0 or (i + s) % events_every == events_every // 2):
            due.append(reply)
        return due

    n = warmup + ticks
    calls = [
        Call(
            config,
            [frames[i % len(frames)][s] for i in range(n)],
            {i: events(i, s) for i in range(n) if events(i, s)},
            Sampling(DEFAULT_TEMPERATURE, DEFAULT_TOP_P, seed=s),
        )
        for s in range(slots)
    ]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    in_flight = 0  # slot-ticks stepped with reply bytes still unsaid
    for _ in engine.stream(calls):  # outputs are dropped as they come: memory is the model's alone
        in_flight += int((engine.state.reply_pos < engine.state.reply_len).sum()) if reply else 0
    timings = engine.step_ms[warmup:]
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total, active = model.parameter_counts()
    return {
        "preset": preset,
        "event_repr": cfg.event_repr,
        "prompter_bytes": cfg.prompter_bytes,
        "reply_in_flight_share": round(in_flight / (n * slots), 3),
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
        "state_bytes": engine.state.nbytes(),
        "peak_mem_bytes": peak,
        "peak_mem_kind": "cuda_max_allocated" if dev.type == "cuda" else "process_max_rss",
    }
