"""The model-server session contract, torch-free: what a gateway and a model server say per call.

Everything both sides must agree on lives here once: the micro-turn's frame (16 kHz int16 mono,
200 ms = 3200 samples = 6400 bytes), the floor states and event kinds, the default sampling of a
call, the close codes, and every text message as a dataclass with `to_json()` and a decoder that
validates and raises `ProtocolError` with a reason fit to send back. The server (model.server),
the gateway's client (agent.model_client), the benchmark's echo stand-in and the tests' fake all
use it; it imports only the standard library.

One websocket per call (`ws://HOST:8765/session`):

1. client -> server: `Hello`. The server answers `Ready`, or closes TRY_AGAIN_LATER (1013, "at
   capacity: ...") or POLICY_VIOLATION (1008, naming what is wrong with the hello or its absence).
2. client -> server: binary frames of exactly FRAME_BYTES, one per micro-turn in real time;
   `Event`s; `Bye`, which the server answers by closing NORMAL (1000).
3. server -> client, per micro-turn it stepped for the call: `Turn`, then one binary frame of
   FRAME_BYTES (the agent's next 200 ms), then a `ToolCall` when the model wrote one. A
   micro-turn whose caller frame was late is not stepped: no message at all.
4. A malformed client message (wrong frame size, non-JSON, unknown type or event kind, an event
   payload over the server's limit) gets an `Error` and is dropped: the call goes on. A server
   that breaks the protocol is closed by its client with PROTOCOL_ERROR (1002).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

SAMPLE_RATE = 16_000
MICRO_TURN_MS = 200
FRAME_SAMPLES = SAMPLE_RATE * MICRO_TURN_MS // 1000  # 3200
FRAME_BYTES = 2 * FRAME_SAMPLES  # int16 little-endian

FLOOR_STATES = ("listen", "backchannel", "speak", "yield")

# What a client may inject into its call (the model's tokenizer also has "config": the hello's).
# The background model's (agent.background) are `caller_words` (what the caller said in one speech
# segment, as recognised text), `reply` (the words of a substantive answer, for the interaction
# model to voice), and the tool kinds for the tool calls it makes.
EVENT_KINDS = (
    "tool_result",
    "tool_error",
    "tool_pending",
    "timer",
    "dtmf",
    "system",
    "caller_hangup",
    "caller_words",
    "reply",
)
# What a checkpoint trained before the background model reads; a Ready that names no `events`
# means these. A client sends a call's model only the kinds its Ready lists.
LEGACY_EVENT_KINDS = EVENT_KINDS[:7]
MAX_EVENT_PAYLOAD_BYTES = 2048  # the server's default limit on one event's payload

# No message of the protocol is larger: what a client accepts from the server. The server's own
# limit on what it accepts (PARLEY_MODEL_MAX_MESSAGE_BYTES) is a setting, 64 KiB by default.
MAX_MESSAGE_BYTES = 1 << 20

# What a call is sampled with when its hello names nothing: temperature and top-p shape what the
# model writes (text bytes, dMel levels); its decisions are drawn at their own odds (model.sampling).
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.9
MAX_TEMPERATURE = 5.0
MAX_CALL_ID_CHARS = 128


class CloseCode(enum.IntEnum):
    """Websocket close codes of a model session (RFC 6455); the close reason says more, in words."""

    NORMAL = 1000  # the client said bye (or closes a session it no longer needs)
    GOING_AWAY = 1001  # the model server is shutting down
    PROTOCOL_ERROR = 1002  # the client closes: the server broke the protocol
    ABNORMAL = 1006  # never sent: the connection was lost without a close frame
    POLICY_VIOLATION = 1008  # no hello within the timeout, or a bad hello
    MESSAGE_TOO_BIG = 1009  # a message over the receiver's limit (closed by the websocket layer)
    INTERNAL_ERROR = 1011  # the server failed (the websocket layer, on an unhandled error)
    TRY_AGAIN_LATER = 1013  # the model server is at capacity


class ProtocolError(ValueError):
    """A message that breaks this contract; the text is the reason, fit to send to the far end."""


def event_json(value: object) -> str:
    """An event payload as the model reads it: compact JSON, non-ASCII kept as UTF-8. The live call
    path (agent) and the training data (corpus.render) both write payloads with this."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_frame(frame: bytes) -> None:
    """Raise ProtocolError unless `frame` is one frame of caller audio."""
    if len(frame) != FRAME_BYTES:
        raise ProtocolError(
            f"frame of {len(frame)} bytes dropped: frames are {FRAME_BYTES} bytes "
            "(200 ms of PCM16 LE at 16 kHz)"
        )


def _int(data: dict, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{data.get('type')} message without an integer {key!r}")
    return value


def _event_kinds(value: object) -> tuple[str, ...]:
    """A Ready's `events`: known kinds only (a newer server's extra kinds are not sent to it)."""
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        raise ProtocolError("ready message's 'events' must be a list of event kinds")
    return tuple(k for k in value if k in EVENT_KINDS)


# --- client -> server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The first message of a session. `config` (the rendered agent prefix) is pinned as the call's
    prefix for its whole life, truncated to the model's prefix budget; unset sampling fields get
    the server's defaults (a random seed, DEFAULT_TEMPERATURE, DEFAULT_TOP_P)."""

    call_id: str = ""
    config: str = ""
    seed: int | None = None  # >= 0; the server uses its low 32 bits
    temperature: float | None = None  # [0, MAX_TEMPERATURE]
    top_p: float | None = None  # (0, 1]

    def to_json(self) -> str:
        msg: dict[str, Any] = {"type": "hello", "call_id": self.call_id, "config": self.config}
        for key in ("seed", "temperature", "top_p"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        return json.dumps(msg)

    @classmethod
    def from_json(cls, raw: str | bytes, *, max_config_bytes: int = MAX_MESSAGE_BYTES) -> Hello:
        """The hello in `raw`, checked: types, call_id length, seed/temperature/top_p ranges, config
        size. A field present with the wrong type (null included) is refused, not defaulted."""
        try:
            msg = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or msg.get("type") != "hello":
            raise ProtocolError('first message must be a JSON {"type": "hello", ...}')
        config, call_id = msg.get("config", ""), msg.get("call_id", "")
        seed = msg.get("seed", 0)
        temperature, top_p = msg.get("temperature", DEFAULT_TEMPERATURE), msg.get("top_p", DEFAULT_TOP_P)
        if not isinstance(config, str):
            raise ProtocolError("hello.config must be a string")
        if len(config.encode("utf-8")) > max_config_bytes:
            raise ProtocolError(f"hello.config must be at most {max_config_bytes} bytes")
        if not isinstance(call_id, str) or len(call_id) > MAX_CALL_ID_CHARS:
            raise ProtocolError(f"hello.call_id must be a string of at most {MAX_CALL_ID_CHARS} characters")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ProtocolError("hello.seed must be a non-negative integer")
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= MAX_TEMPERATURE:
            raise ProtocolError(f"hello.temperature must be a number in [0, {MAX_TEMPERATURE:g}]")
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ProtocolError("hello.top_p must be a number in (0, 1]")
        return cls(call_id, config, msg.get("seed"), msg.get("temperature"), msg.get("top_p"))


@dataclass(frozen=True)
class Event:
    """Something that happened in the call, injected into the model's stream (kind in EVENT_KINDS)."""

    kind: str
    payload: str = ""

    def to_json(self) -> str:
        return json.dumps({"type": "event", "kind": self.kind, "payload": self.payload})


@dataclass(frozen=True)
class Bye:
    """The client ends the session; the server closes NORMAL."""

    def to_json(self) -> str:
        return '{"type":"bye"}'


def parse_client_message(raw: str) -> Event | Bye:
    """A client's text message after the hello, or ProtocolError (the server answers it with an
    `Error`). Checks the event kind; the payload's size limit is the server's setting."""
    try:
        msg = json.loads(raw)
    except ValueError:
        raise ProtocolError("message is not JSON") from None
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "bye":
        return Bye()
    if kind != "event":
        raise ProtocolError(f"unknown message type {kind!r}: expected 'event' or 'bye'")
    event, payload = msg.get("kind"), msg.get("payload", "")
    if event not in EVENT_KINDS:
        raise ProtocolError(f"unknown event kind {event!r}; known: {', '.join(sorted(EVENT_KINDS))}")
    if not isinstance(payload, str):  # a JSON value is read as its compact (ASCII-escaped) text
        payload = json.dumps(payload, separators=(",", ":"))
    return Event(event, payload)


# --- server -> client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The server admitted the session into `slot`."""

    session_id: str
    slot: int
    sample_rate: int
    frame_bytes: int
    micro_turn_ms: int
    model: str
    events: tuple[str, ...] = LEGACY_EVENT_KINDS  # the event kinds the loaded checkpoint reads

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": "ready",
                "session_id": self.session_id,
                "slot": self.slot,
                "sample_rate": self.sample_rate,
                "frame_bytes": self.frame_bytes,
                "micro_turn_ms": self.micro_turn_ms,
                "model": self.model,
                "events": list(self.events),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Ready:
        """The ready in `raw`, refused unless it speaks SAMPLE_RATE in FRAME_BYTES frames."""
        if not isinstance(raw, str):
            raise ProtocolError("expected a ready message, got binary")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProtocolError("ready message is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != "ready":
            raise ProtocolError("expected a ready message")
        ready = cls(
            session_id=str(data.get("session_id", "")),
            slot=_int(data, "slot"),
            sample_rate=_int(data, "sample_rate"),
            frame_bytes=_int(data, "frame_bytes"),
            micro_turn_ms=_int(data, "micro_turn_ms"),
            model=str(data.get("model", "")),
            events=_event_kinds(data.get("events", LEGACY_EVENT_KINDS)),
        )
        if (ready.sample_rate, ready.frame_bytes) != (SAMPLE_RATE, FRAME_BYTES):
            raise ProtocolError(
                f"server speaks {ready.sample_rate} Hz in {ready.frame_bytes}-byte frames; "
                f"this client needs {SAMPLE_RATE} Hz in {FRAME_BYTES}-byte frames"
            )
        return ready


@dataclass(frozen=True)
class Turn:
    """One stepped micro-turn; its FRAME_BYTES of agent audio follow as the next message."""

    seq: int  # counts the call's stepped micro-turns from 0
    t_ms: int  # seq * the tick period
    floor: str  # one of FLOOR_STATES
    text: str  # text the model wrote this micro-turn
    frame: int = -1  # which caller frame (0-based, in sending order) it read; -1: not said (omitted)

    def to_json(self) -> str:
        msg: dict[str, Any] = {"type": "turn", "seq": self.seq, "t_ms": self.t_ms}
        if self.frame >= 0:
            msg["frame"] = self.frame
        msg["floor"], msg["text"] = self.floor, self.text
        return json.dumps(msg)


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model wrote in micro-turn `seq`."""

    seq: int
    t_ms: int
    id: str
    name: str
    arguments: dict | None  # None when the model's arguments were not a JSON object
    arguments_raw: str | None = None  # what it wrote instead, then

    def to_json(self) -> str:
        msg: dict[str, Any] = {
            "type": "tool_call",
            "seq": self.seq,
            "t_ms": self.t_ms,
            "id": self.id,
            "name": self.name,
        }
        if self.arguments is not None:
            msg["arguments"] = self.arguments
        else:
            msg["arguments_raw"] = self.arguments_raw
        return json.dumps(msg)


@dataclass(frozen=True)
class Error:
    """The server dropped a malformed message of the client's; the call goes on."""

    message: str

    def to_json(self) -> str:
        return json.dumps({"type": "error", "message": self.message})


def parse_server_message(raw: str) -> Turn | ToolCall | Error | None:
    """A server's text message after the ready (None: a type this contract does not know, to skip),
    or ProtocolError. A `Turn` still needs its audio, the next message."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProtocolError("text message is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("text message is not a JSON object")
    kind = data.get("type")
    if kind == "turn":
        floor, text = data.get("floor"), data.get("text", "")
        if floor not in FLOOR_STATES or not isinstance(text, str):
            raise ProtocolError("turn with an unknown floor or a non-string text")
        seq, t_ms = _int(data, "seq"), _int(data, "t_ms")
        frame = data.get("frame", -1)
        frame = frame if isinstance(frame, int) and not isinstance(frame, bool) else -1
        return Turn(seq, t_ms, floor, text, frame)
    if kind == "tool_call":
        args, raw_args = data.get("arguments"), data.get("arguments_raw")
        return ToolCall(
            seq=_int(data, "seq"),
            t_ms=_int(data, "t_ms"),
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            arguments=args if isinstance(args, dict) else None,
            arguments_raw=raw_args
            if isinstance(raw_args, str)
            else (None if isinstance(args, dict) else json.dumps(args)),
        )
    if kind == "error":
        return Error(str(data.get("message", "")))
    return None
