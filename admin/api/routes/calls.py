"""`/v1/calls`: finished calls (filtered, paginated), live calls, one call, and hang-up.

Records are written by the gateways when calls end (`parley.admin_link`) and expire after the
retention period. A call's record holds its transcript, timeline and tool calls; listings show
summaries only. Hang-up publishes a command the gateway holding the call obeys: the call then
ends as ended by "admin" once its queued audio has played.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query

from admin.api.deps import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    ApiError,
    CallsDep,
    ReadKey,
    SettingsDep,
    WriteKey,
)
from admin.models import CallPage, CallPublic, CallSummary, HangupAccepted, utc
from agent.config import PHONE, SLUG

router = APIRouter(prefix="/calls", tags=["calls"], responses=AUTH_RESPONSES)
CallId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="Parley's id of the call.")]


def _times(data: dict) -> dict:
    out = dict(data)
    out["started_at"] = utc(out.get("started_at"))
    out["ended_at"] = utc(out.get("ended_at"))
    return out


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


@router.get(
    "", response_model=CallPage, summary="Finished calls, newest first, filtered and paginated (scope read)"
)
async def list_calls(
    _: ReadKey,
    calls: CallsDep,
    settings: SettingsDep,
    agent: Annotated[str | None, Query(pattern=SLUG, max_length=40)] = None,
    protocol: Annotated[str | None, Query(pattern=r"^(twilio|native|sip)$")] = None,
    number: Annotated[str | None, Query(pattern=PHONE, description="The dialled number.")] = None,
    ended_by: Annotated[str | None, Query(pattern=r"^(caller|agent|model|admin)$")] = None,
    since: Annotated[dt.datetime | None, Query(description="Calls started at or after this time.")] = None,
    until: Annotated[dt.datetime | None, Query(description="Calls started at or before this time.")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> CallPage:
    limit = min(limit, settings.max_page_size)
    items, total = await calls.list(
        agent=agent,
        protocol=protocol,
        number=number,
        ended_by=ended_by,
        since=_epoch(since),
        until=_epoch(until),
        offset=offset,
        limit=limit,
    )
    return CallPage(items=[CallSummary(**_times(i)) for i in items], total=total, offset=offset, limit=limit)


@router.get("/live", response_model=list[CallSummary], summary="Calls going on now (scope read)")
async def live_calls(_: ReadKey, calls: CallsDep) -> list[CallSummary]:
    return [CallSummary(**_times(c)) for c in await calls.live()]


@router.get(
    "/{call_id}",
    response_model=CallPublic,
    responses=NOT_FOUND,
    summary="One call: with transcript, timeline and tool calls once it has ended (scope read)",
)
async def get_call(call_id: CallId, _: ReadKey, calls: CallsDep) -> CallPublic:
    record = await calls.get(call_id)
    if record is None:
        raise ApiError(404, f"no call {call_id!r} (or its record has expired)", "call_id")
    return CallPublic(**_times(record))


@router.post(
    "/{call_id}/hangup",
    status_code=202,
    response_model=HangupAccepted,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Hang up a live call (scope write)",
)
async def hang_up(call_id: CallId, _: WriteKey, calls: CallsDep) -> HangupAccepted:
    if not await calls.is_live(call_id):
        if await calls.get(call_id) is not None:
            raise ApiError(409, f"call {call_id!r} has ended already", "call_id")
        raise ApiError(404, f"no live call {call_id!r}", "call_id")
    heard = await calls.request_hangup(call_id, "hung up through the admin API")
    if not heard:
        await calls.drop_live(call_id)
        raise ApiError(
            409, f"no gateway holds call {call_id!r} any more; it was removed from the live calls", "call_id"
        )
    return HangupAccepted(call_id=call_id, status="hangup requested", gateways=heard)
