"""`parley bench e2e`: tick lateness and end-to-end frame latency through gateway and model server.

Starts the real model server (a preset or checkpoint) and the real gateway as child processes and
places N concurrent native-protocol calls (PCM16 at 16 kHz, so the gateway does no resampling and
frame k of the caller is complete when its 10th 20 ms chunk is sent), their frame boundaries spread
evenly over the 200 ms tick period as independent calls' would be. The gateway tells native
clients `{"type": "turn", "seq": n, "frame": k}` as it hands the agent frame of the micro-turn that
read caller frame k to its pacer, so for every micro-turn

    latency_k = arrival of that turn  -  send time of the last chunk of caller frame k

which covers framing, the wait for the next tick, the batched model step, and both websocket hops.
Tick lateness comes from the model server's counters. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
from websockets.asyncio.client import connect

from bench.procs import child, free_port, gateway_child, get_json


def _chunks(seconds: float, index: int) -> list[bytes]:
    n = int(seconds * 50)
    t = np.arange(n * 320) / 16000
    voiced = sum(np.sin(2 * math.pi * (120 + 10 * index) * k * t) / k for k in range(1, 6))
    gate = (np.sin(2 * math.pi * 0.4 * t + index) > -0.3).astype(float)
    pcm = (5000 * voiced * gate).astype("<i2")
    return [pcm[i * 320 : (i + 1) * 320].tobytes() for i in range(n)]


class _Caller:
    def __init__(self, ws, index: int, seconds: float, lead_in: int = 0) -> None:
        self.ws = ws
        # `lead_in` 20 ms chunks of silence first: callers' 200 ms frames end at different phases
        # of the server's tick, as real calls' do.
        self.chunks = [bytes(640)] * lead_in + _chunks(seconds, index)
        self.sent_at: list[float] = []
        self.turn_at: dict[int, float] = {}

    async def listen(self) -> None:
        async for message in self.ws:
            if isinstance(message, str):
                now = time.monotonic()
                msg = json.loads(message)
                if msg.get("type") == "turn" and msg.get("frame", -1) >= 0:
                    self.turn_at.setdefault(msg["frame"], now)  # keyed by the caller frame it read

    def latencies_ms(self) -> list[float]:
        out = []
        for frame, t in self.turn_at.items():
            last_chunk = 10 * frame + 9
            if last_chunk < len(self.sent_at):
                out.append((t - self.sent_at[last_chunk]) * 1000)
        return out


async def _drive(
    url: str, calls: int, seconds: float, agent: str, health_url: str
) -> tuple[list[_Caller], dict]:
    callers = []
    for i in range(calls):
        ws = await connect(url, max_size=2**20)
        await ws.send(
            json.dumps({"type": "start", "agent": agent, "sample_rate": 16000, "encoding": "pcm16"})
        )
        callers.append(_Caller(ws, i, seconds, lead_in=i * 10 // calls))
    listeners = [asyncio.create_task(c.listen()) for c in callers]
    t0 = time.monotonic()
    for i in range(max(len(c.chunks) for c in callers)):
        delay = t0 + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for c in callers:
            if i < len(c.chunks):
                c.sent_at.append(time.monotonic())
                await c.ws.send(c.chunks[i])
    await asyncio.sleep(0.4)  # the last frames' turns
    health = await asyncio.to_thread(get_json, health_url)  # before the callers fall silent
    for c in callers:
        await c.ws.send(json.dumps({"type": "stop"}))
    await asyncio.wait(listeners, timeout=5)
    for c in callers:
        await c.ws.close()
    return callers, health


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run(
    calls: int,
    seconds: float,
    preset: str | None = None,
    checkpoint=None,
    protocol: str = "native",
    agent: str = "support",
    threads: int = 0,
) -> dict:
    model_port, gw_port = free_port(), free_port()
    source = ["--checkpoint", str(checkpoint)] if checkpoint else (["--preset", preset] if preset else [])
    with child(
        [
            "-m",
            "parley.cli",
            "model-server",
            *source,
            "--port",
            str(model_port),
            "--max-slots",
            str(max(calls, 1)),
            "--threads",
            str(threads),
        ],
        f"http://127.0.0.1:{model_port}/healthz",
        "model-server",
    ) as _:
        with gateway_child(gw_port, model_port):
            before = get_json(f"http://127.0.0.1:{model_port}/healthz")
            callers, after = asyncio.run(
                _drive(
                    f"ws://127.0.0.1:{gw_port}/stream",
                    calls,
                    seconds,
                    agent,
                    f"http://127.0.0.1:{model_port}/healthz",
                )
            )
    latencies = [x for c in callers for x in c.latencies_ms()]
    frames = sum(len(c.sent_at) // 10 for c in callers)
    late = after["late_frames"] - before["late_frames"]
    return {
        "calls": calls,
        "seconds": seconds,
        "model": after["model"],
        "model_threads": threads or "half the cores",
        "protocol": protocol,
        "frames": frames,
        "turns": sum(len(c.turn_at) for c in callers),
        "e2e_ms_p50": _pct(latencies, 50),
        "e2e_ms_p99": _pct(latencies, 99),
        "e2e_ms_max": round(max(latencies), 1) if latencies else None,
        "tick_ms_p50": after["tick_ms_p50"],
        "tick_ms_p99": after["tick_ms_p99"],
        "late_frames": late,
        "late_frame_rate": round(late / frames, 4) if frames else None,
        "dropped_frames": after["dropped_frames"] - before["dropped_frames"],
        "skipped_frames": after["skipped_frames"] - before["skipped_frames"],
    }
