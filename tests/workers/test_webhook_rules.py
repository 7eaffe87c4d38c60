"""The webhook tools' rules without a worker: registration (schema, URL), arguments, addresses and
the allowlist, the workers' settings, and the refusals `workers.webhook_call` makes before any
request (a hand-written store stands in for Redis; no backend exists, so a request would fail)."""

from __future__ import annotations

import ipaddress
import types

import pytest

from agent.config import check_tool_call
from workers import protocol, webhook_call
from workers.settings import WorkerSettings
from workers.webhooks import (
    WebhookTool,
    address_problem,
    arguments_problem,
    host_allowed,
    parameters_problem,
    url_problem,
)

SLOT = {"slot": {"type": "string", "required": True, "enum": ["morning", "afternoon"]}}


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("api.clinic.example", ["api.clinic.example"], True),
        ("API.clinic.example.", ["api.clinic.example"], True),
        ("a.clinic.example", ["*.clinic.example"], True),
        ("clinic.example", ["*.clinic.example"], False),
        ("evilclinic.example", ["*.clinic.example"], False),
        ("10.2.3.4", ["10.0.0.0/8"], True),
        ("11.2.3.4", ["10.0.0.0/8"], False),
        ("127.0.0.1", ["localhost"], False),
        ("anything.example", [], False),
    ],
)
def test_the_allowlist_names_hosts_wildcards_ips_and_networks(host, allowed, expected):
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("169.254.169.254", ["169.254.0.0/16"], True),  # metadata: never, whatever the list says
        ("fe80::1", ["fe80::/10"], True),
        ("::ffff:169.254.169.254", [], True),
        ("0.0.0.0", ["0.0.0.0/0"], True),
        ("224.0.0.1", [], True),
        ("127.0.0.1", [], True),
        ("127.0.0.1", ["127.0.0.1"], False),
        ("10.9.8.7", [], True),
        ("10.9.8.7", ["10.0.0.0/8"], False),
        ("::1", [], True),
        ("93.184.215.14", [], False),
    ],
)
def test_addresses_the_workers_never_or_only_explicitly_call(address, allowed, refused):
    assert (address_problem(ipaddress.ip_address(address), allowed) is not None) is refused


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://clinic.example/hook?v=1", [], True),
        ("https://clinic.example:8443/hook", [], True),
        ("http://clinic.example/hook", [], False),
        ("http://clinic.example/hook", ["clinic.example"], True),
        ("https://clinic.example:0/hook", [], False),
        ("https://clinic.example:99999/hook", [], False),
        ("https:///hook", [], False),
        ("https://[::1]/hook", [], False),
        ("https://[::1]/hook", ["::1"], True),
        ("javascript:alert(1)", [], False),
        (None, [], False),
        ("https://" + "a" * 2000 + ".example/", [], False),
    ],
)
def test_urls(url, allowed, ok):
    assert (url_problem(url, allowed) is None) is ok


def test_parameter_schemas_and_arguments():
    assert parameters_problem(SLOT) is None
    assert parameters_problem({"n": {"type": "integer", "required": False, "enum": [1, 2]}}) is None
    assert "enum" in parameters_problem({"n": {"type": "integer", "required": False, "enum": [True]}})
    assert "at most 16" in parameters_problem(
        {f"a{i}": {"type": "string", "required": False} for i in range(17)}
    )
    assert parameters_problem([]) is not None
    assert arguments_problem(SLOT, {"slot": "morning"}) is None
    assert arguments_problem(SLOT, {"slot": "evening"}) == "argument slot must be one of morning, afternoon"
    assert arguments_problem(SLOT, {}) == "missing argument slot"
    assert arguments_problem(SLOT, {"slot": 3}) == "argument slot must be string"
    assert arguments_problem(SLOT, {"slot": "morning", "x": 1}) == "unknown argument(s) x"
    # The router checks a registered tool's arguments with the same words.
    schema = {"description": "", "parameters": SLOT}
    assert check_tool_call("book", {"slot": "evening"}, schema) == arguments_problem(
        SLOT, {"slot": "evening"}
    )
    assert check_tool_call("book", {"slot": "morning"}, schema) is None
    assert check_tool_call("book", None, schema) == "arguments must be a JSON object"
    # A built-in tool's own schema wins over one passed in.
    assert check_tool_call("lookup_order", {}, schema) == "missing argument order_id"


def test_the_webhook_task_fits_under_the_visibility_timeout():
    s = WorkerSettings()
    soft, hard = s.webhook_limits_s
    assert soft < hard <= s.visibility_timeout_s - 1
    with pytest.raises(ValueError, match="webhook_max_timeout_s"):
        WorkerSettings(webhook_max_timeout_s=10.0)
    assert WorkerSettings(webhook_max_timeout_s=10.0, time_limit_s=5.0, visibility_timeout_s=13.0)
    assert WorkerSettings(webhook_allowed_hosts=["127.0.0.1"]).webhook_allowed_hosts == ("127.0.0.1",)


class FakeRedis:
    def __init__(self, tool: WebhookTool | None) -> None:
        self.tool = tool

    def get(self, key: str) -> bytes | None:
        return self.tool.to_json().encode() if self.tool and key.endswith(":" + self.tool.name) else None


def _call(tool: WebhookTool | None, arguments: dict, allowed: tuple[str, ...] = (), environ=None) -> dict:
    store = types.SimpleNamespace(r=FakeRedis(tool))
    request = protocol.ToolRequest("k1", "c1", "t1", arguments, "replies", tool.name if tool else "gone")
    settings = WorkerSettings(webhook_allowed_hosts=allowed)
    return webhook_call.call(store, request, settings, environ or {})


def test_refusals_before_any_request():
    tool = WebhookTool("book", "", SLOT, "http://localhost:9/book", 1.0)
    assert _call(None, {}) == {"error": "unknown tool gone"}
    assert _call(tool, {"slot": "evening"}) == {"error": "argument slot must be one of morning, afternoon"}
    assert _call(tool, {"slot": "morning"}) == {"error": "webhook host not allowed"}  # empty allowlist
    # The name is allowed, but it resolves to loopback, which is not listed.
    assert _call(tool, {"slot": "morning"}, ("localhost",)) == {"error": "webhook host not allowed"}
    secret = WebhookTool(
        "book", "", SLOT, "http://127.0.0.1:9/book", 1.0, secret_env="PARLEY_WEBHOOK_SECRET_X"
    )
    assert _call(secret, {"slot": "morning"}, ("127.0.0.1",)) == {"error": "webhook secret not configured"}
    # Allowed, with its secret: the request is made, and port 9 (discard) refuses it.
    environ = {"PARLEY_WEBHOOK_SECRET_X": "s"}
    assert _call(secret, {"slot": "morning"}, ("127.0.0.1",), environ) == {"error": "webhook unreachable"}
