"""The tick scheduler: decides which slots step each 200 ms tick. Plain Python, no tensors.

Sessions are admitted into free slots (or refused at capacity), push 200 ms caller frames and
events into per-slot inboxes, and leave. Once per tick `plan()` turns the inboxes into a
`TickPlan` for the runner: the slots whose frame arrived (one frame each), their events, slots to
reset and prefixes to pin. How events are metered follows the checkpoint's `event_repr`: "bytes",
event tokens, at most `max_event_tokens` per slot per tick (longer events continue on the next
ticks); "words", whole events (each `[marker, *payload bytes]`), at most `max_event_tokens` per slot
per tick. A live slot whose frame has not arrived by the tick is left out of the step (its state
does not advance) and counted late; the caller's side hears that gap as lost audio. Inboxes are
bounded: a slot more than `max_queued_frames` behind drops its oldest frames and counts them, so a
stalled call catches up instead of lagging for ever; and a slot that has had a frame waiting behind
the one it steps for `catch_up_after` ticks in a row skips one frame (counted), because a backlog
that forms once (a slow tick, a burst) would otherwise add its delay to every later turn of the
call: frames arrive exactly as fast as ticks consume them. A slot's event backlog is bounded too
(`max_pending_event_tokens` tokens, or `max_pending_events` events in words mode): an event past
it is refused whole.

The scheduler never touches the model; `model.runner` executes plans, `model.server` feeds it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from model.config import EVENT_REPRS
from model.protocol import DEFAULT_TEMPERATURE, DEFAULT_TOP_P


@dataclass
class Sampling:
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int = 0


@dataclass
class TickPlan:
    tick: int
    step: list[int] = field(default_factory=list)  # slots stepping this tick, ascending
    frames: dict[int, bytes] = field(default_factory=dict)  # slot -> 6400 bytes PCM16 LE
    frame_index: dict[int, int] = field(default_factory=dict)  # slot -> which of its frames (0-based)
    events: dict[int, list] = field(default_factory=dict)  # slot -> event tokens, or events ("words")
    resets: list[int] = field(default_factory=list)  # slots to clear before stepping
    prefills: dict[int, list[int]] = field(default_factory=dict)  # slot -> prefix tokens
    sampling: dict[int, Sampling] = field(default_factory=dict)


@dataclass
class SlotStats:
    frames: int = 0  # frames received
    stepped: int = 0  # micro-turns stepped
    late: int = 0  # ticks the slot was live but had no frame
    dropped: int = 0  # frames dropped because the inbox was full
    skipped: int = 0  # frames skipped to catch up with a standing backlog


@dataclass
class _Slot:
    session: str
    frames: deque = field(default_factory=deque)
    events: deque = field(default_factory=deque)  # pending event tokens (or whole events), in order
    started: bool = False  # first frame seen: from then on a missing frame is late
    backlog_ticks: int = 0  # consecutive ticks with a frame waiting behind the stepped one
    stats: SlotStats = field(default_factory=SlotStats)


class Scheduler:
    def __init__(
        self,
        max_slots: int,
        max_event_tokens: int,
        max_queued_frames: int = 3,
        max_pending_event_tokens: int = 4096,
        catch_up_after: int = 5,
        event_repr: str = "bytes",
        max_pending_events: int = 64,
    ) -> None:
        if max_slots <= 0:
            raise ValueError(f"max_slots={max_slots} must be positive")
        if event_repr not in EVENT_REPRS:
            raise ValueError(f"event_repr={event_repr!r} must be one of {', '.join(EVENT_REPRS)}")
        self.max_slots = max_slots
        self.max_event_tokens = max_event_tokens
        self.max_queued_frames = max_queued_frames
        self.max_pending_event_tokens = max_pending_event_tokens
        self.catch_up_after = catch_up_after
        self.whole_events = event_repr == "words"
        self.max_pending_events = max_pending_events
        self._slots: dict[int, _Slot] = {}
        self._free = list(range(max_slots))
        self._resets: list[int] = []
        self._prefills: dict[int, list[int]] = {}
        self._sampling: dict[int, Sampling] = {}
        self.tick = 0
        self.total_late = 0
        self.total_dropped = 0
        self.total_skipped = 0

    # -- membership ----------------------------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._slots)

    def admit(self, session: str, prefix: list[int], sampling: Sampling) -> int | None:
        """A free slot for a new session, reset and pinned with its prefix; None at capacity."""
        if not self._free:
            return None
        slot = self._free.pop(0)
        self._slots[slot] = _Slot(session)
        self._resets.append(slot)
        self._prefills[slot] = list(prefix)
        self._sampling[slot] = sampling
        return slot

    def release(self, slot: int) -> SlotStats | None:
        """The session left: its slot is free again (and cleared before anyone else steps it)."""
        entry = self._slots.pop(slot, None)
        if entry is None:
            return None
        self._prefills.pop(slot, None)
        self._sampling.pop(slot, None)
        self._free.append(slot)
        self._free.sort()
        return entry.stats

    def stats(self, slot: int) -> SlotStats | None:
        entry = self._slots.get(slot)
        return entry.stats if entry else None

    # -- inboxes -------------------------------------------------------------------------------

    def push_frame(self, slot: int, frame: bytes) -> int:
        """Queue one caller frame; returns how many old frames were dropped to make room."""
        entry = self._slots[slot]
        entry.frames.append((entry.stats.frames, frame))
        entry.started = True
        entry.stats.frames += 1
        dropped = 0
        while len(entry.frames) > self.max_queued_frames:
            entry.frames.popleft()
            dropped += 1
        entry.stats.dropped += dropped
        self.total_dropped += dropped
        return dropped

    def push_event(self, slot: int, tokens: list[int]) -> bool:
        """Queue one event (its tokens, or in words mode the whole `[marker, *payload bytes]`);
        False (nothing queued) if the slot's event backlog is full."""
        entry = self._slots[slot]
        if self.whole_events:
            if len(entry.events) >= self.max_pending_events:
                return False
            entry.events.append(list(tokens))
            return True
        if len(entry.events) + len(tokens) > self.max_pending_event_tokens:
            return False
        entry.events.extend(tokens)
        return True

    # -- the tick ------------------------------------------------------------------------------

    def plan(self) -> TickPlan:
        plan = TickPlan(tick=self.tick, resets=self._resets, prefills=self._prefills, sampling=self._sampling)
        self._resets, self._prefills, self._sampling = [], {}, {}
        for slot in sorted(self._slots):
            entry = self._slots[slot]
            if not entry.frames:
                if entry.started:
                    entry.stats.late += 1
                    self.total_late += 1
                continue
            if len(entry.frames) >= 2:
                entry.backlog_ticks += 1
                if entry.backlog_ticks >= self.catch_up_after:
                    entry.frames.popleft()
                    entry.backlog_ticks = 0
                    entry.stats.skipped += 1
                    self.total_skipped += 1
            else:
                entry.backlog_ticks = 0
            plan.step.append(slot)
            plan.frame_index[slot], plan.frames[slot] = entry.frames.popleft()
            entry.stats.stepped += 1
            if entry.events:
                n = min(len(entry.events), self.max_event_tokens)
                plan.events[slot] = [entry.events.popleft() for _ in range(n)]
        self.tick += 1
        return plan
