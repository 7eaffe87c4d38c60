"""`python -m workers` (what `parley worker` runs): one Celery worker for the tools.

    python -m workers [--concurrency N] [--queues tools,bookings,webhooks] [--include MODULE,...]
                      [--hostname NAME] [--loglevel INFO]

Defaults come from `workers.settings.WorkerSettings` (REDIS_URL, PARLEY_WORKER_*). Logs go to
stderr in the platform's one-line format; SIGTERM finishes the running tasks and stops (a task
cut short by SIGKILL is delivered again to another worker); nothing goes to stdout. Imports
nothing of torch or model/.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import warnings


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The worker's options (shared with `parley worker`, which runs this module)."""
    p.add_argument("--concurrency", type=int, help="tool processes (default PARLEY_WORKER_CONCURRENCY or 2)")
    p.add_argument("--queues", help="comma-separated queues (default tools,bookings,webhooks)")
    p.add_argument("--include", action="append", default=[], help="extra module(s) of tools to import")
    p.add_argument("--hostname", help="worker name (default parley-PID@HOST)")
    p.add_argument("--loglevel", default="INFO")
    return p


def to_argv(args: argparse.Namespace) -> list[str]:
    """Parsed options back to a command line for this module."""
    argv = [f"--loglevel={args.loglevel}"]
    for name in ("concurrency", "queues", "hostname"):
        if getattr(args, name) is not None:
            argv.append(f"--{name}={getattr(args, name)}")
    argv += [f"--include={m}" for m in args.include]
    return argv


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(prog="parley worker", description="run a Celery worker for Parley's tools")
    )


def _quiet_known_warnings(**_: object) -> None:
    from celery.exceptions import CPendingDeprecationWarning

    warnings.filterwarnings(
        "ignore", "(?s).*worker_cancel_long_running_tasks_on_connection_loss", CPendingDeprecationWarning
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Celery prints its shutdown notices on stdout; a worker says everything on stderr, so a
    # parent's stdout (`parley serve --demo-call` prints one JSON line there) stays clean.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    process = os.environ.get("PARLEY_PROCESS", "worker")
    logging.basicConfig(
        level=args.loglevel.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s",
    )
    from celery import signals

    import workers.background  # noqa: F401  (registers the hearing and reasoning tasks)
    from workers.app import app
    from workers.tools import redact_celery_logs

    # Celery warns on every lost connection that a default will change in 6.0; workers.app sets
    # that setting explicitly. (Filtered once Celery has set its own warning filters up.)
    signals.celeryd_after_setup.connect(_quiet_known_warnings, weak=False)

    for handler in logging.getLogger().handlers:
        handler.addFilter(redact_celery_logs)
    s = app.parley_settings
    queues = args.queues or ",".join(s.queues)
    includes = [m for arg in args.include for m in arg.split(",") if m]
    hostname = args.hostname or f"parley-{os.getpid()}@{socket.gethostname()}"
    logging.getLogger(__name__).info(
        "worker %s: queues %s, %d processes, redelivery within %.0f s",
        hostname,
        queues,
        args.concurrency or s.concurrency,
        s.redelivery_s,
    )
    worker_argv = [
        "--quiet",
        "worker",
        f"--loglevel={args.loglevel.upper()}",
        f"--concurrency={args.concurrency or s.concurrency}",
        f"--queues={queues}",
        f"--hostname={hostname}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if includes:
        worker_argv.append(f"--include={','.join(includes)}")
    app.worker_main(worker_argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
