"""Where pulled models are cached: $PICSIFT_MODELS, else ~/.cache/picsift/models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("PICSIFT_MODELS", Path.home() / ".cache" / "picsift" / "models"))
