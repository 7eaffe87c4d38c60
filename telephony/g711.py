"""G.711 codecs (mu-law, A-law) and PCM16 conversions: pure functions on numpy arrays.

This module holds the sample codecs every telephony transport needs: ITU-T G.711 mu-law and
A-law, little-endian 16-bit PCM, float <-> int16, and `decode`/`encode` that dispatch on an
encoding name ("pcm16" | "mulaw" | "alaw"). Nothing here keeps state between calls and nothing
here knows about sample rates, packets, transports or the model: a payload in, samples out.

The codecs are table lookups. The tables are computed once at import from the G.711 segment
definitions (8 segments of 16 steps each, the step doubling from one segment to the next), not
from `audioop`, which Python 3.13 removed:

- decode: 256 entries, code byte -> int16 (the reconstruction level in the middle of each step);
- encode: 65536 entries, int16 (as its uint16 bit pattern) -> code byte.

Encoding follows the classic 16-bit wrapper around the G.711 reference coder, which is what
`audioop.lin2ulaw` / `lin2alaw` compute, bit for bit: the 16-bit sample is shifted right
(floor) to the 14-bit (mu-law) or 13-bit (A-law) range the standard is defined on; mu-law takes
the magnitude of that value and A-law its ones' complement for negative values. The tests compare
all 65536 encodes and all 256 decodes with `audioop` wherever `audioop` still exists.

Bytes on the wire: mu-law and A-law are one byte per sample; pcm16 is two bytes per sample,
little-endian (Twilio, the native protocol and RTP L16-in-our-transports all use that order).
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

ENCODINGS = ("pcm16", "mulaw", "alaw")
BYTES_PER_SAMPLE = {"pcm16": 2, "mulaw": 1, "alaw": 1}

Payload = bytes | bytearray | memoryview | np.ndarray

# --- G.711 segment definitions --------------------------------------------------------------------
# mu-law works on 14-bit magnitudes biased by 33: segment s covers biased values [32 << s, 64 << s),
# in 16 steps of (2 << s). The transmitted byte is the complement of (sign, segment, step) with the
# sign bit set for positive values. Magnitudes above 8158 saturate to the last step.
_ULAW_BIAS = 33
_ULAW_SEG_END = np.array([(64 << s) - 1 for s in range(8)], dtype=np.int32)  # 63, 127, ..., 8191
# A-law works on 13-bit magnitudes: segment 0 covers [0, 32) in steps of 2, segment s >= 1 covers
# [16 << s, 32 << s) in steps of (1 << s). The transmitted byte has its even bits inverted (xor
# 0x55) and the sign bit set for positive values.
_ALAW_SEG_END = np.array([(32 << s) - 1 for s in range(8)], dtype=np.int32)  # 31, 63, ..., 4095


def _build_ulaw_decode() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    seg = (code >> 4) & 0x7
    step = code & 0xF
    # Middle of the step in 14-bit units is ((2*step + 33) << seg) - 33; times 4 for 16 bits.
    magnitude = (((step << 3) + 4 * _ULAW_BIAS) << seg) - 4 * _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (code >> 4) & 0x7
    step = code & 0xF
    # Middle of the step in 13-bit units: (2*step + 1) in segment 0, (2*step + 33) << (seg - 1)
    # above; times 8 for 16 bits.
    magnitude = np.where(
        seg == 0,
        (step << 4) + 8,
        ((step << 4) + 0x108) << np.maximum(seg - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    value14 = pcm >> 2
    magnitude = np.minimum(np.abs(value14), 8159)
    biased = np.minimum(magnitude + _ULAW_BIAS, 0x1FFF)  # 8159 + 33 saturates to the last step
    seg = np.searchsorted(_ULAW_SEG_END, biased)  # first segment whose end >= biased
    step = (biased >> (seg + 1)) & 0xF
    mask = np.where(value14 < 0, 0x7F, 0xFF)
    codes = ((seg << 4) | step) ^ mask
    return _by_bit_pattern(pcm, codes)


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    value13 = pcm >> 3
    magnitude = np.where(value13 < 0, -value13 - 1, value13)  # ones' complement for negatives
    seg = np.searchsorted(_ALAW_SEG_END, magnitude)
    step = (magnitude >> np.maximum(seg, 1)) & 0xF
    mask = np.where(value13 < 0, 0x55, 0xD5)
    codes = ((seg << 4) | step) ^ mask
    return _by_bit_pattern(pcm, codes)


def _by_bit_pattern(pcm: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reorder a table indexed from -32768 upwards so it is indexed by the uint16 bit pattern."""
    table = np.empty(65536, dtype=np.uint8)
    table[pcm.astype(np.int16).view(np.uint16)] = codes
    return table


_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()
_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()
# The decode tables scaled to float32 in [-1, 1): the same values as pcm16_to_float of the int16
# tables (a division by a power of two is exact), one lookup instead of a lookup and two array ops.
_ULAW_DECODE_F32 = _ULAW_DECODE.astype(np.float32) * np.float32(1.0 / 32768.0)
_ALAW_DECODE_F32 = _ALAW_DECODE.astype(np.float32) * np.float32(1.0 / 32768.0)
for _table in (_ULAW_DECODE, _ALAW_DECODE, _ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE_F32, _ALAW_DECODE_F32):
    _table.setflags(write=False)
del _table


# --- checks ------------------------------------------------------------------------------------------
def _check_pcm16(pcm: object, what: str) -> np.ndarray:
    if not isinstance(pcm, np.ndarray):
        raise ValueError(f"{what}: expected a numpy int16 array, got {type(pcm).__name__}")
    if pcm.dtype != np.int16:
        raise ValueError(f"{what}: expected int16 samples, got dtype {pcm.dtype}")
    return pcm


def _as_codes(payload: Payload, what: str) -> np.ndarray:
    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8:
            raise ValueError(f"{what}: expected uint8 code bytes, got dtype {payload.dtype}")
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return np.frombuffer(payload, dtype=np.uint8)
    raise ValueError(f"{what}: expected bytes or a uint8 array, got {type(payload).__name__}")


# --- G.711 -------------------------------------------------------------------------------------------
def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> mu-law code bytes (uint8 array of the same shape)."""
    pcm = _check_pcm16(pcm, "ulaw_encode")
    return _ULAW_ENCODE[pcm.view(np.uint16)]


def ulaw_decode(payload: Payload) -> np.ndarray:
    """mu-law code bytes (bytes-like or uint8 array) -> int16 samples."""
    return _ULAW_DECODE[_as_codes(payload, "ulaw_decode")]


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> A-law code bytes (uint8 array of the same shape)."""
    pcm = _check_pcm16(pcm, "alaw_encode")
    return _ALAW_ENCODE[pcm.view(np.uint16)]


def alaw_decode(payload: Payload) -> np.ndarray:
    """A-law code bytes (bytes-like or uint8 array) -> int16 samples."""
    return _ALAW_DECODE[_as_codes(payload, "alaw_decode")]


# --- PCM16 -------------------------------------------------------------------------------------------
def pcm16_from_bytes(payload: bytes | bytearray | memoryview) -> np.ndarray:
    """Little-endian 16-bit PCM bytes -> a new, writable int16 array."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"pcm16_from_bytes: expected bytes, got {type(payload).__name__}")
    n = memoryview(payload).nbytes
    if n % 2:
        raise ValueError(f"pcm16_from_bytes: payload of {n} bytes is not a whole number of 16-bit samples")
    return np.frombuffer(payload, dtype="<i2").astype(np.int16)


def pcm16_to_bytes(pcm: np.ndarray) -> bytes:
    """int16 samples -> little-endian 16-bit PCM bytes."""
    pcm = _check_pcm16(pcm, "pcm16_to_bytes")
    return pcm.astype("<i2", copy=False).tobytes()


def float_to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) -> int16 (scaled by 32768, rounded, clipped; NaN -> 0)."""
    if not isinstance(samples, np.ndarray) or not np.issubdtype(samples.dtype, np.floating):
        got = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise ValueError(f"float_to_pcm16: expected a floating-point array, got {got}")
    scaled = np.nan_to_num(samples * 32768.0, nan=0.0)
    return np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1) (divided by 32768; exact)."""
    pcm = _check_pcm16(pcm, "pcm16_to_float")
    return pcm.astype(np.float32) * np.float32(1.0 / 32768.0)


# --- dispatch on an encoding name --------------------------------------------------------------------
def _check_encoding(encoding: str) -> None:
    if encoding not in BYTES_PER_SAMPLE:
        raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def decode(encoding: str, payload: Payload) -> np.ndarray:
    """A payload in `encoding` ("pcm16" | "mulaw" | "alaw") -> int16 samples."""
    _check_encoding(encoding)
    if encoding == "mulaw":
        return ulaw_decode(payload)
    if encoding == "alaw":
        return alaw_decode(payload)
    if isinstance(payload, np.ndarray):
        raise ValueError("decode('pcm16', ...): expected bytes, got a numpy array")
    return pcm16_from_bytes(payload)


def decode_float(encoding: str, payload: Payload) -> np.ndarray:
    """A payload in `encoding` -> float32 samples in [-1, 1): exactly `pcm16_to_float(decode(...))`."""
    _check_encoding(encoding)
    if encoding == "mulaw":
        return _ULAW_DECODE_F32[_as_codes(payload, "decode_float")]
    if encoding == "alaw":
        return _ALAW_DECODE_F32[_as_codes(payload, "decode_float")]
    return pcm16_to_float(decode(encoding, payload))


def encode(encoding: str, pcm: np.ndarray) -> bytes:
    """int16 samples -> payload bytes in `encoding` ("pcm16" | "mulaw" | "alaw")."""
    _check_encoding(encoding)
    if encoding == "mulaw":
        return ulaw_encode(pcm).tobytes()
    if encoding == "alaw":
        return alaw_encode(pcm).tobytes()
    return pcm16_to_bytes(pcm)


def silence(encoding: str, samples: int) -> bytes:
    """`samples` samples of digital silence in `encoding` (0xFF mu-law, 0xD5 A-law, zeros pcm16)."""
    return encode(encoding, np.zeros(samples, dtype=np.int16))
