"""Restart Redis and the admin process: nothing configured is lost (Redis's append-only file), and
`parley serve`'s first admin key is made once."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from admin.store.credentials import CredentialStore
from parley.serve import first_admin_key
from procs.redis_server import EmbeddedRedis
from tests.admin.conftest import AdminProcess, make_key

pytestmark = pytest.mark.timeout(120)


def snapshot(api) -> dict:
    agents = api.get("/v1/agents").json()
    return {
        "agents": agents,
        "versions": {a["name"]: api.get(f"/v1/agents/{a['name']}/versions").json() for a in agents},
        "numbers": api.get("/v1/numbers").json(),
        "keys": api.get("/v1/keys").json(),
        "tokens": {a["name"]: api.get(f"/v1/agents/{a['name']}/stream-tokens").json() for a in agents},
    }


def token_valid(redis_url: str, agent: str, token: str) -> bool:
    async def go() -> bool:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await CredentialStore(client).token_valid(agent, token)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_restarting_redis_and_the_admin_process_loses_nothing(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    admin = AdminProcess(server.url, tmp_path / "admin.log")
    try:
        key = make_key(server.url, "admin")
        admin.start()
        with admin.client(key) as api:
            api.post(
                "/v1/agents",
                json={
                    "name": "kept",
                    "languages": ["en", "es"],
                    "instructions": "Be kept.",
                    "tools": ["lookup_order"],
                    "voice": "v1",
                },
            )
            api.patch("/v1/agents/kept", json={"voice": "v2"})
            api.patch("/v1/agents/kept", json={"greeting": "Still here."})
            api.delete("/v1/agents/translate-en-es")
            api.post("/v1/numbers", json={"number": "+15555550177", "agent": "kept", "label": "main line"})
            reader = api.post("/v1/keys", json={"name": "reader", "scope": "read"}).json()
            gone = api.post("/v1/keys", json={"name": "gone", "scope": "write"}).json()
            api.delete(f"/v1/keys/{gone['id']}")
            token = api.post("/v1/agents/kept/stream-tokens", json={"label": "line"}).json()["token"]
            before = snapshot(api)
        assert [a["name"] for a in before["agents"]] == ["kept", "support", "translate-es-en"]

        server.stop(remove=False)  # SIGTERM: Redis writes its append-only file out and exits
        with admin.client(key) as api:  # while Redis is down: 503, saying so
            assert api.get("/healthz").status_code == 503
            r = api.get("/v1/agents")
            assert r.status_code == 503 and r.json()["detail"].startswith("storage unavailable")
        server.start()
        with admin.client(key) as api:  # the same admin process reconnects
            assert api.get("/healthz").status_code == 200 and snapshot(api) == before
        admin.restart()

        with admin.client(key) as api:
            assert snapshot(api) == before
            assert api.get("/v1/agents/kept").json()["version"] == 3
        with admin.client(reader["key"]) as api:
            assert api.get("/v1/agents").status_code == 200  # keys still check against their stored hashes
        with admin.client(gone["key"]) as api:
            assert api.get("/v1/agents").json()["detail"] == "API key revoked"
        assert token_valid(server.url, "kept", token)
    finally:
        admin.stop()
        server.stop()


def test_serve_makes_a_first_admin_key_only_when_there_is_none(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        key = first_admin_key(server.url)
        assert key is not None and key.startswith("pk_")
        assert first_admin_key(server.url) is None  # the next start prints nothing
        admin = AdminProcess(server.url, tmp_path / "admin.log").start()
        try:
            with admin.client(key) as api:
                assert api.get("/v1/keys").json()[0]["scope"] == "admin"
        finally:
            admin.stop()
