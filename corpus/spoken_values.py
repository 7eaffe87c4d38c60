"""How values are said on the phone: ids, postcodes, times, dates, counts, addresses, phone numbers.

The caller's side (`spoken_*`) draws one of the ways people read a value out from an rng: an id
"A as in apple, four five six", "double seven", "oh" for zero; a time "quarter to four", "7 pm",
"16:30"; a date "the fourteenth of March". The agent's side (`agent_time`, and workers.shop's
spoken_date / spoken_id / spoken_amount) says a value one way. `from_fmt` draws an id in a format
(L a letter, d a digit) and `fmt_pattern` is that format's regex. Pure functions; nothing here
knows of calls or agents.
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import date

from corpus.call_builder import en_number
from workers.shop import spoken_date

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: read as one and zero
LETTER_WORDS = dict(
    zip(
        LETTERS + "IO",
        (
            "apple boy charlie david echo frank george henry john king lima mary nancy peter queen "
            "robert sam tom uniform victor william x-ray yellow zebra india oscar"
        ).split(),
        strict=True,
    )
)


def from_fmt(rng: random.Random, fmt: str) -> str:
    return "".join(
        rng.choice(LETTERS) if c == "L" else str(rng.randrange(10)) if c == "d" else c for c in fmt
    )


def fmt_pattern(fmt: str) -> str:
    """The regex of an id format: 'LL-dddd' -> '^[A-Z]{2}-[0-9]{4}$'."""
    out = ""
    for c, run in itertools.groupby(fmt):
        n = len(list(run))
        cls = "[A-Z]" if c == "L" else "[0-9]" if c == "d" else re.escape(c)
        out += cls + (f"{{{n}}}" if n > 1 else "")
    return f"^{out}$"


def _digits_spoken(rng: random.Random, digits: str, style: str) -> list[str]:
    """A run of digits as words: one by one ("oh" for a zero after a digit), "double seven",
    or two at a time ("forty-two")."""
    words: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        if style == "pairs" and i + 1 < len(digits) and d != "0":
            words.append(en_number(int(digits[i : i + 2])))
            i += 2
            continue
        if style == "double" and i + 1 < len(digits) and digits[i + 1] == d:
            triple = i + 2 < len(digits) and digits[i + 2] == d
            words.append(("triple " if triple else "double ") + en_number(int(d)))
            i += 3 if triple else 2
            continue
        words.append("oh" if d == "0" and words and rng.random() < 0.6 else en_number(int(d)))
        i += 1
    return words


def spoken_code(rng: random.Random, value: str) -> str:
    """An id, a postcode or a card's last digits as a caller reads them out."""
    style = rng.choice(("one", "one", "double", "pairs", "asin", "written", "written_spaced"))
    if style == "written":
        return value
    parts: list[str] = []
    for group in re.findall(r"[A-Z]+|[0-9]+| ", value):
        if group == " ":
            parts.append(",")
        elif group.isdigit():
            if style == "written_spaced":
                parts.append(" ".join(group))
            else:
                parts.append(" ".join(_digits_spoken(rng, group, style)))
        else:
            parts.append(
                ", ".join(f"{c} as in {LETTER_WORDS[c]}" for c in group)
                if style == "asin"
                else " ".join(group)
            )
    return " ".join(parts).replace(" ,", ",")


def spoken_time(rng: random.Random, hhmm: str) -> str:
    """'19:30' as said: 'half past seven in the evening', '7:30 pm', 'seven thirty pm', '19:30'..."""
    hh, mm = int(hhmm[:2]), int(hhmm[3:])
    h12 = hh % 12 or 12
    nxt = (hh + 1) % 12 or 12
    period = "in the morning" if hh < 12 else "in the afternoon" if hh < 17 else "in the evening"
    ampm = rng.choice(("am", "a.m.") if hh < 12 else ("pm", "p.m."))
    minute = {0: "", 15: "fifteen", 30: "thirty", 45: "forty-five", 5: "oh five"}.get(mm, en_number(mm))
    forms = [
        f"{h12}:{mm:02d} {ampm}" if mm else f"{h12} {ampm}",
        f"{en_number(h12)} {minute} {ampm}".replace("  ", " "),
    ]
    if hh == 12 and mm == 0:
        forms += ["noon", "midday", "twelve noon"]
    if mm == 0:
        forms += [f"{en_number(h12)} o'clock {period}", f"{en_number(h12)} {period}"]
    if mm == 30:
        forms.append(f"half past {en_number(h12)} {period}")
    if mm == 15:
        forms.append(f"quarter past {en_number(h12)} {period}")
    if mm == 45:
        forms.append(f"quarter to {en_number(nxt)} {period}")
    if hh >= 13:
        forms.append(hhmm)
    if 8 <= hh <= 11 or 13 <= hh <= 18:  # a bare time a business reads as its working hours
        bare = f"{en_number(h12)} {minute}".strip() if mm else f"{en_number(h12)} o'clock"
        forms.append(bare)
        if mm == 30:
            forms.append(f"half {en_number(h12)}" if rng.random() < 0.3 else f"half past {en_number(h12)}")
        if mm == 45:
            forms.append(f"quarter to {en_number(nxt)}")
    return rng.choice(forms)


def agent_time(hhmm: str) -> str:
    hh, mm = int(hhmm[:2]), int(hhmm[3:])
    if (hh, mm) == (12, 0):
        return "noon"
    h12 = hh % 12 or 12
    return (f"{h12}:{mm:02d}" if mm else f"{h12}") + (" am" if hh < 12 else " pm")


def _ordinal_word(n: int) -> str:
    special = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}
    if n in special:
        return special[n]
    if n < 20:
        return en_number(n) + "th"
    if n % 10 == 0:
        return en_number(n)[:-1] + "ieth"
    return en_number(n - n % 10) + "-" + _ordinal_word(n % 10)


def spoken_day(rng: random.Random, iso: str) -> str:
    d = date.fromisoformat(iso)
    month = d.strftime("%B")
    return rng.choice(
        (
            spoken_date(iso),
            f"the {_ordinal_word(d.day)} of {month}",
            f"{month} {_ordinal_word(d.day)}",
            f"{d.strftime('%A')} the {spoken_date(iso).split()[1]}",
            f"{d.strftime('%A')}, {spoken_date(iso)}",
        )
    )


def spoken_count(rng: random.Random, n: int) -> str:
    if n == 2 and rng.random() < 0.1:
        return "a couple"
    return str(n) if rng.random() < 0.3 else en_number(n)


def spoken_address(rng: random.Random, value: str) -> str:
    number, street = value.split(" ", 1)
    n = int(number)
    if rng.random() < 0.4:
        said = number
    elif n < 100:
        said = en_number(n)
    else:
        said = " ".join(_digits_spoken(rng, number, "one"))
    return f"{said} {street}"


def spoken_phone(rng: random.Random, value: str) -> str:
    groups = (value[:3], value[3:6], value[6:])
    if rng.random() < 0.3:
        return " ".join(groups)
    return ", ".join(" ".join(_digits_spoken(rng, g, rng.choice(("one", "double")))) for g in groups)


def article_less(phrase: str) -> str:
    return re.sub(r"^(a|an|the|some) ", "", phrase)
