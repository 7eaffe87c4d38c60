"""Bridged translation calls through the gateway: two parties in a room, an interpreter each way.

Real loopback sockets throughout: the real uvicorn gateway with the agent's SessionConnector, real
native-protocol and Twilio-protocol clients streaming in real time, and model servers speaking the
model-server protocol: the scripted fake (each interpreter speaks at its own level, so what a
party hears says which interpreter it came from) and, once, the real server with the tiny model.
What is asserted is what the parties received: audio packets, notices, close codes and reasons.
Waits are on conditions with timeouts, never sleeps; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
import torch

from agent.config import SUPPORT, TRANSLATE_EN_ES, TRANSLATE_ES_EN, StaticAgentRegistry
from agent.settings import AgentSettings
from model.config import ModelConfig
from model.interaction import InteractionModel
from model.runner import Runner
from model.server import ModelServer, ModelServerSettings
from parley.gateway_app import SessionConnector
from telephony.leg import CloseCode
from telephony.ws.client import CallClient, NativeCallClient, TwilioCallClient
from telephony.ws.gateway import run_gateway
from telephony.ws.settings import Settings
from tests.fakes.model_server import FakeModelServer, Step

pytestmark = pytest.mark.timeout(120)

EN_ES_LEVEL = 9000  # what the interpreter hearing party A (en>es) says, into B's leg
ES_EN_LEVEL = 5000  # what the interpreter hearing party B (es>en) says, into A's leg
NOTICE_BAND_HZ = (400.0, 700.0)  # telephony.mix.NOTICE_TONES lie in it
NOTICE_PACKETS = 40  # 4 frames of 20 ms packets


def registry(ducking_db: float | None = None) -> StaticAgentRegistry:
    """The shipped agents, the interpreters with `ducking_db` (None: the interpreter alone)."""
    update = {"bridge_ducking_db": ducking_db}
    return StaticAgentRegistry(
        [SUPPORT, TRANSLATE_EN_ES.model_copy(update=update), TRANSLATE_ES_EN.model_copy(update=update)]
    )


def interpreters(seq: int, session) -> Step:
    """Each direction speaks all the time at its own level, with a word now and then."""
    if session.config.startswith("translate-en-es|en>es|"):
        return Step("speak", text="hola " if seq % 5 == 0 else "", audio=EN_ES_LEVEL)
    return Step("speak", text="hello " if seq % 5 == 0 else "", audio=ES_EN_LEVEL)


def silent(seq: int, session) -> Step:
    return Step("listen", audio="silence")


@contextlib.asynccontextmanager
async def bridge_path(script=interpreters, *, ducking_db: float | None = None, **agent_kw):
    async with FakeModelServer(script) as fake:
        connector = SessionConnector(AgentSettings(model_url=fake.url, **agent_kw), registry(ducking_db))
        async with run_gateway(Settings(host="127.0.0.1", port=0), connector) as gw:
            yield fake, gw, connector


def tone(seconds: float, rate: int, hz: float = 300.0, level: int = 6000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def speak(client: CallClient, seconds: float, hz: float = 300.0, level: int = 6000) -> None:
    """Stream a tone in real time, 20 ms a message, until done or the call closes."""
    pcm, step = tone(seconds, client.rate, hz, level), client.rate // 50
    for n, i in enumerate(range(0, pcm.size, step)):
        delay = client.t0 + n * 0.02 - client.clock()
        if delay > 0:
            await asyncio.sleep(delay)  # the caller's real-time pace, not synchronisation
        if client.closed is not None:
            return
        await client.send_audio(pcm[i : i + step])


def room_event(client: CallClient, status: str) -> dict | None:
    return next((e for e in client.events if e["kind"] == "room" and e.get("status") == status), None)


async def open_room(gw, agent: str = "translate-en-es") -> tuple[NativeCallClient, str]:
    """Party A opens a room; returns its client and the room's id."""
    a = await NativeCallClient(gw.url + "/stream", agent, parameters={"room": "new"}).open()
    await a.wait_for(lambda: room_event(a, "waiting") is not None or a.closed is not None, 5)
    waiting = room_event(a, "waiting")
    assert waiting is not None, a.closed
    return a, waiting["room"]


def join(gw, room: str, agent: str = "translate-es-en", protocol: str = "native") -> CallClient:
    parameters = {"room": room}
    if protocol == "twilio":
        return TwilioCallClient(gw.url + "/twilio", agent, parameters=parameters)
    return NativeCallClient(gw.url + "/stream", agent, parameters=parameters)


def band_share(pcm: np.ndarray, rate: int, band: tuple[float, float]) -> float:
    """The share of `pcm`'s energy above 50 Hz that lies in `band`."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(pcm.size, 1 / rate)
    inside = spectrum[(hz >= band[0]) & (hz <= band[1])].sum()
    return float(inside / max(spectrum[hz > 50].sum(), 1e-9))


def heard_level(client: CallClient) -> float:
    heard = np.abs(client.agent_audio.astype(np.int32))
    return float(np.median(heard[heard > 0]))


def assert_notice_then_close(client: CallClient, code: int, reason: str) -> None:
    """The party got the room's end and its reason, heard the notice, and was then closed."""
    assert client.closed == (code, reason)
    ended = room_event(client, "ended") if client.protocol == "native" else None
    if client.protocol == "native":
        assert ended is not None and ended["reason"] == reason
        end = next(e for e in client.events if e["kind"] == "end")
        assert (end["code"], end["reason"]) == (code, reason)
        # Audio after the room's end (at most the interpreter's last two frames, then the notice).
        assert client.counters["agent_packets"] - ended["after_packets"] >= NOTICE_PACKETS - 4
    tail = client.agent_audio[-int(0.8 * client.rate) :]
    assert band_share(tail, client.rate, NOTICE_BAND_HZ) > 0.6


# --- two parties ------------------------------------------------------------------------------------
@pytest.mark.parametrize("b_protocol", ["native", "twilio"])
async def test_each_party_hears_the_interpreter_of_the_other_and_a_hang_up_ends_both(b_protocol):
    async with bridge_path() as (fake, gw, connector):
        a, room = await open_room(gw)
        assert len(room) >= 24 and room != "new"
        b = await join(gw, room, protocol=b_protocol).open()
        await a.wait_for(lambda: room_event(a, "joined") is not None, 10)
        talking = [asyncio.create_task(speak(c, 20.0)) for c in (a, b)]
        for client in (a, b):
            await client.wait_for(lambda c=client: c.counters["agent_packets"] >= 30, 10)
        heard_a, heard_b = heard_level(a), heard_level(b)
        await a.stop()  # party A hangs up
        await b.wait_for(lambda: b.closed is not None, 10)
        for task in talking:
            task.cancel()
        await fake.wait_for(lambda: len(fake.sessions) == 2 and all(s.closed for s in fake.sessions), 10)
        await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 10)
    # A heard the es>en interpreter, B the en>es one (exactly over pcm16; mu-law within 5%).
    assert heard_a == ES_EN_LEVEL
    assert heard_b == pytest.approx(EN_ES_LEVEL, rel=0.05 if b_protocol == "twilio" else 0)
    assert {t["text"] for t in a.transcript} == {"hello "}
    if b_protocol == "native":
        assert {t["text"] for t in b.transcript} == {"hola "} and room_event(b, "joined")["party"] == "b"
        kinds = [e["kind"] for e in b.events]
        assert kinds.index("started") < kinds.index("room")  # the call starts, then it is in the room
    # Each interpreter session was configured for its direction and ended when the call did.
    configs = sorted(s.config.split("|", 2)[1] for s in fake.sessions)
    assert configs == ["en>es", "es>en"] and all(s.frames > 0 for s in fake.sessions)
    # B heard why, then the notice, then was hung up; A (who hung up) heard no notice.
    assert_notice_then_close(b, CloseCode.NORMAL, "the other party hung up")
    assert room_event(a, "ended") is None
    # One record of the call, with both legs.
    (record,) = list(connector.finished)
    legs = record["bridge"]["legs"]
    assert record["call_id"] == legs[0]["call_id"] and record["ended"]["by"] == "party_a"
    assert [(leg["party"], leg["agent"], leg["ended_by"]) for leg in legs] == [
        ("a", "translate-en-es", "caller"),
        ("b", "translate-es-en", "parley"),
    ]
    assert legs[1]["protocol"] == b_protocol and legs[0]["call_id"] != legs[1]["call_id"]
    assert [i["agent"] for i in record["bridge"]["interpreters"]] == ["translate-en-es", "translate-es-en"]
    spoken = {e["role"] for e in record["transcript"]}
    assert spoken == {"interpreter_a", "interpreter_b"}
    assert "hola" in " ".join(e["text"] for e in record["transcript"] if e["role"] == "interpreter_a")
    assert record["frames_sent"] == sum(s.frames for s in fake.sessions)
    assert not connector.sessions and len(connector.rooms) == 0


async def test_the_joining_party_hanging_up_ends_the_openers_call_too():
    async with bridge_path() as (fake, gw, connector):
        a, room = await open_room(gw)
        b = await join(gw, room).open()
        await a.wait_for(lambda: room_event(a, "joined") is not None, 10)
        talking = [asyncio.create_task(speak(c, 20.0)) for c in (a, b)]
        await a.wait_for(lambda: a.counters["agent_packets"] >= 20, 10)
        await b.stop()
        await a.wait_for(lambda: a.closed is not None, 10)
        for task in talking:
            task.cancel()
        await fake.wait_for(lambda: len(fake.sessions) == 2 and all(s.closed for s in fake.sessions), 10)
    assert_notice_then_close(a, CloseCode.NORMAL, "the other party hung up")
    assert room_event(b, "ended") is None
    (record,) = list(connector.finished)
    assert record["ended"]["by"] == "party_b"
    assert [leg["ended_by"] for leg in record["bridge"]["legs"]] == ["parley", "caller"]
    # The model heard B hang up; A's interpreter was closed by the gateway.
    b_session = fake.session(record["bridge"]["legs"][1]["call_id"])
    assert ("caller_hangup", "client sent stop") in b_session.events


async def test_the_other_partys_voice_is_heard_ducked_under_the_interpreter():
    async with bridge_path(silent, ducking_db=12.0) as (fake, gw, connector):
        a, room = await open_room(gw)
        b = await join(gw, room).open()
        await a.wait_for(lambda: room_event(a, "joined") is not None, 10)
        talking = [asyncio.create_task(speak(a, 20.0, hz=1000.0, level=8000))]  # B stays silent
        await b.wait_for(lambda: b.counters["agent_packets"] >= 40, 10)
        heard_b, heard_a = b.agent_audio, a.agent_audio
        for task in talking:
            task.cancel()
        await a.stop()
        await b.wait_for(lambda: b.closed is not None, 10)
    # B hears A's 1 kHz tone 12 dB down (the interpreter said nothing); A hears silence.
    assert np.percentile(np.abs(heard_b.astype(np.int32)), 99.9) == pytest.approx(
        8000 * 10 ** (-12 / 20), rel=0.03
    )
    assert band_share(heard_b[-3200:], 16000, (950.0, 1050.0)) > 0.95
    assert not np.any(heard_a)


# --- refusals and timeouts --------------------------------------------------------------------------
async def test_joining_an_unknown_room_is_refused():
    async with bridge_path() as (fake, gw, connector):
        for room in ("no-such-room-0123456789ab", "new-ish"):
            stranger = await join(gw, room).open()
            await stranger.wait_for(lambda s=stranger: s.closed is not None, 5)
            assert stranger.closed == (
                CloseCode.NO_SUCH_ROOM,
                "no such room (never opened, ended or timed out)",
            )
    assert fake.sessions == []  # no interpreter was started for them


async def test_a_full_room_and_an_agent_that_does_not_interpret_back_are_refused():
    async with bridge_path() as (fake, gw, connector):
        a, room = await open_room(gw)
        same_way = await join(gw, room, agent="translate-en-es").open()
        await same_way.wait_for(lambda: same_way.closed is not None, 5)
        assert same_way.closed == (
            CloseCode.ROOM_CONFLICT,
            "agent 'translate-en-es' (en>es) does not interpret back the room's 'translate-en-es' (en>es)",
        )
        b = await join(gw, room).open()
        await a.wait_for(lambda: room_event(a, "joined") is not None, 10)
        third = await join(gw, room).open()
        await third.wait_for(lambda: third.closed is not None, 5)
        assert third.closed == (CloseCode.ROOM_CONFLICT, "the room is full: both parties are on the call")
        # A room needs an interpreter to open it.
        shop = await NativeCallClient(gw.url + "/stream", "support", parameters={"room": "new"}).open()
        await shop.wait_for(lambda: shop.closed is not None, 5)
        assert shop.closed == (
            CloseCode.POLICY_VIOLATION,
            "agent 'support' does not interpret: a room needs a translation agent",
        )
        assert a.closed is None and b.closed is None  # the refusals left the call alone
        await a.stop()
        await b.wait_for(lambda: b.closed is not None, 10)
    assert len(fake.sessions) == 2


async def test_a_room_nobody_joins_ends_the_openers_call_with_the_reason():
    async with bridge_path(room_join_timeout_s=0.5) as (fake, gw, connector):
        a, room = await open_room(gw)
        assert room_event(a, "waiting")["join_timeout_s"] == 0.5
        talking = asyncio.create_task(speak(a, 20.0))
        await a.wait_for(lambda: a.closed is not None, 10)
        talking.cancel()
        late = await join(gw, room).open()  # the room is gone
        await late.wait_for(lambda: late.closed is not None, 5)
    assert_notice_then_close(a, CloseCode.NOT_JOINED, "the other party did not join within 0.5 s")
    assert late.closed[0] == CloseCode.NO_SUCH_ROOM
    assert fake.sessions == []  # A's words went nowhere: no interpreter ran
    (record,) = list(connector.finished)
    assert record["ended"] == {
        "by": "timeout",
        "reason": "the other party did not join within 0.5 s",
        "code": 4408,
    }
    assert record["timeline"]["counters"]["frames_unheard_a"] > 0


async def test_an_interpreter_that_cannot_start_refuses_the_join_and_ends_the_openers_call():
    async with FakeModelServer(interpreters, capacity=1) as fake:  # room for one direction only
        connector = SessionConnector(AgentSettings(model_url=fake.url), registry())
        async with run_gateway(Settings(host="127.0.0.1", port=0), connector) as gw:
            a, room = await open_room(gw)
            b = await join(gw, room).open()
            await b.wait_for(lambda: b.closed is not None, 10)
            await a.wait_for(lambda: a.closed is not None, 10)
            await fake.wait_for(lambda: all(s.closed for s in fake.sessions), 10)
    assert b.closed == (CloseCode.TRY_AGAIN_LATER, "model server at capacity: 1 of 1 slots busy")
    assert_notice_then_close(
        a,
        CloseCode.TRY_AGAIN_LATER,
        "the interpreter could not be started (model server at capacity: 1 of 1 slots busy)",
    )
    (record,) = list(connector.finished)
    assert [leg["ended_by"] for leg in record["bridge"]["legs"]] == ["parley", "refused"]
    assert record["bridge"]["interpreters"] == []  # neither ran: the one that started was closed


# --- the real model server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(11)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


async def test_a_bridged_call_through_the_real_model_server(tiny):
    settings = ModelServerSettings(port=0, max_slots=2)
    async with ModelServer(Runner(tiny, 2), settings, model_name="tiny") as server:
        connector = SessionConnector(AgentSettings(model_url=server.url), registry(None))
        async with run_gateway(Settings(host="127.0.0.1", port=0), connector) as gw:
            a, room = await open_room(gw)
            b = await join(gw, room).open()
            await a.wait_for(lambda: room_event(a, "joined") is not None, 20)
            talking = [asyncio.create_task(speak(c, 60.0)) for c in (a, b)]
            for client in (a, b):  # agent audio from the interpreter of the other party's speech
                await client.wait_for(lambda c=client: c.counters["agent_packets"] >= 20, 60)
            turns = [e for e in b.events if e["kind"] == "turn"]
            await b.stop()
            await a.wait_for(lambda: a.closed is not None, 20)
            for task in talking:
                task.cancel()
    assert turns and all(e["floor"] in ("listen", "backchannel", "speak", "yield") for e in turns)
    assert_notice_then_close(a, CloseCode.NORMAL, "the other party hung up")
    (record,) = list(connector.finished)
    assert record["model"] == "tiny" and record["turns_received"] > 0
    interpreters_ = record["bridge"]["interpreters"]
    assert [i["model"] for i in interpreters_] == ["tiny", "tiny"]
    assert all(i["turns_received"] > 0 for i in interpreters_)
