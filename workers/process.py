"""A tool worker as a supervised child process: `python -m workers`, ready when it answers a ping.

`parley serve`, the benchmarks and the tests start workers this way. The Celery app is built only
inside the readiness probe, so importing this module loads no Celery.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from procs.children import Child


def worker_ping(redis_url: str, hostname: str) -> Callable[[], bool]:
    """Readiness of one Celery worker: it answers a remote-control ping."""
    from workers.app import make_app
    from workers.settings import WorkerSettings

    app = make_app(WorkerSettings(redis_url=redis_url))

    def ready() -> bool:
        try:
            return bool(app.control.ping(destination=[hostname], timeout=0.5))
        except Exception:  # Redis not reachable yet
            return False

    return ready


def worker_child(
    redis_url: str, name: str = "worker", stdout: int | None = None, extra: tuple = (), warm: str = ""
) -> Child:
    """`python -m workers` (what `parley worker` runs) on `redis_url`, ready when it answers a ping;
    `warm` names the background models its processes load before their first task."""
    hostname = f"{name}-{os.getpid()}-{time.monotonic_ns() % 100000}@localhost"
    return Child(
        name,
        [sys.executable, "-m", "workers", f"--hostname={hostname}", *extra],
        "",
        stdout=stdout,
        env={"REDIS_URL": redis_url, **({"PARLEY_BACKGROUND_WARM": warm} if warm else {})},
        ready=worker_ping(redis_url, hostname),
    )


# The background model's workers: hearing and reasoning each hold a model per process, so they run
# apart from the tool worker (a lookup never queues behind a transcription). Hearing: two
# single-thread processes (Whisper is no faster on two threads); reasoning: one process.
BACKGROUND_WORKERS = (("hearing", 2), ("reasoning", 1))


def background_workers(
    redis_url: str, prefix: str = "", stdout: int | None = None, extra: tuple = ()
) -> list[Child]:
    """The `hearing` and `reasoning` workers as `parley serve` runs them, each loading its model
    before its first task; `prefix` goes before their names."""
    return [
        worker_child(
            redis_url,
            f"{prefix}{queue}",
            stdout=stdout,
            extra=(f"--queues={queue}", f"--concurrency={processes}", *extra),
            warm=queue,
        )
        for queue, processes in BACKGROUND_WORKERS
    ]
