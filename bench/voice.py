"""`parley bench voice`: how intelligible an agent voice can be through the model's own audio path.

The interaction model writes dMel levels (80 mel bins, 16 levels, 20 ms frames) that its vocoder
turns into audio. Even a model that wrote exactly the levels of its training voice could sound no
better than those levels vocoded. For agent lines of the support calls, Whisper (evaluation.asr)
transcribes, each after an 8 kHz mu-law round trip (the telephone line):
- `line`: the voice's own audio;
- `vocoded`: its dMel levels, dequantised and vocoded by a checkpoint's vocoder (or a vocoder
  run's `vocoder.safetensors`) — the ceiling for the model's agent WER with that voice.

Prints one JSON object with the WER of each, pooled over the lines, and the matmul GFLOP/s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr
import torch

from evaluation.asr import Recogniser
from evaluation.metrics import matmul_gflops, word_errors
from model.config import ModelConfig
from model.dmel import DMel
from model.vocoder import Vocoder, vocoder_delay_samples
from telephony.g711 import float_to_pcm16, ulaw_decode, ulaw_encode

LINES = (
    "Thanks for calling Harbor Lane Goods, this is Robin. How can I help you today?",
    "Your order shipped on June twenty-sixth and should arrive by July second.",
    "I couldn't find an order with that number. Could you read it to me again?",
    "We accept all major credit cards, PayPal and our own gift cards.",
    "I've started the return. Your return number is R as in Romeo, four five one two.",
    "Sure, I can help with that. What's the order number?",
    "Let me check that for you.",
    "Is there anything else I can help you with today?",
)


def telephone(audio16k: np.ndarray) -> np.ndarray:
    """A 16 kHz float signal through an 8 kHz mu-law line and back to 16 kHz."""
    narrow = soxr.resample(audio16k.astype(np.float32), 16_000, 8_000, quality="HQ")
    pcm = ulaw_decode(ulaw_encode(float_to_pcm16(narrow)))
    return soxr.resample(pcm.astype(np.float32) / 32768.0, 8_000, 16_000, quality="HQ").astype(np.float32)


def load_vocoder(cfg: ModelConfig, path: Path) -> Vocoder:
    """A checkpoint directory's vocoder (`model.safetensors`, prefix "vocoder.") or a vocoder run's
    `vocoder.safetensors`."""
    from safetensors.torch import load_file

    vocoder = Vocoder(cfg)
    if path.is_dir() and (path / "vocoder.safetensors").is_file():
        state = load_file(str(path / "vocoder.safetensors"))
    else:
        weights = load_file(str(path / "model.safetensors" if path.is_dir() else path))
        prefix = "vocoder."
        state = {k.removeprefix(prefix): v.float() for k, v in weights.items() if k.startswith(prefix)}
    vocoder.load_state_dict(state)
    return vocoder.eval()


def voice_lines(voice: str) -> list[np.ndarray]:
    """LINES at 16 kHz in the agent voice: "espeak" (corpus.render's agent voice) or "piper"."""
    if voice == "piper":
        from corpus.piper_voice import PiperJoe

        return [PiperJoe.instance().synthesize_16k(t).audio for t in LINES]
    from corpus.render import AGENT_RATE_WPM, AGENT_VOICES
    from corpus.tts import Espeak

    return [Espeak.instance().synthesize_16k(t, AGENT_VOICES["en"], AGENT_RATE_WPM).audio for t in LINES]


def vocoded(audio: np.ndarray, cfg: ModelConfig, dmel: DMel, vocoder: Vocoder) -> np.ndarray:
    """`audio` as quantised dMel levels, dequantised and vocoded (aligned back by the vocoder's delay)."""
    delay = vocoder_delay_samples(cfg)
    n = -(-(len(audio) + delay) // dmel.hop) * dmel.hop
    x = torch.from_numpy(np.pad(audio, (0, n - len(audio))).astype(np.float32))[None]
    with torch.no_grad():
        out = vocoder(dmel.dequantize(dmel.quantize(dmel.log_mel(x))))[0].numpy()
    return out[delay:][: len(audio)]


def run(voice: str, vocoder_path: Path, preset: str = "small") -> dict:
    cfg = ModelConfig.from_name(preset)
    dmel, vocoder = DMel(cfg), load_vocoder(cfg, vocoder_path)
    asr = Recogniser(threads=2)
    errors = {"line": [0, 0], "vocoded": [0, 0]}
    heard = []
    for text, audio in zip(LINES, voice_lines(voice)):
        for name, signal in (("line", audio), ("vocoded", vocoded(audio, cfg, dmel, vocoder))):
            hypothesis = asr.transcribe(telephone(signal), 16_000)
            e, n = word_errors(text, hypothesis)
            errors[name][0] += e
            errors[name][1] += n
            if name == "vocoded":
                heard.append(hypothesis)
    return {
        "voice": voice,
        "vocoder": str(vocoder_path),
        "lines": len(LINES),
        "wer": {name: round(e / n, 3) for name, (e, n) in errors.items()},
        "vocoded_heard": heard[:3],
        "matmul_gflops": round(matmul_gflops(), 1),
    }
