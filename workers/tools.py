"""The support agent's tools as Celery tasks: thin, idempotent, JSON in, outcome out over Redis.

Each task takes a `workers.protocol.ToolRequest` as keyword arguments and does three things:
return the stored outcome if this tool call already has one (a redelivery), otherwise run the
tool over the store (`workers.store.ShopStore`, `workers.faq.FaqIndex`) and store its outcome
under the idempotency key, then publish the outcome on the request's reply channel. The task's
own return value is None: outcomes never pass through Celery's logs or a result backend.

Failures: a tool's own error ("order not found") is an outcome like any result. Redis being
unreachable is the one error that can succeed on retry: retried with backoff
(`retry_backoff_s`, doubling, at most `max_retries` times). The soft time limit stores and sends
"tool timed out"; a hard time limit (the tool's process killed) does the same from the worker's
main process (`task_failure`); a task name no worker knows gets "unknown tool NAME"
(`task_unknown`); anything else is logged by type only and answered "tool failed".

`tool(name)` registers a tool; tests register slow ones the same way (`parley worker --include`).
Registered webhook tools are one task, `webhook`, which calls the tool named in the request
(`workers.webhook_call`; its limits follow `webhook_max_timeout_s`).
Logs carry tool names, ids and exception types; arguments and results never.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery import Celery, signals

from workers import protocol, webhook_call, webhooks
from workers.app import app as default_app
from workers.faq import FaqIndex
from workers.protocol import ToolRequest
from workers.settings import WorkerSettings
from workers.shop import check_arguments
from workers.store import ShopStore

log = logging.getLogger(__name__)

RETRYABLE = (redis.ConnectionError, redis.TimeoutError)


class _Process:
    """Per-process connections (a prefork child must not share its parent's sockets)."""

    pid = -1
    store: ShopStore | None = None
    faq: FaqIndex | None = None


def _settings(app: Celery) -> WorkerSettings:
    return getattr(app, "parley_settings", None) or WorkerSettings()


def store_for(app: Celery = default_app) -> ShopStore:
    if _Process.pid != os.getpid() or _Process.store is None:
        s = _settings(app)
        client = redis.Redis.from_url(
            s.redis_url,
            socket_timeout=s.io_timeout_s,
            socket_connect_timeout=s.io_timeout_s,
            health_check_interval=10,
        )
        _Process.store, _Process.faq, _Process.pid = ShopStore(client, s.result_ttl_s), None, os.getpid()
    return _Process.store


def faq_for(app: Celery = default_app) -> FaqIndex:
    store_for(app)
    if _Process.faq is None:
        _Process.faq = FaqIndex.from_markdown(_settings(app).faq_path)
    return _Process.faq


def publish(store: ShopStore, request: ToolRequest, outcome: dict[str, Any], work_s: float = 0.0) -> None:
    store.r.publish(request.reply_to, protocol.reply(request, outcome, work_s))


# A tool: (store, request) -> outcome. `writes=True` tools commit their outcome themselves,
# in the same transaction as their record; for the others the outcome is committed after.
ToolFn = Callable[[ShopStore, ToolRequest], dict[str, Any]]


def tool(
    name: str,
    *,
    writes: bool = False,
    soft_time_limit_s: float | None = None,
    time_limit_s: float | None = None,
    task_name: str | None = None,
    redelivery_safe: bool = False,
    app: Celery = default_app,
):
    """Register `fn` as the task for tool `name` (its queue comes from the app's routes), named
    `task_name` (default `parley.tools.NAME`: the background model's tasks have names of their own).
    A task's hard limit stays below the visibility timeout, so it is never delivered again while it
    runs; `redelivery_safe` tasks (no effects outside their stored outcome: hearing, reasoning) may
    run longer, a second delivery only costing the work twice."""
    s = _settings(app)
    soft = soft_time_limit_s or s.soft_time_limit_s
    hard = time_limit_s or s.time_limit_s
    if not soft < hard or (not redelivery_safe and hard > s.visibility_timeout_s - 1.0):
        raise ValueError(f"tool {name}: need soft ({soft}) < hard ({hard}) <= visibility_timeout_s - 1")

    def register(fn: ToolFn):
        @app.task(
            name=task_name or protocol.task_name(name),
            bind=True,
            acks_late=True,
            ignore_result=True,
            soft_time_limit=soft,
            time_limit=hard,
            max_retries=s.max_retries,
        )
        def task(
            self,
            key: str,
            call_id: str,
            tool_call_id: str,
            arguments: dict,
            reply_to: str,
            tool: str = "",
            **_: Any,
        ):
            request = ToolRequest(key, call_id, tool_call_id, arguments, reply_to, tool or name)
            _run(self, name, fn, writes, request)

        return task

    return register


def _run(task, name: str, fn: ToolFn, writes: bool, request: ToolRequest) -> None:
    t0 = time.perf_counter()
    extra = {"tool": name, "call_id": request.call_id, "tool_call_id": request.tool_call_id}
    store = store_for(task.app)
    work_s = 0.0
    try:
        outcome = store.outcome(request.key)
        if outcome is None:
            try:
                outcome = fn(store, request)
            except SoftTimeLimitExceeded:
                log.warning("tool %s: soft time limit exceeded", name, extra=extra)
                outcome = protocol.error("tool timed out")
            except RETRYABLE:
                raise
            except Exception as exc:  # the type only: a message could quote the arguments
                log.error("tool %s failed: %s", name, type(exc).__name__, extra=extra)
                outcome = protocol.error(protocol.FAILED)
            work_s = time.perf_counter() - t0
            if not writes or "error" in outcome:
                outcome = store.commit(request.key, outcome)
        publish(store, request, outcome, work_s)
    except RETRYABLE as exc:
        retries = task.request.retries
        if retries >= task.max_retries:
            log.error("tool %s: Redis unreachable after %d retries", name, retries, extra=extra)
            return  # still unacknowledged if the broker is down too: delivered again later
        s = _settings(task.app)
        delay = min(2.0, s.retry_backoff_s * 2**retries)
        log.warning(
            "tool %s: Redis unreachable (%s), retry %d in %.2f s",
            name,
            type(exc).__name__,
            retries + 1,
            delay,
            extra=extra,
        )
        raise task.retry(countdown=delay, exc=exc) from exc


def answer(request: ToolRequest, outcome: dict[str, Any], app: Celery = default_app) -> None:
    """Store (first writer wins) and publish an outcome for a request, from outside its task."""
    store = store_for(app)
    publish(store, request, store.commit(request.key, outcome))


def _request_from(kwargs: Any) -> ToolRequest | None:
    try:
        return ToolRequest(
            kwargs["key"],
            kwargs["call_id"],
            kwargs["tool_call_id"],
            kwargs["arguments"],
            kwargs["reply_to"],
            str(kwargs.get("tool", "")),
        )
    except (KeyError, TypeError):
        return None


@signals.task_failure.connect
def _on_hard_time_limit(sender=None, task_id=None, exception=None, kwargs=None, **_: Any) -> None:
    """The task's process was killed at its hard limit: the call still hears back."""
    if not isinstance(exception, TimeLimitExceeded):
        return
    request = _request_from(kwargs)
    if request is None:
        return
    try:
        answer(request, protocol.error("tool timed out"), getattr(sender, "app", default_app))
    except RETRYABLE:
        log.warning("could not report a hard time limit: Redis unreachable", extra={"task_id": task_id})


@signals.task_unknown.connect
def _on_unknown_task(sender=None, message=None, name=None, id=None, **_: Any) -> None:
    """A tool no worker has: answer "unknown tool NAME" rather than let the call wait."""
    try:
        _, kwargs, _ = message.decode()
    except Exception:
        return
    request = _request_from(kwargs)
    if request is None:
        return
    try:
        answer(
            request,
            protocol.error(f"unknown tool {protocol.tool_of(name)}"),
            getattr(sender, "app", None) or default_app,
        )
    except RETRYABLE:
        log.warning("could not answer an unknown tool: Redis unreachable", extra={"task_id": id})


# --- the support agent's tools ---------------------------------------------------------------------
def _checked(name: str, request: ToolRequest) -> dict[str, Any] | None:
    """The error outcome for arguments that do not fit the tool's schema (the router checks first;
    a worker never trusts a message)."""
    if not isinstance(request.arguments, dict):
        return protocol.error("arguments must be a JSON object")
    problem = check_arguments(name, request.arguments)
    return protocol.error(problem) if problem else None


def _shop_answer(value: dict | None, error: str | None) -> dict[str, Any]:
    return protocol.error(error) if error is not None else protocol.result(value)


@tool("lookup_order")
def lookup_order(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    bad = _checked("lookup_order", request)
    if bad:
        return bad
    shop = store.shop_for(request.arguments["order_id"])
    return _shop_answer(*shop.call("lookup_order", request.arguments))


@tool("search_faq")
def search_faq(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    bad = _checked("search_faq", request)
    return bad or protocol.result(faq_for().search(request.arguments["query"]))


@tool("create_return", writes=True)
def create_return(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return _checked("create_return", request) or store.create_return(
        request.key, request.call_id, request.arguments
    )


@tool("book_callback", writes=True)
def book_callback(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return _checked("book_callback", request) or store.book_callback(
        request.key, request.call_id, request.arguments
    )


@tool("transfer", writes=True)
def transfer(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return _checked("transfer", request) or store.transfer(request.key, request.call_id, request.arguments)


@tool("end_call", writes=True)
def end_call(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return _checked("end_call", request) or store.end_call(request.key, request.call_id, request.arguments)


# --- registered webhook tools (workers.webhooks), all one task on the `webhooks` queue -------------
_WEBHOOK_SOFT_S, _WEBHOOK_HARD_S = _settings(default_app).webhook_limits_s


@tool(webhooks.TASK, soft_time_limit_s=_WEBHOOK_SOFT_S, time_limit_s=_WEBHOOK_HARD_S)
def webhook(store: ShopStore, request: ToolRequest) -> dict[str, Any]:
    return webhook_call.call(store, request, _settings(default_app))


def redact_celery_logs(record: logging.LogRecord) -> bool:
    """A logging filter: Celery's reports of unregistered or malformed messages quote the whole
    message body (a tool call's arguments); keep the task name, drop the body."""
    if record.name.startswith("celery") and isinstance(record.msg, str) and "message body" in record.msg:
        name = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = "Received an unregistered or malformed task (%s); body withheld", (name,)
    return True
