"""The model-server session contract, torch-free: what a gateway and a model server say per call.

Everything both sides must agree on lives here once: the micro-turn's frame (16 kHz int16 mono,
200 ms = 3200 samples = 6400 bytes), the floor states, the default sampling of a call. The server
(model.server), the gateway's client (agent.model_client), the benchmark's echo stand-in and the
tests' fake all import it; it imports nothing heavier than the standard library.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000
MICRO_TURN_MS = 200
FRAME_SAMPLES = SAMPLE_RATE * MICRO_TURN_MS // 1000  # 3200
FRAME_BYTES = 2 * FRAME_SAMPLES  # int16 little-endian

FLOOR_STATES = ("listen", "backchannel", "speak", "yield")

# What a call is sampled with when its hello names nothing: temperature and top-p shape what the
# model writes (text bytes, dMel levels); its decisions are drawn at their own odds (model.sampling).
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.9
