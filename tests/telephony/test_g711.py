"""G.711 and PCM16 conversions: ITU-T table values, audioop parity, dispatch and bad inputs."""

import warnings

import numpy as np
import pytest

from telephony import g711

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


# --- known code/value pairs (ITU-T G.711 tables 2a/1a, scaled to 16 bits) --------------------------
@pytest.mark.parametrize(
    "code, value",
    [
        (0xFF, 0),  # +0
        (0x7F, 0),  # -0
        (0xFE, 8),  # segment 0, step 1: 2 in 14-bit units
        (0xEF, 132),  # segment 1, step 0: 33 in 14-bit units
        (0x80, 32124),  # largest positive: 8031 in 14-bit units
        (0x00, -32124),
    ],
)
def test_ulaw_decode_known_values(code, value):
    assert g711.ulaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    "code, value",
    [
        (0xD5, 8),  # +1 in 13-bit units: the smallest positive level
        (0x55, -8),
        (0xC5, 264),  # segment 1, step 0: 33 in 13-bit units
        (0xAA, 32256),  # largest positive: 4032 in 13-bit units
        (0x2A, -32256),
    ],
)
def test_alaw_decode_known_values(code, value):
    assert g711.alaw_decode(bytes([code]))[0] == value


def test_known_encodes():
    pcm = np.array([0, 32767, -32768, 8, -8], dtype=np.int16)
    assert g711.ulaw_encode(pcm).tolist() == [0xFF, 0x80, 0x00, 0xFE, 0x7E]
    assert g711.alaw_encode(pcm).tolist() == [0xD5, 0xAA, 0x2A, 0xD5, 0x55]


def test_encode_of_each_level_gives_its_code_back():
    ulaw_levels = g711.ulaw_decode(ALL_CODES)
    back = g711.ulaw_encode(ulaw_levels)
    expected = np.arange(256, dtype=np.uint8)
    expected[0x7F] = 0xFF  # -0 decodes to 0, which encodes as +0
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(g711.alaw_encode(g711.alaw_decode(ALL_CODES)), np.arange(256))


@pytest.mark.parametrize("name", ["mulaw", "alaw"])
def test_quantisation_is_monotonic_and_bounded(name):
    levels = g711.decode(name, g711.encode(name, ALL_PCM)).astype(np.int32)
    assert np.all(np.diff(levels) >= 0)
    err = np.abs(levels - ALL_PCM.astype(np.int32))
    assert err.max() <= 1024  # half the largest step (2048 in 16-bit units) plus the 14/13-bit cut
    small = np.abs(ALL_PCM.astype(np.int32)) < 256
    assert err[small].max() <= 16  # fine steps near zero


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_matches_audioop_everywhere():
    audioop = _audioop()
    np.testing.assert_array_equal(
        g711.ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), "<i2")
    )
    np.testing.assert_array_equal(
        g711.alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), "<i2")
    )
    raw = ALL_PCM.astype("<i2").tobytes()
    np.testing.assert_array_equal(
        g711.ulaw_encode(ALL_PCM), np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8)
    )
    np.testing.assert_array_equal(
        g711.alaw_encode(ALL_PCM), np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8)
    )


def test_codecs_accept_bytes_like_and_uint8_and_keep_shape():
    codes = np.array([0xFF, 0x80], dtype=np.uint8)
    for payload in (bytes(codes), bytearray(codes), memoryview(bytes(codes)), codes):
        assert g711.ulaw_decode(payload).tolist() == [0, 32124]
    assert g711.ulaw_decode(b"").dtype == np.int16
    assert g711.ulaw_encode(np.zeros((2, 3), np.int16)).shape == (2, 3)
    strided = np.arange(10, dtype=np.int16)[::2]
    assert g711.alaw_encode(strided).tolist() == g711.alaw_encode(strided.copy()).tolist()


# --- PCM16 helpers -------------------------------------------------------------------------------
def test_pcm16_bytes_are_little_endian_and_round_trip():
    pcm = np.array([1, -2, 32767, -32768], dtype=np.int16)
    raw = g711.pcm16_to_bytes(pcm)
    assert raw == b"\x01\x00\xfe\xff\xff\x7f\x00\x80"
    back = g711.pcm16_from_bytes(raw)
    assert back.dtype == np.int16 and back.tolist() == pcm.tolist()
    back[0] = 5  # a new, writable array
    assert g711.pcm16_from_bytes(bytearray(raw)).tolist() == pcm.tolist()


def test_float_conversions():
    x = np.array([0.0, 0.5, -1.0, 1.0, 2.0, -3.0, np.nan, 1e-5], dtype=np.float64)
    assert g711.float_to_pcm16(x).tolist() == [0, 16384, -32768, 32767, 32767, -32768, 0, 0]
    f = g711.pcm16_to_float(ALL_PCM)
    assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
    np.testing.assert_array_equal(g711.float_to_pcm16(f), ALL_PCM)  # exact round trip


@pytest.mark.parametrize("name", g711.ENCODINGS)
def test_dispatch_round_trip(name):
    pcm = np.array([0, 1000, -1000, 30000], dtype=np.int16)
    payload = g711.encode(name, pcm)
    assert isinstance(payload, bytes)
    assert len(payload) == pcm.size * g711.BYTES_PER_SAMPLE[name]
    out = g711.decode(name, payload)
    assert out.dtype == np.int16 and out.shape == pcm.shape
    assert np.abs(out.astype(int) - pcm).max() <= (0 if name == "pcm16" else 1024)


@pytest.mark.parametrize("name", g711.ENCODINGS)
def test_decode_float_is_exactly_the_float_of_decode(name):
    payload = ALL_CODES if name != "pcm16" else ALL_PCM.tobytes()
    got = g711.decode_float(name, payload)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, g711.pcm16_to_float(g711.decode(name, payload)))


def test_silence():
    assert g711.silence("mulaw", 3) == b"\xff\xff\xff"
    assert g711.silence("alaw", 2) == b"\xd5\xd5"
    assert g711.silence("pcm16", 2) == b"\x00" * 4


# --- bad inputs ----------------------------------------------------------------------------------
def test_unknown_encoding():
    with pytest.raises(ValueError, match=r"unknown audio encoding 'g722'.*pcm16, mulaw, alaw"):
        g711.decode("g722", b"\x00")
    with pytest.raises(ValueError, match="unknown audio encoding"):
        g711.encode("PCMU", np.zeros(2, np.int16))


def test_odd_length_pcm16():
    with pytest.raises(ValueError, match="3 bytes is not a whole number of 16-bit samples"):
        g711.decode("pcm16", b"\x00\x01\x02")


@pytest.mark.parametrize("fn", [g711.ulaw_encode, g711.alaw_encode, g711.pcm16_to_bytes, g711.pcm16_to_float])
def test_wrong_dtype_for_pcm(fn):
    with pytest.raises(ValueError, match="expected int16 samples, got dtype float64"):
        fn(np.zeros(4))
    with pytest.raises(ValueError, match="expected a numpy int16 array, got list"):
        fn([0, 1])


def test_wrong_inputs_for_decoders():
    with pytest.raises(ValueError, match="expected uint8 code bytes, got dtype int16"):
        g711.ulaw_decode(np.zeros(4, np.int16))
    with pytest.raises(ValueError, match="expected bytes or a uint8 array, got str"):
        g711.alaw_decode("abc")
    with pytest.raises(ValueError, match="expected bytes, got a numpy array"):
        g711.decode("pcm16", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="expected a floating-point array, got int16"):
        g711.float_to_pcm16(np.zeros(4, np.int16))
