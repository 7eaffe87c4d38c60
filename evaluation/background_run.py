"""The background model beside a scenario's call (`parley eval --background`): what it did, on the
call clock, and what the scoring reads of it.

`background_record` turns a finished call (its `CallSession.summary()`: the timeline's events and
the background model's heard segments and decisions; the session time each caller frame was sent;
the event kinds the checkpoint reads; the scenario router's answers) into the call's record.
`meant`, `lookups` and `delays` read that record for `metrics.evaluate_call`. Times: `at_ms` is
the session timeline's (wall clock, ms), `t` the call clock in seconds: caller frame k holds the
audio up to (k+1) * 0.2 s and is sent at `sent_ms[k]` (`call_clock`). The delays are wall-clock
seconds (what hearing and reasoning took), except the one from an annotated turn end (call clock;
the same at `--tick-ms 200`).

Knows nothing of how hearing and reasoning run (in-process or on workers) or of the report.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.background import COULD_NOT
from corpus.call_script import KEY_DATE
from evaluation.metrics import DELAYS, MICRO_TURN_S, meant_text

BACKGROUND_ID = "bg-"  # the session's ids for the background model's tool calls (CallSession.run_tool)
TRIGGER_SLACK_MS = 5  # timeline stamps are whole ms: a trigger this close before a step started it


def call_clock(sent_ms: Sequence[int], tick_s: float = MICRO_TURN_S) -> Callable[[int], float]:
    """Session time (ms) -> call time (s): the latest caller frame sent by then, plus the time
    since, scaled by the tick (at `--tick-ms 100` a wall second is two seconds of the call)."""
    scale = tick_s / MICRO_TURN_S

    def at(ms: int) -> float:
        if not sent_ms:
            return 0.0
        k = max(0, bisect.bisect_right(sent_ms, ms) - 1)
        return round((k + 1) * MICRO_TURN_S + (ms - sent_ms[k]) / 1000 / scale, 3)

    return at


def background_record(
    summary: Mapping[str, Any],
    sent_ms: Sequence[int],
    tick_s: float,
    reads: Sequence[str],
    answers: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The background model's part of one call: per segment what it heard (`heard`), its events
    in order (`events`: caller_words, decision, tool_result / tool_error of its tool calls, dtmf;
    each with at_ms and t), the replies sent (`replies`: t, text, `given`: the checkpoint reads
    `reply` events and the call had not ended) and its tool calls' answers (`answers`)."""
    clock = call_clock(sent_ms, tick_s)
    timeline = summary["timeline"]
    end_ms = next((e["at_ms"] for e in timeline["events"] if e["kind"] == "end"), None)
    events: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    for e in timeline["events"]:
        kind, at_ms = e["kind"], e["at_ms"]
        if kind == "caller_words":
            item = {k: e.get(k) for k in ("text", "start_ms", "end_ms", "latency_ms")}
        elif kind == "background_decision":
            item = {k: v for k, v in e.items() if k not in ("kind", "at_ms")}
            kind = "decision"
        elif kind in ("tool_result", "tool_error") and str(e.get("id", "")).startswith(BACKGROUND_ID):
            item = {"id": e["id"]}
        elif kind == "dtmf":
            item = {}
        else:
            continue
        events.append({"kind": kind, "at_ms": at_ms, "t": clock(at_ms), **item})
        if kind == "decision" and item.get("decision") in ("reply", "error"):
            text = item.get("text") if item["decision"] == "reply" else COULD_NOT
            given = "reply" in reads and (end_ms is None or at_ms <= end_ms)
            replies.append({"at_ms": at_ms, "t": clock(at_ms), "text": text, "given": given})
    background = summary.get("background", {})
    counters = timeline.get("counters", {})
    return {
        "heard": list(background.get("heard", [])),
        "events": events,
        "replies": replies,
        "answers": [dict(a) for a in answers if str(a.get("id", "")).startswith(BACKGROUND_ID)],
        "reads": sorted(set(reads) & {"caller_words", "reply"}),
        "model_tool_calls_refused": counters.get("tools_left_to_background", 0),
    }


def meant(record: Mapping[str, Any], text_by_frame: Mapping[int, str]) -> str:
    """The words the agent meant (`metrics.meant_text`): its text per micro-turn (micro-turn k at
    the call time its frame was sent) and the replies it was given."""
    turns = [((k + 1) * MICRO_TURN_S, text_by_frame[k]) for k in sorted(text_by_frame)]
    return meant_text(turns, [(r["t"], r["text"]) for r in record["replies"] if r["given"]])


def lookups(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(status, ISO date the status is about) of each successful lookup_order the background model
    made (the date field per status: corpus.call_script.KEY_DATE)."""
    out = []
    for a in record["answers"]:
        result = a.get("result")
        if a.get("name") != "lookup_order" or not isinstance(result, dict):
            continue
        status = result.get("status")
        if isinstance(status, str):
            date = result.get(KEY_DATE.get(status, ""))
            out.append((status, date if isinstance(date, str) else None))
    return out


def delays(record: Mapping[str, Any], turn_ends: Sequence[float]) -> dict[str, list[float]]:
    """The delays of `metrics.DELAYS`, in seconds: each non-empty segment's end -> its words (the
    VAD's wait and the hearing); each reply (or apology) from the caller words or tool result the
    reasoner read last before the step that made it (`reply_after_words` / `_after_tool`; a step
    after DTMF counts in neither); each annotated caller turn end -> the first reply after it,
    before the next turn end."""
    out: dict[str, list[float]] = {k: [] for k in DELAYS}
    out["words"] = [h["latency_ms"] / 1000 for h in record["heard"] if h.get("text")]
    triggers: list[tuple[int, str]] = []
    for e in record["events"]:
        if e["kind"] == "caller_words":
            triggers.append((e["at_ms"], "reply_after_words"))
        elif e["kind"] in ("tool_result", "tool_error"):
            triggers.append((e["at_ms"], "reply_after_tool"))
        elif e["kind"] == "dtmf":
            triggers.append((e["at_ms"], "keys"))
        elif e["kind"] == "decision" and e.get("decision") in ("reply", "error") and e.get("ms") is not None:
            started = e["at_ms"] - e["ms"]
            read = [(at, key) for at, key in triggers if at <= started + TRIGGER_SLACK_MS]
            if read and read[-1][1] in out:
                out[read[-1][1]].append((e["at_ms"] - read[-1][0]) / 1000)
    ends = sorted(turn_ends)
    for i, t in enumerate(ends):
        until = ends[i + 1] if i + 1 < len(ends) else float("inf")
        after = [r["t"] for r in record["replies"] if t < r["t"] <= until]
        if after:
            out["reply_after_turn_end"].append(round(min(after) - t, 3))
    return out
