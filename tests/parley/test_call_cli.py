"""`place_call` (`parley call`) against a real gateway and the fake model server; the subcommands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import wave

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from agent.settings import AgentSettings
from parley.call import call_url, place_call
from parley.cli_calls import add_commands
from parley.gateway_app import run_agent_gateway
from telephony.wav import write_pcm16
from telephony.ws.client import NativeCallClient
from telephony.ws.settings import Settings
from tests.fakes.model_server import FakeModelServer, Step

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("protocol, rate", [("twilio", 8000), ("native", 16000)])
async def test_place_call_writes_a_two_channel_recording_and_a_timeline(tmp_path, protocol, rate):
    t = np.arange(int(1.0 * 44100)) / 44100
    voice = (8000 * np.sin(2 * np.pi * 330 * t)).astype(np.int16)
    write_pcm16(tmp_path / "caller.wav", np.stack([voice, voice], axis=1), 44100)

    def script(seq, session):  # speak (echo the caller) for 3 turns, then listen: one utterance
        return Step("speak" if seq < 3 else "listen", text="hi " if seq == 0 else "", audio="echo")

    async with FakeModelServer(script) as fake:
        settings = Settings(host="127.0.0.1", port=0)
        async with run_agent_gateway(settings, AgentSettings(model_url=fake.url)) as gw:
            summary = await place_call(
                "support",
                tmp_path / "caller.wav",
                tmp_path / "out" / "call.wav",
                url=gw.url,
                protocol=protocol,
                linger_s=0.6,
            )
    assert (
        summary["close_code"] == 1000 and summary["protocol"] == protocol and summary["sample_rate"] == rate
    )
    assert summary["caller_seconds"] == pytest.approx(1.0, abs=0.03)
    assert summary["agent_packets"] > 20 and summary["marks"] == 1
    with wave.open(str(tmp_path / "out" / "call.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, rate)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    caller, agent = frames[:, 0].astype(np.int32), frames[:, 1].astype(np.int32)
    assert np.abs(caller[: rate // 2]).max() > 6000  # the caller's tone, from t = 0
    loud = np.flatnonzero(np.abs(agent) > 3000)
    assert loud.size > rate // 4  # the echoed tone came back on the right channel ...
    assert 0.2 < loud[0] / rate < 1.0  # ... later than the caller, by the path's latency
    record = json.loads((tmp_path / "out" / "call.timeline.json").read_text())
    assert record["summary"] == summary and record["counters"]["agent_packets"] == summary["agent_packets"]
    assert [e["kind"] for e in record["events"]].count("mark") == 1
    # 1 s of caller audio then 0.6 s of line silence: eight 200 ms frames reached the model
    assert fake.sessions[0].frames == 8
    assert summary["line_seconds"] == pytest.approx(1.6, abs=0.03)


class HangingUpSocket:
    """A client websocket whose caller has just sent its close frame: what the gateway sent before
    it saw the close is still there to read, and a send raises ConnectionClosed, as websockets'
    does while closing."""

    def __init__(self, messages: list) -> None:
        self.messages = messages
        self.protocol = argparse.Namespace(close_rcvd=Close(1000, ""), close_sent=Close(1000, ""))

    async def __aiter__(self):
        for message in self.messages:
            yield message

    async def send(self, message) -> None:
        raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)


async def test_a_mark_during_the_hang_up_does_not_cut_the_recording():
    client = NativeCallClient("ws://127.0.0.1:9/stream", "support")
    packet = np.full(320, 1000, "<i2").tobytes()
    client.ws = HangingUpSocket(['{"type":"mark","name":"utterance-1"}', packet, packet])
    await client._receive()
    assert client.counters["mark"] == 1 and client.counters["agent_packets"] == 2  # heard after the mark
    assert client.closed == (1000, "")


def test_call_url():
    assert call_url(None, "twilio") == "ws://127.0.0.1:8080/twilio"
    assert call_url("ws://h:9/", "native") == "ws://h:9/stream"
    assert call_url("wss://h/custom", "native") == "wss://h/custom"
    with pytest.raises(ValueError, match="ws:// or wss://"):
        call_url("http://h", "twilio")


def test_subcommands_register():
    parser = argparse.ArgumentParser(prog="parley")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["call", "--agent", "support", "--wav", "x.wav", "--out", "y.wav", "--protocol", "native"]
    )
    assert (args.agent, args.protocol, args.url, args.linger) == ("support", "native", None, 3.0)
    args = parser.parse_args(["gateway", "--port", "9000", "--model-url", "ws://m:8765/session"])
    assert (args.port, args.model_url, args.host) == (9000, "ws://m:8765/session", None)
    args = parser.parse_args(["call", "--agent", "a", "--wav", "/nonexistent.wav", "--out", "o.wav"])
    with pytest.raises(ValueError, match="is not a file"):
        args.func(args)


def test_the_gateway_process_stays_lean():
    code = (
        "import sys, parley.gateway_app, parley.call, parley.cli_calls, telephony.ws.gateway; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'model'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # Of the model, the gateway reads only the torch-free session contract.
    assert out.stdout.strip() == "['model', 'model.protocol']"
