"""The VAD cascade baseline of `parley eval`: a walkie-talkie agent driven by Silero VAD.

Evaluation only, never in the call path. It stands for the classic pipeline (VAD endpointing -> ASR
-> LLM -> TTS) reduced to its timing, speaking the scenario's scripted lines, so the model's metrics
have a baseline on the same scenarios (README.md "Model card", "Scenario format"). Causal: every
decision uses only audio heard so far; deterministic for a given caller array and package versions.
The rules are on `run_cascade`; its `track` is measured like the model's (`metrics.speech_intervals`),
with no floor states and no tool calls.

What it does not know: scenarios (a player is anything with `step(k, agent_audio)` and
`track(n)`), reports, the interaction model, recognisers.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from corpus.render import AGENT_RATE_WPM, AGENT_VOICES, word_onsets
from corpus.tts import Espeak
from evaluation.metrics import AgentTrack, speech_intervals
from model.config import MICRO_TURN_SAMPLES as FRAME  # where a reactive caller may start a clip
from model.protocol import SAMPLE_RATE

CHUNK = 512  # Silero's chunk at 16 kHz: 32 ms
CHUNK_MS = 1000 * CHUNK / SAMPLE_RATE
FADE_SAMPLES = 8 * SAMPLE_RATE // 1000
OUTCOMES = ("finished", "barged_in", "cancelled", "call_ended")


@dataclass(frozen=True)
class AgentLine:
    """One scripted agent line. `after_turn_end`: the 0-based index of the first detected turn
    end that may answer with this line (None: the next one)."""

    text: str
    lang: str = "en"
    after_turn_end: int | None = None


@dataclass(frozen=True)
class CascadeTurn:
    """One answer the cascade decided to give. Times in seconds on the caller clock."""

    line: int  # index into agent_lines
    text: str  # what was heard: the words before a barge-in cut; "" when cancelled
    turn_end_s: float  # end of the caller speech being answered, as the VAD saw it
    decided_s: float  # when silence_ms of silence had passed
    start_s: float | None  # playback start; None when cancelled before it
    end_s: float | None  # playback end (after a cut: the cut); None when cancelled
    outcome: str  # OUTCOMES: finished, barged_in, cancelled (before playback), call_ended


@dataclass(eq=False)
class CascadeResult:
    agent_audio: np.ndarray  # [N] float32 16 kHz, same length as the caller channel
    track: AgentTrack
    turns: list[CascadeTurn]
    vad_probs: np.ndarray  # [ceil(N / CHUNK)] float32: Silero's speech probability per chunk


# ------------------------------------------------------------------------------------------ VAD

_vad_model = None
_vad_lock = threading.Lock()


def _load_vad():
    """The process's Silero VAD (TorchScript), loaded once. Importing silero_vad sets torch's
    thread count to 1 as a side effect; the caller's setting is put back."""
    global _vad_model
    if _vad_model is None:
        import torch

        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad  # optional `eval` dependency, imported only here
        finally:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():  # importlib.resources.path and torch.jit.load deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            _vad_model = load_silero_vad()
    return _vad_model


def _ms_to_samples(name: str, ms: float) -> int:
    if not np.isfinite(ms) or ms < 0:
        raise ValueError(f"{name} must be a non-negative number of ms, got {ms!r}")
    return int(round(ms * SAMPLE_RATE / 1000))


def _check_caller(caller: np.ndarray) -> np.ndarray:
    if not isinstance(caller, np.ndarray) or caller.ndim != 1:
        raise ValueError("caller must be a 1-D numpy array (mono, 16 kHz)")
    if caller.dtype not in (np.float32, np.float64):
        raise ValueError(f"caller must be float32 in [-1, 1], got dtype {caller.dtype}")
    if caller.size == 0:
        raise ValueError("caller is empty")
    if not np.isfinite(caller).all():
        raise ValueError("caller contains NaN or infinite samples")
    return np.ascontiguousarray(caller, dtype=np.float32)


# --------------------------------------------------------------------------------------- cascade


@dataclass
class _Playing:
    line: int
    audio: np.ndarray  # the line at 16 kHz
    words: list[tuple[str, int]]  # (token, onset sample within the line)
    turn_end: int  # samples
    decided: int
    start: int
    end: int  # exclusive, clipped to the call


def run_cascade(
    caller: np.ndarray,
    agent_lines: list[AgentLine],
    *,
    silence_ms: float = 600,
    barge_min_ms: float = 200,
    processing_ms: float = 300,
    min_speech_ms: float = 96,
    threshold: float = 0.5,
    neg_threshold: float = 0.35,
    echo_gain: float = 0.0,
    echo_delay_ms: float = 100,
    tts: Espeak | None = None,
) -> CascadeResult:
    """Run the VAD cascade over one call's caller channel (float32, 16 kHz), causally, in Silero's
    512-sample (32 ms) chunks, the `silero-vad` model stepped one chunk at a time with its state.
    `tts` defaults to the process's `Espeak.instance()`. Per chunk:

    - VAD, with Silero's hysteresis: speech starts when the probability reaches `threshold` and ends
      when it falls below `neg_threshold`; a speech run starts at the start of its first speech
      chunk, a silence at the start of its first non-speech chunk.
    - Turn end: listening, after the caller has spoken (a run of at least `min_speech_ms`, three
      chunks) and then been silent for `silence_ms`, the next scripted line starts `processing_ms`
      later. 300 ms stands for final ASR + LLM first token + TTS first audio in a well-tuned
      streaming pipeline, on the optimistic side (deployed cascades usually add 0.5-1 s to the
      endpointing silence), so the baseline is no straw man. Each detected turn end gets at most one
      line; `AgentLine.after_turn_end` holds a line back until that many turn ends were detected.
    - Waiting to speak: caller speech of `barge_min_ms` cancels the pending answer (its line stays
      next in the queue).
    - Speaking: caller speech of `barge_min_ms` stops the line at the end of that chunk, with an 8 ms
      fade; the line is used up and its text keeps the words whose onset lies before the cut. The
      VAD cannot tell who speaks, so caller backchannels and echo cut the agent too (the cascade's
      known weakness, what the false-stop metrics measure). A stop takes effect at once (no output
      buffer to flush), again in the baseline's favour.

    Lines are voiced with espeak-ng in the training data's agent voice (corpus.render `AGENT_VOICES`,
    `AGENT_RATE_WPM`, pitch and range 50) at 16 kHz. Echo of the scenario's agent is whatever the
    caller channel holds; `echo_gain` > 0 adds the cascade's own output to what it hears, delayed by
    `echo_delay_ms` (a line without echo cancellation)."""
    import torch

    x = _check_caller(caller)
    silence = _ms_to_samples("silence_ms", silence_ms)
    barge_min = _ms_to_samples("barge_min_ms", barge_min_ms)
    processing = _ms_to_samples("processing_ms", processing_ms)
    min_speech = _ms_to_samples("min_speech_ms", min_speech_ms)
    echo_delay = _ms_to_samples("echo_delay_ms", echo_delay_ms)
    if not 0 < neg_threshold <= threshold < 1:
        raise ValueError(
            f"need 0 < neg_threshold <= threshold < 1, got neg_threshold={neg_threshold}, "
            f"threshold={threshold}"
        )
    if not np.isfinite(echo_gain) or echo_gain < 0:
        raise ValueError(f"echo_gain must be >= 0, got {echo_gain!r}")
    for i, line in enumerate(agent_lines):
        if line.lang not in AGENT_VOICES:
            raise ValueError(
                f"agent_lines[{i}].lang={line.lang!r}: no agent voice; known {sorted(AGENT_VOICES)}"
            )
    tts = tts or Espeak.instance()
    synthesized: dict[tuple[str, str], tuple[np.ndarray, list[tuple[str, int]]]] = {}

    def voice(line: AgentLine) -> tuple[np.ndarray, list[tuple[str, int]]]:
        key = (line.text, line.lang)
        if key not in synthesized:
            r = tts.synthesize_16k(line.text, AGENT_VOICES[line.lang], AGENT_RATE_WPM, 50, 50)
            synthesized[key] = (r.audio.astype(np.float32), word_onsets(line.text, r.words))
        return synthesized[key]

    n = len(x)
    n_chunks = -(-n // CHUNK)
    out = np.zeros(n, dtype=np.float32)
    probs = np.zeros(n_chunks, dtype=np.float32)
    turns: list[CascadeTurn] = []

    in_speech = False
    run_start = 0  # first sample of the current speech run
    silence_start = 0  # first sample of the current silence
    heard = False  # the caller has spoken since the last detected turn end
    n_turn_ends = 0
    next_line = 0
    playing: _Playing | None = None  # pending (before start) or sounding

    def finish(p: _Playing, end: int, outcome: str) -> None:
        text = (
            "" if outcome == "cancelled" else " ".join(tok for tok, onset in p.words if p.start + onset < end)
        )
        started = outcome != "cancelled"
        turns.append(
            CascadeTurn(
                p.line,
                text,
                p.turn_end / SAMPLE_RATE,
                p.decided / SAMPLE_RATE,
                p.start / SAMPLE_RATE if started else None,
                end / SAMPLE_RATE if started else None,
                outcome,
            )
        )

    with _vad_lock, torch.inference_mode():
        vad = _load_vad()
        vad.reset_states()
        for k in range(n_chunks):
            a, b = k * CHUNK, min((k + 1) * CHUNK, n)
            heard_chunk = np.zeros(CHUNK, dtype=np.float32)
            heard_chunk[: b - a] = x[a:b]
            lo, hi = max(a - echo_delay, 0), b - echo_delay
            if echo_gain > 0 and hi > lo:  # own output echo_delay late: only samples already decided
                heard_chunk[lo + echo_delay - a : b - a] += echo_gain * out[lo:hi]
            p = float(vad(torch.from_numpy(heard_chunk), SAMPLE_RATE))
            probs[k] = p

            if in_speech and p < neg_threshold:
                in_speech, silence_start = False, a
            elif not in_speech and p >= threshold:
                in_speech, run_start = True, a
            run = b - run_start if in_speech else 0

            if playing is not None and b <= playing.start:  # answer decided, not sounding yet
                if run >= barge_min:
                    out[playing.start : playing.end] = 0.0
                    finish(playing, playing.start, "cancelled")
                    next_line = playing.line  # not spoken: it answers the next turn end
                    playing, heard = None, True
                continue
            if playing is not None:  # sounding
                if b >= playing.end:
                    finish(
                        playing,
                        playing.end,
                        "finished" if playing.end - playing.start == len(playing.audio) else "call_ended",
                    )
                    playing = None
                elif run >= barge_min:
                    cut = b
                    fade = min(FADE_SAMPLES, playing.end - cut)
                    out[cut : cut + fade] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
                    out[cut + fade : playing.end] = 0.0
                    finish(playing, cut, "barged_in")
                    playing, heard = None, True
                continue

            # listening
            if in_speech:
                heard = heard or run >= min_speech
            elif heard and b - silence_start >= silence:
                heard = False
                index = n_turn_ends
                n_turn_ends += 1
                if next_line < len(agent_lines):
                    due = agent_lines[next_line].after_turn_end
                    if due is None or index >= due:
                        audio, words = voice(agent_lines[next_line])
                        start = b + processing
                        end = min(start + len(audio), n)
                        if start < n:
                            out[start:end] = audio[: end - start]
                            playing = _Playing(next_line, audio, words, silence_start, b, start, end)
                        else:  # the call ends before the answer could sound
                            turns.append(
                                CascadeTurn(
                                    next_line,
                                    "",
                                    silence_start / SAMPLE_RATE,
                                    b / SAMPLE_RATE,
                                    None,
                                    None,
                                    "call_ended",
                                )
                            )
                        next_line += 1

    text = " ".join(t.text for t in turns if t.text)
    track = AgentTrack(speech=speech_intervals(out, SAMPLE_RATE), floor=[], tool_calls=[], text=text)
    return CascadeResult(agent_audio=out, track=track, turns=turns, vad_probs=probs)


class Player(Protocol):
    """A reactive caller (evaluation.interjections.InterjectionPlayer)."""

    def step(self, k: int, agent: np.ndarray) -> int | None: ...

    def track(self, n: int) -> np.ndarray: ...


def run_cascade_reactive(
    caller: np.ndarray, agent_lines: list[AgentLine], player: Player, **kwargs
) -> CascadeResult:
    """`run_cascade` against a caller that reacts to it: at each frame boundary k * FRAME,
    `player.step(k, agent_audio)` sees the cascade's output so far (it reads only what precedes the
    boundary) and may start a clip there; the call is then run again with `player.track` added to
    the caller channel. `kwargs` go to `run_cascade`; without a clip played, its result as is.
    The cascade is causal, so its output before an onset is the same in both runs: one
    deterministic rerun per clip played."""
    x = _check_caller(caller)
    result = run_cascade(x, agent_lines, **kwargs)
    for k in range(-(-len(x) // FRAME)):
        if player.step(k, result.agent_audio) is not None:
            result = run_cascade(x + player.track(len(x)), agent_lines, **kwargs)
    return result
