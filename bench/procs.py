"""Child processes for benchmarks: start a `parley` command, wait for its /healthz, read its CPU time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from procs.children import Child, stop_all, wait_healthy

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def get_json(url: str, timeout: float = 2.0) -> dict:
    import json

    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@contextmanager
def child(
    argv: list[str], health_url: str, name: str, timeout_s: float = 120.0
) -> Iterator[subprocess.Popen]:
    """A `python argv...` child, supervised as `parley serve` supervises its own: ready once its
    /healthz answers, stopped with SIGTERM then SIGKILL. Its logs go to our stderr; its stdout is
    discarded so a benchmark's JSON stays the only thing on ours."""
    proc = Child(name, [sys.executable, *argv], health_url, stdout=subprocess.DEVNULL)
    try:
        proc.start()
        wait_healthy([proc], timeout_s)
        yield proc.proc
    finally:
        stop_all([proc])


def gateway_child(port: int, model_port: int) -> AbstractContextManager[subprocess.Popen]:
    """`parley gateway` on 127.0.0.1:`port` in front of the model server on `model_port`."""
    argv = ["-m", "parley.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--model-url", f"ws://127.0.0.1:{model_port}/session"]
    return child(argv, f"http://127.0.0.1:{port}/healthz", "gateway")
