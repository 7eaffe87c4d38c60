"""The agent side of a gateway's settings: the environment names deployments already use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.settings import AgentSettings
from telephony.sip.settings import SipSettings
from telephony.ws.settings import Settings

ENV = {
    "MODEL_URL": ("wss://gpu1:8765/session", "model_url", "wss://gpu1:8765/session"),
    "MODEL_CONNECT_TIMEOUT_S": ("2.5", "model_connect_timeout_s", 2.5),
    "TOOL_TIMEOUT_S": ("12", "tool_timeout_s", 12.0),
    "DEFAULT_AGENT": ("shop-line", "default_agent", "shop-line"),
    "MEDIA_AUTH": ("required", "media_auth", "required"),
}


def test_defaults():
    s = AgentSettings()
    assert (s.model_url, s.model_connect_timeout_s, s.tool_timeout_s, s.default_agent, s.media_auth) == (
        "ws://127.0.0.1:8765/session",
        5.0,
        30.0,
        "support",
        "auto",
    )


@pytest.mark.parametrize("prefix", ["PARLEY_", "PARLEY_SIP_"])
def test_env_names_of_the_websocket_and_the_sip_gateway(monkeypatch, prefix):
    for name, (value, _, _) in ENV.items():
        monkeypatch.setenv(prefix + name, value)
    s = AgentSettings(_env_prefix=prefix)
    assert {field: getattr(s, field) for _, field, _ in ENV.values()} == {f: v for _, f, v in ENV.values()}


def test_the_transports_settings_hold_none_of_it():
    for transport in (Settings, SipSettings):
        assert not set(transport.model_fields) & {field for _, field, _ in ENV.values()}


def test_bad_values_name_the_field():
    with pytest.raises(ValidationError, match="model_url 'http://x' must be a ws:// or wss:// URL"):
        AgentSettings(model_url="http://x")
    with pytest.raises(ValidationError, match="default_agent 'Not An Agent' must be an agent name"):
        AgentSettings(default_agent="Not An Agent")
    with pytest.raises(ValidationError, match="media_auth"):
        AgentSettings(media_auth="sometimes")
