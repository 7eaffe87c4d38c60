"""One SIP worker process: a pjsua2 Endpoint answering at most 4 calls, driven from asyncio.

`SipWorker.run()` owns the process's only pjsua2 Endpoint, and everything that touches pjsua2
happens on the thread that runs the event loop. The loop watches pjsip's SIP sockets and runs the
library (`libHandleEvents(0)`) as soon as one is readable, and every `poll_ms` for its timers;
`threadCnt=0` and `mainThreadOnly` keep SIP callbacks on that thread, where calls are answered,
transferred and hung up and the calls' model-server websockets run. The only other threads are
pjsua's own (RTP, the conference bridge's clock) and the loop's executor, whose threads are
registered with pjsua2 (`libRegisterThread`) first. Automatic garbage collection is off and a
collection runs on the loop thread every few seconds, so no pjsua2 object is ever freed from a
thread pjsua2 does not know.

Shutdown keeps pjsua2's order: hang up every call and wait for them, disconnect the ports, stop the
sound device (the bridge's clock), shut the account, `libDestroy()`. The caller of `run()` then
leaves the process with `os._exit` so no pjsua2 object outlives the library.

A leg whose connector asks it to dial (a translation line) gets `dial()`: the toll-fraud guard
(the line's policy, checked here right before the INVITE, which goes only to the outbound trunk),
a free slot and port, then an outbound `telephony.sip.dial.DialedSipLeg` that rings.

Events (`emit(dict)`; `parley sip-worker` writes them to stdout as JSON lines for the supervisor):
ready, call_start, call_end (the leg's record), refused, dial_refused, exit. No numbers of callers, digits or
credentials in them or in the log. Nothing here knows about agents: a number maps to a name the
connector resolves.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

import pjsua2 as pj

from telephony.leg import CallConnector, CallInfo, DialFailed, NumberPolicy
from telephony.sip.dial import DialedSipLeg
from telephony.sip.leg import SipCall, SipLeg, op
from telephony.sip.media import MediaPool
from telephony.sip.message import header, offered_codec, request_line, source_ip, uri_host, uri_user
from telephony.sip.settings import CODECS, SipSettings, normalize_number
from telephony.sip.trunks import TrunkPolicy

logger = logging.getLogger(__name__)

GC_INTERVAL_S = 5.0
IDLE_POLL_S = 0.1
REFUSAL_LOGS, REFUSAL_LOG_WINDOW_S = 5, 10.0  # refusals logged per window; the rest only counted
# pjsua2 objects that must never be freed: after libDestroy() a port's or account's destructor
# asserts. They stay referenced here until the process leaves with os._exit.
_UNFREED: list = []
STOP_GRACE_S = 5.0
ENCODINGS = {"PCMU": ("mulaw", 8000), "PCMA": ("alaw", 8000), "G722": ("g722", 16000)}


def proxy_sources(settings: SipSettings) -> list[str]:
    """Addresses Kamailio may send from: this machine's loopback, `host`, `public_address`."""
    out = ["127.0.0.0/8", "::1/128"]
    for address in (settings.host, settings.worker_host, settings.public_address):
        if address and address not in ("0.0.0.0", "::"):
            out.append(address)
    return out


class _Account(pj.Account):
    def __init__(self, worker: SipWorker) -> None:
        super().__init__()
        self._worker = worker

    def onIncomingCall(self, prm) -> None:
        try:
            self._worker._on_incoming(prm)
        except Exception:
            logger.exception("incoming call handling failed")

    def onIncomingSubscribe(self, prm) -> None:
        prm.code = 403  # no presence or dialog-event subscriptions for anyone


class SipWorker:
    def __init__(
        self,
        settings: SipSettings,
        index: int,
        connector: CallConnector,
        *,
        emit: Callable[[dict], None] = lambda event: None,
        proxy_addresses: list[str] | None = None,
        numbers_from_connector: bool = False,
    ) -> None:
        self.settings = settings
        self.index = index
        self.connector = connector
        self.emit = emit
        self.numbers = settings.load_numbers()
        # True when the connector routes numbers itself (the admin API's): a number outside the
        # configured plan is then admitted with no agent and the connector decides (404 if unknown)
        self.numbers_from_connector = numbers_from_connector
        if settings.multi:
            self.policy = TrunkPolicy.proxy_only(proxy_addresses or proxy_sources(settings))
        else:
            self.policy = TrunkPolicy(settings.load_trunks(), settings.realm)
        self.sip_port = settings.worker_sip_port(index)
        self.counters: collections.Counter = collections.Counter()
        self._ep: pj.Endpoint | None = None
        self._account: _Account | None = None
        self._media: MediaPool | None = None
        self._calls: dict[int, SipCall] = {}  # pjsua call id -> call, until DISCONNECTED
        self._legs: dict[str, SipLeg] = {}  # live legs by Parley call id
        self._tasks: set[asyncio.Task] = set()
        self._draining = False
        self._wake: asyncio.Event | None = None
        self._log_window = [0.0, 0]  # start, refusals in it
        self._started = time.monotonic()

    # --- the process -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> int:
        """Serve calls until `stop` is set (or the worker has recycled); returns an exit status."""
        loop = asyncio.get_running_loop()
        self._start_library()
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="sip-exec", initializer=self._register_thread
            )
        )
        gc.disable()
        gc.freeze()  # what exists now lives as long as the process: keep it out of every collection
        self.emit(
            {
                "event": "ready",
                "worker": self.index,
                "sip_port": self.sip_port,
                "rtp_ports": list(self.settings.worker_rtp_range(self.index)),
                "fast_media": self._media.fast if self._media else None,
            }
        )
        logger.info("SIP worker %d ready on port %d", self.index, self.sip_port)
        poll_s = self.settings.poll_ms / 1000.0
        idle_s = max(poll_s, IDLE_POLL_S)  # no call: only housekeeping timers are due
        self._wake = asyncio.Event()
        watched = self._watch_sip_sockets(loop)
        next_gc = loop.time() + GC_INTERVAL_S
        stop_deadline: float | None = None
        try:
            while True:
                self._handle_events()
                if loop.time() >= next_gc:
                    gc.collect()
                    next_gc = loop.time() + GC_INTERVAL_S
                if stop.is_set() and stop_deadline is None:
                    stop_deadline = loop.time() + STOP_GRACE_S
                    self._draining = True
                    self._hangup_all()
                if self._draining and not self._legs and not self._calls:
                    break
                if stop_deadline is not None and loop.time() > stop_deadline:
                    logger.warning("SIP worker %d: calls still up at shutdown", self.index)
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # timers: pjsip's, GC, stop
                    await asyncio.wait_for(
                        self._wake.wait(), poll_s if self._calls or stop.is_set() else idle_s
                    )
        finally:
            for fd in watched:
                loop.remove_reader(fd)
            for task in list(self._tasks):
                task.cancel()
            self._stop_library()
            gc.enable()
        reason = "stopped" if stop.is_set() else "recycled"
        self.emit({"event": "exit", "worker": self.index, "reason": reason, "calls": self.counters["calls"]})
        return 0

    def _handle_events(self) -> int:
        """Let pjsua2 process what is pending (SIP messages, its timers); its callbacks run here."""
        assert self._ep is not None
        handled = 0
        for _ in range(64):  # drain a burst (an INVITE flood) without starving the loop for long
            n = self._ep.libHandleEvents(0)
            if n <= 0:
                break
            handled += n
        return handled

    def _on_sip_readable(self) -> None:
        self._handle_events()
        if self._wake is not None:
            self._wake.set()

    def _watch_sip_sockets(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        """Wake on SIP traffic at once: find pjsip's own SIP sockets (bound to our SIP port) among
        the process's descriptors and watch them from the loop; between messages the loop only
        wakes every `poll_ms` for pjsip's timers (a blocking wait costs little, busy polling a lot)."""
        watched = []
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                with socket.socket(fileno=os.dup(fd)) as sock:
                    local = sock.getsockname()
                    kind = sock.type
            except OSError:
                continue
            if (
                isinstance(local, tuple)
                and len(local) >= 2
                and local[1] == self.sip_port
                and kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
            ):
                loop.add_reader(fd, self._on_sip_readable)
                watched.append(fd)
        if not watched:
            logger.warning(
                "SIP worker %d: SIP sockets not found; polling every %d ms only",
                self.index,
                self.settings.poll_ms,
            )
        return watched

    def _register_thread(self) -> None:
        if self._ep is not None and not self._ep.libIsThreadRegistered():
            self._ep.libRegisterThread("sip-exec")

    def _start_library(self) -> None:
        s = self.settings
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = s.calls_per_worker
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "Parley"
        cfg.logConfig.level = s.pjsip_log_level
        cfg.logConfig.consoleLevel = s.pjsip_log_level
        cfg.logConfig.msgLogging = False
        cfg.medConfig.clockRate = s.clock_rate
        cfg.medConfig.sndClockRate = s.clock_rate
        cfg.medConfig.channelCount = 1
        cfg.medConfig.ecTailLen = 0  # no echo canceller: the model hears the line as it is
        cfg.medConfig.noVad = True
        cfg.medConfig.threadCnt = 1
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()  # the null device's thread is the bridge's clock
        advertised = s.advertised_address()
        bind = s.worker_host if s.multi else s.host
        kinds = [pj.PJSIP_TRANSPORT_UDP] if s.multi else [pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP]
        for kind in kinds:
            tc = pj.TransportConfig()
            tc.port = self.sip_port
            if bind not in ("0.0.0.0", "::", ""):
                tc.boundAddress = bind
            if advertised and not s.multi:
                tc.publicAddress = advertised
            ep.transportCreate(kind, tc)
        ep.libStart()
        priorities = {CODECS[name]: 250 - 10 * i for i, name in enumerate(s.codecs)}
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, priorities.get(codec.codecId, 0))
        acfg = pj.AccountConfig()
        host = advertised or (bind if bind not in ("0.0.0.0", "::", "") else "127.0.0.1")
        acfg.idUri = f"sip:parley@{host}:{self.sip_port}"
        rtp_first, rtp_count = s.worker_rtp_range(self.index)
        acfg.mediaConfig.transportConfig.port = rtp_first
        acfg.mediaConfig.transportConfig.portRange = rtp_count
        if s.host not in ("0.0.0.0", "::", ""):
            acfg.mediaConfig.transportConfig.boundAddress = s.host
        if advertised:
            acfg.mediaConfig.transportConfig.publicAddress = advertised
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        account = _Account(self)
        account.create(acfg, True)
        self._ep, self._account = ep, account
        self._media = MediaPool(s.calls_per_worker, prefetch_ms=s.agent_prefetch_ms)

    def _stop_library(self) -> None:
        ep = self._ep
        if ep is None:
            return
        self._legs.clear()
        self._calls.clear()
        gc.collect()
        if self._media is not None:
            self._media.close()
        try:
            ep.audDevManager().setNoDev()  # stops the clock: no more port callbacks
        except pj.Error:
            pass
        if self._account is not None:
            self._account.shutdown()
        _UNFREED.extend([self._media, self._account, ep])
        self._media = self._account = self._ep = None
        gc.collect()
        ep.libDestroy()

    # --- admission -----------------------------------------------------------------------------------
    def _on_incoming(self, prm) -> None:
        """Admission of a new INVITE, in order: draining (recycle or shutdown) -> 486; the trunk
        check (`TrunkPolicy`: 403 / 407 challenge); the dialled number (request-URI user part) ->
        a name from the number plan, unknown -> 404; a free slot and port -> else 486; a codec among
        the accepted ones in the offer -> else 488. Then a `SipLeg` runs the call; the connector
        may still refuse it (404 for an agent that does not exist, 503 when the model server is
        full). After `recycle_after_calls` calls the worker refuses new ones (486; Kamailio tries
        another worker), finishes its live calls and exits 0, for the supervisor to start afresh."""
        msg = str(prm.rdata.wholeMsg)
        call = SipCall(self._account, prm.callId, self._on_call_gone)
        self._calls[prm.callId] = call
        self.counters["invites"] += 1
        if self._draining:
            return self._refuse(call, 486, "Busy Here", "draining")
        admission = self.policy.check(source_ip(str(prm.rdata.srcAddress)), "INVITE", msg)
        if not admission.accepted:
            return self._refuse(call, admission.code, admission.reason, "trunk", admission.headers)
        line = request_line(msg)
        user = uri_user(line[1]) if line else None
        number = normalize_number(user) if user else ""
        agent = self.numbers.get(number)
        if agent is None and not (self.numbers_from_connector and number):
            return self._refuse(call, 404, "Not Found", "unknown number")
        assert self._media is not None
        if len(self._legs) >= self.settings.calls_per_worker or not self._media.free:
            return self._refuse(call, 486, "Busy Here", "full")
        codec = offered_codec(msg, self.settings.codecs)
        if codec is None:
            return self._refuse(call, 488, "Not Acceptable Here", "no common codec")
        media = self._media.acquire()
        assert media is not None
        encoding, rate = ENCODINGS[codec]
        info = CallInfo(
            call_id=uuid.uuid4().hex,
            protocol="sip",
            agent=agent or "",
            sample_rate=rate,
            encoding=encoding,
            external_id=header(msg, "call-id"),
            parameters={"number": number, "trunk": admission.trunk or "", "codec": codec},
        )
        leg = SipLeg(
            call,
            info,
            settings=self.settings,
            connector=self.connector,
            media=media,
            caller_host=uri_host(header(msg, "from") or ""),
            trunk=admission.trunk,
            on_done=self._on_leg_done,
            dialer=self.dial,
        )
        del call
        self._legs[info.call_id] = leg
        self.counters["calls"] += 1
        if self.settings.recycle_after_calls and self.counters["calls"] >= self.settings.recycle_after_calls:
            self._draining = True
            logger.info("SIP worker %d recycles after %d calls", self.index, self.counters["calls"])
        self.emit(
            {
                "event": "call_start",
                "worker": self.index,
                "call_id": info.call_id,
                "agent": agent,
                "trunk": admission.trunk,
                "codec": codec,
            }
        )
        task = asyncio.get_running_loop().create_task(leg.serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- outbound ------------------------------------------------------------------------------------
    async def dial(
        self, parent: SipLeg, number: str, policy: NumberPolicy, ring_timeout_s: float
    ) -> DialedSipLeg:
        """Ring `number` for `parent`'s call (a translation line) and return the answered leg, or
        raise DialFailed. The number must pass `policy` here, before anything is sent; the INVITE
        goes only to the outbound trunk (through Kamailio, which enforces that too)."""
        refusal = policy.check(number)
        if refusal is not None:
            kind = str(getattr(refusal, "kind", "not_allowed"))
            self.counters["dial_refused"] += 1
            self.emit(
                {"event": "dial_refused", "worker": self.index, "call_id": parent.info.call_id, "kind": kind}
            )
            raise DialFailed(kind, str(getattr(refusal, "reason", "the number may not be dialled")))
        uri = self.settings.outbound_uri(number)
        if uri is None:
            raise DialFailed("unavailable", "no outbound trunk is configured (PARLEY_SIP_OUTBOUND_TRUNK)")
        assert self._media is not None
        if self._draining or len(self._legs) >= self.settings.calls_per_worker or not self._media.free:
            raise DialFailed("unavailable", "no free line on this SIP worker")
        media = self._media.acquire()
        assert media is not None
        info = CallInfo(
            call_id=uuid.uuid4().hex,
            protocol="sip",
            agent="",
            sample_rate=8000,
            encoding="mulaw",
            parameters={"direction": "outbound", "parent": parent.info.call_id, "trunk": "outbound"},
        )
        call = SipCall(self._account, pj.PJSUA_INVALID_ID, self._on_call_gone)
        leg = DialedSipLeg(call, info, settings=self.settings, media=media, on_done=self._on_leg_done)
        try:
            call.makeCall(uri, op())
        except pj.Error as exc:
            self._media.release(media)
            call.leg = None
            raise DialFailed("unavailable", f"the INVITE could not be sent ({exc.reason})") from None
        self._calls[call.getId()] = call
        del call
        self._legs[info.call_id] = leg
        self.counters["dials"] += 1
        self.emit(
            {
                "event": "call_start",
                "worker": self.index,
                "call_id": info.call_id,
                "direction": "outbound",
                "parent": parent.info.call_id,
            }
        )
        await leg.ring(ring_timeout_s)
        return leg

    def _refuse(self, call: SipCall, code: int, reason: str, why: str, headers=()) -> None:
        self.counters[f"refused_{code}"] += 1
        now = time.monotonic()
        if now - self._log_window[0] > REFUSAL_LOG_WINDOW_S:
            if self._log_window[1] > REFUSAL_LOGS:
                logger.info(
                    "SIP worker %d refused %d more INVITEs", self.index, self._log_window[1] - REFUSAL_LOGS
                )
            self._log_window = [now, 0]
        self._log_window[1] += 1
        if self._log_window[1] <= REFUSAL_LOGS:  # a flood is counted, not logged line by line
            logger.info(
                "SIP worker %d refused an INVITE: %d (%s)",
                self.index,
                code,
                why,
                extra={"code": code, "why": why},
            )
        self.emit({"event": "refused", "worker": self.index, "code": code, "why": why})
        try:
            call.answer(op(code, reason, tuple(headers)))
        except pj.Error:
            pass

    def _on_call_gone(self, call: SipCall) -> None:
        """DISCONNECTED: forget the pjsua2 call now (pitfall: its slot is reused at once)."""
        for key, value in list(self._calls.items()):
            if value is call:
                del self._calls[key]

    def _on_leg_done(self, leg: SipLeg) -> None:
        self._legs.pop(leg.info.call_id, None)
        if self._media is not None:
            self._media.release(leg.media)
        record = dataclasses.asdict(leg.record)
        if record["answered"]:
            self.counters["answered"] += 1
        self.emit({"event": "call_end", "worker": self.index, **record})

    def _hangup_all(self) -> None:
        for leg in list(self._legs.values()):
            task = asyncio.ensure_future(leg.hangup(1001, "the SIP worker is shutting down"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for call in list(self._calls.values()):
            if call.leg is None:
                try:
                    call.hangup(op(503))
                except pj.Error:
                    pass

    def snapshot(self) -> dict:
        return {
            "worker": self.index,
            "live": len(self._legs),
            "draining": self._draining,
            "uptime_s": round(time.monotonic() - self._started, 1),
            **dict(self.counters),
        }
