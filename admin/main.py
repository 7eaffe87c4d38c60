"""The admin API app (`parley admin`): FastAPI over the Redis storage in `admin.store`.

    /v1/...    agents, numbers, keys, calls, tools (admin/api/routes/), every route behind an API key
    /healthz   200 when Redis answers, else 503 (no key)
    /metrics   Prometheus text (admin/api/metrics.py); a key of scope read if metrics_require_key
    /docs      OpenAPI (Swagger UI), /openapi.json

At start-up the app writes the shipped agents if the store was never seeded, and the call
retention the gateways apply to records. Errors are `Problem` bodies (`detail`, `field`); a 422
from validation keeps FastAPI's shape (`detail`: [{loc, msg, type}]), which names the field. Log
lines name routes, statuses and key ids, never bodies: no transcript or caller number reaches the
log.

`create_app(settings)` builds the app (tests run it under uvicorn); `run(settings)` serves it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import redis
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin.api import metrics
from admin.api.deps import AUTH_RESPONSES, ApiError, ReadKey, SettingsDep
from admin.api.main import api_router
from admin.core.config import Settings
from admin.store.agents import AgentStore
from admin.store.calls import CallStore
from admin.store.credentials import CredentialStore
from admin.store.errors import StoreError

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
DESCRIPTION = """Configure Parley's agents, numbers and API keys, and see every call.

Every `/v1` route needs `Authorization: Bearer <API key>`; a key's scope (read < write < admin)
must reach the route's (named in each summary). `parley serve` prints a first admin key on its
first start.
"""


def _problem(status: int, reason: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": reason, "field": field}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=2.0
        )
        app.state.credentials = CredentialStore(app.state.redis, cost=settings.key_hash_cost)
        app.state.http = httpx.AsyncClient()
        try:
            if await AgentStore(app.state.redis).ensure_defaults():
                logger.info("wrote the shipped agents to the store")
            await CallStore(app.state.redis).set_retention(settings.call_retention_s)
        except REDIS_ERRORS as exc:
            logger.warning(
                "Redis unreachable at start-up (%s); /healthz says so until it answers", type(exc).__name__
            )
        try:
            yield
        finally:
            await app.state.http.aclose()
            await app.state.redis.aclose()

    app = FastAPI(
        title="Parley admin API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(api_router, prefix="/v1")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 422 and getattr(exc, "errors", None):
            return JSONResponse({"detail": exc.errors}, status_code=422)
        if exc.status == 422:  # one field: FastAPI's validation shape, so every 422 reads alike
            loc = ["body", *exc.field.split(".")] if exc.field else ["body"]  # "a.b": a nested field
            return JSONResponse(
                {"detail": [{"loc": loc, "msg": exc.reason, "type": "value_error"}]}, status_code=422
            )
        return _problem(exc.status, exc.reason, exc.field, exc.headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        if exc.status == 422:
            loc = ["body", exc.field] if exc.field else ["body"]
            return JSONResponse(
                {"detail": [{"loc": loc, "msg": exc.reason, "type": "value_error"}]}, status_code=422
            )
        return _problem(exc.status, exc.reason, exc.field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8): a 422 like any bad body
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": f"the body cannot be read: {exc.detail}",
                            "type": "json_invalid",
                        }
                    ]
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(redis.RedisError)
    async def redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "?")  # the template: no number or id in the log
        logger.warning("Redis error on %s %s: %s", request.method, route, type(exc).__name__)
        return _problem(503, f"storage unavailable ({type(exc).__name__})")

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Liveness: 200 when Redis answers (no key)",
        responses={503: {"description": "Redis does not answer."}},
    )
    async def healthz(request: Request) -> JSONResponse:
        try:
            await request.app.state.redis.ping()
        except REDIS_ERRORS as exc:
            return JSONResponse({"status": "unavailable", "redis": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "redis": "ok"})

    async def _metrics(request: Request, settings: Settings) -> Response:
        snapshot = await CallStore(request.app.state.redis).metrics(settings.worker_queues)
        models = await metrics.scrape_models(
            request.app.state.http, settings.model_health_urls, settings.scrape_timeout_s
        )
        return Response(metrics.exposition(snapshot, models), media_type=metrics.CONTENT_TYPE)

    if settings.metrics_require_key:

        @app.get(
            "/metrics",
            tags=["metrics"],
            response_class=PlainTextResponse,
            responses=AUTH_RESPONSES,
            summary="Prometheus metrics (scope read)",
        )
        async def metrics_with_key(request: Request, settings: SettingsDep, _: ReadKey) -> Response:
            return await _metrics(request, settings)
    else:

        @app.get(
            "/metrics",
            tags=["metrics"],
            response_class=PlainTextResponse,
            summary="Prometheus metrics (no key)",
        )
        async def metrics_open(request: Request, settings: SettingsDep) -> Response:
            return await _metrics(request, settings)

    return app


def run(settings: Settings | None = None) -> None:
    """Serve the admin API until SIGINT/SIGTERM (`parley admin`)."""
    settings = settings or Settings()
    logger.info("admin API on http://%s:%d (/v1, /docs, /metrics, /healthz)", settings.host, settings.port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
