"""The runner: executes a `TickPlan` on the model. All the tensor work of serving happens here.

One runner owns the model and the `StreamState` for `max_slots` calls. `execute(plan)` resets and
prefills slots as planned, steps every planned slot in one batch (`step`), and turns each stepped
slot's output into plain Python (`results`): floor state, new text (decoded incrementally across
micro-turns), an optional tool call, and 200 ms of agent PCM16 bytes. It runs in one worker thread
of the model server, or under `model.engine` offline; nothing in it knows about websockets or
sessions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import torch

from model.interaction import InteractionModel, StepInputs, StepOutput
from model.protocol import FLOOR_STATES, FRAME_BYTES, FRAME_SAMPLES
from model.scheduler import TickPlan
from model.state import StreamState
from model.tokenizer import SPECIAL, ByteTokenizer, StreamDecoder

log = logging.getLogger(__name__)


@dataclass
class ToolCall:
    name: str
    arguments: dict | None  # parsed JSON object, or None when the model wrote invalid JSON
    raw: str


@dataclass
class SlotResult:
    floor: str
    text: str
    tool_call: ToolCall | None
    pcm: bytes  # 6400 bytes, PCM16 LE, 16 kHz


class Runner:
    def __init__(self, model: InteractionModel, max_slots: int, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.state = StreamState.allocate(self.cfg, max_slots, self.device)
        self.tokenizer = ByteTokenizer()
        self._decoders = [StreamDecoder() for _ in range(max_slots)]
        self._audio = torch.zeros(max_slots, FRAME_SAMPLES, dtype=torch.int16)

    def execute(self, plan: TickPlan) -> dict[int, SlotResult]:
        out = self.step(plan)
        return {} if out is None else self.results(out)

    def step(self, plan: TickPlan) -> StepOutput | None:
        """The plan's tensor work: resets, sampling settings, prefills, then one batched step of the
        planned slots (None when none steps)."""
        if plan.resets:
            self.state.reset(plan.resets)
            for slot in plan.resets:
                self._decoders[slot].clear()
        for slot, sampling in plan.sampling.items():
            self.state.set_sampling(
                slot, temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed
            )
        for slot, tokens in plan.prefills.items():
            self.model.prefill(self.state, slot, tokens[: self.cfg.max_prefix])
        if not plan.step:
            return None
        for slot in plan.step:
            frame = plan.frames[slot]
            if len(frame) != FRAME_BYTES:
                raise ValueError(f"slot {slot}: frame of {len(frame)} bytes, expected {FRAME_BYTES}")
            self._audio[slot] = torch.from_numpy(np.frombuffer(frame, dtype="<i2").copy())
        return self.model.step(
            self.state, StepInputs(audio=self._audio.to(self.device), events=plan.events), plan.step
        )

    def results(self, out: StepOutput) -> dict[int, SlotResult]:
        """Each stepped slot's output as plain Python; advances the slots' text decoders."""
        pcm = (out.pcm.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).cpu().numpy()
        floors = out.floor.tolist()
        texts = out.text.tolist()
        tools = out.tool.tolist()
        results = {}
        for row, slot in enumerate(out.slots.tolist()):
            results[slot] = SlotResult(
                floor=FLOOR_STATES[floors[row]],
                text=self._decoders[slot].push(texts[row]),
                tool_call=self._tool_call(tools[row]),
                pcm=pcm[row].astype("<i2").tobytes(),
            )
        return results

    def _tool_call(self, tokens: list[int]) -> ToolCall | None:
        if not tokens or tokens[0] == SPECIAL.PAD:
            return None
        parsed = self.tokenizer.parse_tool_call(tokens)
        if parsed is None:
            return None
        name, raw = parsed
        try:
            args = json.loads(raw)
        except json.JSONDecodeError:
            args = None
        return ToolCall(name=name, arguments=args if isinstance(args, dict) else None, raw=raw)
