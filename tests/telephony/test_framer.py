"""Framer: exact frames across any push sizes, flush, clear, bad inputs."""

import numpy as np
import pytest

from telephony.framer import Framer


@pytest.mark.parametrize("seed", range(5))
def test_exact_frames_across_random_push_sizes(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-32768, 32768, size=int(rng.integers(10_000, 40_000))).astype(np.int16)
    framer = Framer(3200)
    frames, i = [], 0
    while i < x.size:
        n = int(rng.choice([0, 1, 7, 160, 830, 1660, 3199, 3200, 3201, 9000]))
        got = framer.push(x[i : i + n])
        i += n
        assert all(f.dtype == np.int16 and f.shape == (3200,) for f in got)
        frames.extend(got)
        assert framer.pending == min(i, x.size) - 3200 * len(frames)
    assert len(frames) == x.size // 3200
    tail = framer.flush()
    assert (tail is None) == (x.size % 3200 == 0)
    out = np.concatenate(frames + ([tail] if tail is not None else []))
    np.testing.assert_array_equal(out[: x.size], x)
    assert not out[x.size :].any()  # zero padding
    assert framer.pending == 0 and framer.flush() is None


def test_frames_own_their_memory():
    x = np.arange(3200 * 3 + 100, dtype=np.int16)
    framer = Framer(3200)
    assert framer.push(x[:100]) == []
    frames = framer.push(x[100:])
    assert len(frames) == 3
    snapshot = [f.copy() for f in frames]
    x[:] = -1  # the caller reuses its buffer
    for a, b in zip(frames, snapshot):
        np.testing.assert_array_equal(a, b)
    frames[0][:] = 7  # and frames do not share memory with each other or the framer
    np.testing.assert_array_equal(frames[1], snapshot[1])
    later = framer.push(np.full(3100, 5, dtype=np.int16))  # the 100 pending were copied too
    assert len(later) == 1
    assert later[0][:100].tolist() == list(range(9600, 9700)) and set(later[0][100:].tolist()) == {5}


def test_flush_pads_and_clear_drops():
    framer = Framer(4)
    assert framer.push(np.array([1, 2, 3, 4, 5], np.int16))[0].tolist() == [1, 2, 3, 4]
    assert framer.pending == 1
    assert framer.flush().tolist() == [5, 0, 0, 0]
    framer.push(np.array([9, 9], np.int16))
    framer.clear()
    assert framer.pending == 0 and framer.flush() is None
    assert framer.push(np.array([1, 2, 3, 4], np.int16))[0].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "pcm, message",
    [
        (np.zeros(10), "expected int16 samples, got dtype float64"),
        (np.zeros((5, 2), np.int16), "expected mono"),
        (b"\x00\x00", "expected a numpy int16 array, got bytes"),
    ],
)
def test_bad_inputs(pcm, message):
    with pytest.raises(ValueError, match=message):
        Framer().push(pcm)


@pytest.mark.parametrize("size", [0, -3200, 3200.0])
def test_bad_frame_size(size):
    with pytest.raises(ValueError, match="frame_samples"):
        Framer(size)
