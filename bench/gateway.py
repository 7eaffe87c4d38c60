"""`parley bench gateway`: CPU cost of the websocket media gateway alone.

Runs the real gateway as a child process against an echo stand-in for the model server (also a
child process), places N concurrent Twilio Media Streams calls from this process with
telephony.ws.client.TwilioCallClient (mu-law 8 kHz, 20 ms media messages in real time, all calls
driven from one 20 ms clock, marks echoed as a phone would), and reads the gateway process's CPU
time from /proc. Prints one JSON object: CPU microseconds per call-second, calls per
core, and how much media came back.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np

from bench.procs import child, cpu_seconds, free_port, gateway_child, get_json
from telephony.ws.client import CHUNK_MS, TwilioCallClient


def _tone() -> list[np.ndarray]:
    """One second of a 300 Hz tone at 8 kHz, as fifty 20 ms chunks."""
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * math.pi * 300 * t)).astype(np.int16)
    return [tone[i * 160 : (i + 1) * 160] for i in range(50)]


async def _drive(url: str, calls: int, seconds: float, agent: str) -> dict:
    chunks_of_tone = _tone()
    callers = [await TwilioCallClient(url, agent).open() for _ in range(calls)]
    chunks = int(seconds * 1000 / CHUNK_MS)
    t0 = time.monotonic()
    lag = []
    for i in range(chunks):
        delay = t0 + i * CHUNK_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing of the callers' audio, not synchronisation
        else:
            lag.append(-delay)
        await asyncio.gather(*(c.send_audio(chunks_of_tone[i % 50]) for c in callers))
    await asyncio.gather(*(c.stop() for c in callers))
    return {
        "chunks_sent": chunks * calls,
        "media_received": sum(c.counters["agent_packets"] for c in callers),
        "client_lag_ms_max": round(max(lag, default=0.0) * 1000, 2),
    }


def run(calls: int, seconds: float, agent: str = "support") -> dict:
    model_port, gw_port = free_port(), free_port()
    with child(
        ["-m", "bench.echo_model", "--port", str(model_port)],
        f"http://127.0.0.1:{model_port}/healthz",
        "echo-model",
    ):
        with gateway_child(gw_port, model_port) as gw:
            before = cpu_seconds(gw.pid)
            t0 = time.monotonic()
            traffic = asyncio.run(_drive(f"ws://127.0.0.1:{gw_port}/twilio", calls, seconds, agent))
            wall = time.monotonic() - t0
            cpu = cpu_seconds(gw.pid) - before
            health = get_json(f"http://127.0.0.1:{gw_port}/healthz", timeout=15)
    us_per_call_second = cpu * 1e6 / (calls * seconds)
    return {
        "calls": calls,
        "seconds": seconds,
        "protocol": "twilio",
        "wall_s": round(wall, 2),
        "gateway_cpu_s": round(cpu, 3),
        "gateway_cpu_share_of_core": round(cpu / wall, 3),
        "cpu_us_per_call_second": round(us_per_call_second, 1),
        "calls_per_core": int(1e6 / us_per_call_second) if us_per_call_second else None,
        **traffic,
        "gateway_counters": {
            k: health["counters"].get(k)
            for k in ("calls_total", "caller_frames", "packets_out", "packets_dropped")
        },
    }
