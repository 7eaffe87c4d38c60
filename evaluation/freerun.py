"""Run the model free over a generated call and show, micro-turn by micro-turn, what it decides.

Teacher-forced losses say little about how a duplex model behaves once it reads back its own
outputs. This runs a corpus call's caller channel (as PCM16 frames) and events through the offline
engine, the server's own path (model.engine), and prints the labelled floor beside the floor the
model chose and its probability of "speak". Variants feed back the teacher's output for some
channels instead of the model's own (`--feed text`, `audio`, `floor`, or several joined with `+`):
the channel whose teacher version restores the behaviour is the one the model leans on.

    python -m evaluation.freerun [--checkpoint DIR] --agent support --seeds 900000,900002 \\
        [--feed free,text,audio,floor] [--turns 150] [--text]

`--text` adds what the model wrote, run by run, beside what the labels write and the events the
call sent (a words checkpoint's reply, caller words, tool results).

Legend: . listen, b backchannel, S speak, y yield; p(S) digits are tenths of P(speak).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from corpus.labels import CallLabels, micro_turn_labels
from corpus.render import RenderedCall, config_text
from model.engine import Engine
from model.interaction import InteractionModel
from model.protocol import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, FLOOR_STATES, FRAME_BYTES
from model.scheduler import Sampling
from telephony.g711 import float_to_pcm16

SYMBOL = {"listen": ".", "backchannel": "b", "speak": "S", "yield": "y"}
CHANNELS = ("text", "audio", "floor")


@dataclass
class FreeRun:
    feed: frozenset[str]  # channels fed back from the labels instead of the model's own output
    floor: list[int]  # the floor state the model chose at each micro-turn
    p_speak: list[float]  # its probability of "speak" there
    text: list[str]  # what it wrote there
    pcm: bytes = b""  # its audio, PCM16 16 kHz, micro-turn after micro-turn


def floor_strip(floors) -> str:
    return "".join(SYMBOL[FLOOR_STATES[int(f)]] for f in floors)


def prob_strip(probs) -> str:
    return "".join(str(min(9, int(p * 10))) for p in probs)


def free_run(
    model: InteractionModel,
    call: RenderedCall,
    labels: CallLabels,
    feed=frozenset(),
    turns: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    seed: int = 0,
) -> FreeRun:
    """Step `model` over `call` as a served call would, feeding back the labels' `feed` channels."""
    unknown = set(feed) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown feed channel(s) {sorted(unknown)}; known: {', '.join(CHANNELS)}")
    engine = Engine(model, max_slots=1)
    slot = engine.admit(config_text(labels.agent), Sampling(temperature, top_p, seed))
    state = engine.state
    caller = float_to_pcm16(call.caller).tobytes()
    speak = FLOOR_STATES.index("speak")
    floors, probs, texts, pcm = [], [], [], []
    for k in range(min(labels.n_turns, turns or labels.n_turns)):
        frame = caller[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
        events = (
            labels.events[k]
            if labels.event_payloads is None
            else [engine.encode_event(kind, payload) for kind, payload in labels.event_payloads[k]]
        )
        turn = engine.step({slot: frame}, {slot: events})[slot]
        floors.append(FLOOR_STATES.index(turn.floor))
        probs.append(turn.floor_probs[speak])
        texts.append(turn.text)
        pcm.append(turn.pcm)
        if "text" in feed:
            state.prev_text[slot] = torch.from_numpy(labels.text[k])
        if "audio" in feed:
            state.prev_audio[slot] = torch.from_numpy(labels.audio[k].astype(np.int64))
        if "floor" in feed:
            state.prev_floor[slot] = int(labels.floor[k])
    return FreeRun(frozenset(feed), floors, probs, texts, b"".join(pcm))


def label_text(labels: CallLabels, k: int) -> str:
    """The text the labels write in micro-turn k."""
    row = [int(b) for b in labels.text[k] if 0 <= b < 256]
    return bytes(row).decode("utf-8", errors="replace")


def runs_of_text(texts: list[str]) -> list[tuple[int, str]]:
    """(first micro-turn, text) of each run of micro-turns that wrote something."""
    runs: list[tuple[int, str]] = []
    for k, t in enumerate(texts):
        if t and k > 0 and texts[k - 1] and runs:
            runs[-1] = (runs[-1][0], runs[-1][1] + t)
        elif t:
            runs.append((k, t))
    return runs


def main(argv: list[str] | None = None) -> None:
    from corpus.render import CorpusCache
    from model.checkpoint import load_model

    p = argparse.ArgumentParser(prog="python -m evaluation.freerun", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="checkpoint or training run directory (default: shipped)")
    p.add_argument("--agent", default="support")
    p.add_argument("--seeds", default="900000", help="held-out call seeds, comma-separated")
    p.add_argument("--train-calls", action="store_true", help="training calls instead of held-out ones")
    p.add_argument("--feed", default="free,text,audio,floor", help="variants: free or channels joined with +")
    p.add_argument("--turns", type=int, default=150, help="micro-turns per call")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--text", action="store_true", help="also print what is written, and the events")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(checkpoint=args.checkpoint).eval()
    cache = CorpusCache(background=model.cfg.event_repr == "words")  # words: a background model's calls
    for seed in (int(s) for s in args.seeds.split(",")):
        call = cache.call(args.agent, seed, not args.train_calls)
        labels = micro_turn_labels(call, model.cfg)
        n = min(labels.n_turns, args.turns)
        print(f"== {args.agent} {seed}: {n} of {labels.n_turns} micro-turns")
        print(f"{'label':<12} {floor_strip(labels.floor[:n])}")
        for variant in args.feed.split(","):
            feed = frozenset() if variant == "free" else frozenset(variant.split("+"))
            run = free_run(model, call, labels, feed, n, args.temperature, args.top_p, seed)
            print(f"{variant:<12} {floor_strip(run.floor)}")
            print(f"{'  p(S)':<12} {prob_strip(run.p_speak)}")
            if args.text:
                for k, text in runs_of_text(run.text):
                    print(f"  {k:>4} model  {text!r}")
        if args.text:
            for k, text in runs_of_text([label_text(labels, k) for k in range(n)]):
                print(f"  {k:>4} label  {text!r}")
            for k in range(n):
                for kind, payload in (labels.event_payloads or [[]] * n)[k]:
                    print(f"  {k:>4} event  {kind} {payload[:120]!r}")


if __name__ == "__main__":
    main()
