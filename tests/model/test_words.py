"""Events as one position of words and the reply prompter: step validation, replies replacing each
other, the vectorised cursor rule, the batch the forward pass needs, and warm starts from a
checkpoint without them."""

from __future__ import annotations

import random

import pytest
import torch

from model.checkpoint import CheckpointError, save_checkpoint, warm_start
from model.config import ModelConfig
from model.interaction import InteractionModel, StepInputs
from model.prompter import advance, reply_window
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer, prompter_advance, reply_bytes
from tests.model.conftest import WORDS, caller_audio, record_to_batch, stream_call

TOK = ByteTokenizer()


def _snapshot(state: StreamState) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.tensors().items()}


def _reply(state: StreamState, slot: int) -> list[int]:
    return state.reply[slot, : int(state.reply_len[slot])].tolist()


@pytest.mark.parametrize(
    "events, message",
    [
        ({0: [SPECIAL.DTMF, 52]}, r"must be a list \[marker, \*payload bytes\]"),
        ({0: [[]]}, "must be a list"),
        ({0: [[65, 66]]}, "starts with 65, not an event marker"),
        ({0: [[SPECIAL.CONFIG, 65]]}, "not an event marker"),
        ({0: [[SPECIAL.REPLY, 65, 300]]}, "payload token 300 for slot 0 is not a byte"),
        ({0: [[SPECIAL.REPLY, "a"]]}, "payload token 'a'"),
        ({0: [[SPECIAL.TIMER]] * (WORDS.max_event_tokens + 1)}, "17 events for slot 0; at most 16"),
        ({1: [[SPECIAL.TIMER]]}, "not stepped"),
    ],
)
def test_bad_words_events_are_refused_and_touch_no_state(tiny_words, events, message):
    state = StreamState.allocate(tiny_words.cfg, 3)
    audio = caller_audio(3, 2)
    tiny_words.step(
        state, StepInputs(audio[0], {2: [TOK.encode_event_words("reply", "hello there")]}), [0, 2]
    )
    before = _snapshot(state)
    with pytest.raises(ValueError, match=message):
        tiny_words.step(state, StepInputs(audio=audio[1], events=events), torch.tensor([True, False, True]))
    for name, value in state.tensors().items():
        assert torch.equal(value, before[name]), f"{name} changed on refused input"


def test_an_event_takes_one_position_and_a_reply_replaces_the_last(tiny_words):
    state = StreamState.allocate(tiny_words.cfg, 2)
    audio = caller_audio(2, 4)
    first = TOK.encode_event_words("reply", "Your order  B40808\tshipped on Monday.")
    tiny_words.step(state, StepInputs(audio[0], {0: [first, TOK.encode_event_words("dtmf", "4")]}), [0, 1])
    assert state.stream_len.tolist() == [3, 1]  # two events and a micro-turn; a micro-turn
    assert _reply(state, 0) == reply_bytes("Your order B40808 shipped on Monday.", 1024)
    assert int(state.reply_len[1]) == 0 and bool((state.reply[1] == SPECIAL.PAD).all())
    # A new reply replaces what is left of the last, cursor at its start; the last of a tick wins.
    state.reply_pos[0] = 5
    second, third = (
        TOK.encode_event_words("reply", t) for t in ("Sorry, one moment.", "It arrives Thursday.")
    )
    tiny_words.step(state, StepInputs(audio[1], {0: [second, third]}), [0])
    assert _reply(state, 0) == reply_bytes("It arrives Thursday.", 1024)
    assert int(state.reply_pos[0]) == prompter_advance(
        state.prev_text[0].tolist(), reply_bytes("It arrives Thursday.", 16)
    )
    assert bool((state.reply[0, int(state.reply_len[0]) :] == SPECIAL.PAD).all())  # the longer one's tail too
    # An empty reply clears it; a reset clears it too.
    tiny_words.step(state, StepInputs(audio[2], {1: [TOK.encode_event_words("reply", "Hello")]}), [0, 1])
    tiny_words.step(state, StepInputs(audio[3], {0: [TOK.encode_event_words("reply", "")]}), [0])
    assert int(state.reply_len[0]) == 0 and int(state.reply_len[1]) == 6
    state.reset([1])
    assert int(state.reply_len[1]) == int(state.reply_pos[1]) == 0 and bool(
        (state.reply == SPECIAL.PAD).all()
    )


def test_a_long_reply_is_cut_to_max_reply_bytes_and_the_window_pads_past_its_end():
    cfg = WORDS.replace(max_reply_bytes=40)
    torch.manual_seed(0)
    model = InteractionModel(cfg).eval()
    state = StreamState.allocate(cfg, 1)
    model.step(
        state, StepInputs(caller_audio(1, 1)[0], {0: [TOK.encode_event_words("reply", "word " * 30)]}), [0]
    )
    assert _reply(state, 0) == list(b"word " * 8)
    window = reply_window(state.reply, state.reply_len, torch.tensor([36]), 16)
    assert window.tolist() == [[*b"ord ", *[SPECIAL.PAD] * 12]]


def _random_bytes(rng: random.Random, n: int, alphabet: bytes) -> list[int]:
    return [rng.choice(alphabet) for _ in range(n)]


@pytest.mark.parametrize("n_text, n_window", [(8, 16), (8, 24), (8, 4), (3, 3)])
def test_the_vectorised_cursor_rule_equals_the_python_rule(n_text, n_window):
    rng = random.Random(n_text * 100 + n_window)
    emitted, windows = [], []
    for _ in range(2000):
        text = _random_bytes(rng, rng.randint(0, n_text), b"ab ")  # a small alphabet: many overlaps
        if len(text) < n_text:
            text += [SPECIAL.EOT] + [SPECIAL.PAD] * (n_text - len(text) - 1)
        if rng.random() < 0.1:  # a special token in the middle ends what was said
            text[rng.randrange(n_text)] = rng.choice([SPECIAL.EOT, SPECIAL.PAD, SPECIAL.TOOL])
        window = _random_bytes(rng, rng.randint(0, n_window), b"ab ")
        said = text[: next((i for i, t in enumerate(text) if t >= 256), n_text)]
        if rng.random() < 0.3 and said:  # the reply starts with the end of what was written
            window = (said[-rng.randint(1, len(said)) :] + window)[:n_window]
        windows.append(window + [SPECIAL.PAD] * (n_window - len(window)))
        emitted.append(text)
    got = advance(torch.tensor(emitted), torch.tensor(windows)).tolist()
    want = [prompter_advance(e, w) for e, w in zip(emitted, windows)]
    assert got == want
    assert sum(1 for w in want if w > 0) > 200 and max(want) >= min(n_text, n_window) - 1


def test_forward_needs_the_batch_fields_its_config_reads(tiny_words):
    _, records = stream_call(tiny_words, slots=1, turns=6, prefixes={})
    batch = record_to_batch(tiny_words.cfg, [], records[0])
    with torch.no_grad():
        tiny_words(batch)
        with pytest.raises(ValueError, match=r'Batch.event_words is None; event_repr="words" needs'):
            tiny_words(type(batch)(**{**vars(batch), "event_words": None}))
        with pytest.raises(ValueError, match=r"Batch.prompter is \(1, \d+, 8\); prompter_bytes needs"):
            tiny_words(type(batch)(**{**vars(batch), "prompter": batch.prompter[..., :8]}))


def test_the_prompter_changes_what_the_text_decoder_writes(tiny_words):
    """The prompter is read: the same micro-turns with another reply shown give other text logits,
    and with none shown another hidden state."""
    _, records = stream_call(tiny_words, slots=1, turns=12, prefixes={})
    batch = record_to_batch(tiny_words.cfg, [], records[0])
    shown = (batch.prompter < 256).any(-1)
    assert bool(shown.any())
    other = type(batch)(**{**vars(batch), "prompter": torch.where(batch.prompter < 256, 98, batch.prompter)})
    empty = type(batch)(**{**vars(batch), "prompter": torch.full_like(batch.prompter, SPECIAL.PAD)})
    with torch.no_grad():
        a, b, c = tiny_words(batch), tiny_words(other), tiny_words(empty)
    assert not torch.allclose(a.text_logits[shown], b.text_logits[shown])
    assert not torch.allclose(a.hidden[0, shown[0]], c.hidden[0, shown[0]])


def test_warm_start_fills_a_words_model_from_a_bytes_checkpoint(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "ck")
    torch.manual_seed(99)
    model = InteractionModel(WORDS).eval()
    fresh = warm_start(model, ck)
    assert fresh == sorted(
        ["event_words.weight"] + [f"prompter.{n}" for n in dict(model.prompter.state_dict())]
    )
    old = tiny.state_dict()
    for name, value in model.state_dict().items():
        if name not in fresh:
            assert torch.equal(value, old[name]), name
    # The prompter starts silent: with no events the warm-started model steps as the checkpoint
    # did, even with a reply in flight (written straight into slot 1's state).
    a, b = StreamState.allocate(tiny.cfg, 2), StreamState.allocate(WORDS, 2)
    b.reply[1, :60] = torch.tensor(reply_bytes("hello " * 10, 60))
    b.reply_len[1] = 60
    audio = caller_audio(2, 4)
    for t in range(4):
        x = tiny.step(a, StepInputs(audio[t]), [0, 1])
        y = model.step(b, StepInputs(audio[t]), [0, 1])
        assert torch.equal(x.text_logits, y.text_logits) and torch.equal(x.audio, y.audio)
    assert int(b.reply_len[1]) == 60


def test_warm_start_refuses_a_checkpoint_that_does_not_fit(tiny, tiny_words, tmp_path):
    bigger = InteractionModel(ModelConfig.from_name("tiny").replace(d_expert=96))
    with pytest.raises(CheckpointError, match=r"backbone\.blocks\.0\.moe\.w1 has shape \(4, 96, 64\)"):
        warm_start(InteractionModel(WORDS), save_checkpoint(bigger, tmp_path / "bigger"))
    with pytest.raises(CheckpointError, match="unexpected tensor event_words.weight"):
        warm_start(InteractionModel(tiny.cfg), save_checkpoint(tiny_words, tmp_path / "words"))
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        warm_start(InteractionModel(WORDS), tmp_path)


def test_the_audio_decoder_reads_the_text_it_voices_in_order(tiny_voice):
    """With `audio_reads_text` a micro-turn whose text has its bytes in another order gets other
    audio logits; without it (the reader silent, as a warm start begins) only their bag counts."""
    _, records = stream_call(tiny_voice, slots=1, turns=12, prefixes={})
    batch = record_to_batch(tiny_voice.cfg, [], records[0])
    last = int((batch.kind[0] == 2).nonzero().flatten()[-1])
    pad = [SPECIAL.PAD] * (tiny_voice.cfg.max_text_tokens - 3)
    said, other = batch.text.clone(), batch.text.clone()
    said[0, last] = torch.tensor([*b"on", SPECIAL.EOT, *pad])
    other[0, last] = torch.tensor([*b"no", SPECIAL.EOT, *pad])
    batch = type(batch)(**{**vars(batch), "text": said})
    reordered = type(batch)(**{**vars(batch), "text": other})
    with torch.no_grad():
        a, b = tiny_voice(batch).audio_logits[0, last], tiny_voice(reordered).audio_logits[0, last]
        assert not torch.allclose(a, b)
        value = tiny_voice.audio_reader.value.weight.clone()
        tiny_voice.audio_reader.silence()
        try:
            a, b = tiny_voice(batch).audio_logits[0, last], tiny_voice(reordered).audio_logits[0, last]
        finally:
            tiny_voice.audio_reader.value.weight.copy_(value)
    torch.testing.assert_close(a, b)


def test_warm_start_fills_a_voice_reading_model_from_a_words_checkpoint(tiny_words, tmp_path):
    """How small3 starts from a small2 run: only the audio decoder's reader is new, and it starts
    silent, so the warm-started model steps exactly as its checkpoint did."""
    ck = save_checkpoint(tiny_words, tmp_path / "ck")
    torch.manual_seed(99)
    model = InteractionModel(WORDS.replace(audio_reads_text=True)).eval()
    fresh = warm_start(model, ck)
    assert fresh == sorted(f"audio_reader.{n}" for n in dict(model.audio_reader.state_dict()))
    a, b = StreamState.allocate(tiny_words.cfg, 2), StreamState.allocate(model.cfg, 2)
    audio = caller_audio(2, 5)
    tok = ByteTokenizer()
    for t in range(5):
        events = {0: [tok.encode_event_words("reply", "aaaa bbbb cccc")]} if t == 1 else {}
        x = tiny_words.step(a, StepInputs(audio[t], events=events), [0, 1])
        y = model.step(b, StepInputs(audio[t], events=events), [0, 1])
        assert torch.equal(x.text, y.text) and torch.equal(x.audio_logits, y.audio_logits)
