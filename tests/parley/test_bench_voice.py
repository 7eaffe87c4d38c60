"""`parley bench voice`'s pieces: the telephone line and the dMel + vocoder round trip it scores."""

import numpy as np
import pytest
import torch

from bench.voice import load_vocoder, telephone, vocoded
from model.checkpoint import DEFAULT_CHECKPOINT
from model.config import ModelConfig
from model.dmel import DMel


def test_the_telephone_line_keeps_length_and_cuts_the_upper_band():
    t = np.arange(16_000) / 16_000
    low, high = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 6000 * t)
    out_low, out_high = telephone(0.5 * low), telephone(0.5 * high)
    assert abs(len(out_low) - 16_000) <= 2
    assert np.std(out_low) > 0.3 and np.std(out_high) < 0.02


@pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "model.safetensors").is_file(), reason="no shipped checkpoint")
def test_vocoded_audio_is_aligned_with_its_source():
    pytest.importorskip("espeakng_loader")
    from corpus.tts import Espeak

    cfg = ModelConfig.from_name("small")
    audio = Espeak.instance().synthesize_16k("Let me check that order for you.").audio
    audio = audio[: len(audio) // 320 * 320]
    out = vocoded(audio, cfg, DMel(cfg), load_vocoder(cfg, DEFAULT_CHECKPOINT))
    assert len(out) == len(audio)
    dmel = DMel(cfg)
    a, b = (dmel.log_mel(torch.from_numpy(np.asarray(x, np.float32).copy())[None])[0] for x in (audio, out))
    n = min(len(a), len(b))
    assert (a[:n] - b[:n]).abs().mean() < 1.5  # misaligned by a frame or more it is far larger
    shifted = (a[: n - 5] - b[5:n]).abs().mean()
    assert (a[:n] - b[:n]).abs().mean() < shifted
