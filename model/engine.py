"""The offline engine: drives calls through the model exactly as the model server does, minus sockets
and the clock. Demos, benchmarks and evaluation step the model through it, not loops of their own.

A call is admitted into a `Scheduler` slot with its configuration text (encoded to the pinned prefix
by `ByteTokenizer.encode_prefix`, as the server encodes a hello's config) and its `Sampling`
(temperature, top-p, RNG seed of the slot). Each `step` queues at most one caller frame (6400 bytes
of PCM16 LE, as the server receives them) and events per call, asks the scheduler for the
`TickPlan` and has the `Runner` execute it, so resets, prefills, sampling and decoding are the
server's own. A call given no frame in a step is masked out and does not advance. Events are given
as the checkpoint reads them (`encode_event` encodes one): "bytes", a slot's event tokens, one list;
"words", a list of whole events, each `[marker, *payload bytes]`.

It knows nothing about agents or how a configuration text is rendered (callers render it), nor about
float audio: frames are bytes, as on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from model.interaction import InteractionModel
from model.runner import Runner, ToolCall
from model.scheduler import Sampling, Scheduler
from model.state import StreamState
from model.tokenizer import ByteTokenizer


@dataclass
class Turn:
    """One stepped micro-turn of one call: what the server sends as its turn, audio and tool call."""

    frame: int  # which of the call's frames (0-based) this micro-turn answers
    floor: str  # one of model.protocol.FLOOR_STATES
    text: str  # text decoded this micro-turn (multi-byte characters may continue in the next)
    tool_call: ToolCall | None
    pcm: bytes  # 6400 bytes, PCM16 LE, 16 kHz: the agent's next 200 ms
    floor_probs: tuple[float, ...]  # the model's probability of each floor state (FLOOR_STATES order)


@dataclass
class Call:
    """A call to run with `Engine.run`: its configuration text, caller frames and events."""

    config: str  # the rendered configuration prefix text (agent.config.render_prefix at serving)
    frames: Sequence[bytes]  # caller frames, 6400 bytes each
    events: Mapping[int, list] = field(default_factory=dict)  # frame index -> event tokens (or events) queued
    sampling: Sampling = field(default_factory=Sampling)  # model.protocol's default sampling, seed 0


class Engine:
    def __init__(self, model: InteractionModel, max_slots: int, device: str | torch.device = "cpu") -> None:
        self.runner = Runner(model, max_slots, device)
        self.cfg = self.runner.cfg
        self.scheduler = Scheduler(max_slots, self.cfg.max_event_tokens, event_repr=self.cfg.event_repr)
        self.tokenizer = ByteTokenizer()
        self.step_ms: list[float] = []  # per step that stepped a slot: the runner's batched step

    @property
    def state(self) -> StreamState:
        """The slots' streaming state (offline tools may overwrite a slot's fed-back outputs)."""
        return self.runner.state

    def admit(self, config: str, sampling: Sampling | None = None) -> int:
        """A slot for a new call, reset and pinned with `config`'s prefix from the next step on."""
        prefix = self.tokenizer.encode_prefix(config, self.cfg.max_prefix)
        slot = self.scheduler.admit("", prefix, sampling or Sampling())
        if slot is None:
            raise RuntimeError(f"all {self.scheduler.max_slots} slots are busy")
        return slot

    def release(self, slot: int) -> None:
        self.scheduler.release(slot)

    def encode_event(self, kind: str, payload: str = "") -> list[int]:
        """One event as this checkpoint reads it: its tokens ("bytes", to concatenate into a slot's
        list) or `[marker, *payload bytes]` ("words", one entry of a slot's list of events)."""
        return self.tokenizer.encode_event_as(self.cfg.event_repr, kind, payload)

    def step(self, frames: Mapping[int, bytes], events: Mapping[int, list] | None = None) -> dict[int, Turn]:
        """One tick: each slot in `frames` steps on its frame (after its queued events, at most
        max_event_tokens tokens, or events, a tick as on the server); every other slot stays as it
        is. `events`: slot -> event tokens ("bytes") or a list of events ("words")."""
        words = self.cfg.event_repr == "words"
        for slot, queued in (events or {}).items():
            for tokens in queued if words else [queued]:
                if tokens and not self.scheduler.push_event(slot, list(tokens)):
                    raise ValueError(f"slot {slot}: event backlog full")
        for slot, frame in frames.items():
            self.scheduler.push_frame(slot, frame)
        plan = self.scheduler.plan()
        cuda = self.runner.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.runner.device)
        t0 = time.perf_counter()
        out = self.runner.step(plan)
        if out is None:
            return {}
        if cuda:
            torch.cuda.synchronize(self.runner.device)
        self.step_ms.append((time.perf_counter() - t0) * 1000)
        probs = torch.softmax(out.floor_logits.float(), -1).tolist()
        results = self.runner.results(out)
        turns = {}
        for row, slot in enumerate(out.slots.tolist()):
            r = results[slot]
            turns[slot] = Turn(plan.frame_index[slot], r.floor, r.text, r.tool_call, r.pcm, tuple(probs[row]))
        return turns

    def stream(self, calls: Sequence[Call]) -> Iterator[list[Turn | None]]:
        """Every call from its first frame to its last, all in one batch: per tick, each call's Turn
        (None once its frames have run out). The calls' slots are released at the end."""
        slots = [self.admit(call.config, call.sampling) for call in calls]
        try:
            for t in range(max((len(call.frames) for call in calls), default=0)):
                live = [i for i, call in enumerate(calls) if t < len(call.frames)]
                out = self.step(
                    {slots[i]: calls[i].frames[t] for i in live},
                    {slots[i]: calls[i].events[t] for i in live if calls[i].events.get(t)},
                )
                yield [out[slots[i]] if t < len(call.frames) else None for i, call in enumerate(calls)]
        finally:
            for slot in slots:
                self.release(slot)

    def run(self, calls: Sequence[Call]) -> list[list[Turn]]:
        """`stream`, collected: each call's Turns, one per frame."""
        turns: list[list[Turn]] = [[] for _ in calls]
        for tick in self.stream(calls):
            for mine, turn in zip(turns, tick):
                if turn is not None:
                    mine.append(turn)
        return turns
