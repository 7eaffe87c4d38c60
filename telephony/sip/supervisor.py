"""`parley sip --workers N`: the SIP gateway's processes, supervised.

`Supervisor.run()` starts N worker processes (each `worker_argv(i, settings_file)`, one pjsua2
Endpoint, at most 4 calls), waits until every one reports ready, then, with N > 1, starts Kamailio
on the public port with the generated dispatcher configuration (kamailio.py) and waits until it
answers OPTIONS. It serves GET /healthz (workers, Kamailio's view of them, call and media
counters) and GET /calls (the last call records) on `health_host:health_port`, and supervises:

- a worker that exits (crash, SIGKILL, or its own recycling after `recycle_after_calls`) is started
  again, after a back-off that grows while it keeps dying young; Kamailio's OPTIONS probing has
  already stopped sending it calls;
- Kamailio exiting stops everything (exit status 1): without it nothing reaches the workers;
- SIGTERM or SIGINT stops everything: workers hang up their calls, then Kamailio goes.

Workers report what happens as JSON lines on their stdout (ready, call_start, call_end, refused,
exit); the supervisor keeps counters from them and, with `events` set, re-emits each one (with
its own ready/worker_exit/stopped) for scripts and tests. The settings reach the workers as one
JSON file (mode 0600: it holds trunk passwords) in the run directory. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from telephony.sip.kamailio import Kamailio
from telephony.sip.settings import SipSettings

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 8.0
RECENT_CALLS = 200


def settings_json(settings: SipSettings) -> str:
    """The settings as workers rebuild them: numbers and trunks inline, passwords revealed."""
    data = settings.model_dump(mode="json", exclude={"numbers_file", "trunks_file", "trunks", "numbers"})
    data["numbers"] = settings.load_numbers()
    data["trunks"] = [
        {
            **t.model_dump(mode="json", exclude={"password"}),
            "password": t.password.get_secret_value() if t.password else None,
        }
        for t in settings.load_trunks()
    ]
    return json.dumps(data)


class WorkerProcess:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self.restarts = 0
        self.live = 0
        self.calls = 0
        self.last_exit: int | None = None
        self.reader: asyncio.Task | None = None

    def state(self) -> dict:
        return {
            "worker": self.index,
            "pid": self.proc.pid if self.proc else None,
            "running": self.proc is not None and self.proc.returncode is None,
            "ready": self.ready.is_set(),
            "live": self.live,
            "calls": self.calls,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


class Supervisor:
    def __init__(
        self,
        settings: SipSettings,
        worker_argv: Callable[[int, Path], list[str]],
        *,
        emit: Callable[[dict], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_argv = worker_argv
        self.emit = emit or (lambda event: None)
        self.workers = [WorkerProcess(i) for i in range(settings.workers)]
        self.kamailio: Kamailio | None = None
        self.counters: collections.Counter = collections.Counter()
        self.media: collections.Counter = collections.Counter()
        self.recent: collections.deque = collections.deque(maxlen=RECENT_CALLS)
        self.health_port: int | None = None
        self._stop = asyncio.Event()
        self._run_dir: Path | None = None
        self._own_run_dir = False
        self._settings_file: Path | None = None
        self._started = time.monotonic()

    # --- lifecycle -----------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self._prepare_run_dir()
        health = None
        status = 0
        try:
            for w in self.workers:
                await self._spawn(w)
            await self._wait_ready()
            if self.settings.multi:
                assert self._run_dir is not None
                self.kamailio = Kamailio(self.settings, self._run_dir, self.settings.load_trunks())
                await self.kamailio.start()
            health = await asyncio.start_server(
                self._serve_http, self.settings.health_host, self.settings.health_port
            )
            self.health_port = health.sockets[0].getsockname()[1]
            self.emit(
                {
                    "event": "ready",
                    "port": self.settings.port,
                    "workers": self.settings.workers,
                    "kamailio": self.settings.multi,
                    "health_port": self.health_port,
                    "worker_ports": [self.settings.worker_sip_port(i) for i in range(self.settings.workers)],
                }
            )
            logger.info(
                "SIP gateway ready on port %d (%d worker%s%s), health on %s:%d",
                self.settings.port,
                self.settings.workers,
                "s" if self.settings.workers > 1 else "",
                ", Kamailio in front" if self.settings.multi else "",
                self.settings.health_host,
                self.health_port,
            )
            status = await self._supervise()
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            logger.error("SIP gateway failed: %s", exc)
            status = 2
        finally:
            if health is not None:
                health.close()
            await self._stop_all()
            self._cleanup_run_dir()
            self.emit({"event": "stopped", "status": status})
        return status

    def stop(self) -> None:
        self._stop.set()

    def _prepare_run_dir(self) -> None:
        if self.settings.run_dir is not None:
            self._run_dir = self.settings.run_dir
            self._run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._run_dir = Path(tempfile.mkdtemp(prefix="parley-sip-"))
            self._own_run_dir = True
        self._settings_file = self._run_dir / "settings.json"
        fd = os.open(self._settings_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(settings_json(self.settings))

    def _cleanup_run_dir(self) -> None:
        if self._own_run_dir and self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    async def _spawn(self, w: WorkerProcess) -> None:
        assert self._settings_file is not None
        w.ready.clear()
        w.live = 0
        env = {**os.environ, "PARLEY_PROCESS": f"sip-worker-{w.index}"}
        w.proc = await asyncio.create_subprocess_exec(
            *self.worker_argv(w.index, self._settings_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 20,
        )
        w.started_at = time.monotonic()
        w.reader = asyncio.create_task(self._read_events(w, w.proc))
        logger.info("started SIP worker %d (pid %d)", w.index, w.proc.pid)

    async def _wait_ready(self) -> None:
        waits = [asyncio.create_task(w.ready.wait()) for w in self.workers]
        exits = [asyncio.create_task(w.proc.wait()) for w in self.workers if w.proc]
        stop = asyncio.create_task(self._stop.wait())
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not all(w.ready.is_set() for w in self.workers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"SIP workers not ready within {READY_TIMEOUT_S:g} s")
                done, _ = await asyncio.wait(
                    [*waits, *exits, stop], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done:
                    raise RuntimeError("stopped while starting")
                for w in self.workers:
                    if w.proc is not None and w.proc.returncode is not None:
                        raise RuntimeError(
                            f"SIP worker {w.index} exited with {w.proc.returncode} while starting"
                        )
        finally:
            for t in (*waits, *exits, stop):
                t.cancel()

    async def _supervise(self) -> int:
        """Restart workers that exit; return when stopped (0) or when Kamailio dies (1)."""
        backoff = {w.index: 0.5 for w in self.workers}
        while not self._stop.is_set():
            waits = {asyncio.create_task(w.proc.wait()): w for w in self.workers if w.proc is not None}
            stop = asyncio.create_task(self._stop.wait())
            kam = None
            if self.kamailio is not None and self.kamailio.proc is not None:
                kam = asyncio.create_task(self.kamailio.proc.wait())
            done, pending = await asyncio.wait(
                [*waits, stop, *([kam] if kam else [])], return_when=asyncio.FIRST_COMPLETED
            )
            for t in pending:
                t.cancel()
            if stop in done:
                return 0
            if kam is not None and kam in done:
                logger.error(
                    "kamailio exited with %s: stopping the SIP gateway", self.kamailio.proc.returncode
                )
                return 1
            for task in done:
                w = waits.get(task)
                if w is None or self._stop.is_set():
                    continue
                code = w.proc.returncode
                w.last_exit = code
                lived = time.monotonic() - w.started_at
                self.counters["worker_exits"] += 1
                self.emit(
                    {"event": "worker_exit", "worker": w.index, "code": code, "lived_s": round(lived, 1)}
                )
                if code != 0:
                    logger.warning(
                        "SIP worker %d exited with %s after %.1f s: restarting", w.index, code, lived
                    )
                delay = 0.0 if code == 0 else backoff[w.index]
                backoff[w.index] = min(10.0, backoff[w.index] * 2) if lived < 10 else 0.5
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return 0
                w.restarts += 1
                await self._spawn(w)
        return 0

    async def _stop_all(self) -> None:
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        if procs:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=STOP_GRACE_S)
            for p in procs:
                if p.returncode is None:
                    logger.warning("SIP worker pid %d did not stop: killing it", p.pid)
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
                    await p.wait()
        for w in self.workers:
            if w.reader is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(w.reader, 2.0)
        if self.kamailio is not None:
            await self.kamailio.stop()

    # --- worker events -------------------------------------------------------------------------------
    async def _read_events(self, w: WorkerProcess, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not line:
                return
            try:
                event = json.loads(line)
            except ValueError:
                sys.stderr.write(line.decode("utf-8", "replace"))  # a stray print: keep it visible
                continue
            if isinstance(event, dict):
                self._on_event(w, event)

    def _on_event(self, w: WorkerProcess, event: dict) -> None:
        kind = event.get("event")
        if kind == "ready":
            w.ready.set()
        elif kind == "call_start":
            w.live += 1
            w.calls += 1
            self.counters["calls"] += 1
        elif kind == "call_end":
            w.live = max(0, w.live - 1)
            self.counters["answered" if event.get("answered") else "not_answered"] += 1
            if event.get("sip_status"):
                self.counters[f"refused_{event['sip_status']}"] += 1
            for key in (
                "caller_frames",
                "caller_frames_to_model",
                "agent_frames",
                "agent_audio_ms",
                "agent_dropped_ms",
                "agent_underrun_ms",
                "dtmf",
            ):
                self.media[key] += int(event.get(key) or 0)
            rtp = event.get("rtp") or {}
            for key in ("rx_packets", "rx_lost", "tx_packets", "jb_lost", "jb_discarded"):
                self.media[f"rtp_{key}"] += int(rtp.get(key) or 0)
            self.recent.append(event)
        elif kind == "refused":
            self.counters[f"refused_{event.get('code')}"] += 1
        if kind != "ready" or self.health_port is not None:
            self.emit(event)

    # --- health --------------------------------------------------------------------------------------
    async def health(self) -> dict:
        destinations = None
        if (
            self.kamailio is not None
            and self.kamailio.proc is not None
            and self.kamailio.proc.returncode is None
        ):
            try:
                destinations = await self.kamailio.destinations()
            except (TimeoutError, OSError, FileNotFoundError):
                destinations = None
        workers = [w.state() for w in self.workers]
        ok = all(w["running"] and w["ready"] for w in workers)
        return {
            "status": "ok" if ok else "degraded",
            "uptime_s": round(time.monotonic() - self._started, 1),
            "port": self.settings.port,
            "live_calls": sum(w["live"] for w in workers),
            "capacity": self.settings.workers * self.settings.calls_per_worker,
            "workers": workers,
            "kamailio": None
            if self.kamailio is None
            else {
                "pid": self.kamailio.proc.pid if self.kamailio.proc else None,
                "destinations": destinations,
            },
            "counters": dict(self.counters),
            "media": dict(self.media),
        }

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if parts and parts[0] == "GET" and path.startswith("/healthz"):
                status, body = 200, await self.health()
            elif parts and parts[0] == "GET" and path.startswith("/calls"):
                status, body = 200, {"calls": list(self.recent)}
            else:
                status, body = 404, {"error": "not found"}
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
