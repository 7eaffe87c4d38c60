"""`parley sip --workers 3` behind Kamailio, called by real sipp UACs on loopback.

One stack for the module: Kamailio on the public port, three pjsua2 workers (4 calls each), a
scripted fake model server (tests/telephony/sip/conftest.py) in this process. Each call's record comes from
its worker as a `call_end` event (RTP counters from pjsua2, frames through the FramePort); the
model side is checked on the fake server's sessions. Every wait is on an event, with a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import socket
from pathlib import Path

import pytest
import pytest_asyncio

from bench.sip import SipStack, call_scenario, refused_scenario, run_sipp, write_g711_wav
from tests.telephony.sip.conftest import (
    NUMBERS,
    TRUNKS,
    ScriptedModel,
    assert_heard_the_agent,
    baresip_call,
    free_sip_port,
    need,
    need_pjsua2,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

SUPPORT, TRANSLATE, UNKNOWN = "+15550001", "+15550002", "+15559999"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model():
    async with ScriptedModel() as m:
        yield m


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(model):
    need("kamailio"), need("kamcmd"), need("sipp"), need_pjsua2()
    env = {
        "PARLEY_SIP_NUMBERS": json.dumps(NUMBERS),
        "PARLEY_SIP_TRUNKS": TRUNKS,
        "PARLEY_SIP_PROBE_INTERVAL_S": "1",
        "PARLEY_SIP_FR_TIMER_MS": "1000",
    }
    async with SipStack(3, free_sip_port(), model.url, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wav")
    return {c: write_g711_wav(d / f"{c}.wav", c) for c in ("PCMU", "PCMA")}


def target(stack: SipStack) -> str:
    return f"127.0.0.1:{stack.port}"


def ends(stack: SipStack, since: int) -> list[dict]:
    return stack.of("call_end")[since:]


async def wait_ends(stack: SipStack, since: int, count: int, timeout: float = 20.0) -> list[dict]:
    await stack.wait_for(
        lambda ev: len([e for e in ev if e.get("event") == "call_end"]) >= since + count, timeout
    )
    return ends(stack, since)


def assert_media(record: dict, seconds: float) -> None:
    """Audio went both ways for the whole call and nothing was lost on the way."""
    frames = int(seconds * 5)
    assert record["answered"], record
    assert record["caller_frames"] >= frames - 2, record  # 200 ms frames from the bridge
    assert record["caller_frames_to_model"] == record["caller_frames"], record
    assert record["agent_audio_ms"] >= (frames - 4) * 200, record  # the model's echo reached the bridge
    assert record["agent_dropped_ms"] == 0 and record["agent_underrun_ms"] == 0, record
    rtp = record["rtp"]
    assert rtp["rx_packets"] >= 50 * seconds - 25 and rtp["tx_packets"] >= 50 * seconds - 25, record
    assert rtp["rx_lost"] == 0, record


async def test_calls_spread_over_workers_with_media_both_ways_and_the_thirteenth_is_refused(
    stack, model, wavs, tmp_path
):
    since, sessions = len(stack.of("call_end")), len(model.sessions)
    pcmu = asyncio.create_task(
        run_sipp(
            call_scenario(codec="PCMU", wav=wavs["PCMU"]),
            target(stack),
            tmp_path,
            service=SUPPORT,
            calls=8,
            rate=40,
            hold_ms=3000,
        )
    )
    pcma = asyncio.create_task(
        run_sipp(
            call_scenario(codec="PCMA", wav=wavs["PCMA"]),
            target(stack),
            tmp_path,
            service=TRANSLATE,
            calls=4,
            rate=40,
            hold_ms=3000,
        )
    )
    starts = len(stack.of("call_start"))
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "call_start"]) >= starts + 12, 20)
    full = await run_sipp(refused_scenario([486, 503]), target(stack), tmp_path, service=SUPPORT)
    u, a = await pcmu, await pcma
    assert (u.successful, a.successful, full.successful) == (8, 4, 1), (u, a, full)
    records = await wait_ends(stack, since, 12)
    assert collections.Counter(r["worker"] for r in records) == {0: 4, 1: 4, 2: 4}  # call-load balancing
    assert collections.Counter(r["codec"] for r in records) == {"PCMU": 8, "PCMA": 4}
    assert collections.Counter(r["agent"] for r in records) == {"support": 8, "translate-en-es": 4}
    for r in records:
        assert r["end_by"] == "caller"
        assert_media(r, 3.0)
    # every model session was closed when its caller hung up: the model server's slots are free
    await model.wait_for(lambda: model.live == 0, 10)
    new = model.sessions[sessions:]
    assert len(new) == 12 and all(s.closed and s.frames >= 13 for s in new)
    assert all(("caller_hangup", "caller hung up") in s.events for s in new)


async def test_a_tcp_caller_through_kamailio(stack, wavs, tmp_path):
    since = len(stack.of("call_end"))
    r = await run_sipp(
        call_scenario(codec="PCMU", wav=wavs["PCMU"]),
        target(stack),
        tmp_path,
        service=SUPPORT,
        transport="t1",
        hold_ms=2000,
    )
    assert r.successful == 1, r
    assert_media((await wait_ends(stack, since, 1))[0], 2.0)


async def test_baresip_through_kamailio_hears_the_agent(stack, model, tmp_path):
    """A second, independent user agent: baresip calls the public port, Kamailio hands the call to a
    worker, and what baresip records is the agent's audio (the scripted model echoes the caller)."""
    since, sessions = len(stack.of("call_end")), len(model.sessions)
    log, pcm, rate = await baresip_call(target(stack), SUPPORT, tmp_path, codec="PCMA")
    assert "Call established" in log, log[-2000:]
    record = (await wait_ends(stack, since, 1))[0]
    assert record["codec"] == "PCMA" and record["answered"] and record["end_by"] == "caller", record
    assert record["caller_frames"] >= 15 and record["agent_audio_ms"] >= 12 * 200, record
    assert_heard_the_agent(pcm, rate)
    assert len(model.sessions) == sessions + 1 and model.sessions[-1].frames >= 15


async def test_unknown_numbers_strangers_and_wrong_passwords_are_refused(stack, wavs, tmp_path):
    unknown = await run_sipp(refused_scenario([404]), target(stack), tmp_path, service=UNKNOWN)
    assert unknown.successful == 1, unknown
    stranger = await run_sipp(
        refused_scenario([407]), target(stack), tmp_path, service=SUPPORT, source_ip="127.0.0.2"
    )
    assert stranger.successful == 1, stranger
    wrong = await run_sipp(
        refused_scenario([403], auth=True),
        target(stack),
        tmp_path,
        service=SUPPORT,
        source_ip="127.0.0.2",
        extra=["-au", "pbx", "-ap", "guess"],
    )
    assert wrong.successful == 1, wrong
    since = len(stack.of("call_end"))
    pbx = await run_sipp(
        call_scenario(codec="PCMU", wav=wavs["PCMU"], auth=True),
        target(stack),
        tmp_path,
        service=SUPPORT,
        source_ip="127.0.0.2",
        extra=["-au", "pbx", "-ap", "s3cret"],
        hold_ms=1500,
    )
    assert pbx.successful == 1, pbx
    assert (await wait_ends(stack, since, 1))[0]["answered"]


async def test_dtmf_by_rfc4733_and_sip_info_reaches_the_model(stack, model, tmp_path):
    since, sessions = len(stack.of("call_end")), len(model.sessions)
    r = await run_sipp(
        call_scenario(codec="PCMU", dtmf_rfc4733="1", dtmf_info="5#"),
        target(stack),
        tmp_path,
        service=SUPPORT,
        hold_ms=800,
    )
    assert r.successful == 1, r
    record = (await wait_ends(stack, since, 1))[0]
    assert record["dtmf"] == 3
    session = model.sessions[sessions]
    await model.wait_for(lambda: session.closed, 5)
    assert [p for k, p in session.events if k == "dtmf"] == ["1", "5", "#"]


async def test_the_agent_hangs_up(stack, model, wavs, tmp_path):
    since = len(stack.of("call_end"))
    model.plan.append("hangup")
    r = await run_sipp(
        call_scenario(codec="PCMU", wav=wavs["PCMU"], end="agent", wait_s=10),
        target(stack),
        tmp_path,
        service=SUPPORT,
    )
    assert r.successful == 1, r  # the caller received the agent's BYE (through Kamailio) and answered it
    record = (await wait_ends(stack, since, 1))[0]
    assert record["end_by"] == "agent" and record["end_reason"] == "the agent ended the call"


async def test_transfer_sends_a_blind_refer_to_the_handoff_number(stack, model, wavs, tmp_path):
    since, sessions = len(stack.of("call_end")), len(model.sessions)
    model.plan.append("transfer")
    r = await run_sipp(
        call_scenario(codec="PCMU", wav=wavs["PCMU"], end="refer", wait_s=10),
        target(stack),
        tmp_path,
        service=SUPPORT,
    )
    assert r.successful == 1, r
    assert (
        "Refer-To: <sip:+15555550100@127.0.0.1" in r.messages or "Refer-To: sip:+15555550100@" in r.messages
    )
    record = (await wait_ends(stack, since, 1))[0]
    assert record["transfer"] == "accepted" and record["end_by"] == "agent"
    session = model.sessions[sessions]
    assert not [e for e in session.events if e[0] == "tool_error"]  # the transfer was not refused


async def test_a_callers_refer_is_declined_and_no_call_goes_out(stack, wavs, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trap:
        trap.bind(("127.0.0.1", 0))
        trap.setblocking(False)
        toll = f"sip:+19005550100@127.0.0.1:{trap.getsockname()[1]}"
        r = await run_sipp(
            call_scenario(codec="PCMU", wav=wavs["PCMU"], refer_to=toll),
            target(stack),
            tmp_path,
            service=SUPPORT,
            hold_ms=1000,
        )
        assert r.successful == 1, r  # the REFER got 603 and the call went on to the caller's BYE
        with pytest.raises(BlockingIOError):
            trap.recv(65535)  # no INVITE was sent to the Refer-To target


async def test_a_killed_worker_is_routed_around_and_restarted(stack, wavs, tmp_path):
    health = await stack.health()
    victim = health["workers"][1]
    assert victim["live"] == 0
    exits = len(stack.of("worker_exit"))
    os.kill(victim["pid"], signal.SIGKILL)
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "worker_exit"]) > exits, 10)
    since = len(stack.of("call_end"))
    r = await run_sipp(
        call_scenario(codec="PCMU", wav=wavs["PCMU"]),
        target(stack),
        tmp_path,
        service=SUPPORT,
        calls=8,
        rate=40,
        hold_ms=2000,
    )
    assert r.successful == 8, r  # the two live workers take them (a call sent to the dead one fails over)
    assert len(await wait_ends(stack, since, 8)) == 8
    # the supervisor starts it again and Kamailio's probing brings it back
    await stack.wait_for(lambda ev: any(e.get("event") == "ready" and e.get("worker") == 1 for e in ev), 20)
    for _ in range(40):
        health = await stack.health()
        if set(health["kamailio"]["destinations"].values()) == {"AP"}:
            break
        await asyncio.sleep(0.25)  # Kamailio only says by RPC; its probe interval is 1 s here
    assert health["workers"][1]["restarts"] == 1 and health["status"] == "ok"
    assert set(health["kamailio"]["destinations"].values()) == {"AP"}, health["kamailio"]


def _garbage(rng: random.Random) -> list[bytes]:
    big = "X-Junk: " + "a" * 60000
    return [
        rng.randbytes(rng.randint(1, 1400)),
        b"\x00" * 200,
        b"INVITE sip:+15550001@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers at all
        (
            b"INVITE sip:+15550001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
            b"Content-Length: 99999\r\n\r\nv=0"
        ),  # a body that never comes
        f"OPTIONS sip:x SIP/2.0\r\n{big}\r\n\r\n".encode(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9:1;branch=z9hG4bKnope\r\n\r\n",  # a stray response
        bytes([0x80, 0x00]) + rng.randbytes(170),  # RTP-looking
    ]


async def test_bad_input_does_not_touch_the_calls_in_progress(stack, wavs, tmp_path):
    rng = random.Random(6)
    health = await stack.health()
    exits = len(stack.of("worker_exit"))
    since = len(stack.of("call_end"))
    calls = asyncio.create_task(
        run_sipp(
            call_scenario(codec="PCMU", wav=wavs["PCMU"]),
            target(stack),
            tmp_path,
            service=SUPPORT,
            calls=2,
            rate=20,
            hold_ms=6000,
        )
    )
    starts = len(stack.of("call_start"))
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "call_start"]) >= starts + 2, 10)
    sip_ports = [stack.port] + list(stack.ready["worker_ports"])
    rtp_base = int(stack.env["PARLEY_SIP_RTP_PORT_BASE"])
    rtp_ports = [rtp_base + 100 * w + k for w in range(3) for k in range(50)]

    async def spray(rounds: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(rounds):
                for port in sip_ports:
                    for payload in _garbage(rng):
                        s.sendto(payload, ("127.0.0.1", port))
                for port in rtp_ports:
                    s.sendto(rng.randbytes(rng.randint(12, 200)), ("127.0.0.1", port))
                await asyncio.sleep(0.1)
        for port in sip_ports[:1]:  # and over TCP: garbage, then a connection that just hangs
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(rng.randbytes(3000) + b"\r\n\r\n")
            await writer.drain()
            writer.close()

    flood_stranger = run_sipp(
        refused_scenario([407]),
        target(stack),
        tmp_path,
        service=SUPPORT,
        calls=300,
        rate=200,
        source_ip="127.0.0.2",
    )
    flood_unknown = run_sipp(
        refused_scenario([404]), target(stack), tmp_path, service=UNKNOWN, calls=100, rate=60
    )
    stranger, unknown, _ = await asyncio.gather(flood_stranger, flood_unknown, spray(25))
    assert stranger.successful >= 290 and unknown.successful >= 95, (
        stranger,
        unknown,
    )  # answered, not dropped
    r = await calls
    assert r.successful == 2, r
    for record in await wait_ends(stack, since, 2):
        assert_media(record, 6.0)
    after = await stack.health()
    assert len(stack.of("worker_exit")) == exits  # nothing crashed
    assert after["status"] == "ok" and after["kamailio"]["pid"] == health["kamailio"]["pid"]
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in health["workers"]]
