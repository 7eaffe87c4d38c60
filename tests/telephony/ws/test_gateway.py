"""The websocket media gateway as a transport, with a scripted handler in place of the agent.

Real uvicorn server on an ephemeral loopback port, real websocket clients (telephony.ws.client's protocol
clients), no model server: the handler plays caller frames straight back and can mark the end of
an utterance or interrupt on cue. What is checked here is the transport's own job: TwiML, health,
framing of caller audio, Twilio outbound media, marks after their audio, clear, limits and
refusals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from telephony import g711
from telephony.leg import CallInfo, CallRefused, CloseCode, Leg
from telephony.resample import ResampleStream
from telephony.ws.client import NativeCallClient, TwilioCallClient
from telephony.ws.gateway import run_gateway
from telephony.ws.settings import Settings

pytestmark = pytest.mark.timeout(60)


class ScriptedHandler:
    """Echoes caller frames; `on_frame(index, handler)` runs before frame `index` is played."""

    def __init__(self, info: CallInfo, leg: Leg, connector: FakeConnector) -> None:
        self.info, self.leg, self.connector = info, leg, connector
        self.frames: list[np.ndarray] = []
        self.dtmf: list[str] = []
        self.ended: str | None = None
        self._done = asyncio.Event()

    async def caller_frame(self, frame: np.ndarray) -> None:
        index = len(self.frames)
        self.frames.append(frame)
        if self.connector.on_frame is not None:
            self.connector.on_frame(index, self)
        self.leg.play(self.connector.agent_audio(index, frame))
        await self.connector.notify()

    async def caller_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)
        await self.connector.notify()

    async def run(self) -> None:
        await self._done.wait()

    async def caller_ended(self, reason: str) -> None:
        self.ended = reason
        self._done.set()
        await self.connector.notify()


class FakeConnector:
    default_agent = "support"

    def __init__(
        self,
        on_frame: Callable | None = None,
        agent_audio: Callable[[int, np.ndarray], np.ndarray] = lambda i, f: f,
    ) -> None:
        self.on_frame = on_frame
        self.agent_audio = agent_audio
        self.handlers: list[ScriptedHandler] = []
        self._changed = asyncio.Condition()

    async def has_agent(self, name: str) -> bool:
        return name == "support"

    async def open(self, info: CallInfo, leg: Leg) -> ScriptedHandler:
        if info.agent != "support":
            raise CallRefused(CloseCode.UNKNOWN_AGENT, f"unknown agent {info.agent!r}")
        handler = ScriptedHandler(info, leg, self)
        self.handlers.append(handler)
        await self.notify()
        return handler

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)


def settings(**kw) -> Settings:
    return Settings(host="127.0.0.1", port=0, **kw)


async def stream(client, pcm: np.ndarray, chunk: int) -> None:
    """Send `pcm` in chunks of `chunk` samples, 20 ms apart in real time."""
    for i in range(0, pcm.size, chunk):
        delay = client.t0 + (i // chunk) * 0.02 - client.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send_audio(pcm[i : i + chunk])


def tone(seconds: float, rate: int, level: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


async def http(method: str, url: str, body: bytes = b"", headers: dict | None = None):
    def go():
        request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.headers.get("content-type"), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("content-type"), exc.read().decode()

    return await asyncio.to_thread(go)


# --- HTTP ----------------------------------------------------------------------------------------------
async def test_twiml_for_form_json_and_query():
    async with run_gateway(settings(), FakeConnector()) as gw:
        form = await http(
            "POST",
            gw.http_url + "/twiml",
            b"agent=support&CallSid=CA1&From=%2B15551234567",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        host = gw.http_url.split("//")[1]
        assert form == (
            200,
            "application/xml",
            f'<Response><Connect><Stream url="ws://{host}/twilio">'
            '<Parameter name="agent" value="support"/></Stream></Connect></Response>',
        )
        assert "15551234567" not in form[2]  # the caller's number is not passed on
        js = await http(
            "POST",
            gw.http_url + "/twiml",
            json.dumps({"agent": "support", "url": "wss://v.example.com"}).encode(),
            {"Content-Type": "application/json"},
        )
        assert js[0] == 200 and '<Stream url="wss://v.example.com/twilio">' in js[2]
        proxied = await http(
            "POST",
            gw.http_url + "/twiml?agent=support",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com"},
        )
        assert '<Stream url="wss://voice.example.com/twilio">' in proxied[2]
        unknown = await http(
            "POST",
            gw.http_url + "/twiml",
            b"agent=nope",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unknown[0] == 404 and "unknown agent 'nope'" in unknown[2]
        bad = await http(
            "POST",
            gw.http_url + "/twiml",
            b'{"agent": "support", "url": "http://x"}',
            {"Content-Type": "application/json"},
        )
        assert bad[0] == 400 and "ws:// or wss://" in bad[2]
        injected = await http(
            "POST",
            gw.http_url + "/twiml",
            b'{"agent": "a\\"/><x y=\\""}',
            {"Content-Type": "application/json"},
        )
        assert injected[0] == 400


async def test_twiml_uses_public_url_and_healthz_reports_counters():
    async with run_gateway(settings(public_url="https://voice.example.com/"), FakeConnector()) as gw:
        status, _, body = await http("POST", gw.http_url + "/twiml")
        assert status == 200 and '<Stream url="wss://voice.example.com/twilio">' in body  # default agent
        status, ctype, body = await http("GET", gw.http_url + "/healthz")
        health = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert health["status"] == "ok" and health["live_calls"] == 0
        assert health["counters"]["calls_total"] == 0 and "dropped_messages" in health["counters"]


# --- Twilio ------------------------------------------------------------------------------------------
async def test_twilio_media_out_is_paced_mulaw_with_the_stream_sid_and_dtmf_and_stop_reach_the_handler():
    connector = FakeConnector()
    async with run_gateway(settings(), connector) as gw:
        client = await TwilioCallClient(gw.url + "/twilio", "support").open()
        await stream(client, tone(1.2, 8000), 160)
        await client.send_raw(client.dtmf_message("7"))
        await client.wait_for(lambda: client.counters["agent_packets"] >= 40, 5)
        await connector.wait_for(lambda: connector.handlers and connector.handlers[0].dtmf == ["7"])
        await client.stop()
        handler = connector.handlers[0]
        await connector.wait_for(lambda: handler.ended is not None)
        assert handler.info.protocol == "twilio" and handler.info.sample_rate == 8000
        assert handler.info.external_id == client.call_sid and handler.info.parameters["agent"] == "support"
        assert handler.ended == "Twilio stream stopped"
        # 1.2 s at 8 kHz is 9600 samples -> 19200 at 16 kHz = 6 frames exactly, once flushed at stop
        assert len(handler.frames) == 6 and all(
            f.shape == (3200,) and f.dtype == np.int16 for f in handler.frames
        )
        assert set(client.packet_sizes) == {160} and client.counters["bad_messages"] == 0
        assert set(client.stream_sids_seen) == {client.stream_sid}
        times = np.array(client.packet_times[:40])
        assert times[-1] - times[0] >= 39 * 0.02 * 0.9  # paced in real time, not sent in a burst
        heard = client.agent_audio
        assert np.abs(heard.astype(np.int32)).max() > 4000  # the echoed tone came back through mu-law


async def test_twilio_mark_goes_out_after_its_audio_and_clear_drops_the_rest():
    marked, cleared = {}, {}

    def on_frame(index, handler):
        if index == 4:
            handler.leg.utterance_end()  # after frames 0-3
            marked["at"] = index
        if index == 9:
            handler.leg.interrupt()  # frames 5-8 were loud; drop what is still queued
            handler.leg.utterance_end()  # the cut utterance's mark: echoed at once after a clear
            cleared["at"] = index

    def agent_audio(index, frame):
        loud = index < 4 or 5 <= index < 9
        return np.full(3200, 12000 if loud else 0, np.int16)

    connector = FakeConnector(on_frame, agent_audio)
    async with run_gateway(settings(), connector) as gw:
        client = await TwilioCallClient(gw.url + "/twilio", "support").open()
        sender = asyncio.create_task(stream(client, np.zeros(8000 * 3, np.int16), 160))
        await client.wait_for(lambda: client.counters["clear"] == 1 and client.counters["mark"] == 2, 8)
        mark = next(e for e in client.events if e["kind"] == "mark")
        # The mark went out right after the last whole packet of the 4 frames played before it:
        # what the 16 -> 8 kHz resampler had produced from them, in 160-byte packets.
        resampler = ResampleStream(16000, 8000)
        expected = sum(resampler.push(np.zeros(3200, np.int16)).size for _ in range(4)) // 160
        media_before_mark = mark["after_packets"]
        assert media_before_mark == expected and 35 <= expected <= 40
        loud = np.abs(client.agent_audio[: expected * 160].astype(np.int32))
        assert np.mean(loud > 6000) > 0.5  # ... and those packets were the loud utterance
        await client.wait_for(lambda: client.counters["agent_packets"] >= media_before_mark + 60, 5)
        sender.cancel()
        await client.stop()
        await connector.wait_for(lambda: connector.handlers[0].ended is not None)
        stats = gw.stats
        assert stats.marks_sent == 2 and stats.clears_sent == 1
        assert stats.marks_echoed >= 1  # the client echoes marks when their audio has played
        # After the clear, nothing loud is heard again (frames 9.. are silence).
        clear_ms = next(e["at_ms"] for e in client.events if e["kind"] == "clear")
        heard = client.agent_audio.astype(np.int32)
        after = heard[int((clear_ms / 1000 + 0.03) * 8000) :]
        assert after.size > 800 and np.abs(after).max() < 1000


# --- native -----------------------------------------------------------------------------------------
async def test_a_burst_of_media_while_the_handler_is_busy_arrives_whole_and_in_order():
    # The handler holds its first frame until the whole burst is sent, so messages pile up past the
    # read high-water mark and the socket stops being read; once the handler goes on, reading
    # resumes and every message arrives, in order.
    gate = asyncio.Event()

    class GatedHandler(ScriptedHandler):
        async def caller_frame(self, frame: np.ndarray) -> None:
            await gate.wait()
            await super().caller_frame(frame)

    connector = FakeConnector()
    connector_open = connector.open

    async def open_gated(info: CallInfo, leg: Leg) -> ScriptedHandler:
        await connector_open(info, leg)
        handler = connector.handlers[-1] = GatedHandler(info, leg, connector)
        return handler

    connector.open = open_gated
    pcm = tone(3.0, 8000)
    async with run_gateway(settings(), connector) as gw:
        client = await TwilioCallClient(gw.url + "/twilio", "support").open()
        for i in range(0, pcm.size, 160):  # 150 messages at once, not paced
            await client.send_audio(pcm[i : i + 160])
        await connector.wait_for(lambda: len(connector.handlers) == 1)
        gate.set()
        await client.stop()
        handler = connector.handlers[0]
        await connector.wait_for(lambda: handler.ended is not None)
    heard = g711.ulaw_decode(g711.ulaw_encode(pcm))  # what the caller's mu-law carries
    rs = ResampleStream(8000, 16000)
    expected = np.concatenate([rs.push(heard), rs.flush()])
    assert len(handler.frames) == 15  # 3 s at 16 kHz, exactly
    # Whole and in order: sample for sample what one stream makes of it (within the 1 LSB by which
    # the gateway's frame-at-a-time windows may round differently from one big push).
    assert np.abs(np.concatenate(handler.frames).astype(np.int32) - expected).max() <= 1


async def test_native_audio_of_any_size_is_framed_exactly():
    connector = FakeConnector()
    async with run_gateway(settings(), connector) as gw:
        client = await NativeCallClient(gw.url + "/stream", "support", rate=16000).open()
        await client.wait_for(lambda: client.counters["started"] == 1, 5)
        ramp = (np.arange(3200 * 3 + 1000) % 3000 - 1500).astype(np.int16)
        raw = ramp.astype("<i2").tobytes()
        sizes = [1, 2, 333, 4000, 1, 7777, 3]
        pos = 0
        while pos < len(raw):  # odd-sized binary messages: samples are split across messages
            for size in sizes:
                await client.send_raw(raw[pos : pos + size])
                pos += size
                if pos >= len(raw):
                    break
        await client.stop()
        handler = connector.handlers[0]
        await connector.wait_for(lambda: handler.ended is not None)
        got = np.concatenate(handler.frames)
        assert got.size == 4 * 3200  # three whole frames and the zero-padded tail
        np.testing.assert_array_equal(got[: ramp.size], ramp)
        assert not got[ramp.size :].any()
        started = next(e for e in client.events if e["kind"] == "started")
        assert (
            started["agent"] == "support"
            and started["sample_rate"] == 16000
            and started["encoding"] == "pcm16"
        )


async def test_packets_the_socket_no_longer_takes_are_not_counted_as_sent():
    # The caller closes its socket mid-utterance while the handler takes a while to wind down (a
    # real session closes its model session first): the pacer goes on until then, and what the
    # closed socket no longer takes must not count in packets_out.
    class SlowToEnd(ScriptedHandler):
        async def caller_ended(self, reason: str) -> None:
            await asyncio.sleep(0.5)  # the winding down under test, not a wait for something
            await super().caller_ended(reason)

    connector = FakeConnector()
    connector_open = connector.open

    async def open_slow(info: CallInfo, leg: Leg) -> ScriptedHandler:
        await connector_open(info, leg)
        handler = connector.handlers[-1] = SlowToEnd(info, leg, connector)
        return handler

    connector.open = open_slow
    async with run_gateway(settings(), connector) as gw:
        client = await NativeCallClient(gw.url + "/stream", "support", rate=16000).open()
        await client.send_audio(tone(0.4, 16000))  # two frames played back: 20 packets, 400 ms
        await client.wait_for(lambda: client.counters["agent_packets"] >= 1, 5)
        await client.close()  # no stop: the caller's side just goes, reading all the gateway sent
        await connector.wait_for(lambda: connector.handlers[0].ended is not None)
        await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 5)
        assert gw.stats.packets_out == client.counters["agent_packets"]


@pytest.mark.parametrize("rate, encoding", [(8000, "alaw"), (48000, "pcm16")])
async def test_native_agent_audio_comes_back_in_the_calls_format(rate, encoding):
    connector = FakeConnector()
    async with run_gateway(settings(), connector) as gw:
        client = await NativeCallClient(gw.url + "/stream", "support", rate=rate, encoding=encoding).open()
        await stream(client, tone(1.0, rate), rate // 50)
        await client.wait_for(lambda: client.counters["agent_packets"] >= 20, 5)
        await client.stop()
        assert set(client.packet_sizes) == {rate // 50}  # 20 ms packets at the call's own rate
        assert np.abs(client.agent_audio.astype(np.int32)).max() > 4000


# --- limits and refusals -------------------------------------------------------------------------------
async def test_start_timeout_capacity_and_refusal():
    connector = FakeConnector()
    async with run_gateway(settings(start_timeout_s=0.3, max_calls=1), connector) as gw:
        async with connect(gw.url + "/stream") as silent:
            await silent.wait_closed()
            assert (silent.close_code, silent.close_reason) == (1008, "no start message within 0.3 s")
        first = await NativeCallClient(gw.url + "/stream", "support").open()
        await connector.wait_for(lambda: len(connector.handlers) == 1)
        second = await NativeCallClient(gw.url + "/stream", "support").open()
        await second.wait_for(lambda: second.closed is not None, 5)
        assert second.closed == (CloseCode.TRY_AGAIN_LATER, "gateway at capacity (1 calls)")
        await first.stop()
        await connector.wait_for(lambda: connector.handlers[0].ended is not None)
        await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 5)
        unknown = await NativeCallClient(gw.url + "/stream", "nobody").open()
        await unknown.wait_for(lambda: unknown.closed is not None, 5)
        assert unknown.closed == (CloseCode.UNKNOWN_AGENT, "unknown agent 'nobody'")
        end = next(e for e in unknown.events if e["kind"] == "end")
        assert end["code"] == 4404  # the native protocol also says why in an event before closing
        assert gw.stats.calls_refused == 2


async def test_a_message_over_the_limit_closes_with_1009():
    connector = FakeConnector()
    async with run_gateway(settings(max_message_bytes=65536), connector) as gw:
        client = await NativeCallClient(gw.url + "/stream", "support").open()
        await connector.wait_for(lambda: len(connector.handlers) == 1)
        with contextlib.suppress(ConnectionClosed):  # the send may still be going when refused
            await client.send_raw(b"\x00" * (1 << 20))
        await client.wait_for(lambda: client.closed is not None, 5)
        # 1009, unless the reset of the unread rest of the message overtook the close frame (1006)
        assert client.closed[0] in (CloseCode.MESSAGE_TOO_BIG, 1006)
        await connector.wait_for(lambda: connector.handlers[0].ended is not None)
        await gw.stats.wait_for(lambda: gw.stats.closes[CloseCode.MESSAGE_TOO_BIG] == 1, 5)


def test_media_payload_decodes_as_documented():
    """Sanity: the Twilio client's media message carries base64 mu-law of the right size."""
    client = TwilioCallClient("ws://x/twilio", "support")
    message = json.loads(client.audio_message(b"\xff" * 160))
    assert base64.b64decode(message["media"]["payload"]) == b"\xff" * 160
    assert message["media"]["track"] == "inbound" and message["streamSid"] == client.stream_sid
