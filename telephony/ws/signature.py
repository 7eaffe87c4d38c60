"""Twilio request signatures, and the public URL a request was made to.

Twilio signs every webhook request and every Media Streams websocket handshake with the
`X-Twilio-Signature` header: base64 of HMAC-SHA1, keyed with the account's auth token, over the
full URL Twilio requested followed by each POST parameter's name and value, sorted by name (a
websocket handshake has no parameters, so it is the URL alone). Behind a TLS-terminating proxy the
URL Twilio signed is not the one this process sees, so `request_url` rebuilds it from
`public_url` (or the X-Forwarded-* headers), the same way the gateway writes the `<Stream url>`.

Pure functions over strings and a Starlette connection; nothing here knows about agents, keys
or Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import HTTPConnection

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def twilio_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """The X-Twilio-Signature Twilio sends for a request to `url` with POST `params`."""
    items = params.items() if isinstance(params, Mapping) else params
    payload = url + "".join(k + v for k, v in sorted(items, key=lambda kv: kv[0]))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """`url` as given, and with its scheme's default port added or removed (Twilio signs either)."""
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


def twilio_signature_valid(auth_token: str, url: str, params: Params, signature: str | None) -> bool:
    """True when `signature` is Twilio's for this request (constant-time comparison)."""
    if not auth_token or not signature:
        return False
    items = list(params.items() if isinstance(params, Mapping) else params)
    given = signature.encode("utf-8")
    ok = False
    for candidate in _port_variants(url):
        ok |= hmac.compare_digest(twilio_signature(auth_token, candidate, items).encode("ascii"), given)
    return ok


def request_url(conn: HTTPConnection, public_url: str | None) -> str:
    """The URL the far end requested: `public_url`'s scheme and host with this request's path and
    query; without `public_url`, the X-Forwarded-Proto/Host headers or the request's own. A
    websocket's scheme is ws/wss, an HTTP request's http/https."""
    websocket = conn.scope.get("type") == "websocket"
    path = conn.scope.get("root_path", "") + conn.scope.get("path", "")
    query = conn.scope.get("query_string", b"").decode("latin-1")
    if public_url:
        parts = urlsplit(public_url)
        secure = parts.scheme in ("https", "wss")
        netloc, prefix = parts.netloc, parts.path.rstrip("/")
    else:
        proto = conn.headers.get("x-forwarded-proto", conn.url.scheme).split(",")[0].strip()
        secure = proto in ("https", "wss")
        netloc = conn.headers.get("x-forwarded-host") or conn.headers.get("host") or conn.url.netloc
        prefix = ""
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    return urlunsplit((scheme, netloc, prefix + path, query, ""))
