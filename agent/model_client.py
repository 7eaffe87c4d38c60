"""Asyncio client for one model-server session (ws://HOST:8765/session), one per call.

The contract is `model.protocol`; this is its client side. `ModelClient.connect` sends the hello
and waits for the ready, and returns a client or raises `ModelRefused` (the server closed the
handshake: 1013 at capacity, 1008 bad hello) or `ModelUnavailable` (no server, timeout, not the
protocol). Iterating the client yields `Turn` (the turn message with its audio paired in),
`ToolCall`, `ServerError` (the server dropped a message of ours; the call goes on) and, last,
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
from collections.abc import AsyncIterator

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from model import protocol
from model.protocol import (
    EVENT_KINDS,
    FRAME_BYTES,
    FRAME_SAMPLES,
    MAX_MESSAGE_BYTES,
    Bye,
    CloseCode,
    Event,
    Hello,
    ProtocolError,
    Ready,
    ToolCall,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Closed",
    "Hello",
    "ModelClient",
    "ModelClientError",
    "ModelConnectionClosed",
    "ModelMessage",
    "ModelRefused",
    "ModelUnavailable",
    "Ready",
    "ServerError",
    "ToolCall",
    "Turn",
]


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
class Turn:
    """A `protocol.Turn` with the audio that followed it."""

    seq: int
    t_ms: int
    floor: str
    text: str
    audio: np.ndarray  # int16, FRAME_SAMPLES, 16 kHz: the agent's next 200 ms
    frame: int = -1  # which caller frame (0-based, in sending order) this micro-turn read; -1 unknown


@dataclasses.dataclass(frozen=True)
class ServerError:
    """A `protocol.Error` from the server, or a protocol violation of the server's (then closed)."""

    message: str


@dataclasses.dataclass(frozen=True)
class Closed:
    code: int
    reason: str


ModelMessage = Turn | ToolCall | ServerError | Closed


def _closed_of(ws: ClientConnection, exc: ConnectionClosed | None = None) -> Closed:
    frame = (exc.rcvd if exc is not None else None) or ws.protocol.close_rcvd or ws.protocol.close_sent
    if frame is None:
        return Closed(CloseCode.ABNORMAL, "connection lost")
    return Closed(int(frame.code), frame.reason)


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
    async def connect(cls, url: str, hello: Hello, *, timeout: float = 5.0) -> ModelClient:
        """Open a session: hello, then wait for ready (both within `timeout` seconds)."""
        try:
            ws = await asyncio.wait_for(
                connect(
                    url, max_size=MAX_MESSAGE_BYTES, open_timeout=None, close_timeout=2.0, compression=None
                ),
                timeout,
            )
        except TimeoutError:
            raise ModelUnavailable(f"no model server answered at {url} within {timeout:g} s") from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise ModelUnavailable(f"cannot open a model session at {url}: {exc}") from None
        try:
            await ws.send(hello.to_json())
            raw = await asyncio.wait_for(ws.recv(), timeout)
            ready = Ready.from_json(raw)
        except ConnectionClosed as exc:
            closed = _closed_of(ws, exc)
            raise ModelRefused(closed.code, closed.reason) from None
        except TimeoutError:
            await ws.close(CloseCode.PROTOCOL_ERROR, "no ready message")
            raise ModelUnavailable(f"model server at {url} sent no ready within {timeout:g} s") from None
        except ProtocolError as exc:
            await ws.close(CloseCode.PROTOCOL_ERROR, "protocol error")
            raise ModelUnavailable(f"model server at {url}: {exc}") from None
        return cls(ws, ready)

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
        await self._send(Event(kind, payload).to_json())
        self.events_sent += 1

    async def _send(self, message: str | bytes) -> None:
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
                await self._ws.send(Bye().to_json())
            except ConnectionClosed:
                pass
        try:
            await asyncio.wait_for(asyncio.shield(self._ws.wait_closed()), timeout)
        except TimeoutError:
            await self._ws.close(CloseCode.NORMAL, "bye")

    async def abort(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
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
            except ProtocolError as exc:
                logger.warning("model server broke the protocol: %s", exc)
                yield ServerError(f"protocol error: {exc}")
                await ws.close(CloseCode.PROTOCOL_ERROR, "protocol error")
                yield _closed_of(ws)
                return
            if message is not None:
                yield message

    async def _decode(self, raw: str | bytes) -> ModelMessage | None:
        if not isinstance(raw, str):
            raise ProtocolError(f"binary message of {len(raw)} bytes without a turn before it")
        message = protocol.parse_server_message(raw)
        if isinstance(message, protocol.Turn):
            audio = await self._ws.recv()
            if not isinstance(audio, bytes) or len(audio) != FRAME_BYTES:
                got = f"{len(audio)} bytes" if isinstance(audio, bytes) else "text"
                raise ProtocolError(f"turn {message.seq} followed by {got}, not {FRAME_BYTES} bytes of audio")
            self.turns += 1
            pcm = np.frombuffer(audio, dtype="<i2").astype(np.int16)
            return Turn(message.seq, message.t_ms, message.floor, message.text, pcm, message.frame)
        if isinstance(message, ToolCall):
            self.tool_calls += 1
            return message
        if isinstance(message, protocol.Error):
            return ServerError(message.message)
        self.unknown_messages += 1
        kind = json.loads(raw).get("type")  # a JSON object: parse_server_message checked
        logger.debug("skipped a model-server message of unknown type", extra={"type": str(kind)[:40]})
        return None
