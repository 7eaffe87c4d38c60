"""WAV files: the one reader and writer of RIFF/WAVE audio that every package uses.

- `read_pcm16`: any integer PCM WAV (8, 16, 24 or 32 bits, any channels) as mono int16 (channels
  averaged, wider samples cut to their top 16 bits) and its rate: lenient, for callers' audio.
- `read_float`: a PCM16, PCM32 or IEEE float32/64 WAV (plain or WAVE_FORMAT_EXTENSIBLE) as float32
  [S, C] in [-1, 1) and its rate: strict, errors name the file (`WavError`).
- `write_pcm16`: int16 samples, [S] mono or [S, C] interleaved, as a PCM16 WAV.
- `write_float`: mono float audio in [-1, 1) as PCM16 (rounded, clipped at full scale).
- `write_g711`: G.711 bytes as an 8-bit mu-law (format tag 7) or A-law (6) WAV, what sipp plays.

Pure file I/O and sample conversion: no resampling, no codecs, nothing of calls or scenarios.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

from telephony.g711 import float_to_pcm16

G711_FORMAT_TAGS = {"mulaw": 7, "alaw": 6}


class WavError(ValueError):
    """A file that is not a WAV this module reads; the message names the file."""


def read_pcm16(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM WAV file as mono int16 samples and its rate."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16  # sign-extend, keep 16 bits
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV files are not supported")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return np.clip(samples, -32768, 32767).astype(np.int16), rate


def read_float(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples [S, C], rate) of a PCM16, PCM32 or IEEE float32/64 WAV (plain or extensible)."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{path}: not a RIFF/WAVE file")
    fmt = body = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunk = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = chunk
        elif cid == b"data":
            body = chunk
        pos += 8 + size + (size & 1)
    if fmt is None or body is None or len(fmt) < 16:
        raise WavError(f"{path}: WAV without a fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
        tag = struct.unpack("<H", fmt[24:26])[0]
    kinds = {(1, 16): "<i2", (1, 32): "<i4", (3, 32): "<f4", (3, 64): "<f8"}
    if (tag, bits) not in kinds:
        raise WavError(f"{path}: format {tag} with {bits} bits; use PCM16 or float32")
    frame = bits // 8 * max(channels, 1)
    x = np.frombuffer(body[: len(body) // frame * frame], dtype=kinds[tag, bits]).reshape(
        -1, max(channels, 1)
    )
    if tag == 1:
        return (x.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32), rate
    return x.astype(np.float32), rate


def write_pcm16(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    """int16 samples, [S] (mono) or [S, C] (C channels, interleaved), as a PCM16 WAV."""
    pcm = np.asarray(pcm)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())


def write_float(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """Write mono float audio in [-1, 1) as 16-bit PCM WAV (`g711.float_to_pcm16`: scaled by
    32768, rounded, clipped)."""
    write_pcm16(path, float_to_pcm16(np.asarray(audio, dtype=np.float64)), rate)


def write_g711(path: str | Path, data: bytes, encoding: str, rate: int = 8000) -> Path:
    """Mono G.711 bytes (`encoding` "mulaw" or "alaw") as an 8-bit WAV with an 18-byte fmt chunk."""
    tag = G711_FORMAT_TAGS[encoding]
    header = b"RIFF" + struct.pack("<I", 4 + 26 + 8 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHHH", 18, tag, 1, rate, rate, 1, 8, 0)
    header += b"data" + struct.pack("<I", len(data))
    Path(path).write_bytes(header + data)
    return Path(path)
