"""The call path end to end through `parley.gateway_app`, with a fake model server: caller -> gateway ->
CallSession -> model server.

Everything runs over real loopback sockets: a real uvicorn gateway on an ephemeral port with
the agent's SessionConnector, the fake model server (a real websocket server speaking the
model-server protocol, scripted), and real Twilio-protocol and native-protocol clients streaming
audio in real time. Waits are on conditions with timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from agent.settings import AgentSettings
from parley.gateway_app import run_agent_gateway
from telephony.leg import CloseCode
from telephony.resample import ResampleStream
from telephony.ws.client import CallClient, NativeCallClient, TwilioCallClient
from telephony.ws.settings import Settings
from tests.fakes.model_server import FakeModelServer, Step

pytestmark = pytest.mark.timeout(90)

LOUD = 12000


@contextlib.asynccontextmanager
async def call_path(script=None, *, fake_kw=None, **settings_kw):
    fake_kw = dict(fake_kw or {})
    if script is not None:
        fake_kw["script"] = script
    async with FakeModelServer(**fake_kw) as fake:
        settings = Settings(host="127.0.0.1", port=0, **settings_kw)
        async with run_agent_gateway(settings, AgentSettings(model_url=fake.url)) as gw:
            yield fake, gw


def tone(seconds: float, rate: int, level: int = 6000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (level * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def stream(client: CallClient, seconds: float) -> int:
    """Stream a tone in real time, 20 ms a message, until done or the call closes; chunks sent."""
    pcm, step = tone(seconds, client.rate), client.rate // 50
    sent = 0
    for i in range(0, pcm.size, step):
        delay = client.t0 + sent * 0.02 - client.clock()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing of the caller, not synchronisation
        if client.closed is not None:
            break
        await client.send_audio(pcm[i : i + step])
        sent += 1
    return sent


def twilio(gw, agent="support", **kw) -> TwilioCallClient:
    return TwilioCallClient(gw.url + "/twilio", agent, **kw)


def native(gw, agent="support", **kw) -> NativeCallClient:
    return NativeCallClient(gw.url + "/stream", agent, **kw)


# --- two calls, two protocols --------------------------------------------------------------------------
def utterances(seq: int, session) -> Step:
    """Per 10 micro-turns: speak 0-3, listen 4 (mark), speak 5-7, yield 8 (clear + mark), listen 9."""
    phase = seq % 10
    if phase in (4, 9):
        return Step("listen", audio="silence")
    if phase == 8:
        return Step("yield", audio="silence")
    return Step("speak", text="hola " if phase == 0 else "", audio=LOUD)


async def test_a_twilio_call_and_a_native_call_each_hold():
    async with call_path(utterances) as (fake, gw):
        tw, nat = await twilio(gw).open(), await native(gw).open()
        senders = [asyncio.create_task(stream(c, 6.0)) for c in (tw, nat)]
        for client in (tw, nat):
            await client.wait_for(lambda c=client: c.counters["clear"] >= 2 and c.counters["mark"] >= 4, 8)
        await gw.stats.wait_for(lambda: gw.stats.marks_echoed >= 4, 5)  # the marks came back
        for task in senders:
            task.cancel()
        await asyncio.gather(tw.stop(), nat.stop())
        await fake.wait_for(lambda: len(fake.sessions) == 2 and all(s.closed for s in fake.sessions))
    # Twilio outbound media: base64 mu-law, 160-byte (20 ms) chunks, our streamSid on every message.
    assert set(tw.packet_sizes) == {160} and tw.counters["bad_messages"] == 0
    assert set(tw.stream_sids_seen) == {tw.stream_sid}
    assert tw.counters["agent_packets"] > 100
    # Native: 20 ms PCM16 packets at 16 kHz, marks, clears and the agent's text as events.
    assert set(nat.packet_sizes) == {320} and nat.counters["transcript"] >= 1
    assert nat.transcript[0]["text"] == "hola "
    # A clear is honoured: after it, the cut utterance is not heard (the next one starts 2 turns later).
    for client in (tw, nat):
        clear = next(e for e in client.events if e["kind"] == "clear")
        heard = client.agent_audio.astype(np.int32)
        start = int((clear["at_ms"] + 40) * client.rate / 1000)
        assert (
            heard[start : start + client.rate // 10].size
            and np.abs(heard[start : start + client.rate // 10]).max() < 1500
        )
    # Each call had its own model session, configured for the support agent, ended by the caller.
    for session in fake.sessions:
        assert session.config.startswith("support|en|lookup_order,") and session.bye
        assert ("caller_hangup", "Twilio stream stopped") in session.events or (
            "caller_hangup",
            "client sent stop",
        ) in session.events


# --- load ------------------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_sixteen_concurrent_calls_for_ten_seconds_account_for_every_frame():
    # Whether this machine's gateway keeps sixteen calls in real time is for bench/gateway.py; what
    # holds on any machine: every caller frame reaches the model, and every packet of the agent's
    # audio is heard by its caller or dropped by the pacer's one-frame bound and counted.
    out = ResampleStream(16000, 8000)
    twilio_packets = sum(out.push(np.zeros(3200, np.int16)).size for _ in range(49)) // 160
    async with call_path() as (fake, gw):  # the model echoes the caller
        clients = [twilio(gw) if i % 2 else native(gw) for i in range(16)]
        await asyncio.gather(*(c.open() for c in clients))
        sent = await asyncio.gather(*(stream(c, 10.0) for c in clients))
        assert sent == [500] * 16
        # Agent audio for every frame the model answered during the call: native (16 kHz, no
        # resampling) 50 frames = 500 packets; Twilio 49 frames (the 50th caller frame is only
        # complete when the inbound resampler is flushed at stop), what the outbound resampler
        # made of them in whole 160-byte packets. Each call hears them all, less what was dropped.
        expected = [500 if c.protocol == "native" else twilio_packets for c in clients]
        for c, n in zip(clients, expected):
            await c.wait_for(lambda c=c, n=n: c.counters["agent_packets"] + gw.stats.packets_dropped >= n, 30)
        await asyncio.gather(*(c.stop() for c in clients))
        await fake.wait_for(lambda: len(fake.sessions) == 16 and all(s.closed for s in fake.sessions), 10)
        await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 10)
    # Caller -> model: every 200 ms of caller audio reached the model: 10 s = 50 frames per call.
    assert [s.frames for s in fake.sessions] == [50] * 16
    assert all(s.bye for s in fake.sessions)
    stats = gw.stats
    assert stats.caller_frames == 16 * 50
    # Model -> caller: no packet invented, and (the waits above) none missing but what the pacers
    # dropped and counted: on a machine that keeps up, each call heard exactly its packets.
    heard = [c.counters["agent_packets"] for c in clients]
    assert all(h <= n for h, n in zip(heard, expected)), (heard, expected)
    assert stats.packets_dropped > 0 or heard == expected
    assert all(c.closed[0] == 1000 for c in clients)
    assert all(c.counters["bad_messages"] == 0 for c in clients)


# --- bad input --------------------------------------------------------------------------------------------
def twilio_start(client: TwilioCallClient, rate: int) -> str:
    start = json.loads(client.opening_messages()[1])
    start["start"]["mediaFormat"]["sampleRate"] = rate
    return json.dumps(start)


BAD_INPUT = {
    # protocol, what, message (or a function of the client), expected close (code, reason start) or drop kind
    "twilio-non-json": ("twilio", lambda c: "this is not json", "non_json"),
    "twilio-unknown-event": ("twilio", lambda c: '{"event":"wiggle","streamSid":"x"}', "unknown_event"),
    "twilio-bad-base64": (
        "twilio",
        lambda c: json.dumps(
            {"event": "media", "streamSid": c.stream_sid, "media": {"track": "inbound", "payload": "%%%"}}
        ),
        "bad_base64",
    ),
    "twilio-1mb": ("twilio", lambda c: "x" * (1 << 20), (1009, "")),
    "twilio-rate-change": (
        "twilio",
        lambda c: twilio_start(c, 16000),
        (1003, "unsupported Twilio media format"),
    ),
    "native-non-json": ("native", lambda c: "{oops", (1003, "text message is not JSON")),
    "native-unknown-type": ("native", lambda c: '{"type":"dance"}', (1003, "unknown message type 'dance'")),
    "native-1mb": ("native", lambda c: b"\x00" * (1 << 20), (1009, "")),
    "native-rate-change": (
        "native",
        lambda c: json.dumps({"type": "start", "agent": "support", "sample_rate": 8000, "encoding": "pcm16"}),
        (1008, "audio format change mid-call refused (16000 Hz pcm16 -> 8000 Hz pcm16)"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_ends_or_is_dropped_within_that_call_only(case):
    protocol, message, expected = BAD_INPUT[case]
    async with call_path() as (fake, gw):
        good = await twilio(gw).open()
        good_sender = asyncio.create_task(stream(good, 8.0))
        bad = await (twilio(gw) if protocol == "twilio" else native(gw)).open()
        bad_sender = asyncio.create_task(stream(bad, 8.0))
        await bad.wait_for(lambda: bad.counters["agent_packets"] >= 5, 5)  # the call is up and talking
        with contextlib.suppress(ConnectionClosed):  # a 1 MB send may still be going when refused
            await bad.send_raw(message(bad))
        if isinstance(expected, tuple):
            await bad.wait_for(lambda: bad.closed is not None, 5)
            code, reason = expected
            if code == CloseCode.MESSAGE_TOO_BIG:
                # The websocket layer sends 1009 and drops the connection with the rest of the
                # message unread: the kernel may answer with a reset that overtakes the close
                # frame (1006 on this side). What the gateway did is counted either way.
                assert bad.closed[0] in (1009, 1006)
                # The gateway counts the close as its side of the call ends: wait for that.
                await gw.stats.wait_for(lambda: gw.stats.closes[CloseCode.MESSAGE_TOO_BIG] == 1, 5)
            else:
                assert bad.closed[0] == code and bad.closed[1].startswith(reason)
        else:  # Twilio has no error channel: the message is dropped, counted, and the call goes on
            heard = bad.counters["agent_packets"]
            await bad.wait_for(lambda: bad.counters["agent_packets"] >= heard + 10, 5)
            assert bad.closed is None and gw.stats.dropped_messages[expected] == 1
        # Meanwhile the other call keeps its audio, both ways.
        heard, frames = good.counters["agent_packets"], fake.sessions[0].frames
        await good.wait_for(lambda: good.counters["agent_packets"] >= heard + 15, 5)
        await fake.wait_for(lambda: fake.sessions[0].frames >= frames + 2, 5)
        assert good.closed is None
        for task in (good_sender, bad_sender):
            task.cancel()
        await asyncio.gather(good.stop(), bad.stop())


@pytest.mark.parametrize("protocol", ["twilio", "native"])
async def test_unknown_agent_is_refused_with_4404(protocol):
    async with call_path() as (fake, gw):
        client = await (twilio(gw, "nobody") if protocol == "twilio" else native(gw, "nobody")).open()
        await client.wait_for(lambda: client.closed is not None, 5)
    assert client.closed == (
        CloseCode.UNKNOWN_AGENT,
        "unknown agent 'nobody'; known agents: support, translate-en-es, translate-es-en",
    )
    assert fake.sessions == []  # no model session was opened for it


async def test_native_audio_before_start_is_refused():
    async with call_path() as (fake, gw):
        from websockets.asyncio.client import connect

        async with connect(gw.url + "/stream") as ws:
            await ws.send(b"\x00" * 640)
            await ws.wait_closed()
            assert (ws.close_code, ws.close_reason) == (1008, "audio before the start message")


# --- the model server refusing or dropping --------------------------------------------------------------
async def test_model_server_at_capacity_and_dropping_end_calls_cleanly():
    async with call_path(fake_kw={"capacity": 1}) as (fake, gw):
        first = await native(gw).open()
        await fake.wait_for(lambda: fake.live == 1)
        second = await native(gw).open()
        await second.wait_for(lambda: second.closed is not None, 5)
        assert second.closed == (CloseCode.TRY_AGAIN_LATER, "model server at capacity: 1 of 1 slots busy")
        assert first.closed is None
        await first.stop()
    async with call_path(fake_kw={"drop_after": 4}) as (fake, gw):
        call = await twilio(gw).open()
        sender = asyncio.create_task(stream(call, 5.0))
        await call.wait_for(lambda: call.closed is not None, 5)
        sender.cancel()
        assert call.closed == (
            CloseCode.BAD_GATEWAY,
            "model server closed the session (1011: simulated failure)",
        )
        await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 5)
    async with call_path() as (fake, gw):
        pass
    async with run_agent_gateway(
        Settings(host="127.0.0.1", port=0), AgentSettings(model_url=fake.url, model_connect_timeout_s=1)
    ) as gw:  # fake is gone now
        call = await native(gw).open()
        await call.wait_for(lambda: call.closed is not None, 5)
        assert call.closed == (CloseCode.BAD_GATEWAY, "model server unavailable")


# --- tools -------------------------------------------------------------------------------------------------
def tool_script(seq: int, session) -> Step:
    calls = {
        1: {"id": "t1", "name": "lookup_order", "arguments": {"order_id": "A-17"}},
        2: {"id": "t2", "name": "\x00garbage", "arguments_raw": "[[["},
        4: {"id": "t3", "name": "transfer", "arguments": {}},
    }
    return Step("listen", tool_call=calls.get(seq), audio="silence")


async def test_tool_calls_through_the_gateway():
    async with call_path(tool_script) as (fake, gw):
        tw, nat = await twilio(gw).open(), await native(gw).open()
        senders = [asyncio.create_task(stream(c, 5.0)) for c in (tw, nat)]
        await nat.wait_for(lambda: nat.closed is not None, 5)  # native transfers, then ends the call
        await fake.wait_for(lambda: len(fake.sessions) == 2 and len(fake.sessions[0].events) >= 3, 5)
        for task in senders:
            task.cancel()
        await tw.stop()
        await fake.wait_for(lambda: all(s.closed for s in fake.sessions), 5)
    by_call = {s.call_id: s for s in fake.sessions}
    tw_session = next(s for s in fake.sessions if s is not by_call.get(nat_call_id(nat)))
    errors = [json.loads(p) for k, p in tw_session.events if k == "tool_error"]
    assert sorted(errors) == ["tool not allowed", "tool unavailable", "transfer not available on this line"]
    transfer = next(e for e in nat.events if e["kind"] == "transfer")
    assert transfer["target"] == "+15555550100"
    assert nat.closed == (CloseCode.NORMAL, "transferred to a human")


def nat_call_id(client: NativeCallClient) -> str:
    return next(e["call_id"] for e in client.events if e["kind"] == "started")


async def test_end_call_hangs_up_the_caller():
    def end(seq, s):
        return Step(
            "speak",
            audio=LOUD,
            tool_call={"id": "e", "name": "end_call", "arguments": {}} if seq == 3 else None,
        )

    async with call_path(end) as (fake, gw):
        client = await twilio(gw).open()
        sender = asyncio.create_task(stream(client, 5.0))
        await client.wait_for(lambda: client.closed is not None, 5)
        sender.cancel()
        await fake.wait_for(lambda: fake.sessions[0].closed, 5)
    assert client.closed == (CloseCode.NORMAL, "the agent ended the call")
    assert fake.sessions[0].bye
    # The audio queued before the hang-up was played out first (3 frames of it).
    assert client.counters["agent_packets"] >= 25


def test_twilio_media_payloads_decode():
    """A media message the Twilio client builds is the documented shape (used by the tests above)."""
    client = TwilioCallClient("ws://h/twilio", "support")
    message = json.loads(client.audio_message(b"\x7f" * 160))
    assert message["event"] == "media" and base64.b64decode(message["media"]["payload"]) == b"\x7f" * 160
