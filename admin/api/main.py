"""The /v1 router: every resource's routes, each needing an API key of the right scope."""

from __future__ import annotations

from fastapi import APIRouter

from admin.api.routes import agents, calls, keys, numbers, tools

api_router = APIRouter()
api_router.include_router(agents.router)
api_router.include_router(numbers.router)
api_router.include_router(keys.router)
api_router.include_router(calls.router)
api_router.include_router(tools.router)
