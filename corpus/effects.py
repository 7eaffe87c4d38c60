"""What a phone line does to the caller's side of a synthetic call: band, codec, noise, echo, level.

Pure functions on mono float32 numpy arrays (16 kHz unless a rate is given); every random choice
comes from a `numpy.random.Generator` the caller passes in, so the same generator state gives the
same samples. `ChannelParams.draw(rng)` picks one call's channel and `apply_channel` runs the chain

    caller speech at a level  +  echo of the agent  +  background noise at an SNR
      -> telephone band-pass 300-3400 Hz -> 8 kHz G.711 mu-law round trip -> 16 kHz, clipped

(wideband calls skip the band-pass and the codec, as the native PCM16 protocol does).

- `band_limit`: linear-phase windowed-sinc FIR (Blackman), applied zero-phase with an FFT.
- `mulaw_round_trip`: soxr to 8 kHz, PCM16, `telephony.g711` mu-law encode/decode, soxr back.
- `add_noise`: white, pink (1/f) or babble-like noise (several speech-shaped noise "talkers",
  each with a syllable-rate envelope) scaled to an SNR against the active speech power, i.e. the
  mean power of the 20 ms frames within 35 dB of the loudest (silence between turns does not
  count), so an SNR means the same for a talkative and a quiet call.
- `echo`: the agent's voice leaking back, delayed and attenuated, with a few weaker reflections.

It knows nothing of scripts, voices, labels or the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr

from model.protocol import SAMPLE_RATE
from telephony.g711 import ulaw_decode, ulaw_encode

TELEPHONE_BAND_HZ = (300.0, 3400.0)
NOISE_KINDS = ("white", "pink", "babble")
BANDS = ("ulaw", "narrow", "wide")  # mu-law telephone line, band-limited only, 16 kHz wideband
ACTIVE_FRAME_MS = 20
ACTIVE_RANGE_DB = 35.0
PCM_MAX = 32767 / 32768


# -- level ----------------------------------------------------------------------------------------


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """x scaled by `db` decibels (float32)."""
    return (np.asarray(x, dtype=np.float32) * np.float32(db_to_gain(db))).astype(np.float32)


def active_power(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean power of the 20 ms frames within 35 dB of the loudest frame (0.0 for silence)."""
    x = np.asarray(x, dtype=np.float64)
    hop = sample_rate * ACTIVE_FRAME_MS // 1000
    n = len(x) // hop * hop
    if n == 0:
        return float(np.mean(x**2)) if len(x) else 0.0
    power = np.mean(x[:n].reshape(-1, hop) ** 2, axis=1)
    loudest = float(power.max())
    if loudest <= 0.0:
        return 0.0
    return float(power[power >= loudest * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)].mean())


def to_pcm16_grid(x: np.ndarray) -> np.ndarray:
    """Clip to [-1, 32767/32768] and round to the PCM16 grid (what a transport would carry)."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767)
    return (pcm / 32768.0).astype(np.float32)


# -- filtering ------------------------------------------------------------------------------------


def _lowpass_taps(cutoff_hz: float, sample_rate: int, taps: int) -> np.ndarray:
    n = np.arange(taps) - (taps - 1) / 2.0
    fc = cutoff_hz / sample_rate
    return 2.0 * fc * np.sinc(2.0 * fc * n) * np.blackman(taps)


def bandpass_fir(
    low_hz: float, high_hz: float, sample_rate: int = SAMPLE_RATE, taps: int = 511
) -> np.ndarray:
    """Linear-phase band-pass taps [taps] (odd), unit gain at the band's geometric centre."""
    if taps % 2 == 0 or not 0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(
            f"bandpass_fir: need odd taps and 0 < low < high < Nyquist, got {taps}, "
            f"{low_hz}, {high_hz} at {sample_rate} Hz"
        )
    h = _lowpass_taps(high_hz, sample_rate, taps) - _lowpass_taps(low_hz, sample_rate, taps)
    centre = np.sqrt(low_hz * high_hz) / sample_rate
    response = abs(np.sum(h * np.exp(-2j * np.pi * centre * np.arange(taps))))
    return h / response


def fft_filter(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Zero-phase FIR filtering of x by odd-length linear-phase taps h: same length as x."""
    x = np.asarray(x, dtype=np.float64)
    n, m = len(x), len(h)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    size = 1 << (n + m - 2).bit_length()
    full = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    lag = (m - 1) // 2
    return full[lag : lag + n].astype(np.float32)


def band_limit(
    x: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    low_hz: float = TELEPHONE_BAND_HZ[0],
    high_hz: float = TELEPHONE_BAND_HZ[1],
    taps: int = 511,
) -> np.ndarray:
    """Telephone band-pass (default 300-3400 Hz), zero-phase, same length."""
    return fft_filter(x, bandpass_fir(low_hz, high_hz, sample_rate, taps))


# -- codec ----------------------------------------------------------------------------------------


def mulaw_round_trip(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample to 8 kHz, PCM16, G.711 mu-law encode + decode, resample back; same length."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return x.copy()
    narrow = soxr.resample(x, sample_rate, 8000, quality="HQ") if sample_rate != 8000 else x
    pcm = np.clip(np.round(narrow.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    decoded = ulaw_decode(ulaw_encode(pcm)).astype(np.float32) / 32768.0
    back = soxr.resample(decoded, 8000, sample_rate, quality="HQ") if sample_rate != 8000 else decoded
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(back))] = back[: len(x)]
    return out


# -- noise ----------------------------------------------------------------------------------------


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def _shaped(n: int, rng: np.random.Generator, shape, sample_rate: int) -> np.ndarray:
    """White Gaussian noise of length n with its spectrum multiplied by shape(freqs in Hz)."""
    size = 1 << max(n - 1, 1).bit_length()  # a fast FFT length; the tail is dropped
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    return np.fft.irfft(spectrum * shape(freqs), size)[:n]


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return _unit_rms(rng.standard_normal(n))


def pink_noise(n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """1/f power spectrum (amplitude 1/sqrt(f)) above 20 Hz, unit RMS."""
    return _unit_rms(_shaped(n, rng, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)), sample_rate))


def babble_noise(
    n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE, talkers: int = 5
) -> np.ndarray:
    """Babble-like noise: `talkers` speech-shaped noises (band 100-3800 Hz, one spectral peak
    each between 300 and 1200 Hz), each switched by its own ~4 Hz syllable envelope; unit RMS.
    Made at 8 kHz (it has nothing above 4 kHz) and resampled to `sample_rate`."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    rate, env_rate = 8000, 100  # envelope samples per second, interpolated to the audio rate
    k = int(np.ceil(n * rate / sample_rate)) + 1
    m = max(2, int(np.ceil(k / rate * env_rate)) + 1)
    grid = np.arange(k) / rate * env_rate
    out = np.zeros(k)
    for _ in range(talkers):
        peak = rng.uniform(300.0, 1200.0)

        def shape(f, peak=peak):
            return ((f > 100.0) & (f < 3800.0)) / (1.0 + ((f - peak) / 600.0) ** 2)

        voice = _shaped(k, rng, shape, rate)
        slow = _shaped(m, rng, lambda f: f < 4.0, env_rate)
        env = np.maximum(slow - 0.2 * slow.std(), 0.0) ** 1.5  # gaps between "syllables"
        out += _unit_rms(voice) * np.interp(grid, np.arange(m), env)
    if sample_rate != rate:
        out = soxr.resample(out.astype(np.float32), rate, sample_rate, quality="HQ")
    res = np.zeros(n, dtype=np.float32)
    res[: min(n, len(out))] = out[:n]
    return _unit_rms(res)


def noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    if kind == "white":
        return white_noise(n, rng)
    if kind == "pink":
        return pink_noise(n, rng, sample_rate)
    if kind == "babble":
        return babble_noise(n, rng, sample_rate)
    raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")


def add_noise(
    x: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    kind: str = "white",
    sample_rate: int = SAMPLE_RATE,
    reference_power: float | None = None,
) -> np.ndarray:
    """x plus `kind` noise whose power is `reference_power` (default: active_power(x)) / SNR."""
    x = np.asarray(x, dtype=np.float32)
    power = active_power(x, sample_rate) if reference_power is None else reference_power
    if power <= 0.0:
        return x.copy()
    level = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (x + level * noise(kind, len(x), rng, sample_rate)).astype(np.float32)


# -- echo -----------------------------------------------------------------------------------------


def echo(
    agent: np.ndarray,
    delay_ms: float,
    attenuation_db: float,
    sample_rate: int = SAMPLE_RATE,
    rng: np.random.Generator | None = None,
    reflections: int = 2,
) -> np.ndarray:
    """The agent's voice as it leaks back into the caller's channel: delayed by `delay_ms`,
    attenuated by `attenuation_db`, plus (with rng) `reflections` weaker copies 3-30 ms later,
    each 6-15 dB below the main path. Same length as `agent`; causal."""
    agent = np.asarray(agent, dtype=np.float32)
    out = np.zeros_like(agent)
    taps = [(int(round(delay_ms * sample_rate / 1000.0)), db_to_gain(-attenuation_db))]
    if rng is not None:
        for _ in range(reflections):
            extra = int(rng.integers(3 * sample_rate // 1000, 30 * sample_rate // 1000))
            sign = 1.0 if rng.random() < 0.5 else -1.0
            taps.append((taps[0][0] + extra, sign * taps[0][1] * db_to_gain(-rng.uniform(6.0, 15.0))))
    for delay, g in taps:
        if delay < len(agent):
            out[delay:] += np.float32(g) * agent[: len(agent) - delay]
    return out


# -- one call's channel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelParams:
    band: str  # one of BANDS
    caller_level_dbfs: float  # active RMS of the caller's speech, dB re full scale
    noise: str  # "none" or one of NOISE_KINDS
    snr_db: float  # caller's active speech power over noise power
    echo_delay_ms: float | None  # None: no echo
    echo_attenuation_db: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ChannelParams:
        band = BANDS[int(rng.choice(3, p=(0.7, 0.15, 0.15)))]
        kind = ("none", *NOISE_KINDS)[int(rng.choice(4, p=(0.1, 0.25, 0.35, 0.3)))]
        has_echo = rng.random() < 0.7
        return cls(
            band=band,
            caller_level_dbfs=round(float(rng.uniform(-34.0, -20.0)), 2),
            noise=kind,
            snr_db=round(float(rng.uniform(8.0, 35.0)), 2),
            echo_delay_ms=round(float(rng.uniform(20.0, 200.0)), 1) if has_echo else None,
            echo_attenuation_db=round(float(rng.uniform(15.0, 35.0)), 2),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def apply_channel(
    speech: np.ndarray,
    agent: np.ndarray,
    params: ChannelParams,
    rng: np.random.Generator,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """The caller channel the model hears: speech (set to the params' level) + echo of `agent` +
    noise, through the line (`params.band`), on the PCM16 grid. Same length as `speech`."""
    speech = np.asarray(speech, dtype=np.float32)
    power = active_power(speech, sample_rate)
    level = 10.0 ** (params.caller_level_dbfs / 10.0)
    mic = speech * np.float32(np.sqrt(level / power)) if power > 0 else speech.copy()
    if params.echo_delay_ms is not None:
        mic = mic + echo(agent, params.echo_delay_ms, params.echo_attenuation_db, sample_rate, rng)
    if params.noise != "none":
        mic = add_noise(mic, params.snr_db, rng, params.noise, sample_rate, reference_power=level)
    if params.band != "wide":
        mic = band_limit(mic, sample_rate)
    if params.band == "ulaw":
        mic = mulaw_round_trip(mic, sample_rate)
    return to_pcm16_grid(mic)
