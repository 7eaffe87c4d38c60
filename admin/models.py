"""The admin API's request and response models: per resource a Create, an Update and a Public
variant (the FastAPI full-stack template's pattern), plus the error body.

Agent fields are `agent.config.AgentConfig`'s, with its constraints; a created or updated agent
is then built as an `AgentConfig`, so it is validated exactly as the shipped agents are (the
cross-field checks included). Times are UTC datetimes. Secrets appear only in `ApiKeyCreated.key`
and `StreamTokenCreated.token`, once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from agent.config import LANGUAGE, PHONE, SLUG, TOOL, ExampleTurn
from agent.lines import TranslationLine
from workers.webhooks import (
    MAX_ENUM,
    MAX_PARAMETERS,
    MAX_URL,
    SECRET_ENV,
    SECRET_HEADER,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
)

Scope = Literal["read", "write", "admin"]


def utc(timestamp: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp is not None else None


class Problem(BaseModel):
    """An error: what is wrong, and the field it concerns when there is one."""

    detail: str = Field(description="What is wrong, in words.")
    field: str | None = Field(None, description="The request field (or header) at fault.")


# --- agents ----------------------------------------------------------------------------------------
class _AgentFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    languages: list[str] = Field(
        min_length=1, max_length=8, description="ISO 639 codes the caller may speak."
    )
    instructions: str = Field(min_length=1, max_length=4000, description="Persona and instructions.")
    greeting: str = Field("", max_length=300, description="What the agent says first.")
    tools: list[str] = Field([], max_length=16, description="Tools the agent may call (GET /v1/tools).")
    voice: str = Field("default", max_length=64, description="Voice the agent speaks with.")
    translation_target: str | None = Field(
        None, pattern=LANGUAGE, description="Language the agent speaks the caller's words in (interpreting)."
    )
    handoff_number: str | None = Field(
        None, pattern=PHONE, description="E.164 number `transfer` hands the caller to."
    )
    examples: list[ExampleTurn] = Field(
        [],
        max_length=40,
        description="A demo call the background model's reasoner is shown first (the agent's tools only).",
    )
    bridge_ducking_db: float | None = Field(
        None,
        ge=0,
        le=60,
        description=(
            "Bridged calls: the speaker's own voice under this interpreter, this many dB down (null: off)."
        ),
    )


class AgentCreate(_AgentFields):
    name: str = Field(pattern=SLUG, max_length=40, description="Slug calls and numbers name the agent by.")


class AgentUpdate(BaseModel):
    """Fields to change; those left out keep their value (null clears an optional one)."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] | None = Field(None, min_length=1, max_length=8)
    instructions: str | None = Field(None, min_length=1, max_length=4000)
    greeting: str | None = Field(None, max_length=300)
    tools: list[str] | None = Field(None, max_length=16)
    voice: str | None = Field(None, max_length=64)
    translation_target: str | None = Field(None, pattern=LANGUAGE)
    handoff_number: str | None = Field(None, pattern=PHONE)
    examples: list[ExampleTurn] | None = Field(None, max_length=40)
    bridge_ducking_db: float | None = Field(None, ge=0, le=60)
    expected_version: int | None = Field(
        None, ge=1, description="Refuse (409) unless the agent is at this version (compare-and-set)."
    )


class AgentConfigPublic(BaseModel):
    name: str
    languages: list[str]
    instructions: str
    greeting: str
    tools: list[str]
    voice: str
    translation_target: str | None
    handoff_number: str | None
    examples: list[ExampleTurn] = []
    bridge_ducking_db: float | None = None


class AgentPublic(AgentConfigPublic):
    version: int = Field(description="Raised by one on every update.")
    created_at: dt.datetime
    updated_at: dt.datetime


class AgentVersionPublic(BaseModel):
    version: int
    change: Literal["create", "update"]
    created_at: dt.datetime
    key_id: str | None = Field(description="The API key that made this version (null: shipped default).")
    config: AgentConfigPublic


# --- stream tokens ---------------------------------------------------------------------------------
class StreamTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field("", max_length=100, description="What the token is for.")
    ttl_s: int | None = Field(
        None, ge=60, le=10 * 365 * 86_400, description="Seconds until the token expires (null: never)."
    )


class StreamTokenPublic(BaseModel):
    id: str
    agent: str
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class StreamTokenCreated(StreamTokenPublic):
    token: str = Field(description="The token, shown this once: media websockets send it as a Bearer token.")


# --- numbers ---------------------------------------------------------------------------------------
class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=PHONE, description="The dialled number, E.164 (+15555550123).")
    agent: str = Field(pattern=SLUG, max_length=40, description="The agent that answers it.")
    label: str = Field("", max_length=100)
    translation: TranslationLine | None = Field(
        None,
        description="Make the number a translation line: its agent interprets the caller, and the "
        "caller is bridged to a second party reached as this says.",
    )


class NumberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(None, pattern=SLUG, max_length=40)
    label: str | None = Field(None, max_length=100)
    translation: TranslationLine | None = Field(
        None, description="A new translation line (replaces the old one whole); null: a plain number again."
    )


class NumberPublic(BaseModel):
    number: str
    agent: str
    label: str
    translation: TranslationLine | None = Field(description="The translation line, or null: a plain number.")
    agent_exists: bool = Field(description="False when the agent was deleted: the number refuses calls.")
    created_at: dt.datetime
    updated_at: dt.datetime


# --- API keys --------------------------------------------------------------------------------------
class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="Who or what uses the key.")
    scope: Scope = Field(
        description="read: GET; write: also change agents and numbers, hang up; admin: also keys."
    )


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    scope: Scope
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key, shown this once; only a salted hash of it is stored.")


# --- calls -----------------------------------------------------------------------------------------
class CallEndPublic(BaseModel):
    by: str = Field(description="caller | agent | model | admin")
    reason: str
    code: int


class CallSummary(BaseModel):
    call_id: str
    status: Literal["live", "ended"]
    agent: str
    agent_version: int = Field(
        description="The agent's version the call ran with (0: a shipped default, not stored)."
    )
    protocol: str
    number: str | None = Field(None, description="The dialled number, when the call carried one.")
    caller: str | None = Field(None, description="The caller's number, when the transport passed it on.")
    external_id: str | None = Field(None, description="The transport's id (Twilio callSid).")
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    duration_s: float | None = None
    ended: CallEndPublic | None = None
    model: str | None = None


class TranscriptEntry(BaseModel):
    role: str
    start_ms: int
    end_ms: int
    text: str


class Timeline(BaseModel):
    counters: dict[str, int] = {}
    first_ms: dict[str, int] = {}
    events: list[dict[str, Any]] = Field([], description="Timestamped events (at_ms since the call began).")
    events_dropped: int = 0


class ToolCallPublic(BaseModel):
    id: str | None
    name: str | None
    arguments: dict[str, Any] | None
    arguments_raw: str | None
    at_ms: int | None
    outcome: Literal["result", "error", "action", "none"]
    latency_ms: int | None = Field(description="Tool call out of the model -> answer back in.")
    work_ms: float | None
    pending_notices: int


class CallPublic(CallSummary):
    agent_config: AgentConfigPublic | None = Field(None, description="The agent as the call ran with it.")
    frames_sent: int = 0
    turns_received: int = 0
    unanswered_frames: int = 0
    transcript: list[TranscriptEntry] = []
    timeline: Timeline = Timeline()
    tool_calls: list[ToolCallPublic] = []
    turn_latency_ms: list[int] = []
    bridge: dict[str, Any] | None = Field(
        None,
        description=(
            "A bridged call's (two parties, an interpreter each way): `room`, `legs` (each party's "
            "call id, agent, protocol, times and who ended it) and `interpreters` (each direction's "
            "own summary, transcript and timeline)."
        ),
    )
    dial: dict[str, Any] | None = Field(
        None,
        description=(
            "A translation line's call: how party B was reached (`mode` fixed | dtmf) and what came "
            "of it (`status` answered | busy | rejected | no_answer | not_allowed | malformed | "
            "too_long | unavailable | failed | cancelled, `sip_status`, `reason`)."
        ),
    )


class CallPage(BaseModel):
    items: list[CallSummary]
    total: int = Field(description="Calls matching the filters (finished calls, newest first).")
    offset: int
    limit: int


class HangupAccepted(BaseModel):
    call_id: str
    status: Literal["hangup requested"]
    gateways: int = Field(description="Gateways that heard the command.")


# --- tools ---------------------------------------------------------------------------------------
class ToolParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "integer"]
    required: bool
    description: str | None = Field(None, max_length=200, description="What the argument is (webhook tools).")
    enum: list[StrictStr | StrictInt] | None = Field(
        None, min_length=1, max_length=MAX_ENUM, description="The only values allowed (webhook tools)."
    )


class _WebhookFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=500, description="What the tool does, for the reasoning model.")
    parameters: dict[str, ToolParameter] = Field(
        {}, max_length=MAX_PARAMETERS, description="Arguments by name (lowercase identifiers)."
    )
    url: str = Field(
        min_length=1,
        max_length=MAX_URL,
        description="https:// URL the workers POST to (http:// only to hosts on the allowlist).",
    )
    method: Literal["POST"] = Field("POST", description="HTTP method: POST.")
    timeout_s: float = Field(
        5.0,
        ge=TIMEOUT_MIN_S,
        le=TIMEOUT_MAX_S,
        description="Seconds the webhook may take (the workers cut it to their webhook_max_timeout_s).",
    )
    secret_env: str | None = Field(
        None,
        pattern=SECRET_ENV,
        description="Worker environment variable whose value is sent in secret_header (not stored here).",
    )
    secret_header: str = Field(
        "Authorization", pattern=SECRET_HEADER, description="Header the secret is sent in."
    )


class ToolCreate(_WebhookFields):
    """A webhook tool to register."""

    name: str = Field(pattern=TOOL, description="The tool's name (not a built-in tool's).")


class ToolReplace(_WebhookFields):
    """A webhook tool's whole new definition (PUT)."""


class ToolUpdate(BaseModel):
    """Fields to change; those left out keep their value (null clears secret_env)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=500)
    parameters: dict[str, ToolParameter] | None = Field(None, max_length=MAX_PARAMETERS)
    url: str | None = Field(None, min_length=1, max_length=MAX_URL)
    method: Literal["POST"] | None = None
    timeout_s: float | None = Field(None, ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S)
    secret_env: str | None = Field(None, pattern=SECRET_ENV)
    secret_header: str | None = Field(None, pattern=SECRET_HEADER)


class ToolPublic(BaseModel):
    name: str = Field(pattern=TOOL)
    kind: Literal["builtin", "webhook"] = Field(
        description="builtin: shipped with the workers, read-only; webhook: registered here."
    )
    description: str
    parameters: dict[str, ToolParameter]
    url: str | None = Field(None, description="Webhook tools: where the workers POST.")
    method: Literal["POST"] | None = None
    timeout_s: float | None = None
    secret_env: str | None = None
    secret_header: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
