"""Shared fixtures for model tests: seeded tiny models (legacy, and reading events as words with a
reply prompter) and helpers to record a streamed call and rebuild it as a teacher-forced batch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from model.config import ModelConfig
from model.interaction import KIND_EVENT, KIND_TURN, Batch, InteractionModel, StepInputs
from model.protocol import EVENT_KINDS
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer, event_word_ids, prompter_advance, reply_bytes

WORDS = ModelConfig.from_name("tiny").replace(event_repr="words", prompter_bytes=16, event_kinds=EVENT_KINDS)


@pytest.fixture(scope="module")
def tiny() -> InteractionModel:
    torch.manual_seed(1234)
    return InteractionModel(ModelConfig.from_name("tiny")).eval()


@pytest.fixture(scope="module")
def tiny_words() -> InteractionModel:
    """`tiny` reading events as words, with a 16-byte reply prompter whose weights are random (a new
    model's start silent) and a text head that favours "a", so replies of "a"s get said and the
    reply cursor moves."""
    torch.manual_seed(1234)
    model = InteractionModel(WORDS).eval()
    with torch.no_grad():
        for p in model.prompter.parameters():
            nn.init.normal_(p, std=0.3)
        model.text_out.bias[ord("a")] += 6.0
    return model


@pytest.fixture(scope="module")
def tiny_voice() -> InteractionModel:
    """`tiny_words` whose audio decoder also reads the text it voices in order
    (`audio_reads_text`), that reader's weights random (a new model's start silent)."""
    torch.manual_seed(1234)
    model = InteractionModel(WORDS.replace(audio_reads_text=True)).eval()
    with torch.no_grad():
        for p in [*model.prompter.parameters(), *model.audio_reader.parameters()]:
            nn.init.normal_(p, std=0.3)
        model.text_out.bias[ord("a")] += 6.0
    return model


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


def words_schedule(slots: int, turns: int) -> dict[int, dict[int, list[list[int]]]]:
    """turn -> slot -> whole events ("words" mode): replies (of "a"s, which `tiny_words` says, and
    of words it does not), a reply replacing another in the same tick, events without words,
    and ticks with several events."""
    tok = ByteTokenizer()
    sched: dict[int, dict[int, list[list[int]]]] = {}
    for turn in range(turns):
        for s in range(slots):
            k = (turn + 3 * s) % 9
            if k == 1:
                due = [tok.encode_event_words("reply", "a" * 30 + " " + "a" * (turn % 7 + 3) + " done")]
            elif k == 3:
                due = [tok.encode_event_words("dtmf", str(turn % 10)), tok.encode_event_words("timer", "")]
            elif k == 5:
                due = [
                    tok.encode_event_words("reply", "Your order shipped."),
                    tok.encode_event_words("tool_result", '{"status":"shipped"}'),
                    tok.encode_event_words("reply", "aaaaaaaaaaaaaaaaaaaaaa aa"),
                ]
            elif k == 7:
                due = [tok.encode_event_words("caller_words", "where is my order")]
            else:
                continue
            sched.setdefault(turn, {})[s] = due
    return sched


def prompter_windows(cfg: ModelConfig, steps: list[tuple[list, object]]) -> tuple[list[list[int]], list[int]]:
    """What the reply prompter shows at each recorded micro-turn and where its cursor is after it,
    by the Python rule the training labels apply (model.tokenizer.prompter_advance)."""
    reply: list[int] = []
    pos = 0
    windows, cursors = [], []
    for events, out in steps:
        for e in events:
            if e[0] == SPECIAL.REPLY:
                reply, pos = (
                    reply_bytes(bytes(e[1:]).decode("utf-8", errors="replace"), cfg.max_reply_bytes),
                    0,
                )
        window = reply[pos : pos + cfg.prompter_bytes]
        windows.append(window)
        pos += prompter_advance(out.text.tolist(), window)
        cursors.append(pos)
    return windows, cursors


def record_to_batch(cfg: ModelConfig, prefix: list[int], steps: list[tuple[list, object]]) -> Batch:
    """A teacher-forced batch (B=1) from a streamed slot's events and outputs, in step order (in
    words mode with each event's hashed words and, with a prompter, its windows)."""
    words_mode = cfg.event_repr == "words"
    kind, token, caller, floor, text, tool, audio, words, shown = [], [], [], [], [], [], [], [], []
    windows = prompter_windows(cfg, steps)[0] if cfg.prompter_bytes else [[]] * len(steps)
    f, m = cfg.frames_per_turn, cfg.n_mels
    zero_frames = torch.zeros(f, m, dtype=torch.int64)
    no_words = torch.zeros(cfg.event_words, dtype=torch.int64)
    no_window = torch.full((cfg.prompter_bytes,), SPECIAL.PAD, dtype=torch.int64)
    for (events, out), window in zip(steps, windows):
        for e in events:
            kind.append(KIND_EVENT)
            token.append(e[0] if words_mode else e)
            if words_mode:
                payload = bytes(e[1:]).decode("utf-8", errors="replace")
                ids = torch.tensor(event_word_ids(payload, cfg.event_words, cfg.event_buckets))
                words.append(torch.cat([ids.long(), no_words])[: cfg.event_words])
            else:
                words.append(no_words)
            shown.append(no_window)
            caller.append(zero_frames)
            floor.append(torch.tensor(0))
            text.append(torch.full((cfg.max_text_tokens,), SPECIAL.PAD))
            tool.append(torch.full((cfg.max_tool_tokens,), SPECIAL.PAD))
            audio.append(zero_frames)
        kind.append(KIND_TURN)
        token.append(SPECIAL.PAD)
        words.append(no_words)
        shown.append(torch.cat([torch.tensor(window, dtype=torch.int64), no_window])[: cfg.prompter_bytes])
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
        event_words=torch.stack(words)[None] if words_mode else None,
        prompter=torch.stack(shown)[None] if cfg.prompter_bytes else None,
    )


def stream_call(
    model: InteractionModel,
    slots: int,
    turns: int,
    prefixes: dict[int, list[int]],
    active: callable = lambda turn, slot: True,
    seed: int = 0,
):
    """Step `slots` slots for `turns` ticks; returns (state, per-slot list of (events, output row)).
    Events follow `event_schedule` or, for a words-mode model, `words_schedule`; each row also
    holds the slot's reply cursor after the step (`reply_pos`)."""
    state = StreamState.allocate(model.cfg, slots)
    state.set_sampling(list(range(slots)), temperature=1.0, top_p=0.95)
    for s, p in prefixes.items():
        model.prefill(state, s, p)
    audio = caller_audio(slots, turns, seed)
    words = model.cfg.event_repr == "words"
    sched = words_schedule(slots, turns) if words else event_schedule(slots, turns)
    records: dict[int, list] = {s: [] for s in range(slots)}
    for turn in range(turns):
        mask = torch.tensor([bool(active(turn, s)) for s in range(slots)])
        events = {s: e for s, e in sched.get(turn, {}).items() if mask[s]}
        out = model.step(state, StepInputs(audio=audio[turn], events=events), mask)
        for row, s in enumerate(out.slots.tolist()):
            record = _row(out, row)
            record.reply_pos = int(state.reply_pos[s])
            records[s].append((events.get(s, []), record))
    return state, records


class _Row:
    pass


def _row(out, row: int):
    r = _Row()
    for name, value in vars(out).items():
        setattr(r, name, value[row].clone())
    return r
