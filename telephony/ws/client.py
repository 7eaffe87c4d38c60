"""Media-stream clients: the caller's side of a Twilio Media Stream or a native stream, over a real websocket.

`TwilioCallClient` plays Twilio's part (mu-law 8 kHz JSON media, marks echoed once played);
`NativeCallClient` the native protocol's (a JSON start, binary audio both ways, JSON events in).
Both send caller audio in the call's encoding (`send_audio`, int16 at `rate`) and keep what comes
back: the agent's audio in a playout buffer on the caller's clock (`t0`, set by `open`; each
packet is placed at its arrival or right after the previous one, and a `clear` drops what was
not played yet), events with their times, counters, and how the connection closed.

These are the mirror image of telephony/ws/serializers (which parse the caller's messages and
write the agent's, on the gateway side), so the messages are written here. A client talks to a
gateway over the public protocols only: it imports nothing from the gateway. `parley call`
(parley/call.py), `parley bench gateway` and the tests drive gateways with it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from telephony import g711

CHUNK_MS = 20  # caller audio per media message


class CallClient:
    """The caller's side of one media-stream call: sends audio, records what comes back.

    Received agent audio goes into a playout buffer on the caller's clock (`t0`, set by `open`);
    events (marks, clears, notices) are kept with their times; `closed` is (code, reason) once the
    connection is gone. `wait_for(predicate, timeout)` waits for any of that to change.
    """

    protocol = ""

    def __init__(
        self,
        url: str,
        agent: str,
        *,
        rate: int,
        encoding: str,
        clock: Callable[[], float] = time.monotonic,
        headers: dict | None = None,
    ) -> None:
        self.url = url
        self.headers = dict(
            headers or {}
        )  # on the websocket handshake (Authorization: Bearer <stream token>)
        self.agent = agent
        self.rate = rate
        self.encoding = encoding
        self.clock = clock
        self.t0 = 0.0
        self.ws: ClientConnection | None = None
        self.events: list[dict] = []
        self.counters: collections.Counter = collections.Counter()
        self.packet_sizes: collections.Counter = collections.Counter()
        self.packet_times: list[float] = []  # arrival of each agent packet, seconds after t0
        self.closed: tuple[int, str] | None = None
        self._agent = np.zeros(rate * 10, dtype=np.int16)
        self._cursor = 0  # playout position (samples) of the agent channel
        self._changed = asyncio.Condition()
        self._receiver: asyncio.Task | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def open(self, timeout: float = 10.0) -> CallClient:
        self.ws = await asyncio.wait_for(
            connect(self.url, compression=None, max_size=1 << 22, additional_headers=self.headers or None),
            timeout,
        )
        self.t0 = self.clock()
        self._receiver = asyncio.create_task(self._receive())
        for message in self.opening_messages():
            try:
                await self.ws.send(message)
            except ConnectionClosed:  # refused at once (capacity): `closed` says why
                break
        return self

    async def __aenter__(self) -> CallClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def stop(self) -> None:
        """Tell the gateway the caller hung up, then close."""
        if self.ws is not None and self.closed is None:
            try:
                await self.ws.send(self.stop_message())
            except ConnectionClosed:
                pass
        await self.close()

    async def close(self, timeout: float = 5.0) -> None:
        if self.ws is None:
            return
        try:
            await asyncio.wait_for(self.ws.close(), timeout)
        except TimeoutError:
            pass
        if self._receiver is not None:
            try:
                await asyncio.wait_for(self._receiver, timeout)
            except TimeoutError:
                self._receiver.cancel()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds (checked whenever something arrives); TimeoutError if not."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # --- sending -----------------------------------------------------------------------------------
    async def send_audio(self, pcm: np.ndarray) -> None:
        """Caller audio at `self.rate`, int16."""
        assert self.ws is not None
        await self.ws.send(self.audio_message(g711.encode(self.encoding, pcm)))
        self.counters["chunks_sent"] += 1

    async def send_raw(self, message: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(message)

    # --- what was heard ----------------------------------------------------------------------------
    @property
    def agent_audio(self) -> np.ndarray:
        return self._agent[: self._cursor].copy()

    def now_ms(self) -> int:
        return int(round((self.clock() - self.t0) * 1000))

    def _heard(self, pcm: np.ndarray) -> None:
        at = int(round((self.clock() - self.t0) * self.rate))
        start = max(self._cursor, at)
        end = start + pcm.size
        if end > self._agent.size:
            grown = np.zeros(max(end, 2 * self._agent.size), dtype=np.int16)
            grown[: self._agent.size] = self._agent
            self._agent = grown
        self._agent[start:end] = pcm
        self._cursor = end
        self.packet_times.append(self.clock() - self.t0)
        self.counters["agent_packets"] += 1
        self.packet_sizes[pcm.size] += 1

    def _cleared(self) -> None:
        now = int(round((self.clock() - self.t0) * self.rate))
        if self._cursor > now:  # drop what was queued but not yet played
            self._agent[now : self._cursor] = 0
            self.counters["samples_cleared"] += self._cursor - now
            self._cursor = now

    def _event(self, kind: str, **fields: Any) -> None:
        self.events.append(
            {"at_ms": self.now_ms(), "kind": kind, "after_packets": self.counters["agent_packets"], **fields}
        )
        self.counters[kind] += 1

    async def _receive(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                try:
                    await self.on_message(message)
                except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                    self.counters["bad_messages"] += 1
                    self._event("bad_message", error=str(exc)[:200])
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            frame = self.ws.protocol.close_rcvd or self.ws.protocol.close_sent
            self.closed = (frame.code, frame.reason) if frame is not None else (1006, "connection lost")
            self._event("closed", code=self.closed[0], reason=self.closed[1])
            async with self._changed:
                self._changed.notify_all()

    # --- protocol ----------------------------------------------------------------------------------
    def opening_messages(self) -> list[str]:
        raise NotImplementedError

    def stop_message(self) -> str:
        raise NotImplementedError

    def audio_message(self, payload: bytes) -> str | bytes:
        raise NotImplementedError

    async def on_message(self, message: str | bytes) -> None:
        raise NotImplementedError


class TwilioCallClient(CallClient):
    """Plays Twilio's part of a bidirectional Media Stream: mu-law 8 kHz, marks echoed when played."""

    protocol = "twilio"

    def __init__(self, url: str, agent: str, *, parameters: dict | None = None, **kwargs: Any) -> None:
        super().__init__(url, agent, rate=8000, encoding="mulaw", **kwargs)
        self.account_sid = "AC" + uuid.uuid4().hex
        self.call_sid = "CA" + uuid.uuid4().hex
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.parameters = {"agent": agent, **(parameters or {})}
        self._seq = 0
        self._chunk = 0
        self.stream_sids_seen: collections.Counter = collections.Counter()
        self._echoes: set[asyncio.Task] = set()

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def opening_messages(self) -> list[str]:
        connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.parameters,
                },
                "streamSid": self.stream_sid,
            }
        )
        return [connected, start]

    def audio_message(self, payload: bytes) -> str:
        self._chunk += 1
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str((self._chunk - 1) * CHUNK_MS),
                    "payload": base64.b64encode(payload).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    def stop_message(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )

    def dtmf_message(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def on_message(self, message: str | bytes) -> None:
        if not isinstance(message, str):
            raise ValueError("Twilio streams carry text only; got binary")
        data = json.loads(message)
        event = data.get("event")
        self.stream_sids_seen[data.get("streamSid")] += 1
        if event == "media":
            payload = base64.b64decode(data["media"]["payload"], validate=True)
            self._heard(g711.ulaw_decode(payload))
        elif event == "mark":
            name = data["mark"]["name"]
            self._event("mark", name=name)
            # Twilio echoes a mark once the audio sent before it has played; our playout buffer is
            # the agent channel, so the mark comes back when the clock reaches the cursor.
            delay = max(0.0, self._cursor / self.rate - (self.clock() - self.t0))
            asyncio.get_running_loop().call_later(delay, self._echo_mark, name)
        elif event == "clear":
            self._cleared()
            self._event("clear")
        else:
            raise ValueError(f"unexpected Twilio event {str(event)[:40]!r}")

    def _echo_mark(self, name: str) -> None:
        if self.ws is None or self.closed is not None:
            return
        message = json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )
        task = asyncio.ensure_future(self._send_quietly(message))
        self._echoes.add(task)
        task.add_done_callback(self._echoes.discard)

    async def _send_quietly(self, message: str) -> None:
        try:
            assert self.ws is not None
            await self.ws.send(message)
            self.counters["marks_echoed"] += 1
        except ConnectionClosed:
            pass


class NativeCallClient(CallClient):
    """The native protocol's client: a JSON start, binary audio both ways, JSON events in."""

    protocol = "native"

    def __init__(
        self,
        url: str,
        agent: str,
        *,
        rate: int = 16000,
        encoding: str = "pcm16",
        call_id: str | None = None,
        parameters: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, agent, rate=rate, encoding=encoding, **kwargs)
        self.call_id = call_id
        self.parameters = dict(parameters or {})
        self._odd = b""
        self.transcript: list[dict] = []

    def opening_messages(self) -> list[str]:
        msg: dict = {
            "type": "start",
            "agent": self.agent,
            "sample_rate": self.rate,
            "encoding": self.encoding,
        }
        if self.call_id:
            msg["call_id"] = self.call_id
        if self.parameters:
            msg["parameters"] = self.parameters
        return [json.dumps(msg)]

    def audio_message(self, payload: bytes) -> bytes:
        return payload

    def stop_message(self) -> str:
        return '{"type":"stop"}'

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if self.encoding == "pcm16":
                message = self._odd + message
                self._odd = message[-1:] if len(message) % 2 else b""
                message = message[: len(message) - len(self._odd)]
            self._heard(g711.decode(self.encoding, message))
            return
        data = json.loads(message)
        kind = str(data.get("type"))
        if kind == "clear":
            self._cleared()
            self._event("clear")
        elif kind == "transcript":
            self.transcript.append(
                {"at_ms": self.now_ms(), "t_ms": data.get("t_ms"), "text": data.get("text")}
            )
            self.counters["transcript"] += 1
        elif kind == "mark":
            self._event("mark", name=data.get("name"))
            assert self.ws is not None
            try:
                await self.ws.send(json.dumps({"type": "mark", "name": data.get("name")}))
            except ConnectionClosed:  # hanging up: no echo, but what the gateway sent before is still heard
                pass
        else:
            self._event(kind, **{k: v for k, v in data.items() if k != "type"})
