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


def test_words_events_carry_the_whole_payload_and_no_end_marker():
    tok = ByteTokenizer()
    ev = tok.encode_event_words("reply", "Ça arrive jeudi. " * 200)
    assert ev[0] == SPECIAL.REPLY and SPECIAL.EVENT_END not in ev
    assert bytes(ev[1:]).decode() == "Ça arrive jeudi. " * 200  # not cut: the step cuts what it shows
    assert tok.encode_event_words("timer") == [SPECIAL.TIMER]
    for kind in ("config", "fax"):
        with pytest.raises(ValueError, match=f"unknown event kind '{kind}' for a words event"):
            tok.encode_event_words(kind, "x")


def test_event_word_ids_are_stable_bounded_and_skip_json_punctuation():
    from model.tokenizer import event_word_ids

    ids = event_word_ids('{"status": "shipped", "eta": "2026-07-02"}', 48, 8192)
    assert len(ids) == 7  # status , shipped , eta 2026 07 02 -> the comma after "shipped" and ":" dropped
    assert ids == event_word_ids('{"STATUS": "Shipped", "eta": "2026-07-02"}', 48, 8192)
    assert all(1 <= i <= 8192 for i in ids)
    assert event_word_ids("one two three four", 2, 16) == event_word_ids("one two", 2, 16)
    assert event_word_ids("", 48, 8192) == []
    assert len(event_word_ids("¿Dónde está mi pedido?", 48, 8192)) == 5


def test_prompter_advance_counts_the_reply_bytes_the_agent_wrote():
    from model.tokenizer import SPECIAL, prompter_advance

    def b(s: str) -> list[int]:
        return list(s.encode())

    assert prompter_advance(b("Your ord"), b("Your order shipped")) == 8
    assert (
        prompter_advance(b("Sure. Your o"), b("Your order shipped")) == 6
    )  # acknowledgement, then the reply
    assert prompter_advance(b("Let me check"), b("Your order shipped")) == 0
    assert prompter_advance([*b("Your o"), SPECIAL.EOT, SPECIAL.PAD], b("Your order")) == 6
    assert prompter_advance(b("Your order shipped!"), [*b("Your order"), SPECIAL.PAD]) == 0
    assert prompter_advance([], b("Your")) == 0 and prompter_advance(b("x"), []) == 0
    # a misspelt stretch of the reply moves the cursor too (one wrong byte in four), a short one not
    assert prompter_advance(b("yet' "), b("yet, so I can't")) == 5
    assert prompter_advance(b("hasn't benn del"), b("been delivered")) == 8
    assert prompter_advance(b("yex"), b("yet, so")) == 0
    assert prompter_advance(b("Let me check. "), b("It looks like")) == 0
