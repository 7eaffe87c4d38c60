"""`parley bench gateway`: CPU cost of the websocket media gateway alone.

Runs the real gateway as a child process against an echo stand-in for the model server (also a
child process), places N concurrent Twilio Media Streams calls from this process (mu-law 8 kHz,
20 ms media messages in real time, all calls driven from one 20 ms clock), and reads the gateway
process's CPU time from /proc. Prints one JSON object: CPU microseconds per call-second, calls per
core, and how much media came back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time

import numpy as np
from websockets.asyncio.client import connect

from bench.procs import child, cpu_seconds, free_port, get_json
from telephony.g711 import ulaw_encode


def _payloads() -> list[str]:
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * math.pi * 300 * t)).astype(np.int16)
    return [base64.b64encode(ulaw_encode(tone[i * 160:(i + 1) * 160]).tobytes()).decode() for i in range(50)]


class _Caller:
    def __init__(self, ws, index: int) -> None:
        self.ws = ws
        self.sid = f"MZbench{index:05d}"
        self.received = 0
        self.chunk = 0

    async def start(self, agent: str) -> None:
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await self.ws.send(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": self.sid,
            "start": {"streamSid": self.sid, "accountSid": "ACbench", "callSid": f"CA{self.sid}",
                      "tracks": ["inbound"], "customParameters": {"agent": agent},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
        }))

    async def send(self, payload: str) -> None:
        self.chunk += 1
        await self.ws.send(json.dumps({
            "event": "media", "sequenceNumber": str(self.chunk + 1), "streamSid": self.sid,
            "media": {"track": "inbound", "chunk": str(self.chunk), "timestamp": str(self.chunk * 20),
                      "payload": payload},
        }))

    async def listen(self) -> None:
        async for message in self.ws:
            if '"media"' in message:
                self.received += 1


async def _drive(url: str, calls: int, seconds: float, agent: str) -> dict:
    payloads = _payloads()
    conns = [await connect(url, max_size=2**20) for _ in range(calls)]
    callers = [_Caller(ws, i) for i, ws in enumerate(conns)]
    for c in callers:
        await c.start(agent)
    listeners = [asyncio.create_task(c.listen()) for c in callers]
    chunks = int(seconds * 50)
    t0 = time.monotonic()
    lag = []
    for i in range(chunks):
        delay = t0 + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag.append(-delay)
        await asyncio.gather(*(c.send(payloads[i % 50]) for c in callers))
    for c in callers:
        await c.ws.send(json.dumps({"event": "stop", "streamSid": c.sid, "stop": {}}))
    await asyncio.wait(listeners, timeout=5)
    for ws in conns:
        await ws.close()
    return {"chunks_sent": chunks * calls, "media_received": sum(c.received for c in callers),
            "client_lag_ms_max": round(max(lag, default=0.0) * 1000, 2)}


def run(calls: int, seconds: float, agent: str = "support") -> dict:
    model_port, gw_port = free_port(), free_port()
    with child(["-m", "bench.echo_model", "--port", str(model_port)], f"http://127.0.0.1:{model_port}/healthz",
               "echo-model"):
        with child(["-m", "parley.cli", "gateway", "--host", "127.0.0.1", "--port", str(gw_port), "--model-url",
                    f"ws://127.0.0.1:{model_port}/session"], f"http://127.0.0.1:{gw_port}/healthz",
                   "gateway") as gw:
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
        "gateway_counters": {k: health["counters"].get(k) for k in ("calls_total", "caller_frames", "packets_out",
                                                                    "packets_dropped")},
    }
