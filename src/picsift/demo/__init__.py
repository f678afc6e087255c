"""The bundled demo corpus and the `picsift demo` run over it."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def corpus_path() -> Path:
    """Folder of the demo corpus shipped inside the package (read-only: copy it before use)."""
    return CORPUS
