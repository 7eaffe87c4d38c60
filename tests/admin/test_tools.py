"""Webhook tools through the real admin process: registration, validation with the field named,
built-in tools kept read-only, PUT and PATCH, deletion refused while an agent lists the tool, and
agents that may list registered tools (and still not unknown ones)."""

from __future__ import annotations

import pytest

from agent.config import TOOL_SCHEMAS
from tests.admin.conftest import AdminProcess, make_key

pytestmark = pytest.mark.timeout(120)

TOOL = {
    "name": "book_appointment",
    "description": "Book a clinic appointment.",
    "parameters": {
        "date": {"type": "string", "required": True},
        "slot": {"type": "string", "required": True, "enum": ["morning", "afternoon"]},
    },
    "url": "https://clinic.example/hooks/book",
    "timeout_s": 4,
}


@pytest.fixture(scope="module")
def admin(redis_server, tmp_path_factory):
    process = AdminProcess(
        redis_server.url,
        tmp_path_factory.mktemp("admin") / "admin.log",
        model_health_urls='["http://127.0.0.1:9/healthz"]',
        webhook_allowed_hosts='["127.0.0.1", "*.internal.example", "10.0.0.0/8"]',
    ).start()
    yield process
    process.stop()


def problem(response, status: int = 422) -> tuple[list, str]:
    assert response.status_code == status, response.text
    if status == 422:
        [error] = response.json()["detail"]
        return error["loc"], error["msg"]
    return [response.json()["field"]], response.json()["detail"]


def test_register_read_change_and_delete_a_webhook_tool(admin, admin_key):
    with admin.client(admin_key) as api:
        created = api.post("/v1/tools", json=TOOL)
        assert created.status_code == 201, created.text
        tool = created.json()
        assert tool["kind"] == "webhook" and tool["method"] == "POST" and tool["timeout_s"] == 4
        assert tool["parameters"]["date"] == {"type": "string", "required": True}
        assert api.get("/v1/tools/book_appointment").json() == tool
        listed = {t["name"]: t for t in api.get("/v1/tools").json()}
        assert set(listed) == {*TOOL_SCHEMAS, "book_appointment"}
        assert listed["lookup_order"] == {
            "name": "lookup_order",
            "kind": "builtin",
            "description": TOOL_SCHEMAS["lookup_order"]["description"],
            "parameters": {"order_id": {"type": "string", "required": True}},
        }
        assert problem(api.post("/v1/tools", json=TOOL), 409)[0] == ["name"]

        patched = api.patch("/v1/tools/book_appointment", json={"timeout_s": 8.5, "secret_env": None})
        assert patched.status_code == 200 and patched.json()["timeout_s"] == 8.5
        assert patched.json()["url"] == TOOL["url"]  # fields left out keep their value
        replaced = api.put(
            "/v1/tools/book_appointment",
            json={
                "url": "http://127.0.0.1:9000/book",
                "parameters": {},
                "secret_env": "PARLEY_WEBHOOK_SECRET_CLINIC",
            },
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["parameters"] == {} and replaced.json()["timeout_s"] == 5.0
        assert replaced.json()["secret_env"] == "PARLEY_WEBHOOK_SECRET_CLINIC"
        assert api.put("/v1/tools/nothing_here", json={"url": TOOL["url"]}).status_code == 404
        assert api.patch("/v1/tools/nothing_here", json={"timeout_s": 1}).status_code == 404

        agent = {
            "name": "clinic",
            "languages": ["en"],
            "instructions": "Book.",
            "tools": ["book_appointment"],
        }
        assert api.post("/v1/agents", json=agent).status_code == 201
        field, reason = problem(api.delete("/v1/tools/book_appointment"), 409)
        assert field == ["name"] and "used by agent(s) clinic" in reason
        assert api.delete("/v1/agents/clinic").status_code == 200
        deleted = api.delete("/v1/tools/book_appointment")
        assert deleted.status_code == 200 and deleted.json()["name"] == "book_appointment"
        assert api.get("/v1/tools/book_appointment").status_code == 404
        assert api.delete("/v1/tools/book_appointment").status_code == 404


def test_agents_may_list_registered_tools_and_not_unknown_ones(admin, admin_key):
    with admin.client(admin_key) as api:
        assert api.post("/v1/tools", json={**TOOL, "name": "check_in"}).status_code == 201
        agent = {"name": "front", "languages": ["en"], "instructions": "Check in.", "tools": ["check_in"]}
        assert api.post("/v1/agents", json=agent).status_code == 201
        loc, msg = problem(api.patch("/v1/agents/front", json={"tools": ["check_in", "teleport"]}))
        assert loc == ["body", "tools"] and "unknown tool(s) teleport" in msg and "check_in" in msg
        assert api.patch("/v1/agents/front", json={"tools": ["check_in", "end_call"]}).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"url": "ftp://clinic.example/x"}, "url", "https:// URL"),
        ({"url": "http://clinic.example/x"}, "url", "allowlist"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url", "link-local"),
        ({"url": "https://[fe80::1]/x"}, "url", "link-local"),
        ({"url": "https://192.168.1.5/x"}, "url", "private"),
        ({"url": "https://127.0.0.2/x"}, "url", "private, loopback"),
        ({"url": "https://user:pw@clinic.example/x"}, "url", "user or password"),
        ({"url": "https://clinic.example/x#frag"}, "url", "fragment"),
        ({"url": "not a url"}, "url", "https:// URL"),
        ({"parameters": {"Date": {"type": "string", "required": True}}}, "parameters", "lowercase"),
        (
            {"parameters": {"date": {"type": "float", "required": True}}},
            "parameters",
            "'string' or 'integer'",
        ),
        ({"parameters": {"date": {"type": "string"}}}, "parameters", "required"),
        (
            {"parameters": {"n": {"type": "integer", "required": True, "enum": ["one"]}}},
            "parameters",
            "integer",
        ),
        (
            {"parameters": {"n": {"type": "string", "required": True, "enum": ["a", "a"]}}},
            "parameters",
            "twice",
        ),
        (
            {"parameters": {"n": {"type": "string", "required": True, "pattern": "^a+$"}}},
            "parameters",
            "Extra inputs",  # no pattern: a registered regex could stall the gateway's event loop
        ),
        ({"timeout_s": 0.1}, "timeout_s", "greater than or equal"),
        ({"timeout_s": 60}, "timeout_s", "less than or equal"),
        ({"method": "GET"}, "method", "POST"),
        ({"secret_env": "REDIS_URL"}, "secret_env", "pattern"),
        ({"secret_header": "Host"}, "secret_header", "pattern"),
        ({"name": "Book"}, "name", "pattern"),
    ],
)
def test_a_bad_registration_names_its_field(admin, admin_key, change, field, words):
    with admin.client(admin_key) as api:
        loc, msg = problem(api.post("/v1/tools", json={**TOOL, "name": "bad_tool", **change}))
        assert loc[:2] == ["body", field] and words in msg
        assert api.get("/v1/tools/bad_tool").status_code == 404


def test_allowlisted_hosts_may_be_http_or_private(admin, admin_key):
    with admin.client(admin_key) as api:
        for name, url in [
            ("via_name", "http://billing.internal.example/hook"),
            ("via_net", "https://10.1.2.3/hook"),
            ("via_ip", "http://127.0.0.1:8081/hook"),
        ]:
            r = api.post("/v1/tools", json={**TOOL, "name": name, "url": url})
            assert r.status_code == 201, r.text


@pytest.mark.parametrize("name", ["lookup_order", "end_call", "webhook"])
def test_built_in_tools_cannot_be_registered_changed_or_deleted(admin, admin_key, name):
    with admin.client(admin_key) as api:
        assert problem(api.post("/v1/tools", json={**TOOL, "name": name}), 409)[0] == ["name"]
        assert api.put(f"/v1/tools/{name}", json={"url": TOOL["url"]}).status_code == 409
        assert api.patch(f"/v1/tools/{name}", json={"timeout_s": 2}).status_code == 409
        assert api.delete(f"/v1/tools/{name}").status_code == 409
    assert name == "webhook" or name in TOOL_SCHEMAS


def test_changing_tools_needs_scope_write(admin, redis_server):
    with admin.client(make_key(redis_server.url, "read", "reader")) as api:
        assert api.get("/v1/tools").status_code == 200
        assert api.post("/v1/tools", json={**TOOL, "name": "read_only"}).status_code == 403
        assert api.delete("/v1/tools/read_only").status_code == 403
    with admin.client() as anonymous:
        assert anonymous.post("/v1/tools", json={**TOOL, "name": "anon"}).status_code == 401
