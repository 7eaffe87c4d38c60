"""corpus.effects: telephone band, mu-law round trip, noise at an SNR, echo, the whole channel."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import effects as fx

SR = 16_000


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2)))


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts with gaps: a broadband signal whose autocorrelation has one clear peak."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    gate = (np.arange(len(x)) // 2400) % 3 != 2
    return x * gate


@pytest.mark.parametrize(
    "freq, lo, hi",
    [(1000, -0.1, 0.1), (2500, -0.1, 0.1), (5000, -300, -60), (7000, -300, -60), (100, -300, -40)],
)
def test_band_limit_keeps_the_voice_band_and_kills_the_rest(freq, lo, hi):
    x = tone(freq)
    y = fx.band_limit(x)
    assert y.shape == x.shape and y.dtype == np.float32
    mid = slice(2000, -2000)  # away from the filter's edges
    assert lo <= power_db(y[mid]) - power_db(x[mid]) <= hi


def test_band_limit_is_zero_phase():
    x = tone(1000)
    y = fx.band_limit(x)
    assert np.max(np.abs(y[2000:-2000] - x[2000:-2000])) < 0.01


@pytest.mark.parametrize("amplitude", [0.3, 0.03])
def test_mulaw_round_trip_error_is_small_and_undelayed(amplitude):
    x = tone(1000, amplitude=amplitude)
    y = fx.mulaw_round_trip(x)
    assert y.shape == x.shape and y.dtype == np.float32
    mid = slice(500, -500)
    snr = power_db(x[mid]) - power_db(y[mid] - x[mid])
    assert snr > 30, snr  # G.711 is ~38 dB; any delay or gain error would show here
    assert not np.array_equal(y, x)  # it did quantise


def test_mulaw_round_trip_removes_what_8_khz_cannot_carry():
    y = fx.mulaw_round_trip(tone(5000))
    assert power_db(y[500:-500]) < power_db(tone(5000)) - 40


@pytest.mark.parametrize("kind", fx.NOISE_KINDS)
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_has_the_snr_asked_for(kind, snr_db):
    x = tone(440, seconds=2.0, amplitude=0.2)
    y = fx.add_noise(x, snr_db, np.random.default_rng(3), kind)
    assert abs(power_db(x) - power_db(y - x) - snr_db) < 0.05


def test_snr_is_against_active_speech_not_silence():
    x = np.concatenate([tone(440, 1.0, 0.2), np.zeros(3 * SR, np.float32)])
    assert fx.active_power(x) == pytest.approx(0.02, rel=1e-3)  # 0.2**2 / 2: the silence does not count
    y = fx.add_noise(x, 20.0, np.random.default_rng(0), "pink")
    assert abs(10 * np.log10(0.02) - power_db(y - x) - 20.0) < 0.05


def test_noise_is_deterministic_per_generator_and_kinds_differ():
    n = SR
    for kind in fx.NOISE_KINDS:
        a = fx.noise(kind, n, np.random.default_rng(7))
        assert np.array_equal(a, fx.noise(kind, n, np.random.default_rng(7)))
        assert not np.array_equal(a, fx.noise(kind, n, np.random.default_rng(8)))
        assert a.shape == (n,) and abs(power_db(a)) < 0.01  # unit RMS
    spectra = {k: np.abs(np.fft.rfft(fx.noise(k, n, np.random.default_rng(1)))) ** 2 for k in fx.NOISE_KINDS}
    high = lambda s: s[5000:].sum() / s.sum()  # noqa: E731  share of power above 5 kHz
    assert high(spectra["white"]) > 0.3 > 0.1 > high(spectra["pink"]) and high(spectra["babble"]) < 1e-3


@pytest.mark.parametrize("delay_ms, attenuation_db", [(20, 15), (85, 25), (200, 35)])
def test_echo_delay_and_level_are_measurable(delay_ms, attenuation_db):
    agent = speechlike(2.0, seed=delay_ms)
    e = fx.echo(agent, delay_ms, attenuation_db, rng=np.random.default_rng(delay_ms))
    assert e.shape == agent.shape
    lags = np.arange(0, 400 * SR // 1000)
    xcorr = np.array([np.dot(e[lag:], agent[: len(agent) - lag]) for lag in lags])
    lag = int(lags[np.argmax(np.abs(xcorr))])
    assert lag == delay_ms * SR // 1000
    gain = xcorr[lag] / np.dot(agent[: len(agent) - lag], agent[: len(agent) - lag])
    assert abs(20 * np.log10(gain) + attenuation_db) < 0.5
    assert np.all(e[:lag] == 0)  # causal


def test_channel_is_deterministic_and_on_the_pcm16_grid():
    speech, agent = speechlike(3.0, 1), speechlike(3.0, 2)
    params = fx.ChannelParams("ulaw", -26.0, "babble", 15.0, 60.0, 20.0)
    a = fx.apply_channel(speech, agent, params, np.random.default_rng(5))
    assert np.array_equal(a, fx.apply_channel(speech, agent, params, np.random.default_rng(5)))
    assert a.shape == speech.shape and a.dtype == np.float32
    assert np.array_equal(a * 32768, np.round(a * 32768)) and a.max() < 1.0
    spectrum = np.abs(np.fft.rfft(a)) ** 2
    assert spectrum[int(3800 * len(a) / SR) :].sum() < 1e-4 * spectrum.sum()  # telephone band only
    wide = fx.apply_channel(
        speech, agent, params.__class__(**{**params.to_dict(), "band": "wide"}), np.random.default_rng(5)
    )
    ws = np.abs(np.fft.rfft(wide)) ** 2
    assert ws[int(5000 * len(a) / SR) :].sum() > 0.05 * ws.sum()


def test_channel_params_stay_in_their_ranges():
    rng = np.random.default_rng(0)
    draws = [fx.ChannelParams.draw(rng) for _ in range(400)]
    echoes = [d for d in draws if d.echo_delay_ms is not None]
    assert 0.5 < len(echoes) / len(draws) < 0.9
    assert all(20 <= d.echo_delay_ms <= 200 and 15 <= d.echo_attenuation_db <= 35 for d in echoes)
    assert {d.band for d in draws} == set(fx.BANDS) and {d.noise for d in draws} == {"none", *fx.NOISE_KINDS}
