"""Settings of the calls a gateway answers with agents: one pydantic-settings class, `AgentSettings`.

Which model server a call's session opens, how long it and a tool call may take, which agent a call
that names none gets, how long a bridged call's room waits for its second party, and whether media
websockets must authenticate. The websocket gateway reads
them from `PARLEY_*` (`PARLEY_MODEL_URL=ws://gpu1:8765/session`), the SIP gateway from `PARLEY_SIP_*`
(`AgentSettings(_env_prefix="PARLEY_SIP_")`); keyword arguments win. Nothing here knows about
transports: ports, message limits and Twilio signatures are the transports' settings.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.config import SLUG


class AgentSettings(BaseSettings):
    """The agent side of a gateway's calls."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", frozen=True)

    model_url: str = Field(
        "ws://127.0.0.1:8765/session",
        description="The model server's session endpoint; every call opens one websocket session on it.",
    )
    model_connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to open a model-server session and get its ready message."
    )
    tool_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a tool call may take before the model is told it timed out."
    )
    default_agent: str = Field(
        "support",
        description=(
            'Agent of a call or POST /twiml that names none (Twilio: <Parameter name="agent">) and '
            "whose dialled number routes to none."
        ),
    )
    room_join_timeout_s: float = Field(
        120.0,
        gt=0,
        description=(
            "Seconds a bridged call's room waits for its second party; then the first party hears "
            "the notice and is hung up (close 4408)."
        ),
    )
    media_auth: Literal["auto", "required", "off"] = Field(
        "auto",
        description=(
            "Whether media websockets must authenticate (a stream token of the call's agent, or on "
            "/twilio a valid Twilio signature): `auto` once the admin API's Redis holds an API key "
            "or the gateway holds a Twilio auth token, `required` always, `off` never (development "
            "only; SIP calls are admitted by their trunk instead)."
        ),
    )

    @field_validator("model_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"model_url {value!r} must be a ws:// or wss:// URL with a host")
        return value

    @field_validator("default_agent")
    @classmethod
    def _agent_slug(cls, value: str) -> str:
        if not re.fullmatch(SLUG, value) or len(value) > 64:
            raise ValueError(f"default_agent {value!r} must be an agent name (lowercase slug)")
        return value
