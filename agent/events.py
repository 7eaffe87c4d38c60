"""The text of events injected into a call's model session (tool results, errors, timers).

`event_json` (defined with the rest of the session contract in model.protocol) is shared by the
live call path (agent.session) and the training data (corpus.render), so the model reads in a call
exactly the payloads it was trained on. Standard library only: the gateway process stays free of
torch.
"""

from __future__ import annotations

from model.protocol import event_json

__all__ = [
    "SESSION_TOOLS",
    "TOOL_PENDING_AFTER_S",
    "TOOL_PENDING_EVERY_S",
    "event_json",
    "tool_pending_payload",
    "tool_pending_times",
]


# Tools the call session carries out itself (hang up, hand off): no worker, no pending notices.
SESSION_TOOLS = ("end_call", "transfer")

# A slow tool's "still working" notices: the first this long after the call, then this often.
TOOL_PENDING_AFTER_S = 1.5
TOOL_PENDING_EVERY_S = 3.0


def tool_pending_payload(seconds: float) -> str:
    """The payload of a `tool_pending` event: a tool call is still running after `seconds`.
    Kept to one micro-turn of event tokens (the model reads 16 a micro-turn), so a notice never
    holds up the answer queued behind it for long; the event kind already says what it is."""
    return event_json({"seconds": round(seconds)})


def tool_pending_times(after_s: float, every_s: float, duration_s: float) -> list[float]:
    """Seconds after the call at which a tool that answers after `duration_s` gets notices."""
    times, t = [], after_s
    while t < duration_s:
        times.append(t)
        t += every_s
    return times
