"""model.protocol: messages round-trip and keep their wire bytes, bad hellos are refused with a
reason, and the contract's constants are the ones the model and its serving use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from model import config, interaction, protocol, tokenizer
from model.protocol import (
    LEGACY_EVENT_KINDS,
    Bye,
    CloseCode,
    Error,
    Event,
    Hello,
    ProtocolError,
    Ready,
    ToolCall,
    Turn,
    check_frame,
    parse_client_message,
    parse_server_message,
)
from model.scheduler import Sampling


def test_messages_round_trip():
    hello = Hello("c1", "agent=support", seed=7, temperature=0.5, top_p=1)
    assert Hello.from_json(hello.to_json()) == hello
    assert Hello.from_json(Hello().to_json()) == Hello()
    ready = Ready("s1", 3, 16000, 6400, 200, "tiny")
    assert Ready.from_json(ready.to_json()) == ready
    reads_words = Ready("s1", 3, 16000, 6400, 200, "v2", ("caller_words", "reply", "tool_result"))
    assert Ready.from_json(reads_words.to_json()) == reads_words


def test_ready_names_the_event_kinds_the_checkpoint_reads():
    old = json.loads(Ready("s", 0, 16000, 6400, 200, "m").to_json())
    del old["events"]  # a server from before the background model
    assert Ready.from_json(json.dumps(old)).events == LEGACY_EVENT_KINDS
    newer = {**old, "events": ["caller_words", "some_future_kind"]}
    assert Ready.from_json(json.dumps(newer)).events == ("caller_words",)
    with pytest.raises(ProtocolError, match="events"):
        Ready.from_json(json.dumps({**old, "events": "caller_words"}))
    for message in (
        Turn(4, 800, "speak", "héllo", frame=5),
        Turn(0, 0, "listen", ""),
        ToolCall(1, 200, "s1-1", "lookup_order", {"order_id": "A-1"}),
        ToolCall(2, 400, "s1-2", "x", None, "{not json"),
        Error("bad"),
    ):
        assert parse_server_message(message.to_json()) == message
    assert parse_client_message(Event("dtmf", "5").to_json()) == Event("dtmf", "5")
    assert parse_client_message(Bye().to_json()) == Bye()
    assert parse_client_message('{"type": "bye"}') == Bye()


def test_wire_bytes_are_the_servers_and_clients():
    assert Hello("c", "cfg").to_json() == '{"type": "hello", "call_id": "c", "config": "cfg"}'
    assert Ready("s", 0, 16000, 6400, 200, "m").to_json() == json.dumps(
        {
            "type": "ready",
            "session_id": "s",
            "slot": 0,
            "sample_rate": 16000,
            "frame_bytes": 6400,
            "micro_turn_ms": 200,
            "model": "m",
            "events": list(LEGACY_EVENT_KINDS),
        }
    )
    assert Turn(2, 400, "speak", "hi", 3).to_json() == json.dumps(
        {"type": "turn", "seq": 2, "t_ms": 400, "frame": 3, "floor": "speak", "text": "hi"}
    )
    assert "frame" not in json.loads(Turn(2, 400, "speak", "hi").to_json())  # -1: not said
    assert ToolCall(1, 200, "i", "n", {"a": 1}).to_json() == json.dumps(
        {"type": "tool_call", "seq": 1, "t_ms": 200, "id": "i", "name": "n", "arguments": {"a": 1}}
    )
    assert json.loads(ToolCall(1, 200, "i", "n", None, "{x").to_json())["arguments_raw"] == "{x"
    assert Event("dtmf", "5").to_json() == '{"type": "event", "kind": "dtmf", "payload": "5"}'
    assert Bye().to_json() == '{"type":"bye"}'
    assert Error("e").to_json() == '{"type": "error", "message": "e"}'


def test_event_json_is_compact_utf8():
    # The payload text of training data (corpus.render) and of live calls: must never change.
    assert protocol.event_json({"b": "Müller", "a": [1, 2]}) == '{"b":"Müller","a":[1,2]}'
    assert protocol.event_json("tool not allowed") == '"tool not allowed"'


def test_hello_defaults_are_left_to_the_server():
    hello = Hello.from_json('{"type": "hello"}')
    assert hello == Hello("", "", None, None, None)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("not json", "first message must be a JSON"),
        (b"\x00" * 10, "first message must be a JSON"),
        ('["hello"]', "first message must be a JSON"),
        (json.dumps({"type": "frame"}), "first message must be a JSON"),
        (json.dumps({"type": "hello", "config": 5}), "hello.config must be a string"),
        (json.dumps({"type": "hello", "config": None}), "hello.config must be a string"),
        (json.dumps({"type": "hello", "config": "x" * 101}), "hello.config must be at most 100 bytes"),
        (
            json.dumps({"type": "hello", "call_id": "c" * 129}),
            "hello.call_id must be a string of at most 128",
        ),
        (json.dumps({"type": "hello", "seed": -1}), "hello.seed must be a non-negative integer"),
        (json.dumps({"type": "hello", "seed": True}), "hello.seed must be a non-negative integer"),
        (json.dumps({"type": "hello", "seed": None}), "hello.seed must be a non-negative integer"),
        (json.dumps({"type": "hello", "temperature": 5.5}), "hello.temperature must be a number in [0, 5]"),
        (json.dumps({"type": "hello", "temperature": "hot"}), "hello.temperature must be a number in [0, 5]"),
        (json.dumps({"type": "hello", "top_p": 0}), "hello.top_p must be a number in (0, 1]"),
        (json.dumps({"type": "hello", "top_p": 1.5}), "hello.top_p must be a number in (0, 1]"),
    ],
)
def test_bad_hellos_are_refused_with_a_reason(raw, reason):
    with pytest.raises(ProtocolError) as info:
        Hello.from_json(raw, max_config_bytes=100)
    assert reason in str(info.value)


def test_ready_must_speak_the_frame():
    with pytest.raises(ProtocolError, match="server speaks 8000 Hz in 6400-byte frames"):
        Ready.from_json(Ready("s", 0, 8000, 6400, 200, "m").to_json())
    with pytest.raises(ProtocolError, match="without an integer 'slot'"):
        Ready.from_json('{"type": "ready", "slot": "0"}')
    with pytest.raises(ProtocolError, match="expected a ready message"):
        Ready.from_json('{"type": "turn"}')


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("{oops", "message is not JSON"),
        ('{"type": "frob"}', "unknown message type 'frob': expected 'event' or 'bye'"),
        ("[1]", "unknown message type None"),
        ('{"type": "event", "kind": "config"}', "unknown event kind 'config'; known: caller_hangup"),
    ],
)
def test_bad_client_messages(raw, reason):
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert reason in str(info.value)


def test_event_payloads():
    assert parse_client_message('{"type": "event", "kind": "timer"}') == Event("timer", "")
    # A JSON value is read as its compact text, ASCII-escaped (what the server always did).
    raw = json.dumps({"type": "event", "kind": "system", "payload": {"a": "é"}})
    assert parse_client_message(raw) == Event("system", '{"a":"\\u00e9"}')


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("{oops", "text message is not JSON"),
        ("[]", "text message is not a JSON object"),
        ('{"type": "turn", "seq": 0, "t_ms": 0, "floor": "dance", "text": ""}', "unknown floor"),
        (
            '{"type": "turn", "seq": "0", "t_ms": 0, "floor": "speak"}',
            "turn message without an integer 'seq'",
        ),
        ('{"type": "tool_call", "seq": 0, "name": "x"}', "tool_call message without an integer 't_ms'"),
    ],
)
def test_bad_server_messages(raw, reason):
    with pytest.raises(ProtocolError) as info:
        parse_server_message(raw)
    assert reason in str(info.value)


def test_server_messages_tolerated():
    assert parse_server_message('{"type": "stats", "x": 1}') is None  # unknown: skipped
    turn = parse_server_message('{"type": "turn", "seq": 1, "t_ms": 200, "frame": true, "floor": "yield"}')
    assert turn == Turn(1, 200, "yield", "", -1)
    call = parse_server_message('{"type": "tool_call", "seq": 0, "t_ms": 0, "name": "n", "arguments": [1]}')
    assert call.arguments is None and call.arguments_raw == "[1]"


def test_frames():
    check_frame(bytes(6400))
    with pytest.raises(ProtocolError, match="frame of 100 bytes dropped: frames are 6400 bytes"):
        check_frame(bytes(100))


def test_close_codes():
    assert [int(c) for c in CloseCode] == [1000, 1001, 1002, 1006, 1008, 1009, 1011, 1013]
    assert CloseCode.TRY_AGAIN_LATER == 1013 and CloseCode.POLICY_VIOLATION == 1008


def test_constants_agree_with_the_model():
    assert (protocol.SAMPLE_RATE, protocol.MICRO_TURN_MS) == (16000, 200)
    assert protocol.FRAME_SAMPLES == 3200 == config.MICRO_TURN_SAMPLES
    assert protocol.FRAME_BYTES == 6400 == 2 * config.ModelConfig.from_name("tiny").micro_turn_samples
    assert interaction.N_FLOOR == len(protocol.FLOOR_STATES)  # the floor head has one output per state
    assert set(tokenizer.EVENT_KINDS) == set(protocol.EVENT_KINDS) | {"config"}
    sampling = Sampling()
    assert (sampling.temperature, sampling.top_p) == (protocol.DEFAULT_TEMPERATURE, protocol.DEFAULT_TOP_P)


def test_importing_the_protocol_loads_no_torch_nor_numpy():
    code = "import sys, model.protocol; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
