"""Settings of the websocket media gateway (`parley gateway`): one pydantic-settings class.

Every field can be set from the environment with the `PARLEY_` prefix (`PARLEY_PORT=9000`) or
passed as keyword arguments, which win. Only the transport's own business is here: where it
listens, its limits and timeouts, and the Twilio auth token that signs its requests. Nothing here
knows what answers the calls (the model server, agents, tools, the media-auth policy: those are
configured above the transport, in agent/settings.py, from the same `PARLEY_` prefix).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    public_url: str | None = Field(
        None,
        description=(
            "Base URL Twilio reaches this gateway on (e.g. wss://voice.example.com), used for the "
            "<Stream url> in /twiml. When unset it is derived from the request's Host header and "
            "scheme (X-Forwarded-Proto honoured)."
        ),
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
    hangup_drain_s: float = Field(
        1.0, ge=0, description="When the agent ends a call normally, seconds its queued audio may still play."
    )
    log_dropped_messages: int = Field(
        5, ge=0, description="Malformed messages logged per call before only counting them (Twilio)."
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        description=(
            "The Twilio account's auth token (PARLEY_TWILIO_AUTH_TOKEN). When set, POST /twiml needs a "
            "valid X-Twilio-Signature, and the signature of each /twilio handshake is checked and "
            "handed to the connector (`CallInfo.auth['twilio_signature']`), whose policy needs it "
            "(or a stream token)."
        ),
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
            raise ValueError(f"public_url {value!r} must be a ws(s):// or http(s):// URL with a host")
        return value.rstrip("/")
