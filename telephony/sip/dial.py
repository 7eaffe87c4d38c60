"""Outbound legs: a call a SIP worker places for a translation line, `DialedSipLeg`.

The worker (`SipWorker.dial`) checks the number against the line's policy, takes a free call slot
and media port, and sends the INVITE to `SipSettings.outbound_uri(number)`: through Kamailio, which
relays it to the configured trunk and nowhere else, or, with one worker, to the trunk itself.
`ring(timeout_s)` then waits for the answer:

    2xx (CONFIRMED)                      answered: the leg is served like an answered inbound call
                                         (`serve(handler)`: caller frames, DTMF and the hang-up of
                                         the far end into the handler, agent audio out)
    486, 600                             DialFailed busy
    603, 403, 404, 410, 484, 4xx         DialFailed rejected
    408, 480, or no answer in time       DialFailed no_answer (on time-out the INVITE is cancelled)
    5xx, no response at all              DialFailed unavailable

A leg that fails (or whose dialling is cancelled) finishes at once: its slot and port go back to
the worker, and its `call_end` record says `direction` outbound and the `dial` outcome. Nothing here
logs or records the number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pjsua2 as pj

from telephony.leg import CallHandler, CallInfo, DialFailed
from telephony.sip.leg import SipCall, SipLeg
from telephony.sip.media import CallMedia
from telephony.sip.settings import SipSettings

logger = logging.getLogger(__name__)

BUSY = {486, 600}
NO_ANSWER = {408, 480}


def failure(status: int, reason: str) -> DialFailed:
    """The DialFailed of a final response that was not 2xx (0: none came)."""
    text = f"{status} {reason}".strip() if status else "no response from the trunk"
    if status in BUSY:
        return DialFailed("busy", text, status)
    if status in NO_ANSWER:
        return DialFailed("no_answer", text, status)
    if 400 <= status < 500 or status == 603:
        return DialFailed("rejected", text, status)
    return DialFailed("unavailable", text, status or None)


class DialedSipLeg(SipLeg):
    """An outbound SIP leg: it rings (`ring`), then is served (`serve`) as an answered call."""

    def __init__(
        self,
        call: SipCall,
        info: CallInfo,
        *,
        settings: SipSettings,
        media: CallMedia,
        on_done: Callable[[SipLeg], None],
    ) -> None:
        super().__init__(
            call,
            info,
            settings=settings,
            connector=None,
            media=media,
            caller_host=None,
            trunk="outbound",
            on_done=on_done,
        )
        self.record.direction = "outbound"
        self._ringing: asyncio.Future = self._loop.create_future()  # None: answered; else (status, reason)
        self._served = False

    async def ring(self, timeout_s: float) -> None:
        """Wait for the answer; raises DialFailed (the leg has finished) or CancelledError (the INVITE
        is cancelled)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._ringing), timeout_s)
        except TimeoutError:
            self._give_up("no_answer")
            raise DialFailed("no_answer", f"no answer within {timeout_s:g} s") from None
        except asyncio.CancelledError:
            self._give_up("cancelled")
            raise
        outcome = self._ringing.result()
        if outcome is not None:
            failed = failure(*outcome)
            self.record.dial, self.record.sip_status = failed.kind, failed.status
            self._finish()
            raise failed
        self.record.dial = "answered"
        self._t_answer = time.monotonic()

    def _give_up(self, outcome: str) -> None:
        self.record.dial = outcome
        self._sip_hangup(487)  # still ringing: pjsua sends CANCEL
        self._finish()

    async def serve(self, handler: CallHandler) -> None:
        """The answered leg feeds `handler` until the far end is gone (DialedLeg)."""
        if self._served:
            raise RuntimeError("a dialled leg is served once")
        self._served = True
        try:
            await self._run(handler)
        except Exception:
            logger.exception("outbound SIP call failed", extra={"call_id": self.info.call_id})
            self._sip_hangup(500)
        finally:
            self._finish()

    async def hangup(self, code: int, reason: str) -> None:
        await super().hangup(code, reason)
        if not self._served:  # hung up before it was ever served (its room could not start)
            self._finish()

    def on_state(self, ci: pj.CallInfo) -> None:
        if not self._ringing.done():
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self._answered = self.record.answered = True
                self._ringing.set_result(None)
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self._ringing.set_result((int(ci.lastStatusCode), str(ci.lastReason)))
        super().on_state(ci)
