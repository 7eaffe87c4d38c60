"""Media-stream protocols, one module each, behind `Serializer` (serialize/deserialize).

- `twilio`: Twilio Media Streams (bidirectional, `<Connect><Stream>`): JSON text messages,
  base64 mu-law 8 kHz audio.
- `native`: Parley's own protocol: a JSON start naming the agent and the audio format, then
  binary audio of any size; JSON events out.

They turn websocket messages into the shared events of `base` and back, and know nothing of
resampling, framing, pacing, the model or the agent.
"""

from telephony.ws.serializers.base import (
    Audio,
    AudioOut,
    ClearOut,
    Connected,
    Dtmf,
    InEvent,
    Mark,
    MarkOut,
    Notice,
    OutEvent,
    ProtocolError,
    Serializer,
    Start,
    Stop,
)

__all__ = [
    "Audio",
    "AudioOut",
    "ClearOut",
    "Connected",
    "Dtmf",
    "InEvent",
    "Mark",
    "MarkOut",
    "Notice",
    "OutEvent",
    "ProtocolError",
    "Serializer",
    "Start",
    "Stop",
]
