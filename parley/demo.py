"""The model demo: one synthetic caller through the streaming model, written to a stereo WAV.

A caller signal (voiced bursts with pauses) is sent to one call of the offline engine as PCM16
frames, 200 ms at a time, exactly as the model server receives them, with the agent's rendered
configuration as the call's prefix; the agent's audio, floor states and text come back per
micro-turn. Writes `call.wav` (caller left, agent right, 16 kHz) and `timeline.json` into the
output directory and returns a summary.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agent.config import get_agent, render_prefix
from model.engine import Call, Engine
from model.interaction import InteractionModel
from model.protocol import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    FLOOR_STATES,
    FRAME_BYTES,
    MICRO_TURN_MS,
    SAMPLE_RATE,
)
from model.scheduler import Sampling
from parley.call import write_stereo_wav
from telephony.g711 import float_to_pcm16, pcm16_from_bytes, pcm16_to_float


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


def run_demo(model: InteractionModel, seconds: float, out_dir: Path, agent: str = "support") -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    caller = float_to_pcm16(synthetic_caller(seconds)).tobytes()
    frames = [caller[i : i + FRAME_BYTES] for i in range(0, len(caller) - FRAME_BYTES + 1, FRAME_BYTES)]
    sampling = Sampling(DEFAULT_TEMPERATURE, DEFAULT_TOP_P, seed=1)
    engine = Engine(model, max_slots=1)
    turns = engine.run([Call(render_prefix(get_agent(agent)), frames, sampling=sampling)])[0]
    timeline = []
    for i, turn in enumerate(turns):
        entry = {"t_ms": i * MICRO_TURN_MS, "floor": turn.floor, "text": turn.text}
        if turn.tool_call:
            entry["tool_call"] = {"name": turn.tool_call.name}
        timeline.append(entry)
    agent_pcm = pcm16_from_bytes(b"".join(turn.pcm for turn in turns))
    write_stereo_wav(out_dir / "call.wav", pcm16_from_bytes(b"".join(frames)), agent_pcm, SAMPLE_RATE)
    (out_dir / "timeline.json").write_text(json.dumps(timeline, indent=1, ensure_ascii=False))
    floors = {name: sum(e["floor"] == name for e in timeline) for name in FLOOR_STATES}
    agent_float = pcm16_to_float(agent_pcm)
    return {
        "wav": str(out_dir / "call.wav"),
        "timeline": str(out_dir / "timeline.json"),
        "seconds": round(len(turns) * MICRO_TURN_MS / 1000, 1),
        "micro_turns": len(turns),
        "floor_counts": floors,
        "agent_rms": round(float(np.sqrt(np.mean(agent_float**2))), 5),
        "step_ms_p50": round(float(np.median(engine.step_ms)), 2),
    }
