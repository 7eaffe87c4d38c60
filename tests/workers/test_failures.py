"""A worker killed mid-task and Redis restarting mid-call: each call still gets exactly one answer per
tool call, the call goes on, and a booking exists exactly when the model was told it was made.

Each test has its own Redis server and workers (it kills or restarts them).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis

from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from procs.redis_server import EmbeddedRedis
from tests.fakes.model_server import FakeModelServer, Step
from tests.workers.conftest import TEST_AGENT, Worker, wait_until
from tests.workers.test_tools_in_calls import ECHO, SHIPPED, call, events_of
from tests.workers.tools_for_tests import EVENTS, TEST_BOOKINGS, runs_key
from workers.settings import WorkerSettings
from workers.shop import Shop
from workers.store import ShopStore

pytestmark = pytest.mark.timeout(90)


class Events:
    """The test tools' announcements (started, committed), as they arrive."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.seen: list[tuple[float, dict]] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Events:
        pubsub = self.client.pubsub()
        await pubsub.subscribe(EVENTS)
        await pubsub.get_message(timeout=1)  # the subscription's confirmation

        async def listen():
            async for m in pubsub.listen():
                if m["type"] == "message":
                    self.seen.append((time.monotonic(), json.loads(m["data"])))

        self._task = asyncio.create_task(listen())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()

    def of(self, call_id: str, event: str, tool: str | None = None) -> list[tuple[float, dict]]:
        return [
            (t, e)
            for t, e in self.seen
            if e["call_id"] == call_id and e["event"] == event and tool in (None, e["tool"])
        ]


def controlled_script(queue: list[dict]):
    """The model makes the queued tool calls, one per micro-turn, when the test queues them."""
    return lambda seq, session: Step("listen", tool_call=queue.pop(0) if queue else None)


async def test_a_task_whose_worker_is_killed_is_finished_by_another_worker(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    ShopStore(server.client()).seed(Shop.default())
    first = Worker(server.url, tmp_path / "first.log").start()
    second = Worker(server.url, tmp_path / "second.log")
    router = CeleryToolRouter(ToolRouterSettings(redis_url=server.url))
    queue = [
        {"id": "echo", "name": "slow_echo", "arguments": {"ms": 1500, "text": ECHO}},
        {"id": "book", "name": "slow_book", "arguments": {"before_ms": 0, "after_ms": 4000}},
    ]
    try:
        await router.wait_ready(10)
        async with Events(server.url) as events, FakeModelServer(controlled_script(queue)) as fake:
            async with call(fake, router, TEST_AGENT, "kill") as (session, leg):
                # Both tools running on the first worker, the booking committed but not yet answered:
                await wait_until(
                    lambda: events.of("kill", "started", "slow_echo") and events.of("kill", "committed"),
                    15,
                    "both tools to be running on the first worker",
                )
                killed_at = time.monotonic()
                first.kill9()
                await asyncio.to_thread(second.start)
                await fake.wait_for(lambda: len(events_of(fake, "kill", "tool_result")) == 2, 30)
                plays = leg.plays()
                await leg.wait_for(lambda: leg.plays() >= plays + 3)  # the call went on throughout
        results = {("echo" if "echo" in p else "book"): p for _, p in events_of(fake, "kill", "tool_result")}
        # Exactly one answer each, none an error, nothing duplicated or misrouted.
        assert len(events_of(fake, "kill", "tool_result")) == 2 and not events_of(fake, "kill", "tool_error")
        assert router.counters["duplicate_replies"] == 0 and router.counters["misrouted_replies"] == 0
        # The echo was cut short by the kill and ran again, to the end, on the second worker...
        (_, echo_start), (rerun_at, echo_rerun) = events.of("kill", "started", "slow_echo")
        assert (
            results["echo"]["echo"] == ECHO
            and results["echo"]["pid"] == echo_rerun["pid"] != echo_start["pid"]
        )
        assert rerun_at - killed_at <= WorkerSettings().redelivery_s + 1.0  # redelivered within ~10 s
        store = ShopStore(server.client())
        assert int(store.r.get(runs_key(echo_start["key"]))) == 2
        # ... and the booking, committed before the kill, was answered from its record, not made twice.
        ((_, book),) = events.of("kill", "committed")
        assert int(store.r.get(runs_key(book["key"]))) == 1
        assert [v for v in store.r.hvals(TEST_BOOKINGS) if v == b"kill"] == [b"kill"]
        assert results["book"] == {"booking": book["key"][:8]}
    finally:
        await router.close()
        second.stop()
        first.stop()
        server.stop()


async def test_redis_restarting_mid_call_loses_and_duplicates_nothing(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    store = ShopStore(server.client())
    store.seed(Shop.default())
    worker = Worker(server.url, tmp_path / "worker.log").start()
    router = CeleryToolRouter(ToolRouterSettings(redis_url=server.url))
    queue: list[dict] = []
    try:
        await router.wait_ready(10)
        async with Events(server.url) as events, FakeModelServer(controlled_script(queue)) as fake:
            async with call(fake, router, TEST_AGENT, "restart", tool_pending_after=5) as (session, leg):
                queue.append(
                    {"id": "before", "name": "slow_book", "arguments": {"before_ms": 0, "after_ms": 0}}
                )
                await fake.wait_for(lambda: events_of(fake, "restart", "tool_result"), 10)
                # A booking is under way when Redis goes down; another tool call comes during the outage.
                queue.append(
                    {"id": "during", "name": "slow_book", "arguments": {"before_ms": 800, "after_ms": 0}}
                )
                await wait_until(
                    lambda: events.of("restart", "started")[1:], 10, "the second booking to start"
                )
                server.stop(remove=False)
                await wait_until(
                    lambda: router.counters["redis_disconnects"] >= 1, 10, "the router to notice"
                )
                queue.append(
                    {"id": "outage", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}}
                )
                await wait_until(lambda: session.timeline.counters["tool_calls"] == 3, 10, "the outage call")
                await wait_until(
                    lambda: "Redis unreachable" in worker.log_path.read_text(),
                    10,
                    "the worker to fail on Redis",
                )
                plays = leg.plays()
                await leg.wait_for(lambda: leg.plays() >= plays + 3)  # the call goes on without Redis
                server.start()
                await fake.wait_for(
                    lambda: (
                        len(events_of(fake, "restart", "tool_result"))
                        + len(events_of(fake, "restart", "tool_error"))
                        == 3
                    ),
                    40,
                )
                queue.append(
                    {"id": "after", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}}
                )
                await fake.wait_for(
                    lambda: (
                        len(events_of(fake, "restart", "tool_result"))
                        + len(events_of(fake, "restart", "tool_error"))
                        == 4
                    ),
                    20,
                )
        answers = [(k, p) for k, p in events_of(fake, "restart") if k in ("tool_result", "tool_error")]
        assert len(answers) == 4  # one answer per tool call, no more
        errors = [p for k, p in answers if k == "tool_error"]
        assert set(errors) <= {"tools unavailable", "tool timed out"}
        assert answers[-1][0] == "tool_result" and answers[-1][1]["order_id"] == SHIPPED.order_id  # recovered
        bookings_told = sum(k == "tool_result" and "booking" in p for k, p in answers)
        bookings_made = [v for v in store.r.hvals(TEST_BOOKINGS) if v == b"restart"]
        assert len(bookings_made) == bookings_told >= 1  # none lost, none doubled
        assert router.counters["redis_disconnects"] >= 1
    finally:
        await router.close()
        worker.stop()
        server.stop()
