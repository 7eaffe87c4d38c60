"""A disk cache of voiced lines, shared by the neural voices (corpus.piper_voice, corpus.kokoro_voice).

A line is one .npz under `directory/<2 hex>/<sha256>.npz`, keyed by everything that shapes its
audio (`line_path`), holding its text, 16 kHz audio and word events. Reads give None for a
missing, damaged or foreign file (the caller voices it again); writes are atomic (a temporary
file, then os.replace), so processes sharing the cache never read half a line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from corpus.tts import SAMPLE_RATE_16K, SynthResult, WordEvent


def line_path(directory: Path, **key: Any) -> Path:
    """Where the line with these key fields (text, voice, settings...) lives."""
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    return directory / digest[:2] / f"{digest}.npz"


def read_line(path: Path, text: str) -> SynthResult | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["text"]) != text:
                return None
            audio = data["audio"].astype(np.float32)
            words = tuple(WordEvent(*map(int, row)) for row in data["words"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # missing, damaged or foreign: voiced again
    return SynthResult(audio=audio, sample_rate=SAMPLE_RATE_16K, words=words, phonemes=())


def write_line(path: Path, text: str, result: SynthResult) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        text=np.array(text),
        audio=result.audio,
        words=np.array([list(w) for w in result.words], np.int64).reshape(-1, 4),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
