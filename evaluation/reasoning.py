"""Evaluation of the background model's reasoner (workers.reasoner) on text, no audio.

Two sets:

- support: held-out synthetic support calls (corpus.scripts.generate_script, seeds from
  HELD_OUT_SEED0, far from training's) turned into decision points. The call's events (caller
  turns, keys, timers, the scripted agent's replies and tool calls, their results), in the order
  the live loop meets them (corpus.support_text.live_order: a tool before the line announcing it,
  a wait after a backchannel), are the gold history; at each point the reasoner decides from the
  gold history so far and is scored against the script's next action: a tool call (right tool and
  arguments, `arguments_match`), a reply (any reply counts), or a wait. After each tool
  point, the reasoner's own call (when it picked the right tool) runs in-process against the
  call's shop (workers.shop.Shop) and the reply to that result is scored for its key fields
  (`key_fields_stated`): an order's status and the date that status is about, a return's id.
- clinic: an agent the shipped model never saw (evaluation.clinic), scored on its tool calls.

Latency: the reply's first token (from the start of decide()) p50 and the whole reply p90, with
`concurrency` conversations decided at once from as many threads. Nothing here knows how the
reasoner runs (local or an endpoint): it only calls decide().
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from corpus.call_script import KEY_DATE
from corpus.scripts import generate_script
from corpus.support_text import gold_events, live_order, support_brief
from evaluation.clinic import CLINIC, CLINIC_SCENARIOS
from evaluation.held_out import HELD_OUT_SEED0
from workers.reasoner import Brief, Decision, Reasoner
from workers.shop import Shop, spoken_date

GOALS = {
    "tool_accuracy": 0.90,
    "key_fields": 0.90,
    "first_token_p50_s": 1.0,
    "reply_p90_s": 2.5,
    "clinic_tool_accuracy": 0.80,
}


# --- decision points ------------------------------------------------------------------------------
@dataclass
class Point:
    """One decision: the gold history before it and what the script does next."""

    history: list[dict]
    expect: str  # "tool" | "reply" | "wait"
    tool: str | None = None
    arguments: dict | None = None
    label: str = ""


@dataclass
class Conversation:
    name: str
    shop: Shop
    points: list[Point] = field(default_factory=list)


def support_conversation(seed: int) -> Conversation:
    """The held-out call's decision points, in the order the live loop meets them
    (corpus.support_text.live_order): a tool is called before the line announcing it, since the
    loop asks again after a tool's result and never after a reply."""
    script = generate_script("support", seed)
    events = live_order(gold_events(script))
    conv = Conversation(f"support-{seed}", Shop.generate(script.shop_seed))
    for i, e in enumerate(events):
        prev = events[i - 1]["role"] if i else "agent"
        if e["role"] == "wait":
            conv.points.append(Point(events[:i], "wait", label="backchannel"))
        elif e["role"] == "tool_call" and prev not in ("agent", "tool_call"):
            conv.points.append(Point(events[:i], "tool", e["tool"], e["arguments"], label=e["tool"]))
        elif e["role"] == "agent" and prev not in ("agent", "tool_call", "tool_result", "tool_error"):
            conv.points.append(Point(events[:i], "reply", label="reply"))
    return conv


# --- scoring --------------------------------------------------------------------------------------
def _digits(text: Any) -> str:
    return re.sub(r"\D", "", str(text))


def _norm(text: Any) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def arguments_match(tool: str, got: dict, want: dict, shop: Shop | None = None) -> bool:
    """Whether a call's arguments do what the script's do: ids and phones by their digits, the FAQ
    query by the entry it finds, a free-text reason by being there (any reason starts a return or
    a transfer), numbers exactly, other strings by their words."""
    if set(k for k, v in want.items() if v not in (None, "")) - set(got):
        return False
    for key, value in want.items():
        g = got.get(key)
        if key == "order_id":
            if _digits(g) != _digits(value):
                return False
        elif key == "query" and shop is not None:
            top = lambda q: [m["topic"] for m in shop.search_faq(str(q))["matches"][:1]]  # noqa: E731
            if top(g) != top(value):
                return False
        elif key == "phone":
            if _digits(g) != _digits(value):
                return False
        elif key in ("reason",):
            if not _norm(g):
                return False
        elif isinstance(value, int):
            if g != value:
                return False
        elif _norm(g) != _norm(value) and not (_norm(value) and _norm(value) in _norm(g)):
            return False
    return True


def _date_forms(iso: str) -> list[str]:
    spoken = spoken_date(iso).lower()  # "march 4th"
    month, day = spoken.split()
    n = re.sub(r"\D", "", day)
    return [spoken, f"{month} {n}", f"{day} of {month}", f"{n} {month}", iso]


def key_fields_stated(tool: str, result: dict, reply: str) -> bool | None:
    """Whether a reply states a result's key fields; None when the tool has none scored."""
    text = reply.lower()
    if tool == "lookup_order":
        status = result["status"]
        stem = {"processing": "process", "shipped": "ship", "delivered": "deliver", "returned": "return"}[
            status
        ]
        key = result.get(KEY_DATE[status])
        date_ok = key is None or any(f in text for f in _date_forms(key))
        return stem in text and date_ok
    if tool == "create_return":
        return _digits(result["return_id"]) in _digits(reply)
    return None


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: list[dict] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        with self.lock:
            self.rows.append(row)


def _tool_ok(d: Decision, tool: str, arguments: dict, shop: Shop) -> bool:
    return d.kind == "tool" and d.tool == tool and arguments_match(tool, d.arguments or {}, arguments, shop)


def _run_conversation(reasoner: Reasoner, brief: Brief, conv: Conversation, tally: _Tally) -> None:
    for p in conv.points:
        d = reasoner.decide(brief, p.history)
        row = {"conv": conv.name, "label": p.label, "expect": p.expect, "kind": d.kind, "work_s": d.work_s}
        row["first_token_s"] = d.first_token_s
        if p.expect == "wait":
            tally.add(**row, ok=d.kind == "wait")
            continue
        if p.expect == "reply":
            tally.add(**row, ok=d.kind == "reply")
            continue
        ok = _tool_ok(d, p.tool, p.arguments, conv.shop)
        tally.add(**row, ok=ok, tool_point=True, wrong_tool=d.kind == "tool" and d.tool != p.tool)
        if p.tool in ("transfer", "end_call"):
            continue
        # the reply to the result: of the reasoner's own call when it chose the right tool
        args = d.arguments if d.kind == "tool" and d.tool == p.tool else p.arguments
        result, error = conv.shop.call(p.tool, args or {})
        outcome = (
            {"role": "tool_error", "tool": p.tool, "error": error}
            if error is not None
            else {"role": "tool_result", "tool": p.tool, "result": result}
        )
        hist = p.history + [{"role": "tool_call", "tool": p.tool, "arguments": args}, outcome]
        r = reasoner.decide(brief, hist)
        stated = key_fields_stated(p.tool, result, r.text) if (result and r.kind == "reply") else None
        if result and r.kind != "reply" and p.tool in ("lookup_order", "create_return"):
            stated = False
        tally.add(
            conv=conv.name,
            label=f"{p.tool} result",
            expect="reply",
            kind=r.kind,
            work_s=r.work_s,
            first_token_s=r.first_token_s,
            ok=r.kind == "reply",
            key_fields=stated,
        )


FILLER = frozenset("a an the for my of about to".split())


def reason_in_callers_words(got: Any, want: Any, history: list[dict]) -> bool:
    """A free-text reason as a receptionist would note it: it holds the expected reason's words and
    every other word of it is one the caller said (or a filler), so "a sore throat" passes and
    "we can't have a checkup" does not."""
    said = set(_norm(" ".join(h.get("text", "") for h in history if h["role"] == "caller")).split())
    words = _norm(got).split()
    return bool(words) and _norm(want) in _norm(got) and all(w in said or w in FILLER for w in words)


def _clinic_case(reasoner: Reasoner, case: dict, tally: _Tally) -> None:
    d = reasoner.decide(CLINIC, case["history"])
    want = case["expect"]
    strict = None
    if want["kind"] == "tool":
        ok = (
            d.kind == "tool"
            and d.tool == want["tool"]
            and arguments_match(d.tool, d.arguments or {}, want["arguments"])
        )
        reason = want["arguments"].get("reason")
        strict = ok and (
            reason is None
            or reason_in_callers_words((d.arguments or {}).get("reason"), reason, case["history"])
        )
    else:
        ok = d.kind == want["kind"]
    tally.add(
        conv=case["name"],
        label="clinic",
        expect=want["kind"],
        kind=d.kind,
        work_s=d.work_s,
        ok=ok,
        strict=ok if strict is None else strict,
    )


def evaluate_reasoner(
    reasoner: Reasoner,
    n_support: int = 24,
    seed0: int = HELD_OUT_SEED0,
    concurrency: int = 1,
    clinic: bool = True,
    brief: Brief | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score `reasoner` on `n_support` held-out support calls (`concurrency` at once) and the
    clinic scenarios; returns the figures, the goals and which were met."""
    brief = brief or support_brief()
    if hasattr(reasoner, "warm"):  # a context per conversation, as a server has after its first calls
        reasoner.warm(brief, contexts=concurrency)
    convs = [support_conversation(seed0 + i) for i in range(n_support)]
    tally = _Tally()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda c: _run_conversation(reasoner, brief, c, tally), convs))
    support_s = time.perf_counter() - t0
    clinic_tally = _Tally()
    if clinic:
        for case in CLINIC_SCENARIOS:
            _clinic_case(reasoner, case, clinic_tally)
    rows = tally.rows
    tool_rows = [r for r in rows if r.get("tool_point")]
    key_rows = [r for r in rows if r.get("key_fields") is not None]
    replies = [r for r in rows if r["kind"] == "reply"]

    def rate(rs: list[dict], key: str = "ok") -> float | None:
        return round(sum(bool(r[key]) for r in rs) / len(rs), 3) if rs else None

    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    figures: dict[str, Any] = {
        "conversations": n_support,
        "concurrency": concurrency,
        "decisions": len(rows),
        "tool_accuracy": rate(tool_rows),
        "tool_points": len(tool_rows),
        "wrong_tool": sum(bool(r.get("wrong_tool")) for r in tool_rows),
        "key_fields": rate(key_rows, "key_fields"),
        "key_field_replies": len(key_rows),
        "reply_accuracy": rate([r for r in rows if r["expect"] == "reply"]),
        "wait_accuracy": rate([r for r in rows if r["expect"] == "wait"]),
        "errors": sum(r["kind"] == "error" for r in rows),
        "by_label": {k: {"n": len(v), "ok": rate(v)} for k, v in sorted(by_label.items())},
        "first_token_p50_s": _round(_pct([r["first_token_s"] for r in replies if r["first_token_s"]], 0.5)),
        "first_token_p90_s": _round(_pct([r["first_token_s"] for r in replies if r["first_token_s"]], 0.9)),
        "reply_p50_s": _round(_pct([r["work_s"] for r in replies], 0.5)),
        "reply_p90_s": _round(_pct([r["work_s"] for r in replies], 0.9)),
        "decision_p50_s": _round(_pct([r["work_s"] for r in rows], 0.5)),
        "decision_p90_s": _round(_pct([r["work_s"] for r in rows], 0.9)),
        "decisions_per_s": round(len(rows) / support_s, 2) if support_s else None,
        "support_wall_s": round(support_s, 1),
    }
    if clinic:
        figures["clinic_tool_accuracy"] = rate(clinic_tally.rows)
        figures["clinic_strict_accuracy"] = rate(clinic_tally.rows, "strict")
        figures["clinic_cases"] = len(clinic_tally.rows)
    figures["goals"] = {
        k: {"goal": g, "value": figures.get(k), "met": _met(k, g, figures.get(k))} for k, g in GOALS.items()
    }
    return figures


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _met(key: str, goal: float, value: float | None) -> bool | None:
    if value is None:
        return None
    return value <= goal if key.endswith("_s") else value >= goal


def format_reasoning(figures: dict[str, Any]) -> str:
    """A short plain-text report of `evaluate_reasoner`'s figures."""
    lines = [
        f"reasoner: {figures['conversations']} support calls, {figures['decisions']} decisions, "
        f"{figures['concurrency']} at once ({figures['support_wall_s']} s)"
    ]
    for key, g in figures["goals"].items():
        mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"]]
        lines.append(
            f"  {key:22s} {g['value']!s:>8}  goal {'<=' if key.endswith('_s') else '>='} {g['goal']}  {mark}"
        )
    for key in (
        "reply_accuracy",
        "wait_accuracy",
        "errors",
        "wrong_tool",
        "first_token_p90_s",
        "reply_p50_s",
        "decision_p50_s",
        "decision_p90_s",
        "decisions_per_s",
    ):
        lines.append(f"  {key:22s} {figures.get(key)!s:>8}")
    for label, v in figures["by_label"].items():
        lines.append(f"    {label:26s} n={v['n']:3d} ok={v['ok']}")
    return "\n".join(lines)
