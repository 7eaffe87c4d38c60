"""workers.process: `worker_child` starts a real `python -m workers` that is ready when it answers
`worker_ping`, and stops on SIGTERM; importing the module loads no Celery."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from procs.children import free_port, stop_all, wait_healthy
from workers.process import worker_child, worker_ping

pytestmark = pytest.mark.timeout(120)


def test_importing_worker_process_loads_no_celery():
    code = "import sys, workers.process; assert 'celery' not in sys.modules, 'celery loaded'; print('clean')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stderr


def test_a_worker_child_is_ready_when_it_answers_a_ping_and_stops_on_sigterm(redis_server):
    child = worker_child(redis_server.url, name="probe", stdout=subprocess.DEVNULL)
    assert child.argv[1:3] == ["-m", "workers"] and child.env == {"REDIS_URL": redis_server.url}
    assert not child.healthy()  # not started: nobody answers its hostname
    child.start()
    try:
        wait_healthy([child], 60)
        assert child.healthy()
        assert not worker_ping(redis_server.url, "nobody@localhost")()  # only its own hostname counts
    finally:
        stop_all([child], grace_s=30)
    assert child.proc.returncode == 0  # a warm shutdown, not a kill


def test_worker_ping_says_not_ready_while_redis_is_unreachable():
    ready = worker_ping(f"redis://127.0.0.1:{free_port()}/0", "nobody@localhost")
    t0 = time.monotonic()
    assert ready() is False
    assert time.monotonic() - t0 < 10
