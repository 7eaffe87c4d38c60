"""Held-out scenarios: synthetic calls rendered with held-out caller voices, written as scenarios.

`write_held_out(out_dir, n)` renders held-out synthetic calls (corpus.render with the held-out
caller voices) into the scenario format (evaluation.scenarios): the caller WAV is the caller
channel rendered with the agent's voice muted (same speech, noise and line; no scripted echo: when
the call had echo its parameters go to "echo", so the model hears its own voice instead),
annotations from the placed utterances (see `scenario_from_call`), the scripted tool results, agent
lines, DTMF and timer events, and the clean scripted agent channel as `<name>.agent.wav`. Support
calls also get two interjections (`held_out_interjections`): a barge-in ("Wait, wait, that's not my
order.") and a backchannel ("uh-huh"), in the call's caller voice and prosody, trimmed to their
audible speech and put through the call's line (level, band, mu-law; the WAV already has the
noise), written as `<name>.int0.wav` and `<name>.int1.wav`; drawn from the seed, so the same seed
gives the same bytes. Interpreting calls get none: their caller talks on while the interpreter
speaks, by design.
With caller_family="kokoro" the callers (interjections too) speak with Kokoro voices instead
(corpus.kokoro_voice, an engine training never used), everything else as with espeak-ng; the
scenario's source names the family and the voice either way.

This module knows the scenario format (evaluation.scenarios) and the renderer (corpus.render);
nothing of the model server, metrics' rules or reports.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from corpus.call_script import Say, ToolCall
from corpus.effects import apply_channel
from corpus.render import (
    BARGE_CUT_SAMPLES,
    agent_tts,
    agent_voices,
    caller_family_of,
    caller_voice,
    render_call,
)
from corpus.scripts import generate_script
from evaluation.metrics import speech_intervals
from evaluation.scenarios import DEFAULT_AGENTS, EVENT_KINDS, SAMPLE_RATE
from telephony.wav import write_float

HELD_OUT_SEED0 = 900_000  # far from the training corpus' seeds (which also use other caller voices)


class _MutedAgent:
    """A TTS that speaks the agent's lines as silence of the same length: rendering a call with it
    gives the same caller speech, noise and line, and no echo of the agent (the renderer draws its
    random numbers the same way whatever the agent's audio holds). It keeps every caller
    utterance it synthesised, in order (the renderer synthesises Says in item order)."""

    def __init__(self, tts, agent_voices) -> None:
        self.tts, self.agent_voices = tts, set(agent_voices)
        self.caller_audio: list[np.ndarray] = []

    def synthesize_16k(self, text: str, voice: str, *args, **kw):
        result = self.tts.synthesize_16k(text, voice, *args, **kw)
        if voice in self.agent_voices:
            return dataclasses.replace(result, audio=np.zeros_like(result.audio))
        self.caller_audio.append(result.audio)
        return result


def audible_edges(call, caller_audio: list[np.ndarray]) -> dict[int, tuple[int, int]]:
    """item -> (start, end) samples of each caller Say without the synthesiser's leading and
    trailing silence (speech_intervals of the clean utterance at the synthesiser's level)."""
    says = sorted((s for s in call.says if s.speaker == "caller"), key=lambda s: s.item)
    if len(says) != len(caller_audio):
        raise ValueError(f"{len(caller_audio)} caller utterances synthesised for {len(says)} caller Says")
    edges = {}
    for s, x in zip(says, caller_audio):
        iv = speech_intervals(x[: s.end_sample - s.start_sample], call.sample_rate)
        edges[s.item] = (
            (
                s.start_sample + round(iv[0][0] * call.sample_rate),
                s.start_sample + round(iv[-1][1] * call.sample_rate),
            )
            if iv
            else (s.start_sample, s.end_sample)
        )
    return edges


def scenario_from_call(call, name: str, edges: dict[int, tuple[int, int]] | None = None) -> dict:
    """The scenario JSON of a `RenderedCall` (corpus.render). A caller Say spans its placed
    [start, end) samples, or `edges[item]` when given (`audible_edges`). The definitions:

    - caller_speech: every caller turn part [start, end) (not caller backchannels);
    - turn_ends: the end of each caller turn (its last part, after any mid-turn pauses) that an
      agent Say (turn, filler or translation) answers;
    - pauses: support calls only, the silence between two parts of one caller turn (interpreters
      are meant to speak in those);
    - backchannels: caller Says of role backchannel; barge_ins: onsets of caller Says that cut an
      agent turn (the agent's cut is onset + one micro-turn);
    - tool_calls: the scripted calls in issue order; translations: the interpreter's Spanish
      lines as spoken; agent_lines: the agent's turns and fillers as scripted (not backchannels),
      each after the latest turn end at or before its start (a translation: after the end of the
      turn its source is part of);
    - events: DTMF keys and timers as they arrived (tool results come from tool_results).
    """
    sr = call.sample_rate
    items = call.script.items
    edges = edges or {}

    def sec(n: int) -> float:
        return round(n / sr, 4)

    def start(s) -> int:
        return edges.get(s.item, (s.start_sample, s.end_sample))[0]

    def end(s) -> int:
        return edges.get(s.item, (s.start_sample, s.end_sample))[1]

    says = sorted(call.says, key=lambda s: (s.start_sample, s.item))
    by_item = {s.item: s for s in says}
    caller_turns = [s for s in says if s.speaker == "caller" and s.role == "turn"]
    continued = {it.after.of for it in items if isinstance(it, Say) and it.pause_inside_turn}
    answered = {
        it.after.of
        for it in items
        if isinstance(it, Say) and it.speaker == "agent" and it.role != "backchannel"
    }
    turn_ends = [end(s) for s in caller_turns if s.item in answered and s.item not in continued]
    pauses = []
    if call.script.agent == "support":
        for s in caller_turns:
            it = items[s.item]
            if it.pause_inside_turn and it.after.of in by_item:
                pauses.append([sec(end(by_item[it.after.of])), sec(start(s))])
    cut_onsets = {s.cut_sample - BARGE_CUT_SAMPLES for s in says if s.speaker == "agent" and s.cut_sample}
    barge_ins = sorted(start(s) for s in says if s.speaker == "caller" and s.start_sample in cut_onsets)
    lines = []
    for s in says:
        if s.speaker == "agent" and s.role != "backchannel":
            source = items[s.item].translates
            if source is not None and source in by_item:  # a translation answers its source's turn
                after = next((k for k, t in enumerate(turn_ends) if t >= end(by_item[source])), None)
            else:
                after = max((k for k, t in enumerate(turn_ends) if t <= s.start_sample), default=None)
            lines.append({"text": items[s.item].text, "after_turn_end": after, "lang": s.lang})
    tool_results, events = [], []
    for it in items:
        if isinstance(it, ToolCall):
            answer = {"error": it.error} if it.error is not None else {"result": it.result}
            tool_results.append(
                {"name": it.name, "arguments": it.arguments, **answer, "delay_s": it.latency_ms / 1000}
            )
    for ev in call.events:
        if ev.kind in EVENT_KINDS:
            events.append({"t": ev.t_ms / 1000, "kind": ev.kind, "payload": ev.payload})
    scenario = {
        "agent": call.script.agent,
        "annotations": {
            "turn_ends": [sec(t) for t in turn_ends],
            "pauses": pauses,
            "backchannels": [
                [sec(start(s)), sec(end(s))]
                for s in says
                if s.speaker == "caller" and s.role == "backchannel"
            ],
            "barge_ins": [sec(t) for t in barge_ins],
            "tool_calls": [
                {"name": t.name, "arguments": json.loads(t.arguments_json)} for t in call.tool_calls
            ],
            "translations": [s.text for s in says if _translates(s, items)],
            "caller_speech": [[sec(start(s)), sec(end(s))] for s in caller_turns],
        },
        "tool_results": tool_results,
        "agent_lines": lines,
        "events": events,
        "agent_reference": {
            "wav": f"{name}.agent.wav",
            "text": " ".join(s.text for s in says if s.speaker == "agent" and s.text),
        },
        "source": {
            "generator": "corpus.render",
            "agent": call.script.agent,
            "seed": call.seed,
            "held_out": call.held_out,
            "agent_voice": call.agent_voice,
            "scenario": call.script.scenario,
            "features": sorted(call.script.features()),
            "channel": call.channel.to_dict(),
            "perturbation": call.perturbation.to_dict() if call.perturbation else None,
            "caller_family": caller_family_of(call.caller_voice),
            "caller_voice": call.caller_voice,
        },
    }
    if call.channel.echo_delay_ms is not None:
        scenario["echo"] = {
            "delay_ms": call.channel.echo_delay_ms,
            "attenuation_db": call.channel.echo_attenuation_db,
        }
    return scenario


INTERJECTION_SALT = 0x494E544A  # "INTJ": the interjections' random numbers, apart from the call's
BARGE_IN_LINES = (
    "Sorry, actually, can I change the delivery address?",
    "Wait, wait, that's not my order.",
    "Sorry to interrupt, can you say that again?",
    "Hang on, I gave you the wrong number.",
)
BACKCHANNEL_LINES = ("uh-huh", "okay", "right", "mm-hmm")


def _caller_voice(call) -> tuple[str, int, int, int]:
    """(voice, rate wpm, pitch, pitch range) of a rendered call's caller (corpus.render keeps
    only the voice's name with the call); the name alone, at the middle of the ranges, should the
    two ever disagree."""
    c = caller_voice(call.script, call.seed, call.held_out, caller_family_of(call.caller_voice))
    if c.name != call.caller_voice:
        return call.caller_voice, 165, 50, 55
    return c.name, int(np.clip(round(c.rate_wpm), 80, 450)), c.pitch, c.pitch_range


def held_out_interjections(call, tts, scenario: dict, name: str) -> list[tuple[dict, np.ndarray]]:
    """A support call's interjections (the module docstring) as (JSON entry, clip at 16 kHz) pairs:
    a barge-in and a backchannel, in an order drawn from the seed, each allowed from 0.5 s after
    the first caller turn end until the call's end less the clip and 1.5 s (room to stop)."""
    rng = np.random.default_rng([INTERJECTION_SALT, int(call.seed)])
    voice, rate, pitch, spread = _caller_voice(call)
    ann = scenario["annotations"]
    first = (
        ann["turn_ends"][0] if ann["turn_ends"] else min((e for _, e in ann["caller_speech"]), default=0.0)
    )
    duration = len(call.caller) / call.sample_rate
    line = dataclasses.replace(call.channel, noise="none", echo_delay_ms=None)  # the WAV has the noise
    plan = [
        ("barge_in", str(rng.choice(BARGE_IN_LINES)), round(float(rng.uniform(0.6, 1.2)), 2)),
        ("backchannel", str(rng.choice(BACKCHANNEL_LINES)), round(float(rng.uniform(0.8, 1.4)), 2)),
    ]
    if rng.random() < 0.5:
        plan.reverse()
    out = []
    for kind, text, after in plan:
        x = tts.synthesize_16k(text, voice, rate, pitch, spread).audio.astype(np.float32)
        iv = speech_intervals(x, SAMPLE_RATE)  # without the synthesiser's silence: onset = first sample
        if iv:
            x = x[int(iv[0][0] * SAMPLE_RATE) : int(round(iv[-1][1] * SAMPLE_RATE))]
        clip = apply_channel(x, np.zeros_like(x), line, np.random.default_rng(0))
        not_before = round(first + 0.5, 3)
        not_after = round(duration - len(clip) / SAMPLE_RATE - 1.5, 3)
        if not_after < not_before:
            continue
        wav = f"{name}.int{len(out)}.wav"
        out.append(
            (
                {
                    "kind": kind,
                    "wav": wav,
                    "not_before": not_before,
                    "after_speech_s": after,
                    "not_after": not_after,
                    "text": text,
                },
                clip,
            )
        )
    return out


def _translates(say, items) -> bool:
    """An interpreter's line that translates a caller's (either direction; not its intro)."""
    return say.speaker == "agent" and items[say.item].translates is not None and bool(say.text)


def write_held_out(
    out_dir: str | Path,
    n: int,
    agents: tuple[str, ...] = DEFAULT_AGENTS,
    seed0: int = HELD_OUT_SEED0,
    agent_voice: str = "espeak",
    perturb: bool = False,
    caller_family: str = "espeak",
) -> list[Path]:
    """Render `n` held-out calls (agents in turn, seeds seed0, seed0 + 1, ...) as scenarios, the
    agent's lines in `agent_voice` (corpus.render.AGENT_VOICE_CHOICES); `perturb`: the callers'
    voices and lines perturbed (corpus.perturb; the interjection clips are not); `caller_family`
    "kokoro": the callers (and their interjections) in Kokoro voices (corpus.kokoro_voice), the
    same scripts, prosody draws and lines otherwise. The source records the family and voice."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tts = agent_tts(agent_voice, caller_family)
    paths = []
    for i in range(n):
        agent, seed = agents[i % len(agents)], seed0 + i
        script = generate_script(agent, seed)
        options = {"agent_voice": agent_voice, "perturb": perturb, "caller_family": caller_family}
        call = render_call(script, seed, held_out=True, tts=tts, **options)
        muted = _MutedAgent(tts, agent_voices(agent_voice).values())
        caller = render_call(script, seed, held_out=True, tts=muted, **options).caller
        name = f"{agent}-{seed}"
        write_float(out / f"{name}.wav", caller, SAMPLE_RATE)
        write_float(out / f"{name}.agent.wav", call.agent, SAMPLE_RATE)
        scenario = scenario_from_call(call, name, audible_edges(call, muted.caller_audio))
        if agent == "support":
            interjections = held_out_interjections(call, tts, scenario, name)
            for entry, clip in interjections:
                write_float(out / entry["wav"], clip, SAMPLE_RATE)
            scenario["interjections"] = [entry for entry, _ in interjections]
        path = out / f"{name}.json"
        path.write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
