"""Serializers: Twilio Media Streams and the native protocol, round trips and malformed input."""

import base64
import json

import pytest

from telephony.leg import CloseCode
from telephony.ws.serializers import (
    Audio,
    AudioOut,
    ClearOut,
    Connected,
    Dtmf,
    Mark,
    MarkOut,
    Notice,
    ProtocolError,
    Start,
    Stop,
)
from telephony.ws.serializers.native import NativeSerializer
from telephony.ws.serializers.twilio import TwilioSerializer

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"

# Messages as Twilio documents them (numbers such as sequenceNumber and chunk are strings).
TWILIO_CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
TWILIO_START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC123",
        "streamSid": SID,
        "callSid": "CA123",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"agent": "support", "FirstName": "Jane"},
    },
    "streamSid": SID,
}
MULAW_20MS = bytes(range(96, 256))  # 160 bytes
TWILIO_MEDIA = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {
        "track": "inbound",
        "chunk": "1",
        "timestamp": "5",
        "payload": base64.b64encode(MULAW_20MS).decode(),
    },
    "streamSid": SID,
}
TWILIO_DTMF = {
    "event": "dtmf",
    "streamSid": SID,
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
TWILIO_MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "utterance-1"}}
TWILIO_STOP = {
    "event": "stop",
    "sequenceNumber": "5",
    "streamSid": SID,
    "stop": {"accountSid": "AC123", "callSid": "CA123"},
}


def twilio(message: dict) -> object:
    return TwilioSerializer().deserialize(json.dumps(message))


def test_twilio_inbound_messages():
    ser = TwilioSerializer()
    assert ser.deserialize(json.dumps(TWILIO_CONNECTED)) == Connected("Call", "1.0.0")
    start = ser.deserialize(json.dumps(TWILIO_START))
    assert start == Start(
        sample_rate=8000,
        encoding="mulaw",
        agent="support",
        stream_id=SID,
        external_id="CA123",
        parameters={"agent": "support", "FirstName": "Jane"},
    )
    assert ser.stream_sid == SID
    assert ser.deserialize(json.dumps(TWILIO_MEDIA)) == Audio(MULAW_20MS, "inbound", 1, 5)
    assert ser.deserialize(json.dumps(TWILIO_DTMF)) == Dtmf("1")
    assert ser.deserialize(json.dumps(TWILIO_MARK)) == Mark("utterance-1")
    assert isinstance(ser.deserialize(json.dumps(TWILIO_STOP)), Stop)


def test_twilio_outbound_messages_are_as_documented():
    ser = TwilioSerializer()
    with pytest.raises(RuntimeError, match="before the stream's start"):
        ser.serialize(AudioOut(MULAW_20MS))
    ser.deserialize(json.dumps(TWILIO_START))
    media = json.loads(ser.serialize(AudioOut(MULAW_20MS)))
    assert media == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(MULAW_20MS).decode()},
    }
    assert json.loads(ser.serialize(MarkOut("utterance-7"))) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "utterance-7"},
    }
    assert json.loads(ser.serialize(ClearOut())) == {"event": "clear", "streamSid": SID}
    assert ser.serialize(Notice("transcript", {"text": "hi"})) is None  # no channel for it


def test_twilio_media_follows_a_new_stream_sid():
    # The media message is built from a cached head; it must follow the streamSid, quoting included.
    ser = TwilioSerializer()
    ser.deserialize(json.dumps(TWILIO_START))
    assert json.loads(ser.serialize(AudioOut(MULAW_20MS)))["streamSid"] == SID
    other = 'MZ"other\u00e9'
    ser.deserialize(json.dumps({**TWILIO_START, "streamSid": other}))
    assert json.loads(ser.serialize(AudioOut(MULAW_20MS)))["streamSid"] == other


def test_twilio_round_trip_of_audio_through_a_media_message():
    ser = TwilioSerializer()
    ser.deserialize(json.dumps(TWILIO_START))
    out = json.loads(ser.serialize(AudioOut(MULAW_20MS)))
    echoed = {**TWILIO_MEDIA, "media": {**TWILIO_MEDIA["media"], "payload": out["media"]["payload"]}}
    assert ser.deserialize(json.dumps(echoed)).payload == MULAW_20MS


@pytest.mark.parametrize(
    "message, kind",
    [
        ("not json {", "non_json"),
        ("[1, 2]", "malformed"),
        (json.dumps({"event": "hello"}), "unknown_event"),
        (json.dumps({"no": "event"}), "unknown_event"),
        (json.dumps({**TWILIO_MEDIA, "media": {"payload": "@@not base64@@"}}), "bad_base64"),
        (json.dumps({**TWILIO_MEDIA, "media": {"payload": "abc"}}), "bad_base64"),  # bad padding
        (json.dumps({"event": "media"}), "malformed"),
        (json.dumps({**TWILIO_MEDIA, "media": {**TWILIO_MEDIA["media"], "chunk": "x"}}), "malformed"),
        (json.dumps({**TWILIO_DTMF, "dtmf": {"digit": "12"}}), "malformed"),
        (json.dumps({"event": "mark", "mark": {}}), "malformed"),
        (b"\x00\x01", "binary"),
    ],
)
def test_twilio_malformed_messages_are_droppable_errors(message, kind):
    with pytest.raises(ProtocolError) as info:
        TwilioSerializer().deserialize(message)
    assert info.value.kind == kind and not info.value.fatal


def test_twilio_unsupported_media_format_is_fatal():
    bad = json.loads(json.dumps(TWILIO_START))
    bad["start"]["mediaFormat"]["sampleRate"] = 16000
    with pytest.raises(ProtocolError, match="unsupported Twilio media format") as info:
        twilio(bad)
    assert info.value.fatal and info.value.code == CloseCode.UNSUPPORTED_DATA
    no_sid = json.loads(json.dumps(TWILIO_START))
    del no_sid["streamSid"], no_sid["start"]["streamSid"]
    with pytest.raises(ProtocolError, match="without a streamSid") as info:
        twilio(no_sid)
    assert info.value.fatal


def test_twilio_is_dropping_protocol():
    assert TwilioSerializer.error_channel is False and NativeSerializer.error_channel is True


# --- native --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
@pytest.mark.parametrize("encoding", ["pcm16", "mulaw", "alaw"])
def test_native_start(rate, encoding):
    start = NativeSerializer().deserialize(
        json.dumps(
            {
                "type": "start",
                "agent": "support",
                "sample_rate": rate,
                "encoding": encoding,
                "call_id": "c-1",
                "parameters": {"campaign": "spring"},
            }
        )
    )
    assert start == Start(
        sample_rate=rate,
        encoding=encoding,
        agent="support",
        external_id="c-1",
        parameters={"campaign": "spring"},
    )


def test_native_inbound_and_outbound():
    ser = NativeSerializer()
    assert ser.deserialize(b"\x01\x02\x03") == Audio(b"\x01\x02\x03")
    assert ser.deserialize('{"type":"dtmf","digits":"12#"}') == Dtmf("12#")
    assert ser.deserialize('{"type":"mark","name":"u1"}') == Mark("u1")
    assert isinstance(ser.deserialize('{"type":"stop"}'), Stop)
    assert ser.serialize(AudioOut(b"\x00\x01")) == b"\x00\x01"
    assert json.loads(ser.serialize(MarkOut("u1"))) == {"type": "mark", "name": "u1"}
    assert json.loads(ser.serialize(ClearOut())) == {"type": "clear"}
    assert json.loads(ser.serialize(Notice("end", {"code": 1000, "reason": "bye", "type": "x"}))) == {
        "type": "end",
        "code": 1000,
        "reason": "bye",
    }


@pytest.mark.parametrize(
    "message, kind, match",
    [
        ("{{nope", "non_json", "not JSON"),
        ('"start"', "malformed", "not a JSON object"),
        ('{"type":"hello"}', "unknown_type", "unknown message type 'hello'"),
        ('{"type":"start","sample_rate":8000}', "bad_start", "'agent'"),
        ('{"type":"start","agent":"support","sample_rate":44100}', "bad_start", "sample_rate 44100"),
        ('{"type":"start","agent":"support","sample_rate":true}', "bad_start", "sample_rate True"),
        (
            '{"type":"start","agent":"support","sample_rate":8000,"encoding":"opus"}',
            "bad_start",
            "encoding 'opus'",
        ),
        (
            '{"type":"start","agent":"support","sample_rate":8000,"parameters":{"a":1}}',
            "bad_start",
            "parameters",
        ),
        ('{"type":"dtmf","digits":"9x"}', "malformed", "dtmf"),
    ],
)
def test_native_malformed_messages_close_with_a_reason(message, kind, match):
    with pytest.raises(ProtocolError, match=match) as info:
        NativeSerializer().deserialize(message)
    assert info.value.kind == kind and info.value.code == CloseCode.UNSUPPORTED_DATA
