"""Translation lines over SIP with real peers on loopback: party A (a sipp UAC) calls a translation
number on `parley sip --workers 2` behind Kamailio; a worker dials party B through Kamailio to the
outbound trunk, where a sipp UAS plays the callee (answering, busy, declining, never answering).

The lines live in the admin API's Redis (a real redis-server, written with the admin store), the
interpreters are the fake model server's: each direction speaks at its own level. What is asserted
is what the peers and the records saw: B's INVITE (or none), BYEs on both sides, each leg's RTP
and interpreter audio, the notice A heard, and the call's one record with the reason. Every wait
is on an event or a process, with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from admin.store.numbers import NumberStore
from agent.lines import TranslationLine
from bench.sip import SipStack, call_scenario, free_port, run_sipp, write_g711_wav
from procs.redis_server import EmbeddedRedis
from tests.fakes.model_server import FakeModelServer, Step
from tests.telephony.sip.conftest import free_sip_port, need, need_pjsua2

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

CALLEE = "+34911234567"
FIXED, QUICK, KEYED = "+15550100", "+15550101", "+15550102"  # translation numbers
EN_ES_LEVEL, ES_EN_LEVEL = 9000, 5000


def interpreters(seq: int, session) -> Step:
    if session.config.startswith("translate-en-es|"):
        return Step("speak", text="hola " if seq % 5 == 0 else "", audio=EN_ES_LEVEL)
    return Step("speak", text="hello " if seq % 5 == 0 else "", audio=ES_EN_LEVEL)


# --- the callee: sipp UAS scenarios behind the outbound trunk's address ------------------------------
_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="callee">\n'
_CAPTURE = {  # what a scenario keeps of the INVITE (sipp refuses a variable it never uses)
    "caller": '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller"/>',
    "callee": '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="callee"/>',
    "invite_cseq": '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>',
}


def _invite(*keep: str) -> str:
    actions = "".join(f"      {_CAPTURE[k]}\n" for k in ("callee", *keep))
    return f'  <recv request="INVITE" rrs="true">\n    <action>\n{actions}    </action>\n  </recv>\n'


def _reply(status: str, sdp: bool = False, cseq: str = "[last_CSeq:]") -> str:
    body = (
        "      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n"
        "      o=callee 1 1 IN IP[local_ip_type] [local_ip]\n      s=-\n"
        "      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n"
        "      m=audio [rtpstream_audio_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n      a=ptime:20\n"
        if sdp
        else "      Content-Length: 0\n"
    )
    return f"""  <send{' retrans="500"' if sdp else ""}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      To:[$callee];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      {cseq}
      [last_Record-Route:]
      Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
{body}    ]]>
  </send>
"""


_BYE = """  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From:[$callee];tag=[pid]SIPpTag01[call_number]
      To:[$caller]
      [last_Call-ID:]
      CSeq: 1 BYE
      Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""
_OK = """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""


def answering(wav, hangs_up_after_ms: int | None = None) -> str:
    """Rings, answers with RTP (the WAV, looped), then waits for the BYE, or sends its own."""
    keep = () if hangs_up_after_ms is None else ("caller",)
    out = [_HEAD, _invite(*keep), _reply("180 Ringing"), _reply("200 OK", sdp=True)]
    out.append('  <recv request="ACK" crlf="true"/>\n')
    out.append(f'  <nop><action><exec rtp_stream="{wav},-1,0"/></action></nop>\n')
    if hangs_up_after_ms is None:
        out.append('  <recv request="BYE" timeout="30000"/>\n' + _OK)
    else:
        out.append(f'  <pause milliseconds="{hangs_up_after_ms}"/>\n' + _BYE)
    return "".join(out) + "</scenario>\n"


def refusing(status: str) -> str:
    return "".join(
        [_HEAD, _invite(), _reply("180 Ringing"), _reply(status), '  <recv request="ACK"/>\n</scenario>\n']
    )


def never_answering() -> str:
    """Rings until the caller cancels: 200 to the CANCEL, 487 to the INVITE."""
    out = [
        _HEAD,
        _invite("invite_cseq"),
        _reply("180 Ringing"),
        '  <recv request="CANCEL" timeout="30000"/>\n',
        _OK,
    ]
    out.append(_reply("487 Request Terminated", cseq="CSeq: [$invite_cseq] INVITE"))
    return "".join(out) + '  <recv request="ACK"/>\n</scenario>\n'


# --- fixtures -------------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model():
    async with FakeModelServer(interpreters) as m:
        yield m


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return free_port()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lines(redis_server):
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    numbers = NumberStore(client)
    allow = {"numbers": [CALLEE], "prefixes": ["+3493"]}
    fixed = {"callee_agent": "translate-es-en", "dial": "fixed", "callee_number": CALLEE, "allow": allow}
    for number, line in (
        (FIXED, fixed),
        (QUICK, {**fixed, "ring_timeout_s": 5}),
        (KEYED, {"callee_agent": "translate-es-en", "dial": "dtmf", "allow": allow, "dtmf_timeout_s": 3}),
    ):
        checked = TranslationLine.model_validate(line).model_dump(mode="json")
        await numbers.create(number, "translate-en-es", "test line", checked)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(model, redis_server, lines, trunk_port):
    need("kamailio"), need("kamcmd"), need("sipp"), need_pjsua2()
    env = {
        "REDIS_URL": redis_server.url,
        "PARLEY_BACKGROUND_ENABLED": "false",
        "PARLEY_SIP_OUTBOUND_TRUNK": f"127.0.0.1:{trunk_port}",
        "PARLEY_SIP_NUMBERS": "{}",
        "PARLEY_SIP_PROBE_INTERVAL_S": "1",
    }
    async with SipStack(2, free_sip_port(), model.url, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return write_g711_wav(tmp_path_factory.mktemp("wav") / "u.wav", "PCMU", seconds=2.0)


def target(stack: SipStack) -> str:
    return f"127.0.0.1:{stack.port}"


def callee(scenario: str, tmp_path, trunk_port: int):
    """The callee as a sipp UAS on the trunk's address, answering one call."""
    return asyncio.create_task(
        run_sipp(
            scenario,
            "127.0.0.1:9",
            tmp_path / "callee",
            service="callee",
            local_port=trunk_port,
            timeout_s=45,
        )
    )


async def call_ends(stack: SipStack, since: int, count: int, timeout: float = 30.0) -> list[dict]:
    await stack.wait_for(
        lambda ev: len([e for e in ev if e.get("event") == "call_end"]) >= since + count, timeout
    )
    return stack.of("call_end")[since:]


async def record(redis: aioredis.Redis, call_id: str) -> dict:
    for _ in range(100):  # the record is written as the worker's calls finish: bounded wait
        raw = await redis.get(f"parley:call:rec:{call_id}")
        if raw:
            return json.loads(raw)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no record for call {call_id}")


def legs(ends: list[dict]) -> tuple[dict, dict | None]:
    a = next(e for e in ends if e.get("direction") == "inbound")
    b = next((e for e in ends if e.get("direction") == "outbound"), None)
    return a, b


# --- the calls ------------------------------------------------------------------------------------
async def test_b_answers_each_side_hears_its_interpreter_and_a_hanging_up_ends_both(
    stack, model, lines, wav, trunk_port, tmp_path
):
    since, sessions = len(stack.of("call_end")), len(model.sessions)
    b = callee(answering(wav), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav), target(stack), tmp_path, service=FIXED, hold_ms=5000
    )
    assert a.successful == 1, a
    assert (await b).successful == 1, "B got the BYE when A hung up"
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end is not None and b_end["dial"] == "answered" and b_end["end_by"] == "agent", b_end
    assert a_end["end_by"] == "caller", a_end
    for leg in (a_end, b_end):  # each leg got RTP from its interpreter, and sent its own speech
        assert leg["answered"] and leg["agent_audio_ms"] >= 1000 and leg["caller_frames"] >= 5, leg
        assert leg["rtp"]["tx_packets"] >= 50 and leg["rtp"]["rx_packets"] >= 50, leg
    new = model.sessions[sessions:]
    assert sorted(s.config.split("|")[0] for s in new) == ["translate-en-es", "translate-es-en"]
    await model.wait_for(lambda: all(s.closed for s in new), 10)
    rec = await record(lines, a_end["call_id"])
    assert rec["dial"]["status"] == "answered" and rec["dial"]["mode"] == "fixed", rec["dial"]
    assert [leg["party"] for leg in rec["bridge"]["legs"]] == ["a", "b"]
    assert rec["bridge"]["legs"][1]["call_id"] == b_end["call_id"]
    assert rec["ended"]["by"] == "party_a"


async def test_b_hanging_up_ends_as_call(stack, lines, wav, trunk_port, tmp_path):
    since = len(stack.of("call_end"))
    b = callee(answering(wav, hangs_up_after_ms=3000), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav, end="agent", wait_s=20), target(stack), tmp_path, service=FIXED
    )
    assert a.successful == 1, a  # A got Parley's BYE after B's
    assert (await b).successful == 1
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end["end_by"] == "caller" and a_end["end_by"] == "agent", (a_end, b_end)
    assert a_end["end_reason"] == "the other party hung up"
    assert (await record(lines, a_end["call_id"]))["ended"]["by"] == "party_b"


@pytest.mark.parametrize(
    "status,kind,reason",
    [
        ("486 Busy Here", "busy", "the other party is busy"),
        ("603 Decline", "rejected", "the other party declined the call"),
    ],
)
async def test_b_busy_or_declining_ends_as_call_with_the_reason(
    stack, lines, wav, trunk_port, tmp_path, status, kind, reason
):
    since = len(stack.of("call_end"))
    b = callee(refusing(status), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav, end="agent", wait_s=20), target(stack), tmp_path, service=FIXED
    )
    assert a.successful == 1, a  # answered, told, and hung up by Parley
    assert (await b).successful == 1
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end["dial"] == kind and b_end["sip_status"] == int(status[:3]) and not b_end["answered"]
    assert a_end["end_by"] == "agent" and a_end["end_reason"] == reason, a_end
    assert a_end["agent_audio_ms"] >= 1000, a_end  # the notice
    rec = await record(lines, a_end["call_id"])
    assert rec["dial"]["status"] == kind and rec["dial"]["sip_status"] == int(status[:3])
    assert rec["ended"]["reason"] == reason and rec["bridge"] is None


async def test_b_never_answering_is_cancelled_after_the_ring_timeout(stack, lines, wav, trunk_port, tmp_path):
    since = len(stack.of("call_end"))
    b = callee(never_answering(), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav, end="agent", wait_s=30), target(stack), tmp_path, service=QUICK
    )
    assert a.successful == 1, a
    assert (await b).successful == 1, "B's ringing was cancelled"
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end["dial"] == "no_answer" and not b_end["answered"], b_end
    assert a_end["end_reason"] == "the other party did not answer within 5 s", a_end
    assert (await record(lines, a_end["call_id"]))["dial"]["status"] == "no_answer"


@pytest.mark.parametrize(
    "keys,kind",
    [("0019005550100#", "not_allowed"), ("34911234567" + "1" * 9, "too_long"), ("#", "malformed")],
)
async def test_a_number_the_line_does_not_allow_is_never_dialled(
    stack, lines, wav, trunk_port, tmp_path, keys, kind
):
    since, refused = len(stack.of("call_end")), len(stack.of("dial_refused"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trap:  # the trunk: nothing may reach it
        trap.bind(("127.0.0.1", trunk_port))
        trap.setblocking(False)
        a = await run_sipp(
            call_scenario(codec="PCMU", wav=wav, dtmf_info=keys, end="agent", wait_s=30),
            target(stack),
            tmp_path,
            service=KEYED,
        )
        assert a.successful == 1, a
        (a_end,) = await call_ends(stack, since, 1)
        with pytest.raises(BlockingIOError):
            trap.recv(65535)  # no INVITE went to the trunk
    assert a_end["direction"] == "inbound" and a_end["end_by"] == "agent", a_end
    assert not [
        e
        for e in stack.of("call_start")
        if e.get("direction") == "outbound" and e.get("parent") == a_end["call_id"]
    ]
    rec = await record(lines, a_end["call_id"])
    assert rec["dial"]["status"] == kind and rec["dial"]["mode"] == "dtmf", rec["dial"]
    assert len(stack.of("dial_refused")) == refused  # refused before it reached the worker's dialling


async def test_a_keyed_in_allowed_number_is_dialled(stack, lines, wav, trunk_port, tmp_path):
    since = len(stack.of("call_end"))
    b = callee(refusing("486 Busy Here"), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav, dtmf_info="0034911234567#", end="agent", wait_s=30),
        target(stack),
        tmp_path,
        service=KEYED,
    )
    assert a.successful == 1, a
    b_result = await b
    assert b_result.successful == 1 and f"INVITE sip:{CALLEE}@127.0.0.1:{trunk_port}" in b_result.messages
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end["dial"] == "busy" and a_end["end_reason"] == "the other party is busy"


async def test_a_hanging_up_while_b_rings_cancels_b(stack, lines, wav, trunk_port, tmp_path):
    since = len(stack.of("call_end"))
    b = callee(never_answering(), tmp_path, trunk_port)
    a = await run_sipp(
        call_scenario(codec="PCMU", wav=wav), target(stack), tmp_path, service=QUICK, hold_ms=1500
    )
    assert a.successful == 1, a
    assert (await b).successful == 1, "B's ringing was cancelled"
    a_end, b_end = legs(await call_ends(stack, since, 2))
    assert b_end["dial"] == "cancelled" and not b_end["answered"], b_end
    assert a_end["end_by"] == "caller", a_end
    rec = await record(lines, a_end["call_id"])
    assert rec["dial"]["status"] == "cancelled" and rec["ended"]["by"] == "caller", rec
