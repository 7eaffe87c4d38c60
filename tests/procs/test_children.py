"""procs.children with real child processes (`python -c`): ready when the health probe answers 200,
an early exit reported with its status, SIGTERM then SIGKILL after the grace, and SIGTERM from the
kernel when the parent dies. Waits are on conditions with timeouts, never fixed sleeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from procs.children import Child, alive, free_port, stop_all, wait_healthy
from tests.procs.waits import gone, wait_for

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

# Answers /healthz with 200 and its name and GREETING, /starting with 503, on the port in argv[1].
HTTP_CHILD = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ["PARLEY_PROCESS"] + " " + os.environ["GREETING"]).encode()
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

# Writes argv[1]/ready once its SIGTERM disposition is set: on SIGTERM it writes argv[1]/term and
# exits with status 7, or (argv[2] == "ignore") it ignores SIGTERM.
SIGNAL_CHILD = """
import os, pathlib, signal, sys
d = pathlib.Path(sys.argv[1])
def term(*_):
    (d / "term").write_text("SIGTERM")
    os._exit(7)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2:] == ["ignore"] else term)
(d / "ready").write_text(str(os.getpid()))
while True:
    signal.pause()
"""

# Starts SIGNAL_CHILD as a `Child` with argv[1] as its directory, then waits to be killed.
PARENT = f"""
import signal, sys
from procs.children import Child
Child("grandchild", [sys.executable, "-c", {SIGNAL_CHILD!r}, sys.argv[1]], "").start()
while True:
    signal.pause()
"""


def signal_child(name: str, d: Path, *extra: str) -> Child:
    d.mkdir()
    return Child(
        name,
        [sys.executable, "-c", SIGNAL_CHILD, str(d), *extra],
        "",
        stdout=subprocess.DEVNULL,
        ready=(d / "ready").exists,
    )


def test_a_child_is_ready_when_its_health_url_answers_200(tmp_path):
    port = free_port()
    child = Child(
        "web",
        [sys.executable, "-c", HTTP_CHILD, str(port)],
        f"http://127.0.0.1:{port}/healthz",
        stdout=subprocess.DEVNULL,
        env={"GREETING": "hello"},
    )
    assert not child.healthy()  # nothing listens yet
    child.start()
    try:
        wait_healthy([child], 20)
        assert child.proc.poll() is None and child.healthy()
        with urllib.request.urlopen(child.health_url, timeout=5) as r:
            assert r.read() == b"web hello"  # its env on top of ours, its name in PARLEY_PROCESS
    finally:
        stop_all([child], grace_s=5)
    assert child.proc.returncode == -signal.SIGTERM


def test_a_child_that_answers_but_not_200_is_not_ready(tmp_path):
    port = free_port()
    child = Child(
        "slow",
        [sys.executable, "-c", HTTP_CHILD, str(port)],
        f"http://127.0.0.1:{port}/starting",
        stdout=subprocess.DEVNULL,
        env={"GREETING": "-"},
    )
    child.start()
    try:
        wait_for(lambda: _connects(port), 20, "the child to listen")
        with pytest.raises(RuntimeError, match=r"^slow not ready after 1 s$"):
            wait_healthy([child], 1)
        assert child.proc.poll() is None  # still running: not ready is not dead
    finally:
        stop_all([child], grace_s=5)


def test_a_child_that_exits_before_it_is_ready_raises_with_its_status(tmp_path):
    fine = signal_child("fine", tmp_path / "fine")
    early = Child("early", [sys.executable, "-c", "import sys; sys.exit(3)"], "", ready=lambda: False)
    children = [fine, early]
    for child in children:
        child.start()
    try:
        with pytest.raises(RuntimeError, match=r"^early exited with status 3 before it was ready$"):
            wait_healthy(children, 20)
    finally:
        stop_all(children, grace_s=5)


def test_stop_all_sends_sigterm_then_kills_one_that_ignores_it_after_the_grace(tmp_path):
    polite = signal_child("polite", tmp_path / "polite")
    stubborn = signal_child("stubborn", tmp_path / "stubborn", "ignore")
    never = Child("never-started", [sys.executable, "-c", "pass"], "")
    children = [polite, stubborn, never]
    polite.start()
    stubborn.start()
    try:
        wait_healthy([polite, stubborn], 20)  # both have set what SIGTERM does to them
        t0 = time.monotonic()
        stop_all(children, grace_s=1.0)
        elapsed = time.monotonic() - t0
    finally:
        for child in (polite, stubborn):
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
    assert polite.proc.returncode == 7 and (tmp_path / "polite" / "term").read_text() == "SIGTERM"
    assert stubborn.proc.returncode == -signal.SIGKILL and not (tmp_path / "stubborn" / "term").exists()
    assert 1.0 <= elapsed < 5.0  # the stubborn one had its grace, no more
    assert never.proc is None


def test_stop_all_does_not_wait_the_grace_for_children_that_stop(tmp_path):
    children = [signal_child(f"c{i}", tmp_path / f"c{i}") for i in range(3)]
    for child in children:
        child.start()
    try:
        wait_healthy(children, 20)
        children[1].proc.send_signal(signal.SIGTERM)
        children[1].proc.wait(10)  # one already gone when stop_all comes
        t0 = time.monotonic()
        stop_all(children, grace_s=30)
        assert time.monotonic() - t0 < 10
    finally:
        stop_all(children, grace_s=1)
    assert [c.proc.returncode for c in children] == [7, 7, 7]


def test_a_child_gets_sigterm_when_its_parent_dies_even_by_sigkill(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], cwd=ROOT, stdin=subprocess.DEVNULL
    )
    try:
        wait_for((tmp_path / "ready").exists, 20, "the grandchild to start")
        pid = int((tmp_path / "ready").read_text())
        assert alive(pid) and not gone(pid)
        parent.kill()
        parent.wait(10)
        wait_for((tmp_path / "term").exists, 10, "the grandchild's SIGTERM")
        assert (tmp_path / "term").read_text() == "SIGTERM"
        wait_for(lambda: gone(pid), 10, "the grandchild to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if (tmp_path / "ready").exists() and not gone(pid := int((tmp_path / "ready").read_text())):
            os.kill(pid, signal.SIGKILL)


def test_alive_and_free_port():
    assert alive(os.getpid())
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(20)
    assert not alive(done.pid)  # exited and reaped
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free: nothing holds it


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
