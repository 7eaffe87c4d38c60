"""Secrets: API keys and stream tokens, their salted hashes, and checking one that is presented.

A secret is `<kind>_<id>_<secret>`: `pk` for API keys, `pst` for stream tokens; `id` (12 hex
characters) names the stored record and is not secret (listings show it); `secret` is 32 random
bytes, URL-safe base64. Only `hash_secret(secret, salt, cost)` is stored, an scrypt hash with a
fresh 16-byte salt per secret, so nothing in Redis gives the secret back. `SecretVerifier`
compares in constant time (`hmac.compare_digest`) and remembers, per process, the secrets it has
already checked against a stored hash, so a key's hash is computed once per process rather than
on every request (revocation still takes effect at once: the stored record is read every time).

Scopes are ordered: `read` < `write` < `admin`; a key has one and may do what the lower ones may.
Nothing here touches Redis or FastAPI.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import re
import secrets

SCOPES = ("read", "write", "admin")
SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
API_KEY = "pk"
STREAM_TOKEN = "pst"
ID_HEX = 12
SALT_BYTES = 16
HASH_BYTES = 32
_CREDENTIAL = re.compile(r"^(pk|pst)_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def scope_allows(have: str, need: str) -> bool:
    """Whether a key of scope `have` may do what needs scope `need`."""
    return SCOPE_RANK.get(have, -1) >= SCOPE_RANK[need]


@dataclasses.dataclass(frozen=True)
class NewSecret:
    """A freshly made secret: `plaintext` is shown once; `salt` and `digest` are what is stored."""

    kind: str
    id: str
    plaintext: str
    salt: bytes
    digest: bytes


@dataclasses.dataclass(frozen=True)
class Presented:
    """A credential as presented: its kind, record id and secret part."""

    kind: str
    id: str
    secret: str


def hash_secret(secret: str, salt: bytes, cost: int) -> bytes:
    """scrypt(secret, salt), N = `cost`, r = 8, p = 1."""
    return hashlib.scrypt(
        secret.encode("ascii"),
        salt=salt,
        n=cost,
        r=8,
        p=1,
        dklen=HASH_BYTES,
        maxmem=256 * cost * 8 + (1 << 20),
    )


def new_secret(kind: str, cost: int) -> NewSecret:
    """A new API key (`kind="pk"`) or stream token (`kind="pst"`) with its salt and hash."""
    if kind not in (API_KEY, STREAM_TOKEN):
        raise ValueError(f"unknown secret kind {kind!r}")
    ident = secrets.token_hex(ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(SALT_BYTES)
    return NewSecret(kind, ident, f"{kind}_{ident}_{secret}", salt, hash_secret(secret, salt, cost))


def parse(credential: str | None, kind: str) -> Presented | None:
    """The parts of `credential` when it is well-formed and of `kind`, else None."""
    if not credential or len(credential) > 128:
        return None
    match = _CREDENTIAL.match(credential.strip())
    if match is None or match.group(1) != kind:
        return None
    return Presented(match.group(1), match.group(2), match.group(3))


def bearer(header: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header value, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


class SecretVerifier:
    """Constant-time checks of presented secrets against stored salted hashes, with a per-process
    memory of recent successes (`size` entries) so the scrypt cost is paid once per secret."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._known: collections.OrderedDict[tuple[str, bytes], bytes] = collections.OrderedDict()

    def check_known(self, presented: Presented, digest: bytes) -> bool | None:
        """The answer from memory when this stored hash was matched before, else None."""
        slot = (presented.id, digest)
        known = self._known.get(slot)
        if known is None:
            return None
        self._known.move_to_end(slot)
        return hmac.compare_digest(known, hashlib.sha256(presented.secret.encode("ascii")).digest())

    def verify(self, presented: Presented, salt: bytes, digest: bytes, cost: int) -> bool:
        """Whether `presented` is the secret stored as `digest` (scrypt of cost `cost`, `salt`)."""
        known = self.check_known(presented, digest)
        if known is not None:
            return known
        fingerprint = hashlib.sha256(presented.secret.encode("ascii")).digest()
        slot = (presented.id, digest)
        ok = hmac.compare_digest(hash_secret(presented.secret, salt, cost), digest)
        if ok:
            self._known[slot] = fingerprint
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return ok
