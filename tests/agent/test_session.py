"""CallSession between a recording fake leg and the fake model server (a real websocket server)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

import numpy as np
import pytest

from agent.config import AgentConfig, get_agent
from agent.session import CallSession, ToolEvent
from telephony.leg import CallInfo, CloseCode, Leg
from tests.fakes.model_server import FakeModelServer, Step

pytestmark = pytest.mark.timeout(30)


class FakeLeg:
    """Records what the session does to the call, in order."""

    def __init__(self, can_transfer: bool = False) -> None:
        self.info = CallInfo("c1", "native", "support", 16000, "pcm16")
        self.log: list[tuple] = []
        self.can_transfer = can_transfer
        self.hung_up: tuple | None = None
        self._changed = asyncio.Event()

    def _record(self, *action) -> None:
        self.log.append(action)
        self._changed.set()

    def play(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.int16 and frame.shape == (3200,)
        self._record("play", int(frame[0]))

    def utterance_end(self) -> None:
        self._record("utterance_end")

    def interrupt(self) -> None:
        self._record("interrupt")

    def notify(self, kind: str, data: Mapping[str, object]) -> None:
        self._record("notify", kind)

    async def transfer(self, target: str) -> bool:
        self._record("transfer", target)
        return self.can_transfer

    async def hangup(self, code: int, reason: str) -> None:
        self.hung_up = (code, reason)
        self._changed.set()

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:
        async def wait():
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def wait_hangup(self, timeout: float = 5.0) -> tuple:
        await self.wait_for(lambda: self.hung_up is not None, timeout)
        return self.hung_up

    def plays(self) -> int:
        return sum(1 for a in self.log if a[0] == "play")


def test_fake_leg_is_a_leg():
    assert isinstance(FakeLeg(), Leg)


async def started(fake: FakeModelServer, leg: FakeLeg, agent: AgentConfig | None = None, **kw) -> tuple:
    session = CallSession(agent or get_agent("support"), leg, model_url=fake.url, call_id="c1", **kw)
    await session.start()
    return session, asyncio.create_task(session.run())


async def send_frames(session: CallSession, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await session.caller_frame(np.full(3200, i, np.int16))


async def hang_up_as_caller(session: CallSession, run: asyncio.Task) -> None:
    await session.caller_ended("caller hung up")
    await asyncio.wait_for(run, 5)


FLOORS = [
    "speak",
    "speak",
    "speak",
    "listen",
    "speak",
    "speak",
    "yield",
    "listen",
    "backchannel",
    "speak",
    "listen",
]


async def test_floors_become_utterance_ends_and_interrupts():
    def script(seq, session):
        return Step(FLOORS[seq] if seq < len(FLOORS) else "listen", text="ab" if seq in (0, 1, 4) else "")

    leg = FakeLeg()
    async with FakeModelServer(script) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, len(FLOORS))
        await leg.wait_for(lambda: leg.plays() == len(FLOORS))
        await hang_up_as_caller(session, run)
        events = fake.sessions[0].events
    actions = [a for a in leg.log if a[0] != "notify"]
    expected = []
    for seq, _floor in enumerate(FLOORS):
        if seq == 3 or seq == 10:
            expected.append(("utterance_end",))
        if seq == 6:
            expected += [("interrupt",), ("utterance_end",)]
        expected.append(("play", seq))  # the echoed frame: its first sample is its index
    assert actions == expected
    assert leg.hung_up is None  # the caller hung up: the transport closes, not the session
    assert session.transcript.to_list() == [
        {"role": "agent", "start_ms": 0, "end_ms": 400, "text": "abab"},
        {"role": "agent", "start_ms": 800, "end_ms": 1000, "text": "ab"},
    ]
    assert ("notify", "transcript") in leg.log
    counters = session.timeline.counters
    assert counters["utterances"] == 3 and counters["interrupts"] == 1 and counters["agent_frames"] == 11
    assert events == [("caller_hangup", "caller hung up")]
    assert session.ended.by == "caller"


async def test_skipped_micro_turns_are_counted():
    leg = FakeLeg()
    async with FakeModelServer(skip=frozenset({2, 3, 6})) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, 8)
        await fake.wait_for(lambda: fake.sessions[0].frames == 8 and fake.sessions[0].turns_sent == 5)
        await hang_up_as_caller(session, run)
    summary = session.summary()
    assert summary["timeline"]["counters"]["skipped_turns"] == 3
    assert (
        summary["frames_sent"] == 8 and summary["turns_received"] == 5 and summary["unanswered_frames"] == 3
    )
    assert [e["count"] for e in summary["timeline"]["events"] if e["kind"] == "skipped_turns"] == [2, 1]


async def test_every_tool_call_gets_an_answer_never_silence():
    calls = {
        0: {"id": "a", "name": "lookup_order", "arguments": {"order_id": "A-123"}},
        1: {"id": "b", "name": "q#%zz", "arguments_raw": "{{{"},
        2: {"id": "c", "name": "search_faq", "arguments": {"q": "hours"}},
    }
    leg = FakeLeg()
    async with FakeModelServer(lambda seq, s: Step("listen", tool_call=calls.get(seq))) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, 3)
        await fake.wait_for(lambda: len(fake.sessions[0].events) == 3)
        await hang_up_as_caller(session, run)
        events = fake.sessions[0].events[:3]
    # Payloads are the compact JSON of the error, as the model was trained on.
    assert sorted((kind, json.loads(p)) for kind, p in events) == [
        ("tool_error", "tool not allowed"),
        ("tool_error", "tool unavailable"),
        ("tool_error", "tool unavailable"),
    ]
    assert all(p == json.dumps(json.loads(p), separators=(",", ":")) for _, p in events)
    assert (
        session.timeline.counters["tool_calls"] == 3 and session.timeline.counters["tools_not_allowed"] == 1
    )


class SlowOrBrokenRouter:
    async def call(self, session, call):
        if call.name == "lookup_order":
            await asyncio.Event().wait()  # never answers
        if call.name == "search_faq":
            raise RuntimeError("worker exploded")
        return ToolEvent.result(call, {"slot": "tomorrow 10:00"})


async def test_router_timeouts_failures_and_results():
    calls = {
        0: {"id": "a", "name": "lookup_order", "arguments": {}},
        1: {"id": "b", "name": "search_faq", "arguments": {}},
        2: {"id": "c", "name": "book_callback", "arguments": {}},
    }
    leg = FakeLeg()
    async with FakeModelServer(lambda seq, s: Step("listen", tool_call=calls.get(seq))) as fake:
        session, run = await started(fake, leg, tool_router=SlowOrBrokenRouter(), tool_timeout=0.3)
        await send_frames(session, 3)
        await fake.wait_for(lambda: len(fake.sessions[0].events) == 3)
        await hang_up_as_caller(session, run)
        events = [(k, json.loads(p)) for k, p in fake.sessions[0].events[:3]]
    assert ("tool_error", "tool timed out") in events
    assert ("tool_error", "tool failed") in events
    assert ("tool_result", {"slot": "tomorrow 10:00"}) in events


async def test_end_call_hangs_up_and_says_bye():
    leg = FakeLeg()

    def script(seq, s):
        return Step("speak", tool_call={"id": "e", "name": "end_call", "arguments": {}} if seq == 2 else None)

    async with FakeModelServer(script) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, 3)
        assert await leg.wait_hangup() == (CloseCode.NORMAL, "the agent ended the call")
        await asyncio.wait_for(run, 5)
        await fake.wait_for(lambda: fake.sessions[0].closed)
        assert fake.sessions[0].bye
    assert session.ended.by == "agent"
    assert [a for a in leg.log if a[0] == "play"] == [("play", 0), ("play", 1)]  # nothing after end_call


@pytest.mark.parametrize("can_transfer", [True, False])
async def test_transfer_uses_the_configured_number_only(can_transfer):
    leg = FakeLeg(can_transfer)
    call = {"id": "t", "name": "transfer", "arguments": {"number": "+19005550000"}}
    async with FakeModelServer(lambda seq, s: Step("listen", tool_call=call if seq == 0 else None)) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, 1)
        if can_transfer:
            assert await leg.wait_hangup() == (CloseCode.NORMAL, "transferred to a human")
            await asyncio.wait_for(run, 5)
        else:
            await fake.wait_for(lambda: fake.sessions[0].events)
            kind, payload = fake.sessions[0].events[0]
            assert (kind, json.loads(payload)) == (
                "tool_error",
                "transfer not available on this line",
            )
            await hang_up_as_caller(session, run)
    assert ("transfer", "+15555550100") in leg.log  # never the number the model wrote


async def test_a_dropped_model_session_hangs_up_with_a_reason():
    leg = FakeLeg()
    async with FakeModelServer(drop_after=3) as fake:
        session, run = await started(fake, leg)
        await send_frames(session, 3)
        code, reason = await leg.wait_hangup()
        await asyncio.wait_for(run, 5)
    assert code == CloseCode.BAD_GATEWAY
    assert reason == "model server closed the session (1011: simulated failure)"
    await session.caller_frame(np.zeros(3200, np.int16))  # a late frame is dropped quietly
    assert session.timeline.counters["caller_frames_dropped"] == 1


async def test_no_personal_data_in_log_messages(caplog):
    caplog.set_level(logging.DEBUG)
    call = {"id": "p", "name": "lookup_order", "arguments": {"card": "4111111111111111"}}
    leg = FakeLeg()

    def script(seq, s):
        return Step("speak", text="your code is 8675309", tool_call=call if seq == 0 else None)

    async with FakeModelServer(script) as fake:
        session, run = await started(fake, leg)
        await session.caller_dtmf("4321")
        await send_frames(session, 2)
        await fake.wait_for(lambda: len(fake.sessions[0].events) == 2)
        await hang_up_as_caller(session, run)
    # Parley's own log lines (the websockets library's DEBUG frame dumps are its own business;
    # the parley commands keep that logger at INFO).
    bodies = " ".join(r.getMessage() for r in caplog.records if r.name.startswith(("agent", "telephony")))
    assert "model session started" in bodies and "session ended by caller" in bodies
    for secret in ("4111111111111111", "8675309", "4321"):
        assert secret not in bodies
    assert fake.sessions[0].events[0] == ("dtmf", "4321")  # ... while the model did get the digits
