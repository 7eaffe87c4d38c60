"""How well the background model hears: scenarios' caller audio through the segmenter and Whisper.

`evaluate_hearing(scenarios)` feeds each scenario's caller channel to an `agent.hearing.Segmenter`
frame by frame, as the gateway would, transcribes every final segment with a
`workers.hearing.Transcriber`, and compares the words with what the caller was scripted to say.
Scenario files carry no caller text: it is regenerated from their `source` (agent, seed,
held_out) with `corpus.scripts.generate_script`, and the caller's voice with
`corpus.render.caller_voice`; a scenario without a source (a hand-made one) is skipped with a note.

Reported: WER (evaluation.metrics' normalisation) pooled, per caller voice and per voice family
(the espeak-ng base voice: the accent), also with number words and digit strings folded to single
digits on both sides ("four eight two" = "482" = "4 8 2": the script spells numbers, Whisper
writes digits); the live latency of each segment, end of speech (its last voiced chunk) -> the end
of the frame at which the segmenter emitted it (`decision_s`) plus the measured transcription time
(`latency_s`), and the same from the annotated end of the caller's turn; and CPU seconds per
second of caller audio for the VAD and for Whisper. `format_hearing_report(result)` prints it.
Kokoro callers (corpus.kokoro_voice) form one family, "kokoro" (`voice_family`).

Knows nothing of the model server or the interaction metrics; never logs what was said.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.hearing import Segmenter
from corpus.call_script import Say
from corpus.render import caller_family_of, caller_voice
from corpus.scripts import generate_script
from evaluation.metrics import normalize_words, percentiles, word_errors
from evaluation.scenarios import Scenario
from model.protocol import FRAME_SAMPLES
from workers.hearing import Transcriber

TURN_MATCH_S = 0.6  # a segment ending this close to an annotated turn end is that turn's end
_NUMBERS = {
    w: str(i)
    for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))
}
_NUMBERS["oh"] = "0"


def fold_digits(text: str) -> str:
    """`normalize_words(text)` with number words (zero..nine, "oh") as digits and every digit of a
    word apart ("a48213" -> "a 4 8 2 1 3")."""
    out: list[str] = []
    for word in normalize_words(text):
        word = _NUMBERS.get(word, word)
        run = ""
        for c in word:
            if c.isdigit():
                if run:
                    out.append(run)
                    run = ""
                out.append(c)
            else:
                run += c
        if run:
            out.append(run)
    return " ".join(out)


def caller_script(scenario: Scenario) -> tuple[str, str] | None:
    """(the caller's scripted words in order, the caller's voice) of a generated scenario, or None
    when its JSON has no usable `source`."""
    data = scenario.path.read_text() if scenario.path is not None else None
    if data is None:
        return None
    source = json.loads(data).get("source")
    if not isinstance(source, dict) or not {"agent", "seed", "held_out"} <= set(source):
        return None
    script = generate_script(source["agent"], int(source["seed"]))
    if source.get("scenario") not in (None, script.scenario):
        return None  # the script generator changed since the scenario was written
    says = [it for it in script.items if isinstance(it, Say) and it.speaker == "caller"]
    family = source.get("caller_family", "espeak")  # scenarios written before families: espeak-ng
    voice = caller_voice(script, int(source["seed"]), bool(source["held_out"]), family).name
    return " ".join(s.text for s in says), voice


def voice_family(voice: str) -> str:
    """What the WER table groups a caller voice under: "kokoro" for every Kokoro voice, else the
    espeak-ng base voice ("en-us-nyc+m7" -> "en-us-nyc")."""
    return caller_family_of(voice) if caller_family_of(voice) != "espeak" else voice.split("+")[0]


def _frames(x: np.ndarray):
    n = -(-len(x) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    padded[: len(x)] = x
    for k in range(n):
        yield padded[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]


def _hear(seg, decided_s: float | None, transcriber: Transcriber, segments: list[dict]) -> float:
    """Transcribe one segment into `segments`; the CPU seconds it took."""
    c = time.process_time()
    heard = transcriber.transcribe(seg.audio)
    cpu = time.process_time() - c
    segments.append(
        {
            "index": seg.index,
            "start_s": seg.start_s,
            "end_s": seg.end_s,
            "decided_s": decided_s,
            "audio_s": round(heard.audio_s, 3),
            "work_s": round(heard.work_s, 4),
            "text": heard.text,
        }
    )
    return cpu


def hear_call(audio: np.ndarray, segmenter: Segmenter, transcriber: Transcriber) -> dict[str, Any]:
    """One caller channel through `segmenter` and `transcriber`: the final segments with their
    text and times, and the CPU seconds of each stage."""
    segments, vad_cpu, asr_cpu = [], 0.0, 0.0
    found = []
    for frame in _frames(audio):
        c = time.process_time()
        found.extend(segmenter.push(frame))
        vad_cpu += time.process_time() - c
        for seg in found:
            if seg.final:
                asr_cpu += _hear(seg, round(segmenter.t_s, 4), transcriber, segments)
        found = []
    c = time.process_time()
    tail = segmenter.flush()
    vad_cpu += time.process_time() - c
    for seg in tail:
        asr_cpu += _hear(seg, None, transcriber, segments)  # the call ended: no live decision
    return {"segments": segments, "vad_cpu_s": vad_cpu, "asr_cpu_s": asr_cpu}


def _wer_block(errors: int, words: int, d_errors: int, d_words: int) -> dict[str, Any]:
    return {
        "wer": round(errors / words, 4) if words else None,
        "wer_digits": round(d_errors / d_words, 4) if d_words else None,
        "words": words,
    }


def evaluate_hearing(
    scenarios: Sequence[Scenario],
    *,
    segmenter_options: dict[str, Any] | None = None,
    transcriber: Transcriber | None = None,
) -> dict[str, Any]:
    """The hearing report of `scenarios` (module docstring) as a dict: "calls" (per scenario:
    voice, WER counts, segments), "summary" (pooled WER, by voice and by voice family, latency
    percentiles, CPU per caller-second, segments per caller turn) and "notes". `segmenter_options`
    go to each call's `Segmenter`; `transcriber` defaults to Whisper base (workers.hearing) at 2 threads (the
    callers of both shipped agents speak English)."""
    transcriber = transcriber or Transcriber()
    transcriber.load()
    notes: list[str] = []
    calls: list[dict[str, Any]] = []
    latency, turn_latency, decision = [], [], []
    vad_cpu = asr_cpu = audio_s = 0.0
    n_turns = n_segments = 0
    by_voice: dict[str, list[int]] = {}
    by_family: dict[str, list[int]] = {}
    totals = [0, 0, 0, 0]
    for sc in scenarios:
        known = caller_script(sc)
        if known is None:
            notes.append(f"{sc.name}: no generator source, so no caller text: skipped")
            continue
        reference, voice = known
        heard = hear_call(sc.audio, Segmenter(**(segmenter_options or {})), transcriber)
        hypothesis = " ".join(s["text"] for s in heard["segments"] if s["text"])
        errors, words = word_errors(reference, hypothesis)
        d_errors, d_words = word_errors(fold_digits(reference), fold_digits(hypothesis))
        counts = [errors, words, d_errors, d_words]
        family = voice_family(voice)
        for table, key in ((by_voice, voice), (by_family, family)):
            row = table.setdefault(key, [0, 0, 0, 0])
            for i, v in enumerate(counts):
                row[i] += v
        for i, v in enumerate(counts):
            totals[i] += v
        turn_ends = list(sc.annotations.turn_ends) or [e for _, e in sc.annotations.caller_speech]
        for seg in heard["segments"]:
            if seg["decided_s"] is None:
                continue
            decision.append(seg["decided_s"] - seg["end_s"])
            latency.append(seg["decided_s"] - seg["end_s"] + seg["work_s"])
            near = [t for t in turn_ends if abs(seg["end_s"] - t) <= TURN_MATCH_S]
            if near:
                turn_latency.append(
                    seg["decided_s"] + seg["work_s"] - min(near, key=lambda t: abs(seg["end_s"] - t))
                )
        vad_cpu += heard["vad_cpu_s"]
        asr_cpu += heard["asr_cpu_s"]
        audio_s += sc.duration_s
        n_turns += len(sc.annotations.caller_speech)
        n_segments += len(heard["segments"])
        calls.append(
            {
                "name": sc.name,
                "agent": sc.agent,
                "voice": voice,
                "duration_s": round(sc.duration_s, 3),
                **_wer_block(*counts),
                "errors": errors,
                "reference": reference,
                "hypothesis": hypothesis,
                "segments": heard["segments"],
            }
        )

    def table(rows: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
        return {k: _wer_block(*v) for k, v in sorted(rows.items())}

    def pct(values: list[float]) -> dict[str, float | None]:
        return {k: (None if v is None else round(v, 3)) for k, v in percentiles(values, (50, 90, 99)).items()}

    summary = {
        **_wer_block(*totals),
        "calls": len(calls),
        "caller_seconds": round(audio_s, 1),
        "segments": n_segments,
        "caller_turns": n_turns,
        "latency_s": pct(latency),
        "decision_s": pct(decision),
        "turn_end_latency_s": pct(turn_latency),
        "transcribe_s": pct([s["work_s"] for c in calls for s in c["segments"]]),
        "vad_cpu_per_caller_s": round(vad_cpu / audio_s, 4) if audio_s else None,
        "asr_cpu_per_caller_s": round(asr_cpu / audio_s, 4) if audio_s else None,
        "by_voice": table(by_voice),
        "by_family": table(by_family),
        "segmenter": segmenter_options or {},
        "transcriber_threads": transcriber.threads,
    }
    return {"calls": calls, "summary": summary, "notes": notes}


def format_hearing_report(result: dict[str, Any]) -> str:
    """A few lines of text: the pooled figures, then WER per voice family and per voice."""
    s = result["summary"]

    def p(d: dict[str, float | None]) -> str:
        return " / ".join("-" if v is None else f"{v:.3f}" for v in d.values()) + f" s ({'/'.join(d)})"

    def w(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        f"hearing: {s['calls']} calls, {s['caller_seconds']} s of caller audio, {s['segments']} segments "
        f"for {s['caller_turns']} caller turns",
        f"WER {w(s['wer'])} (digits folded {w(s['wer_digits'])}) over {s['words']} words",
        f"latency, end of speech -> words: {p(s['latency_s'])}",
        f"  of which the segmenter's decision: {p(s['decision_s'])}; transcription: {p(s['transcribe_s'])}",
        f"  from the annotated turn end: {p(s['turn_end_latency_s'])}",
        f"CPU per caller-second: VAD {w(s['vad_cpu_per_caller_s'])}, Whisper {w(s['asr_cpu_per_caller_s'])}",
        "WER by voice family (digits folded):",
    ]
    lines += [
        f"  {k:<24} {w(v['wer'])} ({w(v['wer_digits'])}) {v['words']} words"
        for k, v in s["by_family"].items()
    ]
    lines.append("WER by voice (digits folded):")
    lines += [
        f"  {k:<24} {w(v['wer'])} ({w(v['wer_digits'])}) {v['words']} words" for k, v in s["by_voice"].items()
    ]
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
