"""One call on the websocket media gateway: the `Leg` a websocket becomes.

`WebsocketCall` runs one accepted websocket from its start message to its close:

    websocket message -> Serializer.deserialize -> g711.decode_float -> ResampleStream(rate -> 16 kHz)
        -> Framer (3200 samples) -> handler.caller_frame
    handler -> play(16 kHz frame) -> ResampleStream(16 kHz -> rate) -> g711.encode -> Pacer
        -> 20 ms packets -> Serializer.serialize -> websocket

One resampler per direction, never cleared on a gap. Marks: `utterance_end()` notes how many whole
packets had been queued by then, and the mark goes out right after the last of them has been sent
(or dropped by the pacer); `interrupt()` clears the pacer, drops the audio the outbound resampler
still holds from before it (its 10 ms lookahead; its input is kept as context, never cleared), sends
`clear` and releases every mark still waiting (Twilio echoes marks at once after a clear). All
sends go through one lock, control messages ahead of the next audio packet, so a `clear` never
overtakes audio queued before it and audio queued after it is never cleared by it.

Malformed input is handled per the protocol (`Serializer.error_channel`): dropped and counted
(Twilio) or the call closed with the error's code and reason (native). The handler is whatever the
gateway's connector made (the agent's CallSession): this module knows nothing of the model, of
floors or of tools. Log messages carry no DTMF digits, audio or parameters.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping

import numpy as np
from starlette.websockets import WebSocket

from model.protocol import FRAME_SAMPLES, SAMPLE_RATE
from telephony import g711
from telephony.framer import Framer
from telephony.leg import (
    CallConnector,
    CallHandler,
    CallInfo,
    CallRefused,
    CloseCode,
    close_reason,
)
from telephony.pacer import Pacer
from telephony.resample import ResampleStream
from telephony.ws.serializers.base import (
    Audio,
    AudioOut,
    ClearOut,
    Connected,
    Dtmf,
    Mark,
    MarkOut,
    Notice,
    OutEvent,
    ProtocolError,
    Serializer,
    Start,
    Stop,
)
from telephony.ws.settings import Settings
from telephony.ws.signature import request_url, twilio_signature_valid

logger = logging.getLogger(__name__)

RUN_GRACE_S = 5.0  # how long the handler may take to finish once the caller's side is gone


@dataclasses.dataclass
class GatewayStats:
    """Gateway-wide counters, shared by every call (one event loop: no locking)."""

    calls_live: int = 0
    calls_total: int = 0
    calls_refused: int = 0
    caller_frames: int = 0  # 200 ms frames handed to handlers
    agent_frames: int = 0  # frames of agent audio queued for playback
    packets_out: int = 0  # 20 ms audio packets sent
    packets_dropped: int = 0  # by the pacer's one-frame bound
    underruns: int = 0  # the pacer ran dry mid-call (a late frame; the end of a call counts one)
    marks_sent: int = 0
    marks_echoed: int = 0  # marks the far end sent back (played)
    clears_sent: int = 0
    closes: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # by close code
    dropped_messages: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # by kind
    _changed: asyncio.Condition | None = dataclasses.field(default=None, repr=False, compare=False)

    def snapshot(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        out["closes"] = {str(k): v for k, v in sorted(self.closes.items())}
        out["dropped_messages"] = dict(sorted(self.dropped_messages.items()))
        return out

    async def changed(self) -> None:
        """Wake `wait_for` callers: calls started or ended."""
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (up to `timeout` s) until `predicate()` holds; re-checked whenever a call starts or ends."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)


class WebsocketCall:
    """A `Leg` over one websocket, and the loop that runs it (`serve`)."""

    def __init__(
        self,
        ws: WebSocket,
        serializer: Serializer,
        connector: CallConnector,
        settings: Settings,
        stats: GatewayStats,
    ) -> None:
        self._ws = ws
        self._ser = serializer
        self._connector = connector
        self._settings = settings
        self._stats = stats
        self._info: CallInfo | None = None
        self._handler: CallHandler | None = None
        # inbound chain
        self._in_rs: ResampleStream | None = None
        self._framer = Framer(FRAME_SAMPLES)
        self._odd = b""  # a PCM16 byte waiting for its other half
        # outbound chain
        self._out_rs: ResampleStream | None = None
        self._pacer: Pacer | None = None
        self._pacer_counted = False  # its counters are in the gateway's stats
        self._send_lock = asyncio.Lock()
        self._outbox: collections.deque[str | bytes] = collections.deque()
        self._tasks: set[asyncio.Task] = set()
        # marks: packets queued (whole), packets sent or dropped, marks waiting for their packet
        self._pushed_bytes = 0
        self._disposed = 0
        self._pending_marks: collections.deque[tuple[int, str]] = collections.deque()
        self._mark_seq = 0
        # lifecycle
        self._closing = False  # hang-up under way: no new audio
        self._closed = False  # close frame sent (or the socket is gone)
        self._caller_gone = False
        self._drops_logged = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # --- Leg ---------------------------------------------------------------------------------------
    @property
    def info(self) -> CallInfo:
        assert self._info is not None, "info is known once the start message has arrived"
        return self._info

    def play(self, frame: np.ndarray) -> None:
        if self._closing or self._caller_gone or self._pacer is None or self._out_rs is None:
            return
        self._stats.agent_frames += 1
        pcm = self._out_rs.push(frame, rate=SAMPLE_RATE)
        if not pcm.size:
            return
        payload = g711.encode(self.info.encoding, pcm)
        try:
            dropped = self._pacer.push(payload)
        except RuntimeError:  # the pacer stopped: its send failed, the socket is gone
            return
        self._pushed_bytes += len(payload)
        self._disposed += dropped
        self._stats.packets_dropped += dropped

    def utterance_end(self) -> None:
        if self._closed or self._pacer is None:
            return
        self._mark_seq += 1
        name = f"utterance-{self._mark_seq}"
        threshold = self._pushed_bytes // self._pacer.packet_bytes
        if threshold <= self._disposed and not self._pending_marks:
            self._control(MarkOut(name))
        else:
            self._pending_marks.append((threshold, name))

    def interrupt(self) -> None:
        if self._closed or self._pacer is None:
            return
        self._pacer.clear()
        if self._out_rs is not None:  # what soxr still holds is the cut utterance: never play it
            self._out_rs.discard_held()
        self._pushed_bytes = self._disposed = 0
        self._control(ClearOut())
        while self._pending_marks:
            self._control(MarkOut(self._pending_marks.popleft()[1]))

    def notify(self, kind: str, data: Mapping[str, object]) -> None:
        if not self._closed:
            self._control(Notice(kind, data))

    async def transfer(self, target: str) -> bool:
        if self._closed or self._ser.serialize(Notice("transfer", {"target": target})) is None:
            return False  # no event channel (Twilio): a transfer needs Twilio's REST API
        self._control(Notice("transfer", {"target": target}))
        return True

    async def hangup(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        drain = self._settings.hangup_drain_s
        if code == CloseCode.NORMAL and drain > 0 and self._pacer is not None and not self._caller_gone:
            try:
                await asyncio.wait_for(self._pacer.close(drain=True), drain)
            except TimeoutError:
                pass
        await self._close(code, reason)

    # --- the call ----------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run the accepted websocket until the call ends; never raises for bad input."""
        try:
            try:
                start = await asyncio.wait_for(self._await_start(), self._settings.start_timeout_s)
            except TimeoutError:
                await self._close(
                    CloseCode.POLICY_VIOLATION,
                    f"no start message within {self._settings.start_timeout_s:g} s",
                )
                return
            if start is None:
                return
            if not await self._open(start):
                return
            run_task = asyncio.create_task(self._run_handler())
            reason = "call closed"
            try:
                reason = await self._receive_loop() or reason
            finally:
                await self._finish(run_task, reason)
        except Exception:
            logger.exception("websocket call failed", extra={"call_id": self._call_id()})
            await self._close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await self._stop_pacer()
            for task in list(self._tasks):
                task.cancel()
            if not self._closed:
                await self._close(CloseCode.NORMAL, "call ended")

    async def _await_start(self) -> Start | None:
        while True:
            data = await self._receive()
            if data is None:
                return None
            try:
                event = self._ser.deserialize(data)
            except ProtocolError as exc:
                if await self._bad_input(exc):
                    return None
                continue
            if isinstance(event, Start):
                return event
            if isinstance(event, Stop):
                await self._close(CloseCode.NORMAL, "stopped before start")
                return None
            if isinstance(event, Audio) and self._ser.error_channel:
                await self._close(CloseCode.POLICY_VIOLATION, "audio before the start message")
                return None
            if not isinstance(event, Connected):
                self._count_drop("before_start")

    def _auth(self, parameters: dict) -> dict[str, str]:
        """What the call presented to authenticate itself (see `CallInfo.auth`); a stream token
        sent as the `token` parameter is taken out of the parameters."""
        auth = {"url": request_url(self._ws, self._settings.public_url)}
        for header in ("authorization", "x-twilio-signature"):
            value = self._ws.headers.get(header)
            if value:
                auth[header] = value
        token = parameters.pop("token", None)
        if token:
            auth["token"] = token
        twilio = self._settings.twilio_auth_token
        if twilio is not None and self._ser.name == "twilio":  # Twilio signs the handshake's URL alone
            signature = auth.get("x-twilio-signature")
            valid = twilio_signature_valid(twilio.get_secret_value(), auth["url"], (), signature)
            auth["twilio_signature"] = "valid" if valid else "invalid"
        return auth

    async def _open(self, start: Start) -> bool:
        agent = start.agent or self._connector.default_agent
        parameters = dict(start.parameters)
        auth = self._auth(parameters)
        self._info = CallInfo(
            call_id=uuid.uuid4().hex,
            protocol=self._ser.name,
            agent=agent,
            sample_rate=start.sample_rate,
            encoding=start.encoding,
            external_id=start.external_id,
            parameters=parameters,
            auth=auth,
        )
        # The caller's side is only read in whole frames: resample a frame at a time (cheaper).
        self._in_rs = ResampleStream(start.sample_rate, SAMPLE_RATE, min_out=FRAME_SAMPLES)
        self._out_rs = ResampleStream(SAMPLE_RATE, start.sample_rate)
        self._pacer = Pacer.for_encoding(self._send_packet, start.encoding, start.sample_rate)
        try:
            self._handler = await self._connector.open(self._info, self)
        except CallRefused as exc:
            self._stats.calls_refused += 1
            logger.info(
                "call %s refused: %d %s",
                self._info.call_id,
                exc.code,
                exc.reason,
                extra={"call_id": self._info.call_id, "code": exc.code, "reason": exc.reason, "agent": agent},
            )
            await self._close(exc.code, exc.reason)
            return False
        self._pacer.start()
        self.notify(
            "started",
            {
                "call_id": self._info.call_id,
                "agent": agent,
                "sample_rate": start.sample_rate,
                "encoding": start.encoding,
            },
        )
        logger.info(
            "call %s started (%s, agent %s)",
            self._info.call_id,
            self._ser.name,
            agent,
            extra={"call_id": self._info.call_id, "protocol": self._ser.name, "agent": agent},
        )
        return True

    async def _receive_loop(self) -> str | None:
        """Caller messages until the caller's side ends (returns why) or the call is closed."""
        handler = self._handler
        assert handler is not None and self._info is not None
        while True:
            data = await self._receive()
            if data is None:
                return "caller disconnected"
            try:
                event = self._ser.deserialize(data)
            except ProtocolError as exc:
                if await self._bad_input(exc):
                    return "protocol error"
                continue
            if isinstance(event, Audio):
                if event.track != "inbound":
                    self._count_drop("track")
                else:
                    await self._caller_audio(event.payload)
            elif isinstance(event, Dtmf):
                await handler.caller_dtmf(event.digits)
            elif isinstance(event, Mark):
                self._stats.marks_echoed += 1
            elif isinstance(event, Stop):
                self._caller_gone = True
                for frame in self._flush_caller_audio():
                    self._stats.caller_frames += 1
                    await handler.caller_frame(frame)
                return event.reason
            elif isinstance(event, Start):
                if (event.sample_rate, event.encoding) != (self._info.sample_rate, self._info.encoding):
                    reason = (
                        f"audio format change mid-call refused ({self._info.sample_rate} Hz "
                        f"{self._info.encoding} -> {event.sample_rate} Hz {event.encoding})"
                    )
                else:
                    reason = "a second start message mid-call"
                await self._close(CloseCode.POLICY_VIOLATION, reason)
                return "protocol error"
            # Connected after start: nothing to do

    async def _caller_audio(self, payload: bytes) -> None:
        assert self._info is not None and self._in_rs is not None and self._handler is not None
        if self._info.encoding == "pcm16":
            payload = self._odd + payload
            self._odd = payload[-1:] if len(payload) % 2 else b""
            payload = payload[: len(payload) - len(self._odd)]
        samples = g711.decode_float(self._info.encoding, payload)  # float32: what the resampler runs on
        for frame in self._framer.push(self._in_rs.push_float(samples)):
            self._stats.caller_frames += 1
            await self._handler.caller_frame(frame)

    def _flush_caller_audio(self) -> list[np.ndarray]:
        if self._in_rs is None:
            return []
        frames = self._framer.push(self._in_rs.flush())
        tail = self._framer.flush()
        return frames + ([tail] if tail is not None else [])

    async def _run_handler(self) -> None:
        assert self._handler is not None
        try:
            await self._handler.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call handler failed", extra={"call_id": self._call_id()})
            await self._close(CloseCode.INTERNAL_ERROR, "internal error in the call handler")
            return
        if not self._closing:
            await self.hangup(CloseCode.NORMAL, "call ended")

    async def _finish(self, run_task: asyncio.Task, reason: str) -> None:
        self._caller_gone = True
        handler = self._handler
        try:
            if handler is not None:
                await asyncio.wait_for(handler.caller_ended(reason), RUN_GRACE_S)
            await asyncio.wait_for(asyncio.shield(run_task), RUN_GRACE_S)
        except TimeoutError:
            logger.warning("call handler did not finish in time", extra={"call_id": self._call_id()})
            run_task.cancel()
        except Exception:
            logger.exception("call handler failed while ending", extra={"call_id": self._call_id()})
            run_task.cancel()

    # --- input helpers -----------------------------------------------------------------------------
    async def _receive(self) -> str | bytes | None:
        """The next message's data, or None once the socket is closed (by either side)."""
        if self._closed:
            return None
        try:
            message = await self._ws.receive()
        except (RuntimeError, OSError):
            self._closed = True
            return None
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1005)
            if not self._closed:  # the peer closed, or the websocket layer did (1009: too big)
                self._closed = True
                self.close_code, self.close_reason = code, message.get("reason") or ""
                if code == CloseCode.MESSAGE_TOO_BIG:
                    self._stats.closes[code] += 1
                    logger.warning(
                        "call %s closed: a message over %d bytes (1009)",
                        self._call_id(),
                        self._settings.max_message_bytes,
                        extra={"call_id": self._call_id()},
                    )
                else:
                    logger.info(
                        "call %s: the caller's side closed the websocket (%d)",
                        self._call_id(),
                        code,
                        extra={"call_id": self._call_id(), "code": code},
                    )
            return None
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is None:
            return None
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
        if size > self._settings.max_message_bytes:  # the server should already have refused it
            await self._close(
                CloseCode.MESSAGE_TOO_BIG,
                f"message of {size} bytes over the {self._settings.max_message_bytes} byte limit",
            )
            return None
        return data

    async def _bad_input(self, exc: ProtocolError) -> bool:
        """Drop-and-count or close, per protocol. True when the call was closed."""
        if self._ser.error_channel or exc.fatal:
            self._stats.dropped_messages[exc.kind] += 1
            await self._close(exc.code, exc.reason)
            return True
        self._count_drop(exc.kind)
        return False

    def _count_drop(self, kind: str) -> None:
        self._stats.dropped_messages[kind] += 1
        if self._drops_logged < self._settings.log_dropped_messages:
            self._drops_logged += 1
            logger.warning(
                "call %s: dropped a %s message (%s)",
                self._call_id(),
                self._ser.name,
                kind,
                extra={"call_id": self._call_id(), "kind": kind},
            )

    # --- output helpers ----------------------------------------------------------------------------
    def _control(self, event: OutEvent) -> None:
        """Queue a non-audio message; it goes out before the next audio packet."""
        message = self._ser.serialize(event)
        if message is None or self._closed:
            return
        if isinstance(event, MarkOut):
            self._stats.marks_sent += 1
        elif isinstance(event, ClearOut):
            self._stats.clears_sent += 1
        self._outbox.append(message)
        task = asyncio.get_running_loop().create_task(self._flush_outbox())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_outbox(self) -> None:
        async with self._send_lock:
            while self._outbox:
                await self._write(self._outbox.popleft())

    async def _send_packet(self, packet: bytes) -> None:
        """The pacer's send: queued control messages, the packet, then the marks it completes."""
        async with self._send_lock:
            while self._outbox:
                await self._write(self._outbox.popleft())
            message = self._ser.serialize(AudioOut(packet))
            assert message is not None
            if await self._write(message):  # a packet the socket no longer takes was not sent
                self._stats.packets_out += 1
            self._disposed += 1
            while self._pending_marks and self._pending_marks[0][0] <= self._disposed:
                name = self._pending_marks.popleft()[1]
                self._stats.marks_sent += 1
                await self._write(self._ser.serialize(MarkOut(name)))

    async def _write(self, message: str | bytes | None) -> bool:
        """Send one message; False when it did not go out (the socket is closed or went away)."""
        if self._closed or message is None:
            return False
        try:
            if isinstance(message, str):
                await self._ws.send_text(message)
            else:
                await self._ws.send_bytes(message)
        except Exception:  # the socket went away under us; the receive loop sees the disconnect
            self._closed = True
            return False
        return True

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closing = True
        await self._stop_pacer()
        self.notify("end", {"code": int(code), "reason": reason})
        await self._flush_outbox()
        if self._closed:
            return
        self._closed = True
        self.close_code, self.close_reason = int(code), close_reason(reason)
        self._stats.closes[int(code)] += 1
        try:
            await self._ws.close(int(code), self.close_reason)
        except Exception:
            pass
        logger.info(
            "call %s closed: %d %s",
            self._call_id(),
            int(code),
            self.close_reason,
            extra={"call_id": self._call_id(), "code": int(code), "reason": self.close_reason},
        )

    async def _stop_pacer(self) -> None:
        if self._pacer is None:
            return
        try:  # close() waits for a send in flight, which a client that stopped reading can hold up
            await asyncio.wait_for(self._pacer.close(), RUN_GRACE_S)
        except TimeoutError:
            logger.warning("pacer did not stop in time", extra={"call_id": self._call_id()})
        if not self._pacer_counted:  # stopping runs twice on some paths (close, then serve's finally)
            self._pacer_counted = True
            self._stats.underruns += self._pacer.stats.underruns

    def _call_id(self) -> str | None:
        return self._info.call_id if self._info is not None else None
