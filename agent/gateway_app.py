"""The websocket gateway's app layer: each call a transport accepts becomes a `CallSession`.

telephony/gateway.py serves the media-stream websockets and knows nothing of agents or the model;
it asks a `CallConnector` for each call's handler. `SessionConnector` is that connector: it looks
the call's agent up in an `AgentRegistry`, opens a `CallSession` on the model server, and turns
what can go wrong into close codes the transport understands (unknown agent 4404, model server at
capacity 1013, model server unreachable or refusing 1014). The wiring lives here, in agent/,
because it is the one place that knows both sides: telephony stays free of agent behaviour, and
the SIP gateway can reuse the same connector.

`run_agent_gateway(settings)` (tests, embedding) and `serve_agent_gateway(settings)`
(`parley gateway`) run the gateway with this connector; `parley gateway` sends tool calls to the
Celery workers (`agent.tool_router.CeleryToolRouter`) when `REDIS_URL` is set, and answers them
"tool unavailable" otherwise.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import AsyncIterator, Optional

from agent.config import BUILTIN_AGENTS, AgentRegistry, UnknownAgent
from agent.model_client import ModelRefused, ModelUnavailable
from agent.session import CallSession, ToolRouter, UnavailableToolRouter
from telephony.gateway import RunningGateway, run_gateway, serve
from telephony.leg import CallInfo, CallRefused, CloseCode, Leg
from telephony.settings import Settings

logger = logging.getLogger(__name__)


class SessionConnector:
    """Makes a started `CallSession` per call, or refuses the call with a close code and reason."""

    def __init__(
        self,
        settings: Settings,
        registry: Optional[AgentRegistry] = None,
        tool_router: Optional[ToolRouter] = None,
    ) -> None:
        self.settings = settings
        self.registry: AgentRegistry = registry or BUILTIN_AGENTS
        self.tool_router: ToolRouter = tool_router or UnavailableToolRouter()
        self.sessions: dict[str, CallSession] = {}  # live calls by call_id
        self.finished: collections.deque[dict] = collections.deque(maxlen=100)  # summaries, newest last

    async def has_agent(self, name: str) -> bool:
        try:
            await self.registry.get(name)
        except UnknownAgent:
            return False
        return True

    async def open(self, info: CallInfo, leg: Leg) -> CallSession:
        try:
            agent = await self.registry.get(info.agent)
        except UnknownAgent as exc:
            raise CallRefused(CloseCode.UNKNOWN_AGENT, str(exc)) from None
        session = _TrackedSession(
            self,
            agent,
            leg,
            model_url=self.settings.model_url,
            tool_router=self.tool_router,
            call_id=info.call_id,
            connect_timeout=self.settings.model_connect_timeout_s,
            tool_timeout=self.settings.tool_timeout_s,
        )
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
            logger.warning("model server unavailable", extra={"call_id": info.call_id, "error": str(exc)})
            raise CallRefused(CloseCode.BAD_GATEWAY, "model server unavailable") from None
        self.sessions[info.call_id] = session
        return session


class _TrackedSession(CallSession):
    """A CallSession that leaves its connector's table of live calls when it is over."""

    def __init__(self, connector: SessionConnector, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._connector = connector

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self._connector.sessions.pop(self.call_id, None)
            self._connector.finished.append(self.summary())


@contextlib.asynccontextmanager
async def run_agent_gateway(
    settings: Settings,
    *,
    registry: Optional[AgentRegistry] = None,
    tool_router: Optional[ToolRouter] = None,
) -> AsyncIterator[RunningGateway]:
    """The gateway with CallSessions, in the running event loop (see `telephony.gateway.run_gateway`)."""
    async with run_gateway(settings, SessionConnector(settings, registry, tool_router)) as gateway:
        yield gateway


async def serve_agent_gateway(settings: Settings) -> None:
    from agent.tool_router import CeleryToolRouter

    router = CeleryToolRouter.from_env()
    if router is None:
        logger.warning("REDIS_URL is not set: every tool call will be answered 'tool unavailable'")
    try:
        await serve(settings, SessionConnector(settings, tool_router=router))
    finally:
        if router is not None:
            logger.info("tool router counters", extra={"counters": router.stats()})
            await router.close()
