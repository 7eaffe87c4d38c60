"""Shared fixtures for model tests: a seeded tiny model and helpers to record a streamed call."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import ModelConfig
from model.interaction import KIND_EVENT, KIND_TURN, Batch, InteractionModel, StepInputs
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer


@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(1234)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


def caller_audio(slots: int, turns: int, seed: int = 0) -> torch.Tensor:
    """[turns, S, 3200] float32 speech-like bursts and silences, different per slot."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(turns * 3200) / 16000.0
    rows = []
    for s in range(slots):
        f0 = 110.0 + 37.0 * s
        voiced = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))
        gate = ((t * (1.3 + 0.2 * s)).floor() % 2 == 0).float()
        rows.append(0.25 * gate * voiced + 0.01 * torch.randn(t.shape, generator=g))
    return torch.stack(rows).view(slots, turns, 3200).transpose(0, 1).contiguous()


def event_schedule(slots: int, turns: int) -> dict[int, dict[int, list[int]]]:
    """turn -> slot -> event tokens (a few events of different lengths)."""
    tok = ByteTokenizer()
    sched: dict[int, dict[int, list[int]]] = {}
    for turn in range(turns):
        for s in range(slots):
            if (turn + 2 * s) % 7 == 3:
                sched.setdefault(turn, {})[s] = tok.encode_event("dtmf", str(turn % 10))
            elif (turn + s) % 11 == 5:
                sched.setdefault(turn, {})[s] = tok.encode_event("tool_result", '{"status":"shipped"}')[:16]
    return sched


def record_to_batch(cfg: ModelConfig, prefix: list[int], steps: list[tuple[list[int], object]]) -> Batch:
    """A teacher-forced batch (B=1) from a streamed slot's events and outputs, in step order."""
    kind, token, caller, floor, text, tool, audio = [], [], [], [], [], [], []
    f, m = cfg.frames_per_turn, cfg.n_mels
    zero_frames = torch.zeros(f, m, dtype=torch.int64)
    for events, out in steps:
        for e in events:
            kind.append(KIND_EVENT)
            token.append(e)
            caller.append(zero_frames)
            floor.append(torch.tensor(0))
            text.append(torch.full((cfg.max_text_tokens,), SPECIAL.PAD))
            tool.append(torch.full((cfg.max_tool_tokens,), SPECIAL.PAD))
            audio.append(zero_frames)
        kind.append(KIND_TURN)
        token.append(SPECIAL.PAD)
        caller.append(out.caller)
        floor.append(out.floor)
        text.append(out.text)
        tool.append(out.tool)
        audio.append(out.audio)
    p = max(len(prefix), 1)
    pre = torch.full((1, p), SPECIAL.PAD)
    pre[0, : len(prefix)] = torch.tensor(prefix, dtype=torch.int64) if prefix else pre[0, :0]
    return Batch(
        prefix=pre,
        prefix_len=torch.tensor([len(prefix)]),
        kind=torch.tensor([kind]),
        token=torch.tensor([token]),
        caller=torch.stack(caller)[None],
        floor=torch.stack(floor)[None].long(),
        text=torch.stack(text)[None].long(),
        tool=torch.stack(tool)[None].long(),
        audio=torch.stack(audio)[None].long(),
    )


def stream_call(
    model: InteractionModel,
    slots: int,
    turns: int,
    prefixes: dict[int, list[int]],
    active: callable = lambda turn, slot: True,
    seed: int = 0,
):
    """Step `slots` slots for `turns` ticks; returns (state, per-slot list of (events, output row))."""
    state = StreamState.allocate(model.cfg, slots)
    state.set_sampling(list(range(slots)), temperature=1.0, top_p=0.95)
    for s, p in prefixes.items():
        model.prefill(state, s, p)
    audio = caller_audio(slots, turns, seed)
    sched = event_schedule(slots, turns)
    records: dict[int, list] = {s: [] for s in range(slots)}
    for turn in range(turns):
        mask = torch.tensor([bool(active(turn, s)) for s in range(slots)])
        events = {s: e for s, e in sched.get(turn, {}).items() if mask[s]}
        out = model.step(state, StepInputs(audio=audio[turn], events=events), mask)
        for row, s in enumerate(out.slots.tolist()):
            records[s].append((events.get(s, []), _row(out, row)))
    return state, records


class _Row:
    pass


def _row(out, row: int):
    r = _Row()
    for name, value in vars(out).items():
        setattr(r, name, value[row].clone())
    return r
