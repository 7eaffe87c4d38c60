"""A deterministic sample shop and the answers its tools give.

`Shop.generate(seed)` builds a small online store (customers, orders with items, statuses, dates
and tracking, a return policy, opening hours, FAQ entries) from nothing but the seed, so the same
seed always gives the same shop. The synthetic call generator (corpus.scripts) draws order ids
and names from a shop and computes every tool result with `Shop.call`, so the answers spoken in
training calls are the shop's real values; the shipped support agent's tools serve
`Shop.default()` (seed 0). `TOOL_SCHEMAS` describes the tools the sample agents may call.

Standard library only: this module knows nothing of audio, tensors or the model, and a tool
process can load a shop from `to_json()` without importing anything else of Parley.
"""

from __future__ import annotations

import functools
import json
import random
import re
import zlib
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

SHOP_NAME = "Harbor Lane Goods"
STATUSES = ("processing", "shipped", "delivered", "returned")
ORDER_LETTERS = "ABCDFHKMRT"
CARRIERS = (("Parcelink", "PL"), ("SwiftPost", "SP"), ("Northline", "NL"))

# Tool name -> JSON-schema-like description; the arguments the agents send, and (`result_keys`)
# the fields of a result the background model's reasoner is shown (the rest stay out of its prompt).
TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "lookup_order": {
        "description": "Look up an order by its id (letter and five digits, or just the digits).",
        "parameters": {"order_id": {"type": "string", "required": True}},
        "result_keys": (
            "order_id",
            "status",
            "ship_by",
            "shipped",
            "eta",
            "delivered",
            "returned",
            "carrier",
            "tracking",
        ),
    },
    "create_return": {
        "description": "Start a return for a delivered order; emails a prepaid label.",
        "parameters": {
            "order_id": {"type": "string", "required": True},
            "reason": {"type": "string", "required": True},
        },
        "result_keys": ("return_id", "order_id", "refund", "label"),
    },
    "search_faq": {
        "description": "Search the shop's FAQ (hours, policies, shipping, payment, location).",
        "parameters": {"query": {"type": "string", "required": True}},
    },
    "book_callback": {
        "description": "Call the caller back after `seconds` (on `phone`, else the calling number).",
        "parameters": {
            "phone": {"type": "string", "required": False},
            "seconds": {"type": "integer", "required": True},
        },
    },
    "transfer": {
        "description": "Transfer the call to a human colleague.",
        "parameters": {"reason": {"type": "string", "required": True}},
    },
    "end_call": {"description": "Hang up.", "parameters": {}},
}

# Tool errors (the exact strings a result event carries).
ORDER_NOT_FOUND = "order not found"
NOT_DELIVERED = "order not delivered yet"
WINDOW_CLOSED = "return window closed"
ALREADY_RETURNED = "order already returned"

FIRST_NAMES = (
    "Maria",
    "James",
    "Aisha",
    "Chen",
    "Priya",
    "Lucas",
    "Fatima",
    "Oliver",
    "Sofia",
    "Daniel",
    "Amara",
    "Kenji",
    "Elena",
    "Marcus",
    "Leila",
    "Tom",
    "Grace",
    "Mateo",
    "Hannah",
    "Ravi",
    "Nora",
    "Samuel",
    "Yuki",
    "Isabel",
    "Omar",
    "Chloe",
    "David",
    "Ana",
    "Peter",
    "Zoe",
    "Andre",
    "Lily",
    "Victor",
    "Rosa",
    "Ethan",
    "Mei",
    "Jonas",
    "Clara",
    "Hugo",
    "Ines",
)
LAST_NAMES = (
    "Lopez",
    "Smith",
    "Okafor",
    "Wang",
    "Patel",
    "Silva",
    "Khan",
    "Brown",
    "Rossi",
    "Miller",
    "Mensah",
    "Tanaka",
    "Novak",
    "Johnson",
    "Haddad",
    "Walsh",
    "Kim",
    "Garcia",
    "Schmidt",
    "Sharma",
    "Berg",
    "Adams",
    "Sato",
    "Moreno",
    "Farah",
    "Dubois",
    "Cohen",
    "Costa",
    "Murphy",
    "Lee",
)
PRODUCTS = (  # (name, price in cents)
    ("rain jacket", 8900),
    ("wool sweater", 6450),
    ("hiking boots", 12900),
    ("canvas backpack", 5400),
    ("running shoes", 9500),
    ("denim jeans", 5900),
    ("linen shirt", 3900),
    ("winter gloves", 2400),
    ("knit scarf", 2200),
    ("leather belt", 3500),
    ("water bottle", 1800),
    ("travel mug", 1600),
    ("desk lamp", 4200),
    ("throw blanket", 4800),
    ("yoga mat", 3200),
    ("sun hat", 2700),
    ("rain boots", 6200),
    ("fleece hoodie", 5200),
    ("cotton t-shirt", 1900),
    ("wool socks", 1400),
    ("duffel bag", 7400),
    ("umbrella", 2500),
    ("ceramic bowl set", 3600),
    ("french press", 3300),
    ("bath towel set", 2900),
    ("phone case", 1900),
    ("notebook set", 1500),
    ("picnic basket", 5800),
)
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class ToolError(Exception):
    """A tool failed in a way the caller should hear about (the message is the error event)."""


# -- spoken forms (shared with the script generator, so answers can be checked) ----------------


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spoken_date(iso: str) -> str:
    """'2025-03-04' -> 'March 4th'."""
    d = date.fromisoformat(iso)
    return f"{MONTHS[d.month - 1]} {ordinal(d.day)}"


def spoken_amount(amount: str) -> str:
    """'64.50' -> '64 dollars and 50 cents'; '89.00' -> '89 dollars'."""
    dollars, cents = amount.split(".")
    return f"{int(dollars)} dollars" + (f" and {int(cents)} cents" if int(cents) else "")


def spoken_id(identifier: str) -> str:
    """How the agent reads an id aloud: 'A-48213' -> 'A 4 8 2 1 3', '48213' -> '4 8 2 1 3'."""
    return " ".join(ch for ch in identifier.upper() if ch.isalnum())


def spoken_seconds(seconds: int) -> str:
    words = {
        10: "ten seconds",
        15: "fifteen seconds",
        20: "twenty seconds",
        30: "thirty seconds",
        45: "forty-five seconds",
        60: "one minute",
        90: "a minute and a half",
        120: "two minutes",
    }
    return words.get(seconds, f"{seconds} seconds")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _hour(h: int) -> str:
    return f"{h if h <= 12 else h - 12} {'AM' if h < 12 else 'PM'}"


def _words(text: str) -> set[str]:
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z]+", text.lower())}


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    customer_id: str
    first: str
    last: str
    phone: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class Item:
    name: str
    qty: int
    price: str  # dollars and cents, "89.00"


@dataclass(frozen=True)
class Order:
    order_id: str  # "A-48213"
    customer_id: str
    items: tuple[Item, ...]
    status: str  # one of STATUSES
    ordered: str  # ISO dates from here on; None where the step has not happened
    ship_by: str | None = None
    shipped: str | None = None
    eta: str | None = None
    delivered: str | None = None
    returned: str | None = None
    carrier: str | None = None
    tracking: str | None = None

    @property
    def total(self) -> str:
        return _money(sum(round(float(i.price) * 100) * i.qty for i in self.items))

    @property
    def key_date(self) -> str:
        """The date an answer about this order's status is about."""
        return {
            "processing": self.ship_by,
            "shipped": self.eta,
            "delivered": self.delivered,
            "returned": self.returned,
        }[self.status]


@dataclass(frozen=True)
class FaqEntry:
    topic: str
    question: str
    answer: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Shop:
    seed: int
    name: str
    today: str
    return_days: int
    hours: tuple[tuple[str, str], ...]  # (days, hours) e.g. ("Monday to Friday", "9 AM to 6 PM")
    customers: tuple[Customer, ...]
    orders: tuple[Order, ...]
    faq: tuple[FaqEntry, ...]

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Shop:
        """The shop the shipped agent's tools serve."""
        return cls.generate(0)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def generate(seed: int) -> Shop:
        rng = random.Random(f"parley-shop:{seed}")
        today = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        return_days = rng.choice((14, 30, 30, 45, 60))
        open_h, close_h = rng.choice((8, 9, 9, 10)), rng.choice((17, 18, 18, 19, 20))
        sat = rng.choice(((10, 16), (9, 14), (10, 17), None))
        sun = rng.choice(((11, 15), None, None))
        hours = [("Monday to Friday", f"{_hour(open_h)} to {_hour(close_h)}")]
        hours += [("Saturday", f"{_hour(sat[0])} to {_hour(sat[1])}")] if sat else []
        hours += [("Sunday", f"{_hour(sun[0])} to {_hour(sun[1])}")] if sun else []

        first = rng.sample(FIRST_NAMES, 30)
        last = [rng.choice(LAST_NAMES) for _ in first]
        phones = rng.sample(range(100, 200), len(first))
        customers = tuple(
            Customer(f"C{i + 1:03d}", given, family, f"555-0{p}")
            for i, (given, family, p) in enumerate(zip(first, last, phones))
        )

        statuses = ["processing"] * 12 + ["shipped"] * 16 + ["delivered"] * 26 + ["returned"] * 6
        rng.shuffle(statuses)
        numbers = rng.sample(range(10000, 100000), len(statuses))
        orders = []
        for i, (status, number) in enumerate(zip(statuses, numbers)):
            # About half the delivered orders are inside the return window; the rest may be past it.
            recent = status != "delivered" or i % 2 == 0
            orders.append(
                _make_order(
                    rng,
                    today,
                    f"{rng.choice(ORDER_LETTERS)}-{number}",
                    status,
                    rng.choice(customers).customer_id,
                    return_days,
                    recent,
                )
            )
        return Shop(
            seed,
            SHOP_NAME,
            today.isoformat(),
            return_days,
            tuple(hours),
            customers,
            tuple(orders),
            _make_faq(rng, return_days, hours),
        )

    # -- queries -------------------------------------------------------------------------------

    def order(self, order_id: str) -> Order | None:
        """Find an order by 'A-48213', 'a48213', 'A 4 8 2 1 3' or just its digits '48213'."""
        key = re.sub(r"[^A-Z0-9]", "", order_id.upper())
        for o in self.orders:
            full = o.order_id.replace("-", "")
            if key == full or key == full[1:]:
                return o
        return None

    def customer(self, customer_id: str) -> Customer:
        return next(c for c in self.customers if c.customer_id == customer_id)

    def orders_with(self, status: str) -> list[Order]:
        return [o for o in self.orders if o.status == status]

    def returnable(self, order: Order) -> bool:
        return self.return_error(order) is None

    def return_error(self, order: Order) -> str | None:
        if order.status in ("processing", "shipped"):
            return NOT_DELIVERED
        if order.status == "returned":
            return ALREADY_RETURNED
        age = (date.fromisoformat(self.today) - date.fromisoformat(order.delivered)).days
        return WINDOW_CLOSED if age > self.return_days else None

    # -- tools ---------------------------------------------------------------------------------

    def lookup_order(self, order_id: str) -> dict[str, Any]:
        o = self.order(order_id)
        if o is None:
            raise ToolError(ORDER_NOT_FOUND)
        out: dict[str, Any] = {
            "order_id": o.order_id,
            "customer": self.customer(o.customer_id).name,
            "status": o.status,
            "items": [asdict(i) for i in o.items],
            "total": o.total,
        }
        for key in ("ordered", "ship_by", "shipped", "eta", "delivered", "returned", "carrier", "tracking"):
            if getattr(o, key) is not None:
                out[key] = getattr(o, key)
        return out

    def create_return(self, order_id: str, reason: str) -> dict[str, Any]:
        o = self.order(order_id)
        if o is None:
            raise ToolError(ORDER_NOT_FOUND)
        error = self.return_error(o)
        if error:
            raise ToolError(error)
        number = int(o.order_id[2:]) * 7919 % 90000 + 10000
        return {
            "return_id": f"R-{number}",
            "order_id": o.order_id,
            "reason": reason,
            "refund": o.total,
            "label": "emailed",
        }

    def search_faq(self, query: str) -> dict[str, Any]:
        """Entries sharing words with `query`, best first; a word found in fewer entries weighs more."""
        words = sorted(_words(query))  # sorted: float sums must not depend on set order
        df = {w: sum(w in e.keywords for e in self.faq) for w in words}
        scored = [(sum(1.0 / df[w] for w in words if w in e.keywords), -i, e) for i, e in enumerate(self.faq)]
        best = sorted((s for s in scored if s[0] > 0), key=lambda s: (s[0], s[1]), reverse=True)[:2]
        return {"matches": [{"topic": e.topic, "answer": e.answer} for _, _, e in best]}

    def book_callback(self, seconds: int, phone: str | None = None) -> dict[str, Any]:
        if not 1 <= int(seconds) <= 86_400:
            raise ToolError("seconds out of range")
        key = zlib.crc32(f"{seconds}:{phone}:{self.seed}".encode())
        out: dict[str, Any] = {"callback_id": f"CB-{key % 9000 + 1000}", "seconds": int(seconds)}
        if phone:
            out["phone"] = phone
        return out

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Run one tool: (result, None) or (None, error)."""
        if name not in TOOL_SCHEMAS:
            return None, f"unknown tool {name}"
        problem = check_arguments(name, arguments)
        if problem:
            return None, problem
        try:
            if name == "transfer":
                return {"status": "transferring", "queue": "customer care"}, None
            if name == "end_call":
                return {"status": "ending"}, None
            return getattr(self, name)(**arguments), None
        except ToolError as e:
            return None, str(e)

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Shop:
        d = json.loads(text)
        orders = tuple(Order(**{**o, "items": tuple(Item(**i) for i in o["items"])}) for o in d["orders"])
        return cls(
            d["seed"],
            d["name"],
            d["today"],
            d["return_days"],
            tuple(tuple(h) for h in d["hours"]),
            tuple(Customer(**c) for c in d["customers"]),
            orders,
            tuple(FaqEntry(**{**f, "keywords": tuple(f["keywords"])}) for f in d["faq"]),
        )


def check_arguments(name: str, arguments: dict[str, Any]) -> str | None:
    """None when `arguments` fit the tool's schema, else what is wrong with them."""
    return schema_problem(TOOL_SCHEMAS[name]["parameters"], arguments)


def schema_problem(params: dict[str, dict[str, Any]], arguments: dict[str, Any]) -> str | None:
    """None when `arguments` fit the parameter schema `params` ({name: {"type": "integer" |
    "string", "required": bool}}), else what is wrong, in the words the model hears."""
    unknown = sorted(set(arguments) - set(params))
    if unknown:
        return f"unknown argument(s) {', '.join(unknown)}"
    for key, spec in params.items():
        if key not in arguments:
            if spec["required"]:
                return f"missing argument {key}"
            continue
        want = int if spec["type"] == "integer" else str
        if not isinstance(arguments[key], want) or isinstance(arguments[key], bool):
            return f"argument {key} must be {spec['type']}"
    return None


def _make_order(
    rng: random.Random,
    today: date,
    order_id: str,
    status: str,
    customer_id: str,
    return_days: int,
    recent: bool,
) -> Order:
    n_items = rng.choice((1, 1, 1, 2, 2, 3))
    items = tuple(
        Item(name, rng.choice((1, 1, 1, 2)), _money(price)) for name, price in rng.sample(PRODUCTS, n_items)
    )
    day = lambda d: d.isoformat()  # noqa: E731
    if status == "processing":
        ordered = today - timedelta(days=rng.randrange(0, 3))
        return Order(
            order_id,
            customer_id,
            items,
            status,
            day(ordered),
            ship_by=day(today + timedelta(days=rng.randrange(1, 4))),
        )
    carrier, prefix = rng.choice(CARRIERS)
    tracking = f"{prefix}{rng.randrange(10**8, 10**9)}"
    if status == "shipped":
        ordered = today - timedelta(days=rng.randrange(3, 9))
        shipped = ordered + timedelta(days=rng.randrange(1, 3))
        return Order(
            order_id,
            customer_id,
            items,
            status,
            day(ordered),
            shipped=day(shipped),
            eta=day(today + timedelta(days=rng.randrange(1, 5))),
            carrier=carrier,
            tracking=tracking,
        )
    age = rng.randrange(1, return_days - 1) if recent else rng.randrange(2, return_days + 40)
    delivered = today - timedelta(days=age)
    shipped = delivered - timedelta(days=rng.randrange(2, 6))
    ordered = shipped - timedelta(days=rng.randrange(1, 3))
    returned = None
    if status == "returned":
        returned = day(min(today, delivered + timedelta(days=rng.randrange(2, 10))))
    return Order(
        order_id,
        customer_id,
        items,
        status,
        day(ordered),
        shipped=day(shipped),
        delivered=day(delivered),
        returned=returned,
        carrier=carrier,
        tracking=tracking,
    )


def _make_faq(rng: random.Random, return_days: int, hours: list[tuple[str, str]]) -> tuple[FaqEntry, ...]:
    open_text = ", and ".join(f"{days} from {h}" for days, h in hours)
    closed = [d for d in ("Saturday", "Sunday") if d not in {days for days, _ in hours}]
    hours_answer = f"We're open {open_text}."
    if closed:
        hours_answer += f" We're closed on {' and '.join(closed)}s."
    free_over = rng.choice((35, 50, 75))
    fee = rng.choice((5, 6, 8))
    std, exp = rng.choice(((3, 5), (2, 4), (4, 7))), rng.choice(((1, 2), (2, 3)))
    street = rng.randrange(12, 480)
    refund_days = rng.choice(((3, 5), (5, 7), (5, 10)))
    wrap = rng.choice((3, 4, 5))
    entries = [
        (
            "opening hours",
            "When are you open?",
            hours_answer,
            "open opening hour hours close closing today weekend sunday saturday",
        ),
        (
            "return policy",
            "How do returns work?",
            f"You can return items within {return_days} days of delivery for a full refund, "
            f"and return shipping is free.",
            "return returns policy refund send back",
        ),
        (
            "shipping times",
            "How long does shipping take?",
            f"Standard shipping takes {std[0]} to {std[1]} business days, and express shipping takes "
            f"{exp[0]} to {exp[1]} business days.",
            "shipping delivery long take express standard day time",
        ),
        (
            "shipping cost",
            "How much is shipping?",
            f"Shipping is free on orders over {free_over} dollars; otherwise it's {fee} dollars.",
            "shipping cost price free fee much",
        ),
        (
            "international",
            "Do you ship abroad?",
            "We ship to Canada and Mexico, and those orders take 7 to 14 business days.",
            "international abroad canada mexico country overseas",
        ),
        (
            "payment",
            "What payment methods do you take?",
            "We accept all major credit cards, PayPal and our own gift cards.",
            "payment pay card credit paypal method",
        ),
        (
            "exchanges",
            "Can I exchange an item?",
            "Exchanges are free: start a return and place a new order, and we refund the first one.",
            "exchange swap size different",
        ),
        (
            "gift wrap",
            "Do you gift wrap?",
            f"Gift wrapping is available at checkout for {wrap} dollars per order.",
            "gift wrap wrapping present",
        ),
        (
            "store location",
            "Where is your store?",
            f"Our store is at {street} Harbor Lane, next to the ferry terminal.",
            "store location address where located shop visit",
        ),
        (
            "refund timing",
            "When will I get my refund?",
            f"Refunds reach your card {refund_days[0]} to {refund_days[1]} business days after we "
            f"receive the return.",
            "refund money back when card",
        ),
        (
            "order changes",
            "Can I change or cancel an order?",
            "Orders can be changed or cancelled within one hour of being placed; after that, please "
            "return the order once it arrives.",
            "cancel change cancellation modify",
        ),
    ]
    return tuple(FaqEntry(t, q, a, tuple(sorted(_words(k)))) for t, q, a, k in entries)
