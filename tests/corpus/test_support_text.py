"""Support calls as the reasoner's text (corpus.support_text): the live loop's order."""

from __future__ import annotations

from corpus.scripts import generate_script
from corpus.support_text import SUPPORT_TOOLS, gold_events, live_order, support_text_call


def test_a_tool_comes_before_the_line_that_announces_it():
    events = [
        {"role": "caller", "text": "a person please"},
        {"role": "agent", "text": "Transferring you now."},
        {"role": "tool_call", "tool": "transfer", "arguments": {"reason": "asked"}},
        {"role": "tool_result", "tool": "transfer", "result": {"status": "transferring"}},
    ]
    assert [e["role"] for e in live_order(events)] == ["caller", "tool_call", "tool_result", "agent"]


def test_backchannels_get_a_wait_and_tools_not_offered_are_left_out():
    events = [
        {"role": "caller", "text": "mm-hmm", "backchannel": True},
        {"role": "agent", "text": "Goodbye!"},
        {"role": "tool_call", "tool": "end_call", "arguments": {}},
        {"role": "tool_result", "tool": "end_call", "result": {}},
    ]
    assert live_order(events) == [
        {"role": "caller", "text": "mm-hmm"},
        {"role": "wait"},
        {"role": "agent", "text": "Goodbye!"},
    ]


def test_generated_calls_never_have_a_line_right_before_a_tool():
    for seed in range(200):
        _, events = support_text_call(seed)
        for a, b in zip(events, events[1:], strict=False):
            assert not (a["role"] == "agent" and b["role"] == "tool_call"), seed
            if a["role"] == "wait":
                assert b["role"] != "wait"
        assert all(e.get("tool", SUPPORT_TOOLS[0]) in SUPPORT_TOOLS for e in events)
        assert len(events) <= len(gold_events(generate_script("support", seed))) + 16
