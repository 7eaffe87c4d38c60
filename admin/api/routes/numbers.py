"""`/v1/numbers`: which agent answers each dialled number (E.164).

The gateways read a number's agent at the start of each call (Twilio: the `number` parameter the
gateway's TwiML sets from `To`; SIP: the request-URI's number). A number must name an existing
agent when it is created or changed; if that agent is deleted later, the number stays and its
calls are refused with the reason (`agent_exists` is then false).

A number with a `translation` is a translation line (`agent.lines.TranslationLine`): the number's
agent must interpret, and the line's `callee_agent` must exist and interpret back (en>es with
es>en); both are checked whenever the number or its line changes (422 naming the field).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from admin.api.deps import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    AgentsDep,
    ApiError,
    NumbersDep,
    ReadKey,
    WriteKey,
)
from admin.models import NumberCreate, NumberPublic, NumberUpdate, utc
from admin.store.numbers import UNCHANGED, StoredNumber
from agent.config import PHONE, SLUG, mirror_problem
from agent.lines import TranslationLine

router = APIRouter(prefix="/numbers", tags=["numbers"], responses=AUTH_RESPONSES)
Number = Annotated[str, Path(pattern=PHONE, description="The dialled number, E.164 (+15555550123).")]


async def number_public(stored: StoredNumber, agents: AgentsDep) -> NumberPublic:
    return NumberPublic(
        number=stored.number,
        agent=stored.agent,
        label=stored.label,
        translation=stored.translation,
        agent_exists=await agents.get(stored.agent) is not None,
        created_at=utc(stored.created_at),
        updated_at=utc(stored.updated_at),
    )


async def _agent_exists(agents: AgentsDep, name: str) -> None:
    if await agents.get(name) is None:
        raise ApiError(422, f"no agent {name!r}: create it first", "agent")


async def _line_fits(agents: AgentsDep, agent: str, line: TranslationLine) -> None:
    """A translation line needs an interpreter as the number's agent and a callee agent that
    exists and interprets back; 422 naming the field otherwise."""
    caller = await agents.get(agent)
    if caller is None:
        raise ApiError(422, f"no agent {agent!r}: create it first", "agent")
    if caller.config.translation_target is None:
        raise ApiError(422, f"agent {agent!r} does not interpret: a translation line needs one", "agent")
    callee = await agents.get(line.callee_agent)
    if callee is None:
        raise ApiError(422, f"no agent {line.callee_agent!r}: create it first", "translation.callee_agent")
    problem = mirror_problem(caller.config, callee.config)
    if problem is not None:
        raise ApiError(422, problem, "translation.callee_agent")


@router.get("", response_model=list[NumberPublic], summary="List numbers (scope read)")
async def list_numbers(
    _: ReadKey,
    numbers: NumbersDep,
    agents: AgentsDep,
    agent: Annotated[str | None, Query(pattern=SLUG, max_length=40, description="Only this agent's.")] = None,
) -> list[NumberPublic]:
    return [await number_public(n, agents) for n in await numbers.list(agent)]


@router.post(
    "",
    status_code=201,
    response_model=NumberPublic,
    responses=CONFLICT,
    summary="Route a number to an agent (scope write)",
)
async def create_number(
    body: NumberCreate, _: WriteKey, numbers: NumbersDep, agents: AgentsDep
) -> NumberPublic:
    await _agent_exists(agents, body.agent)
    line = body.translation
    if line is not None:
        await _line_fits(agents, body.agent, line)
    translation = line.model_dump(mode="json") if line is not None else None
    return await number_public(await numbers.create(body.number, body.agent, body.label, translation), agents)


@router.get("/{number}", response_model=NumberPublic, responses=NOT_FOUND, summary="One number (scope read)")
async def get_number(number: Number, _: ReadKey, numbers: NumbersDep, agents: AgentsDep) -> NumberPublic:
    stored = await numbers.get(number)
    if stored is None:
        raise ApiError(404, f"no number {number}", "number")
    return await number_public(stored, agents)


@router.patch(
    "/{number}",
    response_model=NumberPublic,
    responses=NOT_FOUND,
    summary="Point a number at another agent, or relabel it; applies to the next call (scope write)",
)
async def update_number(
    number: Number, body: NumberUpdate, _: WriteKey, numbers: NumbersDep, agents: AgentsDep
) -> NumberPublic:
    if body.agent is not None:
        await _agent_exists(agents, body.agent)
    translation: dict | None | object = UNCHANGED
    line = body.translation
    if "translation" in body.model_fields_set:
        translation = line.model_dump(mode="json") if line is not None else None
    elif body.agent is not None:  # the number's line stays: it must fit the new agent
        stored = await numbers.get(number)
        if stored is not None and stored.translation is not None:
            line = TranslationLine.model_validate(stored.translation)
    if line is not None:
        await _line_fits(agents, body.agent or await _current_agent(numbers, number), line)
    updated = await numbers.update(number, agent=body.agent, label=body.label, translation=translation)
    return await number_public(updated, agents)


async def _current_agent(numbers: NumbersDep, number: str) -> str:
    stored = await numbers.get(number)
    if stored is None:
        raise ApiError(404, f"no number {number}", "number")
    return stored.agent


@router.delete(
    "/{number}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Stop routing a number (scope write)",
)
async def delete_number(number: Number, _: WriteKey, numbers: NumbersDep) -> Response:
    await numbers.delete(number)
    return Response(status_code=204)
