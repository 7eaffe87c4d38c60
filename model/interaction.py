"""The full-duplex interaction model: inputs fused per micro-turn, the MoE backbone, output heads.

What it reads and writes per 200 ms micro-turn: README.md "The interaction model". Within a
micro-turn two small depth decoders (GRUs) run over the text tokens and over the audio frames, so
tokens and frames inside one micro-turn depend on each other.

Two entry points compute the same function:
- `forward(batch)`: teacher forcing over whole sequences (training, evaluation, tests);
- `step(state, inputs, exec_mask)`: one micro-turn for the selected slots of a `StreamState`
  (serving). Slots not selected are not read for their outputs and not written at all.

The model holds weights only; per-call state lives in model.state. It knows nothing about
telephony, sessions or tools beyond the tokens it reads and writes.

Shape key: S slots, B stepped slots (or batch), T stream positions, P prefix, F frames per
micro-turn, M mel bins, L dMel levels, N text tokens per micro-turn, V vocabulary, D model width,
Dd depth-decoder width, W hashed words of an event, Np reply-prompter bytes.

Events enter the stream as `ModelConfig.event_repr` says: "bytes" (the checkpoints before the
background model), one position per token (marker, payload bytes, EVENT_END); "words", one position
per event, its marker plus the mean embedding of its hashed words. With `prompter_bytes` > 0 the
micro-turns also read the reply the agent is to voice (model.prompter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from model.backbone import Backbone, LayerCache
from model.config import MICRO_TURN_SAMPLES, ModelConfig
from model.dmel import DMel
from model.prompter import ByteReader, Memory, ReplyPrompter, advance, reply_window
from model.protocol import FLOOR_STATES
from model.sampling import sample, sample_decision, sample_until, uniform
from model.state import StreamState, initial_feedback
from model.tokenizer import EVENT_MARKERS, N_BYTES, SPECIAL, ByteTokenizer, event_word_ids, reply_bytes
from model.vocoder import Vocoder

KIND_PAD, KIND_EVENT, KIND_TURN = 0, 1, 2
_TOKENIZER = ByteTokenizer()  # a words-mode event's payload bytes back to text
N_FLOOR = len(FLOOR_STATES)


@dataclass
class Batch:
    """A teacher-forced batch. Stream positions are right-padded (kind 0)."""

    prefix: torch.Tensor  # [B, P] int64, PAD-padded
    prefix_len: torch.Tensor  # [B]
    kind: torch.Tensor  # [B, T] int64: 0 pad, 1 event token, 2 micro-turn
    token: torch.Tensor  # [B, T] int64: event token at event positions
    caller: torch.Tensor  # [B, T, F, M] int64: caller dMel levels at micro-turn positions
    floor: torch.Tensor  # [B, T] int64: agent floor state at micro-turn positions
    text: torch.Tensor  # [B, T, N] int64: agent text tokens (EOT then PAD)
    tool: torch.Tensor  # [B, T, Ntool] int64: tool-call text (PAD when none)
    audio: torch.Tensor  # [B, T, F, M] int64: agent dMel levels
    event_words: torch.Tensor | None = None  # [B, T, W] int64 hashed word ids at event positions, 0 pad
    prompter: torch.Tensor | None = None  # [B, T, Np] int64 at micro-turns: the reply not yet said, PAD after


@dataclass
class Outputs:
    hidden: torch.Tensor  # [B, T, D]
    floor_logits: torch.Tensor  # [B, T, 4]
    tool_logits: torch.Tensor  # [B, T, 2]
    text_logits: torch.Tensor  # [B, T, N, V]
    audio_logits: torch.Tensor  # [B, T, F, M, L]
    tool_positions: torch.Tensor  # [Q, 2] (batch, position) of micro-turns with a tool call
    tool_text_logits: torch.Tensor  # [Q, Ntool, V]
    balance_loss: torch.Tensor  # scalar
    prev_floor: torch.Tensor  # [B, T] the true previous floor state (before any feedback noise)


@dataclass
class OwnOutputs:
    """The model's own samples at every stream position (`InteractionModel.own_outputs`)."""

    mask: torch.Tensor  # [B, T] bool: micro-turns whose fed-back outputs are these
    floor: torch.Tensor  # [B, T]
    text: torch.Tensor  # [B, T, max_text_tokens]: bytes, then EOT, then PAD
    audio: torch.Tensor  # [B, T, F, M] dMel levels


@dataclass
class StepInputs:
    """One micro-turn of input for every slot; rows of slots not stepped are ignored.

    `events` maps a slot to what enters its stream before this micro-turn. "bytes" checkpoints:
    event tokens (ByteTokenizer.encode_event, cut anywhere), at most `max_event_tokens`. "words"
    checkpoints: whole events, each `[marker, *payload UTF-8 bytes]`
    (ByteTokenizer.encode_event_words), at most `max_event_tokens` events."""

    audio: torch.Tensor  # [S, 3200] int16 PCM or float32 in [-1, 1]
    events: dict[int, list] = field(default_factory=dict)  # slot -> event tokens, or events


@dataclass
class StepOutput:
    slots: torch.Tensor  # [B] which slots these rows belong to
    floor: torch.Tensor  # [B] int64 index into FLOOR_STATES
    text: torch.Tensor  # [B, N] int64 (EOT, then PAD)
    tool: torch.Tensor  # [B, Ntool] int64 (PAD when no tool call)
    audio: torch.Tensor  # [B, F, M] int64 dMel levels
    pcm: torch.Tensor  # [B, 3200] float32 agent audio
    caller: torch.Tensor  # [B, F, M] int64 caller dMel levels the model read
    hidden: torch.Tensor  # [B, D]
    floor_logits: torch.Tensor  # [B, 4]
    tool_logits: torch.Tensor  # [B, 2]
    text_logits: torch.Tensor  # [B, N, V] (rows after the EOT are not computed: zeros)
    audio_logits: torch.Tensor  # [B, F, M, L]
    tool_text_logits: torch.Tensor  # [B, Ntool, V] zeros where no tool call


class FrameEmbedding(nn.Module):
    """dMel levels [..., F, M] -> [..., D]: one table lookup per bin, summed, frames concatenated."""

    def __init__(self, cfg: ModelConfig, d_out: int) -> None:
        super().__init__()
        self.levels = cfg.dmel_levels
        self.table = nn.Embedding(cfg.n_mels * cfg.dmel_levels, cfg.d_frame)
        self.proj = nn.Linear(cfg.frames_per_turn * cfg.d_frame, d_out)
        self.register_buffer("offset", torch.arange(cfg.n_mels) * cfg.dmel_levels, persistent=False)

    def frames(self, levels: torch.Tensor) -> torch.Tensor:
        """[..., M] -> [..., d_frame]"""
        return self.table(levels + self.offset).sum(dim=-2)

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        return self.proj(self.frames(levels).flatten(-2))


class InteractionModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, d, dd = cfg, cfg.d_model, cfg.d_depth
        self.dmel = DMel(cfg)
        self.vocoder = Vocoder(cfg)
        # Input fusion
        self.kind_emb = nn.Embedding(3, d)  # prefix, event, micro-turn
        self.tok_emb = nn.Embedding(c.vocab_size, d)
        self.caller_in = FrameEmbedding(cfg, d)
        self.agent_in = FrameEmbedding(cfg, d)
        self.text_in = nn.Embedding(c.vocab_size, d)
        self.text_in_pos = nn.Parameter(torch.randn(c.max_text_tokens, d) * 0.02)
        self.tool_in = nn.Embedding(c.vocab_size, d)
        self.floor_in = nn.Embedding(N_FLOOR, d)
        self.backbone = Backbone(cfg)
        # Heads
        self.floor_head = nn.Linear(d, N_FLOOR)
        self.tool_head = nn.Linear(d, 2)
        self.depth_cond = nn.Linear(d, dd)
        self.depth_floor = nn.Embedding(N_FLOOR, dd)
        self.depth_tok = nn.Embedding(c.vocab_size, dd)
        self.text_gru = nn.GRU(dd, dd, batch_first=True)
        self.text_out = nn.Linear(dd, c.vocab_size)
        self.audio_cond = nn.Linear(d, dd)
        self.audio_text = nn.Embedding(c.vocab_size, dd)
        self.audio_frame = nn.Embedding(c.n_mels * c.dmel_levels, dd)
        self.audio_gru = nn.GRU(dd, dd, batch_first=True)
        self.audio_out = nn.Linear(dd, c.n_mels * c.dmel_levels)
        self.register_buffer("bin_offset", torch.arange(c.n_mels) * c.dmel_levels, persistent=False)
        # Built after every legacy module, so a seed gives those the same weights in any mode.
        if c.event_repr == "words":
            self.event_words = nn.EmbeddingBag(c.event_buckets + 1, d, mode="mean", padding_idx=0)
        if c.prompter_bytes:
            self.prompter = ReplyPrompter(cfg)
        if c.audio_reads_text:  # the text it voices: the previous micro-turn's and this one's
            self.audio_reader = ByteReader(2 * c.max_text_tokens, c.vocab_size, dd)
        self.apply(self._init)
        if c.prompter_bytes:
            self.prompter.silence()
        if c.audio_reads_text:
            self.audio_reader.silence()

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features**-0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            nn.init.normal_(m.weight, std=0.02)

    # -- sizes ---------------------------------------------------------------------------------

    def parameter_counts(self) -> tuple[int, int]:
        """(total, active per micro-turn position)."""
        total = sum(p.numel() for p in self.parameters())
        inactive = 0
        for blk in self.backbone.blocks:
            moe = blk.moe
            per_expert = moe.w1[0].numel() + moe.w3[0].numel() + moe.w2[0].numel()
            inactive += (moe.n_experts - moe.top_k) * per_expert
        return total, total - inactive

    # -- input fusion --------------------------------------------------------------------------

    def _turn_embedding(
        self, caller, prev_floor, prev_text, prev_tool, prev_audio, window=None
    ) -> torch.Tensor:
        """Micro-turn input: caller dMel + the agent's previous output (+ the prompter's window
        [.., Np] of the reply not yet said). [..] -> [.., D]"""
        text_mask = (prev_text != SPECIAL.PAD).unsqueeze(-1)
        text = ((self.text_in(prev_text) + self.text_in_pos) * text_mask).sum(dim=-2)
        tool_mask = (prev_tool != SPECIAL.PAD).unsqueeze(-1)
        tool = (self.tool_in(prev_tool) * tool_mask).sum(dim=-2)
        x = (
            self.kind_emb.weight[KIND_TURN]
            + self.caller_in(caller)
            + self.agent_in(prev_audio)
            + text
            + tool
            + self.floor_in(prev_floor)
        )
        return x if window is None else x + self.prompter.embed(window)

    def _event_embedding(self, tokens: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Event positions: kind + token [..] (+ the mean of hashed words [.., W], "words")."""
        x = self.kind_emb.weight[KIND_EVENT] + self.tok_emb(tokens)
        if words is None:
            return x
        return x + self.event_words(words.reshape(-1, words.shape[-1])).view(x.shape)

    def _prefix_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.kind_emb.weight[0] + self.tok_emb(tokens)

    # -- depth decoders ------------------------------------------------------------------------

    def _depth_context(self, h: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.depth_cond(h) + self.depth_floor(floor)  # [.., Dd]
        return cond, torch.tanh(cond)

    def _audio_context(self, h: torch.Tensor, floor: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        words = (text < 256).unsqueeze(-1)  # bytes only
        bag = (self.audio_text(text) * words).sum(dim=-2)
        return torch.tanh(self.audio_cond(h) + self.depth_floor(floor) + bag)

    def _frame_input(self, levels: torch.Tensor) -> torch.Tensor:
        """[.., M] -> [.., Dd]"""
        return self.audio_frame(levels + self.bin_offset).sum(dim=-2)

    # -- teacher-forced forward ----------------------------------------------------------------

    def forward(self, batch: Batch, feedback_noise: float = 0.0, own: OwnOutputs | None = None) -> Outputs:
        """Teacher-forced pass. `feedback_noise` (training only) corrupts that share of the fed-back
        previous outputs, each kind independently per micro-turn: the floor becomes a random state,
        the text is dropped, the dMel levels move by up to +-2. Served, the model reads its own
        sampled outputs, which are never as clean as the references; trained only on clean ones it
        learns to copy its previous floor and stalls on its first imperfect output. `own` (training
        only, from `own_outputs`) replaces the fed-back outputs of the micro-turns it marks with
        the model's own samples, before any noise; the targets stay the references."""
        c = self.cfg
        b, t = batch.kind.shape
        dev = batch.kind.device
        is_turn = batch.kind == KIND_TURN
        words, window = self._batch_extras(batch)
        # Feedback: each micro-turn reads the agent output of the previous micro-turn position.
        ar = torch.arange(t, device=dev).expand(b, t)
        last_turn = torch.where(is_turn, ar, torch.full_like(ar, -1)).cummax(dim=1).values
        prev = torch.cat([torch.full_like(last_turn[:, :1], -1), last_turn[:, :-1]], dim=1)  # [B, T]
        has_prev = prev >= 0
        pi = prev.clamp_min(0)

        def take(x: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
            g = x.gather(1, pi.view(b, t, *([1] * (x.dim() - 2))).expand(b, t, *x.shape[2:]))
            return torch.where(has_prev.view(b, t, *([1] * (x.dim() - 2))), g, initial.to(x.dtype))

        initial = initial_feedback(c, dev)
        true_prev_floor = take(batch.floor, initial["prev_floor"])
        fed_floor, fed_text, fed_audio = batch.floor, batch.text, batch.audio
        if own is not None:
            m = own.mask
            fed_floor = torch.where(m, own.floor, fed_floor)
            fed_text = torch.where(m[..., None], own.text, fed_text)
            fed_audio = torch.where(m[..., None, None], own.audio, fed_audio)
        prev_floor = take(fed_floor, initial["prev_floor"])
        prev_text = take(fed_text, initial["prev_text"])
        prev_tool = take(batch.tool, initial["prev_tool"])
        prev_audio = take(fed_audio, initial["prev_audio"])
        if feedback_noise > 0:

            def hit() -> torch.Tensor:
                return torch.rand(b, t, device=dev) < feedback_noise

            prev_floor = torch.where(hit(), torch.randint_like(prev_floor, N_FLOOR), prev_floor)
            prev_text = torch.where(hit()[..., None], initial["prev_text"].to(prev_text.dtype), prev_text)
            jitter = torch.randint_like(prev_audio, -2, 3) * hit()[..., None, None]
            prev_audio = (prev_audio + jitter).clamp(0, c.dmel_levels - 1)

        x_turn = self._turn_embedding(batch.caller, prev_floor, prev_text, prev_tool, prev_audio, window)
        x_event = self._event_embedding(batch.token, words)
        x = torch.where(is_turn.unsqueeze(-1), x_turn, x_event)  # [B, T, D]
        p = batch.prefix.shape[1]
        prefix_valid = torch.arange(p, device=dev)[None] < batch.prefix_len[:, None]
        hidden, balance = self.backbone.forward_full(
            self._prefix_embedding(batch.prefix), prefix_valid, x, batch.kind != KIND_PAD
        )

        floor_logits = self.floor_head(hidden)
        tool_logits = self.tool_head(hidden)
        # Text depth decoder over every position (only micro-turn positions are meaningful).
        cond, h0 = self._depth_context(hidden, batch.floor)  # [B, T, Dd]
        n = c.max_text_tokens
        text_in = torch.cat([torch.full_like(batch.text[..., :1], SPECIAL.BOS), batch.text[..., :-1]], -1)
        seq = self.depth_tok(text_in) + cond.unsqueeze(-2)  # [B, T, N, Dd]
        out, _ = self.text_gru(seq.reshape(b * t, n, -1), h0.reshape(1, b * t, -1))
        if window is not None:
            # The copy path, only where a micro-turn has reply bytes to read (elsewhere it adds 0).
            rows = (is_turn & (window < N_BYTES).any(dim=-1)).flatten()  # [B*T]
            out = self.prompter.read(out, window.flatten(0, 1), rows)
        text_logits = self.text_out(out).view(b, t, n, -1)
        # Tool text only where a tool call is made.
        tool_positions = (is_turn & (batch.tool[..., 0] != SPECIAL.PAD)).nonzero()  # [Q, 2]
        tq = batch.tool[tool_positions[:, 0], tool_positions[:, 1]]  # [Q, Ntool]
        tool_in = torch.cat([torch.full_like(tq[:, :1], SPECIAL.TOOL), tq[:, :-1]], -1)
        cq = cond[tool_positions[:, 0], tool_positions[:, 1]]
        hq = h0[tool_positions[:, 0], tool_positions[:, 1]]
        if tq.shape[0]:
            out, _ = self.text_gru(self.depth_tok(tool_in) + cq.unsqueeze(1), hq.unsqueeze(0).contiguous())
            tool_text_logits = self.text_out(out)
        else:
            tool_text_logits = hidden.new_zeros(0, c.max_tool_tokens, c.vocab_size)
        # Audio depth decoder over frames; frame -1 is the last frame of the previous micro-turn.
        a0 = self._audio_context(hidden, batch.floor, batch.text)  # [B, T, Dd]
        frames_in = torch.cat([prev_audio[..., -1:, :], batch.audio[..., :-1, :]], dim=-2)  # [B, T, F, M]
        fq = self._frame_input(frames_in)  # [B, T, F, Dd]
        nf = c.frames_per_turn
        out, _ = self.audio_gru(fq.reshape(b * t, nf, -1), a0.reshape(1, b * t, -1))
        if c.audio_reads_text:
            voiced = torch.cat([prev_text, batch.text], dim=-1).flatten(0, 1)  # [B*T, 2N]
            rows = is_turn.flatten() & (voiced < N_BYTES).any(dim=-1)
            out = self.audio_reader.read(out, voiced, rows)
        audio_logits = self.audio_out(out).view(b, t, nf, c.n_mels, c.dmel_levels)
        return Outputs(
            hidden,
            floor_logits,
            tool_logits,
            text_logits,
            audio_logits,
            tool_positions,
            tool_text_logits,
            balance,
            true_prev_floor,
        )

    def _batch_extras(self, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(event_words, prompter) of a batch, each None where the config does not read it;
        refuses a batch that lacks what the config reads."""
        c = self.cfg
        b, t = batch.kind.shape
        words = window = None
        if c.event_repr == "words":
            words = batch.event_words
            if words is None or words.dim() != 3 or tuple(words.shape[:2]) != (b, t):
                got = None if words is None else tuple(words.shape)
                raise ValueError(f'Batch.event_words is {got}; event_repr="words" needs [B={b}, T={t}, W]')
        if c.prompter_bytes:
            window = batch.prompter
            if window is None or tuple(window.shape) != (b, t, c.prompter_bytes):
                got = None if window is None else tuple(window.shape)
                raise ValueError(
                    f"Batch.prompter is {got}; prompter_bytes needs [{b}, {t}, {c.prompter_bytes}]"
                )
        return words, window

    @torch.no_grad()
    def own_outputs(self, batch: Batch, share: float, feedback_noise: float = 0.0) -> OwnOutputs:
        """The model's own outputs at every micro-turn, sampled from one teacher-forced pass
        (parallel scheduled sampling), marked for feeding back at `share` of the micro-turns.

        Each text byte is sampled given the reference bytes before it and each dMel frame given the
        reference frames before it, so this costs one forward pass without gradients, not a
        step-by-step decode; the samples read like what the model writes served (the same
        misspelt bytes and blurred levels), which corrupting the references does not imitate."""
        out = self(batch, feedback_noise)
        floor = torch.distributions.Categorical(logits=out.floor_logits.float()).sample()
        text = torch.distributions.Categorical(logits=out.text_logits.float()).sample()  # [B, T, N]
        ended = (text == SPECIAL.EOT) | (text == SPECIAL.PAD)
        ended[..., -1] = True  # the last slot always closes the text
        first_end = ended.int().argmax(dim=-1, keepdim=True)  # [B, T, 1]
        slot = torch.arange(text.shape[-1], device=text.device)
        text = torch.where(slot < first_end, text, torch.full_like(text, SPECIAL.PAD))
        text = torch.where(slot == first_end, torch.full_like(text, SPECIAL.EOT), text)
        audio = torch.distributions.Categorical(logits=out.audio_logits.float()).sample()  # [B, T, F, M]
        mask = (batch.kind == KIND_TURN) & (torch.rand(batch.kind.shape, device=batch.kind.device) < share)
        return OwnOutputs(mask, floor, text, audio)

    # -- streaming -----------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, state: StreamState, slot: int, tokens: list[int]) -> None:
        """Pin a call's configuration tokens as the slot's prefix (replacing any earlier one)."""
        c = self.cfg
        idx = state.slots(slot)
        if len(tokens) > c.max_prefix:
            raise ValueError(f"prefix of {len(tokens)} tokens exceeds max_prefix={c.max_prefix}")
        self._check_tokens(tokens, "prefix")
        if not tokens:
            state.prefix_len[idx] = 0
            return
        x = self._prefix_embedding(torch.tensor([tokens], device=state.device))
        valid = torch.ones(1, len(tokens), dtype=torch.bool, device=state.device)
        ks, vs = self.backbone.prefix(x, valid)
        for layer, (k, v) in enumerate(zip(ks, vs)):
            state.k_prefix[layer, idx, :, : len(tokens)] = k.to(state.k_prefix.dtype)
            state.v_prefix[layer, idx, :, : len(tokens)] = v.to(state.v_prefix.dtype)
            state.k_prefix[layer, idx, :, len(tokens) :] = 0
            state.v_prefix[layer, idx, :, len(tokens) :] = 0
        state.prefix_len[idx] = len(tokens)

    def _check_tokens(self, tokens: list[int], what: str) -> None:
        for tok in tokens:
            if not isinstance(tok, int) or not 0 <= tok < self.cfg.vocab_size:
                raise ValueError(f"{what} token {tok!r} is not in [0, {self.cfg.vocab_size})")

    def _validate(self, state: StreamState, inputs: StepInputs, exec_mask) -> torch.Tensor:
        """All checks before any state is touched. Returns the stepped slot indices."""
        c = self.cfg
        idx = state.slots(exec_mask)
        audio = inputs.audio
        if not isinstance(audio, torch.Tensor):
            raise ValueError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
        if audio.dtype not in (torch.int16, torch.float32):
            raise ValueError(f"audio dtype {audio.dtype} not supported: use int16 PCM or float32 in [-1, 1]")
        if audio.dim() != 2 or audio.shape[0] != state.max_slots:
            raise ValueError(
                f"audio shape {tuple(audio.shape)}, expected ({state.max_slots}, {MICRO_TURN_SAMPLES})"
            )
        if audio.shape[1] != MICRO_TURN_SAMPLES:
            raise ValueError(
                f"audio frame length {audio.shape[1]} samples, "
                f"expected {MICRO_TURN_SAMPLES} (200 ms at 16 kHz)"
            )
        if audio.dtype == torch.float32 and idx.numel():
            rows = audio[idx.to(audio.device)]
            bad = ~torch.isfinite(rows).all(dim=1)
            if bad.any():
                slots = idx[bad.to(idx.device)].tolist()
                raise ValueError(f"audio for slot(s) {slots} contains NaN or Inf")
        chosen = set(idx.tolist())
        words = c.event_repr == "words"
        for slot, tokens in inputs.events.items():
            if not isinstance(slot, int) or not 0 <= slot < state.max_slots:
                raise ValueError(f"event slot index {slot!r} out of range [0, {state.max_slots})")
            if slot not in chosen and tokens:
                raise ValueError(f"events for slot {slot}, which is not stepped this tick")
            if len(tokens) > c.max_event_tokens:
                what = "events" if words else "event tokens"
                raise ValueError(
                    f"{len(tokens)} {what} for slot {slot}; at most {c.max_event_tokens} per step"
                )
            if words:
                self._check_events(tokens, slot)
            else:
                self._check_tokens(tokens, f"event (slot {slot})")
        return idx

    @staticmethod
    def _check_events(events: list, slot: int) -> None:
        """Words mode: each event a list `[marker, *payload bytes]` (ByteTokenizer.encode_event_words)."""
        for ev in events:
            if not isinstance(ev, (list, tuple)) or not ev:
                raise ValueError(
                    f'event for slot {slot} must be a list [marker, *payload bytes] (event_repr="words"), '
                    f"got {ev!r:.60}"
                )
            if not isinstance(ev[0], int) or ev[0] not in EVENT_MARKERS:
                raise ValueError(
                    f"event for slot {slot} starts with {ev[0]!r:.20}, not an event marker "
                    "(ByteTokenizer.encode_event_words)"
                )
            bad = next((x for x in ev[1:] if not isinstance(x, int) or not 0 <= x < N_BYTES), None)
            if bad is not None:
                raise ValueError(f"event payload token {bad!r:.20} for slot {slot} is not a byte in [0, 256)")

    def _caches(self, state: StreamState, idx: torch.Tensor, whole: bool) -> list[LayerCache]:
        if whole:
            return [
                LayerCache(state.k_prefix[i], state.v_prefix[i], state.k_window[i], state.v_window[i])
                for i in range(self.cfg.n_layers)
            ]
        return [
            LayerCache(
                state.k_prefix[i, idx], state.v_prefix[i, idx], state.k_window[i, idx], state.v_window[i, idx]
            )
            for i in range(self.cfg.n_layers)
        ]

    @torch.inference_mode()
    def step(self, state: StreamState, inputs: StepInputs, exec_mask) -> StepOutput:
        """One micro-turn for the slots in exec_mask (bool [S] or indices). Others stay untouched."""
        c = self.cfg
        idx = self._validate(state, inputs, exec_mask)
        b = idx.numel()
        dev = state.device
        if b == 0:
            return self._empty_output()
        whole = b == state.max_slots
        audio = inputs.audio.to(dev)[idx]
        if audio.dtype == torch.int16:
            audio = audio.float() / 32768.0

        # Caller audio -> dMel levels
        log_mel, mel_history = self.dmel.stream(audio, state.mel_history[idx])
        caller = self.dmel.quantize(log_mel)  # [B, F, M]

        tokens, words, valid = self._event_chunk(inputs.events, idx, dev)
        offset = (valid.long().cumsum(dim=1) - 1).clamp_min(0)
        start = state.stream_len[idx]
        pos = start[:, None] + offset  # [B, T]
        window = memory = None
        if c.prompter_bytes:
            reply, reply_len, reply_pos = self._replies(state, idx, inputs.events)
            window = reply_window(reply, reply_len, reply_pos, c.prompter_bytes)  # [B, Np]
            if bool((window < N_BYTES).any()):
                memory = self.prompter.memory(window)

        x_turn = self._turn_embedding(
            caller,
            state.prev_floor[idx],
            state.prev_text[idx],
            state.prev_tool[idx],
            state.prev_audio[idx],
            window,
        )  # [B, D]
        x = self._event_embedding(tokens, words)
        x[:, -1] = x_turn
        prefix_valid = torch.arange(c.max_prefix, device=dev)[None] < state.prefix_len[idx, None]
        past_pos = state.window_pos[idx]
        hidden, new_kv = self.backbone.step(
            x, pos, valid, prefix_valid, past_pos, self._caches(state, idx, whole)
        )
        h = hidden[:, -1]  # [B, D]

        # Heads, sampled per slot with counter-based randomness.
        seed, counter = state.seed[idx], state.counter[idx]
        temp, top_p = state.temperature[idx], state.top_p[idx]
        # The floor, the tool flag and each text token's "stop here" are decisions, drawn from the
        # model's own distribution; the slot's temperature and top-p shape only what is written.
        floor_logits = self.floor_head(h)
        floor = sample_decision(floor_logits, temp, uniform(seed, counter, 0, 1)[:, 0])
        tool_logits = self.tool_head(h)
        tool_flag = sample_decision(tool_logits, temp, uniform(seed, counter, 1, 1)[:, 0]) == 1
        cond, h0 = self._depth_context(h, floor)
        text, text_logits = self._decode_text(
            cond, h0, SPECIAL.BOS, c.max_text_tokens, seed, counter, temp, top_p, draw=10, memory=memory
        )
        tool = torch.full((b, c.max_tool_tokens), SPECIAL.PAD, dtype=torch.int64, device=dev)
        tool_text_logits = h.new_zeros(b, c.max_tool_tokens, c.vocab_size)
        if tool_flag.any():
            q = tool_flag.nonzero().flatten()
            tool_q, logits_q = self._decode_text(
                cond[q],
                h0[q],
                SPECIAL.TOOL,
                c.max_tool_tokens,
                seed[q],
                counter[q],
                temp[q],
                top_p[q],
                draw=100,
            )
            tool[q], tool_text_logits[q] = tool_q, logits_q
        audio_levels, audio_logits = self._decode_audio(
            h, floor, text, state.prev_text[idx], state.prev_audio[idx, -1], seed, counter, temp, top_p
        )
        pcm, voc_conv, voc_ola = self.vocoder.stream(
            self.dmel.dequantize(audio_levels), state.vocoder_conv[idx], state.vocoder_ola[idx]
        )

        # Commit: only the stepped slots, only now that everything has been computed.
        self._write_kv(state, idx, pos, valid, new_kv)
        state.stream_len[idx] = start + valid.sum(dim=1)
        state.turns[idx] += 1
        state.counter[idx] += 1
        state.mel_history[idx] = mel_history
        state.vocoder_conv[idx] = voc_conv
        state.vocoder_ola[idx] = voc_ola
        state.prev_floor[idx] = floor
        state.prev_text[idx] = text
        state.prev_tool[idx] = tool
        state.prev_audio[idx] = audio_levels
        if window is not None:
            state.reply[idx] = reply
            state.reply_len[idx] = reply_len
            state.reply_pos[idx] = reply_pos + advance(text, window)
        return StepOutput(
            idx,
            floor,
            text,
            tool,
            audio_levels,
            pcm,
            caller,
            h,
            floor_logits,
            tool_logits,
            text_logits,
            audio_logits,
            tool_text_logits,
        )

    def _event_chunk(self, events: dict, idx: torch.Tensor, dev) -> tuple:
        """The new stream positions: each slot's events, then its micro-turn (left-padded), as
        (tokens [B, T], hashed words [B, T, W] in words mode else None, valid [B, T])."""
        c = self.cfg
        slots = idx.tolist()
        n_ev = [len(events.get(s, ())) for s in slots]
        t = max(n_ev) + 1
        tokens = torch.full((len(slots), t), SPECIAL.PAD, dtype=torch.int64)
        valid = torch.zeros(len(slots), t, dtype=torch.bool)
        words = None
        if c.event_repr == "words":
            words = torch.zeros(len(slots), t, c.event_words, dtype=torch.int64)
        for row, (slot, n) in enumerate(zip(slots, n_ev)):
            valid[row, t - 1 - n :] = True
            if not n:
                continue
            if words is None:
                tokens[row, t - 1 - n : t - 1] = torch.tensor(events[slot])
                continue
            for j, ev in enumerate(events[slot], start=t - 1 - n):
                tokens[row, j] = ev[0]
                ids = event_word_ids(_TOKENIZER.decode(ev[1:]), c.event_words, c.event_buckets)
                words[row, j, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return tokens.to(dev), None if words is None else words.to(dev), valid.to(dev)

    def _replies(self, state: StreamState, idx: torch.Tensor, events: dict) -> tuple:
        """The stepped slots' replies once this tick's `reply` events are in, as copies to commit
        with the step: (reply [B, R], reply_len [B], reply_pos [B]). A reply replaces what was left
        of the one before (the last of a tick wins) and puts the cursor at its start."""
        reply, length, pos = state.reply[idx], state.reply_len[idx], state.reply_pos[idx]
        for row, slot in enumerate(idx.tolist()):
            for ev in events.get(slot, ()):
                if ev[0] == SPECIAL.REPLY:
                    said = reply_bytes(_TOKENIZER.decode(ev[1:]), self.cfg.max_reply_bytes)
                    reply[row] = SPECIAL.PAD
                    reply[row, : len(said)] = torch.tensor(said, dtype=torch.int64)
                    length[row], pos[row] = len(said), 0
        return reply, length, pos

    def _write_kv(self, state, idx, pos, valid, new_kv) -> None:
        rows, cols = valid.nonzero(as_tuple=True)
        slots = idx[rows]
        p = pos[rows, cols]
        ring = p % self.cfg.window
        for layer, (k, v) in enumerate(new_kv):
            # k [B, K, T, Dh] -> [Q, K, Dh] for the valid (row, col) pairs
            state.k_window[layer][slots, :, ring] = k[rows, :, cols].to(state.k_window.dtype)
            state.v_window[layer][slots, :, ring] = v[rows, :, cols].to(state.v_window.dtype)
        state.window_pos[slots, ring] = p

    def _decode_text(
        self, cond, h0, start, n, seed, counter, temp, top_p, draw, memory: Memory | None = None
    ):
        """Autoregressive tokens within one micro-turn, reading the prompter's `memory` when given.
        Returns (tokens [B, n], logits [B, n, V])."""
        b = cond.shape[0]
        tokens = torch.full((b, n), SPECIAL.PAD, dtype=torch.int64, device=cond.device)
        logits_all = cond.new_zeros(b, n, self.cfg.vocab_size)
        done = torch.zeros(b, dtype=torch.bool, device=cond.device)
        prev = torch.full((b,), start, dtype=torch.int64, device=cond.device)
        hstate = h0.unsqueeze(0).contiguous()
        u, u_stop = uniform(seed, counter, draw, n), uniform(seed, counter, draw + 1, n)  # [B, n]
        for i in range(n):
            out, hstate = self.text_gru((self.depth_tok(prev) + cond).unsqueeze(1), hstate)
            o = out[:, 0] if memory is None else out[:, 0] + self.prompter.attend(out, memory)[:, 0]
            logits = self.text_out(o)
            logits_all[:, i] = logits
            tok = sample_until(logits, SPECIAL.EOT, temp, top_p, u_stop[:, i], u[:, i])
            if i == n - 1:
                tok = torch.full_like(tok, SPECIAL.EOT)  # the last slot always closes the text
            tok = torch.where(done, torch.full_like(tok, SPECIAL.PAD), tok)
            tokens[:, i] = tok
            done = done | (tok == SPECIAL.EOT)
            prev = tok
            if bool(done.all()):
                break
        return tokens, logits_all

    def _decode_audio(self, h, floor, text, prev_text, last_frame, seed, counter, temp, top_p):
        """Frames of agent dMel within one micro-turn. Returns (levels [B, F, M], logits [B, F, M, L])."""
        c = self.cfg
        b = h.shape[0]
        hstate = self._audio_context(h, floor, text).unsqueeze(0).contiguous()
        memory = None
        if c.audio_reads_text:
            voiced = torch.cat([prev_text, text], dim=-1)  # [B, 2N]
            reads = (voiced < N_BYTES).any(dim=-1)  # [B]
            if bool(reads.any()):
                memory = self.audio_reader.memory(voiced)
        prev = last_frame  # [B, M]
        levels = torch.empty(b, c.frames_per_turn, c.n_mels, dtype=torch.int64, device=h.device)
        logits_all = h.new_empty(b, c.frames_per_turn, c.n_mels, c.dmel_levels)
        for f in range(c.frames_per_turn):
            out, hstate = self.audio_gru(self._frame_input(prev).unsqueeze(1), hstate)
            if memory is not None:
                out = out + self.audio_reader.attend(out, memory)  # zero for a row with no byte
            logits = self.audio_out(out[:, 0]).view(b, c.n_mels, c.dmel_levels)
            u = uniform(seed, counter, 1000 + f, c.n_mels)  # [B, M]
            prev = sample(logits, temp[:, None], top_p[:, None], u)
            levels[:, f], logits_all[:, f] = prev, logits
        return levels, logits_all

    def _empty_output(self) -> StepOutput:
        c, dev = self.cfg, self.kind_emb.weight.device
        z = lambda *s, dt=torch.int64: torch.zeros(s, dtype=dt, device=dev)  # noqa: E731
        f32 = torch.float32
        return StepOutput(
            z(0),
            z(0),
            z(0, c.max_text_tokens),
            z(0, c.max_tool_tokens),
            z(0, c.frames_per_turn, c.n_mels),
            z(0, MICRO_TURN_SAMPLES, dt=f32),
            z(0, c.frames_per_turn, c.n_mels),
            z(0, c.d_model, dt=f32),
            z(0, N_FLOOR, dt=f32),
            z(0, 2, dt=f32),
            z(0, c.max_text_tokens, c.vocab_size, dt=f32),
            z(0, c.frames_per_turn, c.n_mels, c.dmel_levels, dt=f32),
            z(0, c.max_tool_tokens, c.vocab_size, dt=f32),
        )
