"""Bridged calls: two parties in a room, one interpreter session per direction.

A bridged call joins two legs, party A (who opened the room) and party B (who joined it by its id),
through two `CallSession`s on the model server: the session hearing A speaks into B's leg and the
session hearing B into A's. Each session's leg is an `InterpreterLeg`: what the session plays goes
to the other party, with the speaker's own 200 ms frame mixed under it `bridge_ducking_db` dB down
(the speaking party's agent decides; None: the interpreter alone), and its turns, text, marks and
clears go to that listener too. Each party's transport talks to a `PartyHandler` (a
`telephony.leg.CallHandler`).

A room's life: `Rooms.open` makes it for an interpreter agent, with an id from
`secrets.token_urlsafe` that is the only way in, and tells A the id (a `room` notice, status
`waiting`); A's audio goes nowhere until `Rooms.join` brings B, whose agent must interpret back
(en>es then es>en), and both sessions have started (`joined`). A room that nobody joins within
`join_timeout_s` ends A's call (4408); a join to a room that does not exist is refused (4410), to a
full one or with an agent that does not mirror the room's (4409). The call ends as one
(`Room.end`): when a party hangs up, an interpreter ends its session or loses its model server, or
the admin API hangs either leg up, every party still on the line gets a `room` notice (status
`ended`, the reason), hears the notice tone (`telephony.mix.notice_frames`) and is hung up; both
sessions close. When both parties' handlers are done, `Rooms.on_over` gets the room, whose
`summary()` is the one record of the call: both legs, both interpreters' summaries and one
transcript of the call.

Rooms live in the gateway process that holds them: both legs of a bridged call reach the same
gateway. Nothing here knows the transport or the model's inside. Logs carry call ids and codes:
never room ids (they are the key to a room), audio, DTMF digits or text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import numpy as np

from agent.config import AgentConfig, mirror_problem
from agent.session import CallEnd, CallSession
from agent.timeline import Timeline
from model.protocol import FRAME_SAMPLES, MICRO_TURN_MS, SAMPLE_RATE
from telephony.leg import CallInfo, CallRefused, CloseCode, Leg
from telephony.mix import mix_under, notice_frames

logger = logging.getLogger(__name__)

NEW_ROOM = "new"  # the `room` parameter of a call that opens a room
ROOM_ID_BYTES = 18  # secrets.token_urlsafe: 24 characters, 144 random bits
KEPT_FRAMES = 8  # speaker frames an interpreter leg keeps for the turns that read them (1.6 s)
NOTICE_TAIL_S = 0.1  # after the notice's last frame is queued and played, before the hang-up
PEER_LEFT = "the other party hung up"

# Makes and starts the session of `agent` speaking into `leg`, with `call_id`; raises CallRefused.
StartInterpreter = Callable[[AgentConfig, Leg, str], Awaitable[CallSession]]
RoomOver = Callable[["Room"], Awaitable[None]]


@dataclasses.dataclass(eq=False)
class Party:
    """One side of a bridged call: its leg, the agent that interprets it and that agent's session."""

    name: str  # "a" (opened the room) | "b" (joined it)
    info: CallInfo
    leg: Leg
    agent: AgentConfig
    joined_ms: int  # on the room's timeline
    session: CallSession | None = None  # the interpreter hearing this party, once both joined
    voice: InterpreterLeg | None = None  # where that session speaks: into the other party's leg
    left_ms: int | None = None  # this party's own side ended (or its join was refused)
    left_reason: str | None = None
    refused: bool = False  # its join was refused: it never was on the call
    goodbye: asyncio.Task | None = None  # the notice and the hang-up, when the room ended on it

    def record(self) -> dict:
        if self.refused:
            ended_by = "refused"
        else:
            ended_by = (
                "parley" if self.goodbye is not None else "caller" if self.left_ms is not None else None
            )
        return {
            "party": self.name,
            "call_id": self.info.call_id,
            "agent": self.agent.name,
            "protocol": self.info.protocol,
            "external_id": self.info.external_id,
            "joined_ms": self.joined_ms,
            "left_ms": self.left_ms,
            "left_reason": self.left_reason,
            "ended_by": ended_by,
        }


class InterpreterLeg:
    """The `Leg` an interpreter session speaks into: the listener's leg, with the speaker's own
    voice under the interpreter (`ducking_db` dB down; None: not at all). A turn's notice names the
    speaker frame it read; that frame goes under the turn's audio. Its hang-up ends the room."""

    def __init__(self, room: Room, speaker: Party, listener: Party) -> None:
        self._room = room
        self.speaker = speaker
        self.listener = listener
        self.ducking_db = speaker.agent.bridge_ducking_db
        self._frames: dict[int, np.ndarray] = {}  # the speaker's latest frames, by index
        self._heard = 0
        self._turn_frame = -1

    @property
    def info(self) -> CallInfo:
        return self.speaker.info

    def heard(self, frame: np.ndarray) -> None:
        """The speaker's next 200 ms frame, as its session is sent it."""
        if self.ducking_db is not None:
            self._frames[self._heard] = frame
            self._frames.pop(self._heard - KEPT_FRAMES, None)
        self._heard += 1

    def _under(self, size: int) -> np.ndarray | None:
        if not self._frames:
            return None
        index = self._turn_frame if self._turn_frame >= 0 else max(self._frames)
        under = self._frames.pop(index, None)
        for older in [i for i in self._frames if i < index]:
            del self._frames[older]
        return under if under is not None and under.size == size else None

    def play(self, frame: np.ndarray) -> None:
        under = self._under(frame.size)
        if under is None and self.ducking_db is not None:
            self._room.timeline.count(f"unmixed_frames_{self.speaker.name}")
        self.listener.leg.play(mix_under(frame, under, self.ducking_db))

    def utterance_end(self) -> None:
        self.listener.leg.utterance_end()

    def interrupt(self) -> None:
        self.listener.leg.interrupt()

    def notify(self, kind: str, data: Mapping[str, object]) -> None:
        if kind == "turn":
            frame = data.get("frame")
            self._turn_frame = frame if isinstance(frame, int) else -1
        self.listener.leg.notify(kind, data)

    async def transfer(self, target: str) -> bool:
        return False  # a bridged call hands nobody off

    async def hangup(self, code: int, reason: str) -> None:
        """The session ended by itself (its agent's end_call, its model server gone): so does the call."""
        session = self.speaker.session
        by = session.ended.by if session is not None and session.ended is not None else "interpreter"
        self._room.end(by, reason, code)


async def play_notice(leg: Leg, frames: Sequence[np.ndarray] | None = None) -> None:
    """Play a notice (default: the call-ended tones) on `leg` in real time, one frame a micro-turn
    (a transport holds about one frame ahead), and return once it has played."""
    frames = notice_frames(SAMPLE_RATE, FRAME_SAMPLES) if frames is None else frames
    loop = asyncio.get_running_loop()
    start, step = loop.time(), MICRO_TURN_MS / 1000
    for i, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, start + i * step - loop.time()))
        leg.play(frame)
    leg.utterance_end()
    await asyncio.sleep(max(0.0, start + len(frames) * step + NOTICE_TAIL_S - loop.time()))


class Room:
    """One bridged call: its id, its parties, their interpreter sessions and how it ended."""

    def __init__(
        self, rooms: Rooms, room_id: str, info: CallInfo, leg: Leg, agent: AgentConfig, timeline: Timeline
    ) -> None:
        self.id = room_id
        self.timeline = timeline
        self.a = Party("a", info, leg, agent, timeline.now_ms())
        self.b: Party | None = None
        self.ended: CallEnd | None = None
        self.joined_ms: int | None = None
        self.details: dict = {}  # more of the record, by whoever made the room (a line's `dial`)
        self._rooms = rooms
        self._arrived = asyncio.Event()  # B is joining, or the room ended
        self._settled = asyncio.Event()  # both sessions run, or the room ended
        self._serving = 1  # parties whose handler's run() has not returned
        timeline.add("opened", party="a", call_id=info.call_id, agent=agent.name)

    @property
    def call_id(self) -> str:
        """The bridged call's id: its opener's."""
        return self.a.info.call_id

    @property
    def parties(self) -> list[Party]:
        return [p for p in (self.a, self.b) if p is not None]

    def _log_extra(self, **fields: object) -> dict:
        return {"call_id": self.call_id, "agent": self.a.agent.name, **fields}

    # --- joining -----------------------------------------------------------------------------------
    async def join(self, info: CallInfo, leg: Leg, agent: AgentConfig) -> Party:
        """B joins: both interpreter sessions start; raises CallRefused (and ends the room when a
        session could not start)."""
        problem = mirror_problem(self.a.agent, agent)
        if problem is not None:
            raise CallRefused(CloseCode.ROOM_CONFLICT, problem)
        a = self.a
        b = self.b = Party("b", info, leg, agent, self.timeline.now_ms())
        self._arrived.set()
        self.timeline.add("joining", party="b", call_id=info.call_id, agent=agent.name)
        a.voice, b.voice = InterpreterLeg(self, a, b), InterpreterLeg(self, b, a)
        results = await asyncio.gather(
            self._rooms.start_interpreter(a.agent, a.voice, a.info.call_id),
            self._rooms.start_interpreter(b.agent, b.voice, b.info.call_id),
            return_exceptions=True,
        )
        failure = next((r for r in results if not isinstance(r, CallSession)), None)
        if failure is None and self.ended is None:
            a.session, b.session = results
            self._serving += 1
            self.joined_ms = self.timeline.now_ms()
            self.timeline.add("joined")
            a.leg.notify("room", {"status": "joined", "party": "a"})  # B's, once its call has started
            self._settled.set()
            logger.info(
                "bridged call %s: call %s joined", self.call_id, info.call_id, extra=self._log_extra()
            )
            return b
        for started in results:
            if isinstance(started, CallSession):
                started.hang_up("the bridged call could not start", by="bridge")
                self._rooms.spawn(started.run())  # closes its model session and background work
        refusal = self._refusal(failure)
        b.left_ms, b.left_reason, b.refused = self.timeline.now_ms(), refusal.reason, True
        self.end("bridge", f"the interpreter could not be started ({refusal.reason})", refusal.code)
        raise refusal

    def _refusal(self, failure: object) -> CallRefused:
        if failure is None:
            return CallRefused(CloseCode.NO_SUCH_ROOM, "the room ended while this call joined it")
        if isinstance(failure, CallRefused):
            return failure
        logger.error(
            "bridged call %s: an interpreter failed to start",
            self.call_id,
            exc_info=failure if isinstance(failure, BaseException) else None,
            extra=self._log_extra(),
        )
        return CallRefused(CloseCode.INTERNAL_ERROR, "the interpreters could not be started")

    # --- a party's call ----------------------------------------------------------------------------
    async def serve(self, party: Party) -> None:
        """A party's handler's `run()`: A waits for B; then the session hearing this party runs
        until the call ends; then this party's notice and hang-up, if the room ended on it."""
        try:
            if party is self.a:
                await self._wait_for_b()
            elif self.ended is None:
                party.leg.notify("room", {"status": "joined", "party": party.name})
            if party.session is not None:
                try:
                    await party.session.run()
                except Exception:
                    logger.exception("bridged call %s: an interpreter failed", self.call_id)
                    self.end("bridge", "internal error in an interpreter", CloseCode.INTERNAL_ERROR)
                self.end("bridge", "an interpreter's session ended", CloseCode.NORMAL)  # normally it has
            if party.goodbye is not None:
                await asyncio.shield(party.goodbye)
        finally:
            self._serving -= 1
            if self._serving == 0:
                self._rooms.spawn(self._rooms.over(self))

    async def _wait_for_b(self) -> None:
        timeout = self._rooms.join_timeout_s
        self.a.leg.notify("room", {"status": "waiting", "room": self.id, "join_timeout_s": timeout})
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            self.end("timeout", f"the other party did not join within {timeout:g} s", CloseCode.NOT_JOINED)
        await self._settled.wait()

    async def party_left(self, party: Party, reason: str) -> None:
        """A party's own side ended (a handler's `caller_ended`): so does the call."""
        if party.left_ms is None:
            party.left_ms, party.left_reason = self.timeline.now_ms(), reason[:200]
            self.timeline.add("left", party=party.name, reason=reason[:200])
        self.end(f"party_{party.name}", PEER_LEFT, CloseCode.NORMAL)
        if party.session is not None:
            await party.session.caller_ended(reason)

    # --- the end -----------------------------------------------------------------------------------
    def hang_up(self, reason: str, by: str = "admin") -> bool:
        """End the call from outside it (the admin API); False when it was ending already."""
        return self.end(by, reason, CloseCode.NORMAL)

    def end(self, by: str, reason: str, code: int) -> bool:
        """End the call once: every party still on the line hears why and is hung up, and every
        session still running is hung up. False when the call was ending already."""
        if self.ended is not None:
            return False
        self.ended = CallEnd(by, reason, int(code))
        self.timeline.add("end", by=by, reason=reason, code=int(code))
        self._rooms.forget(self)
        self._arrived.set()
        self._settled.set()
        for party in self.parties:
            if party.left_ms is None and (party is self.a or party.session is not None):  # on the line
                party.goodbye = self._rooms.spawn(self._goodbye(party))
                if party.session is not None:
                    party.session.hang_up(reason, by="bridge")
        logger.info(
            "bridged call %s ended by %s (%d)",
            self.call_id,
            by,
            int(code),
            extra=self._log_extra(by=by, code=int(code), reason=reason),
        )
        return True

    async def _goodbye(self, party: Party) -> None:
        end = self.ended
        assert end is not None
        try:
            party.leg.notify("room", {"status": "ended", "reason": end.reason})
            await play_notice(party.leg)
        except Exception:
            logger.exception("bridged call %s: notice failed", self.call_id, extra=self._log_extra())
        try:
            await party.leg.hangup(end.code, end.reason)
        except Exception:  # the transport closes the leg itself once its handler is done
            logger.exception("bridged call %s: hang-up failed", self.call_id, extra=self._log_extra())

    # --- the record --------------------------------------------------------------------------------
    @property
    def turn_latency_ms(self) -> list[int]:
        return [ms for p in self.parties if p.session is not None for ms in p.session.turn_latency_ms]

    def summary(self) -> dict:
        """The call's one record, shaped as `CallSession.summary()` plus `bridge`: the room, both
        legs and both interpreters' own summaries. The transcript is both interpreters' on the
        room's timeline: `party_a` / `party_b` (what the background model heard a party say) and
        `interpreter_a` / `interpreter_b` (what the interpreter of that party said)."""
        interpreters = [
            {"party": p.name, "agent": p.agent.name, **p.session.summary()}
            for p in self.parties
            if p.session is not None
        ]
        offset = self.joined_ms or 0
        transcript = sorted(
            (
                {
                    **entry,
                    "role": f"{'party' if entry['role'] == 'caller' else 'interpreter'}_{i['party']}",
                    "start_ms": entry["start_ms"] + offset,
                    "end_ms": entry["end_ms"] + offset,
                }
                for i in interpreters
                for entry in i["transcript"]
            ),
            key=lambda e: e["start_ms"],
        )
        return {
            "call_id": self.call_id,
            "agent": self.a.agent.name,
            "model": next((i["model"] for i in interpreters if i["model"]), None),
            "ended": dataclasses.asdict(self.ended) if self.ended else None,
            "frames_sent": sum(i["frames_sent"] for i in interpreters),
            "turns_received": sum(i["turns_received"] for i in interpreters),
            "unanswered_frames": sum(i["unanswered_frames"] for i in interpreters),
            "transcript": transcript,
            "timeline": self.timeline.to_dict(),
            "bridge": {
                "room": self.id,
                "legs": [p.record() for p in self.parties],
                "interpreters": interpreters,
            },
            **self.details,
        }


class PartyHandler:
    """What a party's transport talks to: a `telephony.leg.CallHandler` for one leg of a room."""

    def __init__(self, room: Room, party: Party) -> None:
        self.room = room
        self.party = party

    async def caller_frame(self, frame: np.ndarray) -> None:
        party = self.party
        if party.session is None or party.voice is None or self.room.ended is not None:
            self.room.timeline.count(f"frames_unheard_{party.name}")  # before the join, after the end
            return
        party.voice.heard(frame)
        await party.session.caller_frame(frame)

    async def caller_dtmf(self, digits: str) -> None:
        if self.party.session is not None:
            await self.party.session.caller_dtmf(digits)

    async def run(self) -> None:
        await self.room.serve(self.party)

    async def caller_ended(self, reason: str) -> None:
        await self.room.party_left(self.party, reason)

    def hang_up(self, reason: str, by: str = "admin") -> bool:
        """The admin API hangs up either leg: the whole call ends."""
        return self.room.hang_up(reason, by)


class Rooms:
    """The rooms of one gateway process, by id. `start_interpreter` makes and starts each
    direction's session; `on_over(room)` gets each room once both its parties are done."""

    def __init__(
        self,
        start_interpreter: StartInterpreter,
        *,
        join_timeout_s: float = 120.0,
        on_over: RoomOver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start_interpreter = start_interpreter
        self.join_timeout_s = join_timeout_s
        self._on_over = on_over
        self._clock = clock
        self._rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._rooms)

    def open(self, info: CallInfo, leg: Leg, agent: AgentConfig) -> PartyHandler:
        """A new room with this call as party A; refused (1008) unless its agent interprets."""
        if agent.translation_target is None:
            raise CallRefused(
                CloseCode.POLICY_VIOLATION,
                f"agent {agent.name!r} does not interpret: a room needs a translation agent",
            )
        room_id = secrets.token_urlsafe(ROOM_ID_BYTES)
        room = Room(self, room_id, info, leg, agent, Timeline(self._clock))
        self._rooms[room_id] = room
        return PartyHandler(room, room.a)

    async def join(self, room_id: str, info: CallInfo, leg: Leg, agent: AgentConfig) -> PartyHandler:
        """This call joins room `room_id` as party B; raises CallRefused (4410, 4409, or the
        reason an interpreter could not start)."""
        room = self._rooms.get(room_id)
        if room is None:
            raise CallRefused(CloseCode.NO_SUCH_ROOM, "no such room (never opened, ended or timed out)")
        if room.b is not None:
            raise CallRefused(CloseCode.ROOM_CONFLICT, "the room is full: both parties are on the call")
        return PartyHandler(room, await room.join(info, leg, agent))

    def forget(self, room: Room) -> None:
        """No more joins to `room`: it is ending."""
        if self._rooms.get(room.id) is room:
            del self._rooms[room.id]

    def spawn(self, coro: Awaitable) -> asyncio.Task:
        """A task of some room's, held here until it is done (a room's own tasks outlive its calls)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def over(self, room: Room) -> None:
        if self._on_over is None:
            return
        try:
            await self._on_over(room)
        except Exception:
            logger.exception("bridged call %s: on_over failed", room.call_id, extra={"call_id": room.call_id})
