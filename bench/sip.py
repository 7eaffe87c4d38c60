"""`parley bench sip`, and the pieces it shares with tests/telephony/sip: a `parley sip` stack as a child
process (`SipStack`), sipp scenarios (`call_scenario`, `refused_scenario`) and a sipp runner.

The benchmark starts an echo stand-in for the model server (bench/echo_model.py), `parley sip`
with ceil(N/4) workers behind Kamailio, and places concurrent sipp calls (Debian `sip-tester`)
with RTP audio (G.711 in 20 ms packets, both ways) through Kamailio, in steps of 4, 8, 16, ...
up to N calls (or only N with `ladder=False`), each held for `seconds`. Per step it reads the
gateway's own CPU time (supervisor, workers and every Kamailio process, from /proc) and each
call's record from the workers: calls answered, caller RTP packets lost or discarded by the jitter
buffer, and agent audio that did not play (the bridge found the agent's buffer empty while it was
playing, or the buffer overflowed), in milliseconds. It prints one JSON object: the largest step
held with every call answered and nothing lost, and the figures of every step.

sipp 3.6 cannot count the RTP it receives, so "media both ways" is judged at the worker: RTP
packets received from the caller, RTP packets sent to it and agent frames played. Note the
machine: on the 2-core development box the callers (sipp), the echo model and the gateway
share the cores.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from telephony import g711
from telephony.wav import write_g711

PT = {"PCMU": 0, "PCMA": 8}
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{digit}.pcap"

# --- caller audio --------------------------------------------------------------------------------


def write_g711_wav(path: Path, codec: str, seconds: float = 4.0, rate: int = 8000) -> Path:
    """A speech-like caller (voiced harmonics switched on and off) as an 8-bit G.711 WAV, the format
    sipp's rtp_stream plays (format tag 7 mu-law, 6 A-law)."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 8))
    gate = (np.sin(2 * math.pi * 1.5 * t) > 0).astype(float)
    pcm = (6000 * voiced * gate).astype(np.int16)
    encoding = {"PCMU": "mulaw", "PCMA": "alaw"}[codec]
    write_g711(path, bytes(g711.encode(encoding, pcm)), encoding, rate)
    return path


# --- sipp scenarios ------------------------------------------------------------------------------

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
"""
_DIALOG = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>{peer_tag}
      Call-ID: [call_id]
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
"""


def _invite(port_kw: str, pts: str, codecs: str, cseq: int = 1, auth: bool = False) -> str:
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{_DIALOG.format(peer_tag="")}      CSeq: {cseq} INVITE
{"      [authentication]" + chr(10) if auth else ""}      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [{port_kw}] RTP/AVP {pts} 101
{codecs}      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
    ]]>
  </send>
"""


def _request(method: str, cseq: int, extra: str = "", body: str = "") -> str:
    return f"""  <send retrans="500">
    <![CDATA[
      {method} [next_url] SIP/2.0
      [routes]
{_DIALOG.format(peer_tag="[peer_tag_param]")}      CSeq: {cseq} {method}
{extra}      Content-Length: [len]

{body}    ]]>
  </send>
"""


_ACK_2XX = """  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      [routes]
{dialog}      CSeq: {cseq} ACK
      Content-Length: 0
    ]]>
  </send>
"""
_ACK_FAILURE = """  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""
_OK_TO_REQUEST = """  <send>
    <![CDATA[
      SIP/2.0 {code}
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
"""


def _sdp_codecs(codecs: Sequence[str]) -> tuple[str, str]:
    pts = " ".join(str(PT.get(c, 9)) for c in codecs)
    lines = "".join(f"      a=rtpmap:{PT.get(c, 9)} {c}/8000\n" for c in codecs)
    return pts, lines


def call_scenario(
    *,
    codec: str = "PCMU",
    wav: Path | None = None,
    end: str = "caller",
    dtmf_rfc4733: str = "",
    dtmf_info: str = "",
    auth: bool = False,
    refer_to: str = "",
    wait_s: float = 20.0,
) -> str:
    """An answered call through a record-routing proxy (rrs, [routes], [next_url]).

    `wav`: RTP audio for the whole call (sipp rtp_stream; the SDP offers its port), else the SDP
    offers [media_port] (RFC 4733 DTMF is played from pcaps there). `end`: "caller" (BYE after the
    -d pause), "agent" (wait for the agent's BYE) or "refer" (wait for a REFER, accept it, then the
    BYE). `auth`: answer a 407 with Digest credentials (-au/-ap). `refer_to`: the caller sends a
    REFER there mid-call, which must be declined (603).
    """
    pts, rtpmap = _sdp_codecs([codec])
    port_kw = "rtpstream_audio_port" if wav is not None else "media_port"
    out = [_HEAD.format(name=f"parley-call-{end}")]
    cseq = 1
    if auth:
        out.append(_invite(port_kw, pts, rtpmap))
        out.append('  <recv response="100" optional="true"/>\n  <recv response="407" auth="true"/>\n')
        out.append(_ACK_FAILURE.format(cseq=1))
        cseq = 2
    out.append(_invite(port_kw, pts, rtpmap, cseq=cseq, auth=auth))
    out.append(
        '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
        '  <recv response="183" optional="true"/>\n  <recv response="200" rrs="true" rtd="true"/>\n'
    )
    out.append(_ACK_2XX.format(dialog=_DIALOG.format(peer_tag="[peer_tag_param]"), cseq=cseq))
    if wav is not None:
        out.append(f'  <nop><action><exec rtp_stream="{wav},-1,{PT[codec]}"/></action></nop>\n')
    for digit in dtmf_rfc4733:
        name = {"*": "star", "#": "pound"}.get(digit, digit)
        out.append(
            f'  <nop><action><exec play_pcap_audio="{DTMF_PCAP.format(digit=name)}"/></action></nop>\n'
        )
        out.append('  <pause milliseconds="400"/>\n')
    for digit in dtmf_info:
        cseq += 1
        out.append(
            _request(
                "INFO",
                cseq,
                "      Content-Type: application/dtmf-relay\n",
                f"      Signal={digit}\n      Duration=160\n",
            )
        )
        out.append('  <recv response="200"/>\n')
    if refer_to:
        cseq += 1
        out.append(
            _request(
                "REFER", cseq, f"      Refer-To: <{refer_to}>\n      Referred-By: <sip:caller@[local_ip]>\n"
            )
        )
        out.append('  <recv response="100" optional="true"/>\n  <recv response="603"/>\n')
    wait_ms = int(wait_s * 1000)
    if end == "caller":
        out.append("  <pause/>\n")
        out.append(_request("BYE", cseq + 1))
        out.append('  <recv response="200" crlf="true"/>\n')
    elif end == "agent":
        out.append(f'  <recv request="BYE" timeout="{wait_ms}"/>\n')
        out.append(_OK_TO_REQUEST.format(code="200 OK"))
    elif end == "refer":
        out.append(f'  <recv request="REFER" timeout="{wait_ms}"/>\n')
        out.append(_OK_TO_REQUEST.format(code="202 Accepted"))
        out.append(f'  <recv request="BYE" timeout="{wait_ms}"/>\n')
        out.append(_OK_TO_REQUEST.format(code="200 OK"))
    else:
        raise ValueError(f"end={end!r}")
    out.append("</scenario>\n")
    return "".join(out)


def refused_scenario(codes: Sequence[int], codec: str = "PCMU", auth: bool = False) -> str:
    """An INVITE that must end in one of `codes` (e.g. 486 or 503), then the ACK. With `auth`, a 407
    is answered with Digest credentials (-au/-ap) first."""
    pts, rtpmap = _sdp_codecs([codec])
    out = [_HEAD.format(name="parley-refused"), _invite("media_port", pts, rtpmap)]
    cseq = 1
    if auth:
        out.append('  <recv response="100" optional="true"/>\n  <recv response="407" auth="true"/>\n')
        out.append(_ACK_FAILURE.format(cseq=1))
        cseq = 2
        out.append(_invite("media_port", pts, rtpmap, cseq=cseq, auth=True))
    out.append('  <recv response="100" optional="true"/>\n')
    for code in codes[:-1]:
        out.append(f'  <recv response="{code}" optional="true" next="ack"/>\n')
    out.append(f'  <recv response="{codes[-1]}"/>\n  <label id="ack"/>\n')
    out.append(_ACK_FAILURE.format(cseq=cseq))
    out.append("</scenario>\n")
    return "".join(out)


# --- running sipp ----------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SippResult:
    def __init__(self, returncode: int, stats: dict, messages: str, logs: str, errors: str) -> None:
        self.returncode = returncode
        self.stats = stats
        self.messages = messages
        self.logs = logs
        self.errors = errors

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", 0))

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", 0))

    def __repr__(self) -> str:
        return (
            f"SippResult(rc={self.returncode}, ok={self.successful}, failed={self.failed}, "
            f"errors={self.errors[-600:]!r})"
        )


async def run_sipp(
    scenario: str,
    target: str,
    workdir: Path,
    *,
    service: str,
    calls: int = 1,
    rate: float = 10.0,
    hold_ms: int = 2000,
    source_ip: str = "127.0.0.1",
    transport: str = "u1",
    extra: Sequence[str] = (),
    timeout_s: float = 60.0,
    on_start: Callable[[asyncio.subprocess.Process], None] | None = None,
    local_port: int | None = None,
) -> SippResult:
    """Run one sipp UAC to completion: `calls` calls at `rate` per second, all concurrent. With
    `local_port`, its SIP port is that one (a UAS scenario answering on a known address)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise FileNotFoundError("sipp not found: install the Debian package `sip-tester` (make test does)")
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"s{os.getpid()}_{time.monotonic_ns()}"
    xml = workdir / f"{name}.xml"
    xml.write_text(scenario)
    stat, msgs, logs, errs = (workdir / f"{name}.{ext}" for ext in ("csv", "msg", "log", "err"))
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    argv = [
        sipp,
        "-sf",
        str(xml),
        "-s",
        service,
        target,
        "-i",
        source_ip,
        "-mi",
        source_ip,
        "-p",
        str(local_port or free_port(kind)),
        "-mp",
        str(free_port()),
        "-t",
        transport,
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-r",
        str(rate),
        "-d",
        str(hold_ms),
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
        "-trace_msg",
        "-message_file",
        str(msgs),
        "-trace_logs",
        "-log_file",
        str(logs),
        "-trace_err",
        "-error_file",
        str(errs),
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-cp",
        str(free_port()),
        "-max_socket",
        "1024",
        *extra,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        on_start(proc)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s + 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        err = b"sipp killed: over its timeout"
    stats: dict = {}
    if stat.exists():
        rows = [line.split(";") for line in stat.read_text().splitlines() if line.strip()]
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1], strict=False))
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return SippResult(
        proc.returncode or 0, stats, read(msgs), read(logs), read(errs) + err.decode(errors="replace")
    )


# --- a `parley sip` stack as a child process -----------------------------------------------------------


class SipStack:
    """`parley sip --events` as a child process; its JSON events collected as they come.

    `await stack.wait_for(predicate, timeout)` waits (without polling) until `predicate(events)`
    holds; `await stack.health()` fetches GET /healthz."""

    def __init__(
        self,
        workers: int,
        port: int,
        model_url: str,
        *,
        env: dict | None = None,
        host: str = "127.0.0.1",
        worker_port_base: int | None = None,
        rtp_port_base: int | None = None,
    ) -> None:
        self.workers = workers
        self.port = port
        self.model_url = model_url
        self.host = host
        self.env = {
            **os.environ,
            "PARLEY_SIP_WORKER_PORT_BASE": str(worker_port_base or free_port_block(workers)),
            # below Linux's ephemeral range (32768+), so no other socket sits among the RTP ports
            "PARLEY_SIP_RTP_PORT_BASE": str(rtp_port_base or 20000 + (os.getpid() % 60) * 200),
            **(env or {}),
        }
        self.events: list[dict] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> SipStack:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self, timeout_s: float = 60.0) -> None:
        argv = [
            sys.executable,
            "-m",
            "parley.cli",
            "sip",
            "--workers",
            str(self.workers),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--model-url",
            self.model_url,
            "--health-port",
            "0",
            "--events",
        ]
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            await self.wait_for(lambda ev: any(e.get("event") in ("ready", "stopped") for e in ev), timeout_s)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("parley sip did not become ready") from None
        ready = [e for e in self.events if e.get("event") == "ready"]
        if not ready:
            await self.stop()
            raise RuntimeError(f"parley sip stopped while starting: {self.events[-3:]}")
        self.ready = ready[0]

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        async with self._changed:
            self.events.append({"event": "eof"})
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.events)), timeout)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    async def health(self, path: str = "/healthz") -> dict:
        assert self.ready is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ready["health_port"])
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def pids(self) -> list[int]:
        """The supervisor, its workers and every Kamailio process (for CPU accounting)."""
        if self.proc is None:
            return []
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(_children(pid))
        return out

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)


def free_port_block(count: int, attempts: int = 200) -> int:
    """A base port whose next `count` UDP ports are free on 127.0.0.1 now, below Linux's ephemeral
    range (32768+): a socket bound to port 0 (sipp's, a client's) never lands among them, so a
    killed worker's SIP port is still free when its supervisor restarts it."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(attempts):
        base = rng.randrange(10000, 20000 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of UDP ports")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _children_cpu() -> float:
    """CPU time of this process's finished children (the sipp runs, once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


# --- the benchmark ---------------------------------------------------------------------------------


def _loss(records: list[dict]) -> dict:
    rtp = collections.Counter()
    agent = collections.Counter()
    for r in records:
        for key in ("rx_lost", "jb_lost", "jb_discarded", "rx_packets", "tx_packets"):
            rtp[key] += int((r.get("rtp") or {}).get(key) or 0)
        rtp["jitter_max_ms"] = max(
            rtp["jitter_max_ms"], float((r.get("rtp") or {}).get("rx_jitter_max_ms") or 0)
        )
        for key in (
            "agent_underrun_ms",
            "agent_dropped_ms",
            "agent_audio_ms",
            "caller_frames",
            "caller_frames_to_model",
        ):
            agent[key] += int(r.get(key) or 0)
    return {
        "caller_rtp_packets_lost": rtp["rx_lost"] + rtp["jb_lost"] + rtp["jb_discarded"],
        "rtp_lost_detail": {k: rtp[k] for k in ("rx_lost", "jb_lost", "jb_discarded")},
        "caller_rtp_loss_rate": round(
            (rtp["rx_lost"] + rtp["jb_lost"] + rtp["jb_discarded"]) / max(1, rtp["rx_packets"]), 6
        ),
        "caller_rtp_jitter_max_ms": rtp["jitter_max_ms"],
        "agent_audio_lost_ms": agent["agent_underrun_ms"] + agent["agent_dropped_ms"],
        "rtp_packets_in": rtp["rx_packets"],
        "rtp_packets_out": rtp["tx_packets"],
        "caller_frames": agent["caller_frames"],
        "caller_frames_not_sent_to_model": agent["caller_frames"] - agent["caller_frames_to_model"],
        "agent_audio_played_s": round(agent["agent_audio_ms"] / 1000, 1),
    }


async def _bench(calls: int, seconds: float, ladder: bool, codec: str) -> dict:
    from bench.procs import child
    from bench.procs import free_port as free_tcp_port

    workers = max(2, math.ceil(calls / 4))
    steps = sorted({n for n in (4, 8, 16, 32, 64, 128, 256) if n < calls} | {calls}) if ladder else [calls]
    model_port = free_tcp_port()
    port = free_port()
    out: dict = {
        "calls": calls,
        "seconds": seconds,
        "workers": workers,
        "codec": codec,
        "load_average_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "steps": [],
    }
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-sip-") as tmp,
        child(
            ["-m", "bench.echo_model", "--port", str(model_port)],
            f"http://127.0.0.1:{model_port}/healthz",
            "echo-model",
        ) as echo,
    ):
        work = Path(tmp)
        wav = write_g711_wav(work / f"caller_{codec}.wav", codec)
        env = {"PARLEY_SIP_NUMBERS": json.dumps({"100": "support"}), "PARLEY_SIP_PJSIP_LOG_LEVEL": "0"}
        async with SipStack(workers, port, f"ws://127.0.0.1:{model_port}/session", env=env) as stack:
            scenario = call_scenario(codec=codec, wav=wav)
            for n in steps:
                before_end = len(stack.of("call_end"))
                pids = stack.pids()
                cpu0, t0 = cpu_seconds(pids), time.monotonic()
                echo0, callers0 = cpu_seconds([echo.pid]), _children_cpu()
                result = await run_sipp(
                    scenario,
                    f"127.0.0.1:{port}",
                    work,
                    service="100",
                    calls=n,
                    rate=min(50.0, n * 2.0),
                    hold_ms=int(seconds * 1000),
                    timeout_s=seconds + 60,
                )
                wall = time.monotonic() - t0
                cpu = cpu_seconds(pids) - cpu0
                echo_cpu, callers_cpu = cpu_seconds([echo.pid]) - echo0, _children_cpu() - callers0
                expect = before_end + result.successful + result.failed
                with contextlib.suppress(asyncio.TimeoutError):
                    await stack.wait_for(
                        lambda ev, expect=expect: (
                            len([e for e in ev if e.get("event") == "call_end"]) >= expect
                        ),
                        15,
                    )
                records = stack.of("call_end")[before_end:]
                answered = sum(1 for r in records if r.get("answered"))
                loss = _loss(records)
                held = (
                    answered == n
                    and result.failed == 0
                    and loss["caller_rtp_packets_lost"] == 0
                    and loss["agent_audio_lost_ms"] == 0
                )
                call_seconds = sum(float(r.get("duration_s") or 0) for r in records) or n * seconds
                step = {
                    "calls": n,
                    "answered": answered,
                    "sipp_failed": result.failed,
                    "held_without_loss": held,
                    "wall_s": round(wall, 2),
                    "gateway_cpu_s": round(cpu, 2),
                    "cpu_per_call_share_of_core": round(cpu / call_seconds, 4),
                    "cpu_ms_per_call_second": round(1000 * cpu / call_seconds, 2),
                    "callers_sipp_cpu_s": round(callers_cpu, 2),
                    "echo_model_cpu_s": round(echo_cpu, 2),
                    **loss,
                }
                out["steps"].append(step)
                if answered < n:  # past capacity: larger steps can only be worse
                    break
            out["kamailio_destinations"] = (await stack.health()).get("kamailio", {}).get("destinations")
    held_steps = [s["calls"] for s in out["steps"] if s["held_without_loss"]]
    last = out["steps"][-1]
    out.update(
        {
            "answered": last["answered"],
            "frames_lost": {
                "caller_rtp_packets": last["caller_rtp_packets_lost"],
                "agent_audio_ms": last["agent_audio_lost_ms"],
            },
            "cpu_per_call_share_of_core": last["cpu_per_call_share_of_core"],
            "largest_calls_held_without_loss": max(held_steps) if held_steps else 0,
            "load_average_after": os.getloadavg(),
        }
    )
    return out


def run(calls: int, seconds: float, *, ladder: bool = True, codec: str = "PCMU") -> dict:
    return asyncio.run(_bench(calls, seconds, ladder, codec))
