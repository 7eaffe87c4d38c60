"""`/v1/tools`: the tools agents may be given, with their argument schemas.

Two kinds, one list: `builtin` tools (`agent.config.TOOL_SCHEMAS`: the sample shop's, what the
model was trained to call; read-only) and `webhook` tools an admin registers here, which the
workers run as an HTTP POST to the agent's own backend (`workers.webhooks`, `workers.webhook_call`).
A webhook tool's name cannot be a built-in tool's (nor `webhook`, the task they all run as); its
parameters, URL and timeout are checked here as the router and the workers check them. Changes
reach the gateways within their `PARLEY_TOOLS_WEBHOOK_CACHE_S`. A tool an agent still lists
cannot be deleted (409 names the agents).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path

from admin.api.deps import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    ApiError,
    ReadKey,
    SettingsDep,
    ToolsDep,
    WriteKey,
)
from admin.models import ToolCreate, ToolPublic, ToolReplace, ToolUpdate, utc
from agent.config import TOOL, TOOL_SCHEMAS
from workers import webhooks
from workers.webhooks import WebhookTool

router = APIRouter(prefix="/tools", tags=["tools"], responses=AUTH_RESPONSES)
ToolName = Annotated[str, Path(pattern=TOOL, description="The tool's name.")]
BUILTIN = {409: {"description": "A built-in tool cannot be changed or replaced; or the name is taken."}}


def builtin_public(name: str) -> ToolPublic:
    schema = TOOL_SCHEMAS[name]
    return ToolPublic(
        name=name, kind="builtin", description=schema.get("description", ""), parameters=schema["parameters"]
    )


def webhook_public(tool: WebhookTool) -> ToolPublic:
    return ToolPublic(
        name=tool.name,
        kind="webhook",
        description=tool.description,
        parameters=tool.parameters,
        url=tool.url,
        method=tool.method,
        timeout_s=tool.timeout_s,
        secret_env=tool.secret_env,
        secret_header=tool.secret_header,
        created_at=utc(tool.created_at),
        updated_at=utc(tool.updated_at),
    )


def _not_builtin(name: str) -> None:
    if name in TOOL_SCHEMAS:
        raise ApiError(
            409, f"{name!r} is a built-in tool: it cannot be registered, changed or deleted", "name"
        )
    if name == webhooks.TASK:
        raise ApiError(409, f"{name!r} is reserved (the task every webhook tool runs as)", "name")


def checked(name: str, fields: dict[str, Any], allowed: tuple[str, ...], key_id: str | None) -> WebhookTool:
    """A webhook tool from validated request fields, its parameters and URL checked; 422 naming the
    field otherwise."""
    params = {
        arg: {k: v for k, v in spec.items() if v is not None}
        for arg, spec in (fields["parameters"] or {}).items()
    }
    problem = webhooks.parameters_problem(params)
    if problem is not None:
        raise ApiError(422, problem, "parameters")
    problem = webhooks.url_problem(fields["url"], allowed)
    if problem is not None:
        raise ApiError(422, problem, "url")
    return WebhookTool(
        name=name,
        description=fields["description"],
        parameters=params,
        url=fields["url"],
        timeout_s=float(fields["timeout_s"]),
        method=fields["method"],
        secret_env=fields["secret_env"],
        secret_header=fields["secret_header"],
        key_id=key_id,
    )


async def _webhook(tools: ToolsDep, name: str) -> WebhookTool:
    tool = await tools.get(name)
    if tool is None:
        raise ApiError(404, f"no tool {name!r}", "name")
    return tool


@router.get(
    "",
    response_model=list[ToolPublic],
    response_model_exclude_none=True,
    summary="Tools agents may call (scope read)",
)
async def list_tools(_: ReadKey, tools: ToolsDep) -> list[ToolPublic]:
    found = {name: builtin_public(name) for name in TOOL_SCHEMAS}
    for tool in await tools.list():
        found.setdefault(tool.name, webhook_public(tool))  # a built-in tool's name: the built-in one runs
    return [found[name] for name in sorted(found)]


@router.post(
    "",
    status_code=201,
    response_model=ToolPublic,
    response_model_exclude_none=True,
    responses=BUILTIN,
    summary="Register a webhook tool (scope write)",
)
async def create_tool(body: ToolCreate, key: WriteKey, tools: ToolsDep, settings: SettingsDep) -> ToolPublic:
    _not_builtin(body.name)
    tool = checked(body.name, body.model_dump(), settings.webhook_allowed_hosts, key.id)
    return webhook_public(await tools.create(tool))


@router.get(
    "/{name}",
    response_model=ToolPublic,
    response_model_exclude_none=True,
    responses=NOT_FOUND,
    summary="One tool (scope read)",
)
async def get_tool(name: ToolName, _: ReadKey, tools: ToolsDep) -> ToolPublic:
    if name in TOOL_SCHEMAS:
        return builtin_public(name)
    return webhook_public(await _webhook(tools, name))


@router.put(
    "/{name}",
    response_model=ToolPublic,
    response_model_exclude_none=True,
    responses={**NOT_FOUND, **BUILTIN},
    summary="Replace a webhook tool's definition (scope write)",
)
async def replace_tool(
    name: ToolName, body: ToolReplace, key: WriteKey, tools: ToolsDep, settings: SettingsDep
) -> ToolPublic:
    _not_builtin(name)
    tool = checked(name, body.model_dump(), settings.webhook_allowed_hosts, key.id)
    return webhook_public(await tools.update(name, lambda _: tool))


@router.patch(
    "/{name}",
    response_model=ToolPublic,
    response_model_exclude_none=True,
    responses={**NOT_FOUND, **BUILTIN},
    summary="Change some of a webhook tool's fields (scope write)",
)
async def update_tool(
    name: ToolName, body: ToolUpdate, key: WriteKey, tools: ToolsDep, settings: SettingsDep
) -> ToolPublic:
    _not_builtin(name)
    patch = body.model_dump(exclude_unset=True)
    for field, value in patch.items():
        if value is None and field != "secret_env":
            raise ApiError(422, f"{field} cannot be null", field)

    def change(current: WebhookTool) -> WebhookTool:
        fields = {**dataclasses.asdict(current), **patch}
        return checked(name, fields, settings.webhook_allowed_hosts, key.id)

    return webhook_public(await tools.update(name, change))


@router.delete(
    "/{name}",
    response_model=ToolPublic,
    response_model_exclude_none=True,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Delete a webhook tool no agent lists (scope write)",
)
async def delete_tool(name: ToolName, _: WriteKey, tools: ToolsDep) -> ToolPublic:
    _not_builtin(name)
    return webhook_public(await tools.delete(name))
