"""The offline engine steps calls as the model server does: alone or batched, by hand or over a socket."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch
from websockets.asyncio.client import connect

from model.engine import Call, Engine, Turn
from model.protocol import FRAME_BYTES
from model.runner import Runner
from model.scheduler import Sampling, TickPlan
from model.server import ModelServer, ModelServerSettings
from model.tokenizer import SPECIAL, ByteTokenizer, reply_bytes
from tests.model.conftest import caller_audio

pytestmark = pytest.mark.timeout(180)
TOK = ByteTokenizer()


def frames(turns: int, seed: int) -> list[bytes]:
    """`turns` caller frames of PCM16 LE bytes (speech-like bursts, different per seed)."""
    audio = caller_audio(1, turns, seed)[:, 0]  # [T, 3200] float32
    pcm = (audio * 32768.0).round().clamp(-32768, 32767).to(torch.int16)
    return [row.numpy().astype("<i2").tobytes() for row in pcm]


def calls() -> list[Call]:
    return [
        Call(
            "support|en|lookup_order|Be brief.",
            frames(9, 1),
            {2: TOK.encode_event("dtmf", "4")},
            Sampling(1.0, 0.95, seed=11),
        ),
        Call("reception|en,de||Greet callers.", frames(6, 2), {}, Sampling(0.8, 0.9, seed=22)),
        Call(
            "x" * 500,
            frames(11, 3),
            {0: TOK.encode_event("tool_result", '{"status":"shipped"}')},
            Sampling(0.0, 1.0, seed=33),
        ),  # a config longer than the prefix budget; greedy
    ]


def assert_same(a: list[Turn], b: list[Turn]) -> None:
    """Same decisions and tokens; audio equal up to float rounding in a batch of another size (1 LSB)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.frame, x.floor, x.text, x.tool_call) == (y.frame, y.floor, y.text, y.tool_call)
        pa, pb = (np.frombuffer(t.pcm, "<i2").astype(np.int32) for t in (x, y))
        assert len(pa) == len(pb) and np.abs(pa - pb).max() <= 1
        assert x.floor_probs == pytest.approx(y.floor_probs, abs=1e-5)


def test_a_call_stepped_alone_equals_it_stepped_in_a_batch(tiny):
    batched = Engine(tiny, 4).run(calls())
    for i, call in enumerate(calls()):
        assert_same(Engine(tiny, 1).run([call])[0], batched[i])
    assert [len(t) for t in batched] == [9, 6, 11] and [t.frame for t in batched[2]] == list(range(11))
    assert all(len(t.pcm) == FRAME_BYTES and sum(t.floor_probs) == pytest.approx(1.0) for t in batched[0])


def test_a_words_call_stepped_alone_equals_it_stepped_in_a_batch(tiny_words):
    engine = Engine(tiny_words, 3)
    reply = engine.encode_event("reply", "aaaaaaaaaaaaaaaaaaaa aaaa")
    assert reply[0] == SPECIAL.REPLY and engine.encode_event("dtmf", "4") == [SPECIAL.DTMF, ord("4")]
    calls = [
        Call(
            "support|en",
            frames(8, 1),
            {1: [reply, engine.encode_event("dtmf", "4")]},
            Sampling(1.0, 0.95, 11),
        ),
        Call(
            "reception|en",
            frames(6, 2),
            {0: [engine.encode_event("tool_result", '{"ok": true}')], 3: [reply]},
            Sampling(0.8, 0.9, seed=22),
        ),
    ]
    batched = engine.run(calls)
    assert int(engine.state.reply_len[0]) == len(reply_bytes("aaaaaaaaaaaaaaaaaaaa aaaa", 1024))
    for i, call in enumerate(calls):
        assert_same(Engine(tiny_words, 1).run([call])[0], batched[i])


def test_the_engine_equals_the_runner_driven_by_hand(tiny):
    call = calls()[0]
    runner = Runner(tiny, 2)
    slot = 1  # not the slot the engine picks: a slot's outputs do not depend on its index
    prefix = TOK.encode_prefix(call.config, tiny.cfg.max_prefix)
    by_hand = []
    for k, frame in enumerate(call.frames):
        plan = TickPlan(tick=k, step=[slot], frames={slot: frame}, frame_index={slot: k})
        if k == 0:
            plan.resets, plan.prefills, plan.sampling = [slot], {slot: prefix}, {slot: call.sampling}
        if call.events.get(k):
            plan.events = {slot: call.events[k]}
        by_hand.append(runner.execute(plan)[slot])
    turns = Engine(tiny, 1).run([call])[0]
    assert [(t.floor, t.text, t.tool_call, t.pcm) for t in turns] == [
        (r.floor, r.text, r.tool_call, r.pcm) for r in by_hand
    ]


def test_masked_slots_do_not_advance(tiny):
    a, b = calls()[:2]
    engine = Engine(tiny, 2)
    sa, sb = engine.admit(a.config, a.sampling), engine.admit(b.config, b.sampling)
    got_b = [engine.step({sa: a.frames[0], sb: b.frames[0]})[sb]]
    held = {
        name: t[:, sb].clone() if name.startswith(("k_", "v_")) else t[sb].clone()
        for name, t in engine.state.tensors().items()
    }
    for k in range(1, 4):  # b sends nothing for three ticks: only a steps
        assert set(engine.step({sa: a.frames[k]})) == {sa}
    for name, t in engine.state.tensors().items():
        assert torch.equal(t[:, sb] if name.startswith(("k_", "v_")) else t[sb], held[name]), name
    for k in range(1, len(b.frames)):  # b picks up where it stopped, as if it had never paused
        got_b.append(engine.step({sb: b.frames[k]})[sb])
    assert_same(got_b, Engine(tiny, 1).run([b])[0])


async def test_the_engine_equals_the_model_server(tiny):
    call = calls()[0]
    settings = ModelServerSettings(port=0, max_slots=2, tick_ms=20)
    server = ModelServer(Runner(tiny, 2), settings, model_name="tiny")
    await server.start()
    served = []
    try:
        async with connect(server.url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "call_id": "c",
                        "config": call.config,
                        "seed": call.sampling.seed,
                        "temperature": call.sampling.temperature,
                        "top_p": call.sampling.top_p,
                    }
                )
            )
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ready"
            for k, frame in enumerate(call.frames):
                if k == 2:
                    await ws.send(json.dumps({"type": "event", "kind": "dtmf", "payload": "4"}))
                await ws.send(frame)
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 5)
                    if isinstance(msg, str) and json.loads(msg)["type"] == "turn":
                        served.append((json.loads(msg), await asyncio.wait_for(ws.recv(), 5)))
                        break
    finally:
        await server.stop()
    turns = Engine(tiny, 1).run([call])[0]
    assert [(t.frame, t.floor, t.text, t.pcm) for t in turns] == [
        (m["frame"], m["floor"], m["text"], pcm) for m, pcm in served
    ]
