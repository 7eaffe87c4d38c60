"""One SIP call inside a worker: `SipLeg`, the `telephony.leg.Leg` an INVITE becomes, and `SipCall`,
its pjsua2 Call.

`SipLeg.serve()` runs the call from an admitted INVITE to its end, all on the worker's event loop
(the thread that also polls pjsua2, so every SIP callback and every pjsua2 call happens there):

    connector.open(info, leg) -> CallRefused: answer 404 / 503 / 502 / 500 and stop
    answer 200 (SDP: the offer's first codec among PCMU, PCMA, G722)
    media active -> the call's audio <-> a pooled CallMedia (16 kHz: caller in 200 ms frames,
                    agent out in 40 ms pieces from a small jitter buffer; telephony/sip/media.py)
    caller frames, DTMF (RFC 4733 or SIP INFO), the hang-up -> one queue -> handler, in order
    handler.run() concurrently; agent audio -> play() -> CallMedia buffer -> the bridge -> RTP

A translation line's leg can place a call (`telephony.leg.Dialer`): `dial(number, policy,
ring_timeout_s)` hands the request to its worker, which checks the number and sends the INVITE
(`telephony.sip.dial.DialedSipLeg`: the same leg, outbound, served by `_run` once answered).

Agent side: `hangup()` lets queued audio play (up to `hangup_drain_s`) then sends BYE;
`transfer(target)` sends a blind REFER to `transfer_uri` and returns whether the far end accepted
it (202) within `transfer_timeout_s` (the session then ends the call). `utterance_end` and
`notify` have no SIP counterpart; `interrupt` drops the queued agent frames at once.

pjsua2 rules kept here: the `SipCall` is dropped by everything that holds it inside its
DISCONNECTED callback (its slot is reused at once, and a late free would hang up the next call);
callbacks never let an exception escape into C++. Log lines carry ids, codes and counters only:
no numbers, digits or audio.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pjsua2 as pj

from model.protocol import FRAME_SAMPLES
from telephony.framer import Framer
from telephony.leg import (
    CallConnector,
    CallHandler,
    CallInfo,
    CallRefused,
    CloseCode,
    DialedLeg,
    DialFailed,
    NumberPolicy,
)
from telephony.sip.media import CHUNK_MS, CallMedia
from telephony.sip.settings import SipSettings

logger = logging.getLogger(__name__)

# The worker's dialling for a leg: (the leg, number, policy, ring timeout) -> the answered leg.
Dialing = Callable[["SipLeg", str, NumberPolicy, float], Awaitable[DialedLeg]]

RUN_GRACE_S = 5.0  # how long the handler may take to finish once the caller's side is gone
REFUSALS = {  # close code of a CallRefused -> SIP response
    CloseCode.UNKNOWN_AGENT: (404, "Not Found"),
    CloseCode.UNAUTHORIZED: (403, "Forbidden"),
    CloseCode.TRY_AGAIN_LATER: (503, "Service Unavailable"),
    CloseCode.GOING_AWAY: (503, "Service Unavailable"),
    CloseCode.BAD_GATEWAY: (502, "Bad Gateway"),
}


def op(code: int = 200, reason: str = "", headers: tuple[tuple[str, str], ...] = ()) -> pj.CallOpParam:
    prm = pj.CallOpParam(True)
    prm.statusCode = code
    if reason:
        prm.reason = reason
    for name, value in headers:
        h = pj.SipHeader()
        h.hName, h.hValue = name, value
        prm.txOption.headers.append(h)
    return prm


def _guard(method: Callable) -> Callable:
    """pjsua2 callbacks: log, never raise into C++."""

    def wrapper(self, *args):
        try:
            method(self, *args)
        except Exception:
            logger.exception("pjsua2 callback %s failed", method.__name__)

    wrapper.__name__ = method.__name__
    return wrapper


class SipCall(pj.Call):
    """A pjsua2 call. The worker holds it (by pjsua call id) until its DISCONNECTED callback, when
    `on_disconnected` drops it; while a `SipLeg` runs it, the leg gets its callbacks."""

    def __init__(self, account: pj.Account, call_id: int, on_disconnected: Callable[[SipCall], None]) -> None:
        super().__init__(account, call_id)
        self.leg: SipLeg | None = None
        self._on_disconnected = on_disconnected

    @_guard
    def onCallState(self, prm) -> None:
        ci = self.getInfo()
        if self.leg is not None:
            self.leg.on_state(ci)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.leg = None
            self._on_disconnected(self)

    @_guard
    def onCallMediaState(self, prm) -> None:
        if self.leg is not None:
            self.leg.on_media(self)

    @_guard
    def onStreamDestroyed(self, prm) -> None:
        if self.leg is not None:
            self.leg.on_stream_stats(self.getStreamStat(prm.streamIdx))

    @_guard
    def onDtmfDigit(self, prm) -> None:
        if self.leg is not None:
            self.leg.on_dtmf(str(prm.digit))

    @_guard
    def onCallTransferRequest(self, prm) -> None:
        prm.statusCode = 603  # a caller's REFER would make pjsua place a call: never (no outbound calls)

    @_guard
    def onCallReplaceRequest(self, prm) -> None:
        prm.statusCode = 603  # INVITE with Replaces: nobody takes over a call

    @_guard
    def onCallTsxState(self, prm) -> None:
        # The final response to our REFER: pjsua2 reports a transfer's progress only from the
        # far end's NOTIFYs, never the 202 itself (unless the subscription was suppressed).
        if self.leg is None or prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState.tsx
        if tsx.role == pj.PJSIP_ROLE_UAC and tsx.method == "REFER" and tsx.statusCode >= 200:
            self.leg.on_transfer_status(int(tsx.statusCode), True)

    @_guard
    def onCallTransferStatus(self, prm) -> None:
        if self.leg is not None:
            self.leg.on_transfer_status(int(prm.statusCode), bool(prm.finalNotify))
        prm.cont = not prm.finalNotify


@dataclasses.dataclass
class LegRecord:
    """What a call leaves behind, for the worker's counters and the call_end event."""

    call_id: str
    agent: str
    trunk: str | None
    codec: str | None = None
    answered: bool = False
    sip_status: int | None = None  # the final response, when the call was refused
    direction: str = "inbound"  # "outbound": a leg Parley dialled (a translation line's party B)
    dial: str | None = None  # outbound: answered | busy | rejected | no_answer | unavailable | cancelled
    end_by: str | None = None  # "caller" (the far end) | "agent"
    end_reason: str = ""
    transfer: str | None = None  # "accepted" | "refused" | "timeout"
    dtmf: int = 0
    duration_s: float = 0.0
    caller_frames: int = 0  # 200 ms frames from the bridge
    caller_frames_to_model: int = 0
    agent_frames: int = 0  # 200 ms frames the model sent
    agent_audio_ms: int = 0  # agent audio the bridge played
    agent_dropped_ms: int = 0  # agent audio dropped (buffer full)
    agent_cleared_ms: int = 0  # agent audio dropped by barge-in
    agent_underrun_ms: int = 0  # silence where agent audio was due (late model frames)
    rtp: dict = dataclasses.field(default_factory=dict)


class SipLeg:
    """A `Leg` over one pjsua2 call and one pooled CallMedia."""

    def __init__(
        self,
        call: SipCall,
        info: CallInfo,
        *,
        settings: SipSettings,
        connector: CallConnector | None,
        media: CallMedia,
        caller_host: str | None,
        trunk: str | None,
        on_done: Callable[[SipLeg], None],
        dialer: Dialing | None = None,
    ) -> None:
        self._call: SipCall | None = call
        call.leg = self
        self._info = info
        self._settings = settings
        self._connector = connector
        self.media = media
        self._caller_host = caller_host
        self._on_done = on_done
        self._dialer = dialer
        self._finished = False
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue = asyncio.Queue()
        self._handler: CallHandler | None = None
        self._framer = Framer(FRAME_SAMPLES)
        self._answered = False
        self._media_on = False
        self._caller_gone = False
        self._hanging_up = False
        self._drained: asyncio.Future | None = None
        self._xfer: asyncio.Future | None = None
        self._side_task: asyncio.Future | None = None  # a hang-up started by a timer
        self._t0 = time.monotonic()
        self._t_answer: float | None = None
        self.record = LegRecord(info.call_id, info.agent, trunk, codec=info.parameters.get("codec"))

    # --- Leg -------------------------------------------------------------------------------------
    @property
    def info(self) -> CallInfo:
        return self._info

    def play(self, frame: np.ndarray) -> None:
        if self._hanging_up or self._caller_gone:
            return
        self.record.agent_frames += 1
        for whole in self._framer.push(np.asarray(frame, dtype=np.int16)):
            self.media.push(whole.astype("<i2", copy=False).tobytes())

    def utterance_end(self) -> None:
        pass  # SIP has no marks: the audio simply stops

    def interrupt(self) -> None:
        self.media.clear()
        self._framer.clear()

    def notify(self, kind: str, data: Any) -> None:
        pass  # no event channel to the far end

    async def transfer(self, target: str) -> bool:
        call = self._call
        if call is None or self._caller_gone or self._hanging_up:
            return False
        uri = self._settings.transfer_uri.format(number=target, host=self._caller_host or "invalid")
        self._xfer = self._loop.create_future()
        try:
            call.xfer(uri, op())
        except pj.Error as exc:
            logger.warning(
                "call %s: REFER not sent (%s)",
                self._info.call_id,
                exc.reason,
                extra={"call_id": self._info.call_id},
            )
            self.record.transfer = "refused"
            return False
        del call
        try:
            accepted = await asyncio.wait_for(self._xfer, self._settings.transfer_timeout_s)
        except TimeoutError:
            accepted = False
            self.record.transfer = "timeout"
        else:
            self.record.transfer = "accepted" if accepted else "refused"
        logger.info(
            "call %s: transfer %s",
            self._info.call_id,
            self.record.transfer,
            extra={"call_id": self._info.call_id, "transfer": self.record.transfer},
        )
        return accepted

    async def dial(self, number: str, policy: NumberPolicy, ring_timeout_s: float) -> DialedLeg:
        """Another party, reached by this leg's worker through the outbound trunk (Dialer)."""
        if self._dialer is None or self._caller_gone or self._hanging_up:
            raise DialFailed("unavailable", "this call cannot place another")
        return await self._dialer(self, number, policy, ring_timeout_s)

    async def hangup(self, code: int, reason: str) -> None:
        if self._hanging_up:
            return
        self._hanging_up = True
        drain = self._settings.hangup_drain_s
        if code == CloseCode.NORMAL and drain > 0 and self._media_on and not self._caller_gone:
            deadline = self._loop.time() + drain
            self._drained = self._loop.create_future()
            if self.media.watch_drain(self._port_drained):
                self._drained.set_result(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), drain)
                # the last piece pulled is still on its way through the bridge
                await asyncio.sleep(max(0.0, min(2 * CHUNK_MS / 1000, deadline - self._loop.time())))
            except TimeoutError:
                pass
        self.media.stop_playing()
        if self.record.end_by is None:
            self.record.end_by, self.record.end_reason = "agent", reason
        self._sip_hangup(200 if self._answered else REFUSALS.get(code, (500, ""))[0])

    # --- the call ----------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run the call from the admitted INVITE to its end; never raises."""
        assert self._connector is not None
        try:
            try:
                handler = await self._connector.open(self._info, self)
            except CallRefused as exc:
                status, text = REFUSALS.get(exc.code, (500, "Server Internal Error"))
                logger.info(
                    "call %s refused: %d (%s)",
                    self._info.call_id,
                    status,
                    exc.reason,
                    extra={"call_id": self._info.call_id, "code": status},
                )
                self.record.sip_status = status
                self._sip_answer(status, text)
                return
            self._handler = handler
            if self._caller_gone:  # cancelled while the model session opened
                await self._end_handler(None, "caller cancelled")
                return
            self._sip_answer(200)
            self._answered = self._call is not None
            self._t_answer = time.monotonic()
            self.record.answered = self._answered
            await self._run(handler)
        except Exception:
            logger.exception("SIP call failed", extra={"call_id": self._info.call_id})
            self._sip_hangup(500)
        finally:
            self._finish()

    async def _run(self, handler: CallHandler) -> None:
        """An answered call: the handler runs while the caller's events pump into it, until the
        caller's side is gone; then the handler hears why and finishes."""
        self._handler = handler
        run_task = asyncio.create_task(self._run_handler())
        limit = self._loop.call_later(self._settings.max_call_s, self._end_call, "call too long")
        watchdog = asyncio.create_task(self._watch_rtp()) if self._settings.rtp_timeout_s else None
        try:
            reason = await self._pump()
        finally:
            limit.cancel()
            if watchdog is not None:
                watchdog.cancel()
        await self._end_handler(run_task, reason)

    async def _pump(self) -> str:
        """Caller events in order until the caller's side is gone; returns why."""
        handler = self._handler
        assert handler is not None
        while True:
            kind, value = await self._events.get()
            if kind == "frame":
                self.record.caller_frames_to_model += 1
                await handler.caller_frame(np.frombuffer(value, dtype="<i2"))
            elif kind == "dtmf":
                self.record.dtmf += 1
                await handler.caller_dtmf(value)
            elif kind == "end":
                return value

    async def _run_handler(self) -> None:
        assert self._handler is not None
        try:
            await self._handler.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call handler failed", extra={"call_id": self._info.call_id})
            await self.hangup(CloseCode.INTERNAL_ERROR, "internal error in the call handler")
            return
        if not self._hanging_up and not self._caller_gone:
            await self.hangup(CloseCode.NORMAL, "call ended")

    async def _end_handler(self, run_task: asyncio.Task | None, reason: str) -> None:
        handler = self._handler
        try:
            if handler is not None:
                await asyncio.wait_for(handler.caller_ended(reason), RUN_GRACE_S)
            if run_task is not None:
                await asyncio.wait_for(asyncio.shield(run_task), RUN_GRACE_S)
        except TimeoutError:
            logger.warning("call handler did not finish in time", extra={"call_id": self._info.call_id})
            if run_task is not None:
                run_task.cancel()
        except Exception:
            logger.exception("call handler failed while ending", extra={"call_id": self._info.call_id})

    def _end_call(self, reason: str) -> None:
        if not self._hanging_up:
            self._side_task = asyncio.ensure_future(self.hangup(CloseCode.NORMAL, reason))

    async def _watch_rtp(self) -> None:
        """Hang up a call whose caller stopped sending RTP (gone without a BYE)."""
        timeout = self._settings.rtp_timeout_s
        last, since = -1, self._loop.time()
        while True:
            await asyncio.sleep(min(timeout / 2, 5.0))
            call = self._call
            if call is None:
                return
            try:
                packets = int(call.getStreamStat(0).rtcp.rxStat.pkt)
            except pj.Error:  # no stream (yet, or on hold): nothing to judge by
                packets = last
            del call
            if packets != last:
                last, since = packets, self._loop.time()
            elif self._loop.time() - since >= timeout:
                logger.info(
                    "call %s: no RTP for %g s: hanging up",
                    self._info.call_id,
                    timeout,
                    extra={"call_id": self._info.call_id},
                )
                self._end_call("no audio from the caller")
                return

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.record.sip_status is None and not self._caller_gone:
            self._sip_hangup(500)
        counters = self.media.detach()
        r = self.record
        r.caller_frames = counters.caller_frames
        r.agent_audio_ms = counters.agent_chunks_played * CHUNK_MS
        r.agent_dropped_ms = counters.agent_chunks_dropped * CHUNK_MS
        r.agent_cleared_ms = counters.agent_chunks_cleared * CHUNK_MS
        r.agent_underrun_ms = counters.underruns * CHUNK_MS
        if self._t_answer is not None:
            r.duration_s = round(time.monotonic() - self._t_answer, 3)
        self._on_done(self)

    # --- pjsua2 side (event loop thread) -------------------------------------------------------------
    def _sip_answer(self, code: int, reason: str = "") -> None:
        call = self._call
        if call is None:
            return
        try:
            call.answer(op(code, reason))
        except pj.Error as exc:
            logger.warning(
                "call %s: answer %d failed (%s)",
                self._info.call_id,
                code,
                exc.reason,
                extra={"call_id": self._info.call_id},
            )

    def _sip_hangup(self, code: int) -> None:
        call = self._call
        if call is None:
            return
        try:
            call.hangup(op(code))
        except pj.Error:
            pass  # already going

    def on_state(self, ci: pj.CallInfo) -> None:
        if ci.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        self._call = None  # dropped everywhere now: its slot is reused at once
        self._media_on = False
        if self.record.end_by is None and self._answered:
            self.record.end_by, self.record.end_reason = "caller", "caller hung up"
        if not self._caller_gone:
            self._caller_gone = True
            self._events.put_nowait(("end", "caller hung up" if self._answered else "caller cancelled"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._xfer is not None and not self._xfer.done():
            self._xfer.set_result(False)

    def on_media(self, call: SipCall) -> None:
        ci = call.getInfo()
        for i, media in enumerate(ci.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if not self._media_on:
                self.media.attach(self._loop, self._caller_frame)
            self.media.connect(call.getAudioMedia(i))
            self._media_on = True
            try:
                self.record.codec = str(call.getStreamInfo(i).codecName)
            except pj.Error:
                pass
            return

    def on_stream_stats(self, stat: pj.StreamStat) -> None:
        rx, tx, jb = stat.rtcp.rxStat, stat.rtcp.txStat, stat.jbuf
        self.record.rtp = {
            "rx_packets": int(rx.pkt),
            "rx_lost": int(rx.loss),
            "rx_discarded": int(rx.discard),
            "rx_jitter_ms": round(rx.jitterUsec.mean / 1000, 2) if rx.jitterUsec.n else 0.0,
            "rx_jitter_max_ms": round(rx.jitterUsec.max / 1000, 2) if rx.jitterUsec.n else 0.0,
            "tx_packets": int(tx.pkt),
            "jb_lost": int(jb.lost),
            "jb_discarded": int(jb.discard),
        }

    def on_dtmf(self, digit: str) -> None:
        if digit and not self._caller_gone:  # RFC 4733 digits may come from the media thread
            self._loop.call_soon_threadsafe(self._events.put_nowait, ("dtmf", digit[:1]))

    def on_transfer_status(self, code: int, final: bool) -> None:
        # the REFER's own final response (202), then the far end's progress (NOTIFY sipfrag)
        if code >= 200 and self._xfer is not None and not self._xfer.done():
            self._xfer.set_result(code < 300)

    # --- clock thread, through call_soon_threadsafe --------------------------------------------------
    def _caller_frame(self, data: bytes) -> None:
        if not self._caller_gone:
            self._events.put_nowait(("frame", data))

    def _port_drained(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
