"""A fake model server for tests: a real websocket server speaking the model-server protocol.

It answers every caller frame at once with a turn and 200 ms of agent audio (no tick clock), so
tests control timing by what they send. What it says is scripted per session: `script(seq,
session)` returns a `Step` (floor, text, optional tool call, audio: the caller's frame echoed back,
a constant level, or silence). It can refuse sessions past `capacity` (1013), drop a session after
some frames (1011), skip micro-turns (no turn message, like a late frame), and records what each
session received (hello, frame count, events, bye). `wait_for(predicate, timeout)` waits on its
state without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Callable, Optional, Union

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FRAME_BYTES = 6400


@dataclasses.dataclass
class Step:
    floor: str = "listen"
    text: str = ""
    tool_call: Optional[dict] = None  # {"id", "name", "arguments" | "arguments_raw"}
    audio: Union[str, int] = "echo"  # "echo" | "silence" | a constant int16 level


@dataclasses.dataclass
class FakeSession:
    call_id: str
    config: str
    hello: dict
    frames: int = 0
    turns_sent: int = 0
    events: list = dataclasses.field(default_factory=list)  # (kind, payload)
    bye: bool = False
    closed: bool = False
    close_code: Optional[int] = None


def echo_listen(seq: int, session: FakeSession) -> Step:
    return Step("listen", audio="echo")


class FakeModelServer:
    def __init__(
        self,
        script: Callable[[int, FakeSession], Step] = echo_listen,
        *,
        capacity: int = 64,
        drop_after: Optional[int] = None,
        skip: frozenset = frozenset(),
    ) -> None:
        self.script = script
        self.capacity = capacity
        self.drop_after = drop_after
        self.skip = skip
        self.sessions: list[FakeSession] = []
        self.refused = 0
        self.live = 0
        self.url = ""
        self._changed = asyncio.Condition()
        self._server = None

    async def __aenter__(self) -> "FakeModelServer":
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=1 << 20, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/session"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def session(self, call_id: str) -> FakeSession:
        return next(s for s in self.sessions if s.call_id == call_id)

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            hello = json.loads(await ws.recv())
        except (ValueError, ConnectionClosed):
            await ws.close(1008, "bad hello")
            return
        if (
            not isinstance(hello, dict)
            or hello.get("type") != "hello"
            or not isinstance(hello.get("config"), str)
        ):
            await ws.send(json.dumps({"type": "error", "message": "bad hello"}))
            await ws.close(1008, "bad hello")
            return
        if self.live >= self.capacity:
            self.refused += 1
            await ws.close(1013, f"at capacity: {self.capacity} of {self.capacity} slots busy")
            await self._notify()
            return
        session = FakeSession(str(hello.get("call_id")), hello["config"], hello)
        self.sessions.append(session)
        self.live += 1
        await ws.send(
            json.dumps(
                {
                    "type": "ready",
                    "session_id": f"s{len(self.sessions)}",
                    "slot": self.live - 1,
                    "sample_rate": 16000,
                    "frame_bytes": FRAME_BYTES,
                    "micro_turn_ms": 200,
                    "model": "fake",
                }
            )
        )
        await self._notify()
        seq = 0
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if len(message) != FRAME_BYTES:
                        await ws.send(json.dumps({"type": "error", "message": "bad frame size"}))
                        await ws.close(1003, "bad frame")
                        return
                    session.frames += 1
                    if self.drop_after is not None and session.frames >= self.drop_after:
                        await ws.send(json.dumps({"type": "error", "message": "simulated failure"}))
                        await ws.close(1011, "server error: simulated failure")
                        return
                    if seq not in self.skip:
                        await self._turn(ws, session, seq, message)
                    seq += 1
                else:
                    data = json.loads(message)
                    if data.get("type") == "event":
                        session.events.append((data["kind"], data["payload"]))
                    elif data.get("type") == "bye":
                        session.bye = True
                        await ws.close(1000, "bye")
                        return
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            session.closed = True
            session.close_code = ws.close_code
            self.live -= 1
            await self._notify()

    async def _turn(self, ws: ServerConnection, session: FakeSession, seq: int, frame: bytes) -> None:
        step = self.script(seq, session)
        t_ms = seq * 200
        if step.tool_call is not None:
            await ws.send(json.dumps({"type": "tool_call", "seq": seq, "t_ms": t_ms, **step.tool_call}))
        await ws.send(
            json.dumps({"type": "turn", "seq": seq, "t_ms": t_ms, "floor": step.floor, "text": step.text})
        )
        if step.audio == "echo":
            audio = frame
        elif step.audio == "silence":
            audio = bytes(FRAME_BYTES)
        else:
            audio = np.full(FRAME_BYTES // 2, int(step.audio), dtype="<i2").tobytes()
        await ws.send(audio)
        session.turns_sent += 1
