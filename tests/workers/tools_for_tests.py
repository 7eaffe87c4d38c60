"""Tools that only the tests' workers have (`parley worker --include tests.workers.tools_for_tests`).

`slow_echo` takes `ms` to answer; `stubborn` ignores its soft time limit, so the hard limit kills
its process; `slow_book` waits `before_ms`, books (a record in `TEST_BOOKINGS`, committed with its
outcome, as the shop's writing tools do), then waits `after_ms` before answering. Each announces
what it did on `EVENTS` and counts its runs per idempotency key, so tests can wait on events and
see how often a tool call really ran.
"""

from __future__ import annotations

import json
import os
import time

from billiard.exceptions import SoftTimeLimitExceeded

from workers import protocol
from workers.tools import tool

EVENTS = "parley:test:events"
TEST_BOOKINGS = "parley:test:bookings"


def runs_key(key: str) -> str:
    return f"parley:test:runs:{key}"


def _announce(store, request, tool: str, event: str) -> None:
    store.r.publish(
        EVENTS,
        json.dumps(
            {"key": request.key, "call_id": request.call_id, "tool": tool, "event": event, "pid": os.getpid()}
        ),
    )


def _work(ms: int) -> None:
    """The tool's own work: busy for `ms` milliseconds (interruptible by the time limits)."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        time.sleep(0.01)


@tool("slow_echo", soft_time_limit_s=2.0, time_limit_s=3.0)
def slow_echo(store, request):
    store.r.incr(runs_key(request.key))
    _announce(store, request, "slow_echo", "started")
    _work(request.arguments["ms"])
    return protocol.result({"echo": request.arguments["text"], "pid": os.getpid()})


@tool("stubborn", soft_time_limit_s=1.0, time_limit_s=2.0)
def stubborn(store, request):
    _announce(store, request, "stubborn", "started")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            time.sleep(0.01)
        except SoftTimeLimitExceeded:
            pass
    return protocol.result({"done": True})


@tool("slow_book", writes=True, soft_time_limit_s=4.0, time_limit_s=5.0)
def slow_book(store, request):
    store.r.incr(runs_key(request.key))
    _announce(store, request, "slow_book", "started")
    _work(request.arguments["before_ms"])

    def compute(pipe):
        value = {"booking": request.key[:8]}
        return protocol.result(value), lambda p: p.hset(TEST_BOOKINGS, request.key, request.call_id)

    outcome = store.commit_write(request.key, compute)
    _announce(store, request, "slow_book", "committed")
    _work(request.arguments["after_ms"])
    return outcome
