"""Twilio Media Streams, bidirectional (`<Connect><Stream>`), as Twilio documents it.

Inbound (Twilio -> us), all text JSON with an `event` field:

- `connected`: {"event": "connected", "protocol": "Call", "version": "1.0.0"}
- `start`: {"event": "start", "sequenceNumber": "1", "streamSid": "MZ...", "start": {"accountSid",
  "streamSid", "callSid", "tracks": ["inbound"], "customParameters": {...}, "mediaFormat":
  {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
- `media`: {"event": "media", "sequenceNumber", "streamSid", "media": {"track": "inbound",
  "chunk": "2", "timestamp": "20", "payload": base64 mu-law, 160 bytes = 20 ms}}
- `dtmf`: {"event": "dtmf", "streamSid", "sequenceNumber", "dtmf": {"track": "inbound_track",
  "digit": "1"}}
- `mark`: {"event": "mark", "sequenceNumber", "streamSid", "mark": {"name": ...}}: Twilio's echo
  of a mark we sent, once the audio before it has played (or at once, after a `clear`)
- `stop`: {"event": "stop", "sequenceNumber", "streamSid", "stop": {"accountSid", "callSid"}}

Numbers such as sequenceNumber, chunk and timestamp arrive as strings; both forms are accepted.

Outbound (us -> Twilio): `media` {"event": "media", "streamSid", "media": {"payload"}},
`mark` {"event": "mark", "streamSid", "mark": {"name"}} and `clear` {"event": "clear",
"streamSid"}. Twilio has no error message of its own: malformed input is dropped and counted
(`error_channel = False`), except a start whose media format is not mu-law 8 kHz mono, which
closes the call. Parameters reach the stream only as `customParameters` (query strings on the
stream URL are dropped by Twilio); the agent is `customParameters["agent"]`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from telephony.leg import CloseCode
from telephony.ws.serializers.base import (
    Audio,
    AudioOut,
    ClearOut,
    Connected,
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

SAMPLE_RATE = 8000
ENCODING = "mulaw"
MEDIA_ENCODING = "audio/x-mulaw"
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_field(obj: dict, key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError("malformed", f"Twilio {key} {_short(value)} is not a number") from None


def _object(data: dict, key: str, event: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError("malformed", f"Twilio {event} message without a {key!r} object")
    return value


class TwilioSerializer(Serializer):
    """One Twilio media stream. Learns its streamSid from `start`; outbound messages need it."""

    name = "twilio"
    error_channel = False

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self._media_sid: str | None = None  # the streamSid `_media_head` was made for
        self._media_head = ""  # the outbound media message up to its payload

    # --- inbound -----------------------------------------------------------------------------------
    def deserialize(self, message: Message) -> InEvent:
        if not isinstance(message, str):
            raise ProtocolError("binary", "Twilio sends text JSON messages only, got a binary message")
        try:
            data: Any = json.loads(message)
        except ValueError:
            raise ProtocolError("non_json", "message is not JSON") from None
        if not isinstance(data, dict):
            raise ProtocolError("malformed", "message is not a JSON object")
        event = data.get("event")
        if event == "media":
            return self._media(data)
        if event == "start":
            return self._start(data)
        if event == "mark":
            name = _object(data, "mark", "mark").get("name")
            if not isinstance(name, str):
                raise ProtocolError("malformed", "Twilio mark without a name")
            return Mark(name)
        if event == "dtmf":
            digit = _object(data, "dtmf", "dtmf").get("digit")
            if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_DIGITS:
                raise ProtocolError("malformed", "Twilio dtmf without a valid digit")
            return Dtmf(digit)
        if event == "stop":
            return Stop("Twilio stream stopped")
        if event == "connected":
            return Connected(str(data.get("protocol", "")), str(data.get("version", "")))
        raise ProtocolError("unknown_event", f"unknown Twilio event {_short(event)}")

    def _media(self, data: dict) -> Audio:
        media = _object(data, "media", "media")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError("malformed", "Twilio media without a base64 payload")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("bad_base64", "Twilio media payload is not valid base64") from None
        track = media.get("track", "inbound")
        return Audio(
            payload=audio,
            track=track if isinstance(track, str) else "inbound",
            chunk=_int_field(media, "chunk"),
            timestamp_ms=_int_field(media, "timestamp"),
        )

    def _start(self, data: dict) -> Start:
        start = _object(data, "start", "start")
        sid = data.get("streamSid") or start.get("streamSid")
        if not isinstance(sid, str) or not sid:
            raise ProtocolError(
                "malformed", "Twilio start without a streamSid", CloseCode.POLICY_VIOLATION, fatal=True
            )
        fmt = start.get("mediaFormat") or {}
        encoding = fmt.get("encoding") if isinstance(fmt, dict) else None
        rate = fmt.get("sampleRate") if isinstance(fmt, dict) else None
        channels = fmt.get("channels", 1) if isinstance(fmt, dict) else None
        try:
            rate_ok = int(rate) == SAMPLE_RATE and int(channels) == 1
        except (TypeError, ValueError):
            rate_ok = False
        if encoding != MEDIA_ENCODING or not rate_ok:
            raise ProtocolError(
                "media_format",
                f"unsupported Twilio media format {_short(encoding)} {_short(rate)} Hz "
                f"{_short(channels)} ch; expected audio/x-mulaw 8000 Hz mono",
                CloseCode.UNSUPPORTED_DATA,
                fatal=True,
            )
        raw_params = start.get("customParameters") or {}
        if not isinstance(raw_params, dict):
            raw_params = {}
        params = {str(k): str(v) for k, v in raw_params.items()}
        call_sid = start.get("callSid")
        self.stream_sid = sid
        return Start(
            sample_rate=SAMPLE_RATE,
            encoding=ENCODING,
            agent=params.get("agent"),
            stream_id=sid,
            external_id=call_sid if isinstance(call_sid, str) else None,
            parameters=params,
        )

    # --- outbound ----------------------------------------------------------------------------------
    def serialize(self, event: OutEvent) -> Message | None:
        if isinstance(event, Notice):
            return None  # Twilio has no channel for app events
        if self.stream_sid is None:
            raise RuntimeError("TwilioSerializer: cannot send before the stream's start message")
        if isinstance(event, AudioOut):  # 50 a second per call: a prebuilt head, no JSON encoding
            if self._media_sid is not self.stream_sid:
                self._media_sid = self.stream_sid
                sid = json.dumps(self.stream_sid)
                self._media_head = f'{{"event":"media","streamSid":{sid},"media":{{"payload":"'
            return self._media_head + base64.b64encode(event.payload).decode("ascii") + '"}}'
        sid = json.dumps(self.stream_sid)
        if isinstance(event, MarkOut):
            return json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": event.name}})
        if isinstance(event, ClearOut):
            return f'{{"event":"clear","streamSid":{sid}}}'
        raise TypeError(f"TwilioSerializer.serialize: unknown event {type(event).__name__}")
