"""Mixing two voices on one leg, and the call-ended notice: pure functions on int16 PCM.

A bridged call can let each party hear the other's own voice under the interpreter: `mix_under`
adds one frame of the speaker's voice, attenuated by `ducking_db` (a positive number of dB below
its own level; None leaves it out), to the interpreter's frame of the same length, in float32,
rounded once and saturated (never wrapped) to int16.

`notice_frames(rate, frame_samples)` is the short notice a party hears before a bridged call is
hung up on them (the other party left, the other never joined, the interpreter failed): three
falling tones, the way conferencing systems say "someone left", made from sines with raised-cosine
edges (no clicks), in whole frames (a session's leg takes the model's 200 ms at 16 kHz). Tones need
no speech synthesis at run time and no language. `dial_notice_frames(kind, ...)` are the notices of
a second party that could not be reached, each its own pattern, the way phone networks say it:
`busy` (the callee was busy or declined: the busy tone, 480 + 620 Hz, half a second on and off),
`no_answer` (three rising tones, the "ended" notice backwards) and `refused` (the number may not or
cannot be dialled: the special information tone, 950 / 1400 / 1800 Hz).

Nothing here knows about calls, rooms or the model: audio in, audio out.
"""

from __future__ import annotations

import functools

import numpy as np

MAX_DUCKING_DB = 60.0

# The notice: (Hz, seconds) per tone, a gap after each, at NOTICE_LEVEL of full scale.
NOTICE_TONES = ((660.0, 0.16), (550.0, 0.16), (440.0, 0.24))
NOTICE_GAP_S = 0.06
# A party that could not be reached: (frequencies in Hz, seconds on, seconds of silence after).
DIAL_NOTICES: dict[str, tuple[tuple[tuple[float, ...], float, float], ...]] = {
    "busy": (((480.0, 620.0), 0.5, 0.5),) * 3,
    "no_answer": (((440.0,), 0.24, 0.06), ((550.0,), 0.16, 0.06), ((660.0,), 0.16, 0.3)) * 2,
    "refused": (((950.0,), 0.33, 0.0), ((1400.0,), 0.33, 0.0), ((1800.0,), 0.33, 0.5)) * 2,
}
NOTICE_LEVEL = 0.25  # -12 dBFS
RAMP_S = 0.01


def gain(ducking_db: float) -> float:
    """The amplitude factor of an attenuation of `ducking_db` dB (0 -> 1.0, 20 -> 0.1)."""
    if not 0.0 <= ducking_db <= MAX_DUCKING_DB:
        raise ValueError(f"ducking_db={ducking_db!r} must be between 0 and {MAX_DUCKING_DB:g} dB")
    return float(10.0 ** (-ducking_db / 20.0))


def mix_under(voice: np.ndarray, under: np.ndarray | None, ducking_db: float | None) -> np.ndarray:
    """`voice` (int16) with `under` (int16, the same length) added `ducking_db` dB below its own
    level, saturated to int16. `voice` itself when `ducking_db` or `under` is None."""
    if ducking_db is None or under is None:
        return voice
    if under.shape != voice.shape:
        raise ValueError(f"mix_under: {under.shape} samples under a voice of {voice.shape}")
    mixed = voice.astype(np.float32) + under.astype(np.float32) * np.float32(gain(ducking_db))
    return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)


def _tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    wave = np.sin(2.0 * np.pi * hz * t)
    ramp = min(int(RAMP_S * rate), n // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)  # raised cosine, 0 -> 1
        wave[:ramp] *= edge
        wave[n - ramp :] *= edge[::-1]
    return wave


@functools.cache
def notice_frames(rate: int, frame_samples: int) -> tuple[np.ndarray, ...]:
    """The call-ended notice at `rate` as whole frames of `frame_samples` int16 samples (the last
    padded with silence); read-only."""
    gap = np.zeros(int(round(NOTICE_GAP_S * rate)))
    parts = [p for hz, seconds in NOTICE_TONES for p in (_tone(hz, seconds, rate), gap)]
    return _frames(np.concatenate(parts) * NOTICE_LEVEL * 32767, frame_samples)


@functools.cache
def dial_notice_frames(kind: str, rate: int, frame_samples: int) -> tuple[np.ndarray, ...]:
    """The notice of an unreachable party (`kind`: a key of DIAL_NOTICES) at `rate`, as whole
    frames of `frame_samples` int16 samples; read-only. Raises KeyError for an unknown kind."""
    parts = []
    for freqs, on_s, off_s in DIAL_NOTICES[kind]:
        parts.append(sum(_tone(hz, on_s, rate) for hz in freqs) / len(freqs))
        parts.append(np.zeros(int(round(off_s * rate))))
    return _frames(np.concatenate(parts) * NOTICE_LEVEL * 32767, frame_samples)


def _frames(signal: np.ndarray, frame_samples: int) -> tuple[np.ndarray, ...]:
    frames = -(-signal.size // frame_samples)
    padded = np.zeros(frames * frame_samples)
    padded[: signal.size] = signal
    out = np.rint(padded).astype(np.int16).reshape(frames, frame_samples)
    out.setflags(write=False)
    return tuple(out)
