"""Every Redis key the admin storage uses (all under `parley:`; the tool workers' keys are in
`workers.store` and `workers.protocol`, and none of these collide with them).

| key | type | holds |
|---|---|---|
| `parley:cfg:agents` | set | agent names |
| `parley:cfg:agents:seeded` | string | set once the shipped agents were written (never again) |
| `parley:cfg:agent:<name>` | hash | `config` (AgentConfig JSON), `version`, `created_at`, `updated_at` |
| `parley:cfg:agent:<name>:versions` | list | every version, oldest first (JSON) |
| `parley:cfg:agent:<name>:deleted` | string | when a deleted agent was deleted (its numbers say so) |
| `parley:cfg:numbers` | set | configured numbers (E.164) |
| `parley:cfg:number:<e164>` | hash | `agent`, `label`, `translation` (a line's JSON or ""), |
| | | `created_at`, `updated_at` |
| `parley:cfg:apikeys` / `:active` | set | every API key id / the ids not revoked |
| `parley:cfg:apikey:<id>` | hash | `name`, `scope`, `salt`, `hash`, `cost`, `created_at`, `revoked_at` |
| `parley:cfg:streamtokens:<agent>` | set | the agent's stream token ids |
| `parley:cfg:streamtoken:<id>` | hash | `agent`, `label`, `salt`, `hash`, `cost`, `created_at`, |
| | | `expires_at`, `revoked_at` |
| `parley:cfg:webhook-tools` | set | registered webhook tool names (the key names: `workers.webhooks`) |
| `parley:cfg:webhook-tool:<name>` | string | a webhook tool (`workers.webhooks.WebhookTool` JSON) |
| `parley:cfg:settings` | hash | `call_retention_s` (written by the admin API, read by gateways) |
| `parley:call:rec:<id>` | string | a finished call's record (JSON), expiring after the retention |
| `parley:call:sum:<id>` | string | the same call's summary (JSON, what listings show), expiring with it |
| `parley:call:index` / `:agent:<name>` | zset | finished call ids by start time (all / one agent) |
| `parley:call:live` | zset | live call ids, scored by when their gateway's lease on them runs out |
| `parley:call:live:<id>` | string | a live call's summary (JSON), expiring with the lease |
| `parley:call:control` | pub/sub | hang-up commands to the gateways |
| `parley:metrics:counters` | hash | calls started/ended, skipped turns, tool calls |
| `parley:metrics:hist:<name>` | hash | histogram bucket counts, `sum` and `count` |
| `parley:ratelimit:<id>:<window>` | string | requests (and `:fail:` failed checks) of one key in one window |
"""

from __future__ import annotations

P = "parley:"
AGENTS = f"{P}cfg:agents"
AGENTS_SEEDED = f"{P}cfg:agents:seeded"
NUMBERS = f"{P}cfg:numbers"
API_KEYS = f"{P}cfg:apikeys"
API_KEYS_ACTIVE = f"{P}cfg:apikeys:active"
SETTINGS = f"{P}cfg:settings"
CALL_INDEX = f"{P}call:index"
LIVE = f"{P}call:live"
CONTROL = f"{P}call:control"
COUNTERS = f"{P}metrics:counters"


def agent(name: str) -> str:
    return f"{P}cfg:agent:{name}"


def agent_versions(name: str) -> str:
    return f"{P}cfg:agent:{name}:versions"


def agent_deleted(name: str) -> str:
    return f"{P}cfg:agent:{name}:deleted"


def number(e164: str) -> str:
    return f"{P}cfg:number:{e164}"


def api_key(ident: str) -> str:
    return f"{P}cfg:apikey:{ident}"


def stream_tokens(agent_name: str) -> str:
    return f"{P}cfg:streamtokens:{agent_name}"


def stream_token(ident: str) -> str:
    return f"{P}cfg:streamtoken:{ident}"


def call_record(call_id: str) -> str:
    return f"{P}call:rec:{call_id}"


def call_summary(call_id: str) -> str:
    return f"{P}call:sum:{call_id}"


def call_index(agent_name: str | None = None) -> str:
    return CALL_INDEX if agent_name is None else f"{CALL_INDEX}:agent:{agent_name}"


def live_call(call_id: str) -> str:
    return f"{LIVE}:{call_id}"


def histogram(name: str) -> str:
    return f"{P}metrics:hist:{name}"


def rate(ident: str, window: int, failures: bool = False) -> str:
    return f"{P}ratelimit:{'fail:' if failures else ''}{ident}:{window}"
