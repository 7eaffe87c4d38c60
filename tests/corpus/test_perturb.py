"""Caller voice and line perturbations (corpus.perturb): each does what it says on a signal whose
answer is known, keeps lengths as documented, and is deterministic per generator."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.perturb import Perturbation, g722_round_trip, level_drift, packet_loss, speed, tempo, vtlp

SR = 16_000


def _tones(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * 200 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def _peaks(y: np.ndarray) -> list[float]:
    """The two strongest spectral peaks (Hz), at least 50 Hz apart, away from the edges."""
    y = y[2000:-2000]
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    found: list[float] = []
    for k in np.argsort(mag)[::-1]:
        if all(abs(freqs[k] - f) > 50 for f in found):
            found.append(float(freqs[k]))
        if len(found) == 2:
            return sorted(found)
    return sorted(found)


def _snr_db(ref: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / ((ref - y) ** 2).sum()))


def test_speed_moves_pitch_and_length_together():
    y = speed(_tones(), 1.1)
    assert len(y) == pytest.approx(2 * SR / 1.1, abs=2)
    assert _peaks(y) == pytest.approx([220, 1100], abs=3)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_tempo_changes_length_not_pitch(factor):
    x = _tones()
    y = tempo(x, factor)
    assert len(y) == round(len(x) / factor)
    assert _peaks(y) == pytest.approx([200, 1000], abs=3)
    # stationary tones stay clean: the overlaps line up (no phase cancellation or clicks)
    ref = _tones(len(y) / SR)
    mag = np.abs(np.fft.rfft(y[2000:-2000] * np.hanning(len(y) - 4000))) ** 2
    freqs = np.fft.rfftfreq(len(y) - 4000, 1 / SR)
    tonal = (np.abs(freqs - 200) < 15) | (np.abs(freqs - 1000) < 15)
    assert mag[tonal].sum() / mag.sum() > 0.99
    assert np.abs(y).max() < np.abs(ref).max() * 1.1


@pytest.mark.parametrize("alpha", [0.87, 1.15])
def test_vtlp_scales_every_frequency_and_keeps_the_length(alpha):
    x = _tones()
    y = vtlp(x, alpha)
    assert len(y) == len(x)
    assert _peaks(y) == pytest.approx([200 * alpha, 1000 * alpha], abs=4)


def test_g722_round_trip_is_aligned_and_clean_in_band():
    x = _tones()
    y = g722_round_trip(x)
    assert len(y) == len(x)
    assert _snr_db(x[:-100], y[:-100]) > 25
    with pytest.raises(ValueError, match="16 kHz"):
        g722_round_trip(x, 8000)


def test_packet_loss_rate_bursts_and_concealment():
    x = _tones(60.0)
    y, lost = packet_loss(x, np.random.default_rng(1), loss=0.05, mean_burst=2.0)
    assert len(y) == len(x) and len(lost) == len(x) // 320
    assert 0.03 < lost.mean() < 0.07
    starts = np.flatnonzero(lost[1:] & ~lost[:-1])
    assert 1.5 < lost.sum() / len(starts) < 2.6  # mean burst length
    # a packet that arrived after one that arrived is played as sent
    clean = [i for i in range(1, len(lost)) if not lost[i] and not lost[i - 1]]
    assert len(clean) > 2000
    assert all(np.array_equal(y[i * 320 : (i + 1) * 320], x[i * 320 : (i + 1) * 320]) for i in clean)
    # a lost packet is filled (not silence) when the one before arrived, and never louder than it
    first = int(np.flatnonzero(lost)[0])
    seg = y[first * 320 : (first + 1) * 320]
    assert 0 < np.abs(seg).max() <= np.abs(x).max()
    nothing, none_lost = packet_loss(x, np.random.default_rng(1), loss=0.0)
    assert np.array_equal(nothing, x) and not none_lost.any()


def test_level_drift_stays_within_its_depth():
    x = np.full(SR * 10, 0.1, np.float32)
    y = level_drift(x, np.random.default_rng(2), 6.0)
    db = 20 * np.log10(y / 0.1)
    assert db.max() <= 6.0 + 1e-3 and db.min() >= -6.0 - 1e-3
    assert db.max() - db.min() > 1.0


def test_a_perturbation_is_drawn_and_applied_deterministically():
    a = Perturbation.draw(np.random.default_rng(5))
    assert a == Perturbation.draw(np.random.default_rng(5))
    draws = [Perturbation.draw(np.random.default_rng(s)) for s in range(200)]
    assert len({d.vtlp_alpha for d in draws}) > 100 and any(d.g722 for d in draws)
    x = _tones(1.0)
    p = Perturbation(
        speed=1.05, tempo=0.9, vtlp_alpha=1.1, drift_db=3.0, g722=True, loss=0.05, mean_burst=2.0
    )
    voice = p.apply_mic(p.apply_voice(x), np.random.default_rng(0))
    assert len(voice) == pytest.approx(len(x) * p.time_scale, abs=4)
    assert np.array_equal(voice, p.apply_mic(p.apply_voice(x), np.random.default_rng(0)))
    line = p.apply_line(voice, "wide", np.random.default_rng(0))
    assert len(line) == len(voice) and not np.array_equal(line, voice)
    none, rng = Perturbation.none(), np.random.default_rng(0)
    assert np.array_equal(none.apply_line(none.apply_mic(none.apply_voice(x), rng), "wide", rng), x)
