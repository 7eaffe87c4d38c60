"""Rendering a `CallScript` into a two-channel 16 kHz call: audio, placed words, events, tool calls.

`render_call` gives a `RenderedCall`: the caller channel (what the model hears: caller speech + echo
of the agent + noise through a phone line, corpus.effects), a clean agent channel (what the model
should say), the utterances as placed (text actually spoken, word onsets), events and tool calls.
Invariant: the same (script, seed, held_out) always gives the same samples (espeak-ng
is deterministic per utterance; every random choice comes from a seeded numpy Generator), and both
channels are on the PCM16 grid, so a call from `CorpusCache` is bit-identical to a fresh one.
Timing rules are on `_place`, voices on `caller_voice`, events on `render_call`.

What it does not know: labels, micro-turn alignment, tensors (corpus.labels does that).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import zipfile
import zlib
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from agent.events import event_json
from corpus import kokoro_voice, piper_voice
from corpus.background_calls import BACKGROUND_VERSION, HEARING_WER, heard_text, with_background
from corpus.call_script import SCRIPT_VERSION, CallScript, Dtmf, Say, Timer, ToolCall, caller_lang
from corpus.effects import ChannelParams, apply_channel, to_pcm16_grid
from corpus.paths import default_cache_dir
from corpus.perturb import PERTURB_VERSION, Perturbation
from corpus.scripts import generate_script
from corpus.tts import Espeak
from model.config import MICRO_TURN_SAMPLES
from model.protocol import SAMPLE_RATE

RENDER_VERSION = 1
MS = SAMPLE_RATE // 1000  # samples per millisecond

AGENT_VARIANT = "f3"
AGENT_VOICES = {"en": f"en-us+{AGENT_VARIANT}", "es": f"es+{AGENT_VARIANT}"}
AGENT_RATE_WPM = 170
AGENT_VOICE_CHOICES = ("espeak", "piper")  # "espeak": what the shipped checkpoint was trained on
CALLER_FAMILIES = ("espeak", "kokoro")  # "kokoro": held-out callers of another engine, evaluation only
TRAIN_CALLER_BASES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029")
TRAIN_CALLER_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "f1",
    "f2",
    "f4",
    "klatt",
    "klatt2",
    "klatt3",
    "Annie",
    "Andy",
    "Alicia",
    "benjamin",
    "steph",
    "david",
    "john",
    "aunty",
    "adam",
    "grandma",
    "grandpa",
    "shelby",
    "michel",
    "marcelo",
    "robert",
    "Reed",
    "belinda",
    "norbert",
    "zac",
    "travis",
)
HELD_OUT_CALLER_BASES = ("en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
HELD_OUT_CALLER_VARIANTS = (
    "m7",
    "m8",
    "f5",
    "klatt4",
    "linda",
    "max",
    "edward",
    "paul",
    "rob",
    "quincy",
    "Lee",
    "caleb",
)


def _voices(bases: tuple[str, ...], variants: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{b}+{v}" if v else b for b in bases for v in variants)


TRAIN_CALLER_VOICES = _voices(TRAIN_CALLER_BASES, TRAIN_CALLER_VARIANTS)
HELD_OUT_CALLER_VOICES = _voices(HELD_OUT_CALLER_BASES, HELD_OUT_CALLER_VARIANTS)
# Spanish callers ("translate-es-en"): espeak-ng has two Spanish voices, so one each, and the
# split is disjoint in accent and timbre as the English one is: Latin American for training (the
# accent most callers of a Spanish-English line have), Spain's held out, with the same variants.
TRAIN_CALLER_BASES_ES = ("es-419",)
HELD_OUT_CALLER_BASES_ES = ("es",)
TRAIN_CALLER_VOICES_ES = _voices(TRAIN_CALLER_BASES_ES, TRAIN_CALLER_VARIANTS)
HELD_OUT_CALLER_VOICES_ES = _voices(HELD_OUT_CALLER_BASES_ES, HELD_OUT_CALLER_VARIANTS)
CALLER_RATE_WPM = (145.0, 185.0)
CALLER_RATE_JITTER = 0.06
BARGE_CUT_SAMPLES = MICRO_TURN_SAMPLES  # the agent stops one micro-turn after the caller's onset
BARGE_CLAMP_FRAC = 0.55
FADE_SAMPLES = 8 * MS
TIMER_SILENCE_CAP_MS = 8000
_SEED_SALT = 0x50524C59  # "PRLY"


def caller_voices(held_out: bool = False, family: str = "espeak", lang: str = "en") -> tuple[str, ...]:
    """The caller voices of a split for callers speaking `lang` ("en", or "es"): espeak-ng's, or
    with family="kokoro" (English, held out only: no training call ever speaks with it) Kokoro's
    `kokoro_voice.CALLER_VOICES` ("kokoro:<voice>")."""
    if family == "kokoro":
        if not held_out:
            raise ValueError("the kokoro caller family is held out: evaluation only, never training")
        if lang != "en":
            raise ValueError(f"the kokoro caller family speaks English only, not {lang!r}")
        return kokoro_voice.CALLER_VOICES
    if family != "espeak":
        raise ValueError(f"caller family must be one of {CALLER_FAMILIES}, got {family!r}")
    if lang == "es":
        return HELD_OUT_CALLER_VOICES_ES if held_out else TRAIN_CALLER_VOICES_ES
    if lang != "en":
        raise ValueError(f"no caller voices for language {lang!r}")
    return HELD_OUT_CALLER_VOICES if held_out else TRAIN_CALLER_VOICES


def caller_family_of(voice: str) -> str:
    """The family (`CALLER_FAMILIES`) of a caller voice name."""
    return "kokoro" if voice.startswith(kokoro_voice.PREFIX) else "espeak"


def agent_voices(agent_voice: str = "espeak") -> dict[str, str]:
    """Language -> the agent's voice: `AGENT_VOICES` (one fixed variant in English and Spanish,
    fixed rate and pitch), or with agent_voice="piper" piper joe (`piper_voice.VOICE_NAME`) for
    English, each distinct line voiced once, then read from disk. Every English agent line takes
    the English voice: support's, the interpreters' intros and translate-es-en's translations."""
    if agent_voice == "espeak":
        return dict(AGENT_VOICES)
    if agent_voice == "piper":
        return {**AGENT_VOICES, "en": piper_voice.VOICE_NAME}
    raise ValueError(f"agent_voice must be one of {AGENT_VOICE_CHOICES}, got {agent_voice!r}")


def agent_tts(agent_voice: str = "espeak", caller_family: str = "espeak"):
    """A TTS that speaks every voice of `agent_voices(agent_voice)` and the callers' voices (of
    `caller_family`: "kokoro" lines through `kokoro_voice.WithKokoro`)."""
    agent_voices(agent_voice)  # ValueError if unknown
    tts = piper_voice.WithPiper(Espeak.instance()) if agent_voice == "piper" else Espeak.instance()
    if caller_family == "kokoro":
        return kokoro_voice.WithKokoro(tts)
    return tts


def config_text(agent_name: str) -> str:
    """The configuration text the model reads for `agent_name`: exactly what the agent session
    sends the model server at serving (agent.config.render_prefix); the server and
    corpus.labels cut it to the model's prefix budget."""
    from agent.config import get_agent, render_prefix  # pydantic only; kept out of model imports

    return render_prefix(get_agent(agent_name))


def tool_event(call: ToolCall) -> tuple[str, str]:
    """(kind, payload) of the event a tool call's answer injects."""
    if call.error is not None:
        return "tool_error", event_json(call.error)
    return "tool_result", event_json(call.result)


# -- the rendered call ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    text: str  # the whitespace-separated token of the Say's text, punctuation attached
    start_sample: int  # onset on the call's clock


@dataclass(frozen=True)
class PlacedSay:
    item: int  # index in script.items
    speaker: str
    role: str  # "turn" | "backchannel" | "filler"
    lang: str
    start_sample: int
    end_sample: int  # exclusive; after any barge-in cut
    text: str  # what was actually spoken (words before a cut)
    words: tuple[Word, ...]
    cut_sample: int | None = None  # agent turns cut by a barge-in: caller onset + 200 ms
    not_before_sample: int = 0  # agent Says answering a result/timer/keys: when that became known
    reply_sample: int | None = None  # agent Says the background model replied: when the reply arrived


class Event(NamedTuple):
    t_ms: int
    kind: str  # model.tokenizer.EVENT_KINDS
    payload: str


class PlacedToolCall(NamedTuple):
    t_ms: int
    name: str
    arguments_json: str


@dataclass(eq=False)
class RenderedCall:
    caller: np.ndarray  # [N] float32, PCM16 grid: what the model hears
    agent: np.ndarray  # [N] float32, PCM16 grid: what the agent says (clean)
    sample_rate: int
    says: list[PlacedSay]  # in start order
    events: list[Event]  # in time order; the config event first
    tool_calls: list[PlacedToolCall]
    script: CallScript
    seed: int
    held_out: bool
    caller_voice: str
    channel: ChannelParams
    agent_voice: str = "espeak"  # AGENT_VOICE_CHOICES
    perturbation: Perturbation | None = None  # the caller's voice and line (render_call perturb=True)
    background: bool = False  # with a background model's words and replies (render_call background=True)

    @property
    def n_samples(self) -> int:
        return len(self.caller)

    @property
    def n_turns(self) -> int:
        return self.n_samples // MICRO_TURN_SAMPLES

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    def save(self, file) -> None:
        """Compressed .npz: PCM16 channels and one JSON metadata string."""
        meta = {
            "render_version": RENDER_VERSION,
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "held_out": self.held_out,
            "caller_voice": self.caller_voice,
            "channel": self.channel.to_dict(),
            "agent_voice": self.agent_voice,
            "perturbation": self.perturbation.to_dict() if self.perturbation else None,
            "background": self.background,
            "script": self.script.to_json(),
            "says": [
                {**asdict(s), "words": [list(w) for w in ((w.text, w.start_sample) for w in s.words)]}
                for s in self.says
            ],
            "events": [list(e) for e in self.events],
            "tool_calls": [list(t) for t in self.tool_calls],
        }
        np.savez_compressed(
            file,
            caller=_pcm16(self.caller),
            agent=_pcm16(self.agent),
            meta=np.array(json.dumps(meta, ensure_ascii=False)),
        )

    @classmethod
    def load(cls, file) -> RenderedCall:
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            caller = data["caller"].astype(np.float32) / 32768.0
            agent = data["agent"].astype(np.float32) / 32768.0
        if meta["render_version"] != RENDER_VERSION:
            raise ValueError(f"rendered with version {meta['render_version']}, this code is {RENDER_VERSION}")
        says = [PlacedSay(**{**s, "words": tuple(Word(t, n) for t, n in s["words"])}) for s in meta["says"]]
        return cls(
            caller,
            agent,
            meta["sample_rate"],
            says,
            [Event(*e) for e in meta["events"]],
            [PlacedToolCall(*t) for t in meta["tool_calls"]],
            CallScript.from_json(meta["script"]),
            meta["seed"],
            meta["held_out"],
            meta["caller_voice"],
            ChannelParams(**meta["channel"]),
            meta.get("agent_voice", "espeak"),  # calls cached before the choice existed: espeak
            Perturbation(**meta["perturbation"]) if meta.get("perturbation") else None,
            meta.get("background", False),
        )


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


# -- synthesis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Voice:
    name: str
    rate_wpm: float
    pitch: int
    pitch_range: int


def word_onsets(text: str, words) -> list[tuple[str, int]]:
    """(token, onset sample) for each whitespace-separated token of `text`, from espeak's word
    events (which may repeat, go back, or split a token: the earliest onset inside a token wins;
    a token with no event takes the previous onset; onsets never decrease)."""
    tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts = [t[1] for t in tokens]
    onsets: list[int | None] = [None] * len(tokens)
    for w in words:
        k = bisect_right(starts, w.text_offset) - 1
        if k >= 0 and w.text_offset < tokens[k][2]:
            onsets[k] = w.start_sample if onsets[k] is None else min(onsets[k], w.start_sample)
    out, last = [], 0
    for (tok, _, _), onset in zip(tokens, onsets):
        last = max(last, onset if onset is not None else last)
        out.append((tok, last))
    return out


class _Synth:
    def __init__(
        self,
        tts: Espeak,
        caller: _Voice,
        rng: np.random.Generator,
        agent: dict[str, str] = AGENT_VOICES,
        perturb: Perturbation | None = None,
    ) -> None:
        self.tts, self.caller, self.rng, self.agent, self.perturb = tts, caller, rng, agent, perturb

    def __call__(self, say: Say) -> tuple[np.ndarray, list[tuple[str, int]]]:
        if say.speaker == "agent":
            voice, rate, pitch, spread = self.agent[say.lang], AGENT_RATE_WPM, 50, 50
        else:
            c = self.caller
            jitter = self.rng.uniform(1 - CALLER_RATE_JITTER, 1 + CALLER_RATE_JITTER)
            voice, rate, pitch, spread = c.name, c.rate_wpm * jitter, c.pitch, c.pitch_range
        result = self.tts.synthesize_16k(say.text, voice, int(np.clip(round(rate), 80, 450)), pitch, spread)
        audio, onsets = result.audio.astype(np.float32), word_onsets(say.text, result.words)
        if say.speaker == "caller" and self.perturb is not None:
            audio = self.perturb.apply_voice(audio)
            onsets = [(w, round(t * self.perturb.time_scale)) for w, t in onsets]
        return audio, onsets


# -- placement ------------------------------------------------------------------------------------


@dataclass
class _Placed:
    start: int
    end: int
    audio: np.ndarray | None = None
    words: list[tuple[str, int]] | None = None  # relative onsets
    cut: int | None = None
    not_before: int = 0
    reply_at: int | None = None


def _place(script: CallScript, synth: _Synth) -> list[_Placed]:
    """Absolute times for the script's items, walked in list order (references point backwards;
    list order is not time order). `Gap(ref, ms, overlap_ok, of, frac)`: start = (start or end of
    item `of`) + frac * its duration + ms; `of=None` is the call's start. A Say ends when its audio
    ends; a ToolCall when its result (or error) arrives, latency_ms after issue; a Timer when it
    fires; Dtmf after len(digits) * interval_ms; Handoff/EndCall at their start, ending the call.
    - A Say resolving inside the same speaker's previous Say starts when that one ends (answers
      after interim fillers, consecutive translation chunks).
    - Barge-in: the caller's Say starts `ms` after the agent turn's start; the agent is cut at the
      caller's onset + one micro-turn (200 ms) with an 8 ms fade, keeping the words whose onset lies
      before the cut. If onset + 200 ms is at or past the turn's end, the onset moves to 55% of it.
    - Timers: both sides are silent until it fires, but never more than 8 s after the last speech
      (a 60 s callback would be 95% silence); the payload says how many seconds actually passed:
      {"timer": note, "seconds": elapsed}.
    - Replies (a background model beside the call, corpus.background_calls): an agent Say with
      `reply_ms` has its reply arrive that long after item `of` ends, and starts no sooner than
      `reply_lead_ms` after that; nor is it known before (`not_before`).
    - The call ends one micro-turn after the micro-turn in which its last item ends."""
    items = script.items
    placed: list[_Placed] = []
    for _i, it in enumerate(items):
        g = it.after
        if g.of is None:
            base = 0
        else:
            ref = placed[g.of]
            base = ref.start + round(g.frac * (ref.end - ref.start)) if g.ref == "prev_start" else ref.end
        start = base + g.ms * MS
        if isinstance(it, Say):
            audio, words = synth(it)
            if it.barge_in:
                agent = placed[g.of]
                length = agent.end - agent.start
                if g.ms * MS + BARGE_CUT_SAMPLES >= length:
                    start = agent.start + round(BARGE_CLAMP_FRAC * length)
            same = [
                q.end
                for j, q in enumerate(placed)
                if isinstance(items[j], Say) and items[j].speaker == it.speaker
            ]
            start = max(start, max(same, default=0), 0)
            p = _Placed(start, start + len(audio), audio, words)
            if it.barge_in:
                cut = start + BARGE_CUT_SAMPLES
                if cut < agent.end:
                    agent.end, agent.cut = cut, cut
            ref_item = items[g.of] if g.of is not None else None
            if it.reply_ms is not None and g.of is not None:  # voiced once the reply has arrived
                p.reply_at = placed[g.of].end + it.reply_ms * MS
                lead = p.reply_at + it.reply_lead_ms * MS - p.start
                if lead > 0:
                    p.start, p.end = p.start + lead, p.end + lead
            if it.speaker == "agent" and g.ref == "prev_end":
                if isinstance(ref_item, (ToolCall, Timer)):
                    p.not_before = placed[g.of].end
                elif isinstance(ref_item, Dtmf):
                    p.not_before = placed[g.of].start + (len(ref_item.digits) - 1) * ref_item.interval_ms * MS
            if p.reply_at is not None:
                p.not_before = max(p.not_before, p.reply_at)
        elif isinstance(it, ToolCall):
            start = max(start, 0)
            p = _Placed(start, start + it.latency_ms * MS)
        elif isinstance(it, Timer):
            start = max(start, 0)
            speech_end = max((q.end for j, q in enumerate(placed) if isinstance(items[j], Say)), default=0)
            fire = min(start + it.seconds * 1000 * MS, max(start, speech_end) + TIMER_SILENCE_CAP_MS * MS)
            p = _Placed(start, fire)
        elif isinstance(it, Dtmf):
            start = max(start, 0)
            p = _Placed(start, start + len(it.digits) * it.interval_ms * MS)
        else:  # Handoff, EndCall
            start = max(start, 0)
            p = _Placed(start, start)
        placed.append(p)
    return placed


def _background_events(items, placed: list[_Placed], rng: np.random.Generator) -> list[Event]:
    """The background model's events: each caller Say's words as heard, each reply's text."""
    vocabulary = [
        w for it in items if isinstance(it, Say) and it.speaker == "caller" for w in it.text.split()
    ]
    wer = float(rng.uniform(*HEARING_WER))
    events = []
    for it, p in zip(items, placed):
        if isinstance(it, Say) and it.heard_ms is not None:
            words = heard_text(it.text, rng, wer, vocabulary)
            if words:
                events.append(Event(p.end // MS + it.heard_ms, "caller_words", words))
        if isinstance(it, Say) and p.reply_at is not None:
            events.append(Event(p.reply_at // MS, "reply", it.text))
    return events


def _rng(script: CallScript, seed: int, held_out: bool) -> np.random.Generator:
    entropy = [_SEED_SALT, RENDER_VERSION, zlib.crc32(script.agent.encode()), int(seed), int(held_out)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def caller_voice(script: CallScript, seed: int, held_out: bool = False, family: str = "espeak") -> _Voice:
    """The caller's voice, rate, pitch and pitch range of call (script, seed, held_out), as
    `render_call` draws them (the held-out scenarios voice the caller's interjections with it).
    One voice per call from `TRAIN_CALLER_VOICES`, or `HELD_OUT_CALLER_VOICES` when held_out: the
    two are disjoint in base voice (accent) and variant (timbre), and neither uses the agent's
    variant (a Spanish-speaking caller, `call_script.caller_lang`: the `_ES` sets, split alike).
    Rate 145-185 wpm times `script.style.rate_factor` (+-6% per utterance). Drawn the same
    whatever the agent voice: with "piper" only the agent's audio and what depends on its timing
    change (its Spanish lines and the caller stay on espeak-ng). family="kokoro" (held out only):
    the voice from `kokoro_voice.CALLER_VOICES`, the same draws (Kokoro maps the rate to its speed
    and ignores pitch), so everything else about the call stays as with espeak-ng."""
    voice_rng = _rng(script, seed, held_out).spawn(3)[0]
    voices = caller_voices(held_out, family, caller_lang(script.agent))
    return _Voice(
        voices[int(voice_rng.integers(len(voices)))],
        float(voice_rng.uniform(*CALLER_RATE_WPM)) * script.style.rate_factor,
        int(voice_rng.integers(30, 71)),
        int(voice_rng.integers(30, 81)),
    )


def render_call(
    script: CallScript,
    seed: int,
    held_out: bool = False,
    tts: Espeak | None = None,
    agent_voice: str = "espeak",
    perturb: bool = False,
    background: bool = False,
    caller_family: str = "espeak",
) -> RenderedCall:
    """Synthesise and lay out `script` (times: `_place`). Same arguments, same call.
    `tts` (default `agent_tts(agent_voice)`) must speak the voices of `agent_voices(agent_voice)`.
    Events (t_ms, kind, payload): the configuration at t=0 (`config_text`), tool results/errors
    when they arrive (compact JSON of the result dict or the error string), timers when they fire,
    one "dtmf" per key. Tool calls (t_ms, name, arguments_json) at their issue time.
    `perturb`: the caller's voice and line also perturbed (corpus.perturb, drawn per call from its
    own stream, so everything else is as without). `background`: a background model beside the
    call (corpus.background_calls, its own stream): the script gets its delays and
    acknowledgements, each caller Say's words arrive as "caller_words" (as heard: `heard_text`),
    each reply as "reply" with the agent Say's text, and the Say is voiced after it.
    `caller_family`: "kokoro" (held_out only) voices the caller with Kokoro (`caller_voice`); a
    given `tts` must then speak "kokoro:" voices (`agent_tts(agent_voice, "kokoro")`)."""
    voices_of_agent = agent_voices(agent_voice)
    tts = tts or agent_tts(agent_voice, caller_family)
    # the first: `caller_voice`; the fourth only with perturb, the fifth only with background
    # (children 0-2 are the same either way)
    _, prosody_rng, channel_rng, perturb_rng, background_rng = _rng(script, seed, held_out).spawn(5)
    caller = caller_voice(script, seed, held_out, caller_family)
    if background:
        script = with_background(script, background_rng)
    items = script.items
    perturbation = Perturbation.draw(perturb_rng) if perturb else None
    placed = _place(script, _Synth(tts, caller, prosody_rng, voices_of_agent, perturbation))

    last = max(p.end for p in placed)
    n = (last // MICRO_TURN_SAMPLES + 2) * MICRO_TURN_SAMPLES  # one whole micro-turn after the last end
    tracks = {"caller": np.zeros(n, np.float32), "agent": np.zeros(n, np.float32)}
    says: list[PlacedSay] = []
    for i, (it, p) in enumerate(zip(items, placed)):
        if not isinstance(it, Say):
            continue
        audio = p.audio[: p.end - p.start].copy()
        if p.cut is not None:
            fade = min(FADE_SAMPLES, len(audio))
            audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        tracks[it.speaker][p.start : p.start + len(audio)] += audio
        words = tuple(
            Word(tok, p.start + onset) for tok, onset in p.words if p.cut is None or p.start + onset < p.cut
        )
        spoken = " ".join(w.text for w in words)
        says.append(
            PlacedSay(
                i,
                it.speaker,
                it.role,
                it.lang,
                p.start,
                p.end,
                spoken,
                words,
                p.cut,
                p.not_before,
                p.reply_at,
            )
        )
    says.sort(key=lambda s: (s.start_sample, s.item))

    events: list[Event] = [Event(0, "config", config_text(script.agent))]
    tool_calls: list[PlacedToolCall] = []
    for it, p in zip(items, placed):
        if isinstance(it, ToolCall):
            tool_calls.append(PlacedToolCall(p.start // MS, it.name, event_json(it.arguments)))
            events.append(Event(p.end // MS, *tool_event(it)))
        elif isinstance(it, Timer):
            elapsed = round((p.end - p.start) / SAMPLE_RATE)
            events.append(Event(p.end // MS, "timer", event_json({"timer": it.note, "seconds": elapsed})))
        elif isinstance(it, Dtmf):
            for k, digit in enumerate(it.digits):
                events.append(Event((p.start + k * it.interval_ms * MS) // MS, "dtmf", digit))
    if background:
        events += _background_events(items, placed, background_rng)
    events.sort(key=lambda e: e.t_ms)  # stable: same-time events keep script order
    tool_calls.sort(key=lambda t: t.t_ms)

    params = ChannelParams.draw(channel_rng)
    agent = to_pcm16_grid(tracks["agent"])
    mic = perturbation.apply_mic(tracks["caller"], perturb_rng) if perturbation else tracks["caller"]
    caller_channel = apply_channel(mic, agent, params, channel_rng)
    if perturbation is not None:
        caller_channel = to_pcm16_grid(perturbation.apply_line(caller_channel, params.band, perturb_rng))
    return RenderedCall(
        caller_channel,
        agent,
        SAMPLE_RATE,
        says,
        events,
        tool_calls,
        script,
        seed,
        held_out,
        caller.name,
        params,
        agent_voice,
        perturbation,
        background,
    )


# -- cache ----------------------------------------------------------------------------------------


class CorpusCache:
    """Rendered calls on disk, one compressed .npz per (agent, seed, split), rendered on a miss.

    The directory name carries the render, script and espeakng-loader versions (and for
    agent_voice="piper" the piper voice with a digest of its versions and settings), so a change
    to any of them, or another agent voice, starts a fresh corpus instead of reading stale calls.
    Inside it each agent has its own directory (`path`), so a new agent (translate-es-en) adds
    calls without touching the others'. Writes are atomic. Root: $PARLEY_CACHE_DIR or
    ~/.cache/parley/corpus, a directory per agent voice."""

    def __init__(
        self,
        root: str | Path | None = None,
        agent_voice: str = "espeak",
        perturb: bool = False,
        background: bool = False,
    ) -> None:
        agent_voices(agent_voice)  # ValueError if unknown
        self.root = Path(root) if root is not None else default_cache_dir()
        self.agent_voice, self.perturb, self.background = agent_voice, perturb, background
        espeak = importlib.metadata.version("espeakng-loader")
        name = f"render{RENDER_VERSION}-script{SCRIPT_VERSION}-espeak{espeak}"
        if agent_voice == "piper":  # the voice and a digest of everything that shapes its audio
            name += f"-piper-{piper_voice.VOICE_ID}-{piper_voice.settings_digest()}"
        if perturb:  # the perturbations' code is part of the corpus: G722's version with it
            name += f"-perturb{PERTURB_VERSION}-g722{importlib.metadata.version('G722')}"
        if background:
            name += f"-background{BACKGROUND_VERSION}"
        self.dir = self.root / name

    def path(self, agent: str, seed: int, held_out: bool = False) -> Path:
        return self.dir / agent / ("held_out" if held_out else "train") / f"{int(seed)}.npz"

    def call(self, agent: str, seed: int, held_out: bool = False) -> RenderedCall:
        path = self.path(agent, seed, held_out)
        if path.is_file():
            try:
                call = RenderedCall.load(path)
                same = call.agent_voice == self.agent_voice and call.background == self.background
                if same and (call.perturbation is not None) == self.perturb:
                    return call
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                pass  # a damaged or stale file: render it again
        script = generate_script(agent, seed)
        call = render_call(
            script,
            seed,
            held_out,
            agent_voice=self.agent_voice,
            perturb=self.perturb,
            background=self.background,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        call.save(buf)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
        return call
