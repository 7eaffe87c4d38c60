"""telephony.wav: the readers and writers, checked against the standard library's wave module."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from telephony import g711
from telephony.wav import (
    WavError,
    read_float,
    read_pcm16,
    write_float,
    write_g711,
    write_pcm16,
)


def test_read_pcm16_formats(tmp_path):
    write_pcm16(tmp_path / "a.wav", np.array([0, 1000, -1000, 32767], np.int16), 11025)
    pcm, rate = read_pcm16(tmp_path / "a.wav")
    assert rate == 11025 and pcm.dtype == np.int16 and pcm.tolist() == [0, 1000, -1000, 32767]
    with wave.open(str(tmp_path / "b.wav"), "wb") as wav:  # 8-bit unsigned
        wav.setnchannels(1), wav.setsampwidth(1), wav.setframerate(8000)
        wav.writeframes(bytes([128, 255, 0]))
    assert read_pcm16(tmp_path / "b.wav")[0].tolist() == [0, 127 << 8, -32768]


def test_stereo_is_written_interleaved_and_read_as_the_channel_mean(tmp_path):
    left, right = np.array([100, -200, 300], np.int16), np.array([300, 200, -300], np.int16)
    write_pcm16(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000)
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 16000)
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert frames[:, 0].tolist() == left.tolist() and frames[:, 1].tolist() == right.tolist()
    assert read_pcm16(tmp_path / "s.wav")[0].tolist() == [200, 0, 0]
    x, rate = read_float(tmp_path / "s.wav")
    assert rate == 16000 and x.shape == (3, 2) and x[0, 1] == pytest.approx(300 / 32768)


def test_write_float_rounds_and_clips(tmp_path):
    audio = np.array([0.0, 0.5, -1.0, 1.0, 1.5, 1e-5], np.float32)
    assert g711.float_to_pcm16(audio).tolist() == [0, 16384, -32768, 32767, 32767, 0]
    write_float(tmp_path / "f.wav", audio, 22050)
    pcm, rate = read_pcm16(tmp_path / "f.wav")
    assert rate == 22050 and pcm.tolist() == [0, 16384, -32768, 32767, 32767, 0]
    x, _ = read_float(tmp_path / "f.wav")
    assert x[:, 0].tolist() == [0.0, 0.5, -1.0, 32767 / 32768, 32767 / 32768, 0.0]


def test_g711_wav_header(tmp_path):
    data = bytes(g711.encode("mulaw", np.array([0, 1000, -1000], np.int16)))
    raw = write_g711(tmp_path / "u.wav", data, "mulaw").read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:16] == b"WAVEfmt "
    assert int.from_bytes(raw[4:8], "little") == len(raw) - 8
    assert int.from_bytes(raw[20:22], "little") == 7 and int.from_bytes(raw[24:28], "little") == 8000
    assert raw[38:42] == b"data" and raw[46:] == data
    with pytest.raises(WavError, match="u.wav: format 7 with 8 bits"):
        read_float(tmp_path / "u.wav")


def test_read_float_names_the_file(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not a wav at all")
    with pytest.raises(WavError, match="x.wav: not a RIFF/WAVE file"):
        read_float(tmp_path / "x.wav")
