"""ModelClient against real websocket servers: the fake model server and hand-written misbehaving ones."""

from __future__ import annotations

import contextlib
import json
import socket

import numpy as np
import pytest
from websockets.asyncio.server import serve

from agent.model_client import (
    Closed,
    Hello,
    ModelClient,
    ModelConnectionClosed,
    ModelRefused,
    ModelUnavailable,
    ServerError,
    ToolCall,
    Turn,
)
from tests.fakes.model_server import FakeModelServer, Step

pytestmark = pytest.mark.timeout(30)

READY = {
    "type": "ready",
    "session_id": "s1",
    "slot": 0,
    "sample_rate": 16000,
    "frame_bytes": 6400,
    "micro_turn_ms": 200,
    "model": "test",
}
HELLO = Hello("call-1", "support|en||Be brief.", seed=7, temperature=0.8)


@contextlib.asynccontextmanager
async def server(handler):
    async with serve(handler, "127.0.0.1", 0) as srv:
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/session"


async def collect(client) -> list:
    return [message async for message in client]


def test_hello_json_omits_unset_sampling():
    assert json.loads(Hello("c", "cfg").to_json()) == {"type": "hello", "call_id": "c", "config": "cfg"}
    assert json.loads(HELLO.to_json())["seed"] == 7 and "top_p" not in json.loads(HELLO.to_json())


async def test_turns_come_with_their_audio_and_tool_calls_are_decoded():
    def script(seq, session):
        calls = {
            1: {"id": "t1", "name": "lookup_order", "arguments": {"order": "123"}},
            2: {"id": "t2", "name": "x y", "arguments_raw": "{not json"},
        }
        return Step("speak" if seq else "listen", text=f"w{seq} ", tool_call=calls.get(seq), audio="echo")

    async with FakeModelServer(script) as fake:
        client = await ModelClient.connect(fake.url, HELLO)
        assert client.ready.slot == 0 and client.ready.model == "fake"
        frames = [np.full(3200, 100 * (i + 1), np.int16) for i in range(3)]
        for frame in frames:
            await client.send_frame(frame)
        await client.send_event("dtmf", "42")
        await fake.wait_for(lambda: fake.sessions[0].turns_sent == 3 and fake.sessions[0].events)
        await client.close()
        messages = await collect(client)
    turns = [m for m in messages if isinstance(m, Turn)]
    assert [t.seq for t in turns] == [0, 1, 2] and [t.floor for t in turns] == ["listen", "speak", "speak"]
    for turn, frame in zip(turns, frames):
        np.testing.assert_array_equal(turn.audio, frame)  # echoed, paired with its own turn
        assert turn.audio.dtype == np.int16 and turn.audio.flags.writeable
    tools = [m for m in messages if isinstance(m, ToolCall)]
    assert tools[0] == ToolCall(1, 200, "t1", "lookup_order", {"order": "123"}, None)
    assert tools[1].arguments is None and tools[1].arguments_raw == "{not json"
    assert messages[-1] == Closed(1000, "bye")
    assert fake.sessions[0].hello["seed"] == 7 and fake.sessions[0].events == [("dtmf", "42")]
    assert fake.sessions[0].bye and client.frames_sent == 3 and client.turns == 3


async def test_refused_at_capacity():
    async with FakeModelServer(capacity=0) as fake:
        with pytest.raises(ModelRefused) as info:
            await ModelClient.connect(fake.url, HELLO)
    assert info.value.code == 1013 and info.value.reason.startswith("at capacity")


async def test_unreachable_and_not_the_protocol():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelUnavailable, match="cannot open a model session"):
        await ModelClient.connect(f"ws://127.0.0.1:{port}/session", HELLO, timeout=2)

    async def wrong_rate(ws):
        await ws.recv()
        await ws.send(json.dumps({**READY, "sample_rate": 8000}))
        await ws.wait_closed()

    async with server(wrong_rate) as url:
        with pytest.raises(ModelUnavailable, match="server speaks 8000 Hz"):
            await ModelClient.connect(url, HELLO)

    async def silent(ws):
        await ws.wait_closed()

    async with server(silent) as url:
        with pytest.raises(ModelUnavailable, match="sent no ready"):
            await ModelClient.connect(url, HELLO, timeout=0.3)


@pytest.mark.parametrize(
    "after_turn, match",
    [
        ('{"type":"turn","seq":1,"t_ms":200,"floor":"speak","text":""}', "followed by text"),
        (b"\x00" * 100, "followed by 100 bytes"),
    ],
)
async def test_a_turn_without_its_audio_is_a_protocol_error(after_turn, match):
    async def broken(ws):
        await ws.recv()
        await ws.send(json.dumps(READY))
        await ws.send('{"type":"turn","seq":0,"t_ms":0,"floor":"speak","text":"hi"}')
        await ws.send(after_turn)
        await ws.wait_closed()

    async with server(broken) as url:
        client = await ModelClient.connect(url, HELLO)
        messages = await collect(client)
    assert isinstance(messages[0], ServerError) and match in messages[0].message
    assert messages[-1] == Closed(1002, "protocol error")
    with pytest.raises(ModelConnectionClosed):
        await client.send_frame(np.zeros(3200, np.int16))


async def test_server_error_then_close_and_unknown_types_are_skipped():
    async def failing(ws):
        await ws.recv()
        await ws.send(json.dumps(READY))
        await ws.send('{"type":"stats","whatever":1}')
        await ws.send('{"type":"error","message":"runner crashed"}')
        await ws.close(1011, "server error")

    async with server(failing) as url:
        client = await ModelClient.connect(url, HELLO)
        messages = await collect(client)
    assert messages == [ServerError("runner crashed"), Closed(1011, "server error")]
    assert client.unknown_messages == 1


async def test_send_checks():
    async with FakeModelServer() as fake:
        client = await ModelClient.connect(fake.url, HELLO)
        with pytest.raises(ValueError, match=r"int16\[3200\]"):
            await client.send_frame(np.zeros(3200, np.float32))
        with pytest.raises(ValueError, match=r"int16\[3200\]"):
            await client.send_frame(np.zeros(1600, np.int16))
        with pytest.raises(ValueError, match="unknown kind 'shout'"):
            await client.send_event("shout", "x")
        await client.close()
        assert (await collect(client))[-1] == Closed(1000, "bye")
