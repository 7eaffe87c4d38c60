"""Webhook tools end to end: registered through the real admin process, called by the real router,
run by a real `parley worker`, answered by a real HTTP server standing in for the agent's backend,
all on a real Redis.

The worker's allowlist is 127.0.0.1 only; the admin's also accepts `localhost`, so a tool the
admin takes can still be one the worker refuses. The backend records every request it gets, so
each test can say how many reached it (none, for a refused host).
"""

from __future__ import annotations

import json
import threading
import time
import types
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from agent.config import check_tool_call
from agent.model_client import ToolCall
from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from tests.admin.conftest import AdminProcess, make_key
from tests.workers.conftest import Worker
from workers import protocol, webhooks
from workers.webhooks import WebhookTool

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cret-clinic-token"
MARKER = "Wednesday-7731"  # an argument value that must never reach a log line
BACKEND_SECRET = "stack trace with a patient's name"  # a body that must never be echoed


class Backend:
    """The agent's backend: a threaded HTTP server on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.release = threading.Event()  # /slow answers once this is set (or after 30 s)
        self.got = threading.Condition()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with backend.got:
                    backend.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    backend.got.notify_all()
                if self.path == "/book":
                    args = body["arguments"]
                    n = sum(r["path"] == "/book" for r in backend.requests)
                    self._send(200, json.dumps({"confirmation": f"APT-{n}", "slot": args["slot"]}).encode())
                elif self.path == "/slow":
                    backend.release.wait(30)
                    self._send(200, b'{"late": true}')
                elif self.path == "/fail":
                    self._send(500, json.dumps({"error": BACKEND_SECRET}).encode())
                elif self.path == "/big":
                    self._send(200, json.dumps({"blob": "x" * (webhooks.MAX_RESPONSE_BYTES + 10)}).encode())
                elif self.path == "/stream":  # no Content-Length: the body ends when the connection does
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"blob": "' + b"y" * (webhooks.MAX_RESPONSE_BYTES + 10) + b'"}')
                elif self.path == "/text":
                    self._send(200, b"booked!", "text/plain")
                elif self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/book")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(404, b"{}")

            def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def hits(self, path: str) -> list[dict]:
        with self.got:
            return [r for r in self.requests if r["path"] == path]

    def wait_for(self, path: str, count: int, timeout: float = 10) -> None:
        with self.got:
            if not self.got.wait_for(lambda: len(self.hits(path)) >= count, timeout):
                raise AssertionError(f"the backend never got {count} request(s) on {path}")


@pytest.fixture(scope="module")
def backend():
    b = Backend()
    b.thread.start()
    yield b
    b.release.set()
    b.server.shutdown()
    b.server.server_close()


@pytest.fixture(scope="module")
def webhook_worker(redis_server, tmp_path_factory):
    w = Worker(
        redis_server.url,
        tmp_path_factory.mktemp("webhook-worker") / "worker.log",
        env={"PARLEY_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]', "PARLEY_WEBHOOK_SECRET_CLINIC": SECRET},
    ).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def admin(redis_server, tmp_path_factory):
    process = AdminProcess(
        redis_server.url,
        tmp_path_factory.mktemp("admin") / "admin.log",
        model_health_urls='["http://127.0.0.1:9/healthz"]',
        webhook_allowed_hosts='["127.0.0.1", "localhost"]',
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(admin, redis_server):
    with admin.client(make_key(redis_server.url, "write", "webhook tests")) as client:
        yield client


@pytest.fixture
async def router(redis_server):
    r = CeleryToolRouter(ToolRouterSettings(redis_url=redis_server.url, webhook_cache_s=0))
    await r.wait_ready(10)
    yield r
    await r.close()


BOOK_APPOINTMENT = {
    "name": "book_appointment",
    "description": "Book a clinic appointment on a date, morning or afternoon.",
    "parameters": {
        "date": {"type": "string", "required": True, "description": "The day, e.g. Wednesday"},
        "slot": {"type": "string", "required": True, "enum": ["morning", "afternoon"]},
        "patients": {"type": "integer", "required": False},
    },
    "timeout_s": 5,
    "secret_env": "PARLEY_WEBHOOK_SECRET_CLINIC",
    "secret_header": "Authorization",
}


def register(api, backend: Backend, name: str, path: str, host: str = "127.0.0.1", **fields) -> dict:
    """Register a webhook tool like book_appointment, answered at `path` of the backend."""
    body = {**BOOK_APPOINTMENT, "name": name, "url": backend.url(path, host), **fields}
    created = api.post("/v1/tools", json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def call(router, name: str, arguments: dict, call_id: str = "clinic-call") -> tuple[str, object]:
    session = types.SimpleNamespace(call_id=call_id)
    event = await router.call(session, ToolCall(0, 0, uuid.uuid4().hex[:8], name, arguments))
    return event.kind, json.loads(event.payload)


ARGS = {"date": MARKER, "slot": "morning"}


async def test_a_webhook_tool_registered_through_the_admin_api_answers_a_call(
    api, backend, webhook_worker, router
):
    created = register(api, backend, "book_appointment", "/book")
    assert created["kind"] == "webhook" and created["parameters"]["slot"]["enum"] == ["morning", "afternoon"]
    clinic = {
        "name": "clinic",
        "languages": ["en"],
        "instructions": "Book appointments for the clinic.",
        "tools": ["book_appointment", "end_call"],
    }
    assert api.post("/v1/agents", json=clinic).status_code == 201
    listed = {t["name"]: t["kind"] for t in api.get("/v1/tools").json()}
    assert listed["book_appointment"] == "webhook" and listed["lookup_order"] == "builtin"

    kind, payload = await call(router, "book_appointment", ARGS)
    assert (kind, payload) == ("tool_result", {"confirmation": "APT-1", "slot": "morning"})
    [request] = backend.hits("/book")
    body = request["body"]
    assert body["tool"] == "book_appointment" and body["arguments"] == ARGS
    assert body["call_id"] == "clinic-call"
    assert request["headers"]["Idempotency-Key"] == body["idempotency_key"]
    assert request["headers"]["Authorization"] == SECRET
    assert request["headers"]["Content-Type"] == "application/json"

    # Arguments off the registered schema are answered by the router: nothing is sent.
    kind, payload = await call(router, "book_appointment", {"date": "Friday", "slot": "evening"})
    assert (kind, payload) == ("tool_error", "argument slot must be one of morning, afternoon")
    kind, payload = await call(router, "book_appointment", {"slot": "morning"})
    assert (kind, payload) == ("tool_error", "missing argument date")
    assert check_tool_call("book_appointment", ARGS) == "unknown tool book_appointment"  # not a built-in
    assert len(backend.hits("/book")) == 1

    log = webhook_worker.log_path.read_text()
    assert "book_appointment: HTTP 200" in log
    assert MARKER not in log and SECRET not in log


async def test_a_redelivered_request_calls_the_webhook_once(
    api, backend, webhook_worker, router, redis_server
):
    register(api, backend, "book_once", "/book")
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channel = f"parley:test:replies:{uuid.uuid4().hex}"
    pubsub.subscribe(channel)
    request = protocol.ToolRequest(uuid.uuid4().hex, "redelivered", "t1", ARGS, channel, "book_once")
    before = len(backend.hits("/book"))

    def deliver() -> dict:
        queue, message = router.task_message(protocol.task_name(webhooks.TASK), request)
        assert queue == "webhooks"
        client.lpush(queue, message)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = pubsub.get_message(timeout=0.5)
            if reply is not None:
                return json.loads(reply["data"])
        raise AssertionError("no reply")

    first, second = deliver(), deliver()  # the second: the same message again, as after a lost ack
    assert first["outcome"] == second["outcome"] and "confirmation" in first["outcome"]["result"]
    assert len(backend.hits("/book")) == before + 1
    stored = json.loads(client.get(protocol.outcome_key(request.key)))
    assert stored == first["outcome"]
    pubsub.close()
    client.close()


async def test_a_slow_webhook_times_out(api, backend, webhook_worker, router):
    register(api, backend, "book_slow", "/slow", timeout_s=0.5)
    kind, payload = await call(router, "book_slow", ARGS)
    assert (kind, payload) == ("tool_error", "tool timed out")
    assert len(backend.hits("/slow")) == 1  # it was called, and did not answer in time


async def test_failing_oversized_and_redirecting_webhooks_are_errors_that_quote_nothing(
    api, backend, webhook_worker, router
):
    register(api, backend, "book_fail", "/fail")
    register(api, backend, "book_big", "/big")
    register(api, backend, "book_stream", "/stream")
    register(api, backend, "book_text", "/text")
    register(api, backend, "book_moved", "/redirect")
    before = len(backend.hits("/book"))
    assert await call(router, "book_fail", ARGS) == ("tool_error", "webhook answered HTTP 500")
    assert await call(router, "book_big", ARGS) == ("tool_error", "webhook response too large")
    assert await call(router, "book_stream", ARGS) == ("tool_error", "webhook response too large")
    assert await call(router, "book_text", ARGS) == ("tool_error", "webhook response is not a JSON object")
    assert await call(router, "book_moved", ARGS) == ("tool_error", "webhook answered HTTP 302")
    assert len(backend.hits("/book")) == before  # the redirect was not followed
    assert BACKEND_SECRET not in webhook_worker.log_path.read_text()


async def test_hosts_the_workers_do_not_allow_are_never_called(
    api, backend, webhook_worker, router, redis_server
):
    before = len(backend.requests)
    register(
        api, backend, "book_by_name", "/book", host="localhost"
    )  # the admin allows it; the workers do not
    assert await call(router, "book_by_name", ARGS) == ("tool_error", "webhook host not allowed")

    # Written past the admin API: a cloud metadata address is refused by the worker itself.
    client = redis.Redis.from_url(redis_server.url)
    tool = WebhookTool("metadata", "", {}, "https://169.254.169.254/latest/meta-data", 1.0)
    client.set(webhooks.tool_key(tool.name), tool.to_json())
    client.close()
    assert await call(router, "metadata", {}) == ("tool_error", "webhook host not allowed")
    assert len(backend.requests) == before


async def test_a_deleted_tool_is_unknown_and_one_in_use_cannot_be_deleted(
    api, backend, webhook_worker, router
):
    register(api, backend, "book_gone", "/book")
    agent = {"name": "gone-clinic", "languages": ["en"], "instructions": "x", "tools": ["book_gone"]}
    assert api.post("/v1/agents", json=agent).status_code == 201
    refused = api.delete("/v1/tools/book_gone")
    assert refused.status_code == 409 and "gone-clinic" in refused.json()["detail"]
    assert api.patch("/v1/agents/gone-clinic", json={"tools": []}).status_code == 200
    assert api.delete("/v1/tools/book_gone").status_code == 200
    assert await call(router, "book_gone", ARGS) == ("tool_error", "unknown tool book_gone")
    r = api.post("/v1/agents", json={**agent, "name": "ghost-clinic"})
    assert r.status_code == 422 and "unknown tool(s) book_gone" in r.json()["detail"][0]["msg"]
