"""Synthetic two-channel calls and their labels: determinism, timing, voices, and labels that line up
with the audio they describe (real espeak-ng, real dMel, the real tiny model and losses)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

pytest.importorskip("espeakng_loader")

from agent.events import event_json, tool_pending_payload  # noqa: E402
from corpus import render as rd  # noqa: E402
from corpus.call_script import Dtmf, Timer, ToolCall  # noqa: E402
from corpus.labels import (  # noqa: E402
    TOKENIZER,
    CallLabels,
    N,
    agent_shift_samples,
    build_example,
    config_prefix,
    micro_turn_labels,
    output_window,
    pack_bytes,
    to_batch,
    with_tool_pending,
)
from corpus.render import CorpusCache, Event, RenderedCall, render_call  # noqa: E402
from corpus.scripts import generate_script  # noqa: E402
from corpus.tts import Espeak  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.dmel import DMel  # noqa: E402
from model.interaction import KIND_EVENT, KIND_PAD, KIND_TURN, InteractionModel  # noqa: E402
from model.protocol import FLOOR_STATES  # noqa: E402
from model.tokenizer import SPECIAL  # noqa: E402
from training.losses import compute_losses  # noqa: E402

CFG = ModelConfig.from_name("tiny")
# Seeds chosen (from script.features()) to cover barge-ins, caller and agent backchannels, a
# timer, tool errors, a hand-off, keypad digits, mid-turn pauses and interpreting with a barge-in.
CASES = [("support", s) for s in (0, 2, 3, 4, 5, 7, 8, 21)] + [("translate-en-es", s) for s in (2, 6)]
SPEAKING = {FLOOR_STATES.index("speak"), FLOOR_STATES.index("backchannel")}


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, int], RenderedCall]:
    calls, audio_s, wall = {}, 0.0, 0.0
    for agent, seed in CASES:
        t0 = time.perf_counter()
        calls[agent, seed] = render_call(generate_script(agent, seed), seed)
        wall += time.perf_counter() - t0
        audio_s += calls[agent, seed].duration_s
    print(f"\nrendered {audio_s:.0f} s of calls in {wall:.2f} s: {audio_s / wall:.0f}x real time")
    return calls


@pytest.fixture(scope="module")
def labelled(rendered) -> dict[tuple[str, int], CallLabels]:
    return {key: micro_turn_labels(call, CFG) for key, call in rendered.items()}


def agent_says(call: RenderedCall):
    return sorted((s for s in call.says if s.speaker == "agent"), key=lambda s: s.start_sample)


def byte_turns(lab: CallLabels) -> list[int]:
    """The micro-turn of every text byte, in stream order."""
    return [k for k in range(lab.n_turns) for tok in lab.text[k] if tok < 256]


def first_byte_turn(call: RenderedCall, lab: CallLabels) -> dict[int, int]:
    """The micro-turn of each agent say's first text byte, by say index in call.says."""
    turns, pos, first = byte_turns(lab), 0, {}
    for s in agent_says(call):
        size = sum(len((w.text + " ").encode()) for w in s.words)
        if size:
            first[call.says.index(s)] = turns[pos]
        pos += size
    return first


# -- determinism ----------------------------------------------------------------------------------


def test_same_seed_same_call_and_labels(rendered, labelled):
    script = generate_script("support", 0)
    again = render_call(script, 0)
    first = rendered["support", 0]
    assert np.array_equal(first.caller, again.caller) and np.array_equal(first.agent, again.agent)
    assert first.says == again.says and first.events == again.events and first.tool_calls == again.tool_calls
    a, b = labelled["support", 0], micro_turn_labels(again, CFG)
    for name in ("caller", "audio", "floor", "text", "tool"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.events == b.events and a.prefix == b.prefix
    other = render_call(script, 1)  # same script, other render seed: other voice and channel
    assert (other.caller_voice, other.channel) != (first.caller_voice, first.channel)
    assert not np.array_equal(other.caller[: len(first.caller)], first.caller[: len(other.caller)])


def test_cache_round_trip_is_exact(tmp_path, rendered):
    cache = CorpusCache(tmp_path)
    built = build_example("support", 3, CFG, cache=cache)
    path = cache.path("support", 3)
    assert path.is_file() and str(path).startswith(str(tmp_path))
    loaded = RenderedCall.load(path)
    fresh = rendered["support", 3]
    assert np.array_equal(loaded.caller, fresh.caller) and np.array_equal(loaded.agent, fresh.agent)
    assert loaded.says == fresh.says and loaded.events == fresh.events and loaded.channel == fresh.channel
    assert loaded.script.to_json() == fresh.script.to_json()
    again = build_example("support", 3, CFG, cache=cache)  # from the file this time
    assert np.array_equal(built.audio, again.audio) and np.array_equal(built.text, again.text)
    path.write_bytes(b"not a zip")  # a damaged file is rendered again, not an error
    assert np.array_equal(build_example("support", 3, CFG, cache=cache).caller, built.caller)


# -- voices ---------------------------------------------------------------------------------------


def test_held_out_voices_are_disjoint_and_all_resolve():
    train, held = set(rd.TRAIN_CALLER_VOICES), set(rd.HELD_OUT_CALLER_VOICES)
    assert train and held and not train & held
    assert not set(rd.TRAIN_CALLER_BASES) & set(rd.HELD_OUT_CALLER_BASES)
    assert not set(rd.TRAIN_CALLER_VARIANTS) & set(rd.HELD_OUT_CALLER_VARIANTS)
    assert rd.AGENT_VARIANT not in set(rd.TRAIN_CALLER_VARIANTS) | set(rd.HELD_OUT_CALLER_VARIANTS)
    tts = Espeak.instance()
    for voice in [*train, *held, *rd.AGENT_VOICES.values()]:
        tts.resolve_voice(voice)  # ValueError if espeak-ng does not know it
    assert rd.caller_voices(True) == rd.HELD_OUT_CALLER_VOICES


def test_held_out_call_uses_a_held_out_voice(rendered):
    call = render_call(generate_script("support", 4), 4, held_out=True)
    assert call.held_out and call.caller_voice in rd.HELD_OUT_CALLER_VOICES
    assert rendered["support", 4].caller_voice in rd.TRAIN_CALLER_VOICES
    # The same script: the agent says the same (its cuts do not depend on the caller's voice).
    assert [s.text for s in call.says if s.speaker == "agent"] == [
        s.text for s in rendered["support", 4].says if s.speaker == "agent"
    ]


# -- timing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_timing_follows_the_script(rendered, case):
    call = rendered[case]
    items = call.script.items
    assert call.n_samples % N == 0 and len(call.caller) == len(call.agent)
    for speaker in ("caller", "agent"):
        says = sorted((s for s in call.says if s.speaker == speaker), key=lambda s: s.start_sample)
        for a, b in zip(says, says[1:]):
            assert a.end_sample <= b.start_sample, (a.text, b.text)  # one voice at a time
    assert [e.t_ms for e in call.events] == sorted(e.t_ms for e in call.events)
    assert call.events[0] == Event(0, "config", rd.config_text(call.script.agent))
    tools = [it for it in items if isinstance(it, ToolCall)]
    assert [(t.name, event_json(t.arguments)) for t in tools] == [
        (t.name, t.arguments_json) for t in call.tool_calls
    ]
    results = [e for e in call.events if e.kind in ("tool_result", "tool_error")]
    assert [rd.tool_event(t) for t in tools] == [(e.kind, e.payload) for e in results]
    for t, placed, e in zip(tools, call.tool_calls, results):
        assert abs(e.t_ms - placed.t_ms - t.latency_ms) <= 1
    dtmf = [it for it in items if isinstance(it, Dtmf)]
    assert "".join(e.payload for e in call.events if e.kind == "dtmf") == "".join(d.digits for d in dtmf)
    # Everything an agent Say answers (a result, a timer, keys) came before it.
    for s in call.says:
        assert s.not_before_sample <= s.start_sample
        it = items[s.item]
        ref = items[it.after.of] if it.after.of is not None else None
        if s.speaker == "agent" and it.after.ref == "prev_end" and isinstance(ref, (ToolCall, Timer, Dtmf)):
            assert 0 < s.not_before_sample
            assert any(e.t_ms == s.not_before_sample // rd.MS for e in call.events)
    assert call.tool_calls[-1].name in ("end_call", "transfer")
    assert max(s.end_sample for s in call.says) < call.n_samples


def test_timer_silence_is_capped_and_the_payload_says_so(rendered):
    call = rendered["support", 2]
    (timer,) = [e for e in call.events if e.kind == "timer"]
    (booking,) = [t for t in call.tool_calls if t.name == "book_callback"]
    set_at = next(e for e in call.events if e.kind == "tool_result" and e.t_ms > booking.t_ms)
    elapsed = (timer.t_ms - set_at.t_ms) / 1000
    assert json.loads(timer.payload)["seconds"] == round(elapsed)
    last_speech = max(s.end_sample for s in call.says if s.start_sample < timer.t_ms * rd.MS) / 16000
    assert timer.t_ms / 1000 - last_speech <= rd.TIMER_SILENCE_CAP_MS / 1000 + 0.01
    quiet = call.agent[int(last_speech * 16000) : timer.t_ms * rd.MS]
    assert len(quiet) > 16000 and not np.any(quiet)  # both sides silent; the caller only has line noise


def test_barge_ins_cut_the_agent_and_label_a_yield(rendered, labelled):
    seen = 0
    for key, call in rendered.items():
        lab = labelled[key]
        script = call.script
        for s in call.says:
            if s.cut_sample is None:
                continue
            seen += 1
            barger = next(
                c
                for c in call.says
                if c.speaker == "caller"
                and script.items[c.item].barge_in
                and script.items[c.item].after.of == s.item
            )
            onset = barger.start_sample
            assert s.cut_sample == onset + N and s.end_sample == s.cut_sample  # stops 200 ms after the onset
            nxt = min(
                [a.start_sample for a in call.says if a.speaker == "agent" and a.start_sample > onset]
                + [call.n_samples]
            )
            assert not np.any(call.agent[s.cut_sample : nxt])  # silent from the cut on
            assert np.any(call.agent[onset : s.cut_sample])  # still talking until then
            k = -(-s.cut_sample // N) - 1
            start, _ = output_window(k)
            assert s.cut_sample <= start < s.cut_sample + N and lab.floor[k] == FLOOR_STATES.index("yield")
            assert lab.floor[k - 1] == FLOOR_STATES.index("speak")  # the window holding the cut
            full = script.items[s.item].text
            assert full.startswith(s.text) and len(s.text) < len(full)
            assert all(w.start_sample < s.cut_sample for w in s.words)
    assert seen >= 3


# -- labels line up with the audio ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_floor_is_speak_exactly_where_the_agent_is_heard(rendered, labelled, case):
    call, lab = rendered[case], labelled[case]
    turns = [s for s in call.says if s.speaker == "agent" and s.role != "backchannel"]
    backchannels = [s for s in call.says if s.speaker == "agent" and s.role == "backchannel"]
    without_bc = call.agent.copy()
    for s in backchannels:
        without_bc[s.start_sample : s.end_sample] = 0
    shifted = np.zeros_like(call.agent)  # window k of `shifted` is micro-turn k's output window
    shifted[: len(shifted) - N] = without_bc[N:]
    speak = FLOOR_STATES.index("speak")
    first = first_byte_turn(call, lab)
    for k in range(lab.n_turns):
        window = shifted[k * N : (k + 1) * N]
        a, b = output_window(k)
        in_turn = any(s.start_sample < b and s.end_sample > a for s in turns)
        # ...or writing the first words of a turn that will sound: the floor leads as the text does
        leading = any(first.get(call.says.index(s), k + 1) <= k < s.start_sample // N - 1 for s in turns)
        assert (in_turn or leading) == (lab.floor[k] == speak), k
        if np.any(window):
            assert lab.floor[k] == speak, k  # heard beyond backchannels -> speak
        if lab.floor[k] not in SPEAKING:
            assert not np.any(call.agent[a:b]), k
    loud = [
        k
        for k in range(lab.n_turns)
        if lab.floor[k] == speak and np.sqrt(np.mean(shifted[k * N : (k + 1) * N] ** 2)) > 10 ** (-50 / 20)
    ]
    assert len(loud) >= 0.8 * int((lab.floor == speak).sum())


def test_audio_labels_put_sound_where_the_vocoder_will_play_it():
    """An agent tone burst: the label frames holding it are exactly those whose vocoder synthesis
    window (frame j centred at call sample j*hop + n_fft/2 + N) overlaps the burst."""
    n = 40 * N
    burst = (37 * N + 1234 - 5 * N, 37 * N + 1234)  # 5 micro-turns of 1 kHz
    agent = np.zeros(n, np.float32)
    t = np.arange(burst[1] - burst[0]) / 16000
    agent[burst[0] : burst[1]] = 0.3 * np.sin(2 * np.pi * 1000 * t)
    call = RenderedCall(
        np.zeros(n, np.float32),
        agent,
        16000,
        [],
        [Event(0, "config", "x|en||")],
        [],
        generate_script("support", 0),
        0,
        False,
        "en-us",
        None,
    )
    lab = micro_turn_labels(call, CFG)
    hop, win = CFG.hop_length, CFG.win_length
    levels = lab.audio.reshape(-1, CFG.n_mels)  # [frames, M]
    loud = np.nonzero(levels.max(axis=1) > 0)[0]
    centres = loud * hop + CFG.vocoder_n_fft // 2 + N
    assert centres.min() >= burst[0] - win // 2 and centres.max() <= burst[1] + win // 2
    assert centres.min() <= burst[0] - win // 2 + hop and centres.max() >= burst[1] + win // 2 - hop
    assert agent_shift_samples(CFG) == N + CFG.vocoder_n_fft // 2 + win // 2 - hop
    # The caller side is not shifted: frame j reads samples [(j+1)hop - win, (j+1)hop).
    caller_call = RenderedCall(
        agent, np.zeros(n, np.float32), 16000, [], call.events, [], call.script, 0, False, "en-us", None
    )
    caller_levels = micro_turn_labels(caller_call, CFG).caller.reshape(-1, CFG.n_mels)
    heard = np.nonzero(caller_levels.max(axis=1) > 0)[0]
    assert heard.min() == burst[0] // hop and heard.max() == (burst[1] + win - hop - 1) // hop
    dmel = DMel(CFG)  # and equals what DMel.stream computes at serving, micro-turn by micro-turn
    history = dmel.init_history(1)
    streamed = []
    for k in range(n // N):
        lm, history = dmel.stream(torch.from_numpy(agent[k * N : (k + 1) * N])[None], history)
        streamed.append(dmel.quantize(lm)[0])
    assert np.array_equal(torch.cat(streamed).numpy(), caller_levels)


@pytest.mark.parametrize("case", CASES)
def test_text_leads_its_audio_by_one_micro_turn(rendered, labelled, case):
    call, lab = rendered[case], labelled[case]
    says = agent_says(call)
    spoken = "".join(w.text + " " for s in says for w in s.words)
    assert TOKENIZER.decode(lab.text.flatten().tolist()) == spoken
    assert all(SPECIAL.EOT in row.tolist() for row in lab.text)  # every micro-turn closes its text
    turns = byte_turns(lab)
    pos, on_time, total = 0, 0, 0
    for s in says:
        first_event_turn = s.not_before_sample // N
        for w in s.words:
            size = len((w.text + " ").encode())
            k, last = turns[pos], turns[pos + size - 1]
            pos += size
            target = max(w.start_sample // N - 2, 0)  # one before the micro-turn that plays it
            if s.not_before_sample:
                assert k >= first_event_turn  # never before the result/timer/keys it answers
            else:
                assert target - 2 <= k <= last <= target, (w, k, target)  # early when crowded, never late
            assert last <= w.start_sample // N - 1 or k == first_event_turn  # never after its own audio
            on_time += k <= target <= last  # emitted in its target micro-turn (maybe begun earlier)
            total += 1
    assert on_time >= 0.8 * total


@pytest.mark.parametrize("case", CASES)
def test_every_turn_starts_its_floor_with_its_first_words(rendered, labelled, case):
    """The floor decides and the text follows: no agent turn's first byte is written while the
    floor is still "listen", and the floor never starts more than a micro-turn before its words."""
    call, lab = rendered[case], labelled[case]
    first = first_byte_turn(call, lab)
    speak, bc = FLOOR_STATES.index("speak"), FLOOR_STATES.index("backchannel")
    seen = 0
    for i, k in first.items():
        s = call.says[i]
        if s.end_sample <= s.start_sample:
            continue
        assert lab.floor[k] in ((bc, speak) if s.role == "backchannel" else (speak,)), (s, k)
        if k > 0 and lab.floor[k - 1] == FLOOR_STATES.index("listen"):
            seen += 1
            assert k <= s.start_sample // N - 1  # the onset is where the words begin, not before
    assert seen >= 2


def test_slow_tools_send_pending_notices_as_a_live_call_does():
    """A tool answering 5.2 s after its call: notices at 1.5 s and 4.5 s with the session's payload,
    in time order before the answer; a 1 s tool, the session's own tools and a notice due just
    before its answer (4.7 s for a 5 s tool) get none."""
    script = generate_script("support", 0)
    config = Event(0, "config", "x")
    tools = [
        rd.PlacedToolCall(1000, "lookup_order", "{}"),
        rd.PlacedToolCall(7000, "search_faq", "{}"),
        rd.PlacedToolCall(9000, "create_return", "{}"),
        rd.PlacedToolCall(12000, "end_call", "{}"),
    ]
    events = [
        config,
        Event(6200, "tool_result", "{}"),
        Event(8000, "tool_result", "{}"),
        Event(10700, "tool_result", "{}"),
        Event(17000, "tool_result", '{"status":"ending"}'),
    ]
    call = RenderedCall(
        np.zeros(20 * 16000, np.float32),
        np.zeros(20 * 16000, np.float32),
        16000,
        [],
        events,
        tools,
        script,
        0,
        False,
        "en-us",
        None,
    )
    got = [(e.t_ms, e.kind, e.payload) for e in with_tool_pending(call)]
    assert got == [
        (2500, "tool_pending", tool_pending_payload(1.5)),
        (5500, "tool_pending", tool_pending_payload(4.5)),
        (6200, "tool_result", "{}"),
        (8000, "tool_result", "{}"),
        (10700, "tool_result", "{}"),
        (17000, "tool_result", '{"status":"ending"}'),
    ]
    assert json.loads(got[0][2]) == {"seconds": 2}
    lab = micro_turn_labels(call, CFG)  # and they reach the labels, before the answer
    flat = [tok for group in lab.events for tok in group]
    assert flat[: len(TOKENIZER.encode_event("tool_pending", got[0][2]))] == TOKENIZER.encode_event(
        "tool_pending", got[0][2]
    )


@pytest.mark.parametrize("case", CASES)
def test_events_come_before_the_micro_turn_they_arrive_in(rendered, labelled, case):
    call, lab = rendered[case], labelled[case]
    arrivals = with_tool_pending(call)
    assert all(len(g) <= CFG.max_event_tokens for g in lab.events)
    flat = [(k, tok) for k, group in enumerate(lab.events) for tok in group]
    expected = [t for e in arrivals for t in TOKENIZER.encode_event(e.kind, e.payload)]
    assert [tok for _, tok in flat] == expected[: len(flat)]
    # Only the call's last event (the end_call/transfer result) may still be queued when it ends.
    assert lab.dropped_event_tokens == len(expected) - len(flat)
    assert lab.dropped_event_tokens < len(TOKENIZER.encode_event(arrivals[-1].kind, arrivals[-1].payload))
    arrivals = arrivals[:-1] if lab.dropped_event_tokens else arrivals
    pos, busy_until = 0, -1
    for e in arrivals:
        tokens = TOKENIZER.encode_event(e.kind, e.payload)
        first, last = flat[pos][0], flat[pos + len(tokens) - 1][0]
        arrive = e.t_ms // 200
        assert first >= arrive
        if busy_until < arrive:
            assert first == arrive  # nothing queued ahead of it: injected right before that micro-turn
        busy_until = last
        pos += len(tokens)


@pytest.mark.parametrize("case", CASES)
def test_tool_calls_and_prefix(rendered, labelled, case):
    call, lab = rendered[case], labelled[case]
    made = [
        (k, TOKENIZER.parse_tool_call(lab.tool[k].tolist()))
        for k in range(lab.n_turns)
        if lab.tool[k, 0] != SPECIAL.PAD
    ]
    assert [(name, args) for _, (name, args) in made] == [(t.name, t.arguments_json) for t in call.tool_calls]
    for (k, _), t in zip(made, call.tool_calls):
        a, b = output_window(k)
        assert a <= t.t_ms * rd.MS < b
        row = lab.tool[k].tolist()
        assert row[0] != SPECIAL.TOOL and SPECIAL.EOT in row  # decoded after the TOOL start token
    from agent.config import get_agent, render_prefix  # what the model server pins at serving

    body = TOKENIZER.encode(render_prefix(get_agent(call.script.agent)))[: CFG.max_prefix - 2]
    assert (
        lab.prefix
        == [SPECIAL.CONFIG, *body, SPECIAL.EVENT_END]
        == config_prefix(rd.config_text(call.script.agent), CFG)
    )


def test_pack_bytes_prefers_earlier_and_respects_bounds():
    assert pack_bytes([5, 5, 5], [0, 0, 0], 2) == [4, 5, 5]
    assert pack_bytes([0, 0, 0], [0, 0, 0], 2) == [0, 0, 1]  # nothing earlier than 0: carried later
    assert pack_bytes([3, 3, 3, 3], [3, 3, 3, 3], 3) == [3, 3, 3, 4]  # lower bound: carried later
    assert pack_bytes([2, 6], [0, 0], 1) == [2, 6]


# -- batches through the model --------------------------------------------------------------------


def test_batch_runs_through_the_tiny_model_and_losses(labelled):
    calls = list(labelled.values())[:4]
    batch = to_batch(calls, CFG, max_positions=160, seed=11)
    b, t = batch.kind.shape
    assert (b, t) == (4, 160) and batch.caller.shape == (4, 160, CFG.frames_per_turn, CFG.n_mels)
    assert batch.text.shape[-1] == CFG.max_text_tokens and batch.tool.shape[-1] == CFG.max_tool_tokens
    assert int(batch.prefix_len.max()) <= CFG.max_prefix
    for row, lab in enumerate(calls):
        kinds = batch.kind[row].tolist()
        assert kinds[0] in (KIND_EVENT, KIND_TURN)  # crops start at a micro-turn's group
        turns = [p for p, kd in enumerate(kinds) if kd == KIND_TURN]
        assert kinds[turns[-1] + 1 :] == [KIND_PAD] * (t - turns[-1] - 1)
        # Each turn position holds one micro-turn's labels, consecutive micro-turns in order.
        floors = batch.floor[row, turns].numpy()
        k0 = next(
            k
            for k in range(lab.n_turns)
            if np.array_equal(lab.floor[k : k + len(turns)], floors)
            and np.array_equal(lab.caller[k : k + len(turns)], batch.caller[row, turns].numpy())
        )
        assert np.array_equal(lab.audio[k0 : k0 + len(turns)], batch.audio[row, turns].numpy())
        events = [tok for k in range(k0, k0 + len(turns)) for tok in lab.events[k]]
        assert batch.token[row][batch.kind[row] == KIND_EVENT].tolist() == events
    assert not torch.equal(batch.kind, to_batch(calls, CFG, 160, seed=12).kind)  # other crops
    start = to_batch(calls, CFG, 160)  # no seed: from the start of each call
    assert torch.equal(start.floor[0][start.kind[0] == KIND_TURN][:5], torch.from_numpy(calls[0].floor[:5]))
    torch.manual_seed(0)
    model = InteractionModel(CFG)
    losses = compute_losses(model(batch), batch)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()


def test_a_perturbed_call_scales_its_callers_speech_and_round_trips(tmp_path, rendered):
    script = generate_script("support", 4)
    plain = rendered["support", 4]
    call = render_call(script, 4, perturb=True)
    p = call.perturbation
    assert p is not None and plain.perturbation is None
    again = render_call(script, 4, perturb=True)
    assert again.perturbation == p and np.array_equal(again.caller, call.caller)
    # the caller's lines last time_scale as long; the agent's are the same lines in the same voice
    for side, scale in (("caller", p.time_scale), ("agent", 1.0)):
        a = [s.end_sample - s.start_sample for s in plain.says if s.speaker == side and s.cut_sample is None]
        b = [s.end_sample - s.start_sample for s in call.says if s.speaker == side and s.cut_sample is None]
        assert len(a) == len(b) and a
        assert sum(b) == pytest.approx(sum(a) * scale, rel=0.01)
    assert call.caller_voice == plain.caller_voice and call.channel == plain.channel
    micro_turn_labels(call, CFG)  # labels still line up with the moved times
    cache = CorpusCache(tmp_path, perturb=True)
    assert cache.dir != CorpusCache(tmp_path).dir
    built = cache.call("support", 4)
    assert built.perturbation == p and np.array_equal(
        RenderedCall.load(cache.path("support", 4)).caller, call.caller
    )
