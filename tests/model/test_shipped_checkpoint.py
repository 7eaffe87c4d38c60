"""The committed `small2` checkpoint: it loads as the default model and its vocoder is trained."""

from __future__ import annotations

import numpy as np
import torch

from corpus.labels import dmel_levels
from corpus.tts import Espeak
from model.checkpoint import DEFAULT_CHECKPOINT, load_model
from model.config import ModelConfig
from model.dmel import DMel
from model.vocoder import Vocoder, vocoder_delay_samples


def _mel_distance(vocoder: Vocoder, cfg: ModelConfig, speech: np.ndarray) -> float:
    """Mean |log-mel| difference between speech and the vocoder's rendering of its dMel levels."""
    dmel = DMel(cfg)
    levels = torch.from_numpy(dmel_levels(speech, cfg).reshape(1, -1, cfg.n_mels)).long()
    with torch.no_grad():
        out = vocoder(dmel.dequantize(levels))[0]
        d = vocoder_delay_samples(cfg)
        ref = torch.from_numpy(speech)[: len(out) - d]
        got = out[d:]
        n = len(got) // cfg.hop_length * cfg.hop_length
        return float((dmel.log_mel(got[None, :n]) - dmel.log_mel(ref[None, :n])).abs().mean())


def test_small2_warm_starts_from_a_small_checkpoint(tmp_path):
    """How small2 was made: every tensor of a `small` checkpoint loads into it, and only the
    words-mode event embedding and the reply prompter start fresh."""
    from model.checkpoint import save_checkpoint, warm_start
    from model.interaction import InteractionModel

    torch.manual_seed(0)
    small = InteractionModel(ModelConfig.from_name("small"))
    save_checkpoint(small, tmp_path / "small")
    model = InteractionModel(ModelConfig.from_name("small2"))
    fresh = warm_start(model, tmp_path / "small")
    assert fresh and all(name.startswith(("event_words.", "prompter.")) for name in fresh)
    kept = small.state_dict()
    assert all(torch.equal(t, kept[name]) for name, t in model.state_dict().items() if name in kept)


def test_the_shipped_checkpoint_is_the_default_and_its_vocoder_speaks():
    assert (DEFAULT_CHECKPOINT / "model.safetensors").is_file()
    assert (DEFAULT_CHECKPOINT / "TRAINING.md").is_file()  # how it was made travels with it
    model = load_model()
    cfg = model.cfg
    assert cfg == ModelConfig.from_name("small2")
    text = "Thanks for calling. Let me check that order for you."
    speech = Espeak.instance().synthesize_16k(text, voice="en-us+f3").audio.astype(np.float32)
    speech = speech[: len(speech) // 3200 * 3200]
    trained = _mel_distance(model.vocoder, cfg, speech)
    torch.manual_seed(0)
    untrained = _mel_distance(Vocoder(cfg), cfg, speech)
    assert trained < 1.0 and trained < 0.4 * untrained, (trained, untrained)
