"""ResampleStream: streaming equals one-shot, chunking does not matter, quality, fixed rates."""

import math

import numpy as np
import pytest
import soxr

from telephony.resample import LOOKAHEAD_S, ResampleStream

RATE_PAIRS = [(8000, 16000), (16000, 8000), (24000, 16000), (48000, 16000), (16000, 24000), (16000, 48000)]


def _signal(rate, seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 9000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1700 * t) + rng.normal(0, 1500, t.size)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _stream(rs, x, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(rs.push(x[i : i + n]))
        i += n
    assert i >= x.size
    out.append(rs.flush())
    return np.concatenate(out)


def _random_sizes(total, rng, hi):
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(0, hi)))
    return sizes


@pytest.mark.parametrize("in_rate, out_rate", RATE_PAIRS)
def test_stream_equals_one_shot(in_rate, out_rate):
    x = _signal(in_rate)
    chunk = in_rate // 50  # 20 ms
    got = _stream(ResampleStream(in_rate, out_rate), x, [chunk] * (x.size // chunk + 1))
    one_shot_int16 = soxr.resample(x, in_rate, out_rate, quality="HQ")
    assert got.dtype == np.int16 and got.size == one_shot_int16.size
    assert np.abs(got.astype(np.int32) - one_shot_int16).max() <= 2
    # Windows of the float signal equal the float one-shot away from their edges: once rounded, a
    # sample can land on the other side of a half (1 LSB), and only rarely.
    one_shot_float = soxr.resample(x.astype(np.float32) / 32768, in_rate, out_rate, quality="HQ")
    rounded = np.clip(np.rint(one_shot_float * 32768), -32768, 32767).astype(np.int16)
    diff = np.abs(got.astype(np.int32) - rounded)
    assert diff.max() <= 1 and np.count_nonzero(diff) < 0.01 * got.size


@pytest.mark.parametrize("in_rate, out_rate", RATE_PAIRS)
def test_random_chunk_sizes_give_the_same_total(in_rate, out_rate):
    x = _signal(in_rate, seconds=1.5, seed=1)
    rng = np.random.default_rng(in_rate + out_rate)
    a = _stream(ResampleStream(in_rate, out_rate), x, _random_sizes(x.size, rng, 2000))
    b = _stream(ResampleStream(in_rate, out_rate), x, _random_sizes(x.size, rng, 50))
    expected_len = soxr.resample(x, in_rate, out_rate, quality="HQ").size
    assert a.size == b.size == expected_len
    assert np.abs(a.astype(np.int32) - b).max() <= 1


def test_round_trip_keeps_a_tone():
    rate = 8000
    t = np.arange(rate * 2) / rate
    tone = np.rint(10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    up, down = ResampleStream(8000, 16000), ResampleStream(16000, 8000)
    wide = []
    for i in range(0, tone.size, 160):  # 20 ms chunks, as from a phone
        wide.append(up.push(tone[i : i + 160]))
    wide.append(up.flush())
    wide = np.concatenate(wide)
    assert wide.size == 2 * tone.size
    back = np.concatenate([down.push(wide[i : i + 3200]) for i in range(0, wide.size, 3200)] + [down.flush()])
    assert back.size == tone.size
    mid = slice(800, -800)  # away from the start and end transients
    energy = lambda s: float(np.mean(s[mid].astype(np.float64) ** 2))  # noqa: E731
    assert energy(back) == pytest.approx(energy(tone), rel=0.01)
    # Aligned, not just the same energy: the stream compensates its own delay.
    assert np.abs(back[mid].astype(np.int32) - tone[mid]).max() < 100


def test_downsampling_rejects_aliases():
    rate = 16000
    t = np.arange(rate) / rate
    above_nyquist = np.rint(10000 * np.sin(2 * np.pi * 5000 * t)).astype(np.int16)  # > 4 kHz
    rs = ResampleStream(16000, 8000)
    out = np.concatenate([rs.push(above_nyquist[i : i + 320]) for i in range(0, rate, 320)] + [rs.flush()])
    rms_in = np.sqrt(np.mean(above_nyquist.astype(np.float64) ** 2))
    rms_out = np.sqrt(np.mean(out[400:-400].astype(np.float64) ** 2))
    assert rms_out < 0.001 * rms_in  # QQ would let a 3 kHz alias through


def test_identity_does_not_use_soxr():
    rs = ResampleStream(16000, 16000)
    x = _signal(16000, seconds=0.1)
    y = rs.push(x)
    assert rs.identity and rs.delay == 0.0
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(y, x)
    assert rs.flush().size == 0


def test_output_is_clipped_and_counted():
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)].astype(np.int16), 200)
    rs = ResampleStream(8000, 16000)
    out = np.concatenate([rs.push(square), rs.flush()])
    assert out.dtype == np.int16 and out.size == 2 * square.size
    assert rs.clipped > 0  # the overshoot of a full-scale square wave
    assert out.max() == 32767 and out.min() == -32768


@pytest.mark.parametrize("in_rate, out_rate", [*RATE_PAIRS, (8000, 8000)])
def test_push_float_equals_push(in_rate, out_rate):
    x = _signal(in_rate, seconds=1.0, seed=2)
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)].astype(np.int16), 50)  # clips
    x = np.concatenate([x, square])
    a, b = ResampleStream(in_rate, out_rate), ResampleStream(in_rate, out_rate)
    chunk = in_rate // 50
    for i in range(0, x.size, chunk):
        part = x[i : i + chunk]
        np.testing.assert_array_equal(a.push_float(part.astype(np.float32) / np.float32(32768)), b.push(part))
    np.testing.assert_array_equal(a.flush(), b.flush())
    assert a.clipped == b.clipped
    assert a.clipped > 0 or in_rate == out_rate


def test_push_float_refuses_other_samples():
    rs = ResampleStream(8000, 16000)
    with pytest.raises(ValueError, match="float32"):
        rs.push_float(np.zeros(160, np.int16))
    with pytest.raises(ValueError, match="float32"):
        rs.push_float(np.zeros((2, 160), np.float32))


def test_flush_then_clear_starts_a_new_stream():
    x = _signal(8000, seconds=0.5)
    rs = ResampleStream(8000, 16000)
    first = _stream(rs, x, [160] * 26)
    with pytest.raises(RuntimeError, match="push after flush"):
        rs.push(x[:160])
    assert rs.flush().size == 0  # a second flush has nothing left
    rs.clear()
    again = _stream(rs, x, [400] * 10)
    assert again.size == first.size and np.abs(again.astype(np.int32) - first).max() <= 1
    rs.clear()
    np.testing.assert_array_equal(_stream(rs, x, [160] * 26), first)  # same pushes, same samples


@pytest.mark.parametrize("in_rate, out_rate", RATE_PAIRS + [(44100, 16000), (16000, 44100)])
def test_output_keeps_pace_with_the_input_a_fixed_lookahead_behind(in_rate, out_rate):
    """Every push returns all the output owed up to LOOKAHEAD_S before the end of the input: no
    bursts (soxr's own stream returned 830, 1660, ..., 830 samples for 200 ms pushes at 16 -> 8 kHz),
    so a 20 ms pacer fed one model frame per tick never runs dry waiting for the resampler."""
    rs = ResampleStream(in_rate, out_rate)
    x = _signal(in_rate, seconds=3.0)
    frame = in_rate // 5
    lookahead_out = LOOKAHEAD_S * out_rate
    grid = out_rate // math.gcd(in_rate, out_rate)  # output comes in whole steps of the shared grid
    total = 0
    for k in range(x.size // frame):
        total += rs.push(x[k * frame : (k + 1) * frame]).size
        owed = (k + 1) * frame * out_rate / in_rate
        assert owed - lookahead_out - grid < total <= owed - lookahead_out + 1e-9, (k, total)
        assert rs.delay == pytest.approx(owed - total, abs=1)


def test_min_out_waits_for_a_whole_frame_and_changes_nothing_else():
    x = _signal(8000, seconds=2.0)
    plain, framed = ResampleStream(8000, 16000), ResampleStream(8000, 16000, min_out=3200)
    got_plain, sizes = [], []
    for i in range(0, x.size, 160):  # 20 ms chunks, as a Twilio call sends them
        got_plain.append(plain.push(x[i : i + 160]))
        sizes.append(framed.push(x[i : i + 160]).size)
    sizes.append(framed.flush().size)
    assert all(n == 0 or n >= 3200 for n in sizes[:-1])
    # Frame k (3200 samples at 16 kHz) is out by the 20 ms chunk after the one that completes it.
    ready = np.cumsum(sizes[:-1])
    for k in range(1, 9):
        assert ready[10 * k] >= 3200 * k, k
    assert sum(sizes) == sum(g.size for g in got_plain) + plain.flush().size
    with pytest.raises(ValueError, match="min_out"):
        ResampleStream(8000, 16000, min_out=0)


def test_empty_push_is_fine():
    rs = ResampleStream(8000, 16000)
    out = rs.push(np.zeros(0, np.int16))
    assert out.dtype == np.int16 and out.size == 0


def test_rate_is_fixed_at_construction():
    rs = ResampleStream(8000, 16000)
    assert rs.push(np.zeros(160, np.int16), rate=8000).dtype == np.int16
    with pytest.raises(ValueError, match=r"pushed audio at 16000 Hz.*fixed at 8000 Hz.*new ResampleStream"):
        rs.push(np.zeros(320, np.int16), rate=16000)
    with pytest.raises(ValueError, match="pushed audio at 8000 Hz"):
        ResampleStream(16000, 16000).push(np.zeros(160, np.int16), rate=8000)


@pytest.mark.parametrize(
    "pcm, message",
    [
        (np.zeros(160), "expected int16 samples, got dtype float64"),
        (np.zeros(160, np.int32), "expected int16 samples, got dtype int32"),
        (np.zeros((80, 2), np.int16), r"expected mono \(1-D\) samples, got shape \(80, 2\)"),
        (b"\x00\x00", "expected a numpy int16 array, got bytes"),
    ],
)
def test_bad_pcm(pcm, message):
    with pytest.raises(ValueError, match=message):
        ResampleStream(8000, 16000).push(pcm)


@pytest.mark.parametrize("in_rate, out_rate", [(0, 16000), (8000, -1), (8000.5, 16000), (True, 16000)])
def test_bad_rates(in_rate, out_rate):
    with pytest.raises(ValueError, match="must be a positive integer"):
        ResampleStream(in_rate, out_rate)


def test_discard_held_drops_exactly_what_soxr_held_and_keeps_its_state():
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)).astype(np.int16)
    plain, cut = ResampleStream(16000, 8000), ResampleStream(16000, 8000)
    first = [plain.push(tone), cut.push(tone)]
    assert np.array_equal(first[0], first[1])
    held = cut.discard_held()
    assert held == int(round(plain.delay)) > 0
    rest_plain = np.concatenate([plain.push(tone), plain.push(tone), plain.flush()])
    rest_cut = np.concatenate([cut.push(tone), cut.push(tone), cut.flush()])
    # The same filter state continues (no click): only the first `held` samples are gone.
    assert np.array_equal(rest_cut, rest_plain[held:])
    assert ResampleStream(8000, 8000).discard_held() == 0
