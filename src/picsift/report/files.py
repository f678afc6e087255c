"""Writing report pages: whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_page(out: Path, page: str) -> Path:
    """Write ``page`` to ``out`` through a temporary file and a rename, so a browser (or a
    Ctrl-C) never sees half a page; returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
