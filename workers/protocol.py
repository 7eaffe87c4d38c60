"""What the gateway's tool router and the tool workers say to each other, and the Redis keys.

A tool call travels as a Celery task named `task_name(tool)` with JSON keyword arguments
(`ToolRequest.kwargs()`): the tool's arguments, an idempotency key (fresh per tool call, so every
redelivery of the same message carries the same one), the call and tool-call ids, the router's
reply channel and the tool's name (one task, `task_name("webhook")`, runs every registered
webhook tool: `workers.webhooks`). The worker stores the tool's outcome under `outcome_key(key)`
(first writer wins: a redelivered task, or a router that gave up waiting, finds it there) and
publishes a `reply` on the channel. An outcome is `{"result": {...}}` or `{"error": "..."}`,
exactly the `(result, error)` pair `workers.shop.Shop.call` gives, plus an optional `timer` (a
booked callback's timer event: when it is due, as Unix time, and what it says).

Standard library only; shared by agent/ (the router) and workers/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

TASK_PREFIX = "parley.tools."
KEY_PREFIX = "parley:"
# The background model's tasks (workers.background): the same request, outcome and reply as a
# tool's, on queues of their own. Hearing: {"audio": base64 int16 16 kHz, "segment": N} ->
# {"result": {"text", "audio_s", "work_s"}}. Reasoning: {"brief": {...}, "history": [...]} ->
# {"result": {"kind": "tool" | "reply" | "wait" | "error", "tool", "arguments", "text", ...}}.
HEAR_TASK = "parley.background.hear"
REASON_TASK = "parley.background.reason"
# The error a task's outcome carries when its body raised (logged by type only, never quoted).
FAILED = "tool failed"


def task_name(tool: str) -> str:
    return TASK_PREFIX + tool


def tool_of(task: str) -> str:
    return task[len(TASK_PREFIX) :] if task.startswith(TASK_PREFIX) else task


def outcome_key(key: str) -> str:
    """Where a tool call's outcome is kept (its idempotency record)."""
    return f"{KEY_PREFIX}tool:outcome:{key}"


def reply_channel(router_id: str) -> str:
    """The pub/sub channel one router (one gateway process) hears its results on."""
    return f"{KEY_PREFIX}tool:replies:{router_id}"


@dataclass(frozen=True)
class ToolRequest:
    """One tool call as a task's keyword arguments."""

    key: str  # idempotency key: the same for every delivery of this tool call
    call_id: str
    tool_call_id: str
    arguments: dict[str, Any]
    reply_to: str  # pub/sub channel for the outcome
    tool: str = ""  # the tool's name: what a shared task (webhook tools') runs; "" from older routers

    def kwargs(self) -> dict[str, Any]:
        return asdict(self)


def result(value: dict[str, Any], timer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"result": value, **({"timer": timer} if timer else {})}


def error(message: str) -> dict[str, Any]:
    return {"error": message}


def reply(request: ToolRequest, outcome: dict[str, Any], work_s: float = 0.0) -> str:
    """The message published on `request.reply_to` (`work_s`: the tool's own time, for benchmarks)."""
    return json.dumps(
        {
            "key": request.key,
            "call_id": request.call_id,
            "id": request.tool_call_id,
            "outcome": outcome,
            "work_s": round(work_s, 6),
        },
        separators=(",", ":"),
    )
