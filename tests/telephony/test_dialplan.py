"""The toll-fraud guard: which numbers a translation line may dial (`telephony.dialplan`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from telephony.dialplan import DialPolicy, from_keypad

POLICY = DialPolicy(
    numbers=("+441632960123",),
    prefixes=("+3491",),
    patterns=(r"^\+1555[0-9]{7}$",),
)


@pytest.mark.parametrize("number", ["+441632960123", "+34911234567", "+3491999", "+15551234567"])
def test_allowed_numbers_pass(number):
    assert POLICY.check(number) is None


@pytest.mark.parametrize(
    "number",
    [
        "+441632960124",  # one digit off the listed number
        "+34931234567",  # another Spanish city: outside the prefix
        "+19005550100",  # premium rate: nothing allows it
        "+155512345678",  # the pattern is anchored: one digit more does not match
        "+1555123456",  # nor one fewer
    ],
)
def test_disallowed_numbers_are_refused(number):
    refusal = POLICY.check(number)
    assert refusal is not None and refusal.kind == "not_allowed"
    assert number not in refusal.reason  # refusals never echo the number


@pytest.mark.parametrize(
    "number",
    [
        "",
        "34911234567",
        "+034911234567",
        "+3491 123",
        "+3491123*",
        "+3491123#",
        "+123456",
        "sip:+3491@x",
        None,
        3491,
    ],
)
def test_malformed_numbers_are_refused(number):
    refusal = POLICY.check(number)
    assert refusal is not None and refusal.kind == "malformed"


def test_too_long_numbers_are_refused_whatever_they_start_with():
    for number in ("+3491" + "1" * 12, "+3491" + "1" * 500):
        refusal = POLICY.check(number)
        assert refusal is not None and refusal.kind == "too_long"


def test_an_empty_allowlist_allows_nothing():
    empty = DialPolicy()
    assert empty.empty
    for number in ("+34911234567", "+15551234567", "+441632960123"):
        refusal = empty.check(number)
        assert refusal is not None and refusal.kind == "not_allowed"


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("numbers", ["0034911234567"], "E.164"),
        ("numbers", ["+34911234567", "+34911234567"], "twice"),
        ("prefixes", ["3491"], "E.164 prefix"),
        ("prefixes", ["+0"], "E.164 prefix"),
        ("patterns", [r"\+3491.*"], "anchored"),
        ("patterns", [r"^\+3491.*"], "anchored"),  # not anchored at the end
        ("patterns", [r".*$"], "anchored"),
        ("patterns", [r"^\+34(91$"], "regular expression"),
        ("patterns", ["^\\+" + "1" * 300 + "$"], "longer"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(field, value, words):
    with pytest.raises(ValidationError) as info:
        DialPolicy(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)
    assert words in str(info.value)


def test_keypad_numbers_become_e164():
    assert from_keypad("34911234567#") == "+34911234567"
    assert from_keypad("0034911234567") == "+34911234567"
    assert from_keypad("3491#99") == "+3491"
    assert POLICY.check(from_keypad("0034911234567#")) is None
    assert POLICY.check(from_keypad("349*11234567")).kind == "malformed"
