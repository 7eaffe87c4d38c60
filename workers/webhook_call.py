"""One call of a registered webhook tool: an HTTP POST to the agent's backend, its answer an outcome.

`call(store, request, settings)` reads the tool's record (`workers.webhooks`) from Redis, checks
the arguments against its schema (a worker never trusts a message), checks the address, and POSTs

    {"tool": NAME, "arguments": {...}, "call_id": "...", "idempotency_key": "..."}

with the header `Idempotency-Key` (the same on every delivery of one tool call, so a backend can
recognise a repeat), `Accept-Encoding: identity`, and the tool's secret header when it names one
(`secret_env`: a `PARLEY_WEBHOOK_SECRET_*` variable of the worker's environment; the secret is
never stored in Redis). A 2xx answer whose body is a JSON object of at most
`webhooks.MAX_RESPONSE_BYTES` is `{"result": <that object>}`; anything else is an `{"error": ...}`
in a few words, never quoting the body.

Outbound safety: only hosts on `WorkerSettings.webhook_allowed_hosts`; the host is resolved once,
every address it resolves to must pass `webhooks.address_problem` (no metadata or link-local ever;
private or loopback only when listed), and the connection goes to the checked address (the URL's
host stays in the Host header and, for https, the TLS server name and certificate check), so a
second DNS answer cannot redirect it. Redirects are not followed; proxies from the environment are
not used. The timeout is the tool's `timeout_s`, cut to `webhook_max_timeout_s`, for each phase and
for the whole exchange; the task's soft time limit is the backstop.

Idempotency is the task's (`workers.tools`): this runs only when no outcome is stored under the
request's key, and its outcome is committed first-writer-wins. Unlike the shop's writing tools, a
webhook's effect cannot be committed with its outcome: a backend that acts after the router gave
up (and fenced the key with "tool timed out") has acted, and the caller heard it timed out; the
`Idempotency-Key` is how the backend recognises a repeat of a call it already acted on.
Logs: tool name, ids, status code, seconds; never arguments, headers or bodies.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

import httpx

from workers import protocol, webhooks
from workers.protocol import ToolRequest
from workers.settings import WorkerSettings
from workers.store import ShopStore

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO; a registered URL's query may carry a token.
logging.getLogger("httpx").setLevel(logging.WARNING)

TIMED_OUT = "tool timed out"  # the words every other tool's timeout uses
NOT_ALLOWED = "webhook host not allowed"
UNREACHABLE = "webhook unreachable"
TOO_LARGE = "webhook response too large"
NOT_JSON = "webhook response is not a JSON object"


class _Refused(Exception):
    """A call that is answered with an error before (or instead of) any request."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.why = why or message


def call(
    store: ShopStore,
    request: ToolRequest,
    settings: WorkerSettings,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """The outcome of one webhook tool call (see the module docstring)."""
    name = request.tool
    extra = {"tool": name, "call_id": request.call_id, "tool_call_id": request.tool_call_id}
    raw = store.r.get(webhooks.tool_key(name)) if re.fullmatch(webhooks.NAME, name or "") else None
    if raw is None:
        return protocol.error(f"unknown tool {name[:64]}")
    tool = webhooks.WebhookTool.from_json(raw)
    if not isinstance(request.arguments, dict):
        return protocol.error("arguments must be a JSON object")
    problem = webhooks.arguments_problem(tool.parameters, request.arguments)
    if problem is not None:
        return protocol.error(problem)
    timeout = min(tool.timeout_s, settings.webhook_max_timeout_s)
    if timeout < tool.timeout_s:
        log.warning(
            "webhook %s: timeout_s %.1f cut to the workers' webhook_max_timeout_s %.1f",
            name,
            tool.timeout_s,
            timeout,
            extra=extra,
        )
    t0 = time.monotonic()
    try:
        url, host, headers = _target(tool, settings.webhook_allowed_hosts, environ)
        status, body = _post(tool, request, url, host, headers, timeout, t0 + timeout)
    except _Refused as refused:
        log.warning("webhook %s: %s", name, refused.why, extra={**extra, "seconds": time.monotonic() - t0})
        return protocol.error(refused.message)
    seconds = time.monotonic() - t0
    log.info("webhook %s: HTTP %d in %.3f s", name, status, seconds, extra={**extra, "status": status})
    if not 200 <= status < 300:
        return protocol.error(f"webhook answered HTTP {status}")
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return protocol.error(NOT_JSON)
    return protocol.result(value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _target(
    tool: webhooks.WebhookTool, allowed: tuple[str, ...], environ: Mapping[str, str]
) -> tuple[httpx.URL, str, dict[str, str]]:
    """(the URL with its host replaced by a checked address, the host, the headers) or `_Refused`."""
    problem = webhooks.url_problem(tool.url, allowed)
    if problem is not None:
        raise _Refused(NOT_ALLOWED, problem)
    url = httpx.URL(tool.url)
    if not webhooks.host_allowed(url.host, allowed):
        raise _Refused(NOT_ALLOWED, "host not on PARLEY_WEBHOOK_ALLOWED_HOSTS")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _Refused(UNREACHABLE, "host not found") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        problem = webhooks.address_problem(address, allowed)
        if problem is not None:
            raise _Refused(NOT_ALLOWED, f"the host resolves to {problem}")
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "parley-webhook/1",
    }
    if tool.secret_env:
        secret = environ.get(tool.secret_env)
        if not secret:
            raise _Refused("webhook secret not configured", f"{tool.secret_env} is not set on this worker")
        headers[tool.secret_header] = secret
    return url.copy_with(host=str(addresses[0])), url.host, headers


def _post(
    tool: webhooks.WebhookTool,
    request: ToolRequest,
    url: httpx.URL,
    host: str,
    headers: dict[str, str],
    timeout: float,
    deadline: float,
) -> tuple[int, bytes]:
    """(status, body) of the POST, the body only for a 2xx and at most MAX_RESPONSE_BYTES."""
    body = {
        "tool": tool.name,
        "arguments": request.arguments,
        "call_id": request.call_id,
        "idempotency_key": request.key,
    }
    content = json.dumps(body, separators=(",", ":")).encode("utf-8")
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    limit = webhooks.MAX_RESPONSE_BYTES
    try:
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout)) as client:
            outgoing = client.build_request(
                tool.method,
                url,
                content=content,
                headers={**headers, "Idempotency-Key": request.key},
                extensions=extensions,
            )
            response = client.send(outgoing, stream=True)
            try:
                if not 200 <= response.status_code < 300:
                    return response.status_code, b""
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise _Refused(NOT_JSON, "the response is compressed (asked for identity)")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise _Refused(TOO_LARGE, f"Content-Length over {limit} bytes")
                chunks, size = [], 0
                for chunk in response.iter_raw():
                    size += len(chunk)
                    if size > limit:
                        raise _Refused(TOO_LARGE, f"response over {limit} bytes")
                    if time.monotonic() > deadline:
                        raise _Refused(TIMED_OUT, "the response took longer than timeout_s")
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks)
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        raise _Refused(TIMED_OUT, f"no answer within timeout_s ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:  # the type only: a message could quote the URL's query
        raise _Refused(UNREACHABLE, type(exc).__name__) from None
