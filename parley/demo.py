"""The model demo: one synthetic caller through the streaming model, written to a stereo WAV.

Until the websocket call path exists this is what `make run` shows: a caller signal (voiced bursts
with pauses) is fed to one slot 200 ms at a time exactly as the model server will, and the agent's
audio, floor states and text come back per micro-turn. Writes `call.wav` (caller left, agent right,
16 kHz) and `timeline.json` into the output directory and returns a summary.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from model.config import FLOOR_STATES, MICRO_TURN_MS, MICRO_TURN_SAMPLES, SAMPLE_RATE
from model.interaction import InteractionModel, StepInputs
from model.state import StreamState
from model.tokenizer import ByteTokenizer, StreamDecoder
from telephony.wav import write_pcm16


def synthetic_caller(seconds: float, seed: int = 0) -> np.ndarray:
    """float32 mono 16 kHz: voiced 'syllables' with a gliding pitch, grouped into turns."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = 130 + 25 * np.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = (np.sin(2 * math.pi * 4.0 * t) > -0.2).astype(np.float32)
    turns = ((t % 4.0) < 2.2).astype(np.float32)  # 2.2 s talking, 1.8 s waiting for the agent
    noise = rng.normal(0, 0.003, n)
    return (0.2 * voiced * syllables * turns + noise).astype(np.float32)


def write_stereo_wav(path: Path, left: np.ndarray, right: np.ndarray) -> None:
    pcm = np.stack([left, right], axis=1)
    pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2")
    write_pcm16(path, pcm, SAMPLE_RATE)


def run_demo(model: InteractionModel, seconds: float, out_dir: Path, agent: str = "support") -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = ByteTokenizer()
    caller = synthetic_caller(seconds)
    turns = len(caller) // MICRO_TURN_SAMPLES
    state = StreamState.allocate(model.cfg, 1)
    state.set_sampling(0, temperature=0.8, top_p=0.9, seed=1)
    model.prefill(state, 0, tok.encode_event("config", f"agent={agent}")[: model.cfg.max_prefix])
    decoder = StreamDecoder()
    agent_audio, timeline, step_ms = [], [], []
    for i in range(turns):
        frame = torch.from_numpy(caller[i * MICRO_TURN_SAMPLES:(i + 1) * MICRO_TURN_SAMPLES])[None]
        t0 = time.perf_counter()
        out = model.step(state, StepInputs(audio=frame), [0])
        step_ms.append((time.perf_counter() - t0) * 1000)
        agent_audio.append(out.pcm[0].numpy())
        entry = {"t_ms": i * MICRO_TURN_MS, "floor": FLOOR_STATES[int(out.floor[0])],
                 "text": decoder.push(out.text[0].tolist())}
        call = tok.parse_tool_call(out.tool[0].tolist()) if int(out.tool[0, 0]) != tok.special.PAD else None
        if call:
            entry["tool_call"] = {"name": call[0]}
        timeline.append(entry)
    agent_pcm = np.concatenate(agent_audio)
    write_stereo_wav(out_dir / "call.wav", caller[: len(agent_pcm)], agent_pcm)
    (out_dir / "timeline.json").write_text(json.dumps(timeline, indent=1, ensure_ascii=False))
    floors = {name: sum(e["floor"] == name for e in timeline) for name in FLOOR_STATES}
    return {
        "wav": str(out_dir / "call.wav"),
        "timeline": str(out_dir / "timeline.json"),
        "seconds": round(turns * MICRO_TURN_MS / 1000, 1),
        "micro_turns": turns,
        "floor_counts": floors,
        "agent_rms": round(float(np.sqrt(np.mean(agent_pcm**2))), 5),
        "step_ms_p50": round(float(np.median(step_ms)), 2),
    }
