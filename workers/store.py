"""The sample shop's live data in Redis: orders, returns, callbacks, hand-offs, tool outcomes.

`seed(shop)` (`parley seed`) writes a `workers.shop.Shop`'s orders and customers to Redis. The
tools never hold the shop in memory: each lookup reads the one order it needs and answers through
a one-order `Shop` built from it, so the answer is computed by the same code, and has the same
keys and values, as the answers in the calls the model was trained on (`Shop.call`).

Writes are idempotent. Every tool call carries an idempotency key; its outcome is stored under
`protocol.outcome_key(key)`, and a tool that writes (a return, a callback, a hand-off ticket)
commits its record and that outcome in one Redis transaction (WATCH/MULTI) that only goes
through while no outcome exists. A redelivered task, a task running twice at once, or a router
that gave up waiting and fenced the key with "tool timed out": whichever commits first is the
only outcome there will ever be, and a booking exists exactly when a result saying so was stored.

Redis keys (all under `parley:`): `shop:meta`, `shop:order:<A48213>`, `shop:order-number:<48213>`,
`shop:customer:<C001>`, `returns` (hash by order id), `callbacks` (hash by idempotency key),
`handoffs` (list, newest first), `calls:ended` (hash by call id), `tool:outcome:<key>`.
Knows nothing of Celery.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import redis
from redis.client import Pipeline

from workers import protocol
from workers.shop import Customer, Item, Order, Shop

P = protocol.KEY_PREFIX
META = f"{P}shop:meta"
RETURNS = f"{P}returns"
CALLBACKS = f"{P}callbacks"
HANDOFFS = f"{P}handoffs"
ENDED = f"{P}calls:ended"
MAX_ID_CHARS = 32


def order_key(alnum: str) -> str:
    return f"{P}shop:order:{alnum}"


def number_key(digits: str) -> str:
    return f"{P}shop:order-number:{digits}"


def customer_key(customer_id: str) -> str:
    return f"{P}shop:customer:{customer_id}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


Compute = Callable[[Pipeline], tuple[dict[str, Any], Callable[[Pipeline], None] | None]]


class ShopStore:
    """The shop's orders and the tools' records in one Redis database."""

    def __init__(self, client: redis.Redis, outcome_ttl_s: int = 86_400) -> None:
        self.r = client
        self.ttl = outcome_ttl_s

    # --- seeding -----------------------------------------------------------------------------------
    def seed(self, shop: Shop) -> int:
        """Replace the shop's orders and customers with `shop`'s; returns the number of orders.

        Returns, callbacks, hand-offs and tool outcomes are left alone."""
        stale = list(self.r.scan_iter(match=f"{P}shop:*", count=500))
        meta = {
            "seed": shop.seed,
            "name": shop.name,
            "today": shop.today,
            "return_days": shop.return_days,
            "hours": shop.hours,
        }
        with self.r.pipeline(transaction=True) as pipe:
            if stale:
                pipe.delete(*stale)
            for c in shop.customers:
                pipe.set(customer_key(c.customer_id), _dumps(asdict(c)))
            for o in shop.orders:
                alnum = o.order_id.replace("-", "")
                pipe.set(order_key(alnum), _dumps(asdict(o)))
                pipe.set(number_key(alnum[1:]), alnum)
            pipe.set(META, _dumps(meta))
            pipe.execute()
        return len(shop.orders)

    def seeded(self) -> bool:
        return bool(self.r.exists(META))

    # --- reading the shop --------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        raw = self.r.get(META)
        if raw is None:
            raise LookupError("the shop is not seeded: run `parley seed`")
        return json.loads(raw)

    def shop(self, orders: tuple[Order, ...] = (), customers: tuple[Customer, ...] = ()) -> Shop:
        """A `Shop` with the seeded shop's settings and just the given records."""
        m = self._meta()
        hours = tuple(tuple(h) for h in m["hours"])
        return Shop(m["seed"], m["name"], m["today"], m["return_days"], hours, customers, orders, ())

    def shop_for(self, order_id: str) -> Shop:
        """A shop holding the order `order_id` names (as `Shop.order` reads ids) and its customer,
        or no order at all."""
        key = re.sub(r"[^A-Z0-9]", "", order_id.upper())
        raw = None
        if 0 < len(key) <= MAX_ID_CHARS:
            raw = self.r.get(order_key(key))
            if raw is None and key.isdigit():
                full = self.r.get(number_key(key))
                raw = self.r.get(order_key(full.decode())) if full else None
        if raw is None:
            return self.shop()
        d = json.loads(raw)
        order = Order(**{**d, "items": tuple(Item(**i) for i in d["items"])})
        c = json.loads(self.r.get(customer_key(order.customer_id)))
        return self.shop((order,), (Customer(**c),))

    # --- idempotency -------------------------------------------------------------------------------
    def outcome(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(protocol.outcome_key(key))
        return json.loads(raw) if raw is not None else None

    def commit(self, key: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """Store `outcome` unless one is stored already; returns the one that stands."""
        if self.r.set(protocol.outcome_key(key), _dumps(outcome), nx=True, ex=self.ttl):
            return outcome
        stored = self.outcome(key)
        return stored if stored is not None else outcome

    def commit_write(self, key: str, compute: Compute, watch: tuple[str, ...] = ()) -> dict[str, Any]:
        """Run `compute(pipe)` (reads only) and commit its write with its outcome, atomically and
        only while no outcome is stored; returns the outcome that stands."""
        okey = protocol.outcome_key(key)
        with self.r.pipeline() as pipe:
            for _ in range(50):
                try:
                    pipe.watch(okey, *watch)
                    stored = pipe.get(okey)
                    if stored is not None:
                        return json.loads(stored)
                    outcome, write = compute(pipe)
                    pipe.multi()
                    if write is not None:
                        write(pipe)
                    pipe.set(okey, _dumps(outcome), ex=self.ttl)
                    pipe.execute()
                    return outcome
                except redis.WatchError:
                    continue
        raise RuntimeError("too much contention on a tool's records")

    # --- the writing tools -------------------------------------------------------------------------
    def create_return(self, key: str, call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        shop = self.shop_for(arguments["order_id"])

        def compute(pipe: Pipeline):
            value, error = shop.call("create_return", arguments)
            if error is not None:
                return protocol.error(error), None
            existing = pipe.hget(RETURNS, value["order_id"])
            if existing is not None:  # one return per order: the one already started stands
                record = json.loads(existing)
                return protocol.result({k: record[k] for k in value}), None
            record = {**value, "call_id": call_id, "created_at": time.time()}
            return protocol.result(value), lambda p: p.hset(RETURNS, value["order_id"], _dumps(record))

        return self.commit_write(key, compute, watch=(RETURNS,))

    def book_callback(self, key: str, call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        shop = self.shop()

        def compute(pipe: Pipeline):
            value, error = shop.call("book_callback", arguments)
            if error is not None:
                return protocol.error(error), None
            # The shop's id is a function of the request; a live booking's is its key's.
            value["callback_id"] = f"CB-{zlib.crc32(key.encode()) % 9000 + 1000}"
            booked = time.time()
            due = booked + value["seconds"]
            record = {**value, "call_id": call_id, "booked_at": booked, "due_at": due}
            timer = {"at": due, "note": f"call back {value['callback_id']}", "seconds": value["seconds"]}
            return protocol.result(value, timer), lambda p: p.hset(CALLBACKS, key, _dumps(record))

        return self.commit_write(key, compute)

    def transfer(self, key: str, call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        shop = self.shop()

        def compute(pipe: Pipeline):
            value, error = shop.call("transfer", arguments)
            if error is not None:
                return protocol.error(error), None
            ticket = {
                "call_id": call_id,
                "reason": arguments["reason"],
                "queue": value["queue"],
                "at": time.time(),
            }
            return protocol.result(value), lambda p: p.lpush(HANDOFFS, _dumps(ticket))

        return self.commit_write(key, compute)

    def end_call(self, key: str, call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        shop = self.shop()

        def compute(pipe: Pipeline):
            value, error = shop.call("end_call", arguments)
            if error is not None:
                return protocol.error(error), None
            return protocol.result(value), lambda p: p.hset(ENDED, call_id, _dumps({"at": time.time()}))

        return self.commit_write(key, compute)

    # --- records (tests, admin) --------------------------------------------------------------------
    def callbacks(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.r.hgetall(CALLBACKS).values()]

    def returns(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.r.hgetall(RETURNS).values()]

    def handoffs(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.r.lrange(HANDOFFS, 0, -1)]
