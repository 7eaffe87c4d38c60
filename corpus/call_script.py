"""The call script: its items, their timing relations, `CallScript` with its JSON form, and the validator.

A synthetic call for a shipped agent ("support", or an interpreter of `INTERPRETERS`) is a
`CallScript`: an ordered list of items (`Say`, `ToolCall`, `Timer`, `Dtmf`, `Handoff`,
`EndCall`). Start times are relations (`Gap`) to an earlier item, because speech durations are
only known once the renderer has synthesised the audio.

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

`script_problems` lists every invariant a script breaks (`CallScript.validate` raises them). This
module is the vocabulary the builder (`corpus.call_builder`), the flows and the renderer share; it
knows no phrases, nor how a script is drawn (`corpus.scripts`), nor anything of audio or tensors.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workers.shop import (
    ALREADY_RETURNED,
    NOT_DELIVERED,
    ORDER_NOT_FOUND,
    TOOL_SCHEMAS,
    WINDOW_CLOSED,
    Shop,
    check_arguments,
    spoken_amount,
    spoken_date,
    spoken_id,
    spoken_seconds,
)

SCRIPT_VERSION = 1
# interpreter -> (the caller's language, the language the agent says the caller's words in)
INTERPRETERS = {"translate-en-es": ("en", "es"), "translate-es-en": ("es", "en")}
INTRO_LANG = "en"  # an interpreter's intro (corpus.interpreting_calls says why, each direction)
AGENTS = ("support", *INTERPRETERS)
SCENARIOS: dict[str, dict[str, float]] = {  # scenario -> relative frequency
    "support": {
        "order_status": 20,
        "return": 14,
        "callback": 9,
        "faq": 14,
        "handoff": 9,
        "angry": 10,
        "confused": 10,
        "unknown_order": 14,
    },
    **{name: {"interpret": 88, "interpret_correction": 12} for name in INTERPRETERS},
}
MOODS = ("neutral", "angry", "confused")
BARGE_MS = (600, 2000)  # caller barge-in onset after the agent turn's start
PAUSE_MS = (300, 1500)  # mid-turn pause inside a caller turn
RESPONSE_MS = (150, 400)  # agent turn start after the caller's turn end
LATENCY_MS = (500, 5000)  # tool result after the call
BACKCHANNEL_FRAC = (0.3, 0.7)  # caller backchannel position inside an agent turn
TRANSLATE_MS = (300, 900)  # translation chunk start after its source chunk's end
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
    lang: str = "en"  # "en" | "es": `expected_lang`
    after: Gap
    barge_in: bool = False  # caller only: cuts the agent Say `after.of` at onset + one micro-turn
    pause_inside_turn: bool = False  # continues the previous caller Say's turn after a pause
    translates: int | None = None  # interpreting: index of the caller Say this Say translates
    intent: str = ""
    # With a background model beside the call (corpus.background_calls): a caller Say's words
    # arrive as a `caller_words` event `heard_ms` after it ends; an agent Say is the background
    # model's `reply`, arriving `reply_ms` after the end of item `after.of` (the caller's turn, a
    # result, keys), and voiced no sooner than `reply_lead_ms` after it arrives.
    heard_ms: int | None = None
    reply_ms: int | None = None
    reply_lead_ms: int = 0


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
        return {
            "version": self.version,
            "agent": self.agent,
            "seed": self.seed,
            "scenario": self.scenario,
            "style": dataclasses.asdict(self.style),
            "shop_seed": self.shop_seed,
            "config": self.config,
            "items": [{"kind": it.kind, **dataclasses.asdict(it)} for it in self.items],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CallScript:
        d = json.loads(text)
        if d.get("version") != SCRIPT_VERSION:
            raise ScriptError(f"script version {d.get('version')!r}, this code reads {SCRIPT_VERSION}")
        items = []
        for raw in d["items"]:
            raw = dict(raw)
            kind = raw.pop("kind")
            raw["after"] = Gap(**raw["after"])
            items.append(ITEM_TYPES[kind](**raw))
        return cls(
            d["agent"],
            d["seed"],
            d["scenario"],
            CallerStyle(**d["style"]),
            d["shop_seed"],
            d["config"],
            items,
            d["version"],
        )

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
        return next(
            (
                it
                for it in self.items
                if isinstance(it, Say)
                and it.speaker == "agent"
                and it.role == "turn"
                and it.after.of == index
                and it.after.ref == "prev_end"
            ),
            None,
        )

    def validate(self) -> None:
        problems = script_problems(self)
        if problems:
            raise ScriptError(f"script {self.agent}/{self.seed}: " + "; ".join(problems))


def answer_facts(call: ToolCall) -> list[str]:
    """Lower-case phrases the agent's answer to `call` must contain: what the result says."""
    r, err = call.result, call.error
    if call.name in ("lookup_order", "create_return") and err:
        phrase = {
            ORDER_NOT_FOUND: "couldn't find",
            NOT_DELIVERED: "hasn't been delivered",
            WINDOW_CLOSED: "return window",
            ALREADY_RETURNED: "already been returned",
        }[err]
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


def caller_lang(agent: str) -> str:
    """The language `agent`'s callers speak: an interpreter's source language, else English."""
    return INTERPRETERS[agent][0] if agent in INTERPRETERS else "en"


def expected_lang(agent: str, speaker: str, index: int) -> str:
    """The language of Say `index` by `speaker` in a call of `agent`: callers speak
    `caller_lang`; an interpreter says everything in its target language but its intro (the
    call's first item, `INTRO_LANG`); every other agent speaks English."""
    if speaker == "caller" or agent not in INTERPRETERS:
        return caller_lang(agent)
    return INTRO_LANG if index == 0 else INTERPRETERS[agent][1]


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
        if (
            isinstance(it, Say)
            and isinstance(ref, Say)
            and g.ref == "prev_start"
            and ref.speaker != it.speaker
            and not g.overlap_ok
        ):
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
            if not (
                isinstance(ref, ToolCall)
                and ref.name == "book_callback"
                and ref.arguments.get("seconds") == it.seconds
                and it.after.ref == "prev_end"
            ):
                p.append(f"timer {i}: must follow its book_callback result with the same seconds")
            if not any(isinstance(items[j], Say) and items[j].speaker == "agent" for j in refs.get(i, [])):
                p.append(f"timer {i}: no agent turn after it fires")
        elif isinstance(it, Dtmf):
            if not re.fullmatch(r"[0-9*#]+", it.digits):
                p.append(f"dtmf {i}: bad digits {it.digits!r}")
            used = [
                c
                for c in items[i:]
                if isinstance(c, ToolCall) and c.arguments.get("order_id") == it.digits.rstrip("#")
            ]
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
    want_lang = expected_lang(s.agent, it.speaker, i)
    if it.lang != want_lang:
        p.append(f"say {i}: lang {it.lang}, expected {want_lang}")
    if it.role == "backchannel":
        lo, hi = BACKCHANNEL_FRAC if it.speaker == "caller" else (0.3, 0.9)
        in_pause = it.speaker == "agent" and g.ref == "prev_end" and refs_continue(items, g.of)
        if not (
            isinstance(ref, Say)
            and ref.speaker != it.speaker
            and g.overlap_ok
            and (in_pause or (g.ref == "prev_start" and lo <= g.frac <= hi))
        ):
            p.append(f"say {i}: backchannel must sit {lo:.0%}-{hi:.0%} into the other speaker's Say")
        if refs.get(i):
            p.append(f"say {i}: nothing may be timed from a backchannel")
    if it.barge_in:
        if not (
            it.speaker == "caller"
            and isinstance(ref, Say)
            and ref.speaker == "agent"
            and ref.role == "turn"
            and g.ref == "prev_start"
            and g.overlap_ok
            and BARGE_MS[0] <= g.ms <= BARGE_MS[1]
        ):
            p.append(f"say {i}: barge-in must start {BARGE_MS} ms into an agent turn")
        others = [
            j
            for j in refs.get(g.of, [])
            if j != i and (items[j].after.ref == "prev_end" or getattr(items[j], "role", "") == "backchannel")
        ]
        if others:
            p.append(f"say {i}: items {others} are timed from the end of the agent turn it cuts")
        if isinstance(ref, Say) and ref.after.of is not None and isinstance(items[ref.after.of], ToolCall):
            p.append(f"say {i}: a tool answer may not be barged in on")
    if it.pause_inside_turn:
        lo = 0 if s.agent in INTERPRETERS else PAUSE_MS[0]
        if not (
            it.speaker == "caller"
            and isinstance(ref, Say)
            and ref.speaker == "caller"
            and ref.role == "turn"
            and g.ref == "prev_end"
            and lo <= g.ms <= PAUSE_MS[1]
        ):
            p.append(f"say {i}: pause inside a turn must follow the caller's previous part by {lo}-1500 ms")
    if s.agent == "support" and continued:
        takers = [
            j
            for j in refs.get(i, [])
            if isinstance(items[j], Say) and items[j].speaker == "agent" and items[j].role != "backchannel"
        ]
        if takers:
            p.append(f"say {i}: agent items {takers} take over in a mid-turn pause")
    if (
        s.agent == "support"
        and it.speaker == "agent"
        and it.role != "backchannel"
        and isinstance(ref, Say)
        and ref.speaker == "caller"
        and g.ref == "prev_end"
        and not RESPONSE_MS[0] <= g.ms <= RESPONSE_MS[1]
    ):
        p.append(f"say {i}: agent responds {g.ms} ms after the caller, outside {RESPONSE_MS}")
    if s.agent == "support" and it.role == "turn" and not it.pause_inside_turn:
        # Alternation: a caller turn answers an agent turn; an agent turn answers a caller turn, a
        # tool result, a timer or keys (or opens the call).
        answers_agent = isinstance(ref, Say) and ref.speaker == "agent" and ref.role == "turn"
        if it.speaker == "caller" and not answers_agent:
            p.append(f"say {i}: a caller turn must follow an agent turn")
        answers_caller = isinstance(ref, Say) and ref.speaker == "caller" and ref.role == "turn"
        if it.speaker == "agent" and not (
            ref is None and i == 0 or isinstance(ref, (ToolCall, Timer, Dtmf)) or answers_caller
        ):
            p.append(f"say {i}: an agent turn must follow a caller turn, a result, a timer or keys")
    if s.agent in INTERPRETERS and it.speaker == "caller" and not it.barge_in:
        trans = [j for j, o in enumerate(items) if isinstance(o, Say) and o.translates == i]
        if len(trans) != 1:
            p.append(f"say {i}: {len(trans)} translations, expected 1")
    if s.agent in INTERPRETERS and it.speaker == "agent" and i > 0 and it.translates is None:
        p.append(f"say {i}: an interpreter's Say must translate a caller Say")
    if it.translates is not None:
        if not (
            g.of == it.translates
            and g.ref == "prev_end"
            and g.overlap_ok
            and TRANSLATE_MS[0] <= g.ms <= TRANSLATE_MS[1]
            and it.speaker == "agent"
        ):
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
