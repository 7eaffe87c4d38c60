"""API keys through the real admin process: scopes, refusals, revocation, rate limits, and that
Redis never holds a key in a form that gives it back."""

from __future__ import annotations

import pytest

from tests.admin.conftest import AdminProcess, make_key

pytestmark = pytest.mark.timeout(120)


def test_missing_malformed_wrong_and_under_scoped_keys_are_refused(admin, admin_key):
    with admin.client() as anonymous:
        r = anonymous.get("/v1/agents")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {
            "detail": "missing API key: send the header Authorization: Bearer <key>",
            "field": "Authorization",
        }
        r = anonymous.get("/v1/agents", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    with admin.client("not-a-key") as bad:
        r = bad.get("/v1/agents")
        assert r.status_code == 401 and r.json()["detail"].startswith("malformed API key")
    ident = admin_key.split("_")[1]
    wrong = f"pk_{ident}_" + "A" * 43  # a real key's id with another secret
    with admin.client(wrong) as client:
        r = client.get("/v1/agents")
        assert r.status_code == 401 and r.json() == {
            "detail": "unknown or wrong API key",
            "field": "Authorization",
        }

    with admin.client(admin_key) as root:
        created = root.post("/v1/keys", json={"name": "dashboard", "scope": "read"})
        assert created.status_code == 201
        body = created.json()
        assert body["scope"] == "read" and body["key"].startswith(f"pk_{body['id']}_")
        listed = root.get("/v1/keys").json()
        assert body["id"] in {k["id"] for k in listed} and all("key" not in k for k in listed)
        writer = root.post("/v1/keys", json={"name": "ops", "scope": "write"}).json()["key"]
    with admin.client(body["key"]) as reader:
        assert reader.get("/v1/agents").status_code == 200
        assert reader.get("/v1/calls").status_code == 200
        r = reader.post("/v1/numbers", json={"number": "+15555550111", "agent": "support"})
        assert r.status_code == 403
        assert r.json() == {
            "detail": "this route needs an API key with scope write; this key has scope read",
            "field": "Authorization",
        }
        assert reader.get("/v1/keys").status_code == 403
    with admin.client(writer) as ops:
        assert ops.post("/v1/numbers", json={"number": "+15555550111", "agent": "support"}).status_code == 201
        assert ops.delete("/v1/numbers/+15555550111").status_code == 204
        r = ops.post("/v1/keys", json={"name": "sneaky", "scope": "admin"})
        assert r.status_code == 403 and "scope admin" in r.json()["detail"]


def test_a_revoked_key_is_refused_from_the_next_request_and_the_last_admin_key_stays(admin, admin_key):
    with admin.client(admin_key) as root:
        made = root.post("/v1/keys", json={"name": "temp", "scope": "read"}).json()
        with admin.client(made["key"]) as temp:
            assert temp.get("/v1/tools").status_code == 200
            revoked = root.delete(f"/v1/keys/{made['id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            r = temp.get("/v1/tools")
            assert r.status_code == 401 and r.json()["detail"] == "API key revoked"
        assert root.get(f"/v1/keys/{made['id']}").json()["revoked_at"] is not None
        assert root.get("/v1/keys/0123456789ab").status_code == 404
        # Revoking every admin key but one works; the last one is kept (409), so the API never
        # locks itself out.
        for key in root.get("/v1/keys").json():
            if key["scope"] == "admin" and key["revoked_at"] is None and key["id"] != admin_key.split("_")[1]:
                assert root.delete(f"/v1/keys/{key['id']}").status_code == 200
        r = root.delete(f"/v1/keys/{admin_key.split('_')[1]}")
        assert (
            r.status_code == 409
            and "last active admin key" in r.json()["detail"]
            and r.json()["field"] == "key_id"
        )


def _everything_in_redis(client) -> bytes:
    """Every key name and every value in the Redis, whatever its type, as one blob."""
    blob = []
    for key in client.scan_iter(count=1000):
        blob.append(key)
        kind = client.type(key)
        if kind == b"string":
            blob.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                blob += [field, value]
        elif kind == b"list":
            blob += client.lrange(key, 0, -1)
        elif kind == b"set":
            blob += list(client.smembers(key))
        elif kind == b"zset":
            blob += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(blob)


def test_stored_keys_and_stream_tokens_cannot_be_read_back_from_redis(admin, admin_key, redis_server):
    with admin.client(admin_key) as root:
        keys = [
            root.post("/v1/keys", json={"name": f"k{i}", "scope": s}).json()["key"]
            for i, s in enumerate(("read", "write", "admin"))
        ]
        token = root.post("/v1/agents/support/stream-tokens", json={"label": "test"}).json()["token"]
    secrets = [admin_key, *keys, token]
    with redis_server.client() as client:
        blob = _everything_in_redis(client)
    assert blob  # the scan saw the store
    for secret in secrets:
        secret_part = secret.split("_", 2)[2]
        assert secret.encode() not in blob and secret_part.encode() not in blob
        ident = secret.split("_")[1]
        assert ident.encode() in blob  # the record is there, by id: only the secret is missing
    with redis_server.client() as client:
        record = client.hgetall(f"parley:cfg:apikey:{keys[0].split('_')[1]}")
    assert set(record) == {b"name", b"scope", b"created_at", b"salt", b"hash", b"cost"}
    assert (
        len(bytes.fromhex(record[b"salt"].decode())) == 16
        and len(bytes.fromhex(record[b"hash"].decode())) == 32
    )


def test_the_rate_limit_is_per_key_and_answers_429_with_retry_after(redis_server, tmp_path):
    limited = AdminProcess(
        redis_server.url, tmp_path / "admin.log", rate_limit_requests=5, rate_limit_window_s=3600
    ).start()
    try:
        first, second = make_key(redis_server.url, "read"), make_key(redis_server.url, "read")
        with limited.client(first) as a, limited.client(second) as b:
            assert [a.get("/v1/tools").status_code for _ in range(5)] == [200] * 5
            r = a.get("/v1/tools")
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            assert r.json()["detail"].startswith("rate limit of this API key exceeded")
            assert b.get("/v1/tools").status_code == 200  # another key has its own window
    finally:
        limited.stop()
