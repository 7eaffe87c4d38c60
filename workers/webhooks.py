"""Webhook tools: tools an admin registers, run as an HTTP POST to the agent's own backend.

The catalog contract shared by the admin API (which writes it), the gateway's tool router (which
checks a call's arguments against it) and the tool workers (which call the webhook): the
`WebhookTool` record and its JSON form in Redis, the rules a registration must keep, the argument
check, and the outbound-address rules. Standard library only; knows nothing of Celery, HTTP
clients or FastAPI.

Redis keys: `parley:cfg:webhook-tools` (set of names), `parley:cfg:webhook-tool:<name>` (the
record as JSON). Every webhook tool is sent as the one task `protocol.task_name(TASK)` with the
tool's name in `ToolRequest.tool`, so `TASK` can never be a tool's name.

Parameters keep the project's format, `{"arg": {"type": "string" | "integer", "required": bool}}`,
plus optional `description` (words for the reasoning model) and `enum` (the only values allowed).
No `pattern`: a registered regular expression run on the model's arguments in the gateway's event
loop could stall every call (catastrophic backtracking), so none is accepted.

Addresses: a URL is https, or http to a host on the allowlist; it names a host, no user or
password, no fragment. Link-local (169.254.0.0/16, fe80::/10: cloud metadata), unspecified and
multicast addresses are refused whatever the allowlist says; private, loopback and other
reserved addresses only when the allowlist names them (an IP or a network such as 10.0.0.0/8).
Allowlist entries are host names (`api.clinic.example`), `*.suffix` wildcards, IPs or networks.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workers import protocol
from workers.shop import schema_problem

TASK = "webhook"  # the task every webhook tool is sent as: protocol.task_name(TASK)
NAME = r"^[a-z][a-z0-9_]{0,39}$"  # agent.config.TOOL
ARGUMENT = r"^[a-z][a-z0-9_]{0,39}$"
TIMEOUT_MIN_S = 0.5
TIMEOUT_MAX_S = 20.0
MAX_RESPONSE_BYTES = 16 * 1024
MAX_PARAMETERS = 16
MAX_ENUM = 50
MAX_URL = 2000
SECRET_ENV = r"^PARLEY_WEBHOOK_SECRET_[A-Z0-9_]{1,64}$"  # only these reach a webhook, never REDIS_URL
SECRET_HEADER = r"^(Authorization|X-[A-Za-z0-9-]{1,60})$"
PARAMETER_TYPES = {"string": str, "integer": int}
PARAMETER_KEYS = {"type", "required", "description", "enum"}

KEY_PREFIX = protocol.KEY_PREFIX
TOOLS = f"{KEY_PREFIX}cfg:webhook-tools"


def tool_key(name: str) -> str:
    return f"{KEY_PREFIX}cfg:webhook-tool:{name}"


@dataclass(frozen=True)
class WebhookTool:
    """One registered webhook tool (what `tool_key(name)` holds, as JSON)."""

    name: str
    description: str
    parameters: dict[str, dict[str, Any]]
    url: str
    timeout_s: float
    method: str = "POST"
    secret_env: str | None = None  # a worker environment variable holding the header's value
    secret_header: str = "Authorization"
    created_at: float = 0.0
    updated_at: float = 0.0
    key_id: str | None = field(default=None, compare=False)  # the API key that last wrote it

    def schema(self) -> dict[str, Any]:
        """Its schema as `agent.config.TOOL_SCHEMAS` holds a tool's."""
        return {"description": self.description, "parameters": self.parameters}

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> WebhookTool:
        return cls(**json.loads(raw))


# --- registration rules ----------------------------------------------------------------------------
def parameters_problem(params: Any) -> str | None:
    """None when `params` is a valid parameter schema, else what is wrong (naming the argument)."""
    if not isinstance(params, Mapping):
        return "parameters must be an object of {argument: {type, required}}"
    if len(params) > MAX_PARAMETERS:
        return f"at most {MAX_PARAMETERS} parameters"
    for arg, spec in params.items():
        if not isinstance(arg, str) or not re.fullmatch(ARGUMENT, arg):
            return f"parameter name {str(arg)[:64]!r} must be a lowercase identifier (a-z, 0-9, _)"
        if not isinstance(spec, Mapping):
            return f"parameter {arg!r} must be an object"
        extra = sorted(set(spec) - PARAMETER_KEYS)
        if extra:
            return f"parameter {arg!r}: unknown key(s) {', '.join(map(str, extra))[:100]}"
        kind = spec.get("type")
        if kind not in PARAMETER_TYPES:
            return f"parameter {arg!r} needs a type of {', '.join(PARAMETER_TYPES)}"
        if not isinstance(spec.get("required"), bool):
            return f"parameter {arg!r} needs required: true or false"
        text = spec.get("description", "")
        if not isinstance(text, str) or len(text) > 200:
            return f"parameter {arg!r}: description must be text of at most 200 characters"
        if "enum" in spec:
            values = spec["enum"]
            if not isinstance(values, list) or not 1 <= len(values) <= MAX_ENUM:
                return f"parameter {arg!r}: enum must be a list of 1 to {MAX_ENUM} values"
            want = PARAMETER_TYPES[kind]
            if any(not isinstance(v, want) or isinstance(v, bool) for v in values):
                return f"parameter {arg!r}: every enum value must be {kind}"
            if any(isinstance(v, str) and len(v) > 100 for v in values):
                return f"parameter {arg!r}: enum values are at most 100 characters"
            if len(set(values)) != len(values):
                return f"parameter {arg!r}: enum lists a value twice"
    return None


def arguments_problem(params: Mapping[str, Mapping[str, Any]], arguments: dict[str, Any]) -> str | None:
    """None when `arguments` fit `params`, else what is wrong, in the words the model hears
    (`workers.shop.schema_problem`'s, and "argument X must be one of A, B")."""
    problem = schema_problem(params, arguments)
    if problem is not None:
        return problem
    for arg, spec in params.items():
        if "enum" in spec and arg in arguments and arguments[arg] not in spec["enum"]:
            return f"argument {arg} must be one of {', '.join(map(str, spec['enum']))}"[:200]
    return None


# --- addresses -------------------------------------------------------------------------------------
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed_networks(allowed: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether the allowlist names `host` (a name, a `*.suffix` wildcard, an IP or a network)."""
    host = host.lower().rstrip(".")
    ip = _ip(host)
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if ip is not None:
            if any(ip in net for net in _allowed_networks([entry])):
                return True
        elif entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
        elif host == entry:
            return True
    return False


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_problem(address: Address, allowed: Iterable[str]) -> str | None:
    """Why the workers may not connect to `address`, else None."""
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return "link-local, multicast and unspecified addresses are never called"
    if address.is_private or address.is_loopback or address.is_reserved or not address.is_global:
        if not any(address in net for net in _allowed_networks(allowed)):
            return "a private, loopback or reserved address not on the allowlist"
    return None


def url_problem(url: Any, allowed: Iterable[str]) -> str | None:
    """None when `url` may be registered (and, with the workers' allowlist, called), else why."""
    allowed = tuple(allowed)
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return f"url must be text of at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "url is not a valid URL"
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        return "url must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "url must not carry a user or password (use secret_env)"
    if parts.fragment:
        return "url must not have a #fragment"
    if port == 0:
        return "url's port must not be 0"
    if parts.scheme == "http" and not host_allowed(host, allowed):
        return f"http:// only to hosts on the allowlist (PARLEY_WEBHOOK_ALLOWED_HOSTS); {host!r} is not"
    ip = _ip(host)
    if ip is not None:
        problem = address_problem(ip, allowed)
        if problem:
            return f"url's host {host}: {problem}"
    return None
