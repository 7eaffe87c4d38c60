"""End to end through real sockets: call clients -> websocket gateway -> real model server (tiny).

These tests assert what holds on any machine, however fast: how quickly the model steps decides
how many caller frames are stepped, dropped or skipped, never whether a frame is accounted for,
whether a call ends cleanly or whether agent audio reaches its caller. How many calls a machine
keeps up with is measured by `parley bench e2e` / `parley bench step` (bench/), not asserted here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import wave

import numpy as np
import pytest
import torch

from agent.settings import AgentSettings
from model.config import ModelConfig
from model.interaction import InteractionModel
from model.protocol import FRAME_SAMPLES, SAMPLE_RATE
from model.runner import Runner
from model.server import ModelServer, ModelServerSettings
from parley.call import place_call
from parley.gateway_app import SessionConnector
from telephony.ws.client import NativeCallClient
from telephony.ws.gateway import run_gateway
from telephony.ws.settings import Settings
from tests.helpers import voiced_wav

pytestmark = pytest.mark.timeout(180)

PACKETS_PER_FRAME = 10  # 20 ms packets in a 200 ms micro-turn
# What the gateway cuts of a call's agent audio by design, in packets. A clear drops what its pacer
# holds, the frame being sent and at most one waiting (each at most 11 whole packets with the part
# of a packet carried from the frame before), less than a packet still carried and the 10 ms the
# outbound resampler holds back. The hang-up cuts the same, and the caller is gone for a frame the
# call's session may hand its leg while the gateway takes the caller's stop in.
PACKETS_CUT_BY_A_CLEAR = 2 * (PACKETS_PER_FRAME + 1) + 2
PACKETS_CUT_AT_THE_HANG_UP = PACKETS_CUT_BY_A_CLEAR + PACKETS_PER_FRAME


@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(11)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


class TaggingConnector(SessionConnector):
    """The gateway's connector, remembering which call id each caller's `tag` parameter got."""

    def __init__(self, settings: AgentSettings) -> None:
        super().__init__(settings)
        self.call_ids: dict[str, str] = {}

    async def open(self, info, leg):
        session = await super().open(info, leg)
        self.call_ids[info.parameters.get("tag", "")] = info.call_id
        return session


@dataclasses.dataclass
class Call:
    """One call seen from its three places: the caller (`place_call`'s summary and timeline
    counters), the gateway's CallSession (its summary) and the model server (its session's counters)."""

    caller: dict
    caller_counters: dict
    gateway: dict
    model: dict


@dataclasses.dataclass
class Served:
    calls: list[Call]
    health: dict  # the model server's /healthz after the calls
    gateway: dict  # the gateway's counters after the calls
    max_queued_frames: int


async def serve_calls(
    model,
    tmp_path,
    protocols: list[str],
    seconds: float = 0.0,
    *,
    extra_callers=(),
    model_name: str = "tiny",
    wav=None,
) -> Served:
    """`place_call` for each protocol at once (`wav`, or `seconds` of a voiced caller, then 0.6 s of
    line), through the real gateway to a real model server with a slot per call; `extra_callers`
    are coroutine functions run alongside, given the gateway's url and a tag parameter for their
    call, returning their caller's summary. Returns every call as its three places saw it."""
    if wav is None:
        wav = voiced_wav(tmp_path / "caller.wav", seconds)
    slots = len(protocols) + len(extra_callers)
    settings = ModelServerSettings(port=0, max_slots=slots)
    async with ModelServer(Runner(model, slots), settings, model_name=model_name) as server:
        gateway_settings = Settings(host="127.0.0.1", port=0)
        connector = TaggingConnector(AgentSettings(model_url=server.url))
        async with run_gateway(gateway_settings, connector) as gw:
            summaries, *extras = await asyncio.gather(
                asyncio.gather(
                    *(
                        place_call(
                            "support",
                            wav,
                            tmp_path / f"call{i}.wav",
                            url=gw.url,
                            protocol=p,
                            linger_s=0.6,
                            parameters={"tag": str(i)},
                        )
                        for i, p in enumerate(protocols)
                    )
                ),
                *(caller(gw.url, f"extra{i}") for i, caller in enumerate(extra_callers)),
            )
            await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 30)
            gateway = gw.stats.snapshot()
        # The model server records a session once its socket has closed: wait for all of them.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(server.ended) < slots and loop.time() < deadline:
            await asyncio.sleep(0.05)
        health = server.health()
        ended = {s["call_id"]: s for s in server.ended}
    assert len(ended) == slots, f"{len(ended)} of {slots} model sessions ended"
    finished = {s["call_id"]: s for s in connector.finished}
    calls = []
    for i, summary in enumerate(summaries):
        with open(summary["timeline"]) as f:
            counters = json.load(f)["counters"]
        call_id = connector.call_ids[str(i)]
        calls.append(Call(summary, counters, finished.pop(call_id), ended.pop(call_id)))
    for i, (summary, counters) in enumerate(extras):
        call_id = connector.call_ids[f"extra{i}"]
        calls.append(Call(summary, counters, finished.pop(call_id), ended.pop(call_id)))
    return Served(calls, health, gateway, settings.max_queued_frames)


def assert_accounted(served: Served) -> None:
    """What holds for every call on any machine, whether or not the model kept up.

    Caller -> model: every 200 ms of caller audio the gateway framed was sent to the call's model
    session (or, once that session had closed, counted as dropped) and arrived there. At the model
    server every frame that arrived was stepped, dropped (its inbox was full), skipped (to catch up
    with a standing backlog) or was still in the inbox when the call hung up, which holds at most
    `max_queued_frames`: no frame is lost uncounted. Model -> caller: every turn the gateway's
    session received was a stepped frame, and any gap in the turns' sequence was counted by the
    server as undelivered. The gateway's and the model server's totals agree with the calls'.
    """
    gw, health = served.gateway, served.health
    for call in served.calls:
        m, g = call.model, call.gateway
        tl = g["timeline"]["counters"]
        assert m["frames"] == g["frames_sent"] == tl.get("caller_frames", 0), call
        queued_at_hangup = m["frames"] - m["stepped"] - m["dropped"] - m["skipped"]
        assert 0 <= queued_at_hangup <= served.max_queued_frames, call
        assert g["turns_received"] + m["undelivered"] <= m["stepped"], call
        assert tl.get("skipped_turns", 0) <= m["undelivered"], call
        assert tl.get("agent_frames", 0) <= g["turns_received"], call  # what was played came from the model
    assert gw["caller_frames"] == sum(
        c.gateway["frames_sent"] + c.gateway["timeline"]["counters"].get("caller_frames_dropped", 0)
        for c in served.calls
    )
    assert health["active"] == 0  # every slot was released
    for total, each in ("dropped_frames", "dropped"), ("skipped_frames", "skipped"), ("late_frames", "late"):
        assert health[total] == sum(c.model[each] for c in served.calls), total
    assert gw["calls_total"] == len(served.calls) and gw["calls_refused"] == 0 and gw["calls_live"] == 0


def assert_heard(served: Served, agent_talks: bool = True) -> None:
    """Every caller's side of the line reached the model, and the agent's audio reached every
    caller: 20 ms packets of it for each micro-turn its session played, none invented and none of
    another call's, less only what the gateway cuts by design (a `clear`, the hang-up) or drops and
    counts (its pacer's one-frame bound). With `agent_talks`, the recorded agent channel is not
    silent (an untrained model babbles from its first micro-turn; a trained one may listen
    throughout a short call, which is its choice, not a fault of the call path)."""
    dropped_by_pacers = served.gateway["packets_dropped"]  # counted for all calls together
    for call in served.calls:
        c, counters, tl = call.caller, call.caller_counters, call.gateway["timeline"]["counters"]
        assert c["close_code"] == 1000, c
        assert counters.get("bad_messages", 0) == 0, counters
        line_frames = math.ceil(round(c["line_seconds"] * SAMPLE_RATE) / FRAME_SAMPLES)
        assert call.gateway["frames_sent"] + tl.get("caller_frames_dropped", 0) == line_frames, call
        played = tl.get("agent_frames", 0)
        assert c["agent_packets"] >= PACKETS_PER_FRAME, c  # at least one micro-turn of agent audio
        assert c["agent_packets"] <= PACKETS_PER_FRAME * played + 1, call  # + a padded last packet
        cut = PACKETS_CUT_BY_A_CLEAR * c["clears"] + PACKETS_CUT_AT_THE_HANG_UP + dropped_by_pacers
        assert c["agent_packets"] >= PACKETS_PER_FRAME * played - cut, call
        if agent_talks and "out" in c:
            with wave.open(c["out"], "rb") as w:
                stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
            assert np.abs(stereo[:, 1]).max() > 0, c  # the agent channel is not silent
    assert served.gateway["packets_out"] == sum(c.caller["agent_packets"] for c in served.calls)


def quiet(caplog) -> None:
    """Nothing failed: no tick, no call handler, no websocket call logged an error."""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


async def test_twilio_and_native_calls_through_the_real_model_server(tiny, tmp_path, caplog):
    served = await serve_calls(tiny, tmp_path, ["twilio", "native"], 2.0)
    assert_accounted(served)
    assert_heard(served)
    quiet(caplog)
    assert {c.caller["sample_rate"] for c in served.calls} == {8000, 16000}
    assert served.health["ticks"] > 0 and served.health["model"] == "tiny"


async def flooding_caller(url: str, tag: str, seconds: float = 4.0):
    """A native caller that sends `seconds` of audio as fast as the socket takes it, far faster
    than the 200 ms ticks consume frames, then waits for a micro-turn of agent audio and hangs up."""
    client = NativeCallClient(url + "/stream", "support", parameters={"tag": tag})
    await client.open()
    pcm = np.zeros(int(seconds * SAMPLE_RATE), np.int16)
    pcm[::7] = 4000
    step = SAMPLE_RATE // 50
    for i in range(0, pcm.size, step):
        await client.send_audio(pcm[i : i + step])
    await client.wait_for(lambda: client.counters["agent_packets"] >= PACKETS_PER_FRAME, 60)
    await client.stop()
    summary = {
        "close_code": client.closed[0],
        "agent_packets": client.counters["agent_packets"],
        "clears": client.counters["clear"],
        "line_seconds": seconds,
        "sample_rate": client.rate,
    }
    return summary, dict(client.counters)


@pytest.mark.slow
async def test_sixteen_concurrent_calls_and_a_flood_account_for_every_frame(tiny, tmp_path, caplog):
    """Sixteen calls in real time for ten seconds, and a seventeenth caller that floods its line.
    Whether this machine steps seventeen calls in real time is not the question (bench/e2e.py
    measures that): the flooding call's inbox overflows on any machine, and every call, flooded or
    not, ends normally with each frame and each turn accounted for and agent audio heard."""
    served = await serve_calls(
        tiny, tmp_path, ["native"] * 8 + ["twilio"] * 8, 10.0, extra_callers=[flooding_caller]
    )
    assert len(served.calls) == 17
    assert_accounted(served)
    assert_heard(served)
    quiet(caplog)
    flooded = served.calls[-1].model
    # 20 frames arrived within far fewer than 20 ticks: the inbox kept max_queued_frames and the
    # rest was dropped, counted.
    assert flooded["frames"] == 20 and flooded["dropped"] > 0, flooded


@pytest.mark.slow
async def test_the_shipped_checkpoint_serves_a_call(tmp_path, caplog):
    """What `make run` does, in-process: the committed `small2` checkpoint is the default model, and
    a spoken call through the gateway hears a micro-turn of agent audio for every caller frame the
    model stepped. (What the model says is measured by `parley eval`, not asserted here: it
    samples. How fast it steps is measured by `parley bench step`.)"""
    from corpus.tts import Espeak
    from model.checkpoint import DEFAULT_CHECKPOINT, load_model
    from telephony.wav import write_float as write_wav

    assert (DEFAULT_CHECKPOINT / "model.safetensors").is_file(), "the trained checkpoint ships in the repo"
    model = load_model()  # no preset, no path: the shipped checkpoint
    assert model.cfg == ModelConfig.from_name("small2")

    speech = (
        Espeak.instance()
        .synthesize_16k("Hi, I'm calling about my order. Can you tell me where it is?", voice="en-us")
        .audio
    )
    write_wav(tmp_path / "caller.wav", np.concatenate([np.zeros(8000), speech, np.zeros(32000)]), 16000)

    served = await serve_calls(model, tmp_path, ["native"], wav=tmp_path / "caller.wav", model_name="shipped")
    assert_accounted(served)
    assert_heard(served, agent_talks=False)
    quiet(caplog)
    (call,) = served.calls
    assert call.model["stepped"] > 0 and served.health["model"] == "shipped"
    with wave.open(call.caller["out"], "rb") as w:
        agent = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)[:, 1].astype(np.float64)
    assert np.isfinite(agent).all() and np.abs(agent).max() < 32767 * 0.99  # finite, not clipping noise
