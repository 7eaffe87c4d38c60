"""`CallBuilder`: appends a call's items with their timing relations, for the agents' flows.

It holds the call's rng, seeded shop and caller style, and turns "the caller answers this agent
turn" or "the agent calls this tool" into items with `Gap`s: pauses inside a caller turn,
barge-ins, backchannels, disfluencies, fillers while a tool result is pending, hand-offs and
hang-ups. Every random choice comes from the call's rng, in a fixed order, so the same seed gives
the same items. The number words and phrase helpers here are shared by the flows.

It knows the items and timing ranges of `corpus.call_script`, not the flows' phrase banks or
scenarios (`corpus.support_calls`, `corpus.interpreting_calls`) nor how a script is validated.
"""

from __future__ import annotations

import random
import re
from typing import Any

from corpus.call_script import (
    BACKCHANNEL_FRAC,
    BARGE_MS,
    PAUSE_MS,
    RESPONSE_MS,
    CallerStyle,
    CallScript,
    Dtmf,
    EndCall,
    Gap,
    Handoff,
    Item,
    Say,
    ToolCall,
)
from workers.shop import FIRST_NAMES, Shop


def est_ms(text: str, rate: float = 1.0) -> float:
    """Rough espeak-ng duration of `text` at its default rate (planning only)."""
    return 62.0 * len(text) / rate


NO_BACKCHANNEL = {"greeting", "anything_else", "goodbye", "callback_hello", "intro"}  # agent intents


def _informative(text: str) -> bool:
    """Long enough, and more than one short question: a turn a listener backchannels during."""
    return len(text.split()) >= 10 and not (text.endswith("?") and not re.search(r"[.!;]", text))


ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def en_number(n: int) -> str:
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])


def lower_first(text: str) -> str:
    first = text.split()[0].strip(",.?!¿¡")
    if first in ("I", "I'm", "I'd", "I've", "I'll") or first in FIRST_NAMES or first.isupper():
        return text
    k = 1 if text[:1] in "¿¡" else 0  # Spanish: the letter after the opening mark
    return text[:k] + text[k].lower() + text[k + 1 :]


# said while a slow tool result is pending
INTERIM = (
    "Still looking, thanks for waiting.",
    "Almost there, one more moment.",
    "Thanks for your patience, it's still loading.",
    "Bear with me, the system is a little slow.",
)


class CallBuilder:
    """Appends items with their timing relations; holds the rng, the shop and the caller's style."""

    def __init__(
        self, agent: str, seed: int, scenario: str, rng: random.Random, shop: Shop, style: CallerStyle
    ):
        self.agent_name, self.seed, self.scenario, self.rng, self.shop, self.style = (
            agent,
            seed,
            scenario,
            rng,
            shop,
            style,
        )
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
        return CallScript(
            self.agent_name,
            self.seed,
            self.scenario,
            self.style,
            self.shop.seed,
            {"agent": self.agent_name},
            self.items,
        )

    def disfluent(
        self,
        text: str,
        p: float | None = None,
        *,
        inside: tuple[str, ...] = ("um,", "uh,", "um,", "uh,", "you know,", "like,"),
        leading: tuple[str, ...] = ("Um", "Uh", "So, um", "Uh, yeah"),
    ) -> str:
        """Maybe add a hesitation: a leading 'um', a filler inside, or a restart ('I want, I want to');
        `inside` and `leading` are the fillers (English by default)."""
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
                    filler = self.pick(inside)
                    return " ".join(words[:k] + [filler] + words[k:])
            else:
                k = next((k for k in range(min(3, len(words) - 2), 0, -1) if all(map(plain, words[:k]))), 0)
                if k:
                    return " ".join(words[:k]) + ", " + lower_first(text)
        return f"{self.pick(leading)}, {lower_first(text)}"

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
            return self.add(
                Say(
                    speaker="caller",
                    text=lead + (lower_first(joined) if lead else joined),
                    intent=intent,
                    barge_in=True,
                    after=Gap("prev_start", offset, True, anchor),
                )
            )
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
            idx = self.add(
                Say(speaker="caller", text=part, intent=intent, after=gap, pause_inside_turn=k > 0)
            )
            if self.rng.random() >= self.p_agent_bc:
                continue
            bc = self.pick(
                ("mm-hmm", "uh-huh", "right", "okay", "I see", "mm")
                if self.style.mood != "angry"
                else ("I understand", "mm-hmm", "I see")
            )
            if pauses[k] >= 800 and self.rng.random() < 0.6:  # in the pause: backchannel, not take-over
                gap_bc = Gap("prev_end", self.ms(80, 200), True, idx)
            elif len(part.split()) >= 8:
                gap_bc = Gap("prev_start", 0, True, idx, round(self.rng.uniform(0.4, 0.85), 2))
            else:
                continue
            self.add(Say(speaker="agent", text=bc, role="backchannel", intent="backchannel", after=gap_bc))
        return idx

    def dtmf(self, digits: str, anchor: int) -> int:
        return self.add(
            Dtmf(
                digits=digits,
                interval_ms=self.ms(180, 600),
                after=Gap("prev_end", self.ms(600, 2500), False, anchor),
            )
        )

    # -- agent side ----------------------------------------------------------------------------

    def agent(
        self,
        text: str,
        anchor: int | None,
        intent: str,
        *,
        role: str = "turn",
        bargeable: bool = False,
        lang: str = "en",
    ) -> int:
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
        idx = self.add(Say(speaker="agent", text=text, role=role, lang=lang, intent=intent, after=gap))
        est = est_ms(text)
        if bargeable and est >= 2600 and self.rng.random() < self.p_barge:
            hi = min(BARGE_MS[1], int(0.55 * est))
            self.barge[idx] = BARGE_MS[0] + int((hi - BARGE_MS[0]) * self.style.patience * self.rng.random())
        elif (
            role == "turn"
            and intent not in NO_BACKCHANNEL
            and _informative(text)
            and self.rng.random() < self.p_caller_bc
        ):
            bc = self.pick(("uh-huh", "right", "okay", "mm-hmm", "yeah", "sure", "I see", "got it"))
            self.add(
                Say(
                    speaker="caller",
                    text=bc,
                    role="backchannel",
                    intent="backchannel",
                    after=Gap("prev_start", 0, True, idx, round(self.rng.uniform(*BACKCHANNEL_FRAC), 2)),
                )
            )
        return idx

    def tool(
        self,
        anchor: int,
        name: str,
        arguments: dict[str, Any],
        filler: str,
        latency: tuple[int, int] | None = None,
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """Filler, then the call right after it; an interim filler while a slow result is pending."""
        f = self.agent(filler, anchor, f"{name}_filler", role="filler")
        result, error = self.shop.call(name, arguments)
        bands = ((500, 1500), (1500, 3500), (3500, 5000))
        lat = self.ms(*(latency or self.rng.choices(bands, (0.55, 0.33, 0.12))[0]))
        t = self.add(
            ToolCall(
                name=name,
                arguments=arguments,
                result=result,
                error=error,
                latency_ms=lat,
                after=Gap("prev_end", self.ms(0, 150), False, f),
            )
        )
        if lat >= 3800 and self.rng.random() < 0.7:
            self.add(
                Say(
                    speaker="agent",
                    role="filler",
                    intent="interim_filler",
                    text=self.pick(INTERIM),
                    after=Gap("prev_start", self.ms(1200, 1600), False, t),
                )
            )
        return t, result, error

    def transfer(self, anchor: int, reason: str, line: str | None = None) -> None:
        """Announce (unless `anchor` already did), call `transfer`, hand off."""
        if line is not None:
            anchor = self.agent(line, anchor, "transfer")
        result, error = self.shop.call("transfer", {"reason": reason})
        t = self.add(
            ToolCall(
                name="transfer",
                arguments={"reason": reason},
                result=result,
                error=error,
                latency_ms=self.ms(500, 1500),
                after=Gap("prev_end", self.ms(50, 300), False, anchor),
            )
        )
        self.add(Handoff(reason=reason, after=Gap("prev_end", 0, False, t)))

    def hang_up(self, goodbye: int) -> None:
        result, error = self.shop.call("end_call", {})
        t = self.add(
            ToolCall(
                name="end_call",
                arguments={},
                result=result,
                error=error,
                latency_ms=self.ms(500, 900),
                after=Gap("prev_end", self.ms(100, 400), False, goodbye),
            )
        )
        self.add(EndCall(after=Gap("prev_end", 0, False, t)))
