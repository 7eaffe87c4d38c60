"""Agents, numbers and tools through the real admin process: defaults, validation with the
field named, versions, compare-and-set, deletion leaving numbers that say why they refuse."""

from __future__ import annotations

import pytest

from agent.config import SHIPPED_AGENTS, TOOL_SCHEMAS

pytestmark = pytest.mark.timeout(120)

AGENT = {
    "name": "front-desk",
    "languages": ["en"],
    "instructions": "Answer questions about opening hours.",
    "greeting": "Hello, front desk.",
    "tools": ["search_faq"],
}


def test_the_shipped_agents_are_the_defaults(admin, admin_key):
    with admin.client(admin_key) as api:
        agents = {a["name"]: a for a in api.get("/v1/agents").json()}
        for shipped in SHIPPED_AGENTS:
            assert agents[shipped.name]["instructions"] == shipped.instructions
            assert agents[shipped.name]["tools"] == list(shipped.tools)
            assert agents[shipped.name]["version"] == 1
        tools = api.get("/v1/tools").json()
        assert [t["name"] for t in tools] == sorted(TOOL_SCHEMAS)
        assert api.get("/v1/tools/lookup_order").json()["parameters"] == {
            "order_id": {"type": "string", "required": True}
        }
        assert api.get("/v1/tools/nope").status_code == 404


def test_create_validate_update_with_versions_and_delete(admin, admin_key):
    with admin.client(admin_key) as api:
        created = api.post("/v1/agents", json=AGENT)
        assert created.status_code == 201 and created.json()["version"] == 1
        assert api.post("/v1/agents", json=AGENT).status_code == 409

        # Validation names the field: pydantic's checks, AgentConfig's cross-field checks, tool schemas.
        r = api.post("/v1/agents", json={**AGENT, "name": "Bad Name"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
        r = api.post("/v1/agents", json={**AGENT, "name": "hand-off", "tools": ["transfer"]})
        assert r.status_code == 422 and "handoff_number" in r.json()["detail"][0]["msg"]
        r = api.post("/v1/agents", json={**AGENT, "name": "ghost", "tools": ["teleport"]})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "tools"]
        assert "unknown tool(s) teleport" in r.json()["detail"][0]["msg"]
        r = api.post("/v1/agents", json={**AGENT, "name": "interp", "translation_target": "en"})
        assert r.status_code == 422 and "translation_target" in r.json()["detail"][0]["msg"]
        r = api.post("/v1/agents", json={**AGENT, "name": "x", "colour": "blue"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]

        updated = api.patch("/v1/agents/front-desk", json={"greeting": "Hi again.", "expected_version": 1})
        assert updated.status_code == 200
        assert updated.json()["version"] == 2 and updated.json()["greeting"] == "Hi again."
        assert updated.json()["instructions"] == AGENT["instructions"]  # fields left out keep their value
        stale = api.patch("/v1/agents/front-desk", json={"greeting": "lost update", "expected_version": 1})
        assert stale.status_code == 409 and stale.json() == {
            "detail": "agent 'front-desk' is at version 2, not 1",
            "field": "expected_version",
        }
        r = api.patch("/v1/agents/front-desk", json={"tools": ["transfer"]})
        assert r.status_code == 422 and "handoff_number" in r.json()["detail"][0]["msg"]
        assert api.get("/v1/agents/front-desk").json()["version"] == 2  # a refused update changes nothing

        versions = api.get("/v1/agents/front-desk/versions").json()
        assert [(v["version"], v["change"], v["config"]["greeting"]) for v in versions] == [
            (1, "create", "Hello, front desk."),
            (2, "update", "Hi again."),
        ]
        assert versions[0]["key_id"] == admin_key.split("_")[1]
        assert (
            api.get("/v1/agents/front-desk/versions/1").json()["config"]["greeting"] == "Hello, front desk."
        )
        assert api.get("/v1/agents/front-desk/versions/9").status_code == 404

        assert (
            api.post("/v1/numbers", json={"number": "+15555550142", "agent": "front-desk"}).status_code == 201
        )
        r = api.post("/v1/numbers", json={"number": "+15555550142", "agent": "front-desk"})
        assert r.status_code == 409 and r.json()["field"] == "number"
        r = api.post("/v1/numbers", json={"number": "+15555550143", "agent": "nobody"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "agent"]
        r = api.post("/v1/numbers", json={"number": "555-0143", "agent": "support"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "number"]

        deleted = api.delete("/v1/agents/front-desk")
        assert deleted.json() == {"name": "front-desk", "orphaned_numbers": ["+15555550142"]}
        assert api.get("/v1/agents/front-desk").status_code == 404
        assert api.get("/v1/agents/front-desk/versions").status_code == 404
        number = api.get("/v1/numbers/+15555550142").json()
        assert number["agent"] == "front-desk" and number["agent_exists"] is False
        moved = api.patch("/v1/numbers/+15555550142", json={"agent": "support"})
        assert moved.status_code == 200 and moved.json()["agent_exists"] is True
        assert [n["number"] for n in api.get("/v1/numbers", params={"agent": "support"}).json()] == [
            "+15555550142"
        ]
        assert api.delete("/v1/numbers/+15555550142").status_code == 204
        assert api.get("/v1/numbers/+15555550142").status_code == 404
        assert api.delete("/v1/numbers/+15555550142").status_code == 404

        # A re-created agent starts a new history.
        again = api.post("/v1/agents", json=AGENT).json()
        assert again["version"] == 1 and len(api.get("/v1/agents/front-desk/versions").json()) == 1


def test_stream_tokens_are_shown_once_and_revocable(admin, admin_key):
    with admin.client(admin_key) as api:
        made = api.post("/v1/agents/support/stream-tokens", json={"label": "twilio line", "ttl_s": 3600})
        assert made.status_code == 201
        token = made.json()
        assert token["token"].startswith(f"pst_{token['id']}_") and token["expires_at"] is not None
        listed = api.get("/v1/agents/support/stream-tokens").json()
        assert token["id"] in {t["id"] for t in listed} and all("token" not in t for t in listed)
        revoked = api.delete(f"/v1/agents/support/stream-tokens/{token['id']}").json()
        assert revoked["revoked_at"] is not None
        assert api.delete(f"/v1/agents/translate-en-es/stream-tokens/{token['id']}").status_code == 404
        assert api.post("/v1/agents/nobody/stream-tokens", json={}).status_code == 404
