"""`parley serve`: the whole platform on one machine, as child processes.

Starts the model server, the websocket media gateway, one tool worker and the admin API as
separate processes (the model step loop must not share a GIL with thousands of socket handlers),
waits until each is ready (`/healthz`; the worker answers a Celery ping), and supervises them.
Redis is `REDIS_URL`; when that is unset, an embedded Redis server (`workers.redis_server`) is
started first and stopped last, with its data kept between runs in `PARLEY_REDIS_DATA` (default
~/.local/share/parley/redis: append-only file, so a restart loses no configuration), and the
sample shop is seeded into it (into a configured Redis only if it holds no shop yet). The children
get `REDIS_URL`. When Redis holds no active admin API key (a first start), one is created and
printed on stderr, once.

Supervision: if one child dies, everything stops with its exit status; Ctrl-C or SIGTERM stops the
children cleanly (SIGTERM, then SIGKILL after a grace period); if `parley serve` itself is killed,
even by SIGKILL, the kernel sends its children and the embedded Redis SIGTERM (the next start
removes what the embedded Redis left on disk). Every child logs to the same stderr with its process
name in each line, so the platform reads as one log.

With `--demo-call WAV` it places one call through the gateway once everything is up (with a
10-minute stream token of the agent, since media websockets authenticate once keys exist),
prints the summary, and stops: that is `make run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str
    stdout: int | None = None  # None: inherit (subprocess.DEVNULL keeps a caller's stdout clean)
    env: dict[str, str] = field(default_factory=dict)  # on top of ours
    ready: Optional[Callable[[], bool]] = field(default=None, repr=False)  # instead of health_url
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        from workers.redis_server import die_with_parent

        env = {**os.environ, **self.env, "PARLEY_PROCESS": self.name}
        # A child gets SIGTERM when this process dies, even by SIGKILL: nothing is left running.
        self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=self.stdout,
                                     preexec_fn=die_with_parent)
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def healthy(self) -> bool:
        if self.ready is not None:
            return self.ready()
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False


def wait_healthy(children: list[Child], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(children)
    while pending:
        for child in list(pending):
            code = child.proc.poll()
            if code is not None:
                raise RuntimeError(f"{child.name} exited with status {code} before it was ready")
            if child.healthy():
                log.info("%s is ready", child.name)
                pending.remove(child)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{', '.join(c.name for c in pending)} not ready after {timeout_s:.0f} s")
        if pending:
            time.sleep(0.1)


def stop_all(children: list[Child], grace_s: float = 10.0) -> None:
    for child in reversed(children):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in reversed(children):
        if not child.proc:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s: killing it", child.name, grace_s)
            child.proc.kill()
            child.proc.wait()


def worker_ping(redis_url: str, hostname: str) -> Callable[[], bool]:
    """Readiness of one Celery worker: it answers a remote-control ping."""
    from workers.app import make_app
    from workers.settings import WorkerSettings

    app = make_app(WorkerSettings(redis_url=redis_url))

    def ready() -> bool:
        try:
            return bool(app.control.ping(destination=[hostname], timeout=0.5))
        except Exception:  # Redis not reachable yet
            return False

    return ready


def worker_child(redis_url: str, name: str = "worker", stdout: int | None = None, extra: tuple = ()) -> Child:
    """`python -m workers` (what `parley worker` runs) on `redis_url`, ready when it answers a ping."""
    hostname = f"{name}-{os.getpid()}-{time.monotonic_ns() % 100000}@localhost"
    return Child(name, [sys.executable, "-m", "workers", f"--hostname={hostname}", *extra], "",
                 stdout=stdout, env={"REDIS_URL": redis_url}, ready=worker_ping(redis_url, hostname))


def redis_data_dir() -> Path:
    """Where the embedded Redis of `parley serve` keeps its data between runs."""
    return Path(os.environ.get("PARLEY_REDIS_DATA") or Path.home() / ".local" / "share" / "parley" / "redis")


def start_redis() -> tuple[str, object | None]:
    """REDIS_URL, or an embedded server's URL and the server; the sample shop seeded either way.

    The embedded server keeps its data (append-only file) in `redis_data_dir()`, so agents,
    numbers and keys configured through the admin API survive a restart of `parley serve`."""
    import redis

    from workers.redis_server import EmbeddedRedis, _alive, _is_redis
    from workers.shop import Shop
    from workers.store import ShopStore

    url, server = os.environ.get("REDIS_URL"), None
    if not url:
        data = redis_data_dir()
        try:
            pid = int((data / "redis.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and _alive(pid) and _is_redis(pid):
            raise RuntimeError(f"another embedded Redis (pid {pid}) uses {data}: stop that parley serve "
                               "first, or set PARLEY_REDIS_DATA or REDIS_URL")
        server = EmbeddedRedis(data).start()
        url = server.url
        log.info("REDIS_URL is not set: started an embedded Redis at %s (data in %s)", url, data)
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        store = ShopStore(client)
        if not store.seeded():
            log.info("seeded the sample shop (%d orders)", store.seed(Shop.default()))
    finally:
        client.close()
    return url, server


def build_children(args, redis_url: str) -> list[Child]:
    exe = [sys.executable, "-m", "agent.cli"]
    model_src = []
    if args.checkpoint:
        model_src = ["--checkpoint", str(args.checkpoint)]
    elif args.preset:
        model_src = ["--preset", args.preset]
    host = args.host
    model = Child(
        "model-server",
        [*exe, "model-server", *model_src, "--host", host, "--port", str(args.model_port),
         "--max-slots", str(args.max_slots), "--device", args.device],
        f"http://{host}:{args.model_port}/healthz",
    )
    gateway = Child(
        "gateway",
        [*exe, "gateway", "--host", host, "--port", str(args.gateway_port),
         "--model-url", f"ws://{host}:{args.model_port}/session"],
        f"http://{host}:{args.gateway_port}/healthz",
        env={"REDIS_URL": redis_url},
    )
    admin = Child(
        "admin",
        [*exe, "admin", "--host", host, "--port", str(args.admin_port)],
        f"http://{host}:{args.admin_port}/healthz",
        env={"REDIS_URL": redis_url,
             "PARLEY_ADMIN_MODEL_HEALTH_URLS": json.dumps([f"http://{host}:{args.model_port}/healthz"])},
    )
    return [model, gateway, worker_child(redis_url), admin]


def first_admin_key(redis_url: str) -> Optional[str]:
    """A new admin API key when Redis holds no active admin key (a first start), else None."""
    import redis.asyncio as aioredis

    from admin.store.credentials import CredentialStore

    async def go() -> Optional[str]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        try:
            store = CredentialStore(client)
            if any(k.active and k.scope == "admin" for k in await store.list_keys()):
                return None
            return (await store.create_key("first admin key (parley serve)", "admin"))[1]
        finally:
            await client.aclose()

    return asyncio.run(go())


def demo_token(redis_url: str, agent: str) -> str:
    """A stream token for the demo call, valid for 10 minutes."""
    import redis.asyncio as aioredis

    from admin.store.credentials import CredentialStore

    async def go() -> str:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        try:
            return (await CredentialStore(client).create_token(agent, "parley serve --demo-call", 600))[1]
        finally:
            await client.aclose()

    return asyncio.run(go())


def serve(args) -> int:
    children: list[Child] = []
    redis_server = None
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("signal %d: stopping", signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_url, redis_server = start_redis()
        key = first_admin_key(redis_url)
        children = build_children(args, redis_url)
        for child in children:
            child.start()
        wait_healthy(children, args.ready_timeout)
        log.info("Parley is up: gateway ws://%s:%d/twilio and /stream, model server ws://%s:%d/session, "
                 "admin API http://%s:%d (/docs)", args.host, args.gateway_port, args.host, args.model_port,
                 args.host, args.admin_port)
        if key is not None:  # printed, never logged: shown once, only its hash is stored
            print(f"\nFirst admin API key (shown only now; only a hash of it is stored):\n  {key}\n"
                  f"Use it as 'Authorization: Bearer <key>' on http://{args.host}:{args.admin_port}/v1 "
                  "(OpenAPI at /docs).\n", file=sys.stderr, flush=True)
        if args.demo_call:
            return demo_call(args, demo_token(redis_url, args.agent))
        while True:
            for child in children:
                code = child.proc.poll()
                if code is not None:
                    log.error("%s exited with status %d: stopping everything", child.name, code)
                    return code or 1
            if redis_server is not None and redis_server.proc.poll() is not None:
                log.error("the embedded Redis exited: stopping everything")
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    finally:
        stop_all(children)
        if redis_server is not None:
            redis_server.stop()


def demo_call(args, token: Optional[str] = None) -> int:
    from agent.call import place_call

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    url = f"ws://{args.host}:{args.gateway_port}"
    summary = asyncio.run(place_call(args.agent, Path(args.demo_call), out, url=url, protocol="twilio", token=token))
    print(json.dumps(summary))
    return 0
