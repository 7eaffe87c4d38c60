"""A call's record: the transcript (who said what, when) and the timeline (what happened, when).

`Transcript` keeps the agent's text as the model writes it, micro-turn by micro-turn, joined into
entries while the text keeps coming in consecutive micro-turns, and the caller's words as the
background model hears them (one entry per speech segment, in call-time order). `Timeline` keeps
counters and a bounded list of timestamped events (floor changes, utterance ends, interrupts, tool
calls and results, the background model's words and decisions, skipped micro-turns, DTMF, the end
of the call). Both are call data for the call's owner (the `parley call` timeline,
the admin API's call records), never log lines. Nothing here knows about transports or the model.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable

from model.protocol import MICRO_TURN_MS


@dataclasses.dataclass
class TranscriptEntry:
    role: str  # "agent" | "caller"
    start_ms: int
    end_ms: int
    text: str
    last_seq: int = -1


class Transcript:
    def __init__(self) -> None:
        self.entries: list[TranscriptEntry] = []

    def add_agent(self, seq: int, t_ms: int, text: str) -> None:
        """Text the model wrote in micro-turn `seq` (at `t_ms` of the session)."""
        last = self.entries[-1] if self.entries else None
        if last is not None and last.role == "agent" and seq - last.last_seq <= 1:
            last.text += text
            last.end_ms = t_ms + MICRO_TURN_MS
            last.last_seq = seq
        else:
            self.entries.append(TranscriptEntry("agent", t_ms, t_ms + MICRO_TURN_MS, text, seq))

    def add_caller(self, start_ms: int, end_ms: int, text: str) -> None:
        """What the background model heard the caller say in one speech segment (call time)."""
        entry = TranscriptEntry("caller", start_ms, end_ms, text)
        at = len(self.entries)
        while at > 0 and self.entries[at - 1].start_ms > start_ms:
            at -= 1
        self.entries.insert(at, entry)

    def text(self, role: str = "agent") -> str:
        return " ".join(e.text.strip() for e in self.entries if e.role == role and e.text.strip())

    def to_list(self) -> list[dict]:
        return [
            {"role": e.role, "start_ms": e.start_ms, "end_ms": e.end_ms, "text": e.text} for e in self.entries
        ]


class Timeline:
    """Counters plus up to `max_events` events, each stamped with ms since the timeline began."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_events: int = 20_000) -> None:
        self._clock = clock
        self._t0 = clock()
        self._max = max_events
        self.events: list[dict] = []
        self.counters: collections.Counter = collections.Counter()
        self.events_dropped = 0
        self.first_ms: dict[str, int] = {}

    def now_ms(self) -> int:
        return int(round((self._clock() - self._t0) * 1000))

    def add(self, kind: str, **fields: object) -> None:
        if len(self.events) >= self._max:
            self.events_dropped += 1
            return
        self.events.append({"at_ms": self.now_ms(), "kind": kind, **fields})

    def count(self, name: str, n: int = 1) -> None:
        if name not in self.first_ms:
            self.first_ms[name] = self.now_ms()
        self.counters[name] += n

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)

    def to_dict(self, last: int | None = None) -> dict:
        events = self.events if last is None else self.events[-last:]
        return {
            "counters": dict(sorted(self.counters.items())),
            "first_ms": dict(sorted(self.first_ms.items())),
            "events": list(events),
            "events_dropped": self.events_dropped,
        }
