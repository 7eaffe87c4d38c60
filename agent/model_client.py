"""Asyncio client for one model-server session (ws://HOST:8765/session), one per call.

The protocol, as the model server speaks it:

1. client -> server, text: {"type": "hello", "call_id", "config" (the rendered agent prefix),
   optional "seed", "temperature", "top_p"};
2. server -> client, text: {"type": "ready", "session_id", "slot", "sample_rate": 16000,
   "frame_bytes": 6400, "micro_turn_ms": 200, "model"}, or a close: 1013 "at capacity: ..." when
   full, 1008 for a bad hello;
3. client -> server: binary frames of exactly 6400 bytes (3200 int16 LE samples, 200 ms at
   16 kHz), one per micro-turn in real time; text {"type": "event", "kind", "payload"};
   {"type": "bye"} to end (the server closes 1000);
4. server -> client: per micro-turn stepped for this call, text {"type": "turn", "seq", "t_ms",
   "floor", "text"} immediately followed by one binary message of 6400 bytes (the agent's next
   200 ms); {"type": "tool_call", "seq", "t_ms", "id", "name", "arguments" | "arguments_raw"};
   {"type": "error", "message"} then a close (1003 bad frame, 1008 protocol, 1011 server error).
   A micro-turn whose frame was late is skipped: no turn message at all.

`ModelClient.connect` does 1-2 and returns a client or raises `ModelRefused` (the server closed
the handshake: capacity, bad hello) or `ModelUnavailable` (no server, timeout, not the protocol).
Iterating the client yields `Turn` (its audio paired in), `ToolCall`, `ServerError` and, last,
`Closed` with the close code and reason. A server that breaks the protocol (a turn without its
audio, audio of the wrong size, non-JSON) gets closed with 1002 and shows up as a `ServerError`
then `Closed`. Unknown message types are counted and skipped. This module knows nothing of
telephony, agents or what the model says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any, AsyncIterator, Optional, Union

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SAMPLES = 3200
FRAME_BYTES = 2 * FRAME_SAMPLES
MICRO_TURN_MS = 200
FLOORS = ("listen", "backchannel", "speak", "yield")
EVENT_KINDS = ("tool_result", "tool_error", "tool_pending", "timer", "dtmf", "system", "caller_hangup")
MAX_MESSAGE_BYTES = 1 << 20


class ModelClientError(Exception):
    """Base of the errors this client raises."""


class ModelUnavailable(ModelClientError):
    """The model server could not be reached, timed out, or does not speak the protocol."""


class ModelRefused(ModelClientError):
    """The model server closed the session during the handshake (1013 at capacity, 1008 bad hello)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"model server refused the session ({code}: {reason or 'no reason'})")
        self.code = code
        self.reason = reason


class ModelConnectionClosed(ModelClientError):
    """Sending on a session that is already closed."""


@dataclasses.dataclass(frozen=True)
class Hello:
    call_id: str
    config: str
    seed: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None

    def to_json(self) -> str:
        msg: dict[str, Any] = {"type": "hello", "call_id": self.call_id, "config": self.config}
        for key in ("seed", "temperature", "top_p"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        return json.dumps(msg)


@dataclasses.dataclass(frozen=True)
class Ready:
    session_id: str
    slot: int
    sample_rate: int
    frame_bytes: int
    micro_turn_ms: int
    model: str


@dataclasses.dataclass(frozen=True)
class Turn:
    seq: int
    t_ms: int
    floor: str
    text: str
    audio: np.ndarray  # int16, FRAME_SAMPLES, 16 kHz: the agent's next 200 ms
    frame: int = -1  # which caller frame (0-based, in sending order) this micro-turn read; -1 unknown


@dataclasses.dataclass(frozen=True)
class ToolCall:
    seq: int
    t_ms: int
    id: str
    name: str
    arguments: Optional[dict]  # None when the model's arguments were not a JSON object
    arguments_raw: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ServerError:
    message: str


@dataclasses.dataclass(frozen=True)
class Closed:
    code: int
    reason: str


ModelMessage = Union[Turn, ToolCall, ServerError, Closed]


class _ProtocolViolation(Exception):
    pass


def _closed_of(ws: ClientConnection, exc: Optional[ConnectionClosed] = None) -> Closed:
    frame = (exc.rcvd if exc is not None else None) or ws.protocol.close_rcvd or ws.protocol.close_sent
    if frame is None:
        return Closed(1006, "connection lost")
    return Closed(int(frame.code), frame.reason)


def _int(data: dict, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ProtocolViolation(f"{data.get('type')} message without an integer {key!r}")
    return value


class ModelClient:
    """One open model-server session. Use `ModelClient.connect(...)`."""

    def __init__(self, ws: ClientConnection, ready: Ready) -> None:
        self._ws = ws
        self.ready = ready
        self.frames_sent = 0
        self.events_sent = 0
        self.turns = 0
        self.tool_calls = 0
        self.unknown_messages = 0
        self._bye_sent = False

    @classmethod
    async def connect(cls, url: str, hello: Hello, *, timeout: float = 5.0) -> "ModelClient":
        """Open a session: hello, then wait for ready (both within `timeout` seconds)."""
        try:
            ws = await asyncio.wait_for(
                connect(
                    url, max_size=MAX_MESSAGE_BYTES, open_timeout=None, close_timeout=2.0, compression=None
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise ModelUnavailable(f"no model server answered at {url} within {timeout:g} s") from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise ModelUnavailable(f"cannot open a model session at {url}: {exc}") from None
        try:
            await ws.send(hello.to_json())
            raw = await asyncio.wait_for(ws.recv(), timeout)
            ready = cls._parse_ready(raw)
        except ConnectionClosed as exc:
            closed = _closed_of(ws, exc)
            raise ModelRefused(closed.code, closed.reason) from None
        except asyncio.TimeoutError:
            await ws.close(1002, "no ready message")
            raise ModelUnavailable(f"model server at {url} sent no ready within {timeout:g} s") from None
        except _ProtocolViolation as exc:
            await ws.close(1002, "protocol error")
            raise ModelUnavailable(f"model server at {url}: {exc}") from None
        return cls(ws, ready)

    @staticmethod
    def _parse_ready(raw: Union[str, bytes]) -> Ready:
        if not isinstance(raw, str):
            raise _ProtocolViolation("expected a ready message, got binary")
        try:
            data = json.loads(raw)
        except ValueError:
            raise _ProtocolViolation("ready message is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != "ready":
            raise _ProtocolViolation("expected a ready message")
        ready = Ready(
            session_id=str(data.get("session_id", "")),
            slot=_int(data, "slot"),
            sample_rate=_int(data, "sample_rate"),
            frame_bytes=_int(data, "frame_bytes"),
            micro_turn_ms=_int(data, "micro_turn_ms"),
            model=str(data.get("model", "")),
        )
        if (ready.sample_rate, ready.frame_bytes) != (SAMPLE_RATE, FRAME_BYTES):
            raise _ProtocolViolation(
                f"server speaks {ready.sample_rate} Hz in {ready.frame_bytes}-byte frames; "
                f"this client needs {SAMPLE_RATE} Hz in {FRAME_BYTES}-byte frames"
            )
        return ready

    # --- sending -----------------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._ws.state is State.OPEN

    async def send_frame(self, pcm: np.ndarray) -> None:
        """One 200 ms frame of caller audio: 3200 int16 samples at 16 kHz."""
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.shape != (FRAME_SAMPLES,):
            raise ValueError(
                f"send_frame: expected int16[{FRAME_SAMPLES}], got "
                f"{getattr(pcm, 'dtype', type(pcm).__name__)}{getattr(pcm, 'shape', '')}"
            )
        await self._send(pcm.astype("<i2", copy=False).tobytes())
        self.frames_sent += 1

    async def send_event(self, kind: str, payload: str) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"send_event: unknown kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
        if not isinstance(payload, str):
            raise ValueError("send_event: payload must be a string")
        await self._send(json.dumps({"type": "event", "kind": kind, "payload": payload}))
        self.events_sent += 1

    async def _send(self, message: Union[str, bytes]) -> None:
        try:
            await self._ws.send(message)
        except ConnectionClosed:
            raise ModelConnectionClosed("the model session is closed") from None

    async def close(self, timeout: float = 2.0) -> None:
        """Say bye and wait (up to `timeout`) for the server to close; then close ourselves.

        Whoever iterates the client sees the final `Closed`; do not call this while nobody does
        and the server keeps sending, or the wait runs into the timeout."""
        if not self._bye_sent and self.open:
            self._bye_sent = True
            try:
                await self._ws.send('{"type":"bye"}')
            except ConnectionClosed:
                pass
        try:
            await asyncio.wait_for(asyncio.shield(self._ws.wait_closed()), timeout)
        except asyncio.TimeoutError:
            await self._ws.close(1000, "bye")

    async def abort(self, code: int = 1000, reason: str = "") -> None:
        """Close at once, without waiting for the server's goodbye."""
        await self._ws.close(code, reason)

    # --- receiving ---------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[ModelMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[ModelMessage]:
        ws = self._ws
        while True:
            try:
                raw = await ws.recv()
                message = await self._decode(raw)
            except ConnectionClosed as exc:
                yield _closed_of(ws, exc)
                return
            except _ProtocolViolation as exc:
                logger.warning("model server broke the protocol: %s", exc)
                yield ServerError(f"protocol error: {exc}")
                await ws.close(1002, "protocol error")
                yield _closed_of(ws)
                return
            if message is not None:
                yield message

    async def _decode(self, raw: Union[str, bytes]) -> Optional[ModelMessage]:
        if not isinstance(raw, str):
            raise _ProtocolViolation(f"binary message of {len(raw)} bytes without a turn before it")
        try:
            data = json.loads(raw)
        except ValueError:
            raise _ProtocolViolation("text message is not JSON") from None
        if not isinstance(data, dict):
            raise _ProtocolViolation("text message is not a JSON object")
        kind = data.get("type")
        if kind == "turn":
            floor, text = data.get("floor"), data.get("text", "")
            if floor not in FLOORS or not isinstance(text, str):
                raise _ProtocolViolation("turn with an unknown floor or a non-string text")
            seq, t_ms = _int(data, "seq"), _int(data, "t_ms")
            audio = await self._ws.recv()
            if not isinstance(audio, bytes) or len(audio) != FRAME_BYTES:
                got = f"{len(audio)} bytes" if isinstance(audio, bytes) else "text"
                raise _ProtocolViolation(f"turn {seq} followed by {got}, not {FRAME_BYTES} bytes of audio")
            self.turns += 1
            pcm = np.frombuffer(audio, dtype="<i2").astype(np.int16)
            frame = data.get("frame", -1)
            frame = frame if isinstance(frame, int) and not isinstance(frame, bool) else -1
            return Turn(seq=seq, t_ms=t_ms, floor=floor, text=text, audio=pcm, frame=frame)
        if kind == "tool_call":
            args = data.get("arguments")
            raw_args = data.get("arguments_raw")
            self.tool_calls += 1
            return ToolCall(
                seq=_int(data, "seq"),
                t_ms=_int(data, "t_ms"),
                id=str(data.get("id", "")),
                name=str(data.get("name", "")),
                arguments=args if isinstance(args, dict) else None,
                arguments_raw=raw_args
                if isinstance(raw_args, str)
                else (None if isinstance(args, dict) else json.dumps(args)),
            )
        if kind == "error":
            return ServerError(str(data.get("message", "")))
        self.unknown_messages += 1
        logger.debug("skipped a model-server message of unknown type", extra={"type": str(kind)[:40]})
        return None
