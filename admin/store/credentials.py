"""API keys and stream tokens in Redis, stored only as salted hashes; per-key rate limits.

API keys (`pk_<id>_<secret>`) authenticate the admin API; each has one scope (read / write /
admin, see `admin.core.security`). Stream tokens (`pst_<id>_<secret>`) authenticate media
websockets for one agent, optionally until an expiry. For both, Redis holds the id, the metadata,
the scrypt parameters, the salt and the hash: never the secret, which is returned once by
`create_*` and cannot be recovered. Revoking keeps the record (with `revoked_at`) so listings show
it; a revoked key is refused from the next request on.

`authenticate` checks a presented API key: well-formed, within its rate limit, known, matching its
hash (constant time), not revoked. Rate limits are fixed windows counted in Redis per key id
(`hit`), so they hold across any number of admin processes; failed checks have their own, tighter
limit, so guessing at a key costs at most `max_failures` hashes per window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from admin.core import security
from admin.store import names
from admin.store.errors import Conflict, NotFound

MAX_FAILURES = 10  # failed checks of one key id per rate-limit window before 429


class AuthFailure(Exception):
    """A presented key refused: `status` 401 (or 429), `reason` in words, `retry_after` for 429."""

    def __init__(self, reason: str, status: int = 401, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    scope: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclasses.dataclass(frozen=True)
class StoredToken:
    id: str
    agent: str
    label: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


def _opt_float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _key(ident: str, data: dict) -> StoredKey:
    return StoredKey(
        ident, data["name"], data["scope"], float(data["created_at"]), _opt_float(data.get("revoked_at"))
    )


def _token(ident: str, data: dict) -> StoredToken:
    return StoredToken(
        ident,
        data["agent"],
        data.get("label", ""),
        float(data["created_at"]),
        _opt_float(data.get("expires_at")),
        _opt_float(data.get("revoked_at")),
    )


def _secret_fields(new: security.NewSecret, cost: int) -> dict:
    return {"salt": new.salt.hex(), "hash": new.digest.hex(), "cost": cost}


class CredentialStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        cost: int = 2**14,
        verifier: security.SecretVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.cost = cost
        self.verifier = verifier or security.SecretVerifier()
        self.clock = clock

    async def _matches(self, presented: security.Presented, data: dict) -> bool:
        """Whether `presented` matches the stored hash; a hash not matched before is computed in a
        thread (tens of ms of scrypt), not on the event loop."""
        try:
            salt, digest, cost = bytes.fromhex(data["salt"]), bytes.fromhex(data["hash"]), int(data["cost"])
        except (KeyError, ValueError):
            return False
        known = self.verifier.check_known(presented, digest)
        if known is not None:
            return known
        return await asyncio.to_thread(self.verifier.verify, presented, salt, digest, cost)

    # --- API keys ----------------------------------------------------------------------------------
    async def create_key(self, name: str, scope: str) -> tuple[StoredKey, str]:
        if scope not in security.SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {', '.join(security.SCOPES)}")
        new = await asyncio.to_thread(security.new_secret, security.API_KEY, self.cost)
        now = self.clock()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                names.api_key(new.id),
                mapping={
                    "name": name,
                    "scope": scope,
                    "created_at": repr(now),
                    **_secret_fields(new, self.cost),
                },
            )
            pipe.sadd(names.API_KEYS, new.id)
            pipe.sadd(names.API_KEYS_ACTIVE, new.id)
            await pipe.execute()
        return StoredKey(new.id, name, scope, now, None), new.plaintext

    async def get_key(self, ident: str) -> StoredKey | None:
        data = await self.redis.hgetall(names.api_key(ident))
        return _key(ident, data) if data else None

    async def list_keys(self) -> list[StoredKey]:
        found = []
        for ident in await self.redis.smembers(names.API_KEYS):
            key = await self.get_key(ident)
            if key is not None:
                found.append(key)
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def any_active_key(self) -> bool:
        return bool(await self.redis.scard(names.API_KEYS_ACTIVE))

    async def revoke_key(self, ident: str) -> StoredKey:
        """Revoke a key (again: no change). The last active admin key cannot be revoked."""
        key = names.api_key(ident)

        async def txn(pipe) -> StoredKey:
            data = await pipe.hgetall(key)
            if not data:
                raise NotFound(f"no API key {ident!r}", "key_id")
            stored = _key(ident, data)
            if not stored.active:
                return stored
            if stored.scope == "admin":
                others = 0
                for other in await pipe.smembers(names.API_KEYS_ACTIVE):
                    if other != ident and await pipe.hget(names.api_key(other), "scope") == "admin":
                        others += 1
                if not others:
                    raise Conflict(
                        "this is the last active admin key; create another admin key before revoking it",
                        "key_id",
                    )
            now = self.clock()
            pipe.multi()
            pipe.hset(key, "revoked_at", repr(now))
            pipe.srem(names.API_KEYS_ACTIVE, ident)
            return dataclasses.replace(stored, revoked_at=now)

        return await self.redis.transaction(txn, key, names.API_KEYS_ACTIVE, value_from_callable=True)

    async def hit(self, ident: str, limit: int, window_s: int, *, failures: bool = False) -> int | None:
        """Count one request (or one failed check) of key `ident`; None while within `limit` per
        window, else the seconds until the window ends."""
        now = self.clock()
        window = int(now // window_s)
        key = names.rate(ident, window, failures)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, 0, ex=2 * window_s, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        if count > limit:
            return max(1, int((window + 1) * window_s - now + 0.999))
        return None

    async def failures_exceeded(self, ident: str, window_s: int) -> int | None:
        now = self.clock()
        window = int(now // window_s)
        count = await self.redis.get(names.rate(ident, window, True))
        if count is not None and int(count) >= MAX_FAILURES:
            return max(1, int((window + 1) * window_s - now + 0.999))
        return None

    async def authenticate(self, credential: str | None, *, limit: int, window_s: int) -> StoredKey:
        """The active key `credential` is, or `AuthFailure` saying why not."""
        if not credential:
            raise AuthFailure("missing API key: send the header Authorization: Bearer <key>")
        presented = security.parse(credential, security.API_KEY)
        if presented is None:
            raise AuthFailure("malformed API key: expected pk_<id>_<secret>")
        retry = await self.hit(presented.id, limit, window_s)
        if retry is None:
            retry = await self.failures_exceeded(presented.id, window_s)
        if retry is not None:
            raise AuthFailure(f"rate limit of this API key exceeded; retry in {retry} s", 429, retry)
        data = await self.redis.hgetall(names.api_key(presented.id))
        if not data or not await self._matches(presented, data):
            await self.hit(presented.id, MAX_FAILURES, window_s, failures=True)
            raise AuthFailure("unknown or wrong API key")
        stored = _key(presented.id, data)
        if not stored.active:
            raise AuthFailure("API key revoked")
        return stored

    # --- stream tokens -----------------------------------------------------------------------------
    async def create_token(
        self, agent: str, label: str = "", ttl_s: int | None = None
    ) -> tuple[StoredToken, str]:
        new = await asyncio.to_thread(security.new_secret, security.STREAM_TOKEN, self.cost)
        now = self.clock()
        expires = now + ttl_s if ttl_s else None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                names.stream_token(new.id),
                mapping={
                    "agent": agent,
                    "label": label,
                    "created_at": repr(now),
                    "expires_at": repr(expires) if expires else "",
                    **_secret_fields(new, self.cost),
                },
            )
            pipe.sadd(names.stream_tokens(agent), new.id)
            if expires:
                pipe.expireat(names.stream_token(new.id), int(expires) + 1)
            await pipe.execute()
        return StoredToken(new.id, agent, label, now, expires, None), new.plaintext

    async def list_tokens(self, agent: str) -> list[StoredToken]:
        found = []
        for ident in await self.redis.smembers(names.stream_tokens(agent)):
            data = await self.redis.hgetall(names.stream_token(ident))
            if data:
                found.append(_token(ident, data))
            else:  # expired
                await self.redis.srem(names.stream_tokens(agent), ident)
        return sorted(found, key=lambda t: (t.created_at, t.id))

    async def revoke_token(self, agent: str, ident: str) -> StoredToken:
        data = await self.redis.hgetall(names.stream_token(ident))
        if not data or data.get("agent") != agent:
            raise NotFound(f"agent {agent!r} has no stream token {ident!r}", "token_id")
        stored = _token(ident, data)
        if stored.revoked_at is None:
            now = self.clock()
            await self.redis.hset(names.stream_token(ident), "revoked_at", repr(now))
            stored = dataclasses.replace(stored, revoked_at=now)
        return stored

    async def token_valid(self, agent: str, token: str | None) -> bool:
        """Whether `token` is a live stream token of `agent`."""
        presented = security.parse(token, security.STREAM_TOKEN)
        if presented is None:
            return False
        data = await self.redis.hgetall(names.stream_token(presented.id))
        if not data or not await self._matches(presented, data):
            return False
        stored = _token(presented.id, data)
        if stored.agent != agent or stored.revoked_at is not None:
            return False
        return stored.expires_at is None or stored.expires_at > self.clock()
