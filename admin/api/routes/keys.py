"""`/v1/keys`: API keys (scope admin).

A key is created with a name and a scope and returned in full once; Redis keeps only a salted
scrypt hash of it. Revoking keeps the record (with `revoked_at`) and refuses the key from the next
request on; the last active admin key cannot be revoked (409), so the API cannot lock itself out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from admin.api.deps import AUTH_RESPONSES, CONFLICT, NOT_FOUND, AdminKey, ApiError, CredentialsDep
from admin.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, utc
from admin.store.credentials import StoredKey

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_RESPONSES)
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's id (the part after pk_).")]


def key_public(key: StoredKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=key.id,
        name=key.name,
        scope=key.scope,
        created_at=utc(key.created_at),
        revoked_at=utc(key.revoked_at),
    )


@router.get("", response_model=list[ApiKeyPublic], summary="List API keys, without secrets (scope admin)")
async def list_keys(_: AdminKey, credentials: CredentialsDep) -> list[ApiKeyPublic]:
    return [key_public(k) for k in await credentials.list_keys()]


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key; the key is in this response only (scope admin)",
)
async def create_key(body: ApiKeyCreate, _: AdminKey, credentials: CredentialsDep) -> ApiKeyCreated:
    key, plaintext = await credentials.create_key(body.name, body.scope)
    return ApiKeyCreated(**key_public(key).model_dump(), key=plaintext)


@router.get(
    "/{key_id}", response_model=ApiKeyPublic, responses=NOT_FOUND, summary="One API key (scope admin)"
)
async def get_key(key_id: KeyId, _: AdminKey, credentials: CredentialsDep) -> ApiKeyPublic:
    key = await credentials.get_key(key_id)
    if key is None:
        raise ApiError(404, f"no API key {key_id!r}", "key_id")
    return key_public(key)


@router.delete(
    "/{key_id}",
    response_model=ApiKeyPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Revoke an API key (scope admin)",
)
async def revoke_key(key_id: KeyId, _: AdminKey, credentials: CredentialsDep) -> ApiKeyPublic:
    return key_public(await credentials.revoke_key(key_id))
