"""The store and the FAQ index answer exactly as the sample shop does (the training data's source),
writes are idempotent, and workers/ stays free of torch and model/."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.config import check_tool_call
from agent.events import event_json
from workers import protocol
from workers.faq import FaqIndex, parse_markdown, render_markdown
from workers.settings import FAQ_MARKDOWN, WorkerSettings
from workers.shop import TOOL_SCHEMAS, Shop, check_arguments
from workers.store import ShopStore

SHOP = Shop.default()


def test_workers_import_neither_torch_nor_model():
    code = (
        "import sys\n"
        "import workers, workers.app, workers.tools, workers.store, workers.faq, workers.shop, "
        "workers.settings, workers.protocol, procs.redis_server, workers.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model'))\n"
        "assert not bad, bad\n"
        "print('clean', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("clean")


def test_the_shipped_faq_markdown_is_the_default_shops():
    assert FAQ_MARKDOWN.read_text(encoding="utf-8") == render_markdown(SHOP)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fts5_search_answers_as_the_shop_does(seed):
    shop = Shop.generate(seed)
    index = FaqIndex(parse_markdown(render_markdown(shop)))
    queries = [
        "when are you open",
        "how much is shipping to canada",
        "refund",
        "returns policy please",
        "express delivery time",
        "gift",
        "where is the store located",
        "zebra",
        "",
        "can I pay with paypal or a card",
        "cancel my order",
        "hours on sunday",
    ]
    queries += [e.question for e in shop.faq] + [" ".join(e.keywords) for e in shop.faq]
    for q in queries:
        assert index.search(q) == shop.search_faq(q), q


def test_faq_markdown_without_keywords_is_found_by_topic_and_question():
    entries = parse_markdown("# FAQ\n\n## parking\n\n**Is there parking?**\n\nYes, behind\nthe store.\n")
    assert entries[0].answer == "Yes, behind the store."
    assert FaqIndex(entries).search("any parking?") == {
        "matches": [{"topic": "parking", "answer": "Yes, behind the store."}]
    }
    with pytest.raises(ValueError, match="no answer"):
        parse_markdown("## empty\n\n**Q?**\n")


def test_schema_checks_say_what_training_said():
    cases = [
        ("lookup_order", {}),
        ("lookup_order", {"order_id": 7}),
        ("lookup_order", {"order_id": "A-1", "x": 1}),
        ("book_callback", {"seconds": True}),
        ("book_callback", {"seconds": 30}),
        ("end_call", {}),
        ("create_return", {"order_id": "A-1"}),
        ("search_faq", {"query": "hours"}),
    ]
    for name, arguments in cases:
        assert check_tool_call(name, arguments) == check_arguments(name, arguments)
    assert check_tool_call("frobnicate", {}) == SHOP.call("frobnicate", {})[1] == "unknown tool frobnicate"
    assert check_tool_call("lookup_order", None) == "arguments must be a JSON object"
    assert set(TOOL_SCHEMAS) <= set(__import__("agent.config", fromlist=["TOOL_SCHEMAS"]).TOOL_SCHEMAS)


@pytest.fixture
def store(redis_server):
    s = ShopStore(redis_server.client())
    assert s.seeded()
    return s


def test_every_order_is_looked_up_as_the_shop_answers(store):
    for order in SHOP.orders:
        digits = order.order_id[2:]
        for spelled in (
            order.order_id,
            order.order_id.lower().replace("-", ""),
            " ".join(order.order_id),
            digits,
        ):
            args = {"order_id": spelled}
            assert store.shop_for(spelled).call("lookup_order", args) == SHOP.call("lookup_order", args)
    for missing in ("Z-99999", "", "48", "A-4821x" * 20):
        assert store.shop_for(missing).call("lookup_order", {"order_id": missing}) == (
            None,
            "order not found",
        )


def test_writes_are_idempotent_and_in_the_shops_format(store):
    call = "store-test"
    for order in SHOP.orders[:12]:
        args = {"order_id": order.order_id, "reason": "too small"}
        key = f"ret-{order.order_id}"
        first = store.create_return(key, call, args)
        again = store.create_return(key, call, args)  # a redelivery: the stored outcome, no new record
        value, error = SHOP.call("create_return", args)
        assert first == again == (protocol.result(value) if error is None else protocol.error(error))
        other = store.create_return(key + "-other-call", call, {**args, "reason": "changed my mind"})
        assert other == first  # one return per order: the one started stands
    assert sum(r["call_id"] == call for r in store.returns()) == sum(
        SHOP.returnable(o) for o in SHOP.orders[:12]
    )

    booked = store.book_callback("cb-1", call, {"seconds": 30, "phone": "555-0199"})
    assert store.book_callback("cb-1", call, {"seconds": 30, "phone": "555-0199"}) == booked
    shop_value, _ = SHOP.call("book_callback", {"seconds": 30, "phone": "555-0199"})
    assert list(booked["result"]) == list(shop_value) and booked["result"]["seconds"] == 30
    assert booked["result"]["callback_id"].startswith("CB-") and len(booked["result"]["callback_id"]) == 7
    assert (
        booked["timer"]["seconds"] == 30
        and booked["timer"]["note"] == f"call back {booked['result']['callback_id']}"
    )
    assert event_json(booked["result"]) == json.dumps(booked["result"], separators=(",", ":"))
    assert store.book_callback("cb-2", call, {"seconds": 0}) == protocol.error("seconds out of range")
    assert [c["call_id"] for c in store.callbacks()].count(call) == 1


def test_a_fenced_key_never_books(store):
    """A router that gave up stored 'tool timed out' first: the booking must not happen after."""
    assert store.commit("fenced", protocol.error("tool timed out")) == protocol.error("tool timed out")
    assert store.book_callback("fenced", "fence-call", {"seconds": 60}) == protocol.error("tool timed out")
    assert all(c["call_id"] != "fence-call" for c in store.callbacks())


def test_settings_refuse_a_visibility_timeout_shorter_than_a_task():
    with pytest.raises(ValueError, match="visibility_timeout_s"):
        WorkerSettings(time_limit_s=10, visibility_timeout_s=8)
    assert WorkerSettings().redelivery_s <= 10
