"""Pieces several test packages share: a synthetic voiced caller, and stopping a process group."""

from __future__ import annotations

import math
import os
import signal
import subprocess
from pathlib import Path

import numpy as np

from telephony.wav import write_pcm16


def voiced_wav(
    path: Path,
    seconds: float,
    rate: int = 16000,
    f0: float = 140.0,
    syllable_hz: float = 1.5,
    amplitude: float = 6000.0,
) -> Path:
    """A PCM16 mono WAV of a voice-like caller: harmonics of `f0`, switched on and off at
    `syllable_hz` (speech for the VAD and the model, silence between)."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))
    gate = (np.sin(2 * math.pi * syllable_hz * t) > 0).astype(float)
    write_pcm16(path, (amplitude * voiced * gate).astype("<i2"), rate)
    return path


def stop_group(proc: subprocess.Popen | None, grace_s: float = 15.0) -> None:
    """SIGTERM a child's whole process group, SIGKILL it if it has not exited after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
