"""Settings of the tool workers (`parley worker`): one pydantic-settings class.

Every field can be set from the environment with the `PARLEY_WORKER_` prefix
(`PARLEY_WORKER_CONCURRENCY=4`) or passed as keyword arguments, which win; the Redis address is
the platform-wide `REDIS_URL`. The same settings configure the Celery app on both sides: the
gateway's tool router sends with them and the worker consumes with them, so the queues, the
serialisation and the redelivery timing always agree.

Redelivery: tasks are acknowledged late (after they ran). A task whose worker died stays in
kombu's "unacked" set and is put back on its queue by the next restore sweep of any live worker
once it is older than `visibility_timeout_s`; sweeps run every `restore_interval_s` (kombu's
defaults, 1 hour and 10 x 10 s, would leave a caller waiting for minutes). So a dead worker's task
runs again within `visibility_timeout_s + restore_interval_s`, and every task's hard time limit
must stay below `visibility_timeout_s`, or a task still running would be delivered a second time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FAQ_MARKDOWN = Path(__file__).with_name("faq.md")


class WorkerSettings(BaseSettings):
    """The tool workers' configuration (and the Celery client side's)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_WORKER_", extra="ignore", frozen=True)

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("REDIS_URL", "PARLEY_WORKER_REDIS_URL", "redis_url"),
        description="Redis of the task queues, the shop's orders, bookings and tool outcomes (REDIS_URL).",
    )
    concurrency: int = Field(2, ge=1, le=64, description="Tool processes per worker (Celery prefork pool).")
    queues: tuple[str, ...] = Field(
        ("tools", "bookings", "webhooks"),
        min_length=1,
        description=(
            "Queues this worker consumes: `tools` (lookups), `bookings` (tools that write) and "
            "`webhooks` (registered webhook tools, which wait on other services)."
        ),
    )
    soft_time_limit_s: float = Field(
        3.0,
        gt=0,
        description="Default soft limit of a tool: it is told to stop and answers 'tool timed out'.",
    )
    time_limit_s: float = Field(
        5.0, gt=0, description="Default hard limit of a tool: its process is killed and replaced."
    )
    visibility_timeout_s: float = Field(
        8.0,
        gt=0,
        description="Seconds a delivered, unacknowledged task (a dead worker's) waits to be delivered again.",
    )
    restore_interval_s: float = Field(
        1.0, gt=0, le=10, description="Seconds between a worker's sweeps for dead workers' tasks."
    )
    max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries of a tool that failed on Redis being unreachable (nothing else is retried).",
    )
    retry_backoff_s: float = Field(
        0.25, gt=0, description="First retry's delay; each further retry waits twice as long (at most 2 s)."
    )
    result_ttl_s: int = Field(
        86_400, ge=60, description="Seconds a tool's outcome is kept under its idempotency key."
    )
    io_timeout_s: float = Field(2.0, gt=0, description="Timeout of every Redis command a tool makes.")
    faq_path: Path = Field(FAQ_MARKDOWN, description="The shop's FAQ as markdown, searched with SQLite FTS5.")
    webhook_allowed_hosts: tuple[str, ...] = Field(
        (),
        validation_alias=AliasChoices(
            "PARLEY_WEBHOOK_ALLOWED_HOSTS", "PARLEY_WORKER_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts"
        ),
        description=(
            "Hosts webhook tools may call (PARLEY_WEBHOOK_ALLOWED_HOSTS, a JSON list): names, `*.suffix`, "
            "IPs or networks; private and loopback addresses only when listed. Empty: no webhook is called."
        ),
    )
    webhook_max_timeout_s: float = Field(
        5.0,
        ge=0.5,
        le=20.0,
        description=(
            "Longest a webhook tool may take; a tool registered with a longer timeout_s is cut to this. "
            "Its task's limits are this + 1 s (soft) and + 2 s (hard), so it needs visibility_timeout_s "
            ">= this + 3 s."
        ),
    )

    @model_validator(mode="after")
    def _limits(self) -> WorkerSettings:
        if self.soft_time_limit_s >= self.time_limit_s:
            raise ValueError(
                f"soft_time_limit_s ({self.soft_time_limit_s}) must be below "
                f"time_limit_s ({self.time_limit_s})"
            )
        if self.time_limit_s + 1.0 > self.visibility_timeout_s:
            raise ValueError(
                f"visibility_timeout_s ({self.visibility_timeout_s}) must exceed time_limit_s "
                f"({self.time_limit_s}) by at least 1 s, or a running task is delivered twice"
            )
        if self.webhook_max_timeout_s + 3.0 > self.visibility_timeout_s:
            raise ValueError(
                f"visibility_timeout_s ({self.visibility_timeout_s}) must exceed webhook_max_timeout_s "
                f"({self.webhook_max_timeout_s}) by at least 3 s (the webhook task's hard limit + 1 s)"
            )
        return self

    @property
    def webhook_limits_s(self) -> tuple[float, float]:
        """(soft, hard) time limits of the webhook task."""
        return self.webhook_max_timeout_s + 1.0, self.webhook_max_timeout_s + 2.0

    @property
    def redelivery_s(self) -> float:
        """Longest time before a dead worker's task runs again."""
        return self.visibility_timeout_s + self.restore_interval_s
