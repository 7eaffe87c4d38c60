"""Model configuration: one frozen dataclass with named presets.

`ModelConfig` holds every size of the interaction model: the backbone (a decoder-only transformer
whose feed-forward layers are Mixture-of-Experts), the audio front end (dMel), the output heads and
the streaming vocoder. Derived values are computed in `__post_init__`; every check names the field
it is about. This module knows nothing about tensors.

Time: one micro-turn is 200 ms = 3200 samples at 16 kHz, cut into `frames_per_turn` hops of
`hop_length` samples. Caller audio enters as dMel frames at that hop; agent audio leaves as dMel
frames at the same hop and the vocoder turns them into exactly 3200 samples per micro-turn.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from model.protocol import EVENT_KINDS, FRAME_SAMPLES, LEGACY_EVENT_KINDS

MICRO_TURN_SAMPLES = FRAME_SAMPLES
EVENT_REPRS = ("bytes", "words")


def _fail(name: str, value: Any, why: str) -> None:
    raise ValueError(f"ModelConfig.{name}={value!r}: {why}")


@dataclass(frozen=True)
class ModelConfig:
    # Backbone
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    n_experts: int = 4
    top_k: int = 2
    d_expert: int = 128  # hidden width of one expert's SwiGLU
    shared_expert: bool = True  # one always-on expert of width d_expert beside the routed ones
    rope_base: float = 10_000.0
    norm_eps: float = 1e-5
    router_jitter: float = 0.0

    # Streaming memory
    window: int = 32  # stream positions (micro-turns + event tokens) each position attends to
    max_prefix: int = 64  # pinned call-configuration tokens kept for the whole call
    max_event_tokens: int = 16  # event tokens injected in one step, at most (< window)

    # Audio (16 kHz, 200 ms micro-turns)
    hop_length: int = 320  # 20 ms per dMel frame
    win_length: int = 640  # analysis window of caller dMel (causal: ends at the frame's hop)
    n_mels: int = 80
    dmel_levels: int = 16
    dmel_min: float = -11.5  # natural-log mel magnitude clamped to [dmel_min, dmel_max]
    dmel_max: float = 2.5
    d_frame: int = 32  # per-frame embedding width of the dMel lookup tables

    # Text
    vocab_size: int = 272  # 256 bytes + 16 special tokens (model.tokenizer)
    max_text_tokens: int = 8  # agent text tokens per micro-turn
    max_tool_tokens: int = 64  # tool-call text (name + JSON arguments) in one micro-turn
    # The event kinds the checkpoint was trained to read (model.protocol.EVENT_KINDS): its Ready
    # names them, and a gateway sends the call no others.
    event_kinds: tuple[str, ...] = LEGACY_EVENT_KINDS
    # How an event enters the stream. "bytes": one stream position per payload byte between its
    # marker and EVENT_END, at most `max_event_tokens` positions a tick (the checkpoints before
    # the background model). "words": one position per event, its marker plus the mean of its
    # hashed words (model.tokenizer.event_word_ids: `event_words` at most, `event_buckets` ids),
    # at most `max_event_tokens` events a tick.
    event_repr: str = "bytes"
    event_words: int = 48
    event_buckets: int = 8192
    # The reply the agent is to voice (the background model's `reply` events): `prompter_bytes`
    # > 0 shows each micro-turn the next that many bytes not yet said (a new reply replaces what
    # is left of the last; model.tokenizer.prompter_advance moves the cursor by what the agent
    # wrote); the text decoder attends to them. Replies keep `max_reply_bytes` at most.
    prompter_bytes: int = 0
    max_reply_bytes: int = 1024

    # Depth decoders (within one micro-turn: text tokens, tool text, audio frames)
    d_depth: int = 128
    # The audio decoder reads the text it voices in order: each frame attends to the bytes written
    # in the previous micro-turn and this one, with their positions (without it, it gets their
    # bag, the same for "no" and "on"; model.prompter.ByteReader).
    audio_reads_text: bool = False

    # Vocoder (frame-rate, iSTFT; Vocos-like but causal)
    vocoder_n_fft: int = 1280
    vocoder_dim: int = 128
    vocoder_layers: int = 3
    vocoder_kernel: int = 3

    # Derived (set in __post_init__)
    head_dim: int = field(init=False)
    frames_per_turn: int = field(init=False)
    micro_turn_samples: int = field(init=False)

    def __post_init__(self) -> None:
        positive = (
            "n_layers d_model n_heads n_kv_heads n_experts top_k d_expert window max_prefix "
            "max_event_tokens hop_length win_length n_mels dmel_levels d_frame vocab_size "
            "max_text_tokens max_tool_tokens d_depth vocoder_n_fft vocoder_dim vocoder_layers "
            "vocoder_kernel event_words event_buckets max_reply_bytes"
        ).split()
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                _fail(name, value, "must be a positive integer")
        if self.d_model % self.n_heads:
            _fail("d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            _fail("n_kv_heads", self.n_kv_heads, f"must divide n_heads={self.n_heads}")
        head_dim = self.d_model // self.n_heads
        if head_dim % 2:
            _fail("n_heads", self.n_heads, f"gives an odd head_dim={head_dim}; RoPE needs it even")
        if self.max_event_tokens >= self.window:
            _fail("max_event_tokens", self.max_event_tokens, f"must be < window={self.window}")
        if self.top_k > self.n_experts:
            _fail("top_k", self.top_k, f"must be <= n_experts={self.n_experts}")
        if MICRO_TURN_SAMPLES % self.hop_length:
            _fail("hop_length", self.hop_length, f"must divide {MICRO_TURN_SAMPLES} samples")
        if self.win_length < self.hop_length:
            _fail("win_length", self.win_length, f"must be >= hop_length={self.hop_length}")
        if self.vocoder_n_fft < self.hop_length or self.vocoder_n_fft % self.hop_length:
            _fail("vocoder_n_fft", self.vocoder_n_fft, f"must be a multiple of hop_length={self.hop_length}")
        if self.vocoder_n_fft // 2 + 1 < self.n_mels:
            _fail("vocoder_n_fft", self.vocoder_n_fft, f"too small for n_mels={self.n_mels}")
        if not 2 <= self.dmel_levels <= 256:
            _fail("dmel_levels", self.dmel_levels, "must be in [2, 256]")
        if not self.dmel_min < self.dmel_max:
            _fail("dmel_max", self.dmel_max, f"must be > dmel_min={self.dmel_min}")
        if self.vocab_size < 272:
            _fail("vocab_size", self.vocab_size, "must hold 256 bytes and 16 special tokens (272)")
        object.__setattr__(self, "event_kinds", tuple(self.event_kinds))  # JSON gives a list
        unknown = sorted(set(self.event_kinds) - set(EVENT_KINDS))
        if unknown:
            _fail("event_kinds", self.event_kinds, f"unknown kinds {', '.join(unknown)}")
        if self.event_repr not in EVENT_REPRS:
            _fail("event_repr", self.event_repr, f"must be one of {', '.join(EVENT_REPRS)}")
        if isinstance(self.prompter_bytes, bool) or not isinstance(self.prompter_bytes, int):
            _fail("prompter_bytes", self.prompter_bytes, "must be an integer")
        if not 0 <= self.prompter_bytes <= self.max_reply_bytes:
            _fail(
                "prompter_bytes",
                self.prompter_bytes,
                f"must be in [0, max_reply_bytes={self.max_reply_bytes}]",
            )
        if self.prompter_bytes and self.event_repr != "words":
            _fail("prompter_bytes", self.prompter_bytes, 'needs event_repr="words"')
        if self.rope_base <= 1.0:
            _fail("rope_base", self.rope_base, "must be > 1")
        if not 0.0 <= self.router_jitter < 1.0:
            _fail("router_jitter", self.router_jitter, "must be in [0, 1)")
        object.__setattr__(self, "head_dim", head_dim)
        object.__setattr__(self, "frames_per_turn", MICRO_TURN_SAMPLES // self.hop_length)
        object.__setattr__(self, "micro_turn_samples", MICRO_TURN_SAMPLES)

    # -- presets and serialisation -------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str) -> ModelConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**PRESETS[name])

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # -- sizes, computed without building the model -------------------------------------------

    def kv_bytes_per_slot(self, bytes_per_value: int = 4) -> int:
        """Key and value cache of one slot: pinned prefix plus the sliding window, every layer."""
        per_position = 2 * self.n_kv_heads * self.head_dim * bytes_per_value
        return self.n_layers * (self.max_prefix + self.window) * per_position


PRESETS: dict[str, dict[str, Any]] = {
    # Tests: random weights, a few milliseconds per step.
    "tiny": dict(
        n_layers=2,
        d_model=64,
        n_heads=4,
        n_kv_heads=2,
        n_experts=4,
        top_k=2,
        d_expert=128,
        window=32,
        max_prefix=64,
        d_frame=16,
        d_depth=64,
        vocoder_dim=64,
        vocoder_layers=2,
    ),
    # The shipped model: real time for 8+ calls on a 2-core CPU, < 100 MB as bf16 safetensors.
    "small": dict(
        n_layers=6,
        d_model=384,
        n_heads=6,
        n_kv_heads=2,
        n_experts=8,
        top_k=2,
        d_expert=512,
        window=64,
        max_prefix=96,
        d_frame=32,
        d_depth=256,
        vocoder_dim=256,
        vocoder_layers=3,
    ),
    # GPU capacity work: >= 1B parameters in total.
    "large": dict(
        n_layers=16,
        d_model=1536,
        n_heads=12,
        n_kv_heads=4,
        n_experts=16,
        top_k=2,
        d_expert=1536,
        window=128,
        max_prefix=256,
        d_frame=64,
        d_depth=512,
        vocoder_dim=512,
        vocoder_layers=4,
    ),
    # GPU capacity work: >= 1B parameters active per position.
    "xl": dict(
        n_layers=20,
        d_model=2048,
        n_heads=16,
        n_kv_heads=4,
        n_experts=8,
        top_k=2,
        d_expert=4096,
        window=128,
        max_prefix=256,
        d_frame=64,
        d_depth=512,
        vocoder_dim=512,
        vocoder_layers=4,
    ),
}
# The shipped model's sizes, reading events as words and voicing the background model's replies
# through a prompter: warm-started from `small` (model.checkpoint.warm_start).
PRESETS["small2"] = dict(PRESETS["small"], event_repr="words", prompter_bytes=24, event_kinds=EVENT_KINDS)
# small2 whose audio decoder reads the text it voices in order: warm-started from a small2 run.
PRESETS["small3"] = dict(PRESETS["small2"], audio_reads_text=True)
