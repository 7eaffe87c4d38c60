"""agent.background: what the background model does with what it hears and decides.

Unit tests: the hearing and reasoning tasks and the call are test doubles here (the workers'
real ones are tested in tests/workers/test_background_in_calls.py), so each test states exactly
what the recogniser heard and what the reasoner decided, and checks what the interaction model
is sent, in what order, and what the call's record keeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
import pytest

from agent.background import COULD_NOT, BackgroundModel, BackgroundSettings, brief_for
from agent.config import SUPPORT, AgentConfig
from agent.timeline import Timeline, Transcript

pytestmark = pytest.mark.timeout(20)


@dataclasses.dataclass(frozen=True)
class Seg:
    index: int
    audio: bytes
    start_s: float
    end_s: float
    final: bool = True


class ScriptedSegmenter:
    """Ends a segment at the frames listed (frame number -> segment)."""

    def __init__(self, at: dict[int, Seg], speaking: bool = False) -> None:
        self.at = at
        self.frames = 0
        self.speaking = speaking  # a segment is open: the caller is talking now

    @property
    def t_s(self) -> float:
        return self.frames * 0.2

    def close(self) -> None:
        self.closed = True

    def push(self, frame: np.ndarray) -> list[Seg]:
        assert frame.dtype == np.float32 and frame.shape == (3200,)
        self.frames += 1
        return [self.at[self.frames]] if self.frames in self.at else []


class Tasks:
    """Hearing answers from `words` (by segment), reasoning from `decisions` (in order)."""

    def __init__(self, words: dict[int, str], decisions: list[dict]) -> None:
        self.words = words
        self.decisions = list(decisions)
        self.histories: list[list[dict]] = []
        self.reasoned = asyncio.Event()

    async def hear(self, call_id, segment, timeout_s):
        await asyncio.sleep(0)
        text = self.words.get(segment.index)
        return {"error": "tool timed out"} if text is None else {"result": {"text": text, "work_s": 0.1}}

    async def reason(self, call_id, brief, history, timeout_s):
        self.histories.append([dict(h) for h in history])
        await asyncio.sleep(0)
        decision = self.decisions.pop(0) if self.decisions else {"kind": "wait"}
        if not self.decisions:
            self.reasoned.set()
        return decision


class Host:
    def __init__(self, results: dict[str, tuple[str, str]] | None = None) -> None:
        self.call_id = "c1"
        self.timeline = Timeline()
        self.transcript = Transcript()
        self.sent: list[tuple[str, str]] = []
        self.tools: list[tuple[str, dict]] = []
        self.results = results or {}

    async def send_event(self, kind: str, payload: str) -> None:
        self.sent.append((kind, payload))

    async def run_tool(self, name: str, arguments: dict) -> tuple[str, str]:
        self.tools.append((name, arguments))
        kind, payload = self.results.get(name, ("tool_error", '"tool failed"'))
        self.sent.append((kind, payload))  # the session sends the tool's event itself
        return kind, payload


SILENT = np.zeros(3200, np.int16)
ORDER = {"order_id": "A-48213", "status": "shipped", "eta": "2026-12-08"}


async def run(model: BackgroundModel, tasks: Tasks, frames: int) -> None:
    for _ in range(frames):
        model.caller_frame(SILENT)
        await asyncio.sleep(0)
    await asyncio.wait_for(tasks.reasoned.wait(), 5)
    await asyncio.sleep(0.05)  # let the last decision's events go out (no waiting on a clock: a yield)
    await model.close()


async def test_words_then_a_lookup_then_a_reply_reach_the_model_in_order():
    segmenter = ScriptedSegmenter({10: Seg(0, b"\0\0" * 3200, 0.4, 1.6)})
    tasks = Tasks(
        {0: "hi, where is my order A 4 8 2 1 3?"},
        [
            {"result": {"kind": "tool", "tool": "lookup_order", "arguments": {"order_id": "A-48213"}}},
            {"result": {"kind": "reply", "text": "Your order A-48213 shipped and arrives December 8."}},
        ],
    )
    host = Host({"lookup_order": ("tool_result", json.dumps(ORDER))})
    model = BackgroundModel(SUPPORT, host, tasks, segmenter=segmenter)
    await run(model, tasks, 12)

    assert [k for k, _ in host.sent] == ["caller_words", "tool_pending", "tool_result", "reply"]
    assert host.sent[0][1] == "hi, where is my order A 4 8 2 1 3?"
    assert host.sent[-1][1] == "Your order A-48213 shipped and arrives December 8."
    assert host.tools == [("lookup_order", {"order_id": "A-48213"})]
    # The second reasoning step read the tool's result; the first the caller's words (the reasoner
    # shows the agent's greeting itself, from the brief).
    assert tasks.histories[0] == [{"role": "caller", "text": "hi, where is my order A 4 8 2 1 3?"}]
    assert tasks.histories[1][-1] == {"role": "tool_result", "tool": "lookup_order", "result": ORDER}
    # The call's record: the caller's words in the transcript at their call time, the decisions.
    assert host.transcript.to_list() == [
        {"role": "caller", "start_ms": 400, "end_ms": 1600, "text": "hi, where is my order A 4 8 2 1 3?"}
    ]
    heard = model.summary()["heard"][0]
    assert heard["vad_ms"] == 400  # the segment ended at 1.6 s of audio and was cut at 2.0 s
    assert [d["kind"] for d in model.summary()["decisions"]] == ["tool", "reply"]


@pytest.mark.parametrize(
    "decision",
    [
        {"error": "tool timed out"},  # the reasoner never answered
        {"result": {"kind": "gibberish"}},
        {"result": "not an object"},
        {"result": {"kind": "tool", "tool": "drop_database", "arguments": {}}},  # not the agent's
        {"result": {"kind": "tool", "tool": "end_call", "arguments": {}}},  # not the reasoner's
        {"result": {"kind": "error", "text": "reasoner output was not JSON"}},
    ],
)
async def test_a_reasoner_that_fails_gets_the_caller_an_apology_and_no_tool_runs(decision):
    segmenter = ScriptedSegmenter({3: Seg(0, b"\0\0" * 3200, 0.0, 0.4)})
    tasks = Tasks({0: "can you delete everything"}, [decision])
    host = Host()
    model = BackgroundModel(SUPPORT, host, tasks, segmenter=segmenter)
    await run(model, tasks, 4)
    assert host.sent == [("caller_words", "can you delete everything"), ("reply", COULD_NOT)]
    assert host.tools == []
    assert host.timeline.get("background_errors") == 1


async def test_empty_words_and_failed_hearing_ask_the_reasoner_nothing():
    segmenter = ScriptedSegmenter(
        {2: Seg(0, b"", 0.0, 0.2), 4: Seg(1, b"", 0.4, 0.6), 6: Seg(2, b"", 0.8, 1.0)}
    )
    tasks = Tasks({0: "  ", 2: "hello"}, [{"result": {"kind": "wait"}}])  # segment 1: hearing timed out
    host = Host()
    model = BackgroundModel(SUPPORT, host, tasks, segmenter=segmenter)
    await run(model, tasks, 7)
    assert host.sent == [("caller_words", "hello")]
    assert len(tasks.histories) == 1
    assert host.timeline.get("hearing_errors") == 1
    assert host.timeline.get("caller_segments_empty") == 1
    # the reasoner's next prompt shows that it waited (as its fine-tuning data does)
    assert model.history == [{"role": "caller", "text": "hello"}, {"role": "wait"}]


async def test_tool_calls_in_a_row_are_bounded():
    segmenter = ScriptedSegmenter({1: Seg(0, b"", 0.0, 0.2)})
    lookup = {"result": {"kind": "tool", "tool": "search_faq", "arguments": {"query": "hours"}}}
    settings = BackgroundSettings(max_tool_steps=2)
    tasks = Tasks({0: "when are you open"}, [lookup] * 3)
    host = Host({"search_faq": ("tool_result", '{"answer":"9 to 18"}')})
    model = BackgroundModel(SUPPORT, host, tasks, settings, segmenter=segmenter)
    await run(model, tasks, 2)
    assert len(host.tools) == 3  # max_tool_steps + 1 reasoning steps, each a tool call
    assert host.sent[-1] == ("reply", COULD_NOT)


async def test_dtmf_and_what_the_agent_said_reach_the_reasoner():
    tasks = Tasks({}, [{"result": {"kind": "wait"}}])
    host = Host()
    model = BackgroundModel(SUPPORT, host, tasks, segmenter=ScriptedSegmenter({}))
    model.agent_said("  Sure,   let me check.  ")
    model.caller_dtmf("4821")
    await asyncio.wait_for(tasks.reasoned.wait(), 5)
    await model.close()
    assert tasks.histories[0][-2:] == [
        {"role": "agent", "text": "Sure, let me check."},
        {"role": "dtmf", "digits": "4821"},
    ]


def test_the_brief_is_the_agents_own_instructions_and_tool_schemas():
    clinic = AgentConfig(
        name="clinic",
        languages=("en",),
        instructions="You book appointments for the Elm Street clinic.",
        greeting="Elm Street clinic, how can I help?",
        tools=("search_faq", "end_call"),
    )
    brief = brief_for(clinic)
    assert brief["instructions"] == clinic.instructions and brief["greeting"] == clinic.greeting
    assert [t["name"] for t in brief["tools"]] == ["search_faq"]  # ending the call is not the reasoner's
    assert brief["tools"][0]["parameters"]["query"]["type"] == "string"
    assert brief["examples"] == []
    # The shipped support agent's demo call and result keys reach the reasoner as they are evaluated.
    support = brief_for(SUPPORT)
    assert support["examples"] and all(e.get("tool") != "end_call" for e in support["examples"])
    assert "status" in dict((t["name"], t) for t in support["tools"])["lookup_order"]["result_keys"]


def test_an_agents_examples_may_use_only_its_own_tools():
    from pydantic import ValidationError

    turn = {"role": "tool_call", "tool": "lookup_order", "arguments": {"order_id": "A-1"}}
    with pytest.raises(ValidationError, match="examples use tools the agent does not have: lookup_order"):
        AgentConfig(name="x", languages=("en",), instructions="i", tools=("search_faq",), examples=(turn,))
    with pytest.raises(ValidationError, match="needs text"):
        AgentConfig(name="x", languages=("en",), instructions="i", examples=({"role": "caller"},))


# --- in a call: CallSession with a background model, the fake model server ------------------------
async def session_with_background(fake, tasks: Tasks, segmenter: ScriptedSegmenter):
    from agent.session import CallSession
    from tests.agent.test_session import FakeLeg

    session = CallSession(SUPPORT, FakeLeg(), model_url=fake.url, call_id="c1", background=tasks)
    await session.start()
    session.background.segmenter = segmenter
    return session, asyncio.create_task(session.run())


@pytest.mark.parametrize("reads_words", [True, False])
async def test_a_call_sends_its_model_only_the_event_kinds_it_reads(reads_words):
    from model.protocol import EVENT_KINDS, LEGACY_EVENT_KINDS
    from tests.fakes.model_server import FakeModelServer, Step

    # The interaction model itself calls lookup_order at micro-turn 1: the background model owns tools.
    def script(seq, s):
        call = {"id": "m1", "name": "lookup_order", "arguments": {"order_id": "A-1"}} if seq == 1 else None
        return Step("listen", tool_call=call)

    tasks = Tasks(
        {0: "where is my order"},
        [
            {"result": {"kind": "tool", "tool": "lookup_order", "arguments": {"order_id": "A-48213"}}},
            {"result": {"kind": "reply", "text": "It shipped."}},
        ],
    )
    kinds = EVENT_KINDS if reads_words else LEGACY_EVENT_KINDS
    async with FakeModelServer(script, events=kinds) as fake:
        session, run = await session_with_background(
            fake, tasks, ScriptedSegmenter({3: Seg(0, b"", 0.0, 0.4)})
        )
        for _ in range(4):
            await session.caller_frame(SILENT)
        await asyncio.wait_for(tasks.reasoned.wait(), 5)
        expected = ["caller_words", "tool_pending", "reply"] if reads_words else ["tool_pending"]
        received = lambda: [k for k, _ in fake.sessions[0].events if k != "tool_error"]  # noqa: E731
        await fake.wait_for(lambda: [k for k in received() if k in expected] == expected)
        await session.caller_ended("caller hung up")
        await asyncio.wait_for(run, 5)
        events = fake.sessions[0].events
    # The model's own tool call was answered, not run; the background's ran through the session's
    # router (none here: "tool unavailable").
    assert ("tool_error", '"the background model runs tools on this call"') in events
    assert ("tool_error", '"tool unavailable"') in events
    assert session.timeline.get("events_not_read_caller_words") == (0 if reads_words else 1)
    summary = session.summary()
    assert summary["background"]["decisions"][0]["tool"] == "lookup_order"
    assert summary["transcript"][0] == {
        "role": "caller",
        "start_ms": 0,
        "end_ms": 400,
        "text": "where is my order",
    }


async def test_a_transfer_the_line_cannot_make_is_heard_as_the_model_heard_it():
    from model.protocol import EVENT_KINDS
    from tests.fakes.model_server import FakeModelServer

    tasks = Tasks(
        {0: "can I talk to a person"},
        [
            {"result": {"kind": "tool", "tool": "transfer", "arguments": {"reason": "wants a person"}}},
            {"result": {"kind": "reply", "text": "Sorry, I cannot transfer you on this line."}},
        ],
    )
    async with FakeModelServer(events=EVENT_KINDS) as fake:
        session, run = await session_with_background(
            fake, tasks, ScriptedSegmenter({2: Seg(0, b"", 0.0, 0.2)})
        )
        for _ in range(2):
            await session.caller_frame(SILENT)
        await asyncio.wait_for(tasks.reasoned.wait(), 5)
        await fake.wait_for(
            lambda: ("reply", "Sorry, I cannot transfer you on this line.") in fake.sessions[0].events
        )
        await session.caller_ended("caller hung up")
        await asyncio.wait_for(run, 5)
        events = fake.sessions[0].events
    error = ("tool_error", '"transfer not available on this line"')
    assert error in events and session.ended.by == "caller"
    # The reasoner read the error the model heard.
    assert tasks.histories[1][-1] == {
        "role": "tool_error",
        "tool": "transfer",
        "error": "transfer not available on this line",
    }


@pytest.mark.parametrize("echo_check", [True, False])
async def test_the_agents_own_echo_is_not_heard_as_the_caller(echo_check):
    """A segment that is only the agent's audio coming back (agent.echo) is counted and dropped;
    the caller's next segment is heard as usual. With the check off, the echo is heard."""
    pytest.importorskip("espeakng_loader")
    from bench.voice import telephone
    from corpus.tts import Espeak

    line = Espeak.instance().synthesize_16k("Your order shipped on June twenty sixth.", "en-us+f3").audio
    line = line[: len(line) // 3200 * 3200]
    echo = telephone(0.1 * line)
    start, end_frame = 1.24, int(np.ceil((1.24 + len(echo) / 16000) / 0.2)) + 1
    echo = np.concatenate([echo, np.zeros(round((end_frame * 0.2 - start) * 16000) - len(echo), np.float32)])
    pcm = (echo * 32767).astype("<i2").tobytes()
    segmenter = ScriptedSegmenter(
        {end_frame: Seg(0, pcm, start, start + 2.0), end_frame + 10: Seg(1, b"\0\0" * 3200, 5.0, 6.0)}
    )
    tasks = Tasks({0: "Your order shipped", 1: "thanks"}, [{"result": {"kind": "wait"}}])
    host = Host()
    settings = BackgroundSettings(echo_check=echo_check)
    model = BackgroundModel(SUPPORT, host, tasks, settings, segmenter=segmenter)
    for k in range(0, len(line), 3200):  # the agent's line plays from 1.0 s
        model.agent_audio((line[k : k + 3200] * 32767).astype(np.int16), 1.0 + k / 16000)
    await run(model, tasks, end_frame + 12)
    if echo_check:
        assert host.sent == [("caller_words", "thanks")]
        assert host.timeline.counters["caller_segments_echo"] == 1
    else:
        heard = [payload for kind, payload in host.sent if kind == "caller_words"]
        assert heard == ["Your order shipped", "thanks"]
        assert "caller_segments_echo" not in host.timeline.counters


async def test_a_line_that_ends_in_digits_waits_for_the_rest_of_the_id():
    """'My order is A-1-2-2' while the caller talks on: the reasoner is asked once, about the whole
    line, not about a lookup of the id's first digits."""
    segmenter = ScriptedSegmenter(
        {2: Seg(0, b"\0\0" * 3200, 0.0, 0.4), 8: Seg(1, b"\0\0" * 3200, 1.0, 1.6)}, speaking=True
    )
    tasks = Tasks({0: "My order is A-1-2-2", 1: "3-7. 8-5-8."}, [{"result": {"kind": "wait"}}])
    host = Host()
    model = BackgroundModel(SUPPORT, host, tasks, segmenter=segmenter)
    for _ in range(7):
        model.caller_frame(SILENT)
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert tasks.histories == []  # held: the caller is still speaking
    segmenter.speaking = False
    await run(model, tasks, 2)
    assert tasks.histories == [[{"role": "caller", "text": "My order is A-1-2-2 3-7. 8-5-8."}]]
    assert host.sent == [("caller_words", "My order is A-1-2-2"), ("caller_words", "3-7. 8-5-8.")]
    assert host.timeline.counters["caller_lines_held"] == 1


@pytest.mark.parametrize("speaking", [True, False])
async def test_a_held_line_is_reasoned_on_after_the_hold_or_at_once_when_the_caller_stopped(speaking):
    segmenter = ScriptedSegmenter({2: Seg(0, b"\0\0" * 3200, 0.0, 0.4)}, speaking=speaking)
    tasks = Tasks({0: "It's A 4 8 2 1 3"}, [{"result": {"kind": "wait"}}])
    model = BackgroundModel(SUPPORT, Host(), tasks, BackgroundSettings(id_hold_s=0.2), segmenter=segmenter)
    await run(model, tasks, 3)  # the caller's next words never come: the hold runs out
    assert tasks.histories == [[{"role": "caller", "text": "It's A 4 8 2 1 3"}]]


async def test_an_interpreter_is_heard_but_never_answered():
    from agent.config import TRANSLATE_EN_ES

    segmenter = ScriptedSegmenter({2: Seg(0, b"\0\0" * 3200, 0.0, 0.4)})
    tasks = Tasks({0: "I would like to book a table"}, [{"result": {"kind": "reply", "text": "Sure."}}])
    host = Host()
    model = BackgroundModel(TRANSLATE_EN_ES, host, tasks, segmenter=segmenter)
    for _ in range(3):
        model.caller_frame(SILENT)
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    await model.close()
    assert host.sent == [("caller_words", "I would like to book a table")]
    assert tasks.histories == []
