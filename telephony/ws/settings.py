"""Settings of the websocket media gateway (`parley gateway`): one pydantic-settings class.

Every field can be set from the environment with the `PARLEY_` prefix (`PARLEY_PORT=9000`,
`PARLEY_MODEL_URL=ws://gpu1:8765/session`) or passed as keyword arguments, which win. Nothing
here knows about the model or the agents beyond the model server's address, which the gateway's
app layer hands to each call's session.
"""

from __future__ import annotations

import re
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def check_model_url(value: str) -> str:
    """The model server's URL as every gateway's settings accept it: ws:// or wss:// with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"model_url {value!r} must be a ws:// or wss:// URL with a host")
    return value


class Settings(BaseSettings):
    """The websocket media gateway's configuration."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Interface the gateway listens on.")
    port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="TCP port of /twilio, /stream, /twiml and /healthz; 0 picks a free one.",
    )
    model_url: str = Field(
        "ws://127.0.0.1:8765/session",
        description="The model server's session endpoint; every call opens one websocket session on it.",
    )
    public_url: Optional[str] = Field(
        None,
        description=(
            "Base URL Twilio reaches this gateway on (e.g. wss://voice.example.com), used for the "
            "<Stream url> in /twiml. When unset it is derived from the request's Host header and "
            "scheme (X-Forwarded-Proto honoured)."
        ),
    )
    default_agent: str = Field(
        "support", description='Agent for Twilio streams whose TwiML names none (<Parameter name="agent">).'
    )
    max_calls: int = Field(
        500,
        ge=1,
        description="Live calls this gateway takes; the next is closed with 1013 (try again later).",
    )
    max_message_bytes: int = Field(
        256 * 1024,
        ge=4096,
        description=(
            "Largest websocket message accepted from a caller's side; a larger one closes that call "
            "with 1009 (Twilio media messages are about 300 bytes; 256 KiB is 2.7 s of 48 kHz PCM16)."
        ),
    )
    start_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a new websocket may take to send its start message."
    )
    model_connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to open a model-server session and get its ready message."
    )
    hangup_drain_s: float = Field(
        1.0, ge=0, description="When the agent ends a call normally, seconds its queued audio may still play."
    )
    tool_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a tool call may take before the model is told it timed out."
    )
    log_dropped_messages: int = Field(
        5, ge=0, description="Malformed messages logged per call before only counting them (Twilio)."
    )
    twilio_auth_token: Optional[SecretStr] = Field(
        None,
        description=(
            "The Twilio account's auth token (PARLEY_TWILIO_AUTH_TOKEN). When set, POST /twiml needs a "
            "valid X-Twilio-Signature, and /twilio streams need one (or a stream token)."
        ),
    )
    media_auth: Literal["auto", "required", "off"] = Field(
        "auto",
        description=(
            "Whether media websockets must authenticate (a stream token of the call's agent, or on "
            "/twilio a valid Twilio signature): `auto` once the admin API's Redis holds an API key "
            "or a Twilio auth token is set, `required` always, `off` never (development only)."
        ),
    )

    @field_validator("model_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return check_model_url(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
            raise ValueError(f"public_url {value!r} must be a ws(s):// or http(s):// URL with a host")
        return value.rstrip("/")

    @field_validator("default_agent")
    @classmethod
    def _agent_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", value) or len(value) > 64:
            raise ValueError(f"default_agent {value!r} must be an agent name (lowercase slug)")
        return value
