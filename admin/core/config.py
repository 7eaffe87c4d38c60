"""Settings of the admin API (`parley admin`): one pydantic-settings class.

Every field can be set from the environment with the `PARLEY_ADMIN_` prefix
(`PARLEY_ADMIN_PORT=9000`) or passed as keyword arguments, which win; the Redis address is the
platform-wide `REDIS_URL`. The call retention is also written to Redis at start-up, where the
gateways read it when they store a call's record.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DAY_S = 86_400


class Settings(BaseSettings):
    """The admin API's configuration."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_ADMIN_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface the admin API listens on.")
    port: int = Field(8090, ge=0, le=65535, description="TCP port of the admin API; 0 picks a free one.")
    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("REDIS_URL", "PARLEY_ADMIN_REDIS_URL", "redis_url"),
        description="Redis holding agents, numbers, keys and call records (REDIS_URL).",
    )
    call_retention_s: int = Field(
        7 * DAY_S, ge=60, description="Seconds a finished call's record (transcript, timeline) is kept."
    )
    rate_limit_requests: int = Field(
        600, ge=1, description="Requests one API key may make per rate-limit window; more get 429."
    )
    rate_limit_window_s: int = Field(60, ge=1, le=3600, description="Length of the rate-limit window.")
    model_health_urls: tuple[str, ...] = Field(
        ("http://127.0.0.1:8765/healthz",),
        description="Model servers' /healthz, scraped by GET /metrics for tick p50/p99 and late frames.",
    )
    worker_queues: tuple[str, ...] = Field(
        ("tools", "bookings", "webhooks"),
        description="Celery queues whose depth GET /metrics reports (Redis LLEN).",
    )
    scrape_timeout_s: float = Field(1.0, gt=0, le=10, description="Timeout of one model-server scrape.")
    metrics_require_key: bool = Field(
        False, description="Whether GET /metrics needs an API key (scope read); /healthz never does."
    )
    key_hash_cost: int = Field(
        2**14,
        ge=2**10,
        le=2**20,
        description="scrypt cost (N) of the salted hashes API keys and stream tokens are stored as.",
    )
    webhook_allowed_hosts: tuple[str, ...] = Field(
        (),
        validation_alias=AliasChoices(
            "PARLEY_WEBHOOK_ALLOWED_HOSTS", "PARLEY_ADMIN_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts"
        ),
        description=(
            "Hosts a webhook tool's http:// URL, or private or loopback IP, may name (a JSON list, the "
            "workers' PARLEY_WEBHOOK_ALLOWED_HOSTS); https:// to public hosts needs no entry here, but "
            "the workers call only hosts on their own list."
        ),
    )
    max_page_size: int = Field(
        200, ge=1, le=1000, description="Most calls one page of GET /v1/calls returns."
    )

    @field_validator("model_health_urls")
    @classmethod
    def _http_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"model_health_urls: {url!r} must be an http(s):// URL with a host")
        return value

    @model_validator(mode="after")
    def _cost(self) -> Settings:
        if self.key_hash_cost & (self.key_hash_cost - 1):
            raise ValueError(f"key_hash_cost ({self.key_hash_cost}) must be a power of two")
        return self
