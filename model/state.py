"""Per-call streaming state, allocated once for `max_slots` calls.

Everything a call carries from one 200 ms micro-turn to the next lives here, in fixed-size tensors
indexed by slot: the KV cache (a pinned prefix for the call's configuration plus a ring buffer over
the last `window` stream positions), the caller-audio analysis history, the vocoder's convolution
history and overlap-add tail, the agent's previous output (fed back as input), the sampling
settings and the counter-based RNG position, and (checkpoints with a reply prompter,
model.prompter) the reply the agent is to voice with its cursor. A call of any length uses the same
bytes.

`reset(slots)` returns slots to the state of a new call. Nothing here runs the model; the model
(model.interaction) reads and writes these tensors in place for the slots it steps.

Shape key: L layers, S slots, K kv heads, P prefix, W window, Dh head width, F frames per
micro-turn, M mel bins, N text tokens per micro-turn, R reply bytes (max_reply_bytes, 0 without a
prompter).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from model.config import ModelConfig
from model.protocol import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, FLOOR_STATES
from model.tokenizer import SPECIAL

LISTEN = FLOOR_STATES.index("listen")


def slot_index(slots: torch.Tensor | list[int] | int, max_slots: int, device: torch.device) -> torch.Tensor:
    """Normalise a slot selection (bool mask [S], index list or one index) to sorted unique indices."""
    if isinstance(slots, int):
        slots = [slots]
    t = torch.as_tensor(slots, device=device)
    if t.dtype == torch.bool:
        if t.shape != (max_slots,):
            raise ValueError(f"slot mask has shape {tuple(t.shape)}, expected ({max_slots},)")
        return t.nonzero().flatten()
    if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or t.dim() > 1:
        raise ValueError(
            f"slots must be a bool mask or a list of integer indices, got {t.dtype} {tuple(t.shape)}"
        )
    t = t.flatten().long()
    bad = t[(t < 0) | (t >= max_slots)]
    if bad.numel():
        raise ValueError(f"slot index {bad[0].item()} out of range [0, {max_slots})")
    return t.unique(sorted=True)


def initial_feedback(cfg: ModelConfig, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """What a call's first micro-turn reads as "the agent's previous output": listening, no text
    (EOT at once), no tool call, silent dMel. Streaming (`StreamState.reset`) and teacher forcing
    (`InteractionModel.forward`) both start from this, so they agree from the first micro-turn."""
    text = torch.full((cfg.max_text_tokens,), SPECIAL.PAD, dtype=torch.int64, device=device)
    text[0] = SPECIAL.EOT
    return {
        "prev_floor": torch.tensor(LISTEN, dtype=torch.int64, device=device),
        "prev_text": text,
        "prev_tool": torch.full((cfg.max_tool_tokens,), SPECIAL.PAD, dtype=torch.int64, device=device),
        "prev_audio": torch.zeros(cfg.frames_per_turn, cfg.n_mels, dtype=torch.int64, device=device),
    }


@dataclass
class StreamState:
    cfg: ModelConfig
    max_slots: int
    k_prefix: torch.Tensor  # [L, S, K, P, Dh]
    v_prefix: torch.Tensor  # [L, S, K, P, Dh]
    prefix_len: torch.Tensor  # [S] int64
    k_window: torch.Tensor  # [L, S, K, W, Dh]
    v_window: torch.Tensor  # [L, S, K, W, Dh]
    window_pos: torch.Tensor  # [S, W] int64: stream position held in each ring entry, -1 empty
    stream_len: torch.Tensor  # [S] int64: next stream position
    turns: torch.Tensor  # [S] int64: micro-turns stepped since reset
    mel_history: torch.Tensor  # [S, win - hop] float32: caller audio before this micro-turn
    vocoder_conv: torch.Tensor  # [S, layers, kernel - 1, vocoder_dim]
    vocoder_ola: torch.Tensor  # [S, n_fft - hop]
    prev_floor: torch.Tensor  # [S] int64
    prev_text: torch.Tensor  # [S, N] int64
    prev_tool: torch.Tensor  # [S, max_tool_tokens] int64
    prev_audio: torch.Tensor  # [S, F, M] int64 dMel levels
    seed: torch.Tensor  # [S] int64
    counter: torch.Tensor  # [S] int64
    temperature: torch.Tensor  # [S] float32, <= 0 means greedy
    top_p: torch.Tensor  # [S] float32
    reply: torch.Tensor  # [S, R] int64: the reply's bytes, PAD after (R = 0 without a prompter)
    reply_len: torch.Tensor  # [S] int64: bytes in the reply
    reply_pos: torch.Tensor  # [S] int64: the cursor, bytes of the reply already said

    @classmethod
    def allocate(
        cls,
        cfg: ModelConfig,
        max_slots: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> StreamState:
        if not isinstance(max_slots, int) or max_slots <= 0:
            raise ValueError(f"max_slots={max_slots!r} must be a positive integer")
        dev = torch.device(device)
        s, c = max_slots, cfg
        kv_prefix = (c.n_layers, s, c.n_kv_heads, c.max_prefix, c.head_dim)
        kv_window = (c.n_layers, s, c.n_kv_heads, c.window, c.head_dim)

        def z(*shape, dt=torch.float32):
            return torch.zeros(shape, dtype=dt, device=dev)

        state = cls(
            cfg=cfg,
            max_slots=s,
            k_prefix=z(*kv_prefix, dt=dtype),
            v_prefix=z(*kv_prefix, dt=dtype),
            prefix_len=z(s, dt=torch.int64),
            k_window=z(*kv_window, dt=dtype),
            v_window=z(*kv_window, dt=dtype),
            window_pos=z(s, c.window, dt=torch.int64),
            stream_len=z(s, dt=torch.int64),
            turns=z(s, dt=torch.int64),
            mel_history=z(s, c.win_length - c.hop_length),
            vocoder_conv=z(s, c.vocoder_layers, c.vocoder_kernel - 1, c.vocoder_dim),
            vocoder_ola=z(s, c.vocoder_n_fft - c.hop_length),
            prev_floor=z(s, dt=torch.int64),
            prev_text=z(s, c.max_text_tokens, dt=torch.int64),
            prev_tool=z(s, c.max_tool_tokens, dt=torch.int64),
            prev_audio=z(s, c.frames_per_turn, c.n_mels, dt=torch.int64),
            seed=torch.arange(s, dtype=torch.int64, device=dev),
            counter=z(s, dt=torch.int64),
            temperature=torch.full((s,), DEFAULT_TEMPERATURE, device=dev),
            top_p=torch.full((s,), DEFAULT_TOP_P, device=dev),
            reply=z(s, c.max_reply_bytes if c.prompter_bytes else 0, dt=torch.int64),
            reply_len=z(s, dt=torch.int64),
            reply_pos=z(s, dt=torch.int64),
        )
        state.reset(torch.ones(s, dtype=torch.bool, device=dev))
        return state

    @property
    def device(self) -> torch.device:
        return self.k_window.device

    def slots(self, selection: torch.Tensor | list[int] | int) -> torch.Tensor:
        return slot_index(selection, self.max_slots, self.device)

    def reset(self, selection: torch.Tensor | list[int] | int, seed: int | list[int] | None = None) -> None:
        """Return the selected slots to the state of a new call (prefix included)."""
        idx = self.slots(selection)
        for name in ("k_prefix", "v_prefix", "k_window", "v_window"):
            getattr(self, name)[:, idx] = 0
        for name in (
            "prefix_len",
            "stream_len",
            "turns",
            "mel_history",
            "vocoder_conv",
            "vocoder_ola",
            "counter",
            "reply_len",
            "reply_pos",
        ):
            getattr(self, name)[idx] = 0
        self.window_pos[idx] = -1
        self.reply[idx] = SPECIAL.PAD
        for name, value in initial_feedback(self.cfg, self.device).items():
            getattr(self, name)[idx] = value
        if seed is not None:
            self.set_sampling(idx, seed=seed)

    def set_sampling(
        self,
        selection: torch.Tensor | list[int] | int,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | list[int] | None = None,
    ) -> None:
        idx = self.slots(selection)
        if temperature is not None:
            if not temperature >= 0:
                raise ValueError(f"temperature={temperature!r} must be >= 0 (0 is greedy)")
            self.temperature[idx] = float(temperature)
        if top_p is not None:
            if not 0 < top_p <= 1:
                raise ValueError(f"top_p={top_p!r} must be in (0, 1]")
            self.top_p[idx] = float(top_p)
        if seed is not None:
            seeds = torch.as_tensor(seed, dtype=torch.int64, device=self.device) & 0xFFFFFFFF
            self.seed[idx] = seeds
            self.counter[idx] = 0

    def nbytes(self) -> int:
        return sum(
            getattr(self, f.name).numel() * getattr(self, f.name).element_size()
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
