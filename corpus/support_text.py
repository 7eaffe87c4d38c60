"""The synthetic support calls as text for the background model's reasoner: who the agent is
(`support_brief`) and what happens in a call (`gold_events`, `support_text_call`).

`gold_events` is the script as history (workers.reasoner.HISTORY_ROLES) in script order: what
evaluation.reasoning scores decisions against. `support_text_call` is the same call in the order
the live loop (agent.background.BackgroundModel) produces it, the form the reasoner is fine-tuned
on (training.reasoner): a `wait` after each backchannel, a tool called before the line that
announces it (the loop only asks again after a tool's result, never after a reply), end_call left
out (the interaction model's). Nothing here runs a model.
"""

from __future__ import annotations

import dataclasses

from agent.config import SUPPORT
from corpus.call_script import Dtmf, EndCall, Handoff, Say, Timer, ToolCall
from corpus.scripts import generate_script
from workers.reasoner import Brief, tool_specs
from workers.shop import TOOL_SCHEMAS

# As the live path briefs the support agent: ending the call is the interaction model's, not the
# reasoner's (agent.background.NOT_FOR_REASONER).
SUPPORT_TOOLS = ("lookup_order", "create_return", "search_faq", "book_callback", "transfer")
SUPPORT_INSTRUCTIONS = (
    "You are Robin, the phone assistant of Harbor Lane Goods, an online shop. Help with order status, "
    "returns, callbacks and shop questions. Call lookup_order before saying anything about an order "
    "and read ids back digit by digit. Start returns with create_return. Use search_faq for questions "
    "about the shop. If the caller wants a person, use transfer. After the goodbye, use end_call. "
    "Keep turns short and never invent details."
)
SUPPORT_GREETING = "Thanks for calling Harbor Lane Goods, this is Robin. How can I help you today?"


def support_brief(examples: bool = True, result_keys: bool = True, shipped: bool = False) -> Brief:
    """The synthetic shops' support agent as the live path briefs it (agent.background.brief_for):
    the shop's tool schemas with their result keys, the shipped support agent's demo call.
    `shipped`: the shipped agent's own instructions and greeting (agent.config.SUPPORT) instead of
    the evaluation's."""
    tools = tool_specs(SUPPORT_TOOLS, TOOL_SCHEMAS)
    if not result_keys:
        tools = tuple(dataclasses.replace(t, result_keys=()) for t in tools)
    demo = tuple(e.model_dump(exclude_none=True) for e in SUPPORT.examples) if examples else ()
    if shipped:
        return Brief("support", SUPPORT.instructions, SUPPORT.greeting, tools, demo)
    return Brief("support", SUPPORT_INSTRUCTIONS, SUPPORT_GREETING, tools, demo)


def gold_events(script) -> list[dict]:
    """The script's events in order as reasoner history (the scripted greeting left out: the brief
    has its own), caller turn parts merged, agent fillers and backchannels left out; a caller's
    backchannel is marked `backchannel`."""
    events: list[dict] = []
    greeted = False
    for it in script.items:
        if isinstance(it, Say):
            if it.speaker == "agent":
                if it.role != "turn":
                    continue
                if not greeted:
                    greeted = True
                    continue
                events.append({"role": "agent", "text": it.text})
            elif it.role == "backchannel":
                events.append({"role": "caller", "text": it.text, "backchannel": True})
            elif it.pause_inside_turn and events and events[-1]["role"] == "caller":
                events[-1]["text"] += " " + it.text
            else:
                events.append({"role": "caller", "text": it.text})
        elif isinstance(it, ToolCall):
            events.append({"role": "tool_call", "tool": it.name, "arguments": dict(it.arguments)})
            if it.error is not None:
                events.append({"role": "tool_error", "tool": it.name, "error": it.error})
            else:
                events.append({"role": "tool_result", "tool": it.name, "result": it.result})
        elif isinstance(it, Dtmf):
            events.append({"role": "dtmf", "digits": it.digits})
        elif isinstance(it, Timer):
            events.append({"role": "timer", "text": f"{it.seconds} s timer fired: {it.note}"})
        elif isinstance(it, Handoff | EndCall):
            break
    return events


def live_order(events: list[dict], tools: tuple[str, ...] = SUPPORT_TOOLS) -> list[dict]:
    """Gold events as the live loop produces them: tools not in `tools` left out, a line directly
    followed by a tool call moved after that call's outcome, a `wait` after each backchannel."""
    kept = [
        e for e in events if e["role"] not in ("tool_call", "tool_result", "tool_error") or e["tool"] in tools
    ]
    out: list[dict] = []
    i = 0
    while i < len(kept):
        e = kept[i]
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if e["role"] == "agent" and nxt is not None and nxt["role"] == "tool_call":
            outcome = kept[i + 2 : i + 3]
            out += [nxt, *outcome, e]
            i += 2 + len(outcome)
            continue
        if e.get("backchannel"):
            out += [{"role": "caller", "text": e["text"]}, {"role": "wait"}]
        else:
            out.append(e)
        i += 1
    return out


def support_text_call(seed: int, brief: Brief | None = None) -> tuple[Brief, list[dict]]:
    """One synthetic support call (corpus.scripts seed `seed`) in the live loop's order."""
    return brief or support_brief(), live_order(gold_events(generate_script("support", seed)))
