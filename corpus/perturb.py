"""Caller voices and lines beyond what a speech engine and corpus.effects give: so the model hears
speech, not a generator.

The voice (before the line):
- `speed`: resampling (tempo, pitch and formants move together; Kaldi's speed perturbation).
- `tempo`: WSOLA time-stretch: slower or faster speech at the same pitch and formants.
- `vtlp`: vocal-tract-length perturbation (after Jaitly & Hinton, 2013): every frequency scaled by
  `alpha` (formants and harmonics move together), the duration kept.
- `level_drift`: the talker moving relative to the phone: a slow random gain curve.

The line (after corpus.effects.apply_channel):
- `g722_round_trip`: a wideband call through G.722 at 64 kbit/s (Sippy's libg722, bit-exact ITU).
- `packet_loss`: 20 ms packets lost in bursts (a Gilbert-Elliott chain), concealed as a receiver
  does when it has nothing better: the last packet repeated, fading, then silence.

`Perturbation.draw(rng)` picks one caller's; `apply_voice` (each utterance), `apply_mic` (the
caller's track) and `apply_line` (the channel) run them, as corpus.render does with
`perturb=True`. Pure functions on mono float32 numpy arrays at 16 kHz unless a rate is given;
every random choice comes from the `numpy.random.Generator` passed in. Nothing here knows of
scripts, labels or the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr

from model.protocol import SAMPLE_RATE
from telephony.g711 import float_to_pcm16, pcm16_to_float

PERTURB_VERSION = 1  # bump when what a drawn perturbation does to audio changes (corpus caches)
PACKET_MS = 20
G722_DELAY = 22  # samples the codec's QMF filters delay the signal by (measured: SNR peaks there)


# -- the voice --------------------------------------------------------------------------------------
def speed(x: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`factor` times faster (> 1: shorter and higher), by resampling."""
    if factor == 1.0:
        return np.asarray(x, np.float32)
    return soxr.resample(np.asarray(x, np.float32), sample_rate * factor, sample_rate).astype(np.float32)


def tempo(x: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE, frame_ms: float = 30.0) -> np.ndarray:
    """`factor` times faster (> 1: shorter) at the same pitch: WSOLA. Each output frame (Hann
    window, half-frame hop) is the input segment near its nominal place (within a quarter frame)
    that best continues the previous one (highest cross-correlation with the input that followed
    it), so pitch periods line up across the overlap."""
    x = np.asarray(x, np.float32)
    if factor == 1.0 or len(x) == 0:
        return x.copy()
    n = int(sample_rate * frame_ms / 1000) // 2 * 2
    hop, tol = n // 2, n // 4
    out_len = int(round(len(x) / factor))
    padded = np.concatenate(
        [np.zeros(tol, np.float32), x, np.zeros(n + tol + int(hop * factor) + 1, np.float32)]
    )
    window = np.hanning(n).astype(np.float32)
    y = np.zeros(out_len + n, np.float32)
    norm = np.zeros(out_len + n, np.float32)
    prev = None
    for k, at in enumerate(range(0, out_len, hop)):
        nominal = int(round(k * hop * factor)) + tol
        if prev is None:
            start = nominal
        else:
            natural = padded[prev + hop : prev + hop + n]
            region = padded[nominal - tol : nominal + tol + n]
            score = np.correlate(region, natural, mode="valid")
            start = nominal - tol + int(np.argmax(score))
        y[at : at + n] += padded[start : start + n] * window
        norm[at : at + n] += window
        prev = start
    return (y[:out_len] / np.maximum(norm[:out_len], 1e-3)).astype(np.float32)


def vtlp(x: np.ndarray, alpha: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Vocal-tract-length perturbation: every frequency (formants and harmonics) scaled by `alpha`
    at the same duration, as a linear warp of the spectrum does; by resampling, then WSOLA back to
    the length. (An STFT warp that keeps each bin's phase advance leaves the pitch where it was.)"""
    x = np.asarray(x, np.float32)
    if alpha == 1.0 or len(x) == 0:
        return x.copy()
    y = tempo(speed(x, alpha, sample_rate), 1.0 / alpha, sample_rate)
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def level_drift(
    x: np.ndarray, rng: np.random.Generator, depth_db: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A slow random gain curve within +-depth_db: a random walk, one point a second, smoothed."""
    x = np.asarray(x, np.float32)
    if depth_db <= 0 or len(x) == 0:
        return x.copy()
    points = int(np.ceil(len(x) / sample_rate)) + 2
    walk = np.cumsum(rng.normal(0.0, depth_db / 2, points))
    walk = np.clip(walk - walk.mean(), -depth_db, depth_db)
    curve = np.interp(np.arange(len(x)), np.linspace(0, len(x), points), walk)
    return (x * 10.0 ** (curve / 20.0)).astype(np.float32)


# -- the line ---------------------------------------------------------------------------------------
def g722_round_trip(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Through G.722 at 64 kbit/s and back (16 kHz PCM16 both ways), realigned by the codec's delay.
    Same length (the last G722_DELAY samples silent)."""
    from array import array

    from G722 import G722

    x = np.asarray(x, np.float32)
    if sample_rate != 16_000:
        raise ValueError(f"G.722 runs at 16 kHz, not {sample_rate} Hz")
    coded = G722(16_000, 64_000).encode(array("h", float_to_pcm16(x).tobytes()))
    decoded = pcm16_to_float(np.asarray(G722(16_000, 64_000).decode(coded), np.int16)[G722_DELAY:])
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(decoded))] = decoded[: len(x)]
    return out


def packet_loss(
    x: np.ndarray,
    rng: np.random.Generator,
    loss: float,
    mean_burst: float = 2.0,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """20 ms packets lost at the long-run rate `loss`, in bursts of `mean_burst` packets on
    average (a two-state Markov chain), concealed by repeating the last packet received at -6 dB
    per lost packet (silence after 3), with 2 ms fades at the joins. Returns the audio and the
    lost mask (one bool a packet)."""
    x = np.asarray(x, np.float32)
    size = sample_rate * PACKET_MS // 1000
    count = len(x) // size
    lost = np.zeros(count, bool)
    if loss <= 0 or count == 0:
        return x.copy(), lost
    to_bad = loss / (mean_burst * (1.0 - loss))
    to_good = 1.0 / mean_burst
    bad = rng.random() < loss
    draws = rng.random(count)
    for i in range(count):
        lost[i] = bad
        bad = draws[i] >= to_good if bad else draws[i] < to_bad
    out = x.copy()
    fade = np.linspace(0.0, 1.0, sample_rate * 2 // 1000, dtype=np.float32)
    last = np.zeros(size, np.float32)
    run = 0
    for i in range(count):
        seg = out[i * size : (i + 1) * size]
        if lost[i]:
            run += 1
            seg[:] = last * np.float32(0.5**run if run <= 3 else 0.0)
        elif run:
            run = 0
        else:
            last = x[i * size : (i + 1) * size].copy()
            continue
        if i:  # a join with what was played before: fade from its last sample
            head = seg[: len(fade)]
            head[:] = head * fade + out[i * size - 1] * (1 - fade)
        if not lost[i]:
            last = x[i * size : (i + 1) * size].copy()
    return out, lost


# -- one caller's ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Perturbation:
    speed: float  # resampling factor
    tempo: float  # WSOLA factor
    vtlp_alpha: float
    drift_db: float  # level drift depth
    g722: bool  # a wideband call through G.722 (only on a wideband line)
    loss: float  # packet loss rate
    mean_burst: float

    @classmethod
    def none(cls) -> Perturbation:
        return cls(speed=1.0, tempo=1.0, vtlp_alpha=1.0, drift_db=0.0, g722=False, loss=0.0, mean_burst=1.0)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Perturbation:
        def maybe(p: float, lo: float, hi: float, default: float) -> float:
            return round(float(rng.uniform(lo, hi)), 3) if rng.random() < p else default

        return cls(
            speed=maybe(0.5, 0.9, 1.1, 1.0),
            tempo=maybe(0.5, 0.8, 1.25, 1.0),
            vtlp_alpha=maybe(0.7, 0.85, 1.18, 1.0),
            drift_db=maybe(0.4, 2.0, 8.0, 0.0),
            g722=bool(rng.random() < 0.5),
            loss=maybe(0.3, 0.01, 0.08, 0.0),
            mean_burst=round(float(rng.uniform(1.0, 3.0)), 2),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def apply_voice(self, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """One utterance of the talker: speed, tempo, vocal tract. Its length, and every time in
        it, scales by `time_scale`."""
        y = speed(x, self.speed, sample_rate)
        y = tempo(y, self.tempo, sample_rate)
        return vtlp(y, self.vtlp_alpha, sample_rate)

    @property
    def time_scale(self) -> float:
        return 1.0 / (self.speed * self.tempo)

    def apply_mic(
        self, x: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
    ) -> np.ndarray:
        """The talker's whole track at the microphone: the level drift."""
        return level_drift(x, rng, self.drift_db, sample_rate)

    def apply_line(
        self, x: np.ndarray, band: str, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
    ) -> np.ndarray:
        """After corpus.effects.apply_channel with `band`: G.722 on a wideband line, then loss."""
        y = g722_round_trip(x, sample_rate) if self.g722 and band == "wide" else np.asarray(x, np.float32)
        return packet_loss(y, rng, self.loss, self.mean_burst, sample_rate)[0]
