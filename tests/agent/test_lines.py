"""A translation line's configuration: dial modes, the allowlist it must satisfy, sane ranges."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.lines import TranslationLine

ALLOW = {"prefixes": ["+3491"]}


def test_a_fixed_line_and_a_dtmf_line():
    fixed = TranslationLine(
        callee_agent="translate-es-en", dial="fixed", callee_number="+34911234567", allow=ALLOW
    )
    assert fixed.ducking_db == 18.0 and fixed.ring_timeout_s == 30.0
    keyed = TranslationLine(callee_agent="translate-es-en", dial="dtmf", allow=ALLOW, ducking_db=None)
    assert keyed.callee_number is None and keyed.ducking_db is None
    assert TranslationLine.model_validate(keyed.model_dump(mode="json")) == keyed


@pytest.mark.parametrize(
    "fields,words",
    [
        ({"dial": "fixed"}, "needs callee_number"),
        ({"dial": "fixed", "callee_number": "+34931234567"}, "not allowed"),
        ({"dial": "fixed", "callee_number": "+34911234567", "allow": {}}, "no number"),
        ({"dial": "dtmf", "callee_number": "+34911234567"}, "only for dial 'fixed'"),
        ({"dial": "dtmf", "ring_timeout_s": 1}, "greater than or equal"),
        ({"dial": "dtmf", "ring_timeout_s": 600}, "less than or equal"),
        ({"dial": "dtmf", "dtmf_timeout_s": 0}, "greater than or equal"),
        ({"dial": "dtmf", "ducking_db": -3}, "greater than or equal"),
        ({"dial": "dtmf", "ducking_db": 90}, "less than or equal"),
        ({"dial": "ring-everyone"}, "'fixed' or 'dtmf'"),
        ({"dial": "dtmf", "callee_agent": "Not A Slug"}, "pattern"),
        ({"dial": "dtmf", "surprise": 1}, "Extra inputs"),
    ],
)
def test_bad_lines_are_refused(fields, words):
    data = {"callee_agent": "translate-es-en", "allow": ALLOW, **fields}
    with pytest.raises(ValidationError) as info:
        TranslationLine.model_validate(data)
    assert words in str(info.value)
