"""`parley sip --workers 1`: one pjsua2 worker on the public port (no Kamailio) answering real
callers, with the real model server (tiny preset, random weights) behind it.

baresip (a second, independent SIP user agent) calls with a caller WAV over G.722 and records
what it hears; the worker itself does the trunk check (digest authentication) and pjsua's own
limit refuses a fifth concurrent call.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio

from bench.sip import SipStack, call_scenario, free_port_block, refused_scenario, run_sipp, write_g711_wav
from tests.telephony.sip.conftest import (
    NUMBERS,
    TRUNKS,
    assert_heard_the_agent,
    baresip_call,
    free_sip_port,
    need,
    need_pjsua2,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server():
    torch = pytest.importorskip("torch")
    from model.config import ModelConfig
    from model.interaction import InteractionModel
    from model.runner import Runner
    from model.server import ModelServer, ModelServerSettings

    torch.manual_seed(11)
    tiny = InteractionModel(ModelConfig.from_name("tiny")).eval()
    async with ModelServer(Runner(tiny, 4), ModelServerSettings(port=0, max_slots=4), model_name="tiny") as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(server):
    need("sipp"), need_pjsua2()
    env = {"PARLEY_SIP_NUMBERS": json.dumps(NUMBERS), "PARLEY_SIP_TRUNKS": TRUNKS}
    async with SipStack(1, free_sip_port(), server.url, env=env, rtp_port_base=free_port_block(50)) as s:
        yield s


async def test_baresip_over_g722_hears_the_agent(stack, server, tmp_path):
    since, ended = len(stack.of("call_end")), len(server.ended)
    log, pcm, rate = await baresip_call(f"127.0.0.1:{stack.port}", "+15550001", tmp_path)
    assert "Call established" in log, log[-2000:]
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "call_end"]) > since, 20)
    record = stack.of("call_end")[since]
    assert record["codec"] == "G722" and record["answered"] and record["end_by"] == "caller", record
    assert record["caller_frames"] >= 15 and record["agent_audio_ms"] >= 12 * 200, record
    assert_heard_the_agent(pcm, rate)
    # the model session ended with the call and its slot is free again
    await asyncio.wait_for(_until(lambda: len(server.ended) > ended), 10)
    session = server.ended[-1]
    assert session["frames"] >= 15
    # Every frame was stepped, or dropped or skipped and counted, or still queued at the hang-up;
    # how many of each is up to how fast this machine steps the model (bench/, not a test).
    queued = session["frames"] - session["stepped"] - session["dropped"] - session["skipped"]
    assert 0 <= queued <= server.settings.max_queued_frames, session
    assert server.health()["active"] == 0


async def _until(predicate) -> None:
    """ModelServer has no condition to wait on (its `ended` list just grows): check it, bounded by
    the caller's timeout, as tests/test_e2e.py does."""
    while not predicate():
        await asyncio.sleep(0.05)


async def test_the_worker_checks_trunks_itself(stack, tmp_path):
    stranger = await run_sipp(
        refused_scenario([407]),
        f"127.0.0.1:{stack.port}",
        tmp_path,
        service="+15550001",
        source_ip="127.0.0.2",
    )
    assert stranger.successful == 1, stranger
    wrong = await run_sipp(
        refused_scenario([403], auth=True),
        f"127.0.0.1:{stack.port}",
        tmp_path,
        service="+15550001",
        source_ip="127.0.0.2",
        extra=["-au", "pbx", "-ap", "nope"],
    )
    assert wrong.successful == 1, wrong
    pbx = await run_sipp(
        call_scenario(codec="PCMA", auth=True),
        f"127.0.0.1:{stack.port}",
        tmp_path,
        service="+15550001",
        source_ip="127.0.0.2",
        extra=["-au", "pbx", "-ap", "s3cret"],
        hold_ms=600,
    )
    assert pbx.successful == 1, pbx
    unknown = await run_sipp(
        refused_scenario([404]), f"127.0.0.1:{stack.port}", tmp_path, service="+15559999"
    )
    assert unknown.successful == 1, unknown


async def test_a_fifth_concurrent_call_is_busy(stack, tmp_path):
    wav = write_g711_wav(tmp_path / "u.wav", "PCMU", seconds=2.0)
    since = len(stack.of("call_end"))
    four = asyncio.create_task(
        run_sipp(
            call_scenario(codec="PCMU", wav=wav),
            f"127.0.0.1:{stack.port}",
            tmp_path,
            service="+15550001",
            calls=4,
            rate=40,
            hold_ms=2500,
        )
    )
    starts = len(stack.of("call_start"))
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "call_start"]) >= starts + 4, 15)
    busy = await run_sipp(refused_scenario([486]), f"127.0.0.1:{stack.port}", tmp_path, service="+15550001")
    assert busy.successful == 1, busy
    assert (await four).successful == 4
    await stack.wait_for(lambda ev: len([e for e in ev if e.get("event") == "call_end"]) >= since + 4, 15)
    assert all(r["answered"] for r in stack.of("call_end")[since:])
