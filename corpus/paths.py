"""Where generated corpus data lives on disk: the root that the rendered calls (corpus.render) and
the piper voice's line cache (corpus.piper_voice) sit under. $PARLEY_CACHE_DIR overrides the default.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    env = os.environ.get("PARLEY_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "parley" / "corpus"
