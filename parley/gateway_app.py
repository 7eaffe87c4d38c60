"""The websocket gateway's app layer: each call a transport accepts becomes a `CallSession`.

telephony/ws/gateway.py serves the media-stream websockets and knows nothing of agents or the model;
it asks a `CallConnector` for each call's handler. `SessionConnector` is that connector: it looks
the call's agent up in an `AgentRegistry`, opens a `CallSession` on the model server, and turns
what can go wrong into close codes the transport understands (unknown agent 4404, model server at
capacity 1013, model server unreachable or refusing 1014). The wiring lives here, in the
composition root, because it is the one place that knows both sides: telephony stays free of agent
behaviour, and the SIP gateway (parley/cli_sip.py) reuses the same connector. The connector is
configured by `agent.settings.AgentSettings`; the transport by `telephony.ws.settings.Settings`.

With `REDIS_URL` set, the connector is linked to the admin API's Redis (`parley.admin_link.GatewayLink`):
agents and numbers are read from there per call (changes apply to the next call), media
websockets authenticate once API keys exist (a per-agent stream token, or a Twilio signature),
live calls and finished calls' records are written there, and the admin API can hang calls up.

A call to a number the admin API configures as a translation line (`agent.lines`) is party A of a
bridged call that Parley dials (`agent.bridge_dial.TranslationCall`): its leg's transport reaches
party B, and both join a room as below; the connector registers B's leg as live once it has
joined, and stores the call's one record (the room's, or, when B was never reached, the line's).

A call whose start carries a `room` parameter is a leg of a bridged call (`agent.bridge`): `new`
opens a room for the call's interpreter agent, any other value joins that room. The connector
starts each direction's interpreter session as it starts a plain call's, registers both legs as
live calls, and stores one record for the two: under the opener's call id, with both legs in it.

`run_agent_gateway(settings, agent_settings)` (tests, embedding) and
`serve_agent_gateway(settings, agent_settings)` (`parley gateway`) run the gateway with this
connector; `parley gateway` sends tool calls to the Celery workers
(`agent.tool_router.CeleryToolRouter`) when `REDIS_URL` is set, and answers them "tool
unavailable" otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from admin.core.security import bearer
from agent.background import BackgroundSettings, BackgroundTasks, CeleryBackgroundTasks
from agent.bridge import NEW_ROOM, PartyHandler, Room, Rooms
from agent.bridge_dial import TranslationCall
from agent.config import BUILTIN_AGENTS, AgentConfig, AgentRegistry, UnknownAgent, mirror_problem
from agent.lines import TranslationLine
from agent.model_client import ModelRefused, ModelUnavailable
from agent.session import CallSession, ToolRouter, UnavailableToolRouter
from agent.settings import AgentSettings
from telephony.leg import CallInfo, CallRefused, CloseCode, Leg
from telephony.ws.gateway import RunningGateway, run_gateway, serve
from telephony.ws.settings import Settings

if TYPE_CHECKING:
    from parley.admin_link import GatewayLink

logger = logging.getLogger(__name__)

MEDIA_WEBSOCKETS = ("twilio", "native")  # the protocols `_authorize` checks
ROOM_PARAMETER = "room"  # a bridged call's leg: `new` opens a room, a room's id joins it


class SessionConnector:
    """Makes a started `CallSession` per call, or refuses the call with a close code and reason.

    With a `link` (the admin API's Redis, `parley.admin_link.GatewayLink`), agents and numbers are read
    from Redis per call, media websockets authenticate (`_authorize`), live calls and finished
    calls' records are written there, and hang-up commands from the admin API are obeyed. Without
    one, agents come from `registry` (the shipped agents by default) and nothing is recorded.
    """

    def __init__(
        self,
        settings: AgentSettings,
        registry: AgentRegistry | None = None,
        tool_router: ToolRouter | None = None,
        link: GatewayLink | None = None,
        background: BackgroundTasks | None = None,
    ) -> None:
        self.settings = settings
        self.background = background  # where each call's background model hears and reasons
        self.default_agent = settings.default_agent
        self.link = link
        self.registry: AgentRegistry = registry or (link.registry if link is not None else BUILTIN_AGENTS)
        self.tool_router: ToolRouter = tool_router or UnavailableToolRouter()
        self.sessions: dict[str, CallSession | PartyHandler | TranslationCall] = {}  # live, by call_id
        self.finished: collections.deque[dict] = collections.deque(maxlen=100)  # summaries, newest last
        self.rooms = Rooms(
            self._start_interpreter, join_timeout_s=settings.room_join_timeout_s, on_over=self._room_over
        )

    async def has_agent(self, name: str) -> bool:
        try:
            await self.registry.get(name)
        except UnknownAgent:
            return False
        return True

    async def agent_for_number(self, number: str) -> str | None:
        """The agent the admin API routes `number` to (None: not configured there); refuses
        a number whose agent no longer exists. Used by POST /twiml."""
        if self.link is None:
            return None
        name = await self.link.agent_for_number(number)
        if name is not None and not await self.has_agent(name):
            raise CallRefused(CloseCode.UNKNOWN_AGENT, _orphan_reason(name))
        return name

    async def _agent(self, info: CallInfo) -> tuple[AgentConfig, int]:
        """The call's agent and its version: the dialled number's agent when the admin API
        configures that number, else the agent the call named."""
        name, by_number = info.agent, False
        number = info.parameters.get("number")
        if number and self.link is not None:
            routed = await self.link.agent_for_number(number)
            if routed is not None:
                name, by_number = routed, True
        try:
            versioned = getattr(self.registry, "get_versioned", None)
            if versioned is not None:
                return await versioned(name)
            return await self.registry.get(name), 0
        except UnknownAgent as exc:
            reason = _orphan_reason(name) if by_number else str(exc)
            raise CallRefused(CloseCode.UNKNOWN_AGENT, reason) from None

    async def _authorize(self, info: CallInfo, agent: AgentConfig) -> None:
        """Refuse (4401) a call that must authenticate and did not: a stream token of its agent
        (either protocol), or on /twilio a valid Twilio signature of the handshake (the transport
        checks it when it holds a Twilio auth token: `info.auth["twilio_signature"]`). Required when
        `media_auth` is `required`; with `auto`, once the admin API holds an API key, and for
        Twilio streams whenever the transport checked a signature. SIP calls are not checked here:
        the SIP gateway admits trunks itself."""
        mode = self.settings.media_auth
        if mode == "off" or info.protocol not in MEDIA_WEBSOCKETS:  # SIP authenticates its trunks itself
            return
        twilio = info.auth.get("twilio_signature") if info.protocol == "twilio" else None
        required = (
            mode == "required"
            or twilio is not None
            or (self.link is not None and await self.link.keys_configured())
        )
        if not required:
            return
        token = info.auth.get("token") or bearer(info.auth.get("authorization"))
        if token:
            if self.link is not None and await self.link.token_valid(agent.name, token):
                return
            raise CallRefused(CloseCode.UNAUTHORIZED, f"invalid stream token for agent {agent.name!r}")
        if twilio is not None:
            if twilio == "valid":
                return
            raise CallRefused(CloseCode.UNAUTHORIZED, "missing or invalid X-Twilio-Signature")
        raise CallRefused(
            CloseCode.UNAUTHORIZED,
            "stream token required (Authorization: Bearer <token>, or a 'token' parameter)",
        )

    async def open(self, info: CallInfo, leg: Leg) -> CallSession | PartyHandler | TranslationCall:
        agent, version = await self._agent(info)
        await self._authorize(info, agent)
        number = info.parameters.get("number")
        line = await self.link.translation_line(number) if number and self.link is not None else None
        if line is not None:
            return await self._open_line(info, leg, agent, version, line)
        room = info.parameters.get(ROOM_PARAMETER)
        if room is not None:
            return await self._open_leg(info, leg, agent, version, room)
        session = _TrackedSession(self, agent, leg, **self._session_options(info.call_id))
        await _start(session)
        self.sessions[info.call_id] = session
        if self.link is not None:
            await self.link.call_started(info, agent, version)
        return session

    def _session_options(self, call_id: str) -> dict:
        return dict(
            model_url=self.settings.model_url,
            tool_router=self.tool_router,
            call_id=call_id,
            connect_timeout=self.settings.model_connect_timeout_s,
            tool_timeout=self.settings.tool_timeout_s,
            background=self.background,
        )

    # --- bridged calls -----------------------------------------------------------------------------
    async def _open_leg(
        self, info: CallInfo, leg: Leg, agent: AgentConfig, version: int, room: str
    ) -> PartyHandler:
        """A leg of a bridged call: opens a room (`room` is `new`) or joins one."""
        if room == NEW_ROOM:
            handler = self.rooms.open(info, leg, agent)
        else:
            handler = await self.rooms.join(room, info, leg, agent)
        self.sessions[info.call_id] = handler
        if self.link is not None:
            await self.link.call_started(info, agent, version)
        return handler

    async def _open_line(
        self, info: CallInfo, leg: Leg, agent: AgentConfig, version: int, line: TranslationLine
    ) -> TranslationCall:
        """Party A of a translation line: Parley dials B (`TranslationCall`)."""
        try:
            callee = await self.registry.get(line.callee_agent)
        except UnknownAgent:
            raise CallRefused(
                CloseCode.UNKNOWN_AGENT, f"the translation line's agent {line.callee_agent!r} does not exist"
            ) from None
        problem = mirror_problem(agent, callee)
        if problem is not None:
            raise CallRefused(CloseCode.ROOM_CONFLICT, problem)
        ducked = {"bridge_ducking_db": line.ducking_db}  # the line decides, for both directions
        handler = TranslationCall(
            line,
            agent.model_copy(update=ducked),
            callee.model_copy(update=ducked),
            leg,
            self.rooms,
            on_dialed=self._line_dialed,
            on_unbridged=self._line_unbridged,
        )
        self.sessions[info.call_id] = handler
        if self.link is not None:
            await self.link.call_started(info, agent, version)
        return handler

    async def _line_dialed(self, call: TranslationCall, info: CallInfo, party: PartyHandler) -> None:
        """B answered and joined: its leg is a live call (hung up through the API like A's)."""
        self.sessions[info.call_id] = party
        if self.link is not None:
            await self.link.call_started(info, call.callee, 0)

    async def _line_unbridged(self, call: TranslationCall) -> None:
        """A translation line's call that never reached B: its own record."""
        self.sessions.pop(call.call_id, None)
        summary = call.summary()
        self.finished.append(summary)
        if self.link is None:
            return
        try:
            await self.link.call_ended(call.call_id, summary, call.caller, [])
        except Exception:
            logger.exception("call %s: record not stored", call.call_id, extra={"call_id": call.call_id})

    async def _start_interpreter(self, agent: AgentConfig, leg: Leg, call_id: str) -> CallSession:
        """One direction of a bridged call: a started session (untracked: the room is the call)."""
        session = CallSession(agent, leg, **self._session_options(call_id))
        await _start(session)
        return session

    async def _room_over(self, room: Room) -> None:
        """Both legs of a bridged call are done: one record, under the opener's call id."""
        for party in room.parties:
            self.sessions.pop(party.info.call_id, None)
        summary = room.summary()
        self.finished.append(summary)
        if self.link is None:
            return
        try:
            for party in room.parties:
                if party.info.call_id != room.call_id:
                    await self.link.leg_ended(party.info.call_id)
            await self.link.call_ended(room.call_id, summary, room.a.agent, room.turn_latency_ms)
        except Exception:
            logger.exception("call %s: record not stored", room.call_id, extra={"call_id": room.call_id})

    async def hang_up(self, call_id: str, reason: str) -> bool:
        """End a live call of this gateway from outside (the admin API); False if it holds none."""
        session = self.sessions.get(call_id)
        return session.hang_up(reason) if session is not None else False

    async def _ended(self, session: CallSession) -> None:
        self.sessions.pop(session.call_id, None)
        summary = session.summary()
        self.finished.append(summary)
        if self.link is not None:
            try:
                await self.link.call_ended(session.call_id, summary, session.agent, session.turn_latency_ms)
            except Exception:
                logger.exception(
                    "call %s: record not stored", session.call_id, extra={"call_id": session.call_id}
                )


async def _start(session: CallSession) -> None:
    """Open the session's model-server session, or refuse the call with the code that says why."""
    try:
        await session.start()
    except ModelRefused as exc:
        if exc.code == CloseCode.TRY_AGAIN_LATER:
            raise CallRefused(
                CloseCode.TRY_AGAIN_LATER, f"model server {exc.reason or 'at capacity'}"
            ) from None
        raise CallRefused(
            CloseCode.BAD_GATEWAY, f"model server refused the session ({exc.code}: {exc.reason})"
        ) from None
    except ModelUnavailable as exc:
        logger.warning("model server unavailable", extra={"call_id": session.call_id, "error": str(exc)})
        raise CallRefused(CloseCode.BAD_GATEWAY, "model server unavailable") from None


def _orphan_reason(agent: str) -> str:
    return f"the dialled number's agent {agent!r} does not exist (deleted?): the number takes no calls"


class _TrackedSession(CallSession):
    """A CallSession that leaves its connector's table of live calls when it is over."""

    def __init__(self, connector: SessionConnector, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._connector = connector

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await asyncio.shield(self._connector._ended(self))


@contextlib.asynccontextmanager
async def run_agent_gateway(
    settings: Settings,
    agent_settings: AgentSettings | None = None,
    *,
    registry: AgentRegistry | None = None,
    tool_router: ToolRouter | None = None,
    link: GatewayLink | None = None,
) -> AsyncIterator[RunningGateway]:
    """The gateway with CallSessions, in the running event loop (see `telephony.ws.gateway.run_gateway`).
    `agent_settings` default to the environment's (`PARLEY_*`). A `link` is started with the
    gateway and closed with it."""
    connector = SessionConnector(agent_settings or AgentSettings(), registry, tool_router, link)
    if link is not None:
        await link.start(connector.hang_up)
    try:
        async with run_gateway(settings, connector) as gateway:
            yield gateway
    finally:
        if link is not None:
            await link.close()


@contextlib.asynccontextmanager
async def local_gateway(model_url: str, registry: AgentRegistry) -> AsyncIterator[str]:
    """A gateway on a free loopback port in this event loop whose calls go to the model server at
    `model_url` with `registry`'s agents, and nothing else (no Redis, no background model, tools
    unavailable); yields its base url. `parley eval --bridged` runs its bridged calls through it."""
    settings = Settings(host="127.0.0.1", port=0)
    async with run_agent_gateway(settings, AgentSettings(model_url=model_url), registry=registry) as gw:
        yield gw.url


def background_tasks(router) -> BackgroundTasks | None:
    """Each call's background model runs on the workers behind `router` (a CeleryToolRouter), unless
    PARLEY_BACKGROUND_ENABLED=false; without workers (no REDIS_URL) there is none."""
    if router is None or not BackgroundSettings().enabled:
        return None
    return CeleryBackgroundTasks(router)


async def serve_agent_gateway(settings: Settings, agent_settings: AgentSettings) -> None:
    from agent.tool_router import CeleryToolRouter, ToolRouterSettings

    router = CeleryToolRouter.from_env()
    if router is None:
        logger.warning("REDIS_URL is not set: every tool call will be answered 'tool unavailable'")
    link = None
    redis_url = ToolRouterSettings().redis_url
    if redis_url:
        from parley.admin_link import GatewayLink

        link = GatewayLink(redis_url)
    else:
        logger.warning("REDIS_URL is not set: agents are the shipped ones and no call is recorded")
    connector = SessionConnector(
        agent_settings, tool_router=router, link=link, background=background_tasks(router)
    )
    try:
        if link is not None:
            await link.start(connector.hang_up)
        await serve(settings, connector)
    finally:
        if link is not None:
            await link.close()
        if router is not None:
            logger.info("tool router counters", extra={"counters": router.stats()})
            await router.close()
