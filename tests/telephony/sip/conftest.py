"""Shared pieces of the SIP tests: real peers (sipp, baresip, Kamailio) on loopback.

`need(binary)` skips a test whose peer is not installed, unless PARLEY_SIP_PEERS=required (the
Makefile sets it: `make test` installs the peers, so a missing one is a failure there).
`ScriptedModel` is the fake model server whose sessions follow a plan, one behaviour per call in
the order the calls open: "echo" (the default), "hangup" (the model calls end_call) or "transfer"
(the model calls transfer)."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from telephony.wav import read_pcm16
from tests.fakes.model_server import FakeModelServer, FakeSession, Step
from tests.helpers import voiced_wav

NUMBERS = {"+15550001": "support", "+15550002": "translate-en-es"}
TRUNKS = (
    '[{"name": "local", "addresses": ["127.0.0.1/32"]}, '
    '{"name": "pbx", "username": "pbx", "password": "s3cret"}]'
)


def need(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        message = (
            f"{binary} is not installed (make test installs it: "
            "Debian packages kamailio, sip-tester, baresip)"
        )
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


async def baresip_call(
    target: str, number: str, tmp_path: Path, codec: str = "G722", seconds: float = 4.0
) -> tuple[str, np.ndarray, int]:
    """baresip dials sip:NUMBER@TARGET with a caller WAV over `codec`, hangs up when the WAV ends,
    and records what it heard: (its log, the received PCM, its rate). baresip's file source must
    be at the codec's rate (16 kHz for G.722, 8 kHz for G.711)."""
    from bench.sip import free_port_block

    baresip = need("baresip")
    conf = tmp_path / "baresip"
    (conf / "rec").mkdir(parents=True)
    rtp = free_port_block(20)
    # a voiced caller at the codec's rate, harmonics of 150 Hz switched at 1.2 Hz
    caller = voiced_wav(
        tmp_path / "caller.wav",
        seconds,
        16000 if codec == "G722" else 8000,
        f0=150.0,
        syllable_hz=1.2,
        amplitude=5000.0,
    )
    (conf / "config").write_text(
        "poll_method epoll\nsip_listen 127.0.0.1:0\n"
        f"audio_source aufile,{caller}\naudio_alert aufile,/dev/null\n"
        f"rtp_ports {rtp}-{rtp + 19}\nmodule_path /usr/lib/baresip/modules\n"
        "module stdio.so\nmodule g722.so\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\n"
        f"module_app account.so\nmodule_app menu.so\nsnd_path {conf / 'rec'}\n"
    )
    (conf / "accounts").write_text(f"<sip:caller@127.0.0.1>;regint=0;audio_codecs={codec}\n")
    proc = await asyncio.create_subprocess_exec(
        baresip,
        "-f",
        str(conf),
        "-e",
        f"/dial sip:{number}@{target}",
        "-t",
        str(int(seconds) + 11),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 36)
    heard = sorted((conf / "rec").glob("*-dec.wav"))
    if not heard:
        return out.decode(errors="replace"), np.zeros(0, np.float32), 8000
    pcm, rate = read_pcm16(heard[0])
    return out.decode(errors="replace"), pcm.astype(np.float32), rate


def assert_heard_the_agent(pcm: np.ndarray, rate: int, seconds: float = 3.0) -> None:
    """The recording covers the call and the agent's audio in it is not silence."""
    assert len(pcm) >= seconds * rate, len(pcm)
    step = rate // 5
    rms = [float(np.sqrt(np.mean(pcm[i : i + step] ** 2))) for i in range(rate // 2, len(pcm) - step, step)]
    assert max(rms) > 30.0 and sum(r > 5.0 for r in rms) >= len(rms) // 2, rms
