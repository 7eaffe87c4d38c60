"""A background model beside a synthetic call: when its words and replies reach the interaction model.

Live (agent.background), the caller's words of each speech segment reach the interaction model as
a `caller_words` event once the VAD has waited out the silence and Whisper has heard them, and the
substance of every agent answer arrives as a `reply` event once the reasoner has decided, after
the caller's words or a tool's result. The interaction model owns the moment: it acknowledges at
once ("Sure.") and voices the reply when it comes. `with_background` gives a support script
those delays, drawn around what `parley eval --background` measured in live calls on the 2-core
development machine, the interaction model stepping beside them (one call at a time, 10 held-out
calls, 2026-12-05: segment end -> words p50 0.78-0.85 s, p90 1.07 s; words -> reply p50 1.7-2.4
s; a tool's result -> reply p50 1.3-1.5 s, p90 2.2-2.6 s; with 5 calls at once words took p50
13.6 s: the loaded-server share), and an acknowledgement where the reply would leave
the caller in silence. `heard_text` makes the words as a recogniser returns them (hesitations
dropped, some words wrong). Every draw comes from the generator it is given.

It knows the script's items (corpus.call_script), not audio, placement (corpus.render applies
the delays) or labels.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from corpus.call_script import RESPONSE_MS, CallScript, Dtmf, Gap, Item, Say, Timer, ToolCall

BACKGROUND_VERSION = 2
HEARD_MS = (800.0, 0.2, 450, 4000)  # median, log-spread, floor, cap: segment end -> words
DECIDE_MS = (1900.0, 0.4, 600, 12000)  # the caller's words -> the reply
RESULT_MS = (1350.0, 0.3, 500, 9000)  # a tool's result, keys or a timer -> the reply
LEAD_MS = (150, 450)  # a reply arrives -> the agent can voice it (it reads it at the next micro-turn)
BUSY_SHARE = 0.15  # calls on a loaded server: every delay times BUSY_FACTOR
BUSY_FACTOR = (2.0, 5.0)
ACK_AFTER_MS = 900  # a reply later than this after the caller's turn gets an acknowledgement...
ACK_SHARE = 0.8  # ...this often
ACK_INTENT = "acknowledge_wait"  # the intent of an inserted acknowledgement
ACKS = (
    "Sure.",
    "Okay.",
    "Alright.",
    "Sure, one moment.",
    "Okay, let me see.",
    "Got it.",
    "Mm-hmm, sure.",
    "Right, okay.",
    "Sure thing.",
    "Okay, one second.",
)
HEARING_WER = (0.0, 0.3)  # per call: words the recogniser gets wrong, drawn uniformly
HESITATION = re.compile(r"\b(um|uh|erm|hmm)\b,?\s*", re.IGNORECASE)


def _draw(rng: np.random.Generator, spec: tuple[float, float, int, int], factor: float) -> int:
    median, spread, lo, hi = spec
    return int(np.clip(median * factor * np.exp(spread * rng.standard_normal()), lo, hi * factor))


def heard_text(text: str, rng: np.random.Generator, wer: float, vocabulary: list[str]) -> str:
    """`text` as a recogniser might return it: hesitations mostly gone, pause marks gone, and about
    `wer` of the words deleted, replaced by another word of the call, or followed by one."""
    if rng.random() < 0.8:
        text = HESITATION.sub("", text)
    out: list[str] = []
    for word in text.replace("|", " ").split():
        r = rng.random()
        if r >= wer:
            out.append(word)
        elif r < wer * 0.3:
            continue
        elif r < wer * 0.8 and vocabulary:
            out.append(vocabulary[int(rng.integers(len(vocabulary)))])
        else:
            out.append(word)
            if vocabulary:
                out.append(vocabulary[int(rng.integers(len(vocabulary)))])
    return " ".join(out)


def _answers_with_own_words(items: list[Item], anchor: int) -> bool:
    """Whether the agent already says something of its own (a filler) after item `anchor`."""
    return any(
        isinstance(it, Say) and it.speaker == "agent" and it.role == "filler" and it.after.of == anchor
        for it in items
    )


def with_background(script: CallScript, rng: np.random.Generator) -> CallScript:
    """`script` as a call with a background model: every caller Say gets `heard_ms`; every agent
    turn but the greeting (a support script's; an interpreter voices its own translations) is a
    reply, with `reply_ms` from its anchor (the caller's words take `heard_ms` first) and a
    `reply_lead_ms`; a reply later than ACK_AFTER_MS after a caller's turn that no filler
    answers gets a short acknowledgement of the agent's own before it (ACK_SHARE of them). Item
    indices are renumbered around the inserted acknowledgements."""
    factor = float(rng.uniform(*BUSY_FACTOR)) if rng.random() < BUSY_SHARE else 1.0
    replies = script.agent == "support"
    old = script.items
    new: list[Item] = []
    where: dict[int, int] = {}  # old index -> new index

    def moved(gap: Gap) -> Gap:
        return gap if gap.of is None else dataclasses.replace(gap, of=where[gap.of])

    for i, original in enumerate(old):
        it = dataclasses.replace(original, after=moved(original.after))
        if isinstance(it, Say) and it.speaker == "caller":
            it = dataclasses.replace(it, heard_ms=_draw(rng, HEARD_MS, factor))
        elif (
            replies
            and isinstance(it, Say)
            and it.speaker == "agent"
            and it.role == "turn"
            and it.after.of is not None
        ):
            anchor = new[it.after.of]
            caller_turn = isinstance(anchor, Say) and anchor.speaker == "caller"
            wait = _draw(rng, DECIDE_MS if caller_turn else RESULT_MS, factor)
            if caller_turn:
                wait += anchor.heard_ms or 0
            elif not isinstance(anchor, (ToolCall, Dtmf, Timer)):
                wait = int(rng.integers(0, 300))  # the rest of an answer already decided
            if (
                isinstance(anchor, Say)
                and anchor.speaker == "caller"
                and wait > ACK_AFTER_MS
                and not _answers_with_own_words(old, original.after.of)
                and rng.random() < ACK_SHARE
            ):
                ack = ACKS[int(rng.integers(len(ACKS)))]
                gap = Gap(
                    "prev_end", int(rng.integers(RESPONSE_MS[0], RESPONSE_MS[1] + 1)), False, it.after.of
                )
                new.append(Say(speaker="agent", text=ack, role="filler", intent=ACK_INTENT, after=gap))
            it = dataclasses.replace(
                it, reply_ms=wait, reply_lead_ms=int(rng.integers(LEAD_MS[0], LEAD_MS[1] + 1))
            )
        where[i] = len(new)
        new.append(it)
    return dataclasses.replace(script, items=new)
