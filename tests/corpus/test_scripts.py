"""The call-script generator and its sample shop: determinism, coverage, invariants, real tool values."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corpus import call_builder, support_calls
from corpus import call_script as sc
from corpus.call_script import (
    BARGE_MS,
    PAUSE_MS,
    RESPONSE_MS,
    CallScript,
    Dtmf,
    EndCall,
    Gap,
    Handoff,
    Say,
    ScriptError,
    Timer,
    ToolCall,
)
from corpus.scripts import generate_script
from workers.shop import (
    ALREADY_RETURNED,
    NOT_DELIVERED,
    ORDER_NOT_FOUND,
    TOOL_SCHEMAS,
    WINDOW_CLOSED,
    Shop,
    spoken_amount,
    spoken_date,
    spoken_id,
    spoken_seconds,
)

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(500)


@pytest.fixture(scope="module")
def support() -> list[CallScript]:
    return [generate_script("support", s) for s in SEEDS]


@pytest.fixture(scope="module")
def interpret() -> list[CallScript]:
    return [generate_script("translate-en-es", s) for s in SEEDS]


def copy(script: CallScript) -> CallScript:
    return CallScript.from_json(script.to_json())


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", sc.AGENTS)
def test_same_seed_same_json_other_seed_other_call(agent):
    first = [generate_script(agent, s).to_json() for s in range(40)]
    assert first == [generate_script(agent, s).to_json() for s in range(40)]
    bodies = [generate_script(agent, s).to_dict()["items"] for s in range(40)]
    assert len({repr(b) for b in bodies}) == 40


def test_scripts_do_not_depend_on_the_hash_seed():
    code = (
        "import hashlib; from corpus.scripts import generate_script as g; "
        "from corpus.call_script import AGENTS; "
        "print(hashlib.sha256(''.join(g(a, s).to_json() for a in AGENTS "
        "for s in range(60)).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        digests.add(out.stdout.strip())
    here = hashlib.sha256(
        "".join(generate_script(a, s).to_json() for a in sc.AGENTS for s in range(60)).encode()
    ).hexdigest()
    assert digests == {here}


def test_shop_is_reproducible_and_round_trips():
    uncached = Shop.generate.__wrapped__  # the cache must not be what makes it reproducible
    assert uncached(7) == Shop.generate(7) and uncached(7).to_json() == Shop.generate(7).to_json()
    assert Shop.generate(7).orders != Shop.generate(8).orders
    assert Shop.default() == Shop.generate(0)
    shop = Shop.default()
    assert Shop.from_json(shop.to_json()) == shop
    assert {o.status for o in shop.orders} == {"processing", "shipped", "delivered", "returned"}
    assert all(re.fullmatch(r"[A-Z]-[1-9]\d{4}", o.order_id) for o in shop.orders)
    assert len({o.order_id[2:] for o in shop.orders}) == len(shop.orders)  # digits alone identify an order


# -- the shop's tools ---------------------------------------------------------------------------


def test_lookup_order_accepts_the_forms_a_caller_gives():
    shop = Shop.generate(3)
    o = shop.orders[5]
    oid = o.order_id
    forms = (oid, oid.replace("-", ""), oid.lower(), oid[2:], spoken_id(oid))
    for form in forms:
        result, error = shop.call("lookup_order", {"order_id": form})
        assert error is None and result["order_id"] == o.order_id and result["status"] == o.status
    assert shop.call("lookup_order", {"order_id": "Z-00000"}) == (None, ORDER_NOT_FOUND)
    assert shop.call("lookup_order", {}) == (None, "missing argument order_id")
    assert shop.call("lookup_order", {"order_id": 48213}) == (None, "argument order_id must be string")
    assert shop.call("book_callback", {"seconds": 30, "when": "now"})[1] == "unknown argument(s) when"
    assert shop.call("refund_everything", {})[1] == "unknown tool refund_everything"


def test_create_return_follows_the_policy():
    shop = Shop.generate(11)
    errors = {}
    for o in shop.orders:
        result, error = shop.call("create_return", {"order_id": o.order_id, "reason": "damaged"})
        errors.setdefault(error, []).append(o.status)
        if error is None:
            assert result["refund"] == o.total and result["order_id"] == o.order_id
            assert re.fullmatch(r"R-\d{5}", result["return_id"])
    assert set(errors[None]) == {"delivered"}
    assert set(errors[NOT_DELIVERED]) == {"processing", "shipped"}
    assert set(errors[ALREADY_RETURNED]) == {"returned"}
    assert set(errors[WINDOW_CLOSED]) == {"delivered"}


@pytest.mark.parametrize("shop_seed", [0, 1, 2, 3, 99])
def test_search_faq_finds_the_topic_the_agent_asks_about(shop_seed):
    shop = Shop.generate(shop_seed)
    for topic, (_, queries) in support_calls.FAQ.items():
        for query in queries:
            matches = shop.search_faq(query)["matches"]
            assert matches and matches[0]["topic"] == topic, (query, matches)
    for _, query in support_calls.NOT_IN_FAQ:
        assert shop.search_faq(query) == {"matches": []}
    hours = next(e for e in shop.faq if e.topic == "opening hours")
    assert all(h in hours.answer for _, h in shop.hours)


# -- coverage -----------------------------------------------------------------------------------


def test_every_support_scenario_and_relation_appears_in_200_seeds(support):
    calls = support[:200]
    assert {s.scenario for s in calls} == set(sc.SCENARIOS["support"])
    seen = set().union(*(s.features() for s in calls))
    assert {
        "barge_in",
        "mid_turn_pause",
        "caller_backchannel",
        "agent_backchannel",
        "tool_call",
        "tool_error",
        "interim_filler",
        "timer",
        "dtmf",
        "handoff",
        "end_call",
    } <= seen
    tools = [it for s in calls for it in s.items if isinstance(it, ToolCall)]
    assert {t.name for t in tools} == set(TOOL_SCHEMAS)
    latencies = [t.latency_ms for t in tools]
    assert min(latencies) >= 500 and max(latencies) <= 5000
    assert min(latencies) < 800 and max(latencies) > 4500  # the whole range is used
    moods = {s.style.mood for s in calls}
    assert moods == {"neutral", "angry", "confused"}


def test_interpreting_starts_before_the_callers_sentence_ends(interpret):
    calls = interpret[:200]
    assert {s.scenario for s in calls} == set(sc.SCENARIOS["translate-en-es"])
    seen = set().union(*(s.features() for s in calls))
    assert {"early_translation", "barge_in", "mid_turn_pause", "end_call"} <= seen
    early = 0
    for s in calls:
        for it in s.items:
            if isinstance(it, Say) and it.translates is not None:
                assert it.lang == "es" and it.after.of == it.translates and it.after.overlap_ok
                source = s.items[it.translates]
                assert source.speaker == "caller" and source.lang == "en"
                early += sc.refs_continue(s.items, it.translates)  # the caller goes on after this chunk
    assert early > 200


# -- invariants ---------------------------------------------------------------------------------


def test_validate_passes_on_500_seeds(support, interpret):
    for script in support + interpret:
        script.validate()


def test_scripts_only_call_tools_their_agent_has(support, interpret):
    """A tool the agent's configuration lacks is refused at serving ("tool not allowed")."""
    from agent.config import get_agent

    for script in support + interpret:
        allowed = set(get_agent(script.agent).tools)
        used = {it.name for it in script.items if isinstance(it, ToolCall)}
        assert used <= allowed, (script.agent, used - allowed)


def test_timing_relations_use_the_specified_ranges(support):
    for s in support[:200]:
        items = s.items
        for it in items:
            g = it.after
            ref = items[g.of] if g.of is not None else None
            if isinstance(it, Say) and it.barge_in:
                assert g.ref == "prev_start" and BARGE_MS[0] <= g.ms <= BARGE_MS[1] and ref.speaker == "agent"
            elif isinstance(it, Say) and it.pause_inside_turn:
                assert ref.speaker == "caller" and PAUSE_MS[0] <= g.ms <= PAUSE_MS[1]
            elif isinstance(it, Say) and it.role == "backchannel" and it.speaker == "caller":
                assert g.ref == "prev_start" and 0.3 <= g.frac <= 0.7 and ref.speaker == "agent"
            elif (
                isinstance(it, Say)
                and it.speaker == "agent"
                and isinstance(ref, Say)
                and ref.speaker == "caller"
                and it.role != "backchannel"
            ):
                assert g.ref == "prev_end" and RESPONSE_MS[0] <= g.ms <= RESPONSE_MS[1]
                assert not sc.refs_continue(items, g.of)  # never in a mid-turn pause
            elif isinstance(it, ToolCall):
                assert isinstance(ref, Say) and ref.speaker == "agent" and g.ref == "prev_end"
                if it.name not in ("transfer", "end_call"):
                    assert ref.role == "filler"


def broken(script: CallScript, index_of, change) -> CallScript:
    s = copy(script)
    i = next(i for i, it in enumerate(s.items) if index_of(s, i, it))
    s.items[i] = change(s.items[i])
    return s


def test_validate_catches_broken_scripts(support, interpret):
    with_lookup = next(
        s
        for s in support
        if any(isinstance(it, ToolCall) and it.name == "lookup_order" and it.result for it in s.items)
    )
    lookup = lambda s, i, it: isinstance(it, ToolCall) and it.name == "lookup_order" and it.result  # noqa: E731
    bad = {
        "result": broken(
            with_lookup, lookup, lambda it: dataclasses.replace(it, result={**it.result, "status": "lost"})
        ),
        "latency": broken(with_lookup, lookup, lambda it: dataclasses.replace(it, latency_ms=6000)),
        "response gap": broken(
            with_lookup,
            lambda s, i, it: (
                isinstance(it, Say)
                and it.speaker == "agent"
                and it.after.of is not None
                and isinstance(s.items[it.after.of], Say)
                and s.items[it.after.of].speaker == "caller"
                and it.role != "backchannel"
            ),
            lambda it: dataclasses.replace(it, after=Gap("prev_end", 40, of=it.after.of)),
        ),
    }
    # The answer that no longer says what the tool returned:
    s = copy(with_lookup)
    i = next(i for i, it in enumerate(s.items) if lookup(s, i, it))
    answer = s.answer_to(i)
    answer.text = "Thanks for waiting, I have it."
    bad["answer"] = s
    # A take-over in a mid-turn pause:
    paused = next(s for s in support if "mid_turn_pause" in s.features())
    s = copy(paused)
    j = next(j for j, it in enumerate(s.items) if isinstance(it, Say) and it.pause_inside_turn)
    takeover = Say(speaker="agent", text="Sure.", after=Gap("prev_end", 200, False, s.items[j].after.of))
    s.items.insert(j, takeover)
    s.items = _reindex_after_insert(s.items, j)
    bad["take-over"] = s
    # A barge-in too early, and a call that never ends:
    barged = next(s for s in support if "barge_in" in s.features())
    bad["barge"] = broken(
        barged,
        lambda s, i, it: isinstance(it, Say) and it.barge_in,
        lambda it: dataclasses.replace(it, after=dataclasses.replace(it.after, ms=300)),
    )
    s = copy(with_lookup)
    s.items = [it for it in s.items if not isinstance(it, (EndCall, Handoff))]
    bad["no end"] = s
    # A caller sentence nobody translates, and a reference to a later item:
    translation = lambda s, i, it: isinstance(it, Say) and it.translates is not None  # noqa: E731
    untranslated = lambda it: dataclasses.replace(it, translates=None)  # noqa: E731
    bad["translation"] = broken(interpret[0], translation, untranslated)
    s = copy(interpret[0])
    s.items[1] = dataclasses.replace(s.items[1], after=dataclasses.replace(s.items[1].after, of=5))
    bad["forward reference"] = s
    expected = {
        "result": "not what shop",
        "latency": "latency 6000",
        "response gap": "agent responds 40 ms",
        "answer": "does not mention",
        "take-over": "take over in a mid-turn pause",
        "barge": "barge-in must start",
        "no end": "must be a Handoff or EndCall",
        "translation": "0 translations",
        "forward reference": "not an earlier one",
    }
    assert set(bad) == set(expected)
    for name, script in bad.items():
        with pytest.raises(ScriptError, match=expected[name]):
            script.validate()


def _reindex_after_insert(items, j):
    """Shift references past an inserted item at index j."""
    out = []
    for k, it in enumerate(items):
        g = it.after
        if k > j and g.of is not None and g.of >= j:
            it = dataclasses.replace(it, after=dataclasses.replace(g, of=g.of + 1))
        if isinstance(it, Say) and it.translates is not None and it.translates >= j and k > j:
            it = dataclasses.replace(it, translates=it.translates + 1)
        out.append(it)
    return out


# -- the answers carry the shop's real values ---------------------------------------------------


def test_tool_answers_contain_the_shops_values(support):
    counts = {"lookup": 0, "not found": 0, "return": 0, "faq": 0, "callback": 0}
    for s in support[:300]:
        shop = s.shop()
        for i, it in enumerate(s.items):
            if not isinstance(it, ToolCall) or it.name in ("transfer", "end_call"):
                continue
            text = s.answer_to(i).text.lower()
            if it.name == "lookup_order" and it.error:
                assert shop.order(it.arguments["order_id"]) is None
                assert "couldn't find" in text
                counts["not found"] += 1
            elif it.name == "lookup_order":
                order = shop.order(it.arguments["order_id"])
                assert order is not None and it.result["order_id"] == order.order_id
                assert order.status in text and spoken_date(order.key_date).lower() in text
                counts["lookup"] += 1
            elif it.name == "create_return" and not it.error:
                order = shop.order(it.arguments["order_id"])
                assert shop.returnable(order)
                assert spoken_id(it.result["return_id"]).lower() in text
                assert spoken_amount(order.total).lower() in text
                assert it.arguments["reason"] in (*support_calls.REASONS, "changed mind")
                counts["return"] += 1
            elif it.name == "search_faq" and it.result["matches"]:
                entry = next(e for e in shop.faq if e.topic == it.result["matches"][0]["topic"])
                assert entry.answer.lower() in text
                counts["faq"] += 1
            elif it.name == "book_callback":
                timer = next(t for t in s.items if isinstance(t, Timer))
                assert timer.seconds == it.arguments["seconds"] and spoken_seconds(timer.seconds) in text
                counts["callback"] += 1
    assert min(counts.values()) >= 10, counts


def test_dtmf_digits_are_the_order_the_agent_looks_up(support):
    typed = 0
    for s in support:
        for i, it in enumerate(s.items):
            if isinstance(it, Dtmf):
                call = next(t for t in s.items[i:] if isinstance(t, ToolCall))
                assert call.arguments["order_id"] == it.digits.rstrip("#")
                assert s.shop().order(it.digits.rstrip("#")) is not None
                typed += 1
    assert typed >= 20


def _digits_from_speech(spoken: str) -> str:
    """Invert the caller's ways of reading an order id (digits, words, 'oh', 'double', pairs)."""
    ones = {w: str(i) for i, w in enumerate(call_builder.ONES)} | {"oh": "0"}
    tens = {w: str(i) for i, w in enumerate(call_builder.TENS) if w != "_"}
    rest = re.sub(r"^\s*as in \w+", "", spoken[1:].lower())
    out, times = "", 1
    for tok in re.findall(r"[a-z]+(?:-[a-z]+)?|\d", rest):
        if tok == "double":
            times = 2
            continue
        if "-" in tok:
            t, o = tok.split("-")
            out += tens[t] + ones[o]
        else:
            out += (tok if tok.isdigit() else tens[tok] + "0" if tok in tens else ones[tok]) * times
        times = 1
    return out


def test_caller_reads_order_ids_that_mean_the_order():
    rng = random.Random(5)
    shop = Shop.generate(2)
    style = sc.CallerStyle(1.0, 0.5, "neutral")
    call = call_builder.CallBuilder("support", 0, "order_status", rng, shop, style)
    for o in shop.orders:
        for _ in range(6):
            spoken = support_calls._say_id(call, o.order_id)
            assert spoken[0] == o.order_id[0]
            assert _digits_from_speech(spoken) == o.order_id[2:], spoken


# -- serialisation and knobs --------------------------------------------------------------------


def test_json_round_trip(support, interpret):
    for s in support[:100] + interpret[:100]:
        back = CallScript.from_json(s.to_json())
        assert back == s and back.to_json() == s.to_json()
        assert CallScript.from_json(s.to_json(indent=1)) == s
    stale = support[0].to_dict() | {"version": 0}
    with pytest.raises(ScriptError):
        CallScript.from_json(json.dumps(stale))


def test_style_knobs_follow_the_scenario(support):
    for s in support:
        assert 0.75 <= s.style.rate_factor <= 1.3 and 0.0 <= s.style.patience <= 1.0
        if s.scenario in ("angry", "confused"):
            assert s.style.mood == s.scenario
        if s.style.mood == "angry":
            assert s.style.patience <= 0.4


def test_unknown_agent_is_refused():
    with pytest.raises(ValueError, match="unknown agent"):
        generate_script("sales", 1)
