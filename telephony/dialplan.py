"""Which numbers an outbound leg may dial: `DialPolicy`, the toll-fraud guard.

A translation line places a call to its second party; without a guard it would be a way to dial
anywhere at the operator's expense. A `DialPolicy` is an allowlist: exact E.164 `numbers`, E.164
`prefixes` ("+3491" allows every number that starts with it) and `patterns` (regular expressions
anchored to E.164: they start with `^\\+` and end with `$`, and must match the whole number). A
number is dialled only when it is well-formed E.164 (a `+`, a non-zero digit, 7-15 digits in all)
and at least one entry allows it; an empty policy allows nothing. `check(number)` says why a
number is refused (`Refusal`: malformed, too long, not allowed), or None.

The transport checks every number against the line's policy itself, right before it would send
the INVITE (and Kamailio refuses any outbound request-URI that is not E.164 and sends what it
relays only to the configured trunk), so nothing above the transport can dial around it. Pure
functions and a frozen model: nothing here knows about SIP, calls or agents, and refusals never
echo the number (it is personal data).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from telephony.leg import E164

MAX_NUMBER_CHARS = 16  # "+" and E.164's 15 digits
MAX_ENTRIES = 1000  # numbers in one policy
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 200
PREFIX = r"\+[1-9][0-9]{0,14}"
_E164 = re.compile(E164)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a number may not be dialled: `kind` is malformed | too_long | not_allowed."""

    kind: str
    reason: str


def _distinct(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: an entry is listed twice")
    return values


class DialPolicy(BaseModel):
    """The numbers an outbound leg may dial. Empty: none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    numbers: tuple[str, ...] = Field(
        (), max_length=MAX_ENTRIES, description="Exact numbers allowed, E.164 (+34911234567)."
    )
    prefixes: tuple[str, ...] = Field(
        (),
        max_length=MAX_PATTERNS,
        description='E.164 prefixes allowed: "+3491" allows every number starting with it.',
    )
    patterns: tuple[str, ...] = Field(
        (),
        max_length=MAX_PATTERNS,
        description=r'Regular expressions anchored to E.164 (start with "^\+", end with "$"), '
        "matched against the whole number.",
    )

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number in value:
            if not _E164.fullmatch(number):
                raise ValueError(f"numbers: {number[:20]!r} is not an E.164 number such as +34911234567")
        return _distinct("numbers", value)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not re.fullmatch(PREFIX, prefix):
                raise ValueError(
                    f"prefixes: {prefix[:20]!r} is not an E.164 prefix ('+', a non-zero digit, "
                    "at most 15 digits)"
                )
        return _distinct("prefixes", value)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if len(pattern) > MAX_PATTERN_CHARS:
                raise ValueError(f"patterns: a pattern is longer than {MAX_PATTERN_CHARS} characters")
            if not (pattern.startswith(r"^\+") and pattern.endswith("$") and not pattern.endswith(r"\$")):
                raise ValueError(
                    rf"patterns: {pattern[:40]!r} must be anchored to E.164: "
                    r"start with '^\+' and end with '$'"
                )
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns: {pattern[:40]!r} is not a regular expression ({exc})") from None
        return _distinct("patterns", value)

    @property
    def empty(self) -> bool:
        return not (self.numbers or self.prefixes or self.patterns)

    def check(self, number: object) -> Refusal | None:
        """None when `number` may be dialled, else why not (never naming the number)."""
        if not isinstance(number, str) or not number:
            return Refusal("malformed", "the number is empty or not text")
        if len(number) > MAX_NUMBER_CHARS:
            return Refusal("too_long", f"the number is longer than E.164's {MAX_NUMBER_CHARS - 1} digits")
        if not _E164.fullmatch(number):
            return Refusal("malformed", "the number is not E.164 ('+', a non-zero digit, 7-15 digits)")
        if self.empty:
            return Refusal("not_allowed", "this line allows no number to be dialled")
        if number in self.numbers or any(number.startswith(p) for p in self.prefixes):
            return None
        if any(_compiled(p).fullmatch(number) for p in self.patterns):
            return None
        return Refusal("not_allowed", "the number is not among those this line may dial")


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def from_keypad(digits: str) -> str:
    """The number a caller keyed in (DTMF digits, `#` and after dropped) as E.164: keypads have no
    `+`, so the international number is keyed with or without a leading "00" ("0034911..." or
    "34911..." -> "+34911..."). Anything but digits stays in, for `DialPolicy.check` to refuse."""
    keyed = digits.split("#", 1)[0]
    if keyed.startswith("00"):
        keyed = keyed[2:]
    return "+" + keyed
