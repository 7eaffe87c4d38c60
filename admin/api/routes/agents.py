"""`/v1/agents`: agents with their version history, and their stream tokens.

An agent is validated as an `agent.config.AgentConfig` (what the gateways run), and its tools
must be built-in or registered webhook tools (`GET /v1/tools`). Every create and update is a
version; the gateways read the current one at the start of each call. Deleting an agent leaves
its numbers in place, refusing calls, and the response lists them.

Stream tokens authenticate media websockets for one agent once API keys exist (scope admin to
manage: they are credentials).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ValidationError

from admin.api.deps import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    AdminKey,
    AgentsDep,
    ApiError,
    CredentialsDep,
    NumbersDep,
    ReadKey,
    ToolsDep,
    WriteKey,
)
from admin.models import (
    AgentConfigPublic,
    AgentCreate,
    AgentPublic,
    AgentUpdate,
    AgentVersionPublic,
    StreamTokenCreate,
    StreamTokenCreated,
    StreamTokenPublic,
    utc,
)
from admin.store.agents import AgentVersion, StoredAgent
from admin.store.credentials import StoredToken
from agent.config import SLUG, TOOL_SCHEMAS, AgentConfig

router = APIRouter(prefix="/agents", tags=["agents"], responses=AUTH_RESPONSES)
AgentName = Annotated[str, Path(pattern=SLUG, max_length=40, description="The agent's name.")]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The stream token's id.")]


class AgentDeleted(BaseModel):
    name: str
    orphaned_numbers: list[str]


def config_public(config: AgentConfig) -> AgentConfigPublic:
    return AgentConfigPublic(**config.model_dump(mode="json"))


def agent_public(stored: StoredAgent) -> AgentPublic:
    return AgentPublic(
        **stored.config.model_dump(mode="json"),
        version=stored.version,
        created_at=utc(stored.created_at),
        updated_at=utc(stored.updated_at),
    )


def version_public(version: AgentVersion) -> AgentVersionPublic:
    return AgentVersionPublic(
        version=version.version,
        change=version.change,
        created_at=utc(version.created_at),
        key_id=version.key_id,
        config=config_public(version.config),
    )


def token_public(token: StoredToken) -> StreamTokenPublic:
    return StreamTokenPublic(
        id=token.id,
        agent=token.agent,
        label=token.label,
        created_at=utc(token.created_at),
        expires_at=utc(token.expires_at),
        revoked_at=utc(token.revoked_at),
    )


def validation_error(exc: ValidationError) -> ApiError:
    """An AgentConfig's refusal as a 422 in FastAPI's own shape (loc, msg, type per error)."""
    errors = [
        {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()
    ]
    error = ApiError(422, "; ".join(e["msg"] for e in errors), errors[0]["loc"][-1] if errors else None)
    error.errors = errors
    return error


def build(data: dict, webhook_tools: Iterable[str] = ()) -> AgentConfig:
    """An `AgentConfig` from request fields whose tools are built-in or registered webhook tools."""
    known = {*TOOL_SCHEMAS, *webhook_tools}
    unknown = [t for t in data.get("tools") or () if t not in known]
    if unknown:
        raise ApiError(
            422, f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", "tools"
        )
    try:
        return AgentConfig(**data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _get(agents: AgentsDep, name: str) -> StoredAgent:
    stored = await agents.get(name)
    if stored is None:
        raise ApiError(404, f"no agent {name!r}", "name")
    return stored


@router.get("", response_model=list[AgentPublic], summary="List agents (scope read)")
async def list_agents(_: ReadKey, agents: AgentsDep) -> list[AgentPublic]:
    return [agent_public(a) for a in await agents.list()]


@router.post(
    "",
    status_code=201,
    response_model=AgentPublic,
    responses=CONFLICT,
    summary="Create an agent (scope write)",
)
async def create_agent(body: AgentCreate, key: WriteKey, agents: AgentsDep, tools: ToolsDep) -> AgentPublic:
    config = build(body.model_dump(), await tools.names())
    return agent_public(await agents.create(config, key.id))


@router.get("/{name}", response_model=AgentPublic, responses=NOT_FOUND, summary="One agent (scope read)")
async def get_agent(name: AgentName, _: ReadKey, agents: AgentsDep) -> AgentPublic:
    return agent_public(await _get(agents, name))


@router.patch(
    "/{name}",
    response_model=AgentPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Update an agent: a new version, used from the next call on (scope write)",
)
async def update_agent(
    name: AgentName, body: AgentUpdate, key: WriteKey, agents: AgentsDep, tools: ToolsDep
) -> AgentPublic:
    patch = body.model_dump(exclude_unset=True)
    expected = patch.pop("expected_version", None)
    webhook_tools = await tools.names()

    def change(current: AgentConfig) -> AgentConfig:
        return build({**current.model_dump(), **patch}, webhook_tools)

    return agent_public(await agents.update(name, change, expected_version=expected, key_id=key.id))


@router.delete(
    "/{name}",
    response_model=AgentDeleted,
    responses=NOT_FOUND,
    summary="Delete an agent; its numbers then refuse calls (scope write)",
)
async def delete_agent(name: AgentName, _: WriteKey, agents: AgentsDep, numbers: NumbersDep) -> AgentDeleted:
    await agents.delete(name)
    orphaned = [n.number for n in await numbers.list(agent=name)]
    return AgentDeleted(name=name, orphaned_numbers=orphaned)


@router.get(
    "/{name}/versions",
    response_model=list[AgentVersionPublic],
    responses=NOT_FOUND,
    summary="An agent's versions, oldest first (scope read)",
)
async def list_versions(name: AgentName, _: ReadKey, agents: AgentsDep) -> list[AgentVersionPublic]:
    return [version_public(v) for v in await agents.versions(name)]


@router.get(
    "/{name}/versions/{version}",
    response_model=AgentVersionPublic,
    responses=NOT_FOUND,
    summary="One version of an agent (scope read)",
)
async def get_version(
    name: AgentName, version: Annotated[int, Path(ge=1, le=2**31)], _: ReadKey, agents: AgentsDep
) -> AgentVersionPublic:
    for item in await agents.versions(name):
        if item.version == version:
            return version_public(item)
    raise ApiError(404, f"agent {name!r} has no version {version} (kept: the last 100)", "version")


@router.post(
    "/{name}/stream-tokens",
    status_code=201,
    response_model=StreamTokenCreated,
    responses=NOT_FOUND,
    summary="Create a stream token for the agent's media websockets, shown once (scope admin)",
)
async def create_stream_token(
    name: AgentName, body: StreamTokenCreate, _: AdminKey, agents: AgentsDep, credentials: CredentialsDep
) -> StreamTokenCreated:
    await _get(agents, name)
    token, plaintext = await credentials.create_token(name, body.label, body.ttl_s)
    return StreamTokenCreated(**token_public(token).model_dump(), token=plaintext)


@router.get(
    "/{name}/stream-tokens",
    response_model=list[StreamTokenPublic],
    responses=NOT_FOUND,
    summary="The agent's stream tokens, without secrets (scope admin)",
)
async def list_stream_tokens(
    name: AgentName, _: AdminKey, agents: AgentsDep, credentials: CredentialsDep
) -> list[StreamTokenPublic]:
    await _get(agents, name)
    return [token_public(t) for t in await credentials.list_tokens(name)]


@router.delete(
    "/{name}/stream-tokens/{token_id}",
    response_model=StreamTokenPublic,
    responses=NOT_FOUND,
    summary="Revoke a stream token (scope admin)",
)
async def revoke_stream_token(
    name: AgentName, token_id: TokenId, _: AdminKey, credentials: CredentialsDep
) -> StreamTokenPublic:
    return token_public(await credentials.revoke_token(name, token_id))
