"""A fake model server for tests: a real websocket server speaking the model-server protocol.

It answers every caller frame at once with a turn and 200 ms of agent audio (no tick clock), so
tests control timing by what they send. Its messages, checks and close codes are model.protocol's,
as the real server's are. What it says is scripted per session: `script(seq, session)` returns a
`Step` (floor, text, optional tool call, audio: the caller's frame echoed back, a constant level, or
silence). It can refuse sessions past `capacity` (1013), drop a session after some frames (an error,
then 1011, as a failing server), skip micro-turns (no turn message, like a late frame), and records
what each session received (hello, frame count, events, bye). One difference from the server: a
scripted tool call goes out before its turn (the server sends it after the turn's audio), which the
tests of end_call rely on. `wait_for(predicate, timeout)` waits on its state without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from model.protocol import (
    FRAME_BYTES,
    LEGACY_EVENT_KINDS,
    MAX_MESSAGE_BYTES,
    MICRO_TURN_MS,
    SAMPLE_RATE,
    Bye,
    CloseCode,
    Error,
    Event,
    Hello,
    ProtocolError,
    Ready,
    ToolCall,
    Turn,
    check_frame,
    parse_client_message,
)


@dataclasses.dataclass
class Step:
    floor: str = "listen"
    text: str = ""
    tool_call: dict | None = None  # {"id", "name", "arguments" | "arguments_raw"}
    audio: str | int = "echo"  # "echo" | "silence" | a constant int16 level


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
    close_code: int | None = None


def echo_listen(seq: int, session: FakeSession) -> Step:
    return Step("listen", audio="echo")


class FakeModelServer:
    def __init__(
        self,
        script: Callable[[int, FakeSession], Step] = echo_listen,
        *,
        capacity: int = 64,
        drop_after: int | None = None,
        skip: frozenset = frozenset(),
        events: tuple[str, ...] = LEGACY_EVENT_KINDS,
    ) -> None:
        self.script = script
        self.events = events  # the event kinds its Ready says the model reads
        self.capacity = capacity
        self.drop_after = drop_after
        self.skip = skip
        self.sessions: list[FakeSession] = []
        self.refused = 0
        self.live = 0
        self.url = ""
        self._changed = asyncio.Condition()
        self._server = None

    async def __aenter__(self) -> FakeModelServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=MAX_MESSAGE_BYTES, compression=None)
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
            raw = await ws.recv()
            hello = Hello.from_json(raw)
        except ConnectionClosed:
            return
        except ProtocolError as exc:
            await ws.close(CloseCode.POLICY_VIOLATION, str(exc))
            return
        if self.live >= self.capacity:
            self.refused += 1
            reason = f"at capacity: {self.capacity} of {self.capacity} slots busy"
            await ws.close(CloseCode.TRY_AGAIN_LATER, reason)
            await self._notify()
            return
        session = FakeSession(hello.call_id, hello.config, json.loads(raw))
        self.sessions.append(session)
        self.live += 1
        slot = self.live - 1
        ready = Ready(
            f"s{len(self.sessions)}", slot, SAMPLE_RATE, FRAME_BYTES, MICRO_TURN_MS, "fake", self.events
        )
        await ws.send(ready.to_json())
        await self._notify()
        seq = 0
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    try:
                        check_frame(message)
                    except ProtocolError as exc:  # dropped; the call goes on
                        await ws.send(Error(str(exc)).to_json())
                        continue
                    session.frames += 1
                    if self.drop_after is not None and session.frames >= self.drop_after:
                        await ws.send(Error("simulated failure").to_json())
                        await ws.close(CloseCode.INTERNAL_ERROR, "server error: simulated failure")
                        return
                    if seq not in self.skip:
                        await self._turn(ws, session, seq, message)
                    seq += 1
                else:
                    try:
                        data = parse_client_message(message)
                    except ProtocolError as exc:
                        await ws.send(Error(str(exc)).to_json())
                        continue
                    if isinstance(data, Event):
                        session.events.append((data.kind, data.payload))
                    elif isinstance(data, Bye):
                        session.bye = True
                        await ws.close(CloseCode.NORMAL, "bye")
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
        t_ms = seq * MICRO_TURN_MS
        if step.tool_call is not None:
            call = step.tool_call
            await ws.send(
                ToolCall(
                    seq, t_ms, call["id"], call["name"], call.get("arguments"), call.get("arguments_raw")
                ).to_json()
            )
        await ws.send(Turn(seq, t_ms, step.floor, step.text).to_json())
        if step.audio == "echo":
            audio = frame
        elif step.audio == "silence":
            audio = bytes(FRAME_BYTES)
        else:
            audio = np.full(FRAME_BYTES // 2, int(step.audio), dtype="<i2").tobytes()
        await ws.send(audio)
        session.turns_sent += 1
