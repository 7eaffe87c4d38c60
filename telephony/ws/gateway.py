"""The websocket media gateway: an ASGI app (Starlette, served by uvicorn) for media-stream calls.

Endpoints:

- `ws /twilio`: Twilio Media Streams (bidirectional, `<Connect><Stream>`), see `serializers.twilio`;
- `ws /stream`: the native protocol, see `serializers.native`;
- `POST /twiml`: TwiML that connects a Twilio call to `/twilio` with a chosen agent (`agent` as a
  form field, JSON field or query parameter; optional `url` of the stream), or the agent of the
  dialled number (Twilio's `To`) when the connector routes numbers; the number goes along as a
  `<Parameter>` (the caller's number does not); with neither, the connector's `default_agent`. With a
  Twilio auth token configured, the request must carry a valid X-Twilio-Signature
  (`telephony.ws.signature`);
- `GET /healthz`: JSON with the live call count and the gateway's counters.

Each accepted websocket becomes a `WebsocketCall` (call.py), which asks the `CallConnector` it
was built with for the call's handler. The connector is the only thing that knows what answers
calls (the agent's app layer passes one that opens a CallSession on the model server); this module
knows nothing of the model or the agents, and never imports either. One bad call never takes down
another: every call runs in its own task, malformed input ends or is dropped within that call, and
messages over `max_message_bytes` are refused by the websocket layer with 1009.

`run_gateway(settings, connector)` runs it in the current event loop for tests and embedding;
`serve(settings, connector)` runs it until SIGINT/SIGTERM (`parley gateway`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import quoteattr

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from telephony.leg import E164, NAME, CallConnector, CallRefused, CloseCode
from telephony.ws.call import GatewayStats, WebsocketCall
from telephony.ws.serializers.base import Serializer
from telephony.ws.serializers.native import NativeSerializer
from telephony.ws.serializers.twilio import TwilioSerializer
from telephony.ws.settings import Settings
from telephony.ws.signature import request_url, twilio_signature_valid

logger = logging.getLogger(__name__)

AGENT_NAME = re.compile(NAME)
NUMBER = re.compile(E164)
MAX_TWIML_BODY = 64 * 1024
READ_HIGH_WATER = 16  # messages a websocket may queue for its call before the socket stops being read


class _WebsocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol, pausing reads only when messages pile up.

    uvicorn pauses reading after every message and resumes once the app has taken it: two
    epoll_ctl calls and a selector update per 20 ms media message, about a tenth of the gateway's
    CPU. Here reading pauses once `READ_HIGH_WATER` messages wait for the call, and resumes, as in
    uvicorn, once the call has taken them all. A call that stopped reading holds that many messages
    plus the rest of the one socket read that crossed the mark (uvicorn likewise parses all of a
    read before pausing), each under `max_message_bytes`.
    """

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        self.read_paused = True  # keeps uvicorn's own per-message pause from happening
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= READ_HIGH_WATER and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()


def create_app(settings: Settings, connector: CallConnector) -> Starlette:
    """The gateway's ASGI app. `app.state.stats` holds its `GatewayStats`."""
    stats = GatewayStats()

    async def handle(ws: WebSocket, serializer: Serializer) -> None:
        await ws.accept()
        if stats.calls_live >= settings.max_calls:
            stats.calls_refused += 1
            stats.closes[CloseCode.TRY_AGAIN_LATER] += 1
            await ws.close(CloseCode.TRY_AGAIN_LATER, f"gateway at capacity ({settings.max_calls} calls)")
            return
        stats.calls_live += 1
        stats.calls_total += 1
        try:
            await stats.changed()
            await WebsocketCall(ws, serializer, connector, settings, stats).serve()
        finally:
            stats.calls_live -= 1
            await stats.changed()

    async def twilio_ws(ws: WebSocket) -> None:
        await handle(ws, TwilioSerializer())

    async def native_ws(ws: WebSocket) -> None:
        await handle(ws, NativeSerializer())

    async def twiml(request: Request) -> Response:
        fields = dict(request.query_params)
        body = b""
        async for chunk in request.stream():  # read at most MAX_TWIML_BODY, never the whole of a huge body
            body += chunk
            if len(body) > MAX_TWIML_BODY:
                return PlainTextResponse("request body too large", status_code=413)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        form: list[tuple[str, str]] = []
        if body and content_type == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                return PlainTextResponse("body is not JSON", status_code=400)
            if not isinstance(data, dict):
                return PlainTextResponse("JSON body must be an object", status_code=400)
            fields.update({k: v for k, v in data.items() if isinstance(v, str)})
        elif body and content_type == "application/x-www-form-urlencoded":
            form = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
            fields.update(form)
        if settings.twilio_auth_token is not None:  # Twilio signs the URL and the form's fields
            url = request_url(request, settings.public_url)
            token = settings.twilio_auth_token.get_secret_value()
            if not twilio_signature_valid(token, url, form, request.headers.get("x-twilio-signature")):
                return PlainTextResponse("missing or invalid X-Twilio-Signature", status_code=403)
        agent = fields.get("agent")
        number = fields.get("To") or fields.get("number")
        number = number if number and NUMBER.fullmatch(number) else None
        route = getattr(connector, "agent_for_number", None)  # connectors that route by number
        if not agent and number and route is not None:
            try:
                agent = await route(number)  # None: the number is not configured
            except CallRefused as exc:
                return PlainTextResponse(exc.reason, status_code=404)
        agent = agent or connector.default_agent
        if not AGENT_NAME.fullmatch(agent) or len(agent) > 64:
            return PlainTextResponse("agent must be an agent name (lowercase slug)", status_code=400)
        if not await connector.has_agent(agent):
            return PlainTextResponse(f"unknown agent {agent!r}", status_code=404)
        try:
            url = stream_url(fields.get("url"), settings.public_url, request)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        parameters = {"number": number} if number else {}  # the caller's number is not passed on
        return Response(twiml_for(url, agent, parameters), media_type="application/xml")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "live_calls": stats.calls_live, "counters": stats.snapshot()})

    app = Starlette(
        routes=[
            WebSocketRoute("/twilio", twilio_ws),
            WebSocketRoute("/stream", native_ws),
            Route("/twiml", twiml, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.stats = stats
    app.state.settings = settings
    return app


def twiml_for(stream: str, agent: str, parameters: Mapping[str, str] | None = None) -> str:
    """`<Connect><Stream>` TwiML for `agent`; the agent (and `parameters`, e.g. the dialled
    `number`) reach the stream as `<Parameter>`s."""
    extra = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in (parameters or {}).items()
    )
    return (
        f"<Response><Connect><Stream url={quoteattr(stream)}>"
        f'<Parameter name="agent" value={quoteattr(agent)}/>{extra}'
        "</Stream></Connect></Response>"
    )


def stream_url(given: str | None, public_url: str | None, request: Request) -> str:
    """The `/twilio` websocket URL for TwiML: `given`, else `public_url`, else the request's host."""
    if given:
        parts = urlsplit(given)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"url {given!r} must be a ws:// or wss:// URL")
        return given if parts.path not in ("", "/") else given.rstrip("/") + "/twilio"
    if public_url:
        parts = urlsplit(public_url)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/twilio"
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
    return f"{'wss' if proto in ('https', 'wss') else 'ws'}://{host}/twilio"


def uvicorn_config(app: Starlette, settings: Settings, **overrides: object) -> uvicorn.Config:
    options: dict = dict(
        host=settings.host,
        port=settings.port,
        ws=_WebsocketProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,  # audio does not compress; deflate only costs CPU
        lifespan="off",
        log_config=None,  # the process's own logging
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


@dataclasses.dataclass(frozen=True)
class RunningGateway:
    """A gateway running in this event loop: `url` is its ws:// base (append /twilio or /stream)."""

    url: str
    http_url: str
    app: Starlette

    @property
    def stats(self) -> GatewayStats:
        return self.app.state.stats


@contextlib.asynccontextmanager
async def run_gateway(settings: Settings, connector: CallConnector) -> AsyncIterator[RunningGateway]:
    """Serve the gateway in the running event loop (port 0: a free port) until the block exits.

    async with run_gateway(Settings(host="127.0.0.1", port=0), connector) as gw:
        ws = await websockets.connect(gw.url + "/stream")
    """
    app = create_app(settings, connector)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(512)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, settings, port=port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not server.started:  # uvicorn offers no event for this; its startup takes a few ms
            if task.done():
                task.result()
                raise RuntimeError("gateway server stopped during startup")
            if loop.time() > deadline:
                raise RuntimeError("gateway server did not start within 10 s")
            await asyncio.sleep(0.005)
        host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        yield RunningGateway(url=f"ws://{host}:{port}", http_url=f"http://{host}:{port}", app=app)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
        sock.close()


async def serve(settings: Settings, connector: CallConnector) -> None:
    """Run the gateway on settings.host:settings.port until SIGINT/SIGTERM."""
    app = create_app(settings, connector)
    logger.info(
        "websocket media gateway on %s:%d (/twilio, /stream, /twiml, /healthz)", settings.host, settings.port
    )
    await uvicorn.Server(uvicorn_config(app, settings)).serve()
