"""model.tokenizer: byte round trips, streamed decoding of split characters, events and tool calls."""

from __future__ import annotations

import pytest

from model.tokenizer import SPECIAL, ByteTokenizer, StreamDecoder


def test_tokenizer_round_trips_any_text_and_streams_split_characters():
    tok = ByteTokenizer()
    text = "Hola, ¿cómo está? Order #A-1234 → 5€ 👍"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    dec = StreamDecoder()
    pieces = [dec.push(ids[i : i + 3] + [SPECIAL.EOT, SPECIAL.PAD]) for i in range(0, len(ids), 3)]
    assert "".join(pieces) + dec.flush() == text


def test_tokenizer_events_and_tool_calls():
    tok = ByteTokenizer()
    ev = tok.encode_event("dtmf", "42")
    assert ev[0] == SPECIAL.DTMF and ev[-1] == SPECIAL.EVENT_END and tok.decode(ev) == "42"
    with pytest.raises(ValueError, match="unknown event kind"):
        tok.encode_event("fax")
    call = tok.encode_tool_call("lookup_order", '{"order_id": "A1"}')
    assert tok.parse_tool_call(call) == ("lookup_order", '{"order_id": "A1"}')
    assert tok.parse_tool_call(tok.encode("!!! {}")) is None
