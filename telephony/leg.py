"""The seam between a transport and whatever answers the call: call legs, handlers, close codes.

A transport (the websocket media gateway, the SIP gateway) turns one phone call into a `Leg`:
caller audio comes out of it as 200 ms frames of 16 kHz int16 (3200 samples), agent audio goes
into it as 16 kHz int16 frames, and it can mark the end of an utterance, drop queued agent audio at
once (`interrupt`), relay an opaque event to the far end, transfer and hang up.

Whatever answers the call implements `CallHandler` (the agent's `CallSession` does), and a
`CallConnector` makes one handler per call from its `CallInfo`, or refuses the call with
`CallRefused(code, reason)`. This module only names those shapes: it knows nothing of the model,
agents, floors, transcripts or tools, and the transport never learns more than this. The name a
call asks for (`CallInfo.agent`) is an opaque slug (`NAME`) to the transport.

A transport that can place calls gives its legs a second shape, `Dialer`: `dial(number, policy,
ring_timeout_s)` reaches another party (a translation line's party B) and returns that party's
`DialedLeg` once it answers, or raises `DialFailed` with why not (not allowed, busy, rejected, no
answer, unavailable). The transport checks the number against the `telephony.dialplan.DialPolicy`
it is given (`NumberPolicy`) before anything leaves the machine. The dialled leg is served like an
answered call: `serve(handler)` feeds the handler until that party's side is gone.

Close codes are websocket close codes (RFC 6455 and the IANA registry, plus application codes
in the 4000 range); a SIP transport maps them onto SIP responses.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

# The one definition of each (agent.config's SLUG and PHONE anchor these; admin/ uses those):
# A lowercase slug: the name a call asks for (CallInfo.agent), a trunk's name.
NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"
E164 = r"\+[1-9][0-9]{6,14}"  # a dialled number, E.164 (+15555550123)


class CloseCode(enum.IntEnum):
    """Why a call's websocket was closed. The close reason always says more, in words."""

    NORMAL = 1000  # the call ended: caller stop, agent hang-up, transfer
    GOING_AWAY = 1001  # the gateway is shutting down
    UNSUPPORTED_DATA = 1003  # native: non-JSON text, unknown message type; any: unsupported media format
    POLICY_VIOLATION = 1008  # messages out of order: audio before start, a second start, a rate change
    MESSAGE_TOO_BIG = 1009  # a message over the gateway's size limit (closed by the websocket layer)
    INTERNAL_ERROR = 1011  # a bug in the gateway or the handler
    TRY_AGAIN_LATER = 1013  # the gateway or the model server is at capacity
    BAD_GATEWAY = 1014  # the model server is unreachable, dropped the session or sent an error
    UNAUTHORIZED = 4401  # no valid stream token or Twilio signature where one is required
    UNKNOWN_AGENT = 4404  # the call asked for an agent (or a number) that does not exist
    NOT_JOINED = 4408  # a bridged call's other party did not join its room in time
    ROOM_CONFLICT = 4409  # a join to a full room, or with an agent that does not mirror the room's
    NO_SUCH_ROOM = 4410  # a join to a room that does not exist (never made, ended or timed out)


def close_reason(text: str) -> str:
    """`text` cut to the 123 UTF-8 bytes a websocket close frame can carry."""
    raw = text.encode("utf-8")
    if len(raw) <= 123:
        return text
    return raw[:120].decode("utf-8", errors="ignore") + "..."


@dataclasses.dataclass(frozen=True)
class CallInfo:
    """What the transport knows about a new call when it asks for a handler.

    `call_id` is Parley's own id for the call (fresh per call); `external_id` is the transport's
    (Twilio callSid, the native client's call_id) when it has one. `parameters` are the transport's
    custom parameters (Twilio `<Parameter>`s; a `number` parameter is the dialled number);
    `agent` is the name the call asked for (the connector's `default_agent` when it named none).
    `auth` is what the transport received to authenticate the call, for the connector to check:
    `url` (the URL the far end requested, as it signed it), `authorization` and
    `x-twilio-signature` (handshake headers), `token` (a stream token sent in the start message)
    and `twilio_signature` ("valid" or "invalid": the transport checked the handshake's Twilio
    signature with the auth token it holds), each only when present; never logged.
    """

    call_id: str
    protocol: str  # "twilio" | "native" | "sip"
    agent: str
    sample_rate: int  # the transport's audio rate (what the caller's side speaks)
    encoding: str  # "pcm16" | "mulaw" | "alaw"
    external_id: str | None = None
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    auth: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


class CallRefused(Exception):
    """A connector's refusal to take a call: the transport closes it with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason


@runtime_checkable
class Leg(Protocol):
    """One call as the transport exposes it to its handler. All methods are called on the event loop
    that runs the call; the synchronous ones never block."""

    @property
    def info(self) -> CallInfo: ...

    def play(self, frame: np.ndarray) -> None:
        """Queue agent audio: int16 mono at 16 kHz (normally one 200 ms frame)."""

    def utterance_end(self) -> None:
        """The agent finished an utterance with the audio played so far (Twilio: a `mark`)."""

    def interrupt(self) -> None:
        """Drop every queued, unplayed agent sample now (Twilio: `clear`)."""

    def notify(self, kind: str, data: Mapping[str, object]) -> None:
        """Relay an event to the far end when the protocol has a channel for it; else ignore it."""

    async def transfer(self, target: str) -> bool:
        """Ask the far end to transfer the call to `target`; False when this transport cannot."""

    async def hangup(self, code: int, reason: str) -> None:
        """End the call from the agent's side (idempotent); a NORMAL end lets queued audio play."""


class CallHandler(Protocol):
    """What answers one call (the agent's CallSession). The transport calls, in order:
    `caller_frame`/`caller_dtmf` while the call lasts (and `run()` concurrently), then
    `caller_ended` once when the caller's side is gone, and waits for `run()` to return."""

    async def caller_frame(self, frame: np.ndarray) -> None:
        """One 200 ms frame of caller audio: 3200 int16 samples at 16 kHz."""

    async def caller_dtmf(self, digits: str) -> None: ...

    async def run(self) -> None:
        """Runs the agent side until the call ends; hangs the leg up when the agent ends it."""

    async def caller_ended(self, reason: str) -> None: ...


class CallConnector(Protocol):
    """Makes a handler for each new call (and tells TwiML which agents exist)."""

    default_agent: str  # the name a call or a TwiML request that names none asks for

    async def open(self, info: CallInfo, leg: Leg) -> CallHandler:
        """A ready handler for the call, or raise `CallRefused`."""

    async def has_agent(self, name: str) -> bool: ...


class DialFailed(Exception):
    """A party that could not be reached. `kind`: not_allowed | malformed | too_long (the policy
    refused the number: nothing was sent), busy (486/600), rejected (603, 403, 404, ...), no_answer
    (no answer within the ring timeout, 408/480), unavailable (no trunk, no free line, 5xx, no
    response) or failed; `status` the SIP response when there was one."""

    def __init__(self, kind: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status


class NumberPolicy(Protocol):
    """Which numbers may be dialled (`telephony.dialplan.DialPolicy`): None when `number` may be,
    else the refusal (with `kind` and `reason`)."""

    def check(self, number: str) -> object | None: ...


@runtime_checkable
class DialedLeg(Leg, Protocol):
    """A party a `Dialer` reached, answered: a `Leg` whose caller side feeds `handler` once
    `serve(handler)` runs (as the transport feeds an inbound call's handler), until it is gone."""

    async def serve(self, handler: CallHandler) -> None: ...


@runtime_checkable
class Dialer(Protocol):
    """A leg whose transport can place a call to another party (SIP through the outbound trunk)."""

    async def dial(self, number: str, policy: NumberPolicy, ring_timeout_s: float) -> DialedLeg:
        """Ring `number` when `policy` allows it; the answered leg, or raise `DialFailed`."""
