"""What a domain of `corpus.agent_calls` is made of, and the helpers to write one.

A `Domain` (the tables: corpus.agent_bookings, corpus.agent_accounts) is data: how its businesses
are named, its tools as templates (name synonyms, the arguments with their name synonyms, kinds of
value and how a caller says them, the result's fields, the agent's replies to a result or an
error), and facts the agent may be told and asked about. Phrase lists are written "a|b|c". A
template's `{slot}` names an argument's slot (its kind unless given) or a result field's slot;
`{v}` in a caller's frame is the argument's spoken value. A frame that starts in lower case
continues the caller's sentence ("for {v} people"); one in upper case is a sentence of its own.
This module knows nothing of rngs, events or the reasoner.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def bar(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


@dataclass(frozen=True)
class Arg:
    """One argument of a tool template. `kind` (VALUE_KINDS of corpus.agent_calls) says how its
    value is drawn and spoken; `required` is the chance an agent requires it."""

    kind: str
    names: tuple[str, ...]
    say: tuple[str, ...] = ()  # the caller's frames, `{v}` the spoken value (default: the kind's)
    ask: tuple[str, ...] = ()  # the agent's questions (default: the kind's)
    required: float = 1.0
    slot: str = ""  # the name templates use (default: kind)
    lo: int = 1  # count: range; time: hours
    hi: int = 8
    fmt: tuple[str, ...] = ()  # id / postcode formats: L a letter, d a digit, else itself
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # choice: value -> phrases
    phrases: tuple[str, ...] = ()  # reason / text: the values, said as they are

    @property
    def key(self) -> str:
        return self.slot or self.kind


def arg(kind: str, names: str, say: str = "", ask: str = "", **kw) -> Arg:
    if "options" in kw:
        kw["options"] = {k: bar(v) for k, v in kw["options"].items()}
    for key in ("fmt", "phrases"):
        if isinstance(kw.get(key), str):
            kw[key] = bar(kw[key])
    return Arg(kind, bar(names), bar(say), bar(ask), **kw)


@dataclass(frozen=True)
class Field:
    """One field of a tool's result. kind: ref (an id in `fmt`), status / word (one of `values`),
    date (a coming ISO date), time (HH:MM), amount (lo..hi dollars and cents), count (lo..hi), or
    echo (the value of the argument slot `slot`)."""

    kind: str
    names: tuple[str, ...]
    slot: str = ""
    values: tuple[str, ...] = ()
    fmt: tuple[str, ...] = ()
    lo: int = 1
    hi: int = 9

    @property
    def key(self) -> str:
        return self.slot or self.kind


def out(kind: str, names: str, slot: str = "", values: str = "", fmt: str = "", **kw) -> Field:
    if kind == "amount":
        kw = {"lo": 20, "hi": 400} | kw
    return Field(kind, bar(names), slot, bar(values), bar(fmt), **kw)


@dataclass(frozen=True)
class Err:
    """A way the tool can fail: the error texts, the agent's replies, and the argument slot the
    caller then changes (`fix`; the tool runs again and succeeds) or "" (nothing to retry)."""

    texts: tuple[str, ...]
    replies: tuple[str, ...]
    fix: str = ""
    retry: tuple[str, ...] = ()  # the caller's frames for the new value; default: generic


def err(texts: str, replies: str, fix: str = "", retry: str = "") -> Err:
    return Err(bar(texts), bar(replies), fix, bar(retry))


@dataclass(frozen=True)
class Tool:
    names: tuple[str, ...]
    does: tuple[str, ...]  # descriptions
    task: tuple[str, ...]  # what the instructions say the agent does with it ("book tables")
    want: tuple[str, ...]  # the caller's request
    args: tuple[Arg, ...]
    result: tuple[Field, ...]
    done: tuple[str, ...]  # the agent's reply to a result
    errors: tuple[Err, ...] = ()


def tool(names, does, task, want, args, result, done, errors=()) -> Tool:
    return Tool(
        bar(names), bar(does), bar(task), bar(want), tuple(args), tuple(result), bar(done), tuple(errors)
    )


@dataclass(frozen=True)
class Fact:
    text: str  # as the instructions state it
    asks: tuple[str, ...]  # the caller's questions
    answer: tuple[str, ...]


def fact(text: str, asks: str, answer: str) -> Fact:
    return Fact(text, bar(asks), bar(answer))


@dataclass(frozen=True)
class Domain:
    key: str
    kinds: tuple[str, ...]  # "an Italian restaurant"
    business: tuple[str, ...]  # name patterns: {place} {last} {noun}
    tools: tuple[Tool, ...]
    facts: tuple[Fact, ...]
    bye: tuple[str, ...] = ()  # the agent's domain wishes ("Enjoy your meal!")


def domain(key, kinds, business, tools, facts, bye="") -> Domain:
    return Domain(key, bar(kinds), bar(business), tuple(tools), tuple(facts), bar(bye))


# -- argument templates several domains share -------------------------------------------------------
NAME = "name|customer_name|full_name|caller_name|contact_name"
REF_FMT = "Ldddd|LLdddd|dddddd|LL-dddd|Ldddddd"
STATUS_OK = "confirmed|booked|scheduled"
TIME_SAY = "at {v}|around {v}|for {v}|at about {v}"
NO_SLOT_RETRY = "how about {v}?|could we do {v} instead?|okay, {v} then|{v} would work too"


def name_arg(names: str = NAME, required: float = 0.8) -> Arg:
    return arg("name", names, required=required)


def day_arg(names: str = "day|weekday|preferred_day", say: str = "", ask: str = "") -> Arg:
    return arg("weekday", names, say or "on {v}|for {v}|this {v}|next {v}", ask)


def ref_arg(names: str, what: str, fmt: str = REF_FMT, required: float = 1.0) -> Arg:
    return arg(
        "id",
        names,
        f"my {what} is {{v}}|the {what} is {{v}}|I have the {what}, it's {{v}}|It's {{v}}",
        f"What's the {what}?|Could you give me the {what}, please?|Can I have your {what}?",
        slot="id",
        fmt=fmt,
        required=required,
    )


NOT_FOUND_RETRY = "oh sorry, it's {v}|let me check again, it's {v}|hmm, try {v}|Sorry, I misread it. It's {v}"


def not_found(what: str) -> Err:
    return err(
        f"{what} not found|no record with that {what}|unknown {what}",
        f"I couldn't find anything under {{id}}. Could you read the {what} again?|"
        f"Hmm, {{id}} doesn't match anything on my side. Can you check the {what} for me?|"
        f"I'm sorry, there's no record with the {what} {{id}}. Could you repeat it?",
        fix="id",
        retry=NOT_FOUND_RETRY,
    )
