"""`parley bench tools`: what a tool round trip through Redis and a Celery worker adds to a call.

Starts an embedded Redis (seeded with the sample shop) and one real worker (`python -m workers`)
as a child process, and a model-server stand-in in this process that speaks the model-server
protocol over a real websocket. N `CallSession`s with the real `CeleryToolRouter` stream caller
frames to it; whenever a call has no tool call in flight, the stand-in answers the next frame with
a tool call (lookup_order, search_faq, create_return, book_callback, a missing order, in turn) and
times it:

    round trip = the tool_result / tool_error event arriving  -  the tool_call message being sent
    added      = round trip  -  the tool's own work (measured in the worker, sent with the reply)

which covers the session, schema check, the send thread, the Redis queue, the worker's prefork
hand-off, the reply over pub/sub and both websocket hops. Then, separately, tasks per second: a
burst of lookups through the router into the same single worker. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from agent.config import get_agent
from agent.model_client import ToolCall
from agent.session import CallSession
from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from model.protocol import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    MICRO_TURN_MS,
    SAMPLE_RATE,
    Bye,
    CloseCode,
    Event,
    Hello,
    Ready,
    Turn,
    parse_client_message,
)
from procs.children import stop_all, wait_healthy
from procs.redis_server import EmbeddedRedis
from telephony.leg import CallInfo
from workers.process import worker_child
from workers.shop import Shop
from workers.store import ShopStore


def _tool_cycle(shop: Shop) -> list[tuple[str, dict]]:
    shipped = shop.orders_with("shipped")[0].order_id
    delivered = next(o.order_id for o in shop.orders if shop.returnable(o))
    return [
        ("lookup_order", {"order_id": shipped}),
        ("search_faq", {"query": "when are you open on saturday"}),
        ("create_return", {"order_id": delivered, "reason": "too small"}),
        ("book_callback", {"seconds": 3600}),
        ("lookup_order", {"order_id": "Z-00000"}),
    ]


class _StandIn:
    """The model-server side: turns for frames, a tool call whenever none is in flight."""

    def __init__(self, tools: list[tuple[str, dict]]) -> None:
        self.tools = tools
        self.sent: dict[str, float] = {}  # tool call id -> when its tool_call went out
        self.answered: dict[str, float] = {}
        self.names: dict[str, str] = {}
        self.url = ""

    async def handler(self, ws) -> None:
        try:
            call = Hello.from_json(await ws.recv()).call_id
            await ws.send(Ready(call, 0, SAMPLE_RATE, FRAME_BYTES, MICRO_TURN_MS, "stand-in").to_json())
            seq, n, in_flight = 0, 0, None
            async for message in ws:
                if isinstance(message, bytes):
                    if in_flight is None:
                        name, arguments = self.tools[n % len(self.tools)]
                        in_flight, n = f"{call}-{n}", n + 1
                        self.names[in_flight] = name
                        self.sent[in_flight] = time.perf_counter()
                        t_ms = seq * MICRO_TURN_MS
                        await ws.send(ToolCall(seq, t_ms, in_flight, name, arguments).to_json())
                    await ws.send(Turn(seq, seq * MICRO_TURN_MS, "listen", "", frame=seq).to_json())
                    await ws.send(message)
                    seq += 1
                else:
                    msg = parse_client_message(message)
                    if isinstance(msg, Event) and msg.kind in ("tool_result", "tool_error"):
                        if in_flight is not None:
                            self.answered[in_flight] = time.perf_counter()
                            in_flight = None
                    elif isinstance(msg, Bye):
                        await ws.close(CloseCode.NORMAL, "bye")
                        return
        except ConnectionClosed:
            pass


class _QuietLeg:
    def __init__(self, call_id: str) -> None:
        self.info = CallInfo(call_id, "native", "support", SAMPLE_RATE, "pcm16")

    def play(self, frame: np.ndarray) -> None: ...
    def utterance_end(self) -> None: ...
    def interrupt(self) -> None: ...
    def notify(self, kind: str, data: Mapping[str, object]) -> None: ...

    async def transfer(self, target: str) -> bool:
        return False

    async def hangup(self, code: int, reason: str) -> None: ...


async def _calls(
    router: CeleryToolRouter, stand_in: _StandIn, calls: int, seconds: float, frame_s: float
) -> list[CallSession]:
    sessions = []
    for i in range(calls):
        s = CallSession(
            get_agent("support"),
            _QuietLeg(f"b{i}"),
            model_url=stand_in.url,
            tool_router=router,
            call_id=f"b{i}",
        )
        await s.start()
        sessions.append(s)
    runs = [asyncio.create_task(s.run()) for s in sessions]
    frame = np.zeros(FRAME_SAMPLES, np.int16)
    t0 = time.monotonic()

    async def stream(i: int, s: CallSession) -> None:
        # Calls' frames at evenly spread phases, as independent calls' are.
        k = 0
        await asyncio.sleep(i * frame_s / len(sessions))
        start = time.monotonic()
        while start - t0 + k * frame_s < seconds:
            await s.caller_frame(frame)
            k += 1
            await asyncio.sleep(max(0.0, start + k * frame_s - time.monotonic()))

    await asyncio.gather(*(stream(i, s) for i, s in enumerate(sessions)))
    await asyncio.sleep(0.5)  # the last answers
    for s in sessions:
        await s.caller_ended("bench over")
    await asyncio.wait(runs, timeout=5)
    return sessions


class _Caller:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


async def _throughput(router: CeleryToolRouter, shop: Shop, tasks: int, in_flight: int = 64) -> float:
    order = shop.orders[0].order_id
    gate = asyncio.Semaphore(in_flight)
    caller = _Caller("throughput")

    async def one(i: int) -> str:
        async with gate:
            event = await router.call(caller, ToolCall(i, 0, f"t{i}", "lookup_order", {"order_id": order}))
            return event.kind

    t0 = time.perf_counter()
    kinds = await asyncio.gather(*(one(i) for i in range(tasks)))
    elapsed = time.perf_counter() - t0
    if kinds.count("tool_result") != tasks:
        raise RuntimeError(f"throughput run: {tasks - kinds.count('tool_result')} of {tasks} tasks failed")
    return tasks / elapsed


async def _drive(url: str, calls: int, seconds: float, tasks: int, frame_s: float) -> dict:
    shop = Shop.default()
    stand_in = _StandIn(_tool_cycle(shop))
    async with serve(stand_in.handler, "127.0.0.1", 0, max_size=1 << 20, compression=None) as server:
        stand_in.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/session"
        router = CeleryToolRouter(ToolRouterSettings(redis_url=url))
        await router.wait_ready(10)
        await _throughput(router, shop, 20)  # warm-up: connections, the worker's FAQ index
        sessions = await _calls(router, stand_in, calls, seconds, frame_s)
        rate = await _throughput(router, shop, tasks) if tasks else None
        stats = router.stats()
        await router.close()
    work = {
        e["id"]: e["work_ms"]
        for s in sessions
        for e in s.timeline.to_dict()["events"]
        if e["kind"] in ("tool_result", "tool_error") and "work_ms" in e
    }
    trips, added, own = [], [], []
    for tid, t_in in stand_in.answered.items():
        trip = (t_in - stand_in.sent[tid]) * 1000
        trips.append(trip)
        if tid in work:
            own.append(work[tid])
            added.append(trip - work[tid])
    return {"trips": trips, "added": added, "work": own, "rate": rate, "router": stats}


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run(
    calls: int, seconds: float, concurrency: int = 1, throughput_tasks: int = 500, frame_s: float = 0.2
) -> dict:
    with tempfile.TemporaryDirectory(prefix="parley-bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        worker = None
        try:
            ShopStore(server.client()).seed(Shop.default())
            worker = worker_child(
                server.url,
                "bench-worker",
                stdout=subprocess.DEVNULL,
                extra=(f"--concurrency={concurrency}", "--loglevel=WARNING"),
            )
            worker.start()
            wait_healthy([worker], 60)
            r = asyncio.run(_drive(server.url, calls, seconds, throughput_tasks, frame_s))
        finally:
            if worker is not None:
                stop_all([worker])
            server.stop()
    return {
        "calls": calls,
        "seconds": seconds,
        "worker_processes": concurrency,
        "tool_calls": len(r["trips"]),
        "round_trip_ms_p50": _pct(r["trips"], 50),
        "round_trip_ms_p99": _pct(r["trips"], 99),
        "tool_work_ms_p50": _pct(r["work"], 50),
        "added_ms_p50": _pct(r["added"], 50),
        "added_ms_p99": _pct(r["added"], 99),
        "tasks_per_s_per_worker": round(r["rate"], 1) if r["rate"] else None,
        "router": r["router"],
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
    }
