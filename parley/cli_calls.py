"""`parley gateway` and `parley call`: the call-path subcommands, registered on an argparse parser.

    parley gateway [--host H] [--port P] [--model-url ws://...]       # PARLEY_* env for the rest
    parley call --agent NAME --wav caller.wav [--url URL] [--protocol twilio|native] --out call.wav
                [--token STREAM_TOKEN] [--number +15555550123]

`add_commands(subparsers)` adds both to the `parley` command line (parley/cli.py). Each command's
function takes the parsed arguments and returns an exit status; `call` prints one JSON summary.
Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path


def _quiet_libraries() -> None:
    """Keep the websockets library's DEBUG frame dumps (payloads: tool arguments, DTMF) out of
    the log even with -v."""
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().level))


def cmd_gateway(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from agent.settings import AgentSettings
    from parley.gateway_app import serve_agent_gateway
    from telephony.ws.settings import Settings

    transport = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    agent = {"model_url": args.model_url} if args.model_url is not None else {}
    try:
        settings, agent_settings = Settings(**transport), AgentSettings(**agent)
    except ValidationError as exc:
        raise ValueError(f"bad gateway settings: {exc}") from None
    _quiet_libraries()
    asyncio.run(serve_agent_gateway(settings, agent_settings))
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from parley.call import place_call

    if not args.wav.is_file():
        raise ValueError(f"--wav {args.wav} is not a file")
    _quiet_libraries()
    try:
        summary = asyncio.run(
            place_call(
                args.agent,
                args.wav,
                args.out,
                url=args.url,
                protocol=args.protocol,
                linger_s=args.linger,
                token=args.token or os.environ.get("PARLEY_STREAM_TOKEN") or None,
                parameters={"number": args.number} if args.number else None,
            )
        )
    except ConnectionError as exc:
        raise ValueError(str(exc)) from None
    print(json.dumps(summary))
    return 0 if summary["close_code"] in (1000, 1005, None) else 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `gateway` and `call` on the `parley` subparsers."""
    gateway = subparsers.add_parser(
        "gateway", help="run the websocket media gateway (/twilio, /stream, /twiml)"
    )
    gateway.add_argument("--host", default=None, help="listen address (default PARLEY_HOST or 0.0.0.0)")
    gateway.add_argument("--port", type=int, default=None, help="listen port (default PARLEY_PORT or 8080)")
    gateway.add_argument(
        "--model-url",
        default=None,
        help="model server session URL (default PARLEY_MODEL_URL or ws://127.0.0.1:8765/session)",
    )
    gateway.set_defaults(func=cmd_gateway)

    call = subparsers.add_parser("call", help="call an agent through a gateway with a WAV file and record it")
    call.add_argument("--agent", required=True, help="agent name, e.g. support")
    call.add_argument("--wav", type=Path, required=True, help="the caller's audio (PCM WAV, any rate)")
    call.add_argument(
        "--url", default=None, help="gateway URL (default ws://127.0.0.1:8080; path added per protocol)"
    )
    call.add_argument("--protocol", choices=("twilio", "native"), default="twilio")
    call.add_argument(
        "--out", type=Path, required=True, help="two-channel WAV to write (timeline JSON goes next to it)"
    )
    call.add_argument(
        "--linger", type=float, default=3.0, help="seconds to keep listening after the WAV ends"
    )
    call.add_argument(
        "--token",
        default=None,
        help="the agent's stream token (default PARLEY_STREAM_TOKEN), once API keys exist",
    )
    call.add_argument("--number", default=None, help="the dialled number (E.164): the call goes to its agent")
    call.set_defaults(func=cmd_call)
