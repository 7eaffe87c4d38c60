"""`parley sip`, `parley sip-worker` and `parley bench sip`: the SIP gateway's commands.

    parley sip [--workers N] [--host H] [--port 5060] [--model-url ws://...] [--health-port P] [--events]
    parley sip-worker --index I --settings FILE --agent-settings JSON   # started by `parley sip`
    parley bench sip --calls N --seconds S           # sipp calls with media through Kamailio, JSON

Everything else comes from PARLEY_SIP_*: numbers, trunks, ports (telephony/sip/settings.py) and
the model server's address and timeouts (agent/settings.py, read with the PARLEY_SIP_ prefix).
This is also where the SIP transport meets the agent: each worker gets the same
`SessionConnector` as the websocket gateway (parley/gateway_app.py), so a SIP call is one more
`CallSession` on the model server. `add_commands(subparsers, bench_subparsers)` registers all
three; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _sip_settings(args: argparse.Namespace):
    """The transport's settings and the agent's (`PARLEY_SIP_*` both), flags on top."""
    from pydantic import ValidationError

    from agent.settings import AgentSettings
    from telephony.sip.settings import SipSettings

    overrides = {
        k: v
        for k, v in (
            ("workers", args.workers),
            ("host", args.host),
            ("port", args.port),
            ("health_port", args.health_port),
        )
        if v is not None
    }
    agent = {"model_url": args.model_url} if args.model_url is not None else {}
    try:
        # Stream tokens are a websocket matter: a SIP call is authenticated by the trunk check
        # (Kamailio or the worker), so media_auth is off here.
        return SipSettings(**overrides), AgentSettings(_env_prefix="PARLEY_SIP_", media_auth="off", **agent)
    except ValidationError as exc:
        raise ValueError(f"bad SIP settings: {exc}") from None


def cmd_sip(args: argparse.Namespace) -> int:
    from agent.config import BUILTIN_AGENTS, UnknownAgent
    from telephony.sip.supervisor import Supervisor

    settings, agent_settings = _sip_settings(args)
    numbers = settings.load_numbers()
    for agent in sorted(set(numbers.values())):
        try:
            BUILTIN_AGENTS.lookup(agent)
        except UnknownAgent as exc:
            raise ValueError(f"PARLEY_SIP_NUMBERS: {exc}") from None
    if not numbers:
        logging.getLogger(__name__).warning("no numbers configured (PARLEY_SIP_NUMBERS): every call gets 404")
    settings.load_trunks()

    def worker_argv(index: int, settings_file: Path) -> list[str]:
        argv = [sys.executable, "-m", "parley.cli"]
        if args.verbose:
            argv.append("-v")
        return argv + [
            "sip-worker",
            "--index",
            str(index),
            "--settings",
            str(settings_file),
            "--agent-settings",
            agent_settings.model_dump_json(),
        ]

    supervisor = Supervisor(settings, worker_argv, emit=_emit if args.events else None)
    return asyncio.run(supervisor.run())


def _connector(agent_settings):
    """The websocket gateway's SessionConnector, wired as `parley gateway` wires it: with REDIS_URL,
    tool calls go to the Celery workers and the admin API's Redis is linked (its numbers route
    calls, its records and hang-ups apply)."""
    from parley.gateway_app import SessionConnector, background_tasks

    router = link = None
    redis_url = os.environ.get("REDIS_URL") or os.environ.get("PARLEY_TOOLS_REDIS_URL")
    if redis_url:  # imported only then: Celery and Redis clients stay out of a lean worker otherwise
        from agent.tool_router import CeleryToolRouter
        from parley.admin_link import GatewayLink

        router, link = CeleryToolRouter.from_env(), GatewayLink(redis_url)
    connector = SessionConnector(
        agent_settings, tool_router=router, link=link, background=background_tasks(router)
    )
    return connector, router, link


def cmd_sip_worker(args: argparse.Namespace) -> int:
    import signal

    from agent.settings import AgentSettings
    from telephony.sip.settings import SipSettings
    from telephony.sip.worker import SipWorker

    settings = SipSettings.model_validate_json(args.settings.read_text())
    agent_settings = AgentSettings.model_validate_json(args.agent_settings)
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().level))

    async def main() -> int:
        connector, router, link = _connector(agent_settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            if link is not None:
                await link.start(connector.hang_up)
            worker = SipWorker(
                settings, args.index, connector, emit=_emit, numbers_from_connector=link is not None
            )
            return await worker.run(stop)
        finally:
            if link is not None:
                await link.close()
            if router is not None:
                await router.close()

    try:
        status = asyncio.run(main())
    except Exception:
        logging.getLogger(__name__).exception("SIP worker %d failed", args.index)
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # nothing of pjsua2 may outlive libDestroy(): no interpreter teardown


def cmd_bench_sip(args: argparse.Namespace) -> int:
    from bench.sip import run

    print(json.dumps(run(args.calls, args.seconds, ladder=not args.no_ladder, codec=args.codec)))
    return 0


def add_commands(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Register `sip`, `sip-worker` (on the parley subparsers) and `bench sip`."""
    sip = subparsers.add_parser("sip", help="run the SIP gateway: pjsua2 workers behind Kamailio")
    sip.add_argument(
        "--workers", type=int, default=None, help="worker processes, 4 calls each (PARLEY_SIP_WORKERS)"
    )
    sip.add_argument("--host", default=None, help="public SIP and RTP address (PARLEY_SIP_HOST, 0.0.0.0)")
    sip.add_argument(
        "--port", type=int, default=None, help="public SIP port, UDP and TCP (PARLEY_SIP_PORT, 5060)"
    )
    sip.add_argument("--model-url", default=None, help="model server session URL (PARLEY_SIP_MODEL_URL)")
    sip.add_argument(
        "--health-port", type=int, default=None, help="GET /healthz port (PARLEY_SIP_HEALTH_PORT, 8081)"
    )
    sip.add_argument("--events", action="store_true", help="print call events as JSON lines on stdout")
    sip.set_defaults(func=cmd_sip)

    worker = subparsers.add_parser("sip-worker", help=argparse.SUPPRESS)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--settings", type=Path, required=True)
    worker.add_argument("--agent-settings", required=True, help="AgentSettings as JSON")
    worker.set_defaults(func=cmd_sip_worker)

    b = bench.add_parser("sip", help="concurrent sipp calls with media through Kamailio: capacity and loss")
    b.add_argument("--calls", type=int, default=64)
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--codec", choices=("PCMU", "PCMA"), default="PCMU")
    b.add_argument(
        "--no-ladder", action="store_true", help="only the given number of calls, no smaller steps"
    )
    b.set_defaults(func=cmd_bench_sip)
