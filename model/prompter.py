"""The reply prompter: what the agent has been given to say, shown to the model every micro-turn.

A `reply` event (the background model's answer) replaces the slot's reply; a cursor marks how much
of it the agent has already said. Each micro-turn the window `reply[pos : pos + prompter_bytes]`
(PAD past the end) is read twice by `InteractionModel`: summed into the micro-turn's input
embedding (`ReplyPrompter.embed`), so the backbone knows there is something to say, and attended
to by the text depth decoder (`ReplyPrompter.memory` / `attend`), a copy path so the agent voices
the reply's own bytes. After the micro-turn's text is sampled the cursor moves by `advance`, the
tensor form of `model.tokenizer.prompter_advance` (the rule the training labels apply).

The new weights start silent (the input embedding and the attention's values are zero), so a model
warm-started from a checkpoint without a prompter (model.checkpoint.warm_start) first behaves as
that checkpoint did. This module knows nothing about events or streaming state beyond the tensors
it is handed.

Shape key: B rows (slots or batch positions), R reply buffer bytes, Np window bytes, N text tokens,
Q queries, D model width, Dd depth-decoder width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import ModelConfig
from model.tokenizer import FUZZY_EVERY, FUZZY_MIN, N_BYTES, SPECIAL


def reply_window(
    reply: torch.Tensor, reply_len: torch.Tensor, reply_pos: torch.Tensor, n: int
) -> torch.Tensor:
    """The unsaid part of each reply the prompter shows. reply [B, R] (R >= n), reply_len and
    reply_pos [B] -> [B, n] int64: bytes from the cursor on, PAD past the reply's end."""
    at = reply_pos[:, None] + torch.arange(n, device=reply.device)  # [B, n]
    got = reply.gather(1, at.clamp(max=reply.shape[1] - 1))
    return torch.where(at < reply_len[:, None], got, torch.full_like(got, SPECIAL.PAD))


def _bytes_before_special(tokens: torch.Tensor) -> torch.Tensor:
    """[B, L] -> [B]: how many leading entries are bytes (a special token ends the run)."""
    return ((tokens >= N_BYTES).int().cumsum(dim=-1) == 0).sum(dim=-1)


def advance(emitted: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """How far each cursor moves: `prompter_advance` for every row at once. emitted [B, N] (a
    micro-turn's text: bytes, then EOT and PAD), window [B, Np] -> [B] int64, the longest m such
    that the last m bytes written are the first m bytes of the window, else the longest close
    enough (FUZZY_MIN, FUZZY_EVERY), else 0."""
    b, n = emitted.shape
    said, ahead = _bytes_before_special(emitted), _bytes_before_special(window)  # [B]
    most = min(n, window.shape[1])
    m = torch.arange(1, most + 1, device=emitted.device)  # [M] candidate lengths
    j = torch.arange(most, device=emitted.device)  # [M] offsets inside a candidate
    src = said[:, None, None] - m[None, :, None] + j[None, None, :]  # [B, M, M]: emitted index
    got = emitted.gather(1, src.clamp(0, n - 1).view(b, -1)).view(b, most, most)
    past = (j[None, :] >= m[:, None])[None]  # [1, M, M]: offsets beyond the candidate
    wrong = ((got != window[:, None, :most]) & ~past).sum(dim=-1)  # [B, M]
    fits = (m[None] <= said[:, None]) & (m[None] <= ahead[:, None])
    zero = torch.zeros_like(m[None])
    exact = torch.where((wrong == 0) & fits, m[None], zero).max(dim=-1).values
    close = (wrong * FUZZY_EVERY <= m[None]) & (m[None] >= FUZZY_MIN) & fits
    return torch.where(exact > 0, exact, torch.where(close, m[None], zero).max(dim=-1).values)


@dataclass
class Memory:
    """The window as the text decoder's attention reads it."""

    key: torch.Tensor  # [B, Np, Dd]
    value: torch.Tensor  # [B, Np, Dd]
    mask: torch.Tensor  # [B, Np] bool: reply bytes (PAD masked)


class ByteReader(nn.Module):
    """A depth decoder's single-head attention over a short run of bytes in order (byte + offset
    embeddings; special tokens masked). The text decoder reads the reply's window through one
    (ReplyPrompter); with `audio_reads_text` the audio decoder reads the text it voices through
    another. Its values start at zero (`silence`), so a warm start first behaves as before."""

    def __init__(self, n: int, vocab_size: int, dd: int) -> None:
        super().__init__()
        self.scale = dd**-0.5
        self.byte_mem = nn.Embedding(vocab_size, dd)
        self.pos_mem = nn.Parameter(torch.randn(n, dd) * 0.02)
        self.query = nn.Linear(dd, dd, bias=False)
        self.key = nn.Linear(dd, dd, bias=False)
        self.value = nn.Linear(dd, dd, bias=False)

    def silence(self) -> None:
        """Zero the attention's values: called once the owner has initialised every weight."""
        with torch.no_grad():
            self.value.weight.zero_()

    def memory(self, tokens: torch.Tensor) -> Memory:
        """[B, Np] -> the keys and values the decoder attends to (once per micro-turn)."""
        e = self.byte_mem(tokens) + self.pos_mem  # [B, Np, Dd]
        return Memory(self.key(e), self.value(e), tokens < N_BYTES)

    def attend(self, q: torch.Tensor, mem: Memory) -> torch.Tensor:
        """q [B, Q, Dd] (decoder outputs) -> [B, Q, Dd]; exactly zero where no byte is read."""
        scores = (self.query(q) @ mem.key.transpose(-1, -2)) * self.scale  # [B, Q, Np]
        scores = scores.masked_fill(~mem.mask[:, None, :], torch.finfo(scores.dtype).min)
        p = scores.softmax(dim=-1) * mem.mask.any(dim=-1)[:, None, None].to(scores.dtype)
        return p @ mem.value

    def read(self, q: torch.Tensor, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """q [R, Q, Dd] plus what each row reads of its `tokens` [R, Np], computed only for the
        `rows` [R] (bool) that have a byte to read (the others add exactly 0)."""
        reading = torch.zeros_like(q)
        if bool(rows.any()):
            reading[rows] = self.attend(q[rows], self.memory(tokens[rows]))
        return q + reading


class ReplyPrompter(ByteReader):
    def __init__(self, cfg: ModelConfig) -> None:
        n, d = cfg.prompter_bytes, cfg.d_model
        # (b) the text decoder's single-head attention over the window (ByteReader)
        super().__init__(n, cfg.vocab_size, cfg.d_depth)
        # (a) the micro-turn's input: a bag of the window's bytes at their offsets
        self.byte_in = nn.Embedding(cfg.vocab_size, d)
        self.pos_in = nn.Parameter(torch.zeros(n, d))

    def silence(self) -> None:
        """Zero the weights through which the prompter changes the model's outputs (the input bag
        and the attention's values): called once the owner has initialised every weight."""
        super().silence()
        with torch.no_grad():
            self.byte_in.weight.zero_()
            self.pos_in.zero_()

    def embed(self, window: torch.Tensor) -> torch.Tensor:
        """[.., Np] -> [.., D]: sum over the window's bytes of byte + offset embeddings."""
        mask = (window < N_BYTES).unsqueeze(-1)
        return ((self.byte_in(window) + self.pos_in) * mask).sum(dim=-2)
