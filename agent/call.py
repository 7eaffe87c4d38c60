"""`parley call`: place a call to a gateway from a WAV file, as a real websocket client, and record it.

    parley call --agent support --wav caller.wav [--url ws://127.0.0.1:8080] \
                [--protocol twilio|native] --out call.wav

The caller's WAV (any rate, 8/16/24/32-bit PCM, mono or stereo) is resampled to the protocol's
rate (Twilio: mu-law 8 kHz; native: PCM16 at 16 kHz by default) and streamed in real time in
20 ms chunks; the client keeps listening `linger_s` seconds after the WAV ends (or until the
gateway hangs up), then says stop. It writes a two-channel WAV at the protocol's rate (caller left,
agent right) in which the agent's audio sits where it was heard: each packet is placed at its
arrival time on the caller's clock, or right after the previous packet if that is later, as a
phone's playout buffer would; a `clear` drops audio not yet played. Next to it goes
`<out>.timeline.json`: marks, clears, transcript and other events with times, counters, and how
the call was closed.

`TwilioCallClient` and `NativeCallClient` are the two protocol clients, usable on their own (the
tests drive the gateway with them). This module talks to the gateway over its public protocols
only: it imports nothing from the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import logging
import time
import uuid
import wave
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from telephony import g711
from telephony.resample import ResampleStream

logger = logging.getLogger(__name__)

CHUNK_MS = 20
DEFAULT_URL = "ws://127.0.0.1:8080"
PATHS = {"twilio": "/twilio", "native": "/stream"}


def call_url(url: Optional[str], protocol: str) -> str:
    """`url` with the protocol's path when it has none (ws://host:port -> ws://host:port/twilio)."""
    base = url or DEFAULT_URL
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"--url {base!r} must be a ws:// or wss:// URL")
    return base if parts.path not in ("", "/") else base.rstrip("/") + PATHS[protocol]


def read_wav(path: Union[str, Path]) -> tuple[np.ndarray, int]:
    """A PCM WAV file as mono int16 samples and its rate."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16  # sign-extend, keep 16 bits
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV files are not supported")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return np.clip(samples, -32768, 32767).astype(np.int16), rate


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    stream = ResampleStream(in_rate, out_rate)
    return np.concatenate([stream.push(pcm), stream.flush()])


def write_stereo_wav(path: Union[str, Path], left: np.ndarray, right: np.ndarray, rate: int) -> None:
    n = max(left.size, right.size)
    frames = np.zeros((n, 2), dtype="<i2")
    frames[: left.size, 0] = left
    frames[: right.size, 1] = right
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames.tobytes())


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
        headers: Optional[dict] = None,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})  # on the websocket handshake (Authorization: Bearer <stream token>)
        self.agent = agent
        self.rate = rate
        self.encoding = encoding
        self.clock = clock
        self.t0 = 0.0
        self.ws: Optional[ClientConnection] = None
        self.events: list[dict] = []
        self.counters: collections.Counter = collections.Counter()
        self.packet_sizes: collections.Counter = collections.Counter()
        self.packet_times: list[float] = []  # arrival of each agent packet, seconds after t0
        self.closed: Optional[tuple[int, str]] = None
        self._agent = np.zeros(rate * 10, dtype=np.int16)
        self._cursor = 0  # playout position (samples) of the agent channel
        self._changed = asyncio.Condition()
        self._receiver: Optional[asyncio.Task] = None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def open(self, timeout: float = 10.0) -> "CallClient":
        self.ws = await asyncio.wait_for(
            connect(self.url, compression=None, max_size=1 << 22, additional_headers=self.headers or None), timeout
        )
        self.t0 = self.clock()
        self._receiver = asyncio.create_task(self._receive())
        for message in self.opening_messages():
            try:
                await self.ws.send(message)
            except ConnectionClosed:  # refused at once (capacity): `closed` says why
                break
        return self

    async def __aenter__(self) -> "CallClient":
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
        except asyncio.TimeoutError:
            pass
        if self._receiver is not None:
            try:
                await asyncio.wait_for(self._receiver, timeout)
            except asyncio.TimeoutError:
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

    async def send_raw(self, message: Union[str, bytes]) -> None:
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

    def audio_message(self, payload: bytes) -> Union[str, bytes]:
        raise NotImplementedError

    async def on_message(self, message: Union[str, bytes]) -> None:
        raise NotImplementedError


class TwilioCallClient(CallClient):
    """Plays Twilio's part of a bidirectional Media Stream: mu-law 8 kHz, marks echoed when played."""

    protocol = "twilio"

    def __init__(self, url: str, agent: str, *, parameters: Optional[dict] = None, **kwargs: Any) -> None:
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

    async def on_message(self, message: Union[str, bytes]) -> None:
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
        call_id: Optional[str] = None,
        parameters: Optional[dict] = None,
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

    async def on_message(self, message: Union[str, bytes]) -> None:
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


async def place_call(
    agent: str,
    wav: Union[str, Path],
    out: Union[str, Path],
    *,
    url: Optional[str] = None,
    protocol: str = "twilio",
    linger_s: float = 3.0,
    native_rate: int = 16000,
    native_encoding: str = "pcm16",
    token: Optional[str] = None,
    parameters: Optional[dict] = None,
) -> dict:
    """Stream `wav` to the gateway as a caller in real time, record the call, return a summary.

    Writes `out` (two-channel WAV, caller left, agent right) and `out` with `.timeline.json`.
    `token` (a stream token) goes on the handshake as `Authorization: Bearer`; `parameters` (e.g.
    the dialled `number`) go in the start message.
    """
    if protocol not in PATHS:
        raise ValueError(f"protocol {protocol!r} must be 'twilio' or 'native'")
    target = call_url(url, protocol)
    pcm, wav_rate = read_wav(wav)
    client: CallClient
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if protocol == "twilio":
        client = TwilioCallClient(target, agent, parameters=parameters, headers=headers)
    else:
        client = NativeCallClient(
            target, agent, rate=native_rate, encoding=native_encoding, parameters=parameters, headers=headers
        )
    caller = resample(pcm, wav_rate, client.rate)
    # A phone line never goes quiet on the wire: after the WAV, the caller's side keeps sending
    # silence for `linger_s` while we listen to the agent.
    speech_samples = caller.size
    caller = np.concatenate([caller, np.zeros(int(linger_s * client.rate), np.int16)])
    step = client.rate * CHUNK_MS // 1000
    n_chunks = -(-caller.size // step)
    caller = np.concatenate([caller, np.zeros(n_chunks * step - caller.size, np.int16)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        await client.open()
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionError(f"cannot reach the gateway at {target}: {exc}") from None
    started = time.monotonic()
    sent = 0
    try:
        for i in range(n_chunks):
            delay = client.t0 + i * CHUNK_MS / 1000 - client.clock()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of the caller's audio, not synchronisation
            if client.closed is not None:
                break
            await client.send_audio(caller[i * step : (i + 1) * step])
            sent = i + 1
        if client.closed is None:
            try:
                await client.wait_for(lambda: client.closed is not None, min(linger_s, 0.5))
            except asyncio.TimeoutError:
                pass
    except ConnectionClosed:
        pass
    finally:
        await client.stop()
    duration = time.monotonic() - started
    caller_heard = caller[: sent * step]
    agent_heard = client.agent_audio
    write_stereo_wav(out, caller_heard, agent_heard, client.rate)
    timeline_path = out.with_suffix(".timeline.json")
    close_code, close_reason = client.closed or (None, None)
    summary = {
        "agent": agent,
        "protocol": protocol,
        "url": target,
        "out": str(out),
        "timeline": str(timeline_path),
        "sample_rate": client.rate,
        "caller_seconds": round(min(caller_heard.size, speech_samples) / client.rate, 3),
        "line_seconds": round(caller_heard.size / client.rate, 3),
        "agent_seconds": round(agent_heard.size / client.rate, 3),
        "agent_packets": client.counters["agent_packets"],
        # When the agent's first and last packets arrived (s after the call opened): the first is
        # the answer latency, and the span between them is what the packet count should cover.
        "first_agent_s": round(client.packet_times[0], 3) if client.packet_times else None,
        "last_agent_s": round(client.packet_times[-1], 3) if client.packet_times else None,
        "marks": client.counters["mark"],
        "clears": client.counters["clear"],
        "close_code": close_code,
        "close_reason": close_reason,
        "duration_s": round(duration, 3),
    }
    record = {
        "summary": summary,
        "counters": dict(client.counters),
        "packet_sizes": {str(k): v for k, v in sorted(client.packet_sizes.items())},
        "events": client.events,
        "transcript": getattr(client, "transcript", []),
    }
    timeline_path.write_text(json.dumps(record, indent=1))
    return summary
