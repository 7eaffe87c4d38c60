"""Calls with a background model beside them (corpus.background_calls, render_call background=True)
and their labels for a checkpoint that reads events as words and voices replies from its prompter
(real espeak-ng, real labels)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from corpus.background_calls import ACK_AFTER_MS, ACK_INTENT, heard_text, with_background  # noqa: E402
from corpus.call_script import Say, ToolCall, script_problems  # noqa: E402
from corpus.labels import TOKENIZER, micro_turn_labels, to_batch, with_tool_pending  # noqa: E402
from corpus.render import MS, render_call  # noqa: E402
from corpus.scripts import generate_script  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.protocol import EVENT_KINDS  # noqa: E402
from model.tokenizer import EVENT_KINDS as MARKERS  # noqa: E402
from model.tokenizer import SPECIAL, prompter_advance, reply_bytes  # noqa: E402

CFG = ModelConfig.from_name("tiny").replace(event_repr="words", prompter_bytes=16, event_kinds=EVENT_KINDS)
BYTES_CFG = ModelConfig.from_name("tiny")
SEEDS = (0, 3, 5, 8)


def _bg(agent: str, seed: int):
    return with_background(generate_script(agent, seed), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def calls():
    return {seed: render_call(generate_script("support", seed), seed, background=True) for seed in SEEDS}


def test_every_caller_turn_is_heard_and_every_answer_is_a_reply():
    for seed in range(12):
        script = _bg("support", seed)
        assert not script_problems(script), script_problems(script)
        says = [it for it in script.items if isinstance(it, Say)]
        assert all(s.heard_ms and s.heard_ms > 0 for s in says if s.speaker == "caller")
        for i, it in enumerate(script.items):
            if not (isinstance(it, Say) and it.speaker == "agent"):
                continue
            greeting = it.after.of is None
            assert (it.reply_ms is not None) == (it.role == "turn" and not greeting), (seed, i, it)
            if it.intent == ACK_INTENT:  # an acknowledgement: own words, right after a caller's turn
                anchor = script.items[it.after.of]
                assert isinstance(anchor, Say) and anchor.speaker == "caller" and it.reply_ms is None
                answer = next(x for x in script.items[i + 1 :] if isinstance(x, Say) and x.speaker == "agent")
                assert answer.reply_ms > ACK_AFTER_MS


def test_the_overlay_keeps_the_script_and_is_deterministic():
    for seed in range(6):
        plain, bg = generate_script("support", seed), _bg("support", seed)
        assert bg.to_json() == _bg("support", seed).to_json()
        kept = [it.text for it in bg.items if isinstance(it, Say) and it.intent != ACK_INTENT]
        assert kept == [it.text for it in plain.items if isinstance(it, Say)]
    interp = _bg("translate-en-es", 2)
    assert all(it.reply_ms is None for it in interp.items if isinstance(it, Say))
    assert any(it.heard_ms for it in interp.items if isinstance(it, Say))


def test_heard_text_drops_hesitations_and_misses_about_its_share_of_words():
    rng = np.random.default_rng(0)
    text = "Um, I want to check on my order, please"
    assert all("Um" not in heard_text(text, np.random.default_rng(s), 0.0, []) for s in range(1, 4))
    words = "one two three four five six seven eight nine ten".split()
    same = sum(heard_text(" ".join(words), rng, 0.3, ["x"]).split() == words for _ in range(200))
    assert same < 20
    assert heard_text(" ".join(words), rng, 0.0, ["x"]).split() == words


def test_replies_arrive_before_the_agent_voices_them(calls):
    for call in calls.values():
        replies = [e for e in call.events if e.kind == "reply"]
        voiced = [s for s in call.says if s.reply_sample is not None]
        assert replies and len(replies) == len(voiced)
        for e, s in zip(replies, voiced):
            assert e.payload.startswith(s.text.split()[0]) if s.text else True
            assert e.t_ms * MS <= s.start_sample
            assert s.not_before_sample >= s.reply_sample
        for e in (e for e in call.events if e.kind == "caller_words"):
            assert e.payload
        heard = [e.t_ms for e in call.events if e.kind == "caller_words"]
        ends = [s.end_sample // MS for s in call.says if s.speaker == "caller"]
        assert all(any(0 < t - end for end in ends) for t in heard)


def test_labels_take_one_position_an_event_and_show_the_reply_until_it_is_said(calls):
    for call in calls.values():
        lab = micro_turn_labels(call, CFG)
        assert lab.dropped_event_tokens == 0
        assert all(len(ws) == len(ev) for ws, ev in zip(lab.event_words, lab.events))
        assert sum(len(ev) for ev in lab.events) == len(with_tool_pending(call))
        replies = iter(e for e in call.events if e.kind == "reply")
        window = []
        for k in range(lab.n_turns):
            shown = [b for b in lab.prompter[k] if b != SPECIAL.PAD]
            if MARKERS["reply"] in lab.events[k]:  # a new reply replaces what was left
                assert shown == reply_bytes(next(replies).payload, CFG.max_reply_bytes)[: CFG.prompter_bytes]
            else:  # the rest of the last window, after what the agent said of it
                assert shown[: len(window)] == window
            said = prompter_advance(lab.text[k].tolist(), lab.prompter[k].tolist())
            window = shown[said:]
        assert next(replies, None) is None
        assert not [b for b in lab.prompter[-1] if b != SPECIAL.PAD]  # the last reply was said
        tools = [bytes(t[t < 256].tolist()).decode() for t in lab.tool if t[0] != SPECIAL.PAD]
        assert all(t.startswith("end_call") for t in tools)  # the background model calls the rest
        assert any(isinstance(it, ToolCall) and it.name != "end_call" for it in call.script.items)


def test_a_batch_holds_the_words_and_the_prompter(calls):
    labels = [micro_turn_labels(c, CFG) for c in calls.values()]
    batch = to_batch(labels, CFG, 256, seed=1)
    events = batch.kind == 1
    assert batch.event_words.shape == (len(labels), 256, CFG.event_words)
    assert (batch.event_words[events].sum(-1) > 0).any() and (batch.event_words[~events] == 0).all()
    turns = batch.kind == 2
    assert (batch.prompter[turns] != SPECIAL.PAD).any() and (batch.prompter[~turns] == SPECIAL.PAD).all()


def test_bytes_checkpoints_read_every_token_of_every_event():
    call = render_call(generate_script("support", 3), 3)
    lab = micro_turn_labels(call, BYTES_CFG)
    assert lab.event_words is None and lab.prompter is None and lab.dropped_event_tokens == 0
    tokens = [tok for ev in lab.events for tok in ev]
    assert all(len(ev) <= BYTES_CFG.max_event_tokens for ev in lab.events)
    assert tokens == [
        tok for e in with_tool_pending(call) for tok in TOKENIZER.encode_event(e.kind, e.payload)
    ]
