"""`parley serve`: the whole platform on one machine, as child processes.

Starts the model server, the websocket media gateway, one tool worker and the admin API as
separate processes (the model step loop must not share a GIL with thousands of socket handlers),
waits until each is ready (`/healthz`; the worker answers a Celery ping), and supervises them.
Redis is `REDIS_URL`; when that is unset, an embedded Redis server (`procs.redis_server`) is
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
import sys
import time
from pathlib import Path

from procs.children import Child, stop_all, wait_healthy
from workers.process import background_workers, worker_child

log = logging.getLogger(__name__)


def redis_data_dir() -> Path:
    """Where the embedded Redis of `parley serve` keeps its data between runs."""
    return Path(os.environ.get("PARLEY_REDIS_DATA") or Path.home() / ".local" / "share" / "parley" / "redis")


def start_redis() -> tuple[str, object | None]:
    """REDIS_URL, or an embedded server's URL and the server; the sample shop seeded either way.

    The embedded server keeps its data (append-only file) in `redis_data_dir()`, so agents,
    numbers and keys configured through the admin API survive a restart of `parley serve`."""
    import redis

    from procs.redis_server import EmbeddedRedis, live_server_pid
    from workers.shop import Shop
    from workers.store import ShopStore

    url, server = os.environ.get("REDIS_URL"), None
    if not url:
        data = redis_data_dir()
        pid = live_server_pid(data)
        if pid:
            raise RuntimeError(
                f"another embedded Redis (pid {pid}) uses {data}: stop that parley serve "
                "first, or set PARLEY_REDIS_DATA or REDIS_URL"
            )
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
    exe = [sys.executable, "-m", "parley.cli"]
    model_src = []
    if args.checkpoint:
        model_src = ["--checkpoint", str(args.checkpoint)]
    elif args.preset:
        model_src = ["--preset", args.preset]
    host = args.host
    model = Child(
        "model-server",
        [
            *exe,
            "model-server",
            *model_src,
            "--host",
            host,
            "--port",
            str(args.model_port),
            "--max-slots",
            str(args.max_slots),
            "--device",
            args.device,
        ],
        f"http://{host}:{args.model_port}/healthz",
    )
    gateway = Child(
        "gateway",
        [
            *exe,
            "gateway",
            "--host",
            host,
            "--port",
            str(args.gateway_port),
            "--model-url",
            f"ws://{host}:{args.model_port}/session",
        ],
        f"http://{host}:{args.gateway_port}/healthz",
        env={"REDIS_URL": redis_url},
    )
    admin = Child(
        "admin",
        [*exe, "admin", "--host", host, "--port", str(args.admin_port)],
        f"http://{host}:{args.admin_port}/healthz",
        env={
            "REDIS_URL": redis_url,
            "PARLEY_ADMIN_MODEL_HEALTH_URLS": json.dumps([f"http://{host}:{args.model_port}/healthz"]),
        },
    )
    return [model, gateway, worker_child(redis_url), *background_workers(redis_url), admin]


def first_admin_key(redis_url: str) -> str | None:
    """A new admin API key when Redis holds no active admin key (a first start), else None."""
    import redis.asyncio as aioredis

    from admin.store.credentials import CredentialStore

    async def go() -> str | None:
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
        log.info(
            "Parley is up: gateway ws://%s:%d/twilio and /stream, model server ws://%s:%d/session, "
            "admin API http://%s:%d (/docs)",
            args.host,
            args.gateway_port,
            args.host,
            args.model_port,
            args.host,
            args.admin_port,
        )
        if key is not None:  # printed, never logged: shown once, only its hash is stored
            print(
                f"\nFirst admin API key (shown only now; only a hash of it is stored):\n  {key}\n"
                f"Use it as 'Authorization: Bearer <key>' on http://{args.host}:{args.admin_port}/v1 "
                "(OpenAPI at /docs).\n",
                file=sys.stderr,
                flush=True,
            )
        if args.demo_call:
            return demo_call(args, demo_token(redis_url, args.agent), redis_url)
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


def demo_call(args, token: str | None = None, redis_url: str | None = None) -> int:
    """Place the demo call, then print its summary (one JSON line on stdout) and, from the call's
    record, what the background model heard the caller say and what it decided (readable lines)."""
    from parley.call import place_call

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    url = f"ws://{args.host}:{args.gateway_port}"
    started = time.time()
    summary = asyncio.run(
        place_call(
            args.agent,
            Path(args.demo_call),
            out,
            url=url,
            protocol="twilio",
            token=token,
            linger_s=DEMO_LINGER_S,
        )
    )
    record = asyncio.run(call_record(redis_url, args.agent, started)) if redis_url else None
    if record is not None:
        summary["call_id"] = record.get("call_id")
        summary["caller_said"] = [
            e["text"] for e in record.get("transcript", []) if e.get("role") == "caller"
        ]
        summary["background"] = (record.get("background") or {}).get("decisions", [])
        summary["agent_wrote"] = [e["text"] for e in record.get("transcript", []) if e.get("role") == "agent"]
    summary["agent_heard"] = agent_heard(out)
    print(json.dumps(summary))
    for line in readable(summary):
        print(line, file=sys.stderr)
    return 0


DEMO_LINGER_S = 14.0  # the line stays open after the caller's words: hearing, a lookup, a reply, its voicing


async def call_record(redis_url: str, agent: str, since: float, timeout_s: float = 15.0) -> dict | None:
    """The record of the newest call to `agent` that began after `since`, once it has ended (the
    gateway writes it when the call is over); None if none comes within `timeout_s`."""
    import redis.asyncio as aioredis

    from admin.store.calls import CallStore

    client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        store = CallStore(client)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            calls, _ = await store.list(agent=agent, since=since, limit=1)
            if calls and calls[0].get("status") == "ended":
                return await store.get(calls[0]["call_id"])
            await asyncio.sleep(0.2)  # polling the store: the gateway writes the record when it can
        return None
    finally:
        await client.aclose()


HEARD_CHARS = 400  # Whisper loops on audio that is not speech; the summary shows the start


def agent_heard(recording: Path) -> str | None:
    """What a listener hears the agent say: Whisper (the evaluation's recogniser) on the agent's
    channel of the call's recording, after the phone line; None where the `eval` extra is
    missing."""
    import numpy as np

    from evaluation.asr import Recogniser
    from telephony.wav import read_float

    recogniser = Recogniser(threads=1)
    if not recogniser.available():
        return None
    audio, rate = read_float(recording)  # caller left, agent right
    agent = np.ascontiguousarray(audio[:, -1])
    return recogniser.transcribe(agent, rate) if agent.size else ""


def readable(summary: dict) -> list[str]:
    """The demo call in words: what the caller said, what the background model decided, what the
    agent wrote and what Whisper hears it say."""
    lines = [f"demo call: {summary.get('duration_s')} s, recording in {summary.get('out')}"]
    for words in summary.get("caller_said") or ["(the background model heard no words)"]:
        lines.append(f"  caller said:      {words}")
    for d in summary.get("background") or []:
        kind = d.get("kind")
        if kind == "tool":
            what = f"call {d.get('tool')} {json.dumps(d.get('arguments'))} -> {d.get('outcome')}"
        elif kind == "reply":
            what = f"reply {d.get('text')!r}"
        else:
            what = kind + (f" ({d['error']})" if d.get("error") else "")
        lines.append(f"  background model: {what}  [{d.get('ms')} ms]")
    for words in summary.get("agent_wrote") or []:
        lines.append(f"  agent wrote:      {words}")
    if summary.get("agent_heard") is not None:
        heard = summary["agent_heard"] or "(no words)"
        heard = heard if len(heard) <= HEARD_CHARS else heard[:HEARD_CHARS] + " ..."
        lines.append(f"  agent heard as:   {heard}  (Whisper, the agent's channel)")
    return lines
