"""Agent configuration: what an agent is called, speaks, may do, and the text the model reads.

`AgentConfig` (pydantic, frozen) describes one agent: a slug name, the languages callers speak to
it, its persona/instructions, greeting, the tools it may call, its voice, an optional translation
target (with, for bridged calls, how far under the interpreter its listener hears the speaker's own
voice) and an optional hand-off number for `transfer`. `render_prefix(agent)` turns it into the
compact text the model server pins at the start of the call's context:

    NAME|LANGS[>TARGET]|TOOL,TOOL,...|instructions (whitespace collapsed)

The essentials (name, languages, tools) come first and are kept within `ESSENTIALS_BUDGET` bytes
(an agent whose essentials do not fit is refused at construction), so a model whose prefix budget
is ~90-100 bytes always sees them; the instructions come last, and the model server cuts them at
its own budget. The format is what the model is trained on: change it together with corpus.

Tool schemas live here too: `TOOL_SCHEMAS` maps each tool an agent may call to its arguments
(`{"description", "parameters": {name: {"type": "string" | "integer", "required": bool}}}`; the
shipped ones are the sample shop's, `workers.shop.TOOL_SCHEMAS`, the same the training calls
used), and `check_tool_call(name, arguments)` says what is wrong with a call before any task is
sent, in the words the model was trained to hear ("missing argument order_id"). Tools an admin
registers as webhooks (`workers.webhooks`) are not in `TOOL_SCHEMAS`: the router reads their
schemas from Redis and passes them to `check_tool_call`.

Agents are looked up by name through an `AgentRegistry` (async `get`/`names`), so a Redis-backed
registry (the admin API's storage) can replace the built-in one without touching callers;
`get_agent(name)` reads the agents shipped in this module. Nothing here knows about calls,
transports or the model's internals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from telephony.leg import E164, NAME
from workers.shop import TOOL_SCHEMAS as SHOP_TOOL_SCHEMAS
from workers.webhooks import arguments_problem, parameters_problem

ESSENTIALS_BUDGET = 90  # bytes of "NAME|LANGS|TOOLS|"
SLUG = rf"^{NAME}$"  # an agent's name: the name calls ask for
LANGUAGE = r"^[a-z]{2,3}$"  # ISO 639-1/-3 codes
TOOL = r"^[a-z][a-z0-9_]{0,39}$"
PHONE = rf"^{E164}$"  # E.164


class UnknownAgent(LookupError):
    """No agent of that name. `str()` names it and the agents that exist."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        self.known = sorted(known)
        shown = name if len(name) <= 64 else name[:61] + "..."
        suffix = f"; known agents: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown agent {shown!r}{suffix}")


class ExampleTurn(BaseModel):
    """One step of a demo call the background model's reasoner is shown before the real call: what
    was said (`caller`, `agent`, `dtmf`), a tool call and its outcome, or `wait` (the agent let the
    caller go on)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["caller", "agent", "dtmf", "tool_call", "tool_result", "tool_error", "wait"]
    text: str | None = Field(None, max_length=500)
    digits: str | None = Field(None, max_length=32)
    tool: str | None = Field(None, pattern=TOOL)
    arguments: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _fields(self) -> ExampleTurn:
        needs = {
            "caller": ("text",),
            "agent": ("text",),
            "dtmf": ("digits",),
            "tool_call": ("tool", "arguments"),
            "tool_result": ("tool", "result"),
            "tool_error": ("tool", "error"),
            "wait": (),
        }[self.role]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.role} example turn needs {', '.join(missing)}")
        return self


class AgentConfig(BaseModel):
    """One agent. Frozen: share it between calls freely."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=SLUG, max_length=40, description="Slug that calls and TwiML name the agent by.")
    languages: tuple[str, ...] = Field(min_length=1, description="ISO 639 codes the caller may speak.")
    instructions: str = Field(min_length=1, max_length=4000, description="Persona and instructions.")
    greeting: str = Field("", max_length=300, description="What the agent says first.")
    tools: tuple[str, ...] = Field((), description="Names of the tools the agent may call.")
    voice: str = Field("default", max_length=64, description="Voice the agent speaks with.")
    translation_target: str | None = Field(
        None, pattern=LANGUAGE, description="Language the agent speaks the caller's words in (interpreting)."
    )
    handoff_number: str | None = Field(
        None,
        pattern=PHONE,
        description="E.164 number `transfer` hands the caller to; the model never picks one.",
    )
    examples: tuple[ExampleTurn, ...] = Field(
        (),
        max_length=40,
        description="A demo call the background model's reasoner is shown first (its tools only).",
    )
    bridge_ducking_db: float | None = Field(
        None,
        ge=0,
        le=60,
        description=(
            "Bridged calls: the other party hears the speaker's own voice under this interpreter, "
            "this many dB below its level (0-60); null: the interpreter alone."
        ),
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not re.match(LANGUAGE, code):
                raise ValueError(f"language {code!r} is not an ISO 639 code such as 'en'")
        if len(set(value)) != len(value):
            raise ValueError("languages are listed twice")
        return value

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tool in value:
            if not re.match(TOOL, tool):
                raise ValueError(f"tool name {tool!r} must be a lowercase identifier (a-z, 0-9, _)")
        if len(set(value)) != len(value):
            raise ValueError("tools are listed twice")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        strangers = sorted({e.tool for e in self.examples if e.tool and e.tool not in self.tools})
        if strangers:
            raise ValueError(f"examples use tools the agent does not have: {', '.join(strangers)}")
        if "transfer" in self.tools and self.handoff_number is None:
            raise ValueError("tools includes 'transfer' but handoff_number is not set")
        if self.translation_target is not None and self.translation_target in self.languages:
            raise ValueError(
                f"translation_target {self.translation_target!r} is also in languages; "
                "interpreting needs a target the caller does not speak"
            )
        if self.bridge_ducking_db is not None and self.translation_target is None:
            raise ValueError(
                "bridge_ducking_db is set but translation_target is not: only interpreters bridge"
            )
        essentials = len(_essentials(self).encode("utf-8"))
        if essentials > ESSENTIALS_BUDGET:
            raise ValueError(
                f"name, languages and tools take {essentials} bytes of the model's pinned prefix; "
                f"at most {ESSENTIALS_BUDGET} fit (shorten tools or name)"
            )
        return self


def _essentials(agent: AgentConfig) -> str:
    langs = ",".join(agent.languages)
    if agent.translation_target:
        langs += ">" + agent.translation_target
    return f"{agent.name}|{langs}|{','.join(agent.tools)}|"


def mirror_problem(opener: AgentConfig, joiner: AgentConfig) -> str | None:
    """None when `joiner` interprets back what `opener` interprets (a bridged call's two
    directions: en>es and es>en), else what is wrong, naming both agents' languages."""
    if opener.translation_target is None:
        return f"agent {opener.name!r} does not interpret"
    if joiner.translation_target in opener.languages and opener.translation_target in joiner.languages:
        return None
    theirs = f"{','.join(opener.languages)}>{opener.translation_target}"
    ours = f"{','.join(joiner.languages)}>{joiner.translation_target or '?'}"
    return f"agent {joiner.name!r} ({ours}) does not interpret back the room's {opener.name!r} ({theirs})"


def render_prefix(agent: AgentConfig, max_bytes: int | None = None) -> str:
    """The call configuration the model reads: essentials first, then the instructions.

    With `max_bytes`, the text is cut to that many UTF-8 bytes (never inside a character).
    """
    text = _essentials(agent) + " ".join(agent.instructions.split())
    if max_bytes is not None:
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return text


# --- tool schemas ----------------------------------------------------------------------------------
TOOL_SCHEMAS: dict[str, dict[str, Any]] = dict(SHOP_TOOL_SCHEMAS)


def register_tool_schema(name: str, schema: Mapping[str, Any]) -> None:
    """Add (or replace) the schema of a tool agents may call; refuses a malformed schema
    (`workers.webhooks.parameters_problem`: the rules registered webhook tools keep too)."""
    if not re.match(TOOL, name):
        raise ValueError(f"tool name {name!r} must be a lowercase identifier (a-z, 0-9, _)")
    params = schema.get("parameters")
    problem = parameters_problem(params)
    if problem is not None:
        raise ValueError(f"tool {name}: {problem}")
    TOOL_SCHEMAS[name] = {"description": str(schema.get("description", "")), "parameters": dict(params)}


def check_tool_call(
    name: str, arguments: dict[str, Any] | None, schema: Mapping[str, Any] | None = None
) -> str | None:
    """None when a call of tool `name` with `arguments` fits its schema, else what is wrong,
    worded as `workers.shop.check_arguments` words it (what the model heard in training).

    The schema is `TOOL_SCHEMAS[name]`, or `schema` for a tool registered elsewhere (a webhook
    tool's, read from Redis by the router); a built-in tool's own schema always wins."""
    schema = TOOL_SCHEMAS.get(name, schema)
    if schema is None:
        return f"unknown tool {name[:64]}"
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    return arguments_problem(schema["parameters"], arguments)


# --- registry --------------------------------------------------------------------------------------
class AgentRegistry(Protocol):
    """Where agents are looked up by name (built-in today; Redis-backed via the admin API later)."""

    async def get(self, name: str) -> AgentConfig:
        """The agent called `name`; raises `UnknownAgent`."""

    async def names(self) -> list[str]: ...


class StaticAgentRegistry:
    """A fixed set of agents held in memory."""

    def __init__(self, agents: Iterable[AgentConfig]) -> None:
        self._agents: dict[str, AgentConfig] = {}
        for agent in agents:
            if agent.name in self._agents:
                raise ValueError(f"two agents are called {agent.name!r}")
            self._agents[agent.name] = agent

    def lookup(self, name: str) -> AgentConfig:
        try:
            return self._agents[name]
        except (KeyError, TypeError):
            raise UnknownAgent(str(name), self._agents) from None

    async def get(self, name: str) -> AgentConfig:
        return self.lookup(name)

    async def names(self) -> list[str]:
        return sorted(self._agents)


SUPPORT_EXAMPLES: tuple[dict, ...] = (
    {"role": "agent", "text": "Hello, how can I help?"},
    {"role": "caller", "text": "Hi, can you check my order? It's M 7 0 3 9 5."},
    {"role": "tool_call", "tool": "lookup_order", "arguments": {"order_id": "M-70395"}},
    {
        "role": "tool_result",
        "tool": "lookup_order",
        "result": {"order_id": "M-70395", "status": "processing", "ship_by": "2025-11-20"},
    },
    {"role": "agent", "text": "Order M 7 0 3 9 5 is processing and should ship by November 20th."},
    {"role": "caller", "text": "mm-hmm"},
    {"role": "wait"},
    {"role": "caller", "text": "Okay. And how long does shipping take?"},
    {"role": "tool_call", "tool": "search_faq", "arguments": {"query": "shipping time"}},
    {
        "role": "tool_result",
        "tool": "search_faq",
        "result": {
            "matches": [{"topic": "shipping times", "answer": "Standard shipping takes 3 to 5 days."}]
        },
    },
    {"role": "agent", "text": "Standard shipping takes 3 to 5 days."},
    {"role": "caller", "text": "I want to send back the lamp from order T 6 6 1 2 0, it arrived damaged."},
    {"role": "tool_call", "tool": "create_return", "arguments": {"order_id": "T-66120", "reason": "damaged"}},
    {
        "role": "tool_result",
        "tool": "create_return",
        "result": {"return_id": "R-55017", "order_id": "T-66120", "refund": "30.00", "label": "emailed"},
    },
    {"role": "agent", "text": "Your return number is R 5 5 0 1 7, and the label is in your email."},
    {"role": "caller", "text": "Can I talk to a real person about my invoice?"},
    {"role": "tool_call", "tool": "transfer", "arguments": {"reason": "invoice question"}},
    {"role": "tool_result", "tool": "transfer", "result": {"status": "busy"}},
    {"role": "agent", "text": "Sorry, everyone is busy right now. Can I help with anything else?"},
    {"role": "caller", "text": "No, that's all, thanks."},
    {"role": "agent", "text": "Thanks for calling, goodbye!"},
)


SUPPORT = AgentConfig(
    name="support",
    languages=("en",),
    instructions=(
        "You answer the phone for Northwind Home, a small online shop for kitchen and home goods. "
        "Help with order status, returns and exchanges, and opening hours. Look orders up with "
        "lookup_order before saying anything about them and read order numbers back digit by digit. "
        "Returns: within 30 days, unused, start one with create_return. Phone hours: Monday to Friday "
        "9 to 18, Saturday 10 to 14. Use search_faq for anything else about the shop. If the caller "
        "asks for a person or you cannot help, offer book_callback or transfer to a human. Keep turns "
        "short, never invent order details, and end_call after saying goodbye."
    ),
    greeting="Thanks for calling Northwind Home, this is the virtual assistant. How can I help?",
    tools=("lookup_order", "create_return", "search_faq", "book_callback", "transfer", "end_call"),
    voice="en-us-warm",
    handoff_number="+15555550100",
    examples=SUPPORT_EXAMPLES,
)

TRANSLATE_EN_ES = AgentConfig(
    name="translate-en-es",
    languages=("en",),
    translation_target="es",
    instructions=(
        "You are a live interpreter on a phone call. Say in Spanish everything the caller says in "
        "English, as they say it, a few words behind. Translate faithfully: do not answer, add, "
        "summarise or comment. Keep names, numbers and addresses exact. When the caller says "
        "goodbye, translate it, then end_call."
    ),
    greeting="Interpretación en vivo activada.",
    tools=("end_call",),
    voice="es-neutral",
    bridge_ducking_db=18.0,
)

# The other direction of a bridged call. The shipped checkpoint was trained for en>es only: this
# configuration and the bridge are real, the interpreting is not until a checkpoint learns es>en.
TRANSLATE_ES_EN = AgentConfig(
    name="translate-es-en",
    languages=("es",),
    translation_target="en",
    instructions=(
        "You are a live interpreter on a phone call. Say in English everything the caller says in "
        "Spanish, as they say it, a few words behind. Translate faithfully: do not answer, add, "
        "summarise or comment. Keep names, numbers and addresses exact. When the caller says "
        "goodbye, translate it, then end_call."
    ),
    greeting="Live interpreting is on.",
    tools=("end_call",),
    voice="en-us-warm",
    bridge_ducking_db=18.0,
)

SHIPPED_AGENTS: tuple[AgentConfig, ...] = (SUPPORT, TRANSLATE_EN_ES, TRANSLATE_ES_EN)
BUILTIN_AGENTS = StaticAgentRegistry(SHIPPED_AGENTS)


def get_agent(name: str) -> AgentConfig:
    """A shipped agent by name; raises `UnknownAgent` naming the agents that exist."""
    return BUILTIN_AGENTS.lookup(name)
