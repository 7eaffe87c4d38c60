"""`agent_call(seed)`: a text-only phone call with a randomly drawn customer-service agent.

Training data for the background model's reasoner (workers.reasoner), which must decide, for
agents and tools it never saw, whether to call a tool (its arguments taken from what the caller
said), reply, or wait. So each seed draws a new agent from a domain (corpus.agent_bookings,
corpus.agent_accounts): business and agent names, tool and argument names (snake or camel case),
which arguments are required, enums, patterns, instruction and greeting wording, result keys.
Then a call with it: details in the first turn or asked for, corrections, tool errors and
retries, a second request, questions answered from the instructions, backchannels and unfinished
turns (the agent waits), a goodbye. Caller lines are spoken words (corpus.spoken_values), some
with disfluencies or as lower-case ASR text; `workers.spoken.normalize_spoken` runs on them later.

Events are in the live loop's order and roles (caller, agent, tool_call, tool_result, tool_error,
dtmf, wait): a tool call comes right after what the caller said (never after an agent line) and
is followed by its result or error, then the agent's words about it. Every argument fits its
ToolSpec (`argument_problem` is None). Pure Python, deterministic per seed; nothing here knows
of audio, timing or tensors.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from corpus import agent_handoff
from corpus.agent_accounts import ACCOUNTS
from corpus.agent_bookings import BOOKINGS
from corpus.agent_templates import NO_SLOT_RETRY, Arg, Domain, Fact, Tool, bar
from corpus.spoken_values import (
    agent_time,
    article_less,
    fmt_pattern,
    from_fmt,
    spoken_address,
    spoken_code,
    spoken_count,
    spoken_day,
    spoken_phone,
    spoken_time,
)
from workers.reasoner import Brief, ToolSpec
from workers.shop import spoken_amount, spoken_date, spoken_id

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TIME_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
FIRST = bar(
    "Priya|Tomasz|Aisha|Kenji|Maria|Oluwaseun|Liam|Sofia|Mei|Ahmed|Ingrid|Carlos|Fatima|Dmitri|"
    "Grace|Juan|Hana|Kwame|Elena|Raj|Noor|Patrick|Yuki|Lucia|Omar|Chloe|Mateo|Zainab|Sven|Ana|"
    "Tariq|Emily|Jin|Bongani|Sarah|Luca|Ifeoma|Marcus|Leila|Hiroshi|Rosa|David|Amara|Nikolai|Beatriz"
)
LAST = bar(
    "Natarajan|Kowalski|Okafor|Tanaka|Garcia|Adeyemi|O'Brien|Rossi|Chen|Hassan|Lindqvist|Mendoza|"
    "Haddad|Petrov|Thompson|Fernandez|Kim|Mensah|Popescu|Sharma|Rahman|Murphy|Sato|Moreno|Farouk|"
    "Dubois|Silva|Bello|Nilsson|Costa|Iqbal|Walker|Park|Dlamini|Cohen|Bianchi|Eze|Schmidt|Khalil|Nakamura"
)
PLACES = bar(
    "Harbor|Maple|Riverside|Oakwood|Northgate|Bayview|Elm Park|Westfield|Cedar Hill|Lakeside|"
    "Kingsbridge|Millbrook|Greenway|Ashford|Summit|Brookside|Pinecrest|Eastleigh"
)
ADJ = bar("Copper|Golden|Silver|Blue|Red|Quiet|Lucky|Bright|Little|Old|Green|Grand")
NOUNS = bar("Pot|Lantern|Anchor|Fox|Oak|Bridge|Star|Wave|Stone|Paw|Leaf|Hive")
AGENTS = bar(
    "Robin|Sam|Alex|Maya|Jordan|Nadia|Leo|Ivy|Theo|Zara|Kai|Nora|Eli|Mina|Ravi|Lena|Toby|Ada|Omar|Bea"
)
STREETS = bar(
    "Elm Street|Park Avenue|Mill Lane|Station Road|Oak Drive|Church Street|High Street|Willow Way|"
    "Bay Road|Cedar Court|King Street|Lake View"
)
RULES = bar(
    "Ask for anything you need before calling a tool.|Keep replies short: one or two sentences.|"
    "Read reference numbers back character by character.|Never invent details; say what the tools return.|"
    "Only ask for one thing at a time.|If you don't know something, say so.|Be warm but brief.|"
    "After a tool result, tell the caller the key details.|Don't ask for details the caller already gave.|"
    "Speak in plain words; the caller hears you on the phone."
)
GREETINGS = bar(
    "Thanks for calling {business}, this is {agent}. How can I help?|{business}, {agent} speaking. "
    "What can I do for you?|Hello, you've reached {business}. How can I help you today?|"
    "Hi, this is {agent} at {business}. What can I do for you?|Good day, {business}. How may I help?|"
    "Hi there! {business}, how can I help?"
)
HELLOS = ("", "", "Hi, ", "Hello, ", "Hi there, ", "Yeah hi, ", "Good morning, ", "Hey, ", "Hello there. ")
FILLERS = ("Um, ", "Uh, ", "So, um, ", "Okay, so ", "Yeah, um, ", "Er, ")
BACKCHANNELS = bar("mm-hmm|okay|uh-huh|right|mhm|okay okay|yeah|got it|sure")
HOLD_ON = bar("hold on, let me find it|one sec|just a second, it's here somewhere|hang on")
TRAIL = bar("and, um...|and the, uh...|so it's, um...|and uh, the...|um, let me think...")
CORRECT = bar("no sorry,|no wait,|actually,|sorry, I mean|oh no,")
CORRECT_LATER = bar(
    "Oh, actually, make that {f}.|Sorry, I got that wrong: {f}.|Wait, can we change that to {f}?|"
    "Actually, {f}, not {old}."
)
YES = bar("Yes.|Yes, that's right.|Correct.|Yep.|That's it.|Yeah, perfect.")
ALSO = ("Also, ", "One more thing, ", "Oh, and ", "And while I have you, ", "Could you also help? ")
BYES = bar(
    "That's all, thanks. Bye.|Great, thank you so much. Bye!|Okay, thanks, bye.|Perfect, that's everything. "
    "Thanks!|Alright, thank you, goodbye."
)
NO_MORE = bar(
    "No, that's all, thanks.|No, that's it. Thank you!|Nope, that's everything, bye.|No thanks, bye."
)
AGENT_BYES = bar(
    "You're welcome. Goodbye!|Thanks for calling {business}. Bye now!|My pleasure, take care!|"
    "Glad I could help. Have a good day!|You're welcome, {first}. Goodbye!"
)
ANYTHING_ELSE = bar("Anything else I can help with?|Is there anything else?|Can I help with anything else?")
DTMF_ASK = " You can also type it on your keypad."
ASK = {
    "name": "Can I get your name, please?|What name should I put it under?|And your name?|"
    "Who am I speaking with?",
    "weekday": "Which day would you like?|What day works for you?|Which day suits you?",
    "time": "What time would you like?|And at what time?|What time suits you?",
    "count": "How many?|And how many would that be?",
    "id": "Could you give me the reference number?|What's the number, please?",
    "date": "What date would that be?|Which date?",
    "postcode": "What's your postcode?|And the postcode, please?|What's the zip code there?",
    "reason": "Could you tell me a bit more about what happened?|What's the reason?",
    "text": "Which one is it?|What's it called?",
    "choice": "Which would you like: {options}?|Would that be {options}?",
    "address": "What's the address?|Where should we go?",
    "phone": "What's the best number to reach you?|Can I take a phone number?",
}
SAY = {
    "name": "for {v}|under the name {v}|My name is {v}.|This is {v}.|The name's {v}.",
    "weekday": "on {v}|for {v}",
    "time": "at {v}|for {v}",
    "count": "for {v}",
    "id": "The number is {v}.|It's {v}.",
    "date": "on {v}|for {v}",
    "postcode": "My postcode is {v}.|in {v}",
    "reason": "because {v}|{v}",
    "text": "It's {v}.",
    "choice": "{v}",
    "address": "at {v}|I'm at {v}.",
    "phone": "My number is {v}.",
}
DESCRIBE = {
    "name": "the caller's full name|name as given",
    "weekday": "day of the week, lowercase",
    "time": "24-hour time, HH:MM",
    "count": "a whole number",
    "date": "a date, YYYY-MM-DD",
    "postcode": "the postcode as spelled",
    "reason": "a short phrase in the caller's words",
    "text": "the title as said",
    "address": "street address|house number and street",
    "phone": "digits only",
}
POSTCODE_FMT = ("ddddd", "LLd dLL", "Ld dLL", "LdL dLd")
NOISE = (("updated_by", "system"), ("channel", "phone"), ("version", 2), ("internal_flag", False))
CORRIGIBLE = ("weekday", "time", "count", "date", "choice")
DOMAINS = BOOKINGS + ACCOUNTS


@dataclass(frozen=True)
class AgentCall:
    brief: Brief
    events: tuple[dict, ...]


# -- the agent ----------------------------------------------------------------------------------------
def _style(name: str, camel: bool) -> str:
    if not camel:
        return name
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


@dataclass
class _Tool:
    """A tool template as one agent has it: its spec and how its slots map to parameter names,
    result keys and enum values."""

    tpl: Tool
    spec: ToolSpec
    args: dict[str, Arg]  # slot -> template argument, in parameter order
    params: dict[str, str]  # slot -> parameter name
    required: set[str]
    fields: dict[str, str]  # result slot -> result key
    enums: dict[str, dict[str, str]]  # choice slot -> option -> enum value
    days: dict[str, tuple[str, ...]]  # weekday slot -> allowed days
    fmts: dict[str, str]  # id / postcode slot -> its format here


@dataclass
class _Agent:
    domain: Domain
    business: str
    name: str
    today: date
    tools: list[_Tool]
    facts: list[Fact]
    brief: Brief
    handoff: agent_handoff.Handoff | None


def _parameter(rng: random.Random, a: Arg, required: bool, t: _Tool, slot: str) -> dict:
    p: dict[str, Any] = {"type": "integer" if a.kind == "count" else "string", "required": required}
    if a.kind == "weekday":
        days = rng.choice((WEEKDAYS, WEEKDAYS, WEEKDAYS[:6], WEEKDAYS[:5]))
        t.days[slot] = days
        p["enum"] = list(days)
    elif a.kind == "choice":
        joiner = rng.choice(("_", "_", " ", "-"))
        t.enums[slot] = {o: o.replace("_", joiner) for o in a.options}
        p["enum"] = list(t.enums[slot].values())
    elif a.kind == "time":
        p["pattern"] = TIME_PATTERN
    elif a.kind == "date":
        p["pattern"] = DATE_PATTERN
    elif a.kind in ("id", "postcode"):
        fmt = rng.choice(a.fmt or POSTCODE_FMT)
        t.fmts[slot] = fmt
        if rng.random() < 0.5:
            p["pattern"] = fmt_pattern(fmt)
        if rng.random() < 0.3:
            p["description"] = f"as the caller reads it, e.g. {from_fmt(rng, fmt)}"
    elif a.kind == "phone" and rng.random() < 0.5:
        p["pattern"] = "^[0-9]{10}$"
    if a.kind in DESCRIBE and "description" not in p and rng.random() < 0.4:
        p["description"] = rng.choice(bar(DESCRIBE[a.kind]))
    return p


def _bind(rng: random.Random, tpl: Tool, camel: bool) -> _Tool:
    t = _Tool(tpl, ToolSpec("", "", {}), {}, {}, set(), {}, {}, {}, {})
    params: dict[str, dict] = {}
    for a in tpl.args:
        name = _style(rng.choice(a.names), camel)
        while name in params:
            name = _style(rng.choice(a.names), camel) + rng.choice(("_2", "2", "_value"))
        required = rng.random() < a.required
        t.args[a.key], t.params[a.key] = a, name
        if required:
            t.required.add(a.key)
        params[name] = _parameter(rng, a, required, t, a.key)
    for f in tpl.result:
        name = _style(rng.choice(f.names), camel)
        while name in t.fields.values():
            name += "_2"
        t.fields[f.key] = name
    keys = tuple(t.fields.values()) if rng.random() < 0.7 else ()
    t.spec = ToolSpec(_style(rng.choice(tpl.names), camel), rng.choice(tpl.does), params, keys)
    return t


def _business(rng: random.Random, d: Domain) -> str:
    return rng.choice(d.business).format(
        place=rng.choice(PLACES),
        last=rng.choice(LAST),
        last2=rng.choice(LAST),
        adj=rng.choice(ADJ),
        noun=rng.choice(NOUNS),
    )


def _instructions(rng: random.Random, d: Domain, business: str, name: str, today: date, tools, facts) -> str:
    kind = rng.choice(d.kinds)
    parts = [
        rng.choice(
            (
                f"You are {name}, the phone assistant of {business}, {kind}.",
                f"You answer the phone for {business}, {kind}. Your name is {name}.",
                f"You're {name} at {business}.",
                f"Phone agent for {business} ({kind}). Name: {name}.",
            )
        )
    ]
    if rng.random() < 0.7:
        tasks = [f"{rng.choice(t.tpl.task)} ({t.spec.name})" for t in tools]
        parts.append(
            f"You {' and '.join(tasks)}." if rng.random() < 0.5 else f"Callers ask you to {', '.join(tasks)}."
        )
    if any(x.kind == "date" for t in tools for x in t.args.values()) or rng.random() < 0.3:
        parts.append(f"Today is {today.strftime('%A')}, {spoken_date(today.isoformat())}, {today.year}.")
    parts += rng.sample(RULES, rng.randint(0, 4))
    if facts:
        lead = rng.choice(("", "Facts: ", "What callers often ask: ", "Good to know: "))
        parts.append(lead + " ".join(f.text for f in facts))
    return rng.choice((" ", "\n")).join(parts)


def make_agent(rng: random.Random) -> _Agent:
    """A new agent: a domain, its business, a subset of its tools and facts, all names drawn."""
    d = rng.choice(DOMAINS)
    camel = rng.random() < 0.2
    chosen = rng.sample(d.tools, rng.randint(1, len(d.tools)))
    tools = [_bind(rng, tpl, camel) for tpl in d.tools if tpl in chosen]
    facts = rng.sample(d.facts, rng.randint(0, len(d.facts)))
    business, name = _business(rng, d), rng.choice(AGENTS)
    today = date(2025, 1, 1) + timedelta(rng.randrange(730))
    instructions = _instructions(rng, d, business, name, today, tools, facts)
    specs = [t.spec for t in tools]
    handoff = agent_handoff.make_handoff(rng, camel) if rng.random() < 0.45 else None
    if handoff is not None:
        specs.insert(rng.randint(0, len(specs)), handoff.spec)
        if rng.random() < 0.7:
            instructions += rng.choice((" ", "\n")) + agent_handoff.rule(rng, handoff)
    greeting = rng.choice(GREETINGS).format(business=business, agent=name)
    brief = Brief(f"{d.key}-{rng.randrange(10**6)}", instructions, greeting, tuple(specs))
    return _Agent(d, business, name, today, tools, facts, brief, handoff)


# -- the call -----------------------------------------------------------------------------------------
def _sentence(head: str, frames: list[str]) -> str:
    """`head` continued by the frames: one in lower case continues the sentence, one in upper
    case starts a new one."""
    text = head.strip()
    for f in frames:
        if not text:
            text = f
        elif f[:1].islower() and not text.endswith((".", "?", "!")):
            text += " " + f
        elif f[:1].islower():
            text += " " + f[0].upper() + f[1:]
        else:
            text = text.rstrip(",") + ("" if text.endswith((".", "?", "!")) else ".") + " " + f
    if not text.endswith((".", "?", "!", "...")):
        text += "."
    return text[0].upper() + text[1:]


def _slots(template: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", template))


class _Call:
    """One call's events, written turn by turn from the call's rng."""

    def __init__(self, rng: random.Random, agent: _Agent) -> None:
        self.rng, self.a = rng, agent
        self.events: list[dict] = []
        self.asr = rng.random() < 0.3  # lower case, no punctuation: as a recogniser writes it
        self.fluency = rng.choice((0.0, 0.1, 0.25, 0.45))
        self.first, self.last = rng.choice(FIRST), rng.choice(LAST)
        self.named = False

    # events
    def caller(self, text: str) -> None:
        rng = self.rng
        if rng.random() < self.fluency:
            word = text.split(" ", 1)[0].strip(",.?!")
            lower = len(word) > 1 and word[1:].islower() and word not in FIRST and not word.startswith("I'")
            text = rng.choice(FILLERS) + (text[0].lower() + text[1:] if lower else text)
        elif rng.random() < self.fluency / 3 and " " in text:
            word = text.split(" ", 1)[0].rstrip(",.")
            text = f"{word}- {text}"
        if self.asr:
            text = text.replace("...", "")
            text = re.sub(r"(?<!\.)[,.?!](?!\w)", "", text).lower()
            text = " ".join(text.split())
        self.events.append({"role": "caller", "text": text})

    def agent(self, text: str) -> None:
        self.events.append({"role": "agent", "text": text})

    def wait(self) -> None:
        self.events.append({"role": "wait"})

    # values
    def draw(self, t: _Tool, slot: str, avoid: Any = None) -> Any:
        rng, a = self.rng, t.args[slot]
        for _ in range(30):
            k = a.kind
            if k == "name":
                v: Any = f"{self.first} {self.last}"
            elif k == "weekday":
                v = rng.choice(t.days[slot])
            elif k == "time":
                hour = rng.randint(a.lo, min(a.hi, 23))
                v = f"{hour:02d}:{rng.choice((0, 0, 0, 15, 30, 30, 45, 10, 20, 40, 50, 5)):02d}"
            elif k == "count":
                v = rng.randint(a.lo, a.hi)
            elif k in ("id", "postcode"):
                v = from_fmt(rng, t.fmts[slot])
            elif k == "date":
                v = (self.a.today + timedelta(rng.randint(2, 75))).isoformat()
            elif k in ("reason", "text"):
                v = rng.choice(a.phrases)
            elif k == "choice":
                v = rng.choice(list(a.options))
            elif k == "address":
                v = f"{rng.randint(1, 420)} {rng.choice(STREETS)}"
            elif k == "phone":
                v = str(rng.randint(2, 9)) + "".join(str(rng.randrange(10)) for _ in range(9))
            else:
                raise ValueError(f"unknown value kind {k!r}")
            if v != avoid:
                return v
        return v

    def said(self, t: _Tool, slot: str, v: Any) -> str:
        """How the caller says the value."""
        rng, k = self.rng, t.args[slot].kind
        if k == "weekday":
            return v.capitalize()
        if k == "time":
            return spoken_time(rng, v)
        if k == "count":
            return spoken_count(rng, v)
        if k in ("id", "postcode"):
            return spoken_code(rng, v)
        if k == "date":
            return spoken_day(rng, v)
        if k == "choice":
            return rng.choice(t.args[slot].options[v])
        if k == "address":
            return spoken_address(rng, v)
        if k == "phone":
            return spoken_phone(rng, v)
        return str(v)

    def told(self, t: _Tool, slot: str, v: Any) -> str:
        """How the agent says the value."""
        k = t.args[slot].kind
        if k == "name":
            return v.split()[0] if self.rng.random() < 0.5 else v
        if k == "weekday":
            return v.capitalize()
        if k == "time":
            return agent_time(v)
        if k in ("id", "postcode"):
            return spoken_id(v)
        if k == "date":
            return spoken_date(v)
        if k == "choice":
            return article_less(t.args[slot].options[v][0])
        if k == "phone":
            return f"{v[:3]} {v[3:6]} {v[6:]}"
        return str(v)

    def value(self, t: _Tool, slot: str, v: Any) -> Any:
        """The value as the tool's argument."""
        return t.enums[slot][v] if slot in t.enums else v

    def frame(self, t: _Tool, slot: str, v: Any, frames: tuple[str, ...] = (), told: bool = False) -> str:
        """The value in one of the caller's frames. `told`: said unasked, so a frame that names
        what the value is ("my account number is ..." rather than "It's ..."), and one that starts
        with the value gets an "and" (so it never runs into a number before it)."""
        a = t.args[slot]
        frames = frames or a.say or bar(SAY[a.kind])
        if told:
            frames = tuple(f for f in frames if re.sub(r"\{v\}|It's|[.,]", "", f).split()) or frames
        f = self.rng.choice(frames)
        if told and f.startswith("{v}"):
            f = "and " + f
        return f.replace("{v}", self.said(t, slot, v))

    def answer(self, t: _Tool, slot: str, v: Any) -> str:
        """The caller's answer to the agent's question about `slot`."""
        rng, k = self.rng, t.args[slot].kind
        forms = [f"{self.said(t, slot, v)}.", self.frame(t, slot, v)]
        if k in ("id", "name", "postcode", "phone", "address", "text"):
            forms.append(f"It's {self.said(t, slot, v)}.")
        if k in ("weekday", "time", "count", "choice", "date"):
            forms.append(f"{self.said(t, slot, v)}, please.")
        text = rng.choice(forms)
        text = text if text.endswith((".", "?", "!")) else text + "."
        return text[0].upper() + text[1:]

    def ask(self, t: _Tool, slot: str) -> str:
        a = t.args[slot]
        q = self.rng.choice(a.ask or bar(ASK[a.kind]))
        if "{options}" in q:
            phrases = [article_less(a.options[o][0]) for o in a.options]
            q = q.replace("{options}", ", ".join(phrases[:-1]) + " or " + phrases[-1])
        return q

    def learn(self, t: _Tool, known: dict, slot: str, v: Any) -> None:
        known[slot] = v
        self.named = self.named or t.args[slot].kind == "name"

    # the parts of a call
    def request(self, t: _Tool, first: bool) -> None:
        """The caller asks for what `t` does; the agent gathers the required details, calls it,
        and says what came back."""
        rng = self.rng
        values = {s: self.draw(t, s) for s in t.args}
        known: dict[str, Any] = {}
        shape = rng.random()
        if shape < 0.3:
            told = [s for s in t.args if s in t.required or rng.random() < 0.5]
        elif shape < 0.75:
            told = [s for s in t.args if rng.random() < 0.45]
        else:
            told = []
        frames = []
        for s in told:
            if t.args[s].kind in CORRIGIBLE and rng.random() < 0.08:
                wrong = self.draw(t, s, avoid=values[s])
                first_said = self.frame(t, s, wrong, told=True).rstrip(".")
                frames.append(f"{first_said}, {rng.choice(CORRECT)} {self.said(t, s, values[s])}")
            else:
                frames.append(self.frame(t, s, values[s], told=True))
            self.learn(t, known, s, values[s])
        head = (rng.choice(HELLOS) if first else rng.choice(ALSO)) + rng.choice(t.tpl.want)
        if rng.random() < 0.1:  # the caller trails off; the agent waits for the rest
            k = rng.randint(0, len(frames))
            self.caller(_sentence(head, frames[:k]).rstrip(".?!") + ", " + rng.choice(TRAIL))
            self.wait()
            if k < len(frames):
                self.caller(_sentence("", frames[k:]))
            else:
                self.caller(
                    _sentence("yeah, that's it", [])
                    if rng.random() < 0.5
                    else _sentence("sorry, go ahead", [])
                )
        else:
            self.caller(_sentence(head, frames))
        self.gather(t, known, values)
        if len(known) >= 2 and rng.random() < 0.2:
            self.confirm(t, known)
        self.run_tool(t, known, values)

    def gather(self, t: _Tool, known: dict, values: dict) -> None:
        rng = self.rng
        while missing := [s for s in t.args if s in t.required and s not in known]:
            one_at_a_time = "one thing at a time" in self.a.brief.instructions  # the agent keeps its rules
            asked = (
                missing[:2] if len(missing) > 1 and not one_at_a_time and rng.random() < 0.25 else missing[:1]
            )
            s0 = asked[0]
            keypad = (
                len(asked) == 1 and t.args[s0].kind == "id" and values[s0].isdigit() and rng.random() < 0.25
            )
            self.agent(" ".join(self.ask(t, s) for s in asked) + (DTMF_ASK if keypad else ""))
            if keypad and rng.random() < 0.6:
                self.events.append({"role": "dtmf", "digits": values[s0]})
                self.learn(t, known, s0, values[s0])
                continue
            if t.args[s0].kind in ("id", "phone", "postcode") and rng.random() < 0.15:
                self.caller(rng.choice(HOLD_ON))
                self.wait()
            answered = asked if len(asked) == 1 or rng.random() < 0.6 else asked[:1]
            parts = [self.answer(t, s, values[s]) for s in answered]
            for s in answered:
                self.learn(t, known, s, values[s])
            extra = [s for s in t.args if s not in known and s not in t.required]
            if extra and rng.random() < 0.2:
                parts.append(_sentence("", [self.frame(t, extra[0], values[extra[0]], told=True)]))
                self.learn(t, known, extra[0], values[extra[0]])
            earlier = [s for s in known if s not in answered and t.args[s].kind in CORRIGIBLE]
            if earlier and rng.random() < 0.1:
                s = rng.choice(earlier)
                old, new = known[s], self.draw(t, s, avoid=known[s])
                line = rng.choice(CORRECT_LATER).format(
                    f=self.frame(t, s, new).rstrip("."), old=self.said(t, s, old)
                )
                parts.append(line[0].upper() + line[1:])
                self.learn(t, known, s, new)
            if rng.random() < 0.06:
                self.caller(rng.choice(TRAIL))
                self.wait()
            self.caller(" ".join(parts))

    def confirm(self, t: _Tool, known: dict) -> None:
        rng = self.rng
        facts = ", ".join(self.told(t, s, v) for s, v in known.items() if t.args[s].kind != "reason")
        self.agent(
            rng.choice(
                (
                    "Just to confirm: {}. Is that right?",
                    "So that's {}, correct?",
                    "Let me read that back: {}. Right?",
                )
            ).format(facts)
        )
        fixable = [s for s in known if t.args[s].kind in CORRIGIBLE]
        if fixable and rng.random() < 0.35:
            s = rng.choice(fixable)
            new = self.draw(t, s, avoid=known[s])
            self.caller(
                rng.choice(("No, {}.", "Almost. It should be {}.", "Not quite, {}.")).format(
                    self.said(t, s, new)
                )
            )
            self.learn(t, known, s, new)
        else:
            self.caller(rng.choice(YES))

    def call(self, t: _Tool, known: dict) -> None:
        args = {t.params[s]: self.value(t, s, known[s]) for s in t.args if s in known}
        self.events.append({"role": "tool_call", "tool": t.spec.name, "arguments": args})

    def run_tool(self, t: _Tool, known: dict, values: dict) -> None:
        rng = self.rng
        spoken = {s: self.told(t, s, v) for s, v in known.items()}
        errors = [
            e
            for e in t.tpl.errors
            if (not e.fix or e.fix in known) and any(_slots(r) <= set(spoken) for r in e.replies)
        ]
        if errors and rng.random() < 0.25:
            e = rng.choice(errors)
            self.call(t, known)
            self.events.append({"role": "tool_error", "tool": t.spec.name, "error": rng.choice(e.texts)})
            self.agent(rng.choice([r for r in e.replies if _slots(r) <= set(spoken)]).format(**spoken))
            if not e.fix:
                return
            new = self.draw(t, e.fix, avoid=known[e.fix])
            self.caller(_sentence("", [self.frame(t, e.fix, new, e.retry or bar(NO_SLOT_RETRY))]))
            self.learn(t, known, e.fix, new)
            spoken[e.fix] = self.told(t, e.fix, new)
        self.call(t, known)
        result, said = self.result(t, known, values)
        self.events.append({"role": "tool_result", "tool": t.spec.name, "result": result})
        slots = {**spoken, **said}
        usable = [d for d in t.tpl.done if _slots(d) <= set(slots)]
        text = rng.choice(usable).format(**slots) if usable else "Done. " + ", ".join(said.values()) + "."
        if rng.random() < 0.35:
            text += " " + rng.choice(ANYTHING_ELSE)
        self.agent(text)

    def result(self, t: _Tool, known: dict, values: dict) -> tuple[dict, dict[str, str]]:
        """The tool's result, and its fields as the agent says them."""
        rng = self.rng
        result: dict[str, Any] = {}
        said: dict[str, str] = {}
        for f in t.tpl.result:
            key = t.fields[f.key]
            if f.kind == "echo":
                v = known.get(f.slot, values[f.slot])
                result[key], said[f.slot] = self.value(t, f.slot, v), self.told(t, f.slot, v)
            elif f.kind == "ref":
                result[key] = from_fmt(rng, rng.choice(f.fmt))
                said[f.key] = spoken_id(result[key])
            elif f.kind in ("status", "word"):
                result[key] = said[f.key] = rng.choice(f.values)
            elif f.kind == "date":
                result[key] = (self.a.today + timedelta(rng.randint(1, 30))).isoformat()
                said[f.key] = spoken_date(result[key])
            elif f.kind == "time":
                result[key] = f"{rng.randint(8, 21):02d}:{rng.choice((0, 15, 30, 45)):02d}"
                said[f.key] = agent_time(result[key])
            elif f.kind == "amount":
                cents = rng.choice((0, 0, 50, 99, rng.randrange(100)))
                result[key] = f"{rng.randint(f.lo, f.hi)}.{cents:02d}"
                said[f.key] = spoken_amount(result[key]) if rng.random() < 0.7 else f"${result[key]}"
            elif f.kind == "count":
                result[key] = rng.randint(f.lo, f.hi)
                said[f.key] = str(result[key])
        if t.spec.result_keys and rng.random() < 0.3:
            for k, v in rng.sample(NOISE, 2):
                result.setdefault(k, v)
        return result, said

    def question(self) -> None:
        """The caller asks something the agent answers without a tool."""
        rng, a = self.rng, self.a
        lead = (
            rng.choice(("", "Oh, and ", "Quick question: ", "Also, ", "One thing, ")) if self.events else ""
        )
        r = rng.random()
        if a.facts and r < 0.7:
            f = rng.choice(a.facts)
            q, answer = rng.choice(f.asks), rng.choice(f.answer)
        elif r < 0.85:
            q = rng.choice(
                ("who am I speaking with?", "sorry, what was your name?", "is this a real person?")
            )
            answer = rng.choice(
                (
                    f"This is {a.name}, the assistant at {a.business}.",
                    f"I'm {a.name}, {a.business}'s phone assistant.",
                )
            )
        else:
            q = rng.choice(("do you sell gift cards?", "are you hiring at the moment?", "can I pay in cash?"))
            answer = rng.choice(
                (
                    "I'm sorry, I don't have that information.",
                    "I'm afraid I can't answer that one; I don't have the details here.",
                )
            )
        self.caller(_sentence(lead + q, []))
        self.agent(answer)

    def ask_for_person(self) -> bool:
        """The caller asks for a person: put through (True: the call leaves the agent) or told it
        cannot be done."""
        rng, a = self.rng, self.a
        self.caller(rng.choice(agent_handoff.ASKS))
        if a.handoff is not None:
            self.events += agent_handoff.events(rng, a.handoff)
            return True
        self.agent(agent_handoff.cannot(rng, rng.choice(rng.choice(a.tools).tpl.task)))
        return False

    def run(self) -> None:
        rng, a = self.rng, self.a
        if rng.random() < 0.08:
            self.caller(rng.choice(("Hello?", f"Hi, is this {a.business}?", "Hello, um, can you hear me?")))
            self.agent(
                rng.choice(
                    (
                        f"Yes, hi! This is {a.name} at {a.business}. How can I help?",
                        "Yes, I can hear you. What can I do for you?",
                    )
                )
            )
        if rng.random() < 0.15:
            self.question()
        person = rng.random() < (0.25 if a.handoff else 0.06)
        early = person and rng.random() < 0.5
        if early and self.ask_for_person():
            return
        tools = [rng.choice(a.tools)]
        if rng.random() < 0.35:
            tools.append(rng.choice([t for t in a.tools if t is not tools[0]] or tools))
        for i, t in enumerate(tools):
            self.request(t, first=i == 0)
            if not self.events[-1]["text"].endswith("?") and rng.random() < 0.3:
                self.caller(rng.choice(BACKCHANNELS))
                self.wait()
            if rng.random() < 0.2:
                self.question()
            if person and not early and i == 0 and self.ask_for_person():
                return
        last = next(e["text"] for e in reversed(self.events) if e["role"] == "agent")
        if last.endswith("?") or rng.random() < 0.85:
            self.caller(rng.choice(NO_MORE if last.endswith("?") else BYES))
            bye = [b for b in AGENT_BYES if self.named or "{first}" not in b]
            line = rng.choice(bye).format(business=a.business, first=self.first)
            self.agent(line + (" " + rng.choice(a.domain.bye) if a.domain.bye and rng.random() < 0.4 else ""))


def agent_call(seed: int) -> AgentCall:
    """One call with a newly drawn agent; the same seed always gives the same call."""
    rng = random.Random(f"parley-agent-call:{seed}")
    agent = make_agent(rng)
    call = _Call(rng, agent)
    call.run()
    return AgentCall(agent.brief, tuple(call.events))
