"""The events a media-stream protocol carries, and the two-method interface every protocol implements.

A `Serializer` turns one websocket message into one inbound event (`deserialize`) and one outbound
event into one websocket message (`serialize`). Events are small frozen dataclasses shared by all
protocols, so the gateway handles calls the same way whatever the wire format. Audio stays encoded
here (`Audio.payload` is the protocol's bytes: mu-law, A-law or PCM16): decoding, resampling and
framing are the gateway's job. Nothing here knows about the model or the agent.

Malformed input raises `ProtocolError` with a short `kind` (for counters), a `reason` (for the
close frame or the log) and a close `code`. A protocol with an error channel (`error_channel =
True`, native) closes the call on any of them; one without (Twilio) drops the message and counts
it, except for errors marked `fatal` (an unsupported media format), which close the call anyway.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping

from telephony.leg import CloseCode


# --- inbound ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Connected:
    """Twilio's first message; carries nothing the call needs."""

    protocol: str = ""
    version: str = ""


@dataclasses.dataclass(frozen=True)
class Start:
    """The call's audio format and identity. `agent` is None when the start does not name one."""

    sample_rate: int
    encoding: str  # "pcm16" | "mulaw" | "alaw"
    agent: str | None = None
    stream_id: str | None = None  # Twilio streamSid
    external_id: str | None = None  # Twilio callSid, native call_id
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Audio:
    """Caller audio in the call's encoding (bytes as they came off the wire, base64 undone)."""

    payload: bytes
    track: str = "inbound"
    chunk: int | None = None
    timestamp_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class Dtmf:
    digits: str


@dataclasses.dataclass(frozen=True)
class Mark:
    """The far end played everything sent before the mark called `name` (Twilio echoes marks)."""

    name: str


@dataclasses.dataclass(frozen=True)
class Stop:
    """The caller's side ended the stream."""

    reason: str = "caller hung up"


InEvent = Connected | Start | Audio | Dtmf | Mark | Stop


# --- outbound --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AudioOut:
    """One packet of agent audio in the call's encoding (20 ms from the pacer)."""

    payload: bytes


@dataclasses.dataclass(frozen=True)
class MarkOut:
    name: str


@dataclasses.dataclass(frozen=True)
class ClearOut:
    """Drop all agent audio buffered at the far end, now."""


@dataclasses.dataclass(frozen=True)
class Notice:
    """An event for protocols with a JSON event channel (native): {"type": kind, **data}."""

    kind: str
    data: Mapping[str, object] = dataclasses.field(default_factory=dict)


OutEvent = AudioOut | MarkOut | ClearOut | Notice
Message = str | bytes


class ProtocolError(ValueError):
    """A message this protocol cannot accept. `kind` names the problem for counters."""

    def __init__(
        self, kind: str, reason: str, code: int = CloseCode.UNSUPPORTED_DATA, *, fatal: bool = False
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.code = int(code)
        self.fatal = fatal


class Serializer(abc.ABC):
    """One media-stream protocol: websocket messages <-> events. One instance per call."""

    name: str = ""
    error_channel: bool = True  # malformed input closes the call (True) or is dropped and counted

    @abc.abstractmethod
    def deserialize(self, message: Message) -> InEvent:
        """One websocket message -> one event; raises `ProtocolError` on malformed input."""

    @abc.abstractmethod
    def serialize(self, event: OutEvent) -> Message | None:
        """One event -> one websocket message, or None when the protocol has no such message."""
