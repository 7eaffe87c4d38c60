"""Tool calls in live calls: CallSession + the Celery router + a real worker on a real Redis.

The model side is the fake model server (a real websocket server speaking the model-server
protocol, scripted per micro-turn); the caller streams frames the whole time, so every test also
shows the call going on while its tools run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import numpy as np
import pytest
import redis.asyncio as aioredis

from agent.events import event_json
from agent.session import CallSession
from agent.settings import AgentSettings
from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from parley.gateway_app import run_agent_gateway
from telephony.ws.settings import Settings
from tests.agent.test_session import FakeLeg
from tests.fakes.model_server import FakeModelServer, Step
from tests.parley.test_gateway_app import stream, twilio
from tests.workers.conftest import SHOP_AGENT, TEST_AGENT, wait_until
from tests.workers.tools_for_tests import EVENTS, TEST_BOOKINGS
from workers.shop import Shop
from workers.store import ShopStore

pytestmark = pytest.mark.timeout(60)

SHOP = Shop.default()
SHIPPED = SHOP.orders_with("shipped")[0]
RETURNABLE = next(o for o in SHOP.orders if SHOP.returnable(o))
ECHO = "tangerine-7731"  # an argument value that must never reach a log line
PHONE = "555-0987"


def calls_at(calls: dict[int, dict]):
    """A model script: listen, echo the caller, and make tool call `calls[seq]` at micro-turn seq."""
    return lambda seq, session: Step("listen", tool_call=calls.get(seq))


@contextlib.asynccontextmanager
async def call(fake: FakeModelServer, router, agent, call_id: str, leg: FakeLeg | None = None, **kw):
    """A started call whose caller streams a frame every 50 ms until the block ends, then hangs up."""
    leg = leg or FakeLeg()
    session = CallSession(
        agent,
        leg,
        model_url=fake.url,
        tool_router=router,
        call_id=call_id,
        tool_pending_after=kw.pop("tool_pending_after", 0.3),
        tool_pending_every=0.5,
        **kw,
    )
    await session.start()
    run = asyncio.create_task(session.run())

    async def caller():
        i = 0
        while session.ended is None:
            await session.caller_frame(np.full(3200, i % 1000, np.int16))
            i += 1
            await asyncio.sleep(0.05)  # the caller's pace, not synchronisation

    streaming = asyncio.create_task(caller())
    try:
        yield session, leg
    finally:
        streaming.cancel()
        if session.ended is None:
            await session.caller_ended("test over")
        await asyncio.wait_for(run, 10)


def events_of(fake: FakeModelServer, call_id: str, kind: str | None = None) -> list:
    """The events the model got in a call, JSON payloads decoded (all but DTMF and the hang-up's)."""
    s = fake.session(call_id)
    return [
        (k, p if k in ("dtmf", "caller_hangup") else json.loads(p))
        for k, p in s.events
        if kind is None or k == kind
    ]


async def test_results_come_back_while_audio_flows(worker, router):
    seen: dict[int, int] = {}  # micro-turn -> tool results the model had heard by then

    def script(seq, session):
        seen[seq] = sum(k == "tool_result" for k, _ in session.events)
        return calls_at(
            {
                1: {"id": "a", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}},
                3: {"id": "b", "name": "slow_echo", "arguments": {"ms": 1200, "text": ECHO}},
            }
        )(seq, session)

    async with FakeModelServer(script) as fake:
        async with call(fake, router, TEST_AGENT, "flow") as (session, leg):
            await fake.wait_for(lambda: len(events_of(fake, "flow", "tool_result")) == 2, 15)
            plays_at_result = leg.plays()
            await leg.wait_for(lambda: leg.plays() >= plays_at_result + 3)  # and the call goes on
    results = [p for _, p in events_of(fake, "flow", "tool_result")]
    lookup, echo = results
    assert fake.session("flow").events[0] == (
        "tool_result",
        event_json(SHOP.call("lookup_order", {"order_id": SHIPPED.order_id})[0]),
    )  # byte for byte what training carried
    assert lookup["order_id"] == SHIPPED.order_id and echo["echo"] == ECHO
    # While the slow tool ran (>= 1.2 s) the model stepped on and heard it was still working.
    first_with_both = min(seq for seq, n in seen.items() if n == 2)
    assert first_with_both - 3 >= 10
    pending = events_of(fake, "flow", "tool_pending")
    assert pending and all(set(p) == {"seconds"} and p["seconds"] >= 0 for _, p in pending)
    kinds = [k for k, _ in fake.session("flow").events]
    assert kinds.index("tool_pending") < len(kinds) - 1 - kinds[::-1].index("tool_result")
    assert session.timeline.counters["tool_result"] == 2 and "tool_error" not in session.timeline.counters
    assert router.stats()["results"] == 2 and router.stats()["in_flight"] == 0


async def test_the_shops_tools_answer_as_in_training_and_the_callback_timer_fires_on_time(
    worker, router, redis_server
):
    store = ShopStore(redis_server.client())
    args = {
        "faq": {"query": "are you open on saturday"},
        "ret": {"order_id": " ".join(RETURNABLE.order_id), "reason": "too small"},
        "cb": {"seconds": 1, "phone": PHONE},
        "no": {"order_id": "Z-00000"},
    }
    script = calls_at(
        {
            1: {"id": "faq", "name": "search_faq", "arguments": args["faq"]},
            2: {"id": "ret", "name": "create_return", "arguments": args["ret"]},
            3: {"id": "cb", "name": "book_callback", "arguments": args["cb"]},
            4: {"id": "no", "name": "lookup_order", "arguments": args["no"]},
        }
    )
    async with FakeModelServer(script) as fake:
        async with call(fake, router, SHOP_AGENT, "shop") as (session, leg):
            await fake.wait_for(
                lambda: (
                    len(events_of(fake, "shop", "tool_result")) == 3 and events_of(fake, "shop", "tool_error")
                ),
                15,
            )
            assert not events_of(fake, "shop", "timer")
            await fake.wait_for(lambda: events_of(fake, "shop", "timer"), 5)
            fired = time.time()
    raw = dict((k, p) for k, p in fake.session("shop").events if k != "tool_pending")
    faq, ret, cb = (json.loads(p) for k, p in fake.session("shop").events if k == "tool_result")
    assert faq == SHOP.call("search_faq", args["faq"])[0]
    assert ret == SHOP.call("create_return", args["ret"])[0]
    assert list(cb) == ["callback_id", "seconds", "phone"] and cb["seconds"] == 1 and cb["phone"] == PHONE
    assert raw["tool_error"] == event_json("order not found")
    (booking,) = [c for c in store.callbacks() if c["call_id"] == "shop"]
    assert booking["callback_id"] == cb["callback_id"]
    assert booking["due_at"] - 0.05 <= fired <= booking["due_at"] + 0.6  # at the right second
    assert json.loads(raw["timer"]) == {"timer": f"call back {cb['callback_id']}", "seconds": 1}
    assert [r["order_id"] for r in store.returns() if r["call_id"] == "shop"] == [RETURNABLE.order_id]


async def test_transfer_is_recorded_as_a_hand_off_ticket(worker, router, redis_server):
    store = ShopStore(redis_server.client())
    script = calls_at({2: {"id": "t", "name": "transfer", "arguments": {"reason": "wants a person"}}})
    async with FakeModelServer(script) as fake:
        async with call(fake, router, SHOP_AGENT, "handoff", leg=FakeLeg(can_transfer=True)) as (
            session,
            leg,
        ):
            assert (await leg.wait_hangup())[1] == "transferred to a human"
    await wait_until(lambda: any(t["call_id"] == "handoff" for t in store.handoffs()), 10, "the ticket")
    (ticket,) = [t for t in store.handoffs() if t["call_id"] == "handoff"]
    assert ticket["reason"] == "wants a person" and ticket["queue"] == "customer care"


async def test_bad_arguments_and_unknown_tools_get_clear_errors(worker, router):
    script = calls_at(
        {
            1: {"id": "1", "name": "lookup_order", "arguments": {}},
            2: {"id": "2", "name": "lookup_order", "arguments": {"order_id": 48213}},
            3: {"id": "3", "name": "lookup_order", "arguments": None, "arguments_raw": "{order: A-1"},
            4: {"id": "4", "name": "nope", "arguments": {}},
            5: {"id": "5", "name": "ghost", "arguments": {}},
            6: {"id": "6", "name": "frobnicate", "arguments": {}},
            7: {"id": "7", "name": "slow_echo", "arguments": {"ms": "soon", "text": ECHO}},
        }
    )
    async with FakeModelServer(script) as fake:
        async with call(fake, router, TEST_AGENT, "bad") as (session, leg):
            await fake.wait_for(lambda: len(events_of(fake, "bad", "tool_error")) == 7, 15)
            plays = leg.plays()
            await leg.wait_for(lambda: leg.plays() >= plays + 3)  # no crash: the call goes on
    errors = sorted(p for _, p in events_of(fake, "bad", "tool_error"))
    assert errors == sorted(
        [
            "missing argument order_id",
            "argument order_id must be string",
            "arguments must be a JSON object",
            "unknown tool nope",
            "unknown tool ghost",
            "tool not allowed",
            "argument ms must be integer",
        ]
    )
    assert router.counters["rejected"] == 5  # answered without sending a task
    assert router.counters["sent"] == 1  # `ghost`: the worker answered it has no such tool


async def test_a_tool_over_its_time_limit_times_out_and_the_worker_goes_on(worker, router):
    script = calls_at(
        {
            1: {"id": "soft", "name": "slow_echo", "arguments": {"ms": 8000, "text": ECHO}},
            2: {"id": "hard", "name": "stubborn", "arguments": {}},
        }
    )
    async with FakeModelServer(script) as fake:
        async with call(fake, router, TEST_AGENT, "limits") as (session, leg):
            await fake.wait_for(lambda: len(events_of(fake, "limits", "tool_error")) == 2, 10)
    assert [p for _, p in events_of(fake, "limits", "tool_error")] == ["tool timed out"] * 2
    # The stubborn tool's process was killed at its hard limit and replaced: the worker still answers.
    async with FakeModelServer(
        calls_at({1: {"id": "ok", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}}})
    ) as fake:
        async with call(fake, router, TEST_AGENT, "after-limits"):
            await fake.wait_for(lambda: events_of(fake, "after-limits", "tool_result"), 10)


async def test_a_router_that_gave_up_is_never_contradicted_by_a_late_booking(worker, redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    events = client.pubsub()
    await events.subscribe(EVENTS)
    router = CeleryToolRouter(
        ToolRouterSettings(redis_url=redis_server.url, result_timeout_s=1.0, send_timeout_s=0.5)
    )
    await router.wait_ready(10)
    script = calls_at(
        {1: {"id": "late", "name": "slow_book", "arguments": {"before_ms": 2500, "after_ms": 0}}}
    )
    try:
        async with FakeModelServer(script) as fake:
            async with call(fake, router, TEST_AGENT, "gave-up", tool_pending_after=5):
                await fake.wait_for(lambda: events_of(fake, "gave-up", "tool_error"), 5)

                async def decided():
                    async for m in events.listen():
                        event = json.loads(m["data"]) if m["type"] == "message" else {}
                        if event.get("call_id") == "gave-up" and event.get("event") == "committed":
                            return

                await asyncio.wait_for(decided(), 10)  # the worker reached its commit, and lost it
        assert events_of(fake, "gave-up", "tool_error") == [("tool_error", "tool timed out")]
        assert b"gave-up" not in await client.hvals(TEST_BOOKINGS)
        assert router.counters["timed_out"] == 1
    finally:
        await router.close()
        await events.aclose()
        await client.aclose()


async def test_a_result_after_its_call_ended_is_dropped_and_counted(worker, router):
    async with FakeModelServer(calls_at({})) as fake:
        fake.script = lambda seq, s: Step(
            "listen",
            tool_call=(
                {"id": "slow", "name": "slow_echo", "arguments": {"ms": 800, "text": ECHO}}
                if s.call_id == "gone"
                else {"id": "mine", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}}
            )
            if seq == 1
            else None,
        )
        async with call(fake, router, TEST_AGENT, "stays") as (other, _):
            async with call(fake, router, TEST_AGENT, "gone") as (gone, _):
                await wait_until(lambda: router.counters["sent"] >= 2, 10, "both calls' tools to be sent")
            await wait_until(lambda: router.counters["late_results"] >= 1, 10, "the late result")
            await fake.wait_for(lambda: events_of(fake, "stays", "tool_result"), 10)
    assert not events_of(fake, "gone", "tool_result") and not events_of(fake, "gone", "tool_error")
    assert [p["order_id"] for _, p in events_of(fake, "stays", "tool_result")] == [SHIPPED.order_id]
    assert router.counters["late_results"] == 1 and router.counters["misrouted_replies"] == 0


async def test_tools_through_the_real_gateway(worker, router):
    """A Twilio call through the websocket gateway: its model's tool call comes back as a result."""
    script = lambda seq, s: Step(  # noqa: E731
        "speak",
        audio=9000,
        tool_call={"id": "g", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}}
        if seq == 2
        else None,
    )
    async with FakeModelServer(script) as fake:
        settings = Settings(host="127.0.0.1", port=0)
        async with run_agent_gateway(settings, AgentSettings(model_url=fake.url), tool_router=router) as gw:
            client = await twilio(gw).open()
            sender = asyncio.create_task(stream(client, 4.0))
            await fake.wait_for(
                lambda: fake.sessions and events_of(fake, fake.sessions[0].call_id, "tool_result"), 10
            )
            frames = fake.sessions[0].frames
            await fake.wait_for(lambda: fake.sessions[0].frames >= frames + 3, 5)  # the call goes on
            sender.cancel()
            await client.stop()
            await fake.wait_for(lambda: fake.sessions[0].closed, 5)
    ((_, result),) = events_of(fake, fake.sessions[0].call_id, "tool_result")
    assert result == SHOP.call("lookup_order", {"order_id": SHIPPED.order_id})[0]


async def test_no_tool_argument_or_result_in_log_messages(worker, router, caplog):
    """Last in this module: the worker's log then holds every tool call the module made."""
    caplog.set_level(logging.DEBUG)
    customer = SHOP.customer(SHIPPED.customer_id).name
    script = calls_at(
        {
            1: {"id": "a", "name": "lookup_order", "arguments": {"order_id": SHIPPED.order_id}},
            2: {"id": "b", "name": "book_callback", "arguments": {"seconds": 3600, "phone": PHONE}},
            3: {"id": "c", "name": "slow_echo", "arguments": {"ms": 10, "text": ECHO}},
            4: {"id": "d", "name": "ghost", "arguments": {}},
        }
    )
    async with FakeModelServer(script) as fake:
        async with call(fake, router, TEST_AGENT, "logs"):
            await fake.wait_for(lambda: len(fake.session("logs").events) >= 4, 10)
    secrets = [
        SHIPPED.order_id,
        SHIPPED.order_id[2:],
        customer,
        SHIPPED.tracking,
        PHONE,
        ECHO,
        RETURNABLE.order_id,
        "wants a person",
    ]
    ours = " ".join(
        r.getMessage()
        for r in caplog.records
        if r.name.split(".")[0] in ("agent", "workers", "celery", "kombu", "redis")
    )
    assert "tool" in ours or "model session started" in ours
    worker_log = worker.log_path.read_text()
    assert "Task parley.tools.lookup_order" in worker_log and "unregistered" in worker_log
    for secret in secrets:
        assert secret not in ours, secret
        assert secret not in worker_log, secret
