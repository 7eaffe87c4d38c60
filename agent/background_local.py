"""`LocalBackgroundTasks`: the background model's hearing and reasoning in this process.

The same work as the workers' `hearing` and `reasoning` tasks (`workers.background.hear_audio`,
`decide`: the task bodies, JSON arguments in, outcome out), run on a thread pool off the event
loop, since Whisper (CTranslate2) and the local reasoner (llama.cpp) are CPU-bound and blocking.
Outcomes are the Celery path's: `{"result": {...}}`, or `{"error": ...}` for bad input, a model
that raised ("tool failed", as a worker answers) or an answer later than `timeout_s` ("tool timed
out", as the router answers). Nothing raises. A timed-out thread cannot be stopped: it finishes in
the background, its answer dropped, and holds its pool thread until then.

For one process that holds the models itself (`parley eval --background`); the platform runs the
same work on the workers (`agent.background.CeleryBackgroundTasks`). Webhook tools' schemas live in
the admin API's Redis, which this does not reach: `tool_schemas` offers none.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.hearing import Segment
from agent.tool_router import TIMED_OUT
from workers import background, protocol

logger = logging.getLogger(__name__)


class LocalBackgroundTasks:
    """`agent.background.BackgroundTasks` in-process. `transcriber` (a `workers.hearing.
    Transcriber`) and `reasoner` (a `workers.reasoner.Reasoner`) default to what a worker process
    loads from its environment (`PARLEY_HEARING_*`, `PARLEY_REASONER_*`); `threads` tasks run at
    once (the transcriber serialises its own calls; the local reasoner runs `instances` at once)."""

    def __init__(self, *, transcriber=None, reasoner=None, threads: int = 2) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.transcriber = transcriber
        self.reasoner = reasoner
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="background")

    def warm(self) -> None:
        """Load both models now (blocking), so that a call's first segment does not wait for them."""
        if self.transcriber is None:
            self.transcriber = background.transcriber()
        if self.reasoner is None:
            self.reasoner = background.reasoner()
        self.transcriber.transcribe(b"\0\0" * 16_000, 16_000)
        getattr(self.reasoner, "warm", lambda: None)()

    async def hear(self, call_id: str, segment: Segment, timeout_s: float) -> dict[str, Any]:
        arguments = {"audio": base64.b64encode(segment.audio).decode("ascii"), "segment": segment.index}
        return await self._run(background.hear_audio, arguments, self.transcriber, call_id, timeout_s)

    async def reason(
        self, call_id: str, brief: dict[str, Any], history: list[dict[str, Any]], timeout_s: float
    ) -> dict[str, Any]:
        arguments = {"brief": brief, "history": history}
        return await self._run(background.decide, arguments, self.reasoner, call_id, timeout_s)

    async def tool_schemas(self, names: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        """Stop taking work; tasks already running finish in their threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(
        self,
        work: Callable[..., dict[str, Any]],
        arguments: dict[str, Any],
        model: Any,
        call_id: str,
        timeout_s: float,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, functools.partial(work, arguments, model, call_id))
        except RuntimeError:  # the pool was shut down
            return protocol.error(protocol.FAILED)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            logger.warning("call %s: %s timed out", call_id, work.__name__, extra={"call_id": call_id})
            return protocol.error(TIMED_OUT)
        except Exception as exc:  # the type only: a message could quote what was said
            logger.error(
                "call %s: %s failed: %s",
                call_id,
                work.__name__,
                type(exc).__name__,
                extra={"call_id": call_id},
            )
            return protocol.error(protocol.FAILED)
