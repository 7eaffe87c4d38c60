"""The reasoner's scoring rules (evaluation.reasoning): what counts as the right arguments."""

from evaluation.clinic import CLINIC_SCENARIOS
from evaluation.reasoning import arguments_match, reason_in_callers_words

BOOK = next(c for c in CLINIC_SCENARIOS if c["name"] == "clinic-book-one-turn")


def test_a_reason_in_the_callers_words_passes():
    assert reason_in_callers_words("a checkup", "checkup", BOOK["history"])
    assert reason_in_callers_words("Checkup", "checkup", BOOK["history"])


def test_a_reason_the_caller_never_gave_fails_though_it_names_the_reason():
    assert not reason_in_callers_words("we can't have a checkup on Tuesday", "checkup", BOOK["history"])
    assert not reason_in_callers_words("I'm not sure", "checkup", BOOK["history"])
    assert not reason_in_callers_words("", "checkup", BOOK["history"])
    assert not reason_in_callers_words(None, "checkup", BOOK["history"])


def test_the_lenient_rule_takes_any_reason_and_checks_the_rest():
    want = BOOK["expect"]["arguments"]
    assert arguments_match("book_appointment", {**want, "reason": "I'm not sure"}, want)
    assert not arguments_match("book_appointment", {**want, "time": "11:30"}, want)
    assert not arguments_match("book_appointment", {k: v for k, v in want.items() if k != "day"}, want)
