"""`/v1/tools`: the tools agents may be given, with their argument schemas
(`agent.config.TOOL_SCHEMAS`: the sample shop's tools, what the model was trained to call)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from admin.api.deps import AUTH_RESPONSES, NOT_FOUND, ApiError, ReadKey
from admin.models import ToolPublic
from agent.config import TOOL, TOOL_SCHEMAS

router = APIRouter(prefix="/tools", tags=["tools"], responses=AUTH_RESPONSES)


def tool_public(name: str) -> ToolPublic:
    schema = TOOL_SCHEMAS[name]
    return ToolPublic(name=name, description=schema.get("description", ""), parameters=schema["parameters"])


@router.get("", response_model=list[ToolPublic], summary="Tools agents may call (scope read)")
async def list_tools(_: ReadKey) -> list[ToolPublic]:
    return [tool_public(name) for name in sorted(TOOL_SCHEMAS)]


@router.get(
    "/{name}", response_model=ToolPublic, responses=NOT_FOUND, summary="One tool's schema (scope read)"
)
async def get_tool(name: Annotated[str, Path(pattern=TOOL)], _: ReadKey) -> ToolPublic:
    if name not in TOOL_SCHEMAS:
        raise ApiError(404, f"no tool {name!r}", "name")
    return tool_public(name)
