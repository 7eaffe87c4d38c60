"""A translation line's call: party A dialled the number; Parley reaches party B and bridges them.

`TranslationCall` is the `telephony.leg.CallHandler` of A's leg when the dialled number is a
translation line (`agent.lines.TranslationLine`). Its `run()`:

    the number: the line's fixed `callee_number`, or the digits A keys in (DTMF) until `#`, a
                `dtmf_timeout_s` pause or too many digits (telephony.dialplan.from_keypad)
    the guard:  the line's `allow` policy refuses it (malformed, too long, not allowed)
    the call:   A's leg's transport dials it (`telephony.leg.Dialer`: it checks the policy again
                before any INVITE) and rings B for `ring_timeout_s`
    failure:    A gets a `dial` notice (status, reason), hears the tone pattern of why
                (telephony.mix.dial_notice_frames: busy, no_answer, refused) and is hung up
    answered:   a room (`agent.bridge.Rooms`) opens with A and B joins it with the line's callee
                agent, exactly as two websocket parties do; from then on A's frames, digits and
                hang-up go to A's `PartyHandler`, and B's leg is served with B's

The call's record: a bridged call's is the room's (`Room.summary()`, with `dial`); a call that
never reached B has its own (`summary()`: the end, the timeline and `dial`). Until the room
exists A's audio goes nowhere (counted). Nothing here knows the transport; logs carry call ids,
kinds and SIP statuses, never the number or the digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from agent.bridge import PartyHandler, Room, Rooms, play_notice
from agent.config import AgentConfig
from agent.lines import TranslationLine
from agent.session import CallEnd
from agent.timeline import Timeline
from model.protocol import FRAME_SAMPLES, SAMPLE_RATE
from telephony.dialplan import MAX_NUMBER_CHARS, from_keypad
from telephony.leg import CallInfo, CallRefused, CloseCode, DialedLeg, Dialer, DialFailed, Leg
from telephony.mix import dial_notice_frames

logger = logging.getLogger(__name__)

MAX_KEYED = MAX_NUMBER_CHARS + 1  # "00" and 15 digits: one more key and the number is too long
NOTICE_OF = {"busy": "busy", "rejected": "busy", "no_answer": "no_answer"}  # else "refused"

Dialed = Callable[["TranslationCall", CallInfo, PartyHandler], Awaitable[None]]
Unbridged = Callable[["TranslationCall"], Awaitable[None]]


def failure_reason(failure: DialFailed, line: TranslationLine) -> str:
    """What A is told (the call's end reason), by kind."""
    return {
        "busy": "the other party is busy",
        "rejected": "the other party declined the call",
        "no_answer": f"the other party did not answer within {line.ring_timeout_s:g} s",
        "not_allowed": "this line may not call that number",
        "malformed": "that is not a number this line can call",
        "too_long": "that is not a number this line can call",
    }.get(failure.kind, "the other party could not be reached")


class TranslationCall:
    """Party A's handler on a translation line (see the module docstring)."""

    def __init__(
        self,
        line: TranslationLine,
        caller: AgentConfig,
        callee: AgentConfig,
        leg: Leg,
        rooms: Rooms,
        *,
        on_dialed: Dialed,
        on_unbridged: Unbridged,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self.caller = caller  # the interpreter of A's speech (the number's agent)
        self.callee = callee  # the interpreter of B's speech (the line's callee_agent)
        self.leg = leg
        self.rooms = rooms
        self.timeline = Timeline(clock)
        self.ended: CallEnd | None = None
        self.room: Room | None = None
        self.dial: dict = {"mode": line.dial, "status": None, "sip_status": None, "reason": None}
        self._on_dialed = on_dialed
        self._on_unbridged = on_unbridged
        self._party: PartyHandler | None = None
        self._keys: asyncio.Queue[str | None] = asyncio.Queue()
        self._gone = asyncio.Event()  # A hung up, or the call was hung up from outside
        self.timeline.add("line", mode=line.dial)

    @property
    def call_id(self) -> str:
        return self.leg.info.call_id

    def _log_extra(self, **fields: object) -> dict:
        return {"call_id": self.call_id, "agent": self.caller.name, **fields}

    # --- CallHandler -------------------------------------------------------------------------------
    async def caller_frame(self, frame: np.ndarray) -> None:
        if self._party is not None:
            await self._party.caller_frame(frame)
        else:
            self.timeline.count("frames_before_bridge")

    async def caller_dtmf(self, digits: str) -> None:
        if self._party is not None:
            await self._party.caller_dtmf(digits)
            return
        for key in digits:
            self._keys.put_nowait(key)

    async def caller_ended(self, reason: str) -> None:
        if self._party is not None:
            await self._party.caller_ended(reason)
            return
        self._end("caller", reason[:200], CloseCode.NORMAL)
        self._gone.set()
        self._keys.put_nowait(None)

    def hang_up(self, reason: str, by: str = "admin") -> bool:
        """End the call from outside (the admin API): the room, or the dialling."""
        if self._party is not None:
            return self._party.hang_up(reason, by)
        if self.ended is not None:
            return False
        self._end(by, reason, CloseCode.NORMAL)
        self._gone.set()
        self._keys.put_nowait(None)
        return True

    async def run(self) -> None:
        try:
            number = await self._number()
            if number is None:
                return
            dialed = await self._reach(number)
            if dialed is not None:
                await self._bridge(dialed)
        finally:
            if self.room is None:
                if self.ended is None:
                    self._end("parley", "the call ended before the other party was reached", 1000)
                await asyncio.shield(self._on_unbridged(self))

    # --- reaching B --------------------------------------------------------------------------------
    async def _number(self) -> str | None:
        """B's number: the line's, or keyed in by A; None when A left (or nothing was keyed)."""
        if self.line.dial == "fixed":
            return self.line.callee_number
        keyed = ""
        while len(keyed) <= MAX_KEYED:
            try:
                key = await asyncio.wait_for(self._keys.get(), self.line.dtmf_timeout_s)
            except TimeoutError:
                break
            if key is None:
                return None
            if key == "#":
                break
            keyed += key
        self.timeline.add("keyed", keys=len(keyed))
        if not keyed:
            await self._fail(DialFailed("malformed", "no number was keyed in"))
            return None
        return from_keypad(keyed)

    async def _reach(self, number: str) -> DialedLeg | None:
        """Check the number, then ring it; the answered leg, or None (A has been told why)."""
        refusal = self.line.allow.check(number)
        if refusal is not None:
            await self._fail(DialFailed(refusal.kind, refusal.reason))
            return None
        if not isinstance(self.leg, Dialer):
            await self._fail(DialFailed("unavailable", f"{self.leg.info.protocol} calls cannot dial out"))
            return None
        self.timeline.add("dialing")
        dialing = asyncio.ensure_future(self.leg.dial(number, self.line.allow, self.line.ring_timeout_s))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({dialing, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not dialing.done():  # A left while B rang: the transport cancels the INVITE
            dialing.cancel()
            with contextlib.suppress(asyncio.CancelledError, DialFailed):
                await dialing
            self.dial.update(status="cancelled", reason="the caller hung up while the other party rang")
            return None
        try:
            dialed = dialing.result()
        except DialFailed as failure:
            await self._fail(failure)
            return None
        if self._gone.is_set():  # answered just as A left
            await dialed.hangup(CloseCode.NORMAL, "the other party hung up")
            return None
        self.dial.update(status="answered")
        self.timeline.add("answered")
        return dialed

    async def _fail(self, failure: DialFailed) -> None:
        """B was not reached: A is told why (an event, the tones of that kind) and hung up."""
        reason = failure_reason(failure, self.line)
        self.dial.update(status=failure.kind, sip_status=failure.status, reason=failure.reason[:200])
        self.timeline.add("dial_failed", failure=failure.kind, status=failure.status)
        logger.info(
            "call %s: the other party was not reached (%s)",
            self.call_id,
            failure.kind,
            extra=self._log_extra(kind=failure.kind, sip_status=failure.status),
        )
        if not self._end("parley", reason, CloseCode.NORMAL):
            return  # A has gone already
        try:
            self.leg.notify("dial", {"status": failure.kind, "reason": reason})
            kind = NOTICE_OF.get(failure.kind, "refused")
            await play_notice(self.leg, dial_notice_frames(kind, SAMPLE_RATE, FRAME_SAMPLES))
        finally:
            await self.leg.hangup(CloseCode.NORMAL, reason)

    # --- the bridge --------------------------------------------------------------------------------
    async def _bridge(self, dialed: DialedLeg) -> None:
        """B answered: A opens a room, B joins it, and both legs run until the call ends as one."""
        party_a = self.rooms.open(self.leg.info, self.leg, self.caller)
        self.room, self._party = party_a.room, party_a
        self.room.details["dial"] = self.dial
        run_a = asyncio.ensure_future(party_a.run())
        try:
            party_b = await self.rooms.join(self.room.id, dialed.info, dialed, self.callee)
        except CallRefused as refused:  # the room has ended: A hears the notice from it
            logger.warning(
                "call %s: the other party could not join (%d)",
                self.call_id,
                refused.code,
                extra=self._log_extra(code=refused.code),
            )
            await dialed.hangup(refused.code, refused.reason)
            await run_a
            return
        await self._on_dialed(self, dialed.info, party_b)
        await asyncio.gather(run_a, dialed.serve(party_b))

    # --- the record --------------------------------------------------------------------------------
    def _end(self, by: str, reason: str, code: int) -> bool:
        if self.ended is not None:
            return False
        self.ended = CallEnd(by, reason, int(code))
        self.timeline.add("end", by=by, reason=reason, code=int(code))
        return True

    def summary(self) -> dict:
        """The record of a call that never reached B, shaped as `CallSession.summary()`."""
        return {
            "call_id": self.call_id,
            "agent": self.caller.name,
            "model": None,
            "ended": dataclasses.asdict(self.ended) if self.ended else None,
            "frames_sent": 0,
            "turns_received": 0,
            "unanswered_frames": 0,
            "transcript": [],
            "timeline": self.timeline.to_dict(),
            "dial": self.dial,
        }
