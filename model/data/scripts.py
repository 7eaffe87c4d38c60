"""Scripted two-channel calls: what the caller and the agent say, and when, as timing relations.

`generate_script(agent, seed)` writes one synthetic call for a shipped agent ("support" or
"translate-en-es") as a `CallScript`: an ordered list of items (`Say`, `ToolCall`, `Timer`,
`Dtmf`, `Handoff`, `EndCall`). Start times are relations (`Gap`) to an earlier item, because
speech durations are only known once the renderer has synthesised the audio. The same agent and
seed always give the same script. Tool results come from a seeded `model.data.shop.Shop`.

Every item has a start and an end, on the call's clock (t = 0 when the call connects):
  Say       start: resolved from `after`; end: start + speech duration; when a later caller Say
            with `barge_in=True` refers to it, it ends at that caller's onset + one micro-turn.
  ToolCall  start: the agent issues the call; end: start + latency_ms, when the result (or error)
            arrives as an event.
  Timer     start: the timer is set; end: start + seconds, when the timer event fires.
  Dtmf      start: first key; end: start + len(digits) * interval_ms.
  Handoff / EndCall  start = end: the call leaves the model (transfer, hang-up).
`Gap(ref, ms, overlap_ok, of, frac)`: start = (start or end of item `of`) + frac * its duration + ms;
`of=None` is the call's start. Items are listed so that `of` always precedes; list order is not
time order. The renderer also keeps each speaker's Says from overlapping (a Say whose resolved
start falls inside the same speaker's previous Say starts when that one ends).

This module knows nothing of audio, voices or tensors.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from model.data.shop import (ALREADY_RETURNED, FIRST_NAMES, NOT_DELIVERED, ORDER_NOT_FOUND, SHOP_NAME,
                             STATUSES, TOOL_SCHEMAS, WINDOW_CLOSED, Shop, check_arguments, spoken_amount,
                             spoken_date, spoken_id, spoken_seconds)

SCRIPT_VERSION = 1
AGENTS = ("support", "translate-en-es")
SCENARIOS: dict[str, dict[str, float]] = {  # scenario -> relative frequency
    "support": {"order_status": 20, "return": 14, "callback": 9, "faq": 14, "handoff": 9,
                "angry": 10, "confused": 10, "unknown_order": 14},
    "translate-en-es": {"interpret": 88, "interpret_correction": 12},
}
MOODS = ("neutral", "angry", "confused")
BARGE_MS = (600, 2000)  # caller barge-in onset after the agent turn's start
PAUSE_MS = (300, 1500)  # mid-turn pause inside a caller turn
RESPONSE_MS = (150, 400)  # agent turn start after the caller's turn end
LATENCY_MS = (500, 5000)  # tool result after the call
BACKCHANNEL_FRAC = (0.3, 0.7)  # caller backchannel position inside an agent turn
TRANSLATE_MS = (300, 900)  # translation chunk start after its source chunk's end
AGENT_NAME = "Robin"
KEY_DATE = {"processing": "ship_by", "shipped": "eta", "delivered": "delivered", "returned": "returned"}


# -- items --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gap:
    ref: str  # "prev_end" | "prev_start"
    ms: int
    overlap_ok: bool = False
    of: int | None = None  # index of the referenced item; None: the call's start
    frac: float = 0.0  # prev_start only: plus this fraction of the referenced item's duration


@dataclass(kw_only=True)
class Say:
    kind: ClassVar[str] = "say"
    speaker: str  # "caller" | "agent"
    text: str
    role: str = "turn"  # "turn" | "backchannel" | "filler"
    lang: str = "en"  # "en" | "es"
    after: Gap
    barge_in: bool = False  # caller only: cuts the agent Say `after.of` at onset + one micro-turn
    pause_inside_turn: bool = False  # continues the previous caller Say's turn after a pause
    translates: int | None = None  # interpreting: index of the caller Say this Say translates
    intent: str = ""


@dataclass(kw_only=True)
class ToolCall:
    kind: ClassVar[str] = "tool_call"
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    latency_ms: int
    after: Gap


@dataclass(kw_only=True)
class Timer:
    kind: ClassVar[str] = "timer"
    seconds: int
    note: str
    after: Gap


@dataclass(kw_only=True)
class Dtmf:
    kind: ClassVar[str] = "dtmf"
    digits: str
    interval_ms: int  # key onset to key onset
    after: Gap


@dataclass(kw_only=True)
class Handoff:
    kind: ClassVar[str] = "handoff"
    reason: str
    after: Gap


@dataclass(kw_only=True)
class EndCall:
    kind: ClassVar[str] = "end_call"
    after: Gap


Item = Say | ToolCall | Timer | Dtmf | Handoff | EndCall
ITEM_TYPES: dict[str, type] = {t.kind: t for t in (Say, ToolCall, Timer, Dtmf, Handoff, EndCall)}


@dataclass(frozen=True)
class CallerStyle:
    rate_factor: float  # caller speaking rate relative to the voice's default
    patience: float  # 0..1: low barges in sooner and more often
    mood: str  # one of MOODS


class ScriptError(ValueError):
    """A script breaks an invariant; the message lists every problem found."""


@dataclass
class CallScript:
    agent: str
    seed: int
    scenario: str
    style: CallerStyle
    shop_seed: int
    config: dict[str, Any]
    items: list[Item] = field(default_factory=list)
    version: int = SCRIPT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "agent": self.agent, "seed": self.seed,
                "scenario": self.scenario, "style": dataclasses.asdict(self.style),
                "shop_seed": self.shop_seed, "config": self.config,
                "items": [{"kind": it.kind, **dataclasses.asdict(it)} for it in self.items]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CallScript":
        d = json.loads(text)
        if d.get("version") != SCRIPT_VERSION:
            raise ScriptError(f"script version {d.get('version')!r}, this code reads {SCRIPT_VERSION}")
        items = []
        for raw in d["items"]:
            raw = dict(raw)
            kind = raw.pop("kind")
            raw["after"] = Gap(**raw["after"])
            items.append(ITEM_TYPES[kind](**raw))
        return cls(d["agent"], d["seed"], d["scenario"], CallerStyle(**d["style"]), d["shop_seed"],
                   d["config"], items, d["version"])

    def shop(self) -> Shop:
        return Shop.generate(self.shop_seed)

    def features(self) -> set[str]:
        """The timing relations and events this script contains (for coverage and sampling)."""
        out: set[str] = set()
        continued = {it.after.of for it in self.items if isinstance(it, Say) and it.pause_inside_turn}
        for it in self.items:
            if isinstance(it, Say):
                if it.barge_in:
                    out.add("barge_in")
                if it.pause_inside_turn and it.after.ms >= PAUSE_MS[0]:
                    out.add("mid_turn_pause")
                if it.role == "backchannel":
                    out.add(f"{it.speaker}_backchannel")
                ref = self.items[it.after.of] if it.after.of is not None else None
                if it.role == "filler" and isinstance(ref, ToolCall):
                    out.add("interim_filler")
                if it.translates is not None and it.translates in continued:
                    out.add("early_translation")
            elif isinstance(it, ToolCall):
                out.add("tool_call")
                out.add("tool_error" if it.error else "tool_result")
            else:
                out.add(it.kind)
        return out

    def answer_to(self, index: int) -> Say | None:
        """The agent turn that answers the ToolCall at `index` (the first that starts after its result)."""
        return next((it for it in self.items if isinstance(it, Say) and it.speaker == "agent"
                     and it.role == "turn" and it.after.of == index and it.after.ref == "prev_end"), None)

    def validate(self) -> None:
        problems = script_problems(self)
        if problems:
            raise ScriptError(f"script {self.agent}/{self.seed}: " + "; ".join(problems))


def answer_facts(call: ToolCall) -> list[str]:
    """Lower-case phrases the agent's answer to `call` must contain: what the result says."""
    r, err = call.result, call.error
    if call.name in ("lookup_order", "create_return") and err:
        phrase = {ORDER_NOT_FOUND: "couldn't find", NOT_DELIVERED: "hasn't been delivered",
                  WINDOW_CLOSED: "return window", ALREADY_RETURNED: "already been returned"}[err]
        return [phrase] + ([spoken_id(call.arguments["order_id"]).lower()] if err == ORDER_NOT_FOUND else [])
    if call.name == "lookup_order":
        return [r["status"], spoken_date(r[KEY_DATE[r["status"]]]).lower()]
    if call.name == "create_return":
        return [spoken_id(r["return_id"]).lower(), spoken_amount(r["refund"]).lower()]
    if call.name == "search_faq":
        return [r["matches"][0]["answer"].lower()] if r["matches"] else ["couldn't find"]
    if call.name == "book_callback":
        return [spoken_seconds(r["seconds"])]
    return []


# -- validation ---------------------------------------------------------------------------------

def script_problems(s: CallScript) -> list[str]:
    """Every invariant `s` breaks, as readable strings (empty when the script is sound)."""
    p: list[str] = []
    items = s.items
    if s.agent not in AGENTS or s.scenario not in SCENARIOS.get(s.agent, {}):
        return [f"unknown agent/scenario {s.agent}/{s.scenario}"]
    if not items:
        return ["no items"]
    shop = s.shop()
    refs: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        g = it.after
        if g.ref not in ("prev_end", "prev_start"):
            p.append(f"item {i}: bad ref {g.ref!r}")
        if g.of is None:
            if i != 0 or g.ref != "prev_start":
                p.append(f"item {i}: only the first item may refer to the call start")
        elif not 0 <= g.of < i:
            p.append(f"item {i}: refers to item {g.of}, not an earlier one")
            continue
        else:
            refs.setdefault(g.of, []).append(i)
        if g.frac and (g.ref != "prev_start" or not 0 < g.frac < 1):
            p.append(f"item {i}: frac {g.frac} needs prev_start and 0 < frac < 1")
        if g.ms < 0 and not g.overlap_ok:
            p.append(f"item {i}: negative gap without overlap_ok")
        ref = items[g.of] if g.of is not None else None
        if (isinstance(it, Say) and isinstance(ref, Say) and g.ref == "prev_start"
                and ref.speaker != it.speaker and not g.overlap_ok):
            p.append(f"item {i}: starts inside the other speaker's Say {g.of} without overlap_ok")
    if any("not an earlier one" in x or "call start" in x for x in p):
        return p  # the rest follows references; with broken ones it would only add noise
    terminal = [i for i, it in enumerate(items) if isinstance(it, (Handoff, EndCall))]
    if terminal != [len(items) - 1]:
        p.append(f"the last item, and only it, must be a Handoff or EndCall (found at {terminal})")
    for i, it in enumerate(items):
        if isinstance(it, Say):
            p += _say_problems(s, i, it, refs)
        elif isinstance(it, ToolCall):
            p += _tool_problems(s, shop, i, it)
        elif isinstance(it, Timer):
            ref = items[it.after.of] if it.after.of is not None else None
            if not (isinstance(ref, ToolCall) and ref.name == "book_callback"
                    and ref.arguments.get("seconds") == it.seconds and it.after.ref == "prev_end"):
                p.append(f"timer {i}: must follow its book_callback result with the same seconds")
            if not any(isinstance(items[j], Say) and items[j].speaker == "agent" for j in refs.get(i, [])):
                p.append(f"timer {i}: no agent turn after it fires")
        elif isinstance(it, Dtmf):
            if not re.fullmatch(r"[0-9*#]+", it.digits):
                p.append(f"dtmf {i}: bad digits {it.digits!r}")
            used = [c for c in items[i:] if isinstance(c, ToolCall)
                    and c.arguments.get("order_id") == it.digits.rstrip("#")]
            if not used:
                p.append(f"dtmf {i}: no later tool call uses the typed digits")
        elif isinstance(it, (Handoff, EndCall)):
            want = "transfer" if isinstance(it, Handoff) else "end_call"
            ref = items[it.after.of] if it.after.of is not None else None
            if not (isinstance(ref, ToolCall) and ref.name == want and it.after.ref == "prev_end"):
                p.append(f"{it.kind} {i}: must follow a {want} tool result")
    return p


def _say_problems(s: CallScript, i: int, it: Say, refs: dict[int, list[int]]) -> list[str]:
    p: list[str] = []
    items, g = s.items, it.after
    ref = items[g.of] if g.of is not None else None
    continued = any(isinstance(items[j], Say) and items[j].pause_inside_turn for j in refs.get(i, []))
    if it.speaker not in ("caller", "agent") or it.role not in ("turn", "backchannel", "filler"):
        p.append(f"say {i}: bad speaker/role {it.speaker}/{it.role}")
    if not it.text.strip():
        p.append(f"say {i}: empty text")
    want_lang = "es" if s.agent == "translate-en-es" and it.speaker == "agent" and i > 0 else "en"
    if it.lang != want_lang:
        p.append(f"say {i}: lang {it.lang}, expected {want_lang}")
    if it.role == "backchannel":
        lo, hi = BACKCHANNEL_FRAC if it.speaker == "caller" else (0.3, 0.9)
        in_pause = it.speaker == "agent" and g.ref == "prev_end" and refs_continue(items, g.of)
        if not (isinstance(ref, Say) and ref.speaker != it.speaker and g.overlap_ok
                and (in_pause or (g.ref == "prev_start" and lo <= g.frac <= hi))):
            p.append(f"say {i}: backchannel must sit {lo:.0%}-{hi:.0%} into the other speaker's Say")
        if refs.get(i):
            p.append(f"say {i}: nothing may be timed from a backchannel")
    if it.barge_in:
        if not (it.speaker == "caller" and isinstance(ref, Say) and ref.speaker == "agent"
                and ref.role == "turn" and g.ref == "prev_start" and g.overlap_ok
                and BARGE_MS[0] <= g.ms <= BARGE_MS[1]):
            p.append(f"say {i}: barge-in must start {BARGE_MS} ms into an agent turn")
        others = [j for j in refs.get(g.of, []) if j != i
                  and (items[j].after.ref == "prev_end" or getattr(items[j], "role", "") == "backchannel")]
        if others:
            p.append(f"say {i}: items {others} are timed from the end of the agent turn it cuts")
        if isinstance(ref, Say) and ref.after.of is not None and isinstance(items[ref.after.of], ToolCall):
            p.append(f"say {i}: a tool answer may not be barged in on")
    if it.pause_inside_turn:
        lo = 0 if s.agent == "translate-en-es" else PAUSE_MS[0]
        if not (it.speaker == "caller" and isinstance(ref, Say) and ref.speaker == "caller"
                and ref.role == "turn" and g.ref == "prev_end" and lo <= g.ms <= PAUSE_MS[1]):
            p.append(f"say {i}: pause inside a turn must follow the caller's previous part by {lo}-1500 ms")
    if s.agent == "support" and continued:
        takers = [j for j in refs.get(i, []) if isinstance(items[j], Say) and items[j].speaker == "agent"
                  and items[j].role != "backchannel"]
        if takers:
            p.append(f"say {i}: agent items {takers} take over in a mid-turn pause")
    if s.agent == "support" and it.speaker == "agent" and it.role != "backchannel" and isinstance(ref, Say) \
            and ref.speaker == "caller" and g.ref == "prev_end" \
            and not RESPONSE_MS[0] <= g.ms <= RESPONSE_MS[1]:
        p.append(f"say {i}: agent responds {g.ms} ms after the caller, outside {RESPONSE_MS}")
    if s.agent == "support" and it.role == "turn" and not it.pause_inside_turn:
        # Alternation: a caller turn answers an agent turn; an agent turn answers a caller turn, a
        # tool result, a timer or keys (or opens the call).
        answers_agent = isinstance(ref, Say) and ref.speaker == "agent" and ref.role == "turn"
        if it.speaker == "caller" and not answers_agent:
            p.append(f"say {i}: a caller turn must follow an agent turn")
        answers_caller = isinstance(ref, Say) and ref.speaker == "caller" and ref.role == "turn"
        if it.speaker == "agent" and not (ref is None and i == 0 or isinstance(ref, (ToolCall, Timer, Dtmf))
                                          or answers_caller):
            p.append(f"say {i}: an agent turn must follow a caller turn, a result, a timer or keys")
    if s.agent == "translate-en-es" and it.speaker == "caller" and not it.barge_in:
        trans = [j for j, o in enumerate(items) if isinstance(o, Say) and o.translates == i]
        if len(trans) != 1:
            p.append(f"say {i}: {len(trans)} translations, expected 1")
    if s.agent == "translate-en-es" and it.speaker == "agent" and i > 0 and it.translates is None:
        p.append(f"say {i}: an interpreter's Say must translate a caller Say")
    if it.translates is not None:
        if not (g.of == it.translates and g.ref == "prev_end" and g.overlap_ok
                and TRANSLATE_MS[0] <= g.ms <= TRANSLATE_MS[1] and it.speaker == "agent"):
            p.append(f"say {i}: a translation starts {TRANSLATE_MS} ms after its source's end")
    return p


def refs_continue(items: list[Item], index: int) -> bool:
    """Whether the caller Say at `index` is followed by a pause inside the same turn."""
    return any(isinstance(o, Say) and o.pause_inside_turn and o.after.of == index for o in items)


def _tool_problems(s: CallScript, shop: Shop, i: int, it: ToolCall) -> list[str]:
    p: list[str] = []
    items = s.items
    if it.name not in TOOL_SCHEMAS:
        return [f"tool {i}: unknown tool {it.name}"]
    problem = check_arguments(it.name, it.arguments)
    if problem:
        p.append(f"tool {i}: {problem}")
    if not LATENCY_MS[0] <= it.latency_ms <= LATENCY_MS[1]:
        p.append(f"tool {i}: latency {it.latency_ms} outside {LATENCY_MS}")
    if (it.result is None) == (it.error is None):
        p.append(f"tool {i}: exactly one of result and error")
    truthful = (it.result, it.error) == shop.call(it.name, it.arguments)
    if not truthful:
        p.append(f"tool {i}: result is not what shop {s.shop_seed} answers")
    ref = items[it.after.of] if it.after.of is not None else None
    if not (isinstance(ref, Say) and ref.speaker == "agent" and it.after.ref == "prev_end"):
        p.append(f"tool {i}: must be issued right after an agent Say")
    if it.name in ("transfer", "end_call"):
        return p
    if not (isinstance(ref, Say) and ref.role == "filler"):
        p.append(f"tool {i}: must follow a filler")
    answer = s.answer_to(i)
    if answer is None:
        p.append(f"tool {i}: no agent answer after the result")
    elif truthful:  # (an untruthful result was reported above; its facts mean nothing)
        text = answer.text.lower()
        missing = [f for f in answer_facts(it) if f not in text]
        if missing:
            p.append(f"tool {i}: answer {answer.text!r} does not mention {missing}")
    return p


# -- building blocks ----------------------------------------------------------------------------

def _est_ms(text: str, rate: float = 1.0) -> float:
    """Rough espeak-ng duration of `text` at its default rate (planning only)."""
    return 62.0 * len(text) / rate


NO_BACKCHANNEL = {"greeting", "anything_else", "goodbye", "callback_hello", "intro"}  # agent intents


def _informative(text: str) -> bool:
    """Long enough, and more than one short question: a turn a listener backchannels during."""
    return len(text.split()) >= 10 and not (text.endswith("?") and not re.search(r"[.!;]", text))


ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def en_number(n: int) -> str:
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])


def _lower_first(text: str) -> str:
    first = text.split()[0].strip(",.?!")
    if first in ("I", "I'm", "I'd", "I've", "I'll") or first in FIRST_NAMES or first.isupper():
        return text
    return text[0].lower() + text[1:]


class _Call:
    """Appends items with their timing relations; holds the rng, the shop and the caller's style."""

    def __init__(self, agent: str, seed: int, scenario: str, rng: random.Random, shop: Shop,
                 style: CallerStyle):
        self.agent_name, self.seed, self.scenario, self.rng, self.shop, self.style = \
            agent, seed, scenario, rng, shop, style
        self.items: list[Item] = []
        self.barge: dict[int, int] = {}  # agent Say index -> planned caller barge-in offset (ms)
        mood = style.mood
        self.p_pause = {"neutral": 0.3, "angry": 0.35, "confused": 0.6}[mood]
        self.p_disfluent = {"neutral": 0.25, "angry": 0.15, "confused": 0.5}[mood]
        self.p_caller_bc = {"neutral": 0.4, "angry": 0.2, "confused": 0.5}[mood]
        self.p_agent_bc = 0.45
        self.p_barge = 0.1 + 0.55 * (1.0 - style.patience)

    def add(self, item: Item) -> int:
        self.items.append(item)
        return len(self.items) - 1

    def pick(self, options):
        return self.rng.choice(options)

    def ms(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def script(self) -> CallScript:
        return CallScript(self.agent_name, self.seed, self.scenario, self.style, self.shop.seed,
                          {"agent": self.agent_name}, self.items)

    def disfluent(self, text: str, p: float | None = None) -> str:
        """Maybe add a hesitation: a leading 'um', a filler inside, or a restart ('I want, I want to')."""
        rng = self.rng
        if rng.random() >= (self.p_disfluent if p is None else p) or re.search(r"\b(um|uh)\b", text, re.I):
            return text
        words = text.split()
        plain = lambda w: not w.endswith((".", "?", "!", ":", ",", ";"))  # noqa: E731
        r = rng.random()
        if r < 0.7 and len(words) >= 4:
            if r < 0.35:
                spots = [k for k in range(1, len(words)) if plain(words[k - 1]) and not words[k][0].isupper()]
                if spots:
                    k = self.pick(spots)
                    filler = self.pick(("um,", "uh,", "um,", "uh,", "you know,", "like,"))
                    return " ".join(words[:k] + [filler] + words[k:])
            else:
                k = next((k for k in range(min(3, len(words) - 2), 0, -1) if all(map(plain, words[:k]))), 0)
                if k:
                    return " ".join(words[:k]) + ", " + _lower_first(text)
        return f"{self.pick(('Um', 'Uh', 'So, um', 'Uh, yeah'))}, {_lower_first(text)}"

    # -- caller side ---------------------------------------------------------------------------

    def caller(self, text: str, anchor: int, intent: str, *, disfluent: bool = True) -> int:
        """A caller turn answering agent Say `anchor`; '|' marks where it may pause. Returns its last part."""
        parts = [x.strip() for x in text.split("|") if x.strip()]
        if disfluent:
            parts = [self.disfluent(x) for x in parts]
        offset = self.barge.pop(anchor, None)
        if offset is not None:
            lead = self.pick(("Sorry, ", "Sorry to interrupt, ", "Yeah, yeah, ", "Wait, ", "Oh, ", ""))
            joined = " ".join(parts)
            return self.add(Say(speaker="caller", text=lead + (_lower_first(joined) if lead else joined),
                                intent=intent, barge_in=True, after=Gap("prev_start", offset, True, anchor)))
        merged = [parts[0]]
        for x in parts[1:]:  # keep a split as a pause, or say it in one breath
            if self.rng.random() < self.p_pause:
                merged.append(x)
            else:
                merged[-1] += " " + x
        pauses = [self.ms(*PAUSE_MS) for _ in merged[1:]] + [0]
        r = self.rng.random()
        if r < 0.15:
            gap = Gap("prev_end", self.ms(-250, 100), True, anchor)  # starts as the agent finishes
        elif r < 0.3 or self.style.mood == "confused":
            gap = Gap("prev_end", self.ms(600, 1400), False, anchor)
        else:
            gap = Gap("prev_end", self.ms(150, 700), False, anchor)
        idx = -1
        for k, part in enumerate(merged):
            if k:
                gap = Gap("prev_end", pauses[k - 1], False, idx)
            idx = self.add(Say(speaker="caller", text=part, intent=intent, after=gap,
                               pause_inside_turn=k > 0))
            if self.rng.random() >= self.p_agent_bc:
                continue
            bc = self.pick(("mm-hmm", "uh-huh", "right", "okay", "I see", "mm") if self.style.mood != "angry"
                           else ("I understand", "mm-hmm", "I see"))
            if pauses[k] >= 800 and self.rng.random() < 0.6:  # in the pause: backchannel, not take-over
                gap_bc = Gap("prev_end", self.ms(80, 200), True, idx)
            elif len(part.split()) >= 8:
                gap_bc = Gap("prev_start", 0, True, idx, round(self.rng.uniform(0.4, 0.85), 2))
            else:
                continue
            self.add(Say(speaker="agent", text=bc, role="backchannel", intent="backchannel", after=gap_bc))
        return idx

    def dtmf(self, digits: str, anchor: int) -> int:
        return self.add(Dtmf(digits=digits, interval_ms=self.ms(180, 600),
                             after=Gap("prev_end", self.ms(600, 2500), False, anchor)))

    # -- agent side ----------------------------------------------------------------------------

    def agent(self, text: str, anchor: int | None, intent: str, *, role: str = "turn",
              bargeable: bool = False) -> int:
        """An agent Say timed from item `anchor` (a caller turn's end, a result, a timer...)."""
        ref = self.items[anchor] if anchor is not None else None
        if anchor is None:
            gap = Gap("prev_start", self.ms(300, 900), False, None)
        elif isinstance(ref, Say) and ref.speaker == "caller":
            gap = Gap("prev_end", self.ms(*RESPONSE_MS), False, anchor)
        elif isinstance(ref, ToolCall):
            gap = Gap("prev_end", self.ms(200, 650), False, anchor)
        else:
            gap = Gap("prev_end", self.ms(200, 800), False, anchor)
        idx = self.add(Say(speaker="agent", text=text, role=role, intent=intent, after=gap))
        est = _est_ms(text)
        if bargeable and est >= 2600 and self.rng.random() < self.p_barge:
            hi = min(BARGE_MS[1], int(0.55 * est))
            self.barge[idx] = BARGE_MS[0] + int((hi - BARGE_MS[0]) * self.style.patience * self.rng.random())
        elif role == "turn" and intent not in NO_BACKCHANNEL and _informative(text) \
                and self.rng.random() < self.p_caller_bc:
            bc = self.pick(("uh-huh", "right", "okay", "mm-hmm", "yeah", "sure", "I see", "got it"))
            self.add(Say(speaker="caller", text=bc, role="backchannel", intent="backchannel",
                         after=Gap("prev_start", 0, True, idx,
                                   round(self.rng.uniform(*BACKCHANNEL_FRAC), 2))))
        return idx

    def tool(self, anchor: int, name: str, arguments: dict[str, Any], filler: str,
             latency: tuple[int, int] | None = None) -> tuple[int, dict[str, Any] | None, str | None]:
        """Filler, then the call right after it; an interim filler while a slow result is pending."""
        f = self.agent(filler, anchor, f"{name}_filler", role="filler")
        result, error = self.shop.call(name, arguments)
        bands = ((500, 1500), (1500, 3500), (3500, 5000))
        lat = self.ms(*(latency or self.rng.choices(bands, (0.55, 0.33, 0.12))[0]))
        t = self.add(ToolCall(name=name, arguments=arguments, result=result, error=error, latency_ms=lat,
                              after=Gap("prev_end", self.ms(0, 150), False, f)))
        if lat >= 3800 and self.rng.random() < 0.7:
            self.add(Say(speaker="agent", role="filler", intent="interim_filler", text=self.pick(INTERIM),
                         after=Gap("prev_start", self.ms(1200, 1600), False, t)))
        return t, result, error

    def transfer(self, anchor: int, reason: str, line: str | None = None) -> None:
        """Announce (unless `anchor` already did), call `transfer`, hand off."""
        if line is not None:
            anchor = self.agent(line, anchor, "transfer")
        result, error = self.shop.call("transfer", {"reason": reason})
        t = self.add(ToolCall(name="transfer", arguments={"reason": reason}, result=result, error=error,
                              latency_ms=self.ms(500, 1500),
                              after=Gap("prev_end", self.ms(50, 300), False, anchor)))
        self.add(Handoff(reason=reason, after=Gap("prev_end", 0, False, t)))

    def hang_up(self, goodbye: int) -> None:
        result, error = self.shop.call("end_call", {})
        t = self.add(ToolCall(name="end_call", arguments={}, result=result, error=error,
                              latency_ms=self.ms(500, 900),
                              after=Gap("prev_end", self.ms(100, 400), False, goodbye)))
        self.add(EndCall(after=Gap("prev_end", 0, False, t)))


# -- support: phrase banks ----------------------------------------------------------------------

INTERIM = ("Still looking, thanks for waiting.", "Almost there, one more moment.",
           "Thanks for your patience, it's still loading.", "Bear with me, the system is a little slow.")
GREETINGS = (  # (text, long enough to be barged in on)
    (f"Thanks for calling {SHOP_NAME}, this is {AGENT_NAME}. How can I help you today?", True),
    (f"{SHOP_NAME}, {AGENT_NAME} speaking. How can I help?", False),
    (f"Hi, you've reached {SHOP_NAME}. My name is {AGENT_NAME}, and I can help with orders, returns "
     "and store questions. What can I do for you?", True),
    (f"Hello, and thank you for calling {SHOP_NAME}. This call may be recorded for quality purposes. "
     "How can I help you today?", True),
    (f"Hi there, {SHOP_NAME}. What can I do for you?", False),
)
FILLERS = ("Let me check that for you.", "One moment, let me look that up.", "Sure, let me pull that up.",
           "Okay, give me a second to check.", "Let me check that.", "Just a moment while I look.",
           "Alright, checking now.")
ASK_ID = ("Sure, I can help with that. What's the order number?",
          "Of course. Could you give me your order number? It's the letter and five digits in your "
          "confirmation email.", "Happy to check. What's your order number, please?",
          "I can look into that for you. Do you have the order number handy?")
ASK_ID_KEYPAD = ("Sure. You can say your order number, or type the five digits on your keypad.",
                 "Of course. Please type the five digits of your order number on your keypad, "
                 "followed by the pound key.")
GIVE_ID = ("It's {oid}.", "Yes, it's {oid}.", "Sure, {oid}.", "Let me see, | it's {oid}.", "{oid}.",
           "I have it here, | {oid}.")
OPEN_STATUS_ID = (
    "Hi, I'm calling about my order, {oid}. | Can you tell me where it is?",
    "Hello, I wanted to check on order {oid}.",
    "Hi there, this is {first}. | I placed an order, the number is {oid}, "
    "| and I'd like to know when it's coming.",
    "Yeah, hi. Can you check the status of order {oid} for me?",
    "Good morning. I ordered a {item} a few days ago, | order number {oid}. | Has it shipped yet?",
)
OPEN_STATUS = ("Hi, I'd like to check the status of my order.", "Hello, I'm wondering where my package is.",
               "Hi, I ordered a {item} | and I wanted to know when it will arrive.",
               "Hey, can you tell me what's going on with my order?")
HI = ("", "Thanks, {first}. ", "Thank you. ", "Okay, {first}, I found it. ", "Alright, I have it here. ")
STATUS_ANSWERS = {
    "processing": ("Your order is still processing, and it should ship by {date}.",
                   "That order is processing in our warehouse right now; it's due to ship by {date}.",
                   "I see it. The {item} is still processing and should ship by {date}."),
    "shipped": ("Your order shipped on {shipped} with {carrier}, and it should arrive by {date}.",
                "Good news, the {item} has shipped. It's with {carrier}, and the estimated delivery is "
                "{date}.",
                "It shipped with {carrier} on {shipped}, so you can expect it by {date}."),
    "delivered": ("That order was delivered on {date}.",
                  "Our records show the {item} was delivered on {date}.",
                  "It was delivered on {date}; {carrier} marked it as left at the front door."),
    "returned": ("That order was returned on {date}, and your refund of {amount} has been issued.",
                 "I see the {item} was returned on {date}; the refund of {amount} is on its way."),
}
SIMPLE_STATUS = {  # a confused caller asks again
    "processing": "It's still processing, so it hasn't left our warehouse yet. It should ship by {date}.",
    "shipped": "It has shipped and it's on its way to you. It should be at your door by {date}.",
    "delivered": "It was already delivered, on {date}.",
    "returned": "It was returned to us on {date}, so you'll get your money back.",
}
NOT_FOUND = ("I'm sorry, I couldn't find an order with the number {id}. Could you read it to me again?",
             "Hmm, I couldn't find {id} in our system. Could you check the number for me?",
             "I couldn't find an order {id}. Could you say it again, or type the five digits on your keypad?")
REASONS = {
    "too small": ("it's too small", "it's a size too small", "it runs small"),
    "too big": ("it's too big", "it's way too large"),
    "damaged": ("it arrived damaged", "it came broken", "the box was crushed and it's damaged"),
    "wrong item": ("you sent me the wrong item", "it's not what I ordered"),
    "changed mind": ("I changed my mind", "I don't need it anymore"),
    "not as described": ("it doesn't look like the picture", "it's not as described"),
}
RETURN_OK = ("All done. Your return number is {rid}. I've emailed you a prepaid label, and you'll get "
             "{amount} back once we receive it.",
             "Okay, I've started the return. The return number is {rid}, the label is in your email, "
             "and the refund will be {amount}.",
             "Your return is set up, number {rid}. Once the package reaches us we'll refund {amount}.")
RETURN_ERR = {
    NOT_DELIVERED: ("It looks like that order hasn't been delivered yet, so I can't start a return until it "
                    "arrives.",
                    "That order hasn't been delivered yet. Once it arrives, give us a call and we'll set up "
                    "the return."),
    WINDOW_CLOSED: ("I'm sorry, the return window for that order has closed, so I can't start a return.",
                    "Unfortunately that order is past our return window, so a return isn't possible "
                    "anymore."),
    ALREADY_RETURNED: ("That order has already been returned, so there's nothing more to send back.",),
}
OPEN_RETURN = ("Hi, I'd like to return the {item} from order {oid}. | {why}.",
               "Hello, I need to send back my {item}, | {low}. | The order number is {oid}.")
OPEN_CALLBACK = ("Hi, I'm actually driving right now. | Could you call me back in {s}?",
                 "Hello, I'm about to step into a meeting. | Can someone call me back in {s}?",
                 "Hi, sorry, I've got someone at the door. | Can you call me back in about {s}?")
CALLBACK_OK = ("All set, I'll call you back in {s}.", "Done. You'll get a call from us in {s}.",
               "Okay, I've booked a callback in {s}. Talk soon.")
CALLBACK_HELLO = (f"Hi, it's {AGENT_NAME} from {SHOP_NAME}, calling you back as promised. How can I help?",
                  f"Hello again, this is {SHOP_NAME} calling back. Is now a better time?")
OPEN_HANDOFF = (("Can I speak to a real person, please?", "caller asked for a human"),
                ("I'd like to talk to a manager.", "caller asked for a manager"),
                ("Is there a human I can talk to?", "caller asked for a human"),
                ("I have a billing question, | can you put me through to someone?", "billing question"),
                ("Hi, I need to speak with someone | about a wholesale order.", "wholesale inquiry"))
OPEN_ANGRY = ("This is the third time I'm calling about this! | I ordered a {item} over a week ago "
              "| and it still hasn't shown up.",
              "I'm really frustrated. | Your website said my order would be here by now, | and I've heard "
              "nothing. No email, nothing.",
              "Yeah, hi. | I've been waiting forever for my {item}, | and honestly this is ridiculous.")
APOLOGIES = ("I'm really sorry about that, I understand how frustrating it is. Let me look into it right "
             "away. What's your order number?",
             "I'm so sorry to hear that. I'd like to sort this out for you now. Can you give me the order "
             "number?")
OPEN_CONFUSED = ("Hi, um, I'm not sure I called the right number. | I got a message about a package, "
                 "| or, uh, maybe an order?",
                 "Hello? Is this, uh, the store? | I think I ordered something | but I don't remember "
                 "what.",
                 "Um, yes, hi. My daughter ordered something for me | and, uh, I got an email | and I "
                 "don't really understand it.")
FAQ = {  # topic -> (caller questions, the agent's search queries)
    "opening hours": (("What are your opening hours?", "What time do you close today?",
                       "Are you open on the weekend?", "When is your store open?"),
                      ("opening hours", "hours open", "open weekend")),
    "return policy": (("What's your return policy?", "How long do I have to return something?"),
                      ("return policy", "returns")),
    "shipping times": (("How long does shipping usually take?", "If I order today, when would it get here?"),
                       ("shipping time", "how long shipping takes", "delivery time")),
    "shipping cost": (("How much do you charge for shipping?", "Is shipping free?"),
                      ("shipping cost", "free shipping")),
    "international": (("Do you ship to Canada?", "Can I order from Mexico?"),
                      ("international shipping", "ship abroad")),
    "payment": (("Can I pay with PayPal?", "What kinds of payment do you take?"),
                ("payment methods", "pay with paypal")),
    "exchanges": (("Can I exchange something for a different size?",), ("exchange", "exchange size")),
    "gift wrap": (("Do you do gift wrapping?",), ("gift wrap",)),
    "store location": (("Where is your store?", "What's your address?"), ("store location", "store address")),
    "refund timing": (("How long does a refund take?", "When will I get my money back?"),
                      ("refund when", "when refund arrives")),
    "order changes": (("Can I cancel an order I just placed?", "Is it possible to change my order?"),
                      ("cancel order", "change order")),
}
NOT_IN_FAQ = (("Are you hiring at the moment?", "hiring jobs"),
              ("Can I place a wholesale order for my company?", "wholesale"),
              ("Do you offer a student discount?", "student discount"),
              ("Do you repair bikes?", "bike repair"))
FAQ_PREFIX = ("", "Sure. ", "Good question. ", "Here's what I have: ", "Of course. ")
FAQ_MISS = ("I'm sorry, I couldn't find anything about that. Would you like me to transfer you to a "
            "colleague who might know?",
            "I couldn't find an answer to that in our help pages. I can put you through to a colleague, "
            "would that help?")
ACKS = ("Great, thanks.", "Okay, perfect.", "Alright, that's good to know.", "Okay, thank you.",
        "Oh, good.", "Got it, thanks.")
ANYTHING_ELSE = (("Is there anything else I can help you with?", False),
                 ("Anything else I can do for you today?", False),
                 ("Can I help with anything else today, maybe a question about shipping or returns?", True))
NO_MORE = ("No, that's all, thanks.", "Nope, that's it. Thank you!", "No thanks, bye.",
           "That's everything, thanks for your help.")
GOODBYES = ("You're welcome. Have a great day, goodbye!", f"Thanks for calling {SHOP_NAME}. Bye now!",
            "My pleasure. Take care!", "Glad I could help. Goodbye!")
TRANSFER_LINES = ("Of course. I'll transfer you to a colleague now, please stay on the line.",
                  "No problem, I'm connecting you to someone on our team. One moment.",
                  "Sure, I'm transferring you now.")
LETTER_WORDS = {"A": "apple", "B": "boy", "C": "cat", "D": "dog", "F": "frank", "H": "henry", "K": "king",
                "M": "mary", "R": "robert", "T": "tom"}
SECONDS_PHRASES = {10: ("ten seconds",), 15: ("fifteen seconds",), 20: ("twenty seconds",),
                   30: ("thirty seconds", "half a minute"), 45: ("forty-five seconds",),
                   60: ("a minute", "one minute")}


# -- support: flows -----------------------------------------------------------------------------

def _digit_words(c: _Call, digits: str) -> list[str]:
    words, i = [], 0
    while i < len(digits):
        w = "oh" if digits[i] == "0" and c.rng.random() < 0.5 else ONES[int(digits[i])]
        if i + 1 < len(digits) and digits[i + 1] == digits[i] and c.rng.random() < 0.5:
            words.append(f"double {w}")
            i += 2
        else:
            words.append(w)
            i += 1
    return words


def _say_id(c: _Call, oid: str) -> str:
    """How a caller reads an order id aloud: digits, digit words, 'as in', pairs, or as printed."""
    letter, digits = oid[0], oid[2:]
    style = c.rng.randrange(5)
    if style == 0:
        return f"{letter} {' '.join(digits)}"
    if style == 1:
        return f"{letter}, {' '.join(_digit_words(c, digits))}"
    if style == 2:
        w = _digit_words(c, digits)
        return f"{letter} as in {LETTER_WORDS.get(letter, letter)}, {' '.join(w[:2])}, {' '.join(w[2:])}"
    if style == 3:
        pair = lambda s: f"oh {ONES[int(s[1])]}" if s[0] == "0" else en_number(int(s))  # noqa: E731
        return f"{letter} {pair(digits[:2])}, {ONES[int(digits[2])]} {pair(digits[3:])}"
    return oid


def _wrong_id(c: _Call, oid: str) -> str:
    """`oid` with one digit misread, naming no order of the shop."""
    while True:
        digits = list(oid[2:])
        k = c.rng.randrange(5)
        digits[k] = str((int(digits[k]) + c.rng.randint(1, 9)) % 10)
        cand = oid[:2] + "".join(digits)
        if digits[0] != "0" and c.shop.order(cand) is None:
            return cand


def _order(c: _Call, statuses: tuple[str, ...]):
    return c.pick([o for o in c.shop.orders if o.status in statuses])


def _ask_id(c: _Call, anchor: int, oid: str, keypad: float = 0.25) -> tuple[int, str]:
    """The agent asks for the order number; the caller says or types it. -> (item to answer, argument)."""
    if c.rng.random() < keypad:
        prompt = c.pick(ASK_ID_KEYPAD)
        a = c.agent(prompt, anchor, "ask_order_id")
        if c.rng.random() < 0.4:
            a = c.caller(c.pick(("Okay, one second.", "Sure, typing it now.", "Okay, let me find it.")),
                         a, "keypad")
        end = "#" if "pound key" in prompt else c.pick(("", "#"))
        return c.dtmf(oid[2:] + end, a), oid[2:]
    a = c.agent(c.pick(ASK_ID), anchor, "ask_order_id", bargeable=True)
    return c.caller(c.pick(GIVE_ID).format(oid=_say_id(c, oid)), a, "give_order_id"), oid


def _lookup(c: _Call, anchor: int, arg: str, keypad: bool = False) -> tuple[int, dict | None, str | None]:
    t, r, e = c.tool(anchor, "lookup_order", {"order_id": arg}, c.pick(FILLERS))
    if e:
        text = NOT_FOUND[-1] if keypad else c.pick(NOT_FOUND[:-1])
        return c.agent(text.format(id=spoken_id(arg)), t, "lookup_answer"), r, e
    first = r["customer"].split()[0]
    text = c.pick(HI).format(first=first) + c.pick(STATUS_ANSWERS[r["status"]]).format(**_facts(r))
    return c.agent(text, t, "lookup_answer"), r, e


def _facts(r: dict) -> dict[str, str]:
    return {"date": spoken_date(r[KEY_DATE[r["status"]]]), "item": r["items"][0]["name"],
            "shipped": spoken_date(r["shipped"]) if "shipped" in r else "",
            "carrier": r.get("carrier", ""), "amount": spoken_amount(r["total"])}


def _after_status(c: _Call, a: int, r: dict) -> int | None:
    """Follow-ups to a status answer. -> the caller's last turn, or None when the call was handed off."""
    if r["status"] == "shipped" and c.rng.random() < 0.35:
        s = c.caller(c.pick(("Great. Do you have the tracking number?", "Can I get the tracking number?")),
                     a, "tracking")
        a = c.agent(f"Sure, the tracking number is {spoken_id(r['tracking'])}.", s, "tracking_answer")
    elif r["status"] == "delivered" and c.rng.random() < 0.4:
        s = c.caller(c.pick(("But I never got it! | There was nothing at the door.",
                             "That's strange, | I haven't received anything.")), a, "not_received")
        c.transfer(s, "delivered order not received",
                   "I'm sorry about that. I'll transfer you to a colleague who can open a claim with the "
                   "carrier. Please hold.")
        return None
    return c.caller(c.pick(ACKS), a, "ack")


def _faq(c: _Call, question: int, topic: str | None, query: str | None = None) -> int | None:
    query = query or c.pick(FAQ[topic][1])
    t, r, _ = c.tool(question, "search_faq", {"query": query}, c.pick(("Let me look that up.", *FILLERS)))
    if r["matches"]:
        a = c.agent(c.pick(FAQ_PREFIX) + r["matches"][0]["answer"], t, "faq_answer")
        return c.caller(c.pick(ACKS), a, "ack")
    a = c.agent(c.pick(FAQ_MISS), t, "faq_answer")
    if c.rng.random() < 0.6:
        s = c.caller(c.pick(("Yes, please.", "Sure, that would be great.", "Yeah, okay.")), a,
                     "accept_transfer")
        c.transfer(s, "question not in FAQ", c.pick(TRANSFER_LINES))
        return None
    return c.caller(c.pick(("No, that's okay.", "No thanks, I'll check the website.")), a, "decline_transfer")


def _ask(c: _Call, leads: tuple[str, ...], question: str) -> str:
    lead = c.pick(leads)
    return lead + (_lower_first(question) if lead.endswith(", ") else question)


def _closing(c: _Call, caller: int | None, more: bool = True) -> None:
    """'Anything else?' (now and then one more FAQ question), goodbye, end_call."""
    if caller is None:
        return
    text, long_ = c.pick(ANYTHING_ELSE)
    a = c.agent(text, caller, "anything_else", bargeable=long_)
    if more and c.rng.random() < 0.25:
        topic = c.pick(sorted(FAQ))
        leads = ("Actually, yes. ", "Oh, one more thing. ", "Yes, quickly, ")
        question = _ask(c, leads, c.pick(FAQ[topic][0]))
        return _closing(c, _faq(c, c.caller(question, a, "faq_question"), topic), more=False)
    s = c.caller(c.pick(NO_MORE), a, "no_more")
    c.hang_up(c.agent(c.pick(GOODBYES), s, "goodbye"))


def _order_status(c: _Call, g: int) -> None:
    o = _order(c, STATUSES)
    first, item = c.shop.customer(o.customer_id).first, o.items[0].name
    if c.rng.random() < 0.5:
        text = c.pick(OPEN_STATUS_ID).format(oid=_say_id(c, o.order_id), first=first, item=item)
        s, arg = c.caller(text, g, "order_status"), o.order_id
    else:
        s = c.caller(c.pick(OPEN_STATUS).format(item=item), g, "order_status")
        s, arg = _ask_id(c, s, o.order_id)
    a, r, _ = _lookup(c, s, arg)
    _closing(c, _after_status(c, a, r))


def _return(c: _Call, g: int) -> None:
    ok = [o for o in c.shop.orders if c.shop.returnable(o)]
    o = c.pick(ok) if c.rng.random() < 0.75 else c.pick([o for o in c.shop.orders if o not in ok])
    reason = c.pick(sorted(REASONS))
    phrase = c.pick(REASONS[reason])
    item, oid = o.items[0].name, _say_id(c, o.order_id)
    if c.rng.random() < 0.5:
        text = c.pick(OPEN_RETURN).format(item=item, oid=oid, why=phrase[0].upper() + phrase[1:], low=phrase)
        s = c.caller(text, g, "return")
    else:
        s = c.caller(c.pick(("Hi, I'd like to return something.", "Hello, how do I send back an item?",
                             f"Hi, I want to return a {item}.")), g, "return")
        a = c.agent("I can set that up for you. What's the order number, and why are you sending it back?",
                    s, "ask_return_details", bargeable=True)
        s = c.caller(f"It's {oid}, | and {phrase}.", a, "return_details")
    fillers = ("Okay, let me set up that return.", "Alright, one moment while I start the return.", *FILLERS)
    t, r, e = c.tool(s, "create_return", {"order_id": o.order_id, "reason": reason}, c.pick(fillers))
    a = c.agent(_return_answer(c, r, e), t, "return_answer")
    _closing(c, c.caller(c.pick(ACKS if not e else ("Oh, okay.", "I see. Okay.", "Hmm, alright.")), a, "ack"))


def _return_answer(c: _Call, r: dict | None, e: str | None) -> str:
    if e:
        return c.pick(RETURN_ERR[e])
    return c.pick(RETURN_OK).format(rid=spoken_id(r["return_id"]), amount=spoken_amount(r["refund"]))


def _callback(c: _Call, g: int) -> None:
    secs = c.pick((10, 15, 20, 30, 30, 45, 60))
    args: dict[str, Any] = {"seconds": secs}
    text = c.pick(OPEN_CALLBACK).format(s=c.pick(SECONDS_PHRASES[secs]))
    if c.rng.random() < 0.35:
        phone = args["phone"] = c.pick(c.shop.customers).phone
        spoken = " ".join(_digit_words(c, phone[:3])) + ", " + " ".join(_digit_words(c, phone[4:]))
        text = text[:-1] + f", | on {spoken}?"
    s = c.caller(text, g, "callback_request")
    fillers = ("Sure, let me book that.", "No problem, I'll set that up.", "Of course, one moment.")
    t, r, _ = c.tool(s, "book_callback", args, c.pick(fillers), latency=(500, 2500))
    a = c.agent(c.pick(CALLBACK_OK).format(s=spoken_seconds(secs)), t, "callback_answer")
    if c.rng.random() < 0.7:
        c.caller(c.pick(("Great, thanks.", "Perfect, talk soon.", "Thanks, bye for now.")), a, "ack")
    timer = c.add(Timer(seconds=secs, note=f"call back {r['callback_id']}",
                        after=Gap("prev_end", 0, False, t)))
    hello = c.agent(c.pick(CALLBACK_HELLO), timer, "callback_hello", bargeable=True)
    if c.rng.random() < 0.6:
        o = _order(c, ("processing", "shipped", "delivered"))
        s = c.caller(f"Yes, thanks for calling back. | I wanted to ask about order {_say_id(c, o.order_id)}.",
                     hello, "order_status")
        a, r, _ = _lookup(c, s, o.order_id)
        _closing(c, _after_status(c, a, r))
    else:
        topic = c.pick(sorted(FAQ))
        s = c.caller("Yes, thanks. | " + c.pick(FAQ[topic][0]), hello, "faq_question")
        _closing(c, _faq(c, s, topic))


def _faq_call(c: _Call, g: int) -> None:
    leads = ("Hi, quick question. ", "Hello. ", "Hi there. ", "")
    if c.rng.random() < 0.15:
        question, query = c.pick(NOT_IN_FAQ)
        return _closing(c, _faq(c, c.caller(_ask(c, leads, question), g, "faq_question"), None, query))
    topic = c.pick(sorted(FAQ))
    _closing(c, _faq(c, c.caller(_ask(c, leads, c.pick(FAQ[topic][0])), g, "faq_question"), topic))


def _handoff(c: _Call, g: int) -> None:
    text, reason = c.pick(OPEN_HANDOFF)
    s = c.caller(text, g, "ask_human")
    if c.rng.random() < 0.5:
        a = c.agent("I can help with orders, returns and store information right here. Is it about one of "
                    "those, or would you rather talk to a colleague?", s, "offer_help", bargeable=True)
        s = c.caller(c.pick(("I'd really rather talk to a person.", "No, I need a person, please.",
                             "A colleague, please.")), a, "insist_human")
    c.transfer(s, reason, c.pick(TRANSFER_LINES))


def _angry(c: _Call, g: int) -> None:
    o = _order(c, ("processing", "shipped", "shipped", "delivered"))
    s = c.caller(c.pick(OPEN_ANGRY).format(item=o.items[0].name), g, "complaint")
    a = c.agent(c.pick(APOLOGIES), s, "apology", bargeable=True)
    text = c.pick(("It's {oid}.", "{oid}. | I've given it to you people twice already.", "Fine, it's {oid}.",
                   "Just check order {oid}!"))
    s = c.caller(text.format(oid=_say_id(c, o.order_id)), a, "give_order_id")
    a, r, _ = _lookup(c, s, o.order_id)
    roll = c.rng.random()
    if roll < 0.4:
        s = c.caller(c.pick(("That's not good enough. | I want to speak to a manager.",
                             "Unbelievable. | Put me through to a supervisor.")), a, "ask_manager")
        c.transfer(s, "caller asked for a manager",
                   c.pick(("I understand. I'll transfer you to a supervisor now, please hold.",
                           "Of course, I'm connecting you with a manager right away.")))
    elif roll < 0.65:
        s = c.caller(c.pick(("Whatever. | I just want to send it back.", "Forget it, I want a refund.")),
                     a, "return")
        t, r, e = c.tool(s, "create_return", {"order_id": o.order_id, "reason": "changed mind"},
                         "Okay, let me see if I can start a return.")
        a = c.agent(_return_answer(c, r, e), t, "return_answer")
        _closing(c, c.caller(c.pick(("Fine.", "Okay. Fine.", "Hmm, alright.")), a, "ack"), more=False)
    else:
        s = c.caller(c.pick(("Fine. Okay. Thanks.", "Alright. | Well, thanks.")), a, "ack")
        _closing(c, s, more=False)


def _confused(c: _Call, g: int) -> None:
    o = _order(c, STATUSES)
    s = c.caller(c.pick(OPEN_CONFUSED), g, "confused_opening")
    a = c.agent("You're in the right place, I can check that for you. Do you have an order number? It's a "
                "letter followed by five digits, usually at the top of the email.",
                s, "ask_order_id", bargeable=True)
    if c.rng.random() < 0.3:
        s = c.caller("Oh, um, the numbers? | Where do I find those?", a, "confused")
        a = c.agent("If it's easier, you can also type the five digits on your keypad.", s, "offer_keypad")
        s, arg = c.dtmf(o.order_id[2:] + c.pick(("", "#")), a), o.order_id[2:]
    else:
        full = _say_id(c, o.order_id)
        text = c.pick(("Oh, um, let me look... | okay, it says {oid}.",
                       "It's, um, {start}, no wait, | {oid}.",
                       "I think it's {oid}? | Yes, {oid}."))
        s = c.caller(text.format(oid=full, start=" ".join(full.split()[:2])), a, "give_order_id")
        arg = o.order_id
    a, r, _ = _lookup(c, s, arg)
    s = c.caller(c.pick(("Sorry, so, um, | when will it come?", "So... what does that mean? | Is it coming?",
                         "I'm sorry, I didn't quite follow.")), a, "confused")
    a = c.agent(SIMPLE_STATUS[r["status"]].format(date=spoken_date(r[KEY_DATE[r["status"]]])), s, "restate")
    thanks = c.pick(("Oh, okay. Thank you, dear.", "Oh! Okay, that's good. Thanks."))
    _closing(c, c.caller(thanks, a, "ack"), more=False)


def _unknown_order(c: _Call, g: int) -> None:
    o = _order(c, STATUSES)
    wrong = _wrong_id(c, o.order_id)
    text = c.pick(OPEN_STATUS_ID).format(oid=_say_id(c, wrong), first=c.shop.customer(o.customer_id).first,
                                         item=o.items[0].name)
    s = c.caller(text, g, "order_status")
    keypad = c.rng.random() < 0.25
    a, _, _ = _lookup(c, s, wrong, keypad)
    if keypad:
        s, arg = c.dtmf(o.order_id[2:] + c.pick(("", "#")), a), o.order_id[2:]
    else:
        arg = _wrong_id(c, o.order_id) if c.rng.random() < 0.15 else o.order_id
        text = c.pick(("Oh, sorry, I think I misread it. | It's {oid}.", "Let me check. | It's {oid}.",
                       "Really? | Okay, it's {oid}."))
        s = c.caller(text.format(oid=_say_id(c, arg)), a, "give_order_id")
    a, r, e = _lookup(c, s, arg)
    if e:
        s = c.caller("Hmm, that's odd.", a, "confused")
        a = c.agent("Since I still can't find it, let me transfer you to a colleague who can look it up by "
                    "your name. Please hold.", s, "transfer")
        return c.transfer(a, "order not found")
    _closing(c, _after_status(c, a, r))


SUPPORT_FLOWS = {"order_status": _order_status, "return": _return, "callback": _callback, "faq": _faq_call,
                 "handoff": _handoff, "angry": _angry, "confused": _confused, "unknown_order": _unknown_order}


# -- interpreting (English caller, Spanish agent) -----------------------------------------------

INTRO = ("Hi, I'm your interpreter. Go ahead whenever you're ready, and I'll translate into Spanish.",
         "Interpreter here. Please go ahead.", "Hello, I'll be interpreting into Spanish. Go ahead, please.")
# One sentence a line: chunks split by " | ", each "English = Spanish"; a line starting with
# whitespace continues the previous one. Slots ({day}, {n}...) are filled per sentence.
SENTENCE_TEXT = """
Hi, my name is {name} = Hola, me llamo {name} | and I'm calling about my appointment = y llamo por mi cita
I would like to book a table = Quisiera reservar una mesa | for {n} people = para {n_es} personas
    | on {day} at {time} = el {day_es} a las {time_es}
My flight arrives in {city} = Mi vuelo llega a {city} | on {day} {period} = el {day_es} {period_es}
I need a room = Necesito una habitación | for {n} nights = por {n_es} noches
    | starting on {day} = a partir del {day_es}
Can you tell me = ¿Puede decirme | how much the ticket costs? = cuánto cuesta el boleto?
My {rel} has a fever = Mi {rel_es} tiene fiebre | and a bad cough = y mucha tos | since yesterday = desde ayer
Where is the nearest pharmacy? = ¿Dónde está la farmacia más cercana?
I lost my wallet = Perdí mi billetera | on the bus this morning = en el autobús esta mañana
We are going to be late = Vamos a llegar tarde | because of the traffic = por el tráfico
Please send the documents = Por favor, envíe los documentos | to my email = a mi correo electrónico
    | before {day} = antes del {day_es}
The meeting has been moved = La reunión se cambió | to {day} at {time} = al {day_es} a las {time_es}
I don't understand = No entiendo | what the doctor said = lo que dijo el médico
Could you speak more slowly, please? = ¿Podría hablar más despacio, por favor?
How long does the trip take = ¿Cuánto dura el viaje | from here to {city}? = de aquí a {city}?
I would like to pay = Quisiera pagar | with a credit card = con tarjeta de crédito
Is breakfast included = ¿Está incluido el desayuno
    | in the price of the room? = en el precio de la habitación?
My {rel} will pick me up = Mi {rel_es} me va a recoger | at the airport = en el aeropuerto
    | at {time} {period} = a las {time_es} {period_es_at}
The package was supposed to arrive = El paquete debía llegar | {n} days ago = hace {n_es} días
We have {n} children = Tenemos {n_es} hijos | and we need a bigger car = y necesitamos un coche más grande
Thank you very much = Muchas gracias | for your help = por su ayuda
I have an appointment at the clinic = Tengo una cita en la clínica | on {day} = el {day_es}
The water in the bathroom = El agua del baño | is not working = no funciona
Can I change my reservation = ¿Puedo cambiar mi reservación | to next {day}? = para el próximo {day_es}?
It's raining a lot today = Hoy está lloviendo mucho
    | so we will stay at home = así que nos quedaremos en casa
I'm looking for the train station = Busco la estación de tren
My phone number is = Mi número de teléfono es | {phone} = {phone_es}
We need {n} tickets = Necesitamos {n_es} boletos | for the concert on {day} = para el concierto del {day_es}
The store opens at {time} = La tienda abre a las {time_es} | and closes at {time2} = y cierra a las {time2_es}
I want to cancel my order = Quiero cancelar mi pedido | because it's too late = porque ya es muy tarde
Do you know a good restaurant = ¿Conoce un buen restaurante | near the hotel? = cerca del hotel?
My {rel} lives in {city} = Mi {rel_es} vive en {city} | and works at a hospital = y trabaja en un hospital
The taxi to the airport = El taxi al aeropuerto | costs {tens} dollars = cuesta {tens_es} dólares
I have been waiting = He estado esperando | for more than an hour = por más de una hora
Could you help me = ¿Podría ayudarme | fill out this form? = a llenar este formulario?
We arrived yesterday = Llegamos ayer | and we leave on {day} = y nos vamos el {day_es}
What time does the museum close? = ¿A qué hora cierra el museo?
The key to my room = La llave de mi habitación | doesn't work = no funciona
I'd like to order = Quisiera pedir | the chicken with rice = el pollo con arroz
    | and a glass of water = y un vaso de agua
My {rel} is in the hospital = Mi {rel_es} está en el hospital
    | and I need to leave early = y necesito salir temprano
Is there a bus = ¿Hay un autobús | that goes downtown? = que vaya al centro?
The heating in our apartment = La calefacción de nuestro apartamento | has been broken = está rota
    | since {day} = desde el {day_es}
Please call me back = Por favor, devuélvame la llamada
    | after {time} {period} = después de las {time_es} {period_es_at}
We would like to rent a car = Quisiéramos alquilar un coche | for {n} days = por {n_es} días
I think there is a mistake = Creo que hay un error | on my bill = en mi factura
The dog is friendly = El perro es amable | but please close the gate = pero por favor cierre la puerta
{name} will meet you = {name} se reunirá con usted | at the entrance = en la entrada | on {day} = el {day_es}
"""
CLOSING_TEXT = """
That's all for now, thank you. = Eso es todo por ahora, gracias.
Okay, that's everything. = Bueno, eso es todo. | Thanks, goodbye. = Gracias, adiós.
That's it from me. = Eso es todo de mi parte. | Have a good day. = Que tenga un buen día.
"""


def _parse_sentences(text: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    lines: list[str] = []
    for line in text.strip("\n").splitlines():
        if line[:1].isspace():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return tuple(tuple(tuple(x.strip() for x in chunk.split(" = ")) for chunk in line.split(" | "))
                 for line in lines)


SENTENCES = _parse_sentences(SENTENCE_TEXT)
CLOSINGS = _parse_sentences(CLOSING_TEXT)
CORRECTIONS = ("Sorry, wait, let me say that again.", "Hold on, that's not right, let me start over.",
               "Wait, sorry, I'll say that differently.")
DAYS_ES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ES_NUM = "cero uno dos tres cuatro cinco seis siete ocho nueve diez once".split()
ES_TENS = "_ _ veinte treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
RELATIONS = (("brother", "hermano"), ("sister", "hermana"), ("son", "hijo"), ("daughter", "hija"),
             ("mother", "madre"), ("father", "padre"), ("wife", "esposa"), ("husband", "esposo"))
CITIES = ("Madrid", "Chicago", "Denver", "Lima", "Seattle", "Boston", "Dallas", "Miami", "Houston", "Quito")
PERIODS = (("in the morning", "por la mañana", "de la mañana", (7, 11)),
           ("in the afternoon", "por la tarde", "de la tarde", (2, 6)),
           ("in the evening", "por la noche", "de la noche", (7, 10)))


def _slots(c: _Call) -> dict[str, str]:
    rng = c.rng
    day = rng.randrange(7)
    n = rng.randint(2, 9)
    period, period_es, period_es_at, (lo, hi) = c.pick(PERIODS)
    hour = rng.randint(lo, hi)
    close_h = c.pick([h for h in range(5, 12) if h != hour])
    tens = rng.randint(2, 9)
    rel, rel_es = c.pick(RELATIONS)
    phone = [rng.randrange(10) for _ in range(7)]
    return {"name": c.pick(c.shop.customers).first, "day": DAYS_EN[day], "day_es": DAYS_ES[day],
            "n": en_number(n), "n_es": ES_NUM[n], "time": en_number(hour), "time_es": ES_NUM[hour],
            "period": period, "period_es": period_es, "period_es_at": period_es_at,
            "time2": en_number(close_h), "time2_es": ES_NUM[close_h],
            "tens": en_number(tens * 10), "tens_es": ES_TENS[tens], "rel": rel, "rel_es": rel_es,
            "city": c.pick(CITIES),
            "phone": " ".join(ONES[d] for d in phone[:3]) + ", " + " ".join(ONES[d] for d in phone[3:]),
            "phone_es": " ".join(ES_NUM[d] for d in phone[:3]) + ", "
                        + " ".join(ES_NUM[d] for d in phone[3:])}


def _interpret(c: _Call) -> None:
    c.p_caller_bc = 0.0  # an interpreter's caller is not listening to the Spanish
    rng = c.rng
    agent_last = c.agent(c.pick(INTRO), None, "intro") if rng.random() < 0.5 else None
    caller_last: int | None = None
    sentences = list(rng.sample(SENTENCES, rng.randint(2, 5))) + [c.pick(CLOSINGS)]
    correct_at = rng.randrange(len(sentences) - 1) if c.scenario == "interpret_correction" else -1
    resume: int | None = None  # after a correction: the caller's correction is what the next sentence follows
    si = 0
    while si < len(sentences):
        slots = _slots(c)
        chunks = [(en.format(**slots), es.format(**slots)) for en, es in sentences[si]]
        joined = [chunks[0]]
        for en, es in chunks[1:]:
            if rng.random() < 0.3:
                joined[-1] = (f"{joined[-1][0]} {en}", f"{joined[-1][1]} {es}")
            else:
                joined.append((en, es))
        if resume is not None:
            gap = Gap("prev_end", c.ms(300, 900), False, resume)
        elif caller_last is None and agent_last is None:
            gap = Gap("prev_start", c.ms(400, 1500), False, None)
        elif caller_last is None or rng.random() < 0.5:
            gap = Gap("prev_end", c.ms(200, 900), False, agent_last)  # waits for the interpreter
        else:
            gap = Gap("prev_end", c.ms(400, 1400), True, caller_last)  # goes on over the interpreter
        resume = None
        src: list[int] = []
        for k, (en, _) in enumerate(joined):
            if k:
                hesitate = rng.random() < 0.2
                gap = Gap("prev_end", c.ms(*PAUSE_MS) if hesitate else c.ms(0, 250), False, src[-1])
            text = c.disfluent(en, 0.1 if c.style.mood == "neutral" else 0.3)
            src.append(c.add(Say(speaker="caller", text=text, intent="sentence", after=gap,
                                 pause_inside_turn=k > 0)))
            if k:
                agent_last = _translate(c, src[-2], joined[k - 1][1])
        agent_last = _translate(c, src[-1], joined[-1][1])
        caller_last = src[-1]
        hi = min(BARGE_MS[1], int(0.55 * _est_ms(joined[-1][1])))
        if si == correct_at and hi >= BARGE_MS[0] and si < len(sentences) - 1:
            resume = c.add(Say(speaker="caller", text=c.pick(CORRECTIONS), intent="correction", barge_in=True,
                               after=Gap("prev_start", c.ms(BARGE_MS[0], hi), True, agent_last)))
            correct_at = -1
            continue  # the same sentence again, with other details
        if si == correct_at:
            correct_at += 1  # too short to interrupt; try the next sentence
        si += 1
    c.hang_up(agent_last)


def _translate(c: _Call, source: int, text: str) -> int:
    return c.add(Say(speaker="agent", text=text, lang="es", intent="translation", translates=source,
                     after=Gap("prev_end", c.ms(*TRANSLATE_MS), True, source)))


# -- entry point --------------------------------------------------------------------------------

def _style(rng: random.Random, scenario: str) -> CallerStyle:
    if scenario in ("angry", "confused"):
        mood = scenario
    else:
        mood = rng.choices(MOODS, (0.9, 0.06, 0.04))[0]
    patience = {"neutral": (0.3, 1.0), "angry": (0.05, 0.4), "confused": (0.6, 1.0)}[mood]
    rate = {"neutral": (0.85, 1.2), "angry": (1.0, 1.3), "confused": (0.75, 0.95)}[mood]
    return CallerStyle(round(rng.uniform(*rate), 2), round(rng.uniform(*patience), 2), mood)


def generate_script(agent: str, seed: int) -> CallScript:
    """One synthetic call for `agent`; the same agent and seed always give the same script."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; known: {', '.join(AGENTS)}")
    rng = random.Random(f"parley-script:{agent}:{seed}")
    names, weights = zip(*SCENARIOS[agent].items())
    scenario = rng.choices(names, weights)[0]
    shop = Shop.generate(rng.randrange(1_000_000))
    call = _Call(agent, seed, scenario, rng, shop, _style(rng, scenario))
    if agent == "support":
        text, long_ = call.pick(GREETINGS)
        SUPPORT_FLOWS[scenario](call, call.agent(text, None, "greeting", bargeable=long_))
    else:
        _interpret(call)
    return call.script()
