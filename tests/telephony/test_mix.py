"""telephony.mix on signals: the speaker's voice ducked under the interpreter, and the notice tone."""

import numpy as np
import pytest

from telephony.mix import NOTICE_TONES, gain, mix_under, notice_frames

RATE = 16000


def sine(hz: float, amplitude: float, n: int = 3200) -> np.ndarray:
    return np.rint(amplitude * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def level_at(x: np.ndarray, hz: float) -> float:
    """Amplitude of the `hz` component of `x` (a whole number of periods in 200 ms)."""
    spectrum = np.fft.rfft(x.astype(np.float64))
    return float(2 * np.abs(spectrum[int(round(hz * x.size / RATE))]) / x.size)


def test_gain_is_db_below_full_level():
    assert gain(0) == 1.0
    assert gain(20) == pytest.approx(0.1)
    assert gain(6) == pytest.approx(0.501, abs=1e-3)
    for bad in (-1, 61):
        with pytest.raises(ValueError, match="between 0 and 60 dB"):
            gain(bad)


def test_the_voice_under_is_attenuated_by_the_ducking_and_the_interpreter_kept_whole():
    interpreter, speaker = sine(300, 8000), sine(1000, 8000)
    mixed = mix_under(interpreter, speaker, 12.0)
    assert mixed.dtype == np.int16 and mixed.shape == interpreter.shape
    assert level_at(mixed, 300) == pytest.approx(8000, rel=1e-3)
    assert level_at(mixed, 1000) == pytest.approx(8000 * 10 ** (-12 / 20), rel=1e-3)
    # Over the interpreter's silence, the speaker alone, 12 dB down (RMS ratio).
    alone = mix_under(np.zeros(3200, np.int16), speaker, 12.0)
    assert 20 * np.log10(rms(speaker) / rms(alone)) == pytest.approx(12.0, abs=0.05)


def test_off_or_nothing_to_mix_is_the_interpreter_itself():
    interpreter = sine(300, 8000)
    assert mix_under(interpreter, sine(1000, 8000), None) is interpreter
    assert mix_under(interpreter, None, 12.0) is interpreter


def test_loud_sums_saturate_instead_of_wrapping():
    loud = np.full(3200, 30000, np.int16)
    mixed = mix_under(loud, loud, 0.0)
    assert mixed.max() == 32767 and mixed.min() == 32767
    assert mix_under(-loud, -loud, 0.0).min() == -32768


def test_a_frame_of_another_length_is_refused():
    with pytest.raises(ValueError, match="samples under a voice"):
        mix_under(sine(300, 8000), sine(300, 8000, 1600), 6.0)


def test_the_notice_is_whole_frames_of_its_falling_tones_without_clicks():
    frames = notice_frames(RATE, 3200)
    assert len(frames) == 4 and all(f.shape == (3200,) and f.dtype == np.int16 for f in frames)
    with pytest.raises(ValueError):
        frames[0][0] = 1  # shared between calls: read-only
    signal = np.concatenate(frames).astype(np.float64)
    # Each tone, in its own window, is the strongest component there; they fall.
    start, peaks = 0, []
    for _, seconds in NOTICE_TONES:
        n = int(round(seconds * RATE))
        window = signal[start : start + n]
        spectrum = np.abs(np.fft.rfft(window))
        peaks.append(np.argmax(spectrum) * RATE / n)
        start += n + int(round(0.06 * RATE))
    assert peaks == pytest.approx([hz for hz, _ in NOTICE_TONES], abs=8)
    assert peaks == sorted(peaks, reverse=True)
    # Audible but not loud (-12 dBFS), starting and ending at silence (ramps: no click).
    assert 0.2 * 32767 < np.abs(signal).max() <= 0.25 * 32767 + 1
    assert abs(signal[0]) < 50 and np.all(signal[start:] == 0)
    assert np.abs(np.diff(signal)).max() < 0.25 * 32767 * 2 * np.pi * 660 / RATE + 2
    # Any rate and frame size: 8 kHz in 20 ms frames.
    assert all(f.shape == (160,) for f in notice_frames(8000, 160))
