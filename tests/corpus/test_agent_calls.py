"""The text-only agent calls (corpus.agent_calls): deterministic, valid tool arguments, the live
loop's event order, no held-out domain, enough variety, and every call renders as a prompt."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from corpus import agent_handoff
from corpus.agent_calls import AgentCall, agent_call
from corpus.spoken_values import agent_time, fmt_pattern, spoken_code, spoken_time
from workers.reasoner import argument_problem, chat_messages
from workers.shop import spoken_amount, spoken_date, spoken_id
from workers.spoken import normalize_spoken

FORBIDDEN = re.compile(r"appointment|patient|clinic|doctor", re.IGNORECASE)
# a result's dates, times, amounts and ids: the agent says every one of them
KEY_FIELD = re.compile(r"\d{4}-\d{2}-\d{2}|\d\d:\d\d|\d+\.\d\d|(?=.*\d)[A-Z0-9-]{4,}")
ROLES = {"caller", "agent", "tool_call", "tool_result", "tool_error", "dtmf", "wait"}


@pytest.fixture(scope="module")
def calls() -> list[AgentCall]:
    return [agent_call(seed) for seed in range(2000)]


def test_same_seed_same_call() -> None:
    for seed in (0, 7, 123, 99_999):
        assert agent_call(seed) == agent_call(seed)
    assert agent_call(1) != agent_call(2)


def test_tool_arguments_fit_their_specs(calls: list[AgentCall]) -> None:
    n = 0
    for call in calls:
        for e in call.events:
            if e["role"] != "tool_call":
                continue
            spec = call.brief.tool(e["tool"])
            assert spec is not None, e["tool"]
            assert argument_problem(spec, e["arguments"]) is None, (spec, e["arguments"])
            required = {a for a, p in spec.parameters.items() if p["required"]}
            assert required <= set(e["arguments"])
            n += 1
    assert n > len(calls)  # most calls call a tool, some twice


def test_no_held_out_domain_anywhere(calls: list[AgentCall]) -> None:
    for call in calls:
        text = json.dumps([call.brief.instructions, call.brief.greeting, call.brief.name])
        text += json.dumps([(t.name, t.description, t.parameters, t.result_keys) for t in call.brief.tools])
        text += json.dumps(call.events)
        assert not FORBIDDEN.search(text), FORBIDDEN.search(text).group(0)


def test_events_come_in_the_live_loops_order(calls: list[AgentCall]) -> None:
    for call in calls:
        events = call.events
        assert events and events[0]["role"] == "caller"
        for i, e in enumerate(events):
            assert e["role"] in ROLES
            prev = events[i - 1]["role"] if i else None
            nxt = events[i + 1] if i + 1 < len(events) else None
            if e["role"] == "tool_call":
                assert prev in ("caller", "dtmf", "tool_result"), "a tool call comes after what was heard"
                assert nxt is not None and nxt["role"] in ("tool_result", "tool_error")
                assert nxt["tool"] == e["tool"]
            if e["role"] in ("tool_result", "tool_error"):
                assert prev == "tool_call"
                assert nxt is not None and nxt["role"] in ("agent", "tool_call")
            if e["role"] == "wait":
                assert prev == "caller"
            if e["role"] == "agent":
                assert nxt is None or nxt["role"] != "tool_call"
                assert e["text"].strip()


def test_backchannels_and_unfinished_turns_are_waited_on(calls: list[AgentCall]) -> None:
    waits = [c.events[i - 1]["text"] for c in calls for i, e in enumerate(c.events) if e["role"] == "wait"]
    assert len(waits) > 100
    assert any(w.rstrip(".").lower() in ("mm-hmm", "uh-huh", "okay") for w in waits)
    assert any(w.endswith("...") or w.endswith("um") for w in waits)


def _stated(value: object, reply: str) -> bool:
    """Whether the agent's reply says the result's value in one of the ways the agent says it."""
    text = str(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return spoken_date(value) in reply
    if isinstance(value, str) and re.fullmatch(r"\d\d:\d\d", value):
        return agent_time(value) in reply
    if isinstance(value, str) and re.fullmatch(r"\d+\.\d\d", value):
        return spoken_amount(value) in reply or f"${value}" in reply
    return spoken_id(text) in reply or text.lower() in reply.lower()


def test_replies_to_results_state_their_fields(calls: list[AgentCall]) -> None:
    replies = 0
    for call in calls:
        for i, e in enumerate(call.events):
            if e["role"] == "tool_result":
                reply = call.events[i + 1]["text"]
                facts = [v for v in e["result"].values() if isinstance(v, str) and KEY_FIELD.fullmatch(v)]
                assert all(_stated(v, reply) for v in facts), (e["result"], reply)
                assert any(_stated(v, reply) for v in e["result"].values()), (e["result"], reply)
                replies += 1
    assert replies > len(calls)


def test_variety(calls: list[AgentCall]) -> None:
    sample = calls[:500]
    domains = {c.brief.name.rsplit("-", 1)[0] for c in sample}
    tools = {t.name for c in sample for t in c.brief.tools}
    args = {a for c in sample for t in c.brief.tools for a in t.parameters}
    assert len(domains) >= 14, domains
    assert len(tools) >= 30, len(tools)
    assert len(args) >= 60, len(args)
    roles = {e["role"] for c in sample for e in c.events}
    assert roles == ROLES
    shapes = [[e["role"] for e in c.events] for c in sample]
    assert any(s.count("tool_call") >= 2 for s in shapes)
    assert sum("tool_error" in s for s in shapes) > 25
    assert len({c.brief.greeting for c in sample}) > 200
    assert len({c.brief.instructions for c in sample}) == len(sample)


def test_every_call_renders_as_a_prompt(calls: list[AgentCall]) -> None:
    for call in calls:
        messages = chat_messages(call.brief, list(call.events))
        assert messages[0]["role"] == "system"
        assert all(m["content"] for m in messages)
        # every point of the call renders too: the reasoner sees each prefix
        for cut in (1, len(call.events) // 2):
            chat_messages(call.brief, list(call.events[:cut]))


def test_fast_enough() -> None:
    t0 = time.perf_counter()
    for seed in range(500):
        agent_call(seed)
    assert 500 / (time.perf_counter() - t0) >= 500


@pytest.mark.parametrize("seed", range(200))
def test_spoken_ids_normalize_to_their_digits(seed: int) -> None:
    rng = random.Random(seed)
    value = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 9)))
    said = spoken_code(rng, value)
    assert re.sub(r"\D", "", normalize_spoken(said)) == value, (said, normalize_spoken(said))


def test_spoken_times_name_the_hour() -> None:
    rng = random.Random(0)
    for hh in range(24):
        for mm in (0, 15, 30, 45):
            said = spoken_time(rng, f"{hh:02d}:{mm:02d}")
            assert said.strip()
    assert re.fullmatch(fmt_pattern("LL-dddd"), "AB-1234")
    assert not re.fullmatch(fmt_pattern("LL-dddd"), "AB1234")


def test_a_caller_who_asks_for_a_person_is_put_through_only_by_the_agents_own_tool(
    calls: list[AgentCall],
) -> None:
    put_through = declined = 0
    for call in calls:
        for i, e in enumerate(call.events):
            if e["role"] != "caller" or e["text"].rstrip("?.!").lower() not in ASKS:
                continue
            spec = next((t for t in call.brief.tools if t.description in agent_handoff.DOES), None)
            nxt = call.events[i + 1]
            if spec is None:
                assert nxt["role"] == "agent"
                declined += 1
            else:
                assert nxt == {**nxt, "role": "tool_call", "tool": spec.name}
                assert call.events[-1]["role"] == "agent" and i + 3 == len(call.events) - 1
                put_through += 1
    assert put_through > 100 and declined > 20, (put_through, declined)


ASKS = {a.rstrip("?.!").lower() for a in agent_handoff.ASKS}
