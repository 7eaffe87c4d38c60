"""Parley's native media-stream protocol: a JSON start, then binary audio; JSON events out.

Client -> gateway:

- first, text: {"type": "start", "agent": "support", "sample_rate": 8000 | 16000 | 24000 | 48000,
  "encoding": "pcm16" | "mulaw" | "alaw", "call_id": optional str, "parameters": optional
  {str: str}}
- then binary messages of audio in that format, of any size (PCM16 is little-endian; an odd
  trailing byte is carried to the next message);
- text {"type": "dtmf", "digits": "12#"}, {"type": "mark", "name": ...} (optional: the client
  played audio up to a mark we sent) and {"type": "stop"} (the caller hung up).

Gateway -> client: binary agent audio in the call's own format, in paced 20 ms packets; text
events {"type": "started", ...}, {"type": "mark", "name"} after each agent utterance,
{"type": "clear"} (drop the agent audio you have buffered, now), {"type": "transcript", ...},
{"type": "transfer", "target"}, {"type": "end", "code", "reason"} just before the gateway closes.

Every malformed message closes the call with a code and a reason (`error_channel = True`):
1003 for non-JSON text, an unknown type or a bad start, 1008 for messages out of order (the
gateway checks order, this module checks shape).
"""

from __future__ import annotations

import json
from typing import Any

from telephony.g711 import ENCODINGS
from telephony.ws.serializers.base import (
    Audio,
    AudioOut,
    ClearOut,
    Dtmf,
    InEvent,
    Mark,
    MarkOut,
    Message,
    Notice,
    OutEvent,
    ProtocolError,
    Serializer,
    Start,
    Stop,
)

SAMPLE_RATES = (8000, 16000, 24000, 48000)
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_ID = 128
MAX_PARAMETERS = 32
MAX_PARAMETER_CHARS = 256


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad_start(reason: str) -> ProtocolError:
    return ProtocolError("bad_start", f"bad start: {reason}")


class NativeSerializer(Serializer):
    name = "native"
    error_channel = True

    def deserialize(self, message: Message) -> InEvent:
        if isinstance(message, (bytes, bytearray, memoryview)):
            return Audio(payload=bytes(message))
        try:
            data: Any = json.loads(message)
        except ValueError:
            raise ProtocolError("non_json", "text message is not JSON") from None
        if not isinstance(data, dict):
            raise ProtocolError("malformed", "text message is not a JSON object")
        kind = data.get("type")
        if kind == "start":
            return self._start(data)
        if kind == "dtmf":
            digits = data.get("digits")
            if not isinstance(digits, str) or not digits or len(digits) > 32 or set(digits) - DTMF_DIGITS:
                raise ProtocolError("malformed", "dtmf needs 'digits' of 0-9 * # A-D (at most 32)")
            return Dtmf(digits)
        if kind == "stop":
            return Stop("client sent stop")
        if kind == "mark":
            name = data.get("name")
            if not isinstance(name, str):
                raise ProtocolError("malformed", "mark needs a 'name'")
            return Mark(name)
        raise ProtocolError("unknown_type", f"unknown message type {_short(kind)}")

    def _start(self, data: dict) -> Start:
        agent = data.get("agent")
        if not isinstance(agent, str) or not agent or len(agent) > 64:
            raise _bad_start("'agent' must be a non-empty string of at most 64 characters")
        rate = data.get("sample_rate")
        if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SAMPLE_RATES:
            raise _bad_start(f"sample_rate {_short(rate)} not one of {', '.join(map(str, SAMPLE_RATES))}")
        encoding = data.get("encoding", "pcm16")
        if encoding not in ENCODINGS:
            raise _bad_start(f"encoding {_short(encoding)} not one of {', '.join(ENCODINGS)}")
        call_id = data.get("call_id")
        if call_id is not None and (not isinstance(call_id, str) or len(call_id) > MAX_ID):
            raise _bad_start(f"call_id must be a string of at most {MAX_ID} characters")
        params = data.get("parameters") or {}
        if (
            not isinstance(params, dict)
            or len(params) > MAX_PARAMETERS
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
            or any(len(k) > MAX_PARAMETER_CHARS or len(v) > MAX_PARAMETER_CHARS for k, v in params.items())
        ):
            raise _bad_start(f"parameters must be at most {MAX_PARAMETERS} string pairs")
        return Start(
            sample_rate=rate, encoding=encoding, agent=agent, external_id=call_id, parameters=dict(params)
        )

    def serialize(self, event: OutEvent) -> Message | None:
        if isinstance(event, AudioOut):
            return bytes(event.payload)
        if isinstance(event, MarkOut):
            return json.dumps({"type": "mark", "name": event.name})
        if isinstance(event, ClearOut):
            return '{"type":"clear"}'
        if isinstance(event, Notice):
            return json.dumps({**dict(event.data), "type": event.kind})
        raise TypeError(f"NativeSerializer.serialize: unknown event {type(event).__name__}")
