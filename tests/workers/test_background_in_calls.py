"""The background model in a live call, with everything real but the interaction model: a spoken
caller (espeak-ng), the session's VAD, a real Celery worker on a real Redis running Whisper on the
`hearing` queue, SmolLM2 through llama.cpp on the `reasoning` queue and the shop's tools, and the
fake model server (a real websocket server whose Ready says it reads the background's events).

What a 135M-parameter reasoner decides is measured by `parley eval --background-only`, not
asserted here beyond its form: the test holds what must hold whatever it decides.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from agent.background import CeleryBackgroundTasks
from agent.config import SUPPORT
from agent.session import CallSession
from bench.background import frames_of
from model.protocol import EVENT_KINDS
from tests.agent.test_session import FakeLeg
from tests.fakes.model_server import FakeModelServer
from tests.workers.conftest import Worker

pytest.importorskip("espeakng_loader")
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

ORDER_TEXT = "Hi, I'm calling about my order. The number is B 4 0 8 0 8. Can you tell me where it is?"


@pytest.fixture(scope="module")
def background_worker(redis_server, tmp_path_factory):
    w = Worker(
        redis_server.url,
        tmp_path_factory.mktemp("bg") / "worker.log",
        concurrency=2,
        queues="tools,bookings,hearing,reasoning",
    ).start(timeout_s=120)
    yield w
    w.stop()


async def test_a_spoken_order_question_is_heard_reasoned_and_acted_on(background_worker, router, caplog):
    caplog.set_level(logging.INFO)
    async with FakeModelServer(events=EVENT_KINDS) as fake:
        session = CallSession(
            SUPPORT,
            FakeLeg(),
            model_url=fake.url,
            tool_router=router,
            background=CeleryBackgroundTasks(router),
        )
        await session.start()
        run = asyncio.create_task(session.run())
        for frame in frames_of(ORDER_TEXT, "en-us", tail_s=4.0):
            await session.caller_frame(frame)
            await asyncio.sleep(0.02)  # the caller streams faster than real time; the VAD counts audio
        model = session.background

        def settled() -> bool:  # heard, and the reasoner answered with a reply, a wait or an error
            return bool(model.decisions) and model.decisions[-1]["kind"] != "tool"

        await fake.wait_for(settled, timeout=120)
        await session.caller_ended("caller hung up")
        await asyncio.wait_for(run, 10)
        events = fake.sessions[0].events

    heard = " ".join(h["text"] for h in model.heard).lower()
    assert "order" in heard and "where" in heard  # Whisper heard the caller's words
    words_events = [p for k, p in events if k == "caller_words"]
    assert words_events and all(p in heard or p.lower() in heard for p in words_events)
    assert all(h["latency_ms"] >= h["vad_ms"] > 0 for h in model.heard)
    # Every decision has a valid form; a tool call ran through the worker and the model heard it.
    for d in model.decisions:
        assert d["kind"] in ("tool", "reply", "wait", "error")
        if d["kind"] == "tool":
            assert d["tool"] in SUPPORT.tools and isinstance(d["arguments"], dict)
            assert d["outcome"] in ("tool_result", "tool_error")
    kinds = [k for k, _ in events]
    if any(d["kind"] == "tool" for d in model.decisions):
        assert "tool_pending" in kinds and ("tool_result" in kinds or "tool_error" in kinds)
    if model.decisions[-1]["kind"] in ("reply", "error"):
        assert kinds[-2:-1] == ["reply"] or "reply" in kinds
    record = json.dumps(session.summary())
    # The call's record keeps the words; no log line does.
    assert "where" in record.lower()
    for r in caplog.records:
        assert "where it is" not in r.getMessage().lower()
