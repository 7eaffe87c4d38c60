"""`parley admin`: the admin API, registered on the `parley` command line (parley/cli.py).

    parley admin [--host H] [--port 8090]       # PARLEY_ADMIN_* and REDIS_URL for the rest

Nothing heavy (FastAPI, uvicorn) is imported until the command runs.
"""

from __future__ import annotations

import argparse


def cmd_admin(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from admin.core.config import Settings
    from admin.main import run

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ValueError(f"bad admin settings: {exc}") from None
    run(settings)
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register `admin` on the `parley` subparsers."""
    admin = subparsers.add_parser(
        "admin", help="run the admin API (agents, numbers, keys, calls, metrics) on Redis (REDIS_URL)"
    )
    admin.add_argument("--host", default=None, help="listen address (default PARLEY_ADMIN_HOST or 127.0.0.1)")
    admin.add_argument(
        "--port", type=int, default=None, help="listen port (default PARLEY_ADMIN_PORT or 8090)"
    )
    admin.set_defaults(func=cmd_admin)
