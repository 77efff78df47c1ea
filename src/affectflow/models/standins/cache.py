"""Where built stand-in files are cached between runs: ``$AFFECTFLOW_STANDIN_CACHE``, else the checkout's
git-ignored ``.cache/standins/face``.

Building a face or detector stand-in takes seconds to minutes (float64
BatchNorm calibration); tests and the demo ask for the same files again and
again, so they are built once. The callers key the path by torch version, seed
and builder version, so a cached file is never served for other bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "AFFECTFLOW_STANDIN_CACHE"


def default_cache_dir() -> Path:
    """``$AFFECTFLOW_STANDIN_CACHE``, else ``<repo>/.cache/standins/face`` (git-ignored)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    # this file is <repo>/src/affectflow/models/standins/cache.py
    return Path(__file__).resolve().parents[4] / ".cache" / "standins" / "face"
