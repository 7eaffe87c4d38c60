"""Reading the few things Parley needs from a raw SIP message (as pjsua2's `SipRxData.wholeMsg`).

pjsua2 parses SIP itself but exposes little of an incoming INVITE to Python: its text and source
address. These pure functions take that text apart just far enough: the request line and its URI,
header values (long and compact names, first occurrence), the user and host of a URI, and the
parameters of a Digest credentials header. They never raise on malformed input: a value that is
not there, or not readable, is None. Nothing here knows about calls, trunks or agents.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

COMPACT = {  # RFC 3261 section 7.3.3 (and RFC 3515 for Refer-To)
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "r": "refer-to",
}
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')
MAX_SCAN = 16384  # bytes of a message looked at: headers of a legitimate INVITE fit well within


def request_line(msg: str) -> tuple[str, str] | None:
    """(method, request-URI) of a request, or None for a response or garbage."""
    first = msg[:2048].split("\n", 1)[0].strip()
    parts = first.split(" ")
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/") or not parts[0].isalpha():
        return None
    return parts[0].upper(), parts[1]


def header(msg: str, name: str) -> str | None:
    """The value of the first header called `name` (case-insensitive; compact forms understood),
    with continuation lines folded, or None."""
    want = name.lower()
    head = msg[:MAX_SCAN].replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")[1:]
    for i, line in enumerate(lines):
        if not line or line[0] in " \t" or ":" not in line:
            continue
        key, value = line.split(":", 1)
        key = key.strip().lower()
        if COMPACT.get(key, key) != want:
            continue
        for more in lines[i + 1 :]:  # folded continuation lines
            if more and more[0] in " \t":
                value += " " + more.strip()
            else:
                break
        return value.strip()
    return None


def _strip_uri(uri: str) -> str:
    uri = uri.strip()
    if "<" in uri and ">" in uri:  # name-addr: "Bob" <sip:bob@host>;tag=...
        uri = uri[uri.index("<") + 1 : uri.index(">")]
    return uri


def uri_user(uri: str) -> str | None:
    """The user part of a sip:/sips: URI (percent-decoded), the number of a tel: URI, else None."""
    uri = _strip_uri(uri)
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme == "tel":
        return unquote(rest.split(";", 1)[0]) or None
    if scheme not in ("sip", "sips") or "@" not in rest:
        return None
    user = rest.rsplit("@", 1)[0].split(":", 1)[0]  # drop a password
    return unquote(user) or None


def uri_host(uri: str) -> str | None:
    """The host (with its port, when there is one) of a sip:/sips: URI, else None."""
    uri = _strip_uri(uri)
    scheme, _, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips"):
        return None
    hostport = rest.rsplit("@", 1)[-1].split(";", 1)[0].split("?", 1)[0]
    return hostport or None


def source_ip(address: str) -> str:
    """The IP of pjsua2's `srcAddress` ("1.2.3.4:5060", "[::1]:5060")."""
    address = address.strip()
    if address.startswith("["):
        return address[1 : address.find("]")]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


_STATIC_PT = {"0": "PCMU", "8": "PCMA", "9": "G722"}


def offered_codec(msg: str, accepted: tuple[str, ...]) -> str | None:
    """The codec an answerer that follows the offer's order picks: the first audio payload of the
    SDP body whose name is in `accepted` ("PCMU", "PCMA", "G722"), or None."""
    body = msg.replace("\r\n", "\n").split("\n\n", 1)
    if len(body) < 2:
        return None
    lines = [line.strip() for line in body[1][:MAX_SCAN].split("\n")]
    names = dict(_STATIC_PT)
    for line in lines:
        if line.lower().startswith("a=rtpmap:"):
            pt, _, rest = line[9:].partition(" ")
            names[pt] = rest.split("/", 1)[0].upper()
    for line in lines:
        if line.startswith("m=audio"):
            for pt in line.split()[3:]:
                if names.get(pt) in accepted:
                    return names[pt]
            return None
    return None


def digest_params(value: str | None) -> dict[str, str] | None:
    """The parameters of a `Digest ...` credentials header, lower-case keys, quotes removed."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            return None
        key, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[key] = raw
        pos = m.end()
    return params
