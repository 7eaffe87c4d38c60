"""procs.redis_server with the real redis-server binary: a restart keeps the data and the port, an
owned directory goes with `stop()`, a server whose owner died is swept (and nothing else is
killed), `live_server_pid` names only a running redis-server, and the server dies with its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from procs.redis_server import OWNER_FILE, EmbeddedRedis, live_server_pid, sweep_stale
from tests.procs.waits import gone, wait_for

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

# Starts an EmbeddedRedis in argv[1] and waits to be killed; the test reads the pid from redis.pid.
OWNER = """
import signal, sys
from procs.redis_server import EmbeddedRedis
EmbeddedRedis(sys.argv[1]).start()
open(sys.argv[1] + "/started", "w").close()
while True:
    signal.pause()
"""


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(20)
    return p.pid


def test_a_restart_keeps_the_data_and_the_port(tmp_path):
    data = tmp_path / "data"
    server = EmbeddedRedis(data).start()
    try:
        port = server.port
        server.client().set("kept", b"yes")
        server.stop(remove=False)  # SIGTERM: the append-only file is written out
        assert server.proc.returncode == 0 and data.is_dir()
        with pytest.raises(redis.ConnectionError):
            server.client(socket_connect_timeout=1).ping()
        server.start()
        assert server.port == port and server.client().get("kept") == b"yes"
    finally:
        server.stop()
    assert data.is_dir()  # a directory it was given is not its to remove


def test_an_owned_directory_is_made_under_base_and_removed_by_stop(tmp_path):
    base = tmp_path / "base"
    with EmbeddedRedis(base=base) as server:
        data = server.data_dir
        assert data.parent == base and data.name.startswith(f"{os.getpid()}-")
        assert (data / OWNER_FILE).read_text() == str(os.getpid())
        assert server.client().ping() and server.url == f"redis://127.0.0.1:{server.port}/0"
    assert not data.exists() and server.proc.poll() is not None


def test_live_server_pid_names_only_a_running_redis_server(tmp_path):
    data = tmp_path / "data"
    assert live_server_pid(data) is None  # no directory, no pid file
    with EmbeddedRedis(data) as server:
        assert live_server_pid(data) == server.proc.pid
        pid = server.proc.pid
    assert live_server_pid(data) is None  # stopped
    (data / "redis.pid").write_text(str(pid))  # the pid it had: gone
    assert live_server_pid(data) is None
    (data / "redis.pid").write_text(str(os.getpid()))  # alive, but not redis-server
    assert live_server_pid(data) is None
    (data / "redis.pid").write_text(str(dead_pid()))
    assert live_server_pid(data) is None
    (data / "redis.pid").write_text("not a pid")
    assert live_server_pid(data) is None


def test_sweep_stale_stops_servers_of_dead_owners_and_keeps_the_rest(tmp_path):
    base = tmp_path / "base"
    stale = EmbeddedRedis(base / "stale").start()  # a server whose owner then died
    (base / "stale" / OWNER_FILE).write_text(str(dead_pid()))
    kept = EmbeddedRedis(base / "kept").start()  # ours: its owner (this process) is alive
    # A dead owner's directory whose redis.pid now names some other live process: not killed.
    bystander = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    (base / "reused").mkdir()
    (base / "reused" / OWNER_FILE).write_text(str(dead_pid()))
    (base / "reused" / "redis.pid").write_text(str(bystander.pid))
    (base / "no-owner").mkdir()  # not a server directory at all
    (base / "garbage").mkdir()
    (base / "garbage" / OWNER_FILE).write_text("?")
    try:
        assert sweep_stale(base) == 2
        assert stale.proc.wait(10) == -signal.SIGKILL
        assert sorted(p.name for p in base.iterdir()) == ["garbage", "kept", "no-owner"]
        assert bystander.poll() is None and kept.client().ping()
        assert sweep_stale(base) == 0 and sweep_stale(tmp_path / "missing") == 0
    finally:
        bystander.kill()
        bystander.wait()
        stale.stop()
        kept.stop()


def test_a_new_owner_sweeps_what_a_dead_one_left(tmp_path):
    base = tmp_path / "base"
    old = EmbeddedRedis(base / "old").start()
    (base / "old" / OWNER_FILE).write_text(str(dead_pid()))
    try:
        with EmbeddedRedis(base=base) as new:
            assert old.proc.wait(10) == -signal.SIGKILL
            assert [p.name for p in base.iterdir()] == [new.data_dir.name]
    finally:
        old.stop()


def test_the_server_dies_with_its_owner_even_by_sigkill(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(data)], cwd=ROOT, stdin=subprocess.DEVNULL)
    pid = None
    try:
        wait_for(lambda: (data / "started").exists() or owner.poll() is not None, 30, "the owner's Redis")
        assert owner.poll() is None
        pid = live_server_pid(data)
        assert pid is not None
        owner.kill()
        owner.wait(10)
        wait_for(lambda: gone(pid), 10, "redis-server to exit after its owner")
        assert live_server_pid(data) is None
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGKILL)
