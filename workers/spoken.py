"""Inverse text normalisation for the reasoner: what a caller said, as a recogniser writes it,
turned into the written forms a small model copies instead of converting. Spoken digits become
digits (ids joined, "M as in mary" kept as its letter), clock times become HH:MM.
`normalize_spoken` is the one entry point; nothing here knows of calls or models.
"""

from __future__ import annotations

import re

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEENS = (
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
TENS = {"twenty": 2, "thirty": 3, "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8, "ninety": 9}
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)?|\d+|[^\sA-Za-z\d]+|\s+")


def _number_word(w: str) -> str | None:
    w = w.lower()
    if w in ONES:
        return str(ONES.index(w))
    if w in TEENS:
        return str(10 + TEENS.index(w))
    if w in TENS:
        return str(TENS[w] * 10)
    head, _, tail = w.partition("-")
    if head in TENS and tail in ONES[1:]:
        return str(TENS[head] * 10 + ONES.index(tail))
    return None


_HOURS = "|".join(ONES[1:] + TEENS[:3])
_H = rf"(?P<h>1[0-2]|0?[1-9]|{_HOURS})"
_DIGIT_WORDS = "|".join(ONES[1:])
_TENS_WORDS = "|".join(t for t in TENS if TENS[t] <= 5)
_MIN_WORDS = rf"(?:oh[ -](?:{_DIGIT_WORDS})|{'|'.join(TEENS)}|(?:{_TENS_WORDS})(?:-(?:{_DIGIT_WORDS}))?)"
_M = rf"(?::|\s+)(?P<m>[0-5][0-9]|{_MIN_WORDS})"
_AMPM = r"(?P<ampm>[ap]\.?\s?m\b\.?)"
_PART = r"(?P<part>in the morning|in the afternoon|in the evening|at night|tonight)"
# A clock time when something says so: am/pm, o'clock or a part of the day after the hour.
_CLOCK = re.compile(
    rf"\b{_H}(?:{_M})?(?:\s*(?:{_AMPM}|(?P<oclock>o'?clock)))?(?:\s+{_PART})?\b", re.IGNORECASE
)
_PAST_TO = re.compile(rf"\b(?P<rel>half past|quarter past|quarter to)\s+{_H}(?:\s+{_PART})?\b", re.IGNORECASE)
_NOON = re.compile(r"\b(?:noon|midday)\b", re.IGNORECASE)


def _hour(word: str) -> int:
    return int(word) if word.isdigit() else int(_number_word(word) or 0)


def _minute(word: str | None) -> int:
    if not word:
        return 0
    if word.isdigit():
        return int(word)
    head, _, tail = word.lower().replace(" ", "-").partition("-")
    if head == "oh":
        return int(_number_word(tail) or 0)
    return int(_number_word(word) or 0)


def _clock(h: int, m: int, ampm: str | None, part: str | None) -> str:
    afternoon = (ampm or "").lower().startswith("p") or (part or "").lower() in (
        "in the afternoon",
        "in the evening",
        "at night",
        "tonight",
    )
    morning = (ampm or "").lower().startswith("a") or (part or "").lower() == "in the morning"
    if afternoon and h < 12:
        h += 12
    elif morning and h == 12:
        h = 0
    return f"{h:02d}:{m:02d}"


def _clock_times(text: str) -> str:
    """Clock times written as HH:MM (24-hour when the caller says which half of the day): "half
    past nine in the morning" -> "09:30", "3 in the afternoon" -> "15:00", "seven thirty pm" ->
    "19:30", "noon" -> "12:00". Only where something marks a time (am/pm, o'clock, a part of the
    day, half past, a colon), so ids and counts are left alone."""

    def rel(m: re.Match) -> str:
        h = _hour(m["h"])
        minutes = {"half past": 30, "quarter past": 15, "quarter to": 45}[m["rel"].lower()]
        if m["rel"].lower() == "quarter to":
            h = 12 if h == 1 else h - 1
        return _clock(h, minutes, None, m["part"])

    def clock(m: re.Match) -> str:
        colon = m["m"] is not None and ":" in m.group(0)
        if not (m["ampm"] or m["oclock"] or m["part"] or colon):
            return m.group(0)
        return _clock(_hour(m["h"]), _minute(m["m"]), m["ampm"], m["part"])

    text = _PAST_TO.sub(rel, text)
    text = _CLOCK.sub(clock, text)
    return _NOON.sub("12:00", text)


def normalize_spoken(text: str) -> str:
    """Spoken digits as digits, so a small model copies ids instead of converting them: "M as in
    mary, double six four, seven three" -> "M-66473", "five five five, oh one four two" ->
    "5550142". Runs of digits (3 or more, apart only by spaces and commas) are joined; a single
    capital letter right before such a run is joined to it with a hyphen, as is one letter a
    recogniser wrote glued to its digits ("b40808" -> "B-40808"). Clock times become
    HH:MM first (`_clock_times`). Other words are kept."""
    toks = _WORD.findall(_clock_times(text))
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        low = t.lower()
        nxt = [k for k in range(i + 1, min(i + 8, len(toks))) if not toks[k].isspace()]
        if low in ("double", "triple") and nxt and _number_word(toks[nxt[0]]) in ONES_DIGITS:
            d = _number_word(toks[nxt[0]])
            out.append(d * (2 if low == "double" else 3))
            i = nxt[0] + 1
            continue
        if (
            len(t) == 1
            and t.isupper()
            and len(nxt) >= 3
            and [toks[k].lower() for k in nxt[:2]] == ["as", "in"]
        ):
            out.append(t)  # "M as in mary" -> "M"
            i = nxt[2] + 1
            continue
        n = _number_word(t)
        if n is None and low == "oh" and out and _last_is_digit(out):
            n = "0"
        out.append(n if n is not None else t)
        i += 1
    return _join_digits("".join(out))


ONES_DIGITS = tuple(str(d) for d in range(10))


def _last_is_digit(out: list[str]) -> bool:
    for t in reversed(out):
        if t.isspace() or t == ",":
            continue
        return t.isdigit()
    return False


# A spoken id as a recogniser writes it: digit groups (Whisper spells digits "1-2-2") apart only by
# spaces, commas or a full stop (a fragment of an id ends with one: "3-7. 8-5-8"), after an
# optional capital (with a space or a hyphen). A lone "2-3" (a range) is not an id.
_GROUP = r"(?:\d(?:-\d)+|\d+)"
_RUN = re.compile(
    r"(?<![\w-])((?:[A-Z](?:\s*,?\s*|-))?)"
    rf"({_GROUP}(?:(?:\s*,\s*|\s+|\.\s+){_GROUP})+|\d(?:-\d){{2,}}|\d{{3,}})(?![\w-])"
)


_GLUED = re.compile(r"(?<![\w-])([A-Za-z])-?(\d{3,})(?![\w-])")  # Whisper's "b40808"


def _join_digits(text: str) -> str:
    def join(m: re.Match) -> str:
        digits = re.sub(r"\D", "", m.group(2))
        if len(digits) < 3:
            return m.group(0)
        letter = m.group(1).strip(" ,-")
        return f"{letter}-{digits}" if letter else digits

    text = _GLUED.sub(lambda m: f"{m[1].upper()}-{m[2]}", text)
    return _RUN.sub(join, text)
