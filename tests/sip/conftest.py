"""Shared pieces of the SIP tests: real peers (sipp, baresip, Kamailio) on loopback.

`need(binary)` skips a test whose peer is not installed, unless PARLEY_SIP_PEERS=required (the
Makefile sets it: `make test` installs the peers, so a missing one is a failure there).
`ScriptedModel` is the fake model server whose sessions follow a plan, one behaviour per call in
the order the calls open: "echo" (the default), "hangup" (the model calls end_call) or "transfer"
(the model calls transfer)."""

from __future__ import annotations

import collections
import os
import shutil
import socket

import pytest

from tests.agent.fake_model_server import FakeModelServer, FakeSession, Step

NUMBERS = {"+15550001": "support", "+15550002": "translate-en-es"}
TRUNKS = '[{"name": "local", "addresses": ["127.0.0.1/32"]}, {"name": "pbx", "username": "pbx", "password": "s3cret"}]'


def need(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        message = f"{binary} is not installed (make test installs it: Debian packages kamailio, sip-tester, baresip)"
        if os.environ.get("PARLEY_SIP_PEERS") == "required":
            pytest.fail(message)
        pytest.skip(message)
    return path


def need_pjsua2() -> None:
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        if os.environ.get("PARLEY_SIP_PEERS") == "required":
            pytest.fail("pjsua2-python is not installed")
        pytest.skip("pjsua2-python is not installed")


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (Kamailio listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free SIP port")


class ScriptedModel(FakeModelServer):
    """Echoes the caller (floor speak), except where the plan says to end or transfer at micro-turn 3."""

    ACT_AT = 3

    def __init__(self) -> None:
        super().__init__(self._script, capacity=64)
        self.plan: collections.deque[str] = collections.deque()
        self.behaviour: dict[str, str] = {}

    def _script(self, seq: int, session: FakeSession) -> Step:
        kind = self.behaviour.get(session.call_id)
        if kind is None:
            kind = self.behaviour[session.call_id] = self.plan.popleft() if self.plan else "echo"
        if seq == self.ACT_AT and kind in ("hangup", "transfer"):
            name = "end_call" if kind == "hangup" else "transfer"
            return Step("speak", tool_call={"id": f"t-{kind}", "name": name, "arguments": {}}, audio=2000)
        return Step("speak", audio="echo")
