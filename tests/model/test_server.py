"""The model server through real websockets: sessions, ticks, capacity, bad input, health."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request

import numpy as np
import pytest
import torch
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from model.config import ModelConfig
from model.interaction import InteractionModel
from model.runner import FRAME_BYTES, Runner
from model.server import ModelServer, ModelServerSettings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tiny_model() -> InteractionModel:
    torch.manual_seed(7)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


def frame(i: int, amp: float = 0.2) -> bytes:
    t = (np.arange(3200) + i * 3200) / 16000
    return (amp * 32767 * np.sin(2 * math.pi * 220 * t)).astype("<i2").tobytes()


async def start(model, **kw) -> ModelServer:
    settings = ModelServerSettings(port=0, **kw)
    server = ModelServer(Runner(model, settings.max_slots), settings, model_name="tiny")
    await server.start()
    return server


async def hello(ws, **extra):
    await ws.send(
        json.dumps({"type": "hello", "call_id": "c1", "config": "agent=support", "seed": 3, **extra})
    )
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def next_turn(ws):
    """(turn JSON, its audio), skipping other messages (tool calls)."""
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(msg, str) and json.loads(msg)["type"] == "turn":
            audio = await asyncio.wait_for(ws.recv(), 5)
            return json.loads(msg), audio


async def test_a_call_gets_one_turn_and_frame_per_micro_turn(tiny_model):
    server = await start(tiny_model, tick_ms=50)
    try:
        async with connect(server.url) as ws:
            ready = await hello(ws)
            assert ready["type"] == "ready" and ready["frame_bytes"] == FRAME_BYTES
            turns = []
            for i in range(6):
                await ws.send(frame(i))
                turn, audio = await next_turn(ws)
                assert isinstance(audio, bytes) and len(audio) == FRAME_BYTES
                assert turn["floor"] in ("listen", "backchannel", "speak", "yield")
                turns.append(turn)
            assert [t["seq"] for t in turns] == list(range(6))
            assert [t["t_ms"] for t in turns] == [0, 50, 100, 150, 200, 250]
            await ws.send(json.dumps({"type": "event", "kind": "dtmf", "payload": "5"}))
            await ws.send(frame(7))
            turn, _ = await next_turn(ws)
            assert turn["seq"] == 6
            await ws.send(json.dumps({"type": "bye"}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1000
        health = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{server.port}/healthz")
        assert health["status"] == "ok" and health["ticks"] > 0 and health["tick_ms_p99"] > 0
    finally:
        await server.stop()


async def test_a_words_model_takes_each_event_whole(tiny_words):
    server = await start(tiny_words, tick_ms=50)
    try:
        async with connect(server.url) as ws:
            slot = (await hello(ws))["slot"]
            await ws.send(json.dumps({"type": "event", "kind": "dtmf", "payload": "5"}))
            await ws.send(json.dumps({"type": "event", "kind": "reply", "payload": "Your order shipped."}))
            await ws.send(frame(0))
            await next_turn(ws)
            state = server.runner.state
            assert int(state.stream_len[slot]) == 3  # two events, one position each, and a micro-turn
            reply = state.reply[slot, : int(state.reply_len[slot])].tolist()
            assert reply == list(b"Your order shipped. ")
    finally:
        await server.stop()


async def test_capacity_refuses_with_a_clear_close_code(tiny_model):
    server = await start(tiny_model, max_slots=2, tick_ms=50)
    try:
        async with connect(server.url) as a, connect(server.url) as b:
            assert (await hello(a))["slot"] == 0
            assert (await hello(b))["slot"] == 1
            async with connect(server.url) as c:
                await c.send(json.dumps({"type": "hello", "config": ""}))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(c.recv(), 5)
                assert closed.value.rcvd.code == 1013
                assert "at capacity" in closed.value.rcvd.reason
        # Both left: a new call is admitted again, into a cleared slot.
        async with connect(server.url) as d:
            ready = await hello(d)
            assert ready["type"] == "ready"
            await d.send(frame(0))
            turn, _ = await next_turn(d)
            assert turn["seq"] == 0
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "first, reason",
    [
        ("not json", "first message must be a JSON"),
        (json.dumps({"type": "frame"}), "first message must be a JSON"),
        (json.dumps({"type": "hello", "seed": -1}), "hello.seed"),
        (json.dumps({"type": "hello", "top_p": 0}), "hello.top_p"),
        (json.dumps({"type": "hello", "config": 5}), "hello.config"),
    ],
)
async def test_bad_hello_is_refused_with_a_reason(tiny_model, first, reason):
    server = await start(tiny_model, tick_ms=50)
    try:
        async with connect(server.url) as ws:
            await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1008 and reason in closed.value.rcvd.reason
    finally:
        await server.stop()


async def test_bad_messages_get_errors_and_other_calls_carry_on(tiny_model):
    server = await start(tiny_model, tick_ms=50)
    try:
        async with connect(server.url) as bad, connect(server.url) as good:
            await hello(bad)
            await hello(good)
            for msg in (
                b"\x00" * 100,
                "{oops",
                json.dumps({"type": "frob"}),
                json.dumps({"type": "event", "kind": "fax"}),
                json.dumps({"type": "event", "kind": "tool_result", "payload": "x" * 5000}),
            ):
                await bad.send(msg)
                err = json.loads(await asyncio.wait_for(bad.recv(), 5))
                assert err["type"] == "error" and err["message"]
            for i in range(5):
                await good.send(frame(i))
                await bad.send(frame(i))
                turn, audio = await next_turn(good)
                assert turn["seq"] == i and len(audio) == FRAME_BYTES
            turn, _ = await next_turn(bad)  # the bad call is still served too
            assert turn["seq"] == 0
    finally:
        await server.stop()


async def test_late_frames_are_counted_and_the_slot_waits(tiny_model):
    server = await start(tiny_model, tick_ms=50)
    try:
        async with connect(server.url) as ws:
            await hello(ws)
            await ws.send(frame(0))
            await next_turn(ws)
            # Send nothing for a while: ticks pass without this slot stepping.
            ticks = server.scheduler.tick
            while server.scheduler.tick < ticks + 4:
                await asyncio.sleep(0.01)
            await ws.send(frame(1))
            turn, _ = await next_turn(ws)
            assert turn["seq"] == 1  # the call resumed where it was
            assert server.scheduler.total_late >= 3
            metrics = await asyncio.to_thread(_get_text, f"http://127.0.0.1:{server.port}/metrics")
            assert "parley_model_late_frames_total" in metrics and "parley_model_tick_ms" in metrics
    finally:
        await server.stop()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


async def test_a_tick_that_outlives_its_call_is_not_delivered_to_the_next_call_in_that_slot(tiny_model):
    """A call leaves while its micro-turn is being computed and a new call takes the same slot
    before the results come back: the newcomer never gets the old call's turn."""
    server = await start(tiny_model, tick_ms=50, max_slots=1)
    gate, stepping = asyncio.Event(), asyncio.Event()
    execute, loop = server.runner.execute, asyncio.get_running_loop()

    def held_execute(plan):
        if plan.step:
            loop.call_soon_threadsafe(stepping.set)
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(10)
        return execute(plan)

    server.runner.execute = held_execute
    try:
        async with connect(server.url) as first:
            assert (await hello(first))["slot"] == 0
            await first.send(frame(0))
            await asyncio.wait_for(stepping.wait(), 5)  # the first call's frame is in the runner
        async with asyncio.timeout(5):  # the slot frees once the server has seen the close
            while server.scheduler.active:
                await asyncio.sleep(0.01)
        async with connect(server.url) as second:
            ready = await hello(second)
            assert ready["type"] == "ready" and ready["slot"] == 0
            server.runner.execute = execute
            gate.set()  # the held tick finishes now, with the second call in its slot
            await second.send(frame(0))
            turn, _ = await next_turn(second)
            assert turn["seq"] == 0 and turn["frame"] == 0  # its own first frame, not the old call's
            with pytest.raises(asyncio.TimeoutError):  # and nothing else queued for it
                await asyncio.wait_for(second.recv(), 0.3)
    finally:
        gate.set()
        await server.stop()
