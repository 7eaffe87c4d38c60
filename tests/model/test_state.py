"""Streaming state: reset, constant memory on long calls, and bad input that touches nothing."""

from __future__ import annotations

import pytest
import torch

from model.interaction import StepInputs
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer
from tests.model.conftest import caller_audio

PREFIX = ByteTokenizer().encode_event("config", "agent=support")


def _snapshot(state: StreamState) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.tensors().items()}


def _run(model, state, audio, turns, mask=None):
    mask = torch.ones(state.max_slots, dtype=torch.bool) if mask is None else mask
    return [model.step(state, StepInputs(audio=audio[t % len(audio)]), mask) for t in range(turns)]


def test_reset_really_clears_a_slot(tiny):
    fresh = StreamState.allocate(tiny.cfg, 3)
    state = StreamState.allocate(tiny.cfg, 3)
    for s in range(3):
        tiny.prefill(state, s, PREFIX)
    _run(tiny, state, caller_audio(3, 5), 5)
    state.reset([1])
    for name, value in state.tensors().items():
        ref = fresh.tensors()[name]
        if name in ("k_prefix", "v_prefix", "k_window", "v_window"):
            assert torch.equal(value[:, 1], ref[:, 1]), name
            assert not torch.equal(value[:, 0], ref[:, 0]), f"{name} of slot 0 was cleared too"
        elif name not in ("seed", "temperature", "top_p"):
            assert torch.equal(value[1], ref[1]), name
    # A reset slot behaves exactly like a slot of a fresh state.
    again = StreamState.allocate(tiny.cfg, 3)
    audio = caller_audio(3, 4, seed=5)
    a = _run(tiny, state, audio, 4, torch.tensor([False, True, False]))
    b = _run(tiny, again, audio, 4, torch.tensor([False, True, False]))
    for x, y in zip(a, b):
        assert torch.equal(x.audio, y.audio) and torch.equal(x.text, y.text)
        torch.testing.assert_close(x.pcm, y.pcm)


def test_long_call_keeps_constant_memory_and_finite_outputs(tiny):
    state = StreamState.allocate(tiny.cfg, 2)
    tiny.prefill(state, 0, PREFIX)
    size = state.nbytes()
    pointers = {k: v.data_ptr() for k, v in state.tensors().items()}
    audio = caller_audio(2, 8)
    turns = 6 * tiny.cfg.window  # far past the window
    for t in range(turns):
        events = {0: [SPECIAL.TIMER, SPECIAL.EVENT_END]} if t % 9 == 0 else {}
        out = tiny.step(state, StepInputs(audio=audio[t % 8], events=events), [0, 1])
        assert torch.isfinite(out.pcm).all() and torch.isfinite(out.hidden).all()
    assert state.nbytes() == size
    assert {k: v.data_ptr() for k, v in state.tensors().items()} == pointers
    assert int(state.turns[0]) == turns
    assert int(state.stream_len[0]) > turns  # events took positions too
    # Only the last `window` positions are held; the prefix is still pinned.
    held = state.window_pos[0]
    assert int(held.min()) == int(state.stream_len[0]) - tiny.cfg.window
    assert int(state.prefix_len[0]) == len(PREFIX)


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda s: StepInputs(audio=torch.zeros(s, 3199)), "frame length 3199"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200, dtype=torch.float64)), "dtype"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200, dtype=torch.int32)), "dtype"),
        (lambda s: StepInputs(audio=torch.zeros(s + 1, 3200)), "shape"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200).numpy()), "torch.Tensor"),
        (lambda s: StepInputs(audio=_with(torch.zeros(s, 3200), 2, float("nan"))), r"slot\(s\) \[2\]"),
        (lambda s: StepInputs(audio=_with(torch.zeros(s, 3200), 0, float("inf"))), "NaN or Inf"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200), events={9: [SPECIAL.DTMF]}), "out of range"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200), events={0: [999]}), "token 999"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200), events={0: [65] * 40}), "at most"),
        (lambda s: StepInputs(audio=torch.zeros(s, 3200), events={1: [65]}), "not stepped"),
    ],
)
def test_bad_input_is_refused_and_touches_no_state(tiny, make_inputs, message):
    state = StreamState.allocate(tiny.cfg, 3)
    tiny.prefill(state, 0, PREFIX)
    _run(tiny, state, caller_audio(3, 2), 2)
    before = _snapshot(state)
    with pytest.raises(ValueError, match=message):
        tiny.step(state, make_inputs(3), torch.tensor([True, False, True]))
    for name, value in state.tensors().items():
        assert torch.equal(value, before[name]), f"{name} changed on refused input"


@pytest.mark.parametrize(
    "mask, message",
    [
        ([0, 3], "slot index 3 out of range"),
        ([-1], "out of range"),
        (torch.ones(4, dtype=torch.bool), "slot mask has shape"),
        ([0.5], "integer indices"),
    ],
)
def test_slot_selection_out_of_range_is_refused(tiny, mask, message):
    state = StreamState.allocate(tiny.cfg, 3)
    before = _snapshot(state)
    with pytest.raises(ValueError, match=message):
        tiny.step(state, StepInputs(audio=torch.zeros(3, 3200)), mask)
    with pytest.raises(ValueError, match=message):
        state.reset(mask)
    for name, value in state.tensors().items():
        assert torch.equal(value, before[name]), name


def test_prefill_refuses_long_or_bad_prefix(tiny):
    state = StreamState.allocate(tiny.cfg, 2)
    with pytest.raises(ValueError, match="max_prefix"):
        tiny.prefill(state, 0, [65] * (tiny.cfg.max_prefix + 1))
    with pytest.raises(ValueError, match="prefix token -1"):
        tiny.prefill(state, 0, [65, -1])
    with pytest.raises(ValueError, match="out of range"):
        tiny.prefill(state, 2, [65])
    assert int(state.prefix_len.sum()) == 0


def test_int16_and_float_audio_give_the_same_step(tiny):
    pcm = (caller_audio(2, 1)[0] * 32767).round().to(torch.int16)
    a, b = StreamState.allocate(tiny.cfg, 2), StreamState.allocate(tiny.cfg, 2)
    x = tiny.step(a, StepInputs(audio=pcm), [0, 1])
    y = tiny.step(b, StepInputs(audio=pcm.float() / 32768.0), [0, 1])
    assert torch.equal(x.caller, y.caller) and torch.equal(x.audio, y.audio)


def test_sampling_settings_are_validated(tiny):
    state = StreamState.allocate(tiny.cfg, 2)
    with pytest.raises(ValueError, match="top_p"):
        state.set_sampling(0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        state.set_sampling(0, temperature=-1.0)
    state.set_sampling(1, temperature=0.0)  # greedy is allowed
    assert float(state.temperature[1]) == 0.0


def _with(t: torch.Tensor, row: int, value: float) -> torch.Tensor:
    t[row, 100] = value
    return t
