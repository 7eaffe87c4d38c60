"""Streaming equals teacher forcing; masked batched steps equal slots stepped alone. Both for the
legacy model (events as bytes), one reading events as words with a reply prompter, whose cursor
moves by the rule the training labels apply, and one whose audio decoder also reads the text it
voices."""

from __future__ import annotations

import pytest
import torch

from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer
from tests.model.conftest import prompter_windows, record_to_batch, stream_call

TOK = ByteTokenizer()
PREFIX = TOK.encode_event("config", "agent=support lang=en")


def _text_upto_eot(tokens: torch.Tensor) -> int:
    hits = (tokens == SPECIAL.EOT).nonzero()
    return int(hits[0]) + 1 if hits.numel() else tokens.numel()


@pytest.mark.parametrize("name", ["tiny", "tiny_words", "tiny_voice"])
def test_streaming_equals_teacher_forced_forward_past_the_window(name, request):
    tiny = request.getfixturevalue(name)
    turns = 45  # more stream positions than the window (32), events included
    _, records = stream_call(tiny, slots=2, turns=turns, prefixes={0: PREFIX})
    moved = 0
    for slot, prefix in ((0, PREFIX), (1, [])):
        steps = records[slot]
        if tiny.cfg.prompter_bytes:
            # The step's cursor is where the labels' rule puts it, micro-turn by micro-turn.
            windows, cursors = prompter_windows(tiny.cfg, steps)
            assert [out.reply_pos for _, out in steps] == cursors
            moved += sum(b > a for a, b in zip([0, *cursors], cursors))
            assert sum(1 for w in windows if w) > turns // 2  # a reply in flight most of the call
        batch = record_to_batch(tiny.cfg, prefix, steps)
        assert batch.kind.shape[1] > tiny.cfg.window + 5
        with torch.no_grad():
            full = tiny(batch)
        turn_pos = (batch.kind[0] == 2).nonzero().flatten()
        assert len(turn_pos) == turns
        tool_rows = {tuple(p.tolist()): i for i, p in enumerate(full.tool_positions)}
        n_tools = 0
        for i, (_, out) in enumerate(steps):
            p = turn_pos[i]
            torch.testing.assert_close(full.hidden[0, p], out.hidden, atol=2e-4, rtol=1e-4)
            torch.testing.assert_close(full.floor_logits[0, p], out.floor_logits, atol=2e-4, rtol=1e-4)
            torch.testing.assert_close(full.tool_logits[0, p], out.tool_logits, atol=2e-4, rtol=1e-4)
            n = _text_upto_eot(out.text)
            torch.testing.assert_close(full.text_logits[0, p, :n], out.text_logits[:n], atol=2e-4, rtol=1e-4)
            torch.testing.assert_close(full.audio_logits[0, p], out.audio_logits, atol=2e-4, rtol=1e-4)
            if out.tool[0] != SPECIAL.PAD:
                n_tools += 1
                q = tool_rows[(0, int(p))]
                k = _text_upto_eot(out.tool)
                torch.testing.assert_close(
                    full.tool_text_logits[q, :k], out.tool_text_logits[:k], atol=2e-4, rtol=1e-4
                )
        assert n_tools == len(full.tool_positions)
    if tiny.cfg.prompter_bytes:
        assert moved >= 5, "the cursor should move when the agent writes the reply's bytes"


@pytest.mark.parametrize("name", ["tiny", "tiny_words", "tiny_voice"])
def test_masked_batched_step_equals_slot_stepped_alone(name, request):
    tiny = request.getfixturevalue(name)
    turns = 12
    pattern = lambda turn, slot: (turn + slot) % 3 != 0  # noqa: E731  late frames -> masked out
    _, batched = stream_call(tiny, slots=4, turns=turns, prefixes={0: PREFIX, 2: PREFIX[:5]}, active=pattern)
    for slot in range(4):
        # The same slot, alone in a one-slot state, stepped at the same ticks with the same audio.
        _, alone = stream_call(
            tiny,
            slots=4,
            turns=turns,
            prefixes={0: PREFIX, 2: PREFIX[:5]},
            active=lambda turn, s, slot=slot: s == slot and pattern(turn, s),
        )
        assert len(alone[slot]) == len(batched[slot]) > 0
        for (ev_a, a), (ev_b, b) in zip(alone[slot], batched[slot]):
            assert ev_a == ev_b
            torch.testing.assert_close(a.hidden, b.hidden, atol=1e-4, rtol=1e-4)
            assert torch.equal(a.floor, b.floor)
            assert torch.equal(a.text, b.text)
            assert torch.equal(a.tool, b.tool)
            assert torch.equal(a.audio, b.audio)
            torch.testing.assert_close(a.pcm, b.pcm, atol=1e-4, rtol=1e-4)


def test_masked_out_slots_do_not_change_at_all(tiny):
    state = StreamState.allocate(tiny.cfg, 4)
    tiny.prefill(state, 1, PREFIX)
    from model.interaction import StepInputs
    from tests.model.conftest import caller_audio

    audio = caller_audio(4, 6)
    for turn in range(3):
        tiny.step(state, StepInputs(audio=audio[turn]), torch.ones(4, dtype=torch.bool))
    before = {k: v.clone() for k, v in state.tensors().items()}
    mask = torch.tensor([True, False, True, False])
    for turn in range(3, 6):
        tiny.step(
            state, StepInputs(audio=audio[turn], events={0: [SPECIAL.DTMF, 49, SPECIAL.EVENT_END]}), mask
        )
    changed_somewhere = False
    for name, old in before.items():
        new = state.tensors()[name]
        if name in ("k_prefix", "v_prefix", "k_window", "v_window"):
            old_s, new_s = old[:, [1, 3]], new[:, [1, 3]]
            changed_somewhere |= not torch.equal(old[:, [0, 2]], new[:, [0, 2]])
        else:
            old_s, new_s = old[[1, 3]], new[[1, 3]]
        assert torch.equal(old_s, new_s), f"{name} of a masked-out slot changed"
    assert changed_somewhere


def test_sampling_is_reproducible_with_a_seed(tiny):
    from model.interaction import StepInputs
    from tests.model.conftest import caller_audio

    outs = []
    for _ in range(2):
        state = StreamState.allocate(tiny.cfg, 2)
        state.set_sampling([0, 1], temperature=1.0, top_p=0.9, seed=[7, 8])
        audio = caller_audio(2, 4)
        outs.append([tiny.step(state, StepInputs(audio=audio[i]), [0, 1]).audio for i in range(4)])
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    # A different seed gives different samples.
    state = StreamState.allocate(tiny.cfg, 2)
    state.set_sampling([0, 1], temperature=1.0, top_p=0.9, seed=[70, 80])
    other = tiny.step(state, StepInputs(audio=caller_audio(2, 1)[0]), [0, 1]).audio
    assert not torch.equal(other, outs[0][0])


def test_floor_and_tool_decisions_are_drawn_from_the_whole_distribution(tiny):
    """A 'speak' the model gives 8% (a tool call 10%) is taken about that often whatever the
    slot's temperature and top-p (nucleus truncation at 0.9 would never take it); greedy never."""
    import copy

    from model.interaction import StepInputs
    from model.protocol import FLOOR_STATES
    from tests.model.conftest import caller_audio

    model = copy.deepcopy(tiny)
    probs = torch.full((len(FLOOR_STATES),), 1e-6)
    probs[FLOOR_STATES.index("listen")], probs[FLOOR_STATES.index("speak")] = 0.92, 0.08
    with torch.no_grad():
        model.floor_head.weight.zero_()
        model.floor_head.bias.copy_(probs.log())
        model.tool_head.weight.zero_()
        model.tool_head.bias.copy_(torch.tensor([0.9, 0.1]).log())
    slots = 200
    state = StreamState.allocate(model.cfg, slots)
    state.set_sampling(list(range(slots)), temperature=0.8, top_p=0.9, seed=list(range(slots)))
    out = model.step(state, StepInputs(audio=caller_audio(slots, 1)[0]), list(range(slots)))
    speak = int((out.floor == FLOOR_STATES.index("speak")).sum())
    tools = int((out.tool[:, 0] != SPECIAL.PAD).sum())
    assert 4 <= speak <= 32 and 6 <= tools <= 40, (speak, tools)
    greedy = StreamState.allocate(model.cfg, slots)
    greedy.set_sampling(list(range(slots)), temperature=0.0, seed=list(range(slots)))
    out = model.step(greedy, StepInputs(audio=caller_audio(slots, 1)[0]), list(range(slots)))
    assert bool((out.floor == FLOOR_STATES.index("listen")).all()) and bool(
        (out.tool[:, 0] == SPECIAL.PAD).all()
    )
