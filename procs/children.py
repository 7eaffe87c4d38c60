"""Supervised child processes: start, wait until ready, stop; none outlives its parent.

Used by `parley serve`, the benchmarks and the tests. A `Child` is ready when its health URL
answers 200 (or its own `ready` probe says so); `stop_all` sends SIGTERM, then SIGKILL after a
grace period. Every child gets SIGTERM from the kernel when its parent dies, even by SIGKILL.
Knows nothing of what the children are.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str
    stdout: int | None = None  # None: inherit (subprocess.DEVNULL keeps a caller's stdout clean)
    env: dict[str, str] = field(default_factory=dict)  # on top of ours
    ready: Callable[[], bool] | None = field(default=None, repr=False)  # instead of health_url
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        env = {**os.environ, **self.env, "PARLEY_PROCESS": self.name}
        # A child gets SIGTERM when this process dies, even by SIGKILL: nothing is left running.
        self.proc = subprocess.Popen(
            self.argv, env=env, stdin=subprocess.DEVNULL, stdout=self.stdout, preexec_fn=die_with_parent
        )
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
