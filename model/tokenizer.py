"""Byte-level text tokenizer with the interaction model's special tokens.

Token ids 0..255 are the UTF-8 bytes of the text; ids 256..271 are special tokens (padding, the end
of a micro-turn's text, the start of a tool call, and one marker per kind of injected event). Bytes
never need a trained vocabulary, so any language and any tool argument round-trips exactly.

Because a micro-turn may end in the middle of a multi-byte character, `StreamDecoder` turns a
stream of token ids back into text incrementally. This module knows nothing about tensors.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

N_BYTES = 256


@dataclass(frozen=True)
class Special:
    PAD: int = 256  # no token (fills unused text slots of a micro-turn)
    EOT: int = 257  # end of this micro-turn's text
    BOS: int = 258  # start of a depth sequence (text or tool call) inside a micro-turn
    TOOL: int = 259  # start of a tool call: "name {json arguments}" follows
    CONFIG: int = 260  # call configuration prefix (pinned)
    TOOL_RESULT: int = 261  # a tool's result, as JSON
    TOOL_ERROR: int = 262  # a tool failed, timed out, or does not exist
    TOOL_PENDING: int = 263  # a slow tool is still working
    TIMER: int = 264  # a timer the agent set has fired
    DTMF: int = 265  # the caller pressed keys
    CALLER_HANGUP: int = 266
    SYSTEM: int = 267  # any other runtime notice
    EVENT_END: int = 268  # end of an injected event
    CALLER_WORDS: int = 269  # the background model heard the caller say this
    REPLY: int = 270  # the background model's answer, for the agent to voice
    RESERVED_3: int = 271


SPECIAL = Special()
VOCAB_SIZE = 272

EVENT_KINDS = {
    "config": SPECIAL.CONFIG,
    "tool_result": SPECIAL.TOOL_RESULT,
    "tool_error": SPECIAL.TOOL_ERROR,
    "tool_pending": SPECIAL.TOOL_PENDING,
    "timer": SPECIAL.TIMER,
    "dtmf": SPECIAL.DTMF,
    "caller_hangup": SPECIAL.CALLER_HANGUP,
    "system": SPECIAL.SYSTEM,
    "caller_words": SPECIAL.CALLER_WORDS,
    "reply": SPECIAL.REPLY,
}
# The markers an event may start with in the stream ("config" starts the pinned prefix instead).
EVENT_MARKERS = frozenset(v for k, v in EVENT_KINDS.items() if k != "config")


class ByteTokenizer:
    """UTF-8 bytes plus special tokens. Stateless; `StreamDecoder` is the incremental inverse."""

    vocab_size = VOCAB_SIZE
    special = SPECIAL

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        """Bytes to text; special tokens are dropped, invalid UTF-8 is replaced, never raised."""
        return bytes(i for i in ids if 0 <= i < N_BYTES).decode("utf-8", errors="replace")

    def encode_event(self, kind: str, payload: str = "") -> list[int]:
        """An injected event as tokens: its marker, its payload bytes, EVENT_END."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_KINDS)}")
        return [EVENT_KINDS[kind], *self.encode(payload), SPECIAL.EVENT_END]

    def encode_event_words(self, kind: str, payload: str = "") -> list[int]:
        """An injected event for a checkpoint that reads events as words (ModelConfig.event_repr
        "words"): its marker, then its whole payload as UTF-8 bytes, no EVENT_END. The step takes
        the event as one stream position (the payload's `event_word_ids`) and, for a `reply`, shows
        its `reply_bytes` to the prompter; the payload is not cut here, so both see what the
        training labels saw. "config" is not an event: it is the pinned prefix (`encode_prefix`)."""
        if kind not in EVENT_KINDS or kind == "config":
            known = ", ".join(k for k in EVENT_KINDS if k != "config")
            raise ValueError(f"unknown event kind {kind!r} for a words event; known: {known}")
        return [EVENT_KINDS[kind], *self.encode(payload)]

    def encode_event_as(self, event_repr: str, kind: str, payload: str = "") -> list[int]:
        """One event as a checkpoint of `event_repr` reads it (ModelConfig.event_repr): "bytes",
        `encode_event`; "words", `encode_event_words`. The server and the offline engine both queue
        what this gives."""
        if event_repr == "words":
            return self.encode_event_words(kind, payload)
        return self.encode_event(kind, payload)

    def encode_prefix(self, config: str, max_tokens: int) -> list[int]:
        """A call's configuration text as the pinned prefix the model reads: CONFIG, its bytes cut
        to fit `max_tokens` in all, EVENT_END. The one encoding of a prefix: the server's hello,
        the training labels and the offline engine all use it."""
        return [SPECIAL.CONFIG, *self.encode(config)[: max_tokens - 2], SPECIAL.EVENT_END]

    def encode_tool_call(self, name: str, arguments_json: str) -> list[int]:
        """A tool call as the model writes it: TOOL, then `name arguments_json`, then EOT."""
        return [SPECIAL.TOOL, *self.encode(f"{name} {arguments_json}"), SPECIAL.EOT]

    def parse_tool_call(self, ids: Iterable[int]) -> tuple[str, str] | None:
        """(name, arguments_json) from a decoded tool sequence, or None if it is not one."""
        text = self.decode(ids).strip()
        if not text:
            return None
        name, _, args = text.partition(" ")
        if not name.replace("_", "").replace(".", "").isalnum():
            return None
        return name, (args.strip() or "{}")


_WORD = re.compile(r"[^\W_]+|[?!.,]")


def event_word_ids(payload: str, n_words: int, buckets: int) -> list[int]:
    """An event's payload as at most `n_words` hashed word ids in [1, buckets] (0 is padding), for
    checkpoints whose events take one stream position each (ModelConfig.event_repr == "words"):
    its words and the marks that end or split a sentence (JSON's quotes and braces are not words),
    lower-cased, each hashed with CRC-32, so any language and any JSON maps to ids without a
    trained vocabulary and the same text always gives the same ids."""
    words = _WORD.findall(payload.lower())[:n_words]
    return [zlib.crc32(w.encode("utf-8")) % buckets + 1 for w in words]


def reply_bytes(payload: str, max_bytes: int) -> list[int]:
    """A reply as the agent is to say it, the bytes its prompter shows: the words with one space
    after each (as the agent writes its text) and nothing else, cut to `max_bytes`."""
    return [b for word in payload.split() for b in (word + " ").encode("utf-8")][:max_bytes]


FUZZY_MIN = 4  # the shortest stretch a misspelt reply may move the cursor by
FUZZY_EVERY = 4  # one wrong byte allowed in every FUZZY_EVERY


def prompter_advance(emitted: Sequence[int], window: Sequence[int]) -> int:
    """How far a reply's cursor moves after a micro-turn whose text was `emitted`: the longest m
    such that the last m bytes written are the first m bytes of the unsaid reply (`window`). A
    micro-turn that says only its own words moves it 0; one that finishes an acknowledgement and
    starts the reply ("Sure. Your o") moves it by the reply's part. Where no m matches exactly,
    the longest m >= FUZZY_MIN with at most m // FUZZY_EVERY bytes different: a sampled "yet' " or
    "benn del" still says "yet, " or "been del", and the agent goes on with the reply instead of
    saying its next word again and again. Special tokens end `emitted` and `window`. The serving
    step (`model.prompter.advance`) and the training labels both use this rule."""
    said, ahead = _leading_bytes(emitted), _leading_bytes(window)
    most = min(len(said), len(ahead))
    for m in range(most, 0, -1):
        if said[len(said) - m :] == ahead[:m]:
            return m
    for m in range(most, FUZZY_MIN - 1, -1):
        wrong = sum(a != b for a, b in zip(said[len(said) - m :], ahead[:m]))
        if wrong * FUZZY_EVERY <= m:
            return m
    return 0


def _leading_bytes(tokens: Sequence[int]) -> list[int]:
    """The bytes before the first special token."""
    out = []
    for tok in tokens:
        if not 0 <= tok < N_BYTES:
            break
        out.append(tok)
    return out


class StreamDecoder:
    """Incremental token -> text decoding across micro-turns (multi-byte characters may split)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: Iterable[int]) -> str:
        return self._decoder.decode(bytes(i for i in ids if 0 <= i < N_BYTES))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)

    def clear(self) -> None:
        self._decoder.reset()
