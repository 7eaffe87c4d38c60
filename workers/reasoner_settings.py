"""Which reasoner the background model runs, from the environment (`PARLEY_REASONER_*`): the local
llama.cpp model (workers.reasoner_local, the default) or an OpenAI-compatible endpoint
(workers.reasoner.EndpointReasoner)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workers.reasoner import EndpointReasoner, Reasoner
from workers.reasoner_local import LocalReasoner


class ReasonerSettings(BaseSettings):
    """The background model's reasoner. Every field from the environment with `PARLEY_REASONER_`."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_REASONER_", extra="ignore", frozen=True)

    url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible endpoint; unset: the local model in-process."
    )
    model: str = Field(
        "", description="The endpoint's model name; for the local model, a GGUF path (empty: SmolLM2-135M)."
    )
    adapter: str = Field(
        "shipped",
        description=(
            "The local model's LoRA adapter GGUF: 'shipped' (Parley's fine-tuned adapter over the "
            "packaged SmolLM2), 'none', or a path."
        ),
    )
    api_key: str | None = Field(None, description="Bearer token for the endpoint, if it wants one.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Endpoint request timeout (seconds).")
    response_format: str = Field(
        "auto",
        pattern="^(auto|json_schema|json_object)$",
        description="How the schema is sent (EndpointReasoner).",
    )
    threads: int = Field(2, ge=1, le=64, description="Threads per local model instance.")
    instances: int = Field(1, ge=1, le=16, description="Local model: decisions run at once.")
    contexts: int = Field(
        8,
        ge=1,
        le=64,
        description="Local model: calls whose history stays evaluated (a llama.cpp context, ~65 MB each).",
    )
    max_reply_tokens: int = Field(60, ge=8, le=512, description="Tokens a reply may take.")

    @model_validator(mode="after")
    def _check(self) -> ReasonerSettings:
        if self.url is None and self.api_key is not None:
            raise ValueError("api_key is set but url is not (the local model takes no key)")
        return self


def reasoner_from_settings(settings: ReasonerSettings | None = None) -> Reasoner:
    s = settings or ReasonerSettings()
    if s.url:
        return EndpointReasoner(
            s.url,
            s.model,
            api_key=s.api_key,
            timeout_s=s.timeout_s,
            max_reply_tokens=s.max_reply_tokens,
            response_format=s.response_format,
        )
    adapter = None if s.adapter == "none" else s.adapter
    return LocalReasoner(
        s.model or None,
        adapter=adapter,
        n_threads=s.threads,
        instances=s.instances,
        contexts=s.contexts,
        max_reply_tokens=s.max_reply_tokens,
    )
