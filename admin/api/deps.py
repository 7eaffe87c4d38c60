"""Dependencies of the admin routes, as Annotated aliases (the FastAPI full-stack template's
`deps.py`): the settings, the stores, and the API key a route needs (`ReadKey`, `WriteKey`,
`AdminKey`).

A key is checked on every request (`CredentialStore.authenticate`: format, rate limit, hash in
constant time, revocation), then its scope against the route's: 401 when there is no valid key,
403 when its scope is too low, 429 past its rate limit. Errors are `ApiError`s, which the app
turns into a `Problem` body naming the reason and the field (here the `Authorization` header).
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from admin.core.config import Settings
from admin.core.security import bearer, scope_allows
from admin.models import Problem
from admin.store.agents import AgentStore
from admin.store.calls import CallStore
from admin.store.credentials import AuthFailure, CredentialStore, StoredKey
from admin.store.numbers import NumberStore
from admin.store.tools import ToolStore


class ApiError(Exception):
    """An error response: `status`, the reason in words, the field concerned, extra headers."""

    def __init__(
        self, status: int, reason: str, field: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.headers = headers or {}


def _problem(description: str) -> dict:
    return {"model": Problem, "description": description}


AUTH_RESPONSES: dict = {
    401: _problem("No API key, a malformed, unknown, wrong or revoked one."),
    403: _problem("The API key's scope is too low for this route."),
    429: _problem("The API key's rate limit is used up for this window (Retry-After says how long)."),
    503: _problem("Redis is unreachable."),
}
NOT_FOUND = {404: _problem("No such resource.")}
CONFLICT = {409: _problem("The request conflicts with what is stored.")}

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer pk_<id>_<secret>`.",
)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> aioredis.Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]


def get_agents(redis: RedisDep) -> AgentStore:
    return AgentStore(redis)


def get_numbers(redis: RedisDep) -> NumberStore:
    return NumberStore(redis)


def get_calls(redis: RedisDep) -> CallStore:
    return CallStore(redis)


def get_tools(redis: RedisDep) -> ToolStore:
    return ToolStore(redis)


def get_credentials(request: Request) -> CredentialStore:
    return request.app.state.credentials  # one per app: its verifier remembers checked keys


AgentsDep = Annotated[AgentStore, Depends(get_agents)]
NumbersDep = Annotated[NumberStore, Depends(get_numbers)]
CallsDep = Annotated[CallStore, Depends(get_calls)]
ToolsDep = Annotated[ToolStore, Depends(get_tools)]
CredentialsDep = Annotated[CredentialStore, Depends(get_credentials)]


def require(scope: str):
    """A dependency that yields the request's API key when its scope allows `scope`."""

    async def api_key(
        request: Request,
        store: CredentialsDep,
        settings: SettingsDep,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
    ) -> StoredKey:
        header = request.headers.get("authorization")
        credential = bearer(header)
        if header and credential is None:
            raise ApiError(
                401,
                "the Authorization header must be 'Bearer <API key>'",
                "Authorization",
                {"WWW-Authenticate": "Bearer"},
            )
        try:
            key = await store.authenticate(
                credential, limit=settings.rate_limit_requests, window_s=settings.rate_limit_window_s
            )
        except AuthFailure as exc:
            headers = (
                {"Retry-After": str(exc.retry_after)} if exc.retry_after else {"WWW-Authenticate": "Bearer"}
            )
            raise ApiError(exc.status, exc.reason, "Authorization", headers) from None
        if not scope_allows(key.scope, scope):
            raise ApiError(
                403,
                f"this route needs an API key with scope {scope}; this key has scope {key.scope}",
                "Authorization",
            )
        request.state.key_id = key.id
        return key

    api_key.__name__ = f"require_{scope}"
    return api_key


ReadKey = Annotated[StoredKey, Depends(require("read"))]
WriteKey = Annotated[StoredKey, Depends(require("write"))]
AdminKey = Annotated[StoredKey, Depends(require("admin"))]
