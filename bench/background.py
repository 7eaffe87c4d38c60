"""`parley bench background`: the background model beside N live calls, as `parley serve` runs it.

Starts an embedded Redis (seeded with the sample shop), the tool worker, a hearing worker and a
reasoning worker (`python -m workers`, the queues and process counts `parley serve` gives them, models
loaded ahead), and an echo model-server stand-in in this process. N `CallSession`s with the real
router and background model stream spoken caller lines (espeak-ng voices, support questions about
the shop's real orders) in real time, staggered, with the line kept open afterwards. Measured from
each call's record:

- hearing latency: the end of the caller's speech -> the words back in the gateway, split into the
  VAD's wait for silence (`vad_ms`) and the workers' share (`hear_ms`: queue, Whisper, reply);
- reasoning: each decision's time in the gateway (`ms`) and in the worker (`work_ms`), by kind;
- CPU seconds of the hearing and reasoning workers per second of caller audio.

Prints one JSON object, with a matmul GFLOP/s figure so machines can be compared.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.server import serve

from agent.background import CeleryBackgroundTasks
from agent.config import get_agent
from agent.session import CallSession
from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from bench.echo_model import handler as echo_handler
from bench.procs import cpu_seconds
from bench.tools import _pct, _QuietLeg
from evaluation.metrics import matmul_gflops
from model.protocol import FRAME_SAMPLES, MICRO_TURN_MS
from procs.children import stop_all, wait_healthy
from procs.redis_server import EmbeddedRedis
from workers.process import background_workers, worker_child
from workers.shop import Shop, spoken_id
from workers.store import ShopStore

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m4", "en-029", "en-gb-scotland", "en-us+f5")


def caller_lines(shop: Shop, n: int) -> list[str]:
    orders = shop.orders
    templates = (
        "Hi, I'm calling about my order, the number is {id}. Can you tell me where it is?",
        "Hello, I would like to return order {id}, it arrived damaged.",
        "Hi there, what's the status of order {id}, please?",
        "Good morning. I placed order {id} last week and it has not arrived yet.",
    )
    return [templates[i % len(templates)].format(id=spoken_id(orders[i].order_id)) for i in range(n)]


def frames_of(text: str, voice: str, tail_s: float) -> list[np.ndarray]:
    from corpus.tts import Espeak

    speech = Espeak.instance().synthesize_16k(text, voice=voice).audio
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(int(16000 * tail_s), np.float32)])
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME_SAMPLES, np.int16)])
    return list(pcm.reshape(-1, FRAME_SAMPLES))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (a Celery worker and its pool), Linux /proc."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            total += cpu_seconds(p)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


async def _drive(redis_url: str, calls: int, tail_s: float, seed: int) -> dict:
    shop = Shop.default()
    lines = caller_lines(shop, calls)
    audio = [frames_of(line, VOICES[i % len(VOICES)], tail_s) for i, line in enumerate(lines)]
    router = CeleryToolRouter(ToolRouterSettings(redis_url=redis_url))
    await router.wait_ready(10)
    tasks = CeleryBackgroundTasks(router)
    agent = get_agent("support")
    rng = random.Random(seed)
    async with serve(echo_handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/session"

        async def one(i: int) -> CallSession:
            await asyncio.sleep(rng.uniform(0, 1.0))
            session = CallSession(
                agent, _QuietLeg(f"bg{i}"), model_url=url, tool_router=router, background=tasks
            )
            await session.start()
            run = asyncio.create_task(session.run())
            t0 = time.monotonic()
            for n, frame in enumerate(audio[i]):
                await asyncio.sleep(max(0.0, t0 + n * MICRO_TURN_MS / 1000 - time.monotonic()))  # real time
                await session.caller_frame(frame)
            await session.caller_ended("caller hung up")
            await asyncio.wait_for(run, 10)
            return session

        sessions = await asyncio.gather(*(one(i) for i in range(calls)))
    await router.close()
    caller_s = sum(len(a) for a in audio) * MICRO_TURN_MS / 1000
    return {"sessions": sessions, "caller_s": caller_s}


def run(calls: int = 8, tail_s: float = 6.0, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="parley-bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        children = []
        try:
            ShopStore(server.client()).seed(Shop.default())
            quiet = ("--loglevel=WARNING",)
            children = [
                worker_child(server.url, "bench-tools", stdout=subprocess.DEVNULL, extra=quiet),
                *background_workers(server.url, "bench-", stdout=subprocess.DEVNULL, extra=quiet),
            ]
            for c in children:
                c.start()
            wait_healthy(children, 120)
            time.sleep(3.0)  # the pools' processes load their models (PARLEY_BACKGROUND_WARM) first
            cpu0 = {c.name: _tree_cpu(c.proc.pid) for c in children}
            r = asyncio.run(_drive(server.url, calls, tail_s, seed))
            cpu = {c.name: round(_tree_cpu(c.proc.pid) - cpu0[c.name], 2) for c in children}
        finally:
            stop_all(children)
            server.stop()
    heard = [h for s in r["sessions"] for h in s.background.heard if h["text"]]
    decisions = [d for s in r["sessions"] for d in s.background.decisions]
    by_kind: dict[str, list[dict]] = {}
    for d in decisions:
        by_kind.setdefault(d["kind"], []).append(d)
    caller_s = r["caller_s"]
    return {
        "calls": calls,
        "segments_heard": len(heard),
        "hearing_latency_ms_p50": _pct([h["latency_ms"] for h in heard], 50),
        "hearing_latency_ms_p90": _pct([h["latency_ms"] for h in heard], 90),
        "vad_ms_p50": _pct([h["vad_ms"] for h in heard], 50),
        "hear_ms_p50": _pct([h["hear_ms"] for h in heard], 50),
        "hear_ms_p90": _pct([h["hear_ms"] for h in heard], 90),
        "whisper_ms_p50": _pct([h["work_ms"] for h in heard], 50),
        "decisions": {k: len(v) for k, v in sorted(by_kind.items())},
        "decision_ms_p50": _pct([d["ms"] for d in decisions], 50),
        "decision_ms_p90": _pct([d["ms"] for d in decisions], 90),
        "decision_work_ms_p50": _pct([d["work_ms"] for d in decisions if d.get("work_ms") is not None], 50),
        "decision_work_ms_p90": _pct([d["work_ms"] for d in decisions if d.get("work_ms") is not None], 90),
        "reply_ms_p50": _pct([d["ms"] for d in by_kind.get("reply", [])], 50),
        "reply_ms_p90": _pct([d["ms"] for d in by_kind.get("reply", [])], 90),
        "reply_first_token_ms_p50": _pct(
            [d["first_token_ms"] for d in by_kind.get("reply", []) if d.get("first_token_ms") is not None], 50
        ),
        "tools": sorted({d["tool"] for d in by_kind.get("tool", [])}),
        "caller_seconds": round(caller_s, 1),
        "cpu_s_per_caller_s": {k: round(v / caller_s, 4) for k, v in cpu.items()},
        "matmul_gflops": matmul_gflops(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
