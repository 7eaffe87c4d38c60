"""A disk cache of voiced lines, shared by the neural voices (corpus.piper_voice, corpus.kokoro_voice).

A line is one .npz under `directory/<2 hex>/<sha256>.npz`, keyed by everything that shapes its
audio (`line_path`), holding its text, 16 kHz audio and word events. Reads give None for a
missing, damaged or foreign file (the caller voices it again); writes are atomic (a temporary
file, then os.replace), so processes sharing the cache never read half a line. `CachedVoice` is
what such a voice keeps around its model: the cache directory, a lock, the process's shared
instance, and the read-or-voice-and-write of one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from corpus.paths import default_cache_dir
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


class CachedVoice:
    """A neural voice's per-process state: lines cached under `cache_dir/subdir` (the corpus cache
    root by default) unless `use_cache` is False, one lock around voicing, and `instance()`, the
    process's shared voice of each subclass (default cache). A forked child gets fresh locks."""

    _instance: CachedVoice | None = None
    _instance_lock = threading.Lock()

    def __init__(self, cache_dir: str | Path | None, subdir: str, use_cache: bool) -> None:
        self.cache_dir = Path(cache_dir if cache_dir is not None else default_cache_dir()) / subdir
        self.use_cache = use_cache
        self.synthesized = 0  # lines the model voiced in this process (the rest came from the cache)
        self._lock = threading.Lock()
        _live.add(self)

    @classmethod
    def instance(cls):
        """The shared voice of this process (default cache), created on first use."""
        with CachedVoice._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _voiced(self, path: Path | None, text: str, voice: Callable[[], SynthResult]) -> SynthResult:
        """The line at `path` from the cache, else `voice()`d and cached (no cache: `path` None)."""
        with self._lock:
            if path is not None:
                cached = read_line(path, text)
                if cached is not None:
                    return cached
            result = voice()
            if path is not None:
                write_line(path, text, result)
            return result


_live: weakref.WeakSet[CachedVoice] = weakref.WeakSet()


def _reset_after_fork() -> None:
    CachedVoice._instance_lock = threading.Lock()
    for voice in list(_live):
        voice._lock = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_reset_after_fork)
