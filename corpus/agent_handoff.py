"""Hand-off to a person in the generated agents' calls (corpus.agent_calls).

Many agents have a tool that puts the caller through to a member of staff, under a name of the
agent's own ("transfer", "escalateToStaff", ...); a caller who asks for a person gets it called,
with a short reason, and the agent says it is putting them through. An agent without one says it
cannot and offers what it can do. The support agent the reasoner is scored on has `transfer`; the
generated ones teach that the words, not the tool's name, decide. Pure data and small builders.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from corpus.agent_templates import bar
from workers.reasoner import ToolSpec

NAMES = bar(
    "transfer|transfer_to_human|transfer_call|hand_off|handoff_to_staff|connect_to_person|escalate|"
    "forward_to_colleague|transfer_to_agent|put_through|escalate_to_staff|connect_staff"
)
DOES = bar(
    "Transfer the call to a human colleague.|Hand the caller over to a member of staff.|"
    "Connect the caller to a person.|Escalate the call to a human agent.|"
    "Put the caller through to the team."
)
REASON_NAMES = bar("reason|summary|note|why|context")
TEAMS = bar("the front desk|reception|our team|customer care|a colleague|the duty manager|the office")
ASKS = bar(
    "Can I speak to a real person, please?|I'd rather talk to someone, please.|"
    "Could you put me through to a person?|Operator.|Can I talk to a human?|"
    "I want to speak to a manager.|Is there someone I can talk to?|"
    "This isn't working, can I just talk to somebody?|Can you transfer me to a person?|"
    "Agent, please.|I need to speak with a member of staff."
)
REASONS = bar(
    "caller asked for a person|caller wants to speak to staff|caller request|"
    "caller asked for a manager|wants a human|caller prefers to talk to someone"
)
PUT_THROUGH = bar(
    "Of course, I'm transferring you to {team} now, please hold.|"
    "Sure, connecting you to {team}, one moment.|"
    "No problem, I'll put you through to {team}. Please stay on the line.|"
    "Okay, transferring you to {team} now."
)
CANNOT = bar(
    "I'm sorry, I can't transfer calls from here, but I can {task}.|"
    "There's nobody I can put you through to on this line, I'm afraid, but I can {task}.|"
    "I'm not able to connect you to a person, sorry. I can {task}, though."
)
RULES = bar(
    "If the caller asks for a person, use {tool}.|Callers who want a human: call {tool}.|"
    "Use {tool} when someone asks to speak to staff.|Hand over with {tool} if asked for a person."
)


@dataclass(frozen=True)
class Handoff:
    spec: ToolSpec
    reason: str | None  # the parameter's name, None when the tool takes none
    team: str


def make_handoff(rng: random.Random, camel: bool) -> Handoff:
    name = rng.choice(NAMES)
    if camel:
        head, *rest = name.split("_")
        name = head + "".join(w.capitalize() for w in rest)
    reason = rng.choice(REASON_NAMES) if rng.random() < 0.8 else None
    params = {reason: {"type": "string", "required": rng.random() < 0.7}} if reason else {}
    keys = ("status", "team") if rng.random() < 0.7 else ()
    return Handoff(ToolSpec(name, rng.choice(DOES), params, keys), reason, rng.choice(TEAMS))


def rule(rng: random.Random, h: Handoff) -> str:
    return rng.choice(RULES).format(tool=h.spec.name)


def events(rng: random.Random, h: Handoff) -> list[dict]:
    """The tool call for a caller who asked for a person, its result and the agent's line."""
    args = {h.reason: rng.choice(REASONS)} if h.reason else {}
    return [
        {"role": "tool_call", "tool": h.spec.name, "arguments": args},
        {"role": "tool_result", "tool": h.spec.name, "result": {"status": "transferring", "team": h.team}},
        {"role": "agent", "text": rng.choice(PUT_THROUGH).format(team=h.team)},
    ]


def cannot(rng: random.Random, task: str) -> str:
    return rng.choice(CANNOT).format(task=task)
