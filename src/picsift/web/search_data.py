"""Search for the web page: by text (embedding bridge), by image, "more like this", OCR words.

Ranking is picsift.analyses.search's (same vectors, same weighting of negative queries); the
difference is that the FAISS indexes are loaded once per workspace state and kept, where the
CLI loads them per call, and that "more like this" reuses the stored embedding of a media
instead of decoding it again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import PicsiftError
from picsift.web.context import WebContext

NEGATIVE_WEIGHT = 0.5


def embedding_models(ctx: WebContext) -> list[str]:
    """Models with stored embeddings (the packaged default first)."""
    from picsift.analyses.embeddings import DEFAULT_MODEL

    rows = ctx.ws().query("SELECT DISTINCT model FROM feature_sets WHERE name LIKE 'embed%' "
                          "AND model IS NOT NULL")
    models = sorted({Path(r["model"]).name if r["model"] != DEFAULT_MODEL else DEFAULT_MODEL
                     for r in rows}, key=lambda m: (m != DEFAULT_MODEL, m))
    return models


def _index(ctx: WebContext, model: str, array: str) -> Any:
    from picsift.analyses.vector_index import VectorIndex

    def build() -> tuple[Any, dict[str, int]]:
        index = VectorIndex(ctx.ws(), model, array).ensure()
        return index, {m: i for i, m in enumerate(index.media_ids)}

    return ctx.cache.get(ctx.ws(), f"index:{model}:{array}", build)


def _rank(spaces: list[tuple[Any, np.ndarray, float]], top: int, exclude: str | None = None
          ) -> list[tuple[str, float]]:
    positives = sum(1 for _, _, w in spaces if w > 0) or 1
    scores: dict[str, float] = {}
    for index, vector, weight in spaces:
        n = len(index.media_ids)
        k = n if weight < 0 or n <= 10_000 else min(n, max(top * 20, 1000))
        sims, pos = index.search(vector[None, :].astype(np.float32), k)
        for s, p in zip(sims[0], pos[0]):
            if p < 0:
                continue
            media = index.media_ids[int(p)]
            scores[media] = scores.get(media, 0.0) + weight * float(s) / (positives if weight > 0 else 1)
    if exclude is not None:
        scores.pop(exclude, None)
    return sorted(scores.items(), key=lambda kv: -kv[1])[:top]


def semantic_search(ctx: WebContext, *, text: str = "", negative: str = "",
                    like: str | None = None, image_file: Path | None = None,
                    model: str | None = None, top: int = 100) -> list[tuple[str, float]]:
    """(media id, score) best first for a text query, a stored media or an uploaded picture."""
    from picsift.analyses.embeddings import DEFAULT_MODEL
    from picsift.analyses.search import _image_vector, _text_vector

    model = model or DEFAULT_MODEL
    spaces: list[tuple[Any, np.ndarray, float]] = []
    if text.strip() or negative.strip():
        index, _ = _index(ctx, model, "text_space")
        if text.strip():
            spaces.append((index, _text_vector([text.strip()], model), 1.0))
        if negative.strip():
            spaces.append((index, _text_vector([negative.strip()], model), -NEGATIVE_WEIGHT))
    if like is not None:
        index, position = _index(ctx, model, "embedding")
        if like not in position:
            raise PicsiftError("this image has no embedding yet: run 'picsift embed'")
        vector = index.vectors_of(np.array([position[like]]))[0]
        spaces.append((index, vector / max(float(np.linalg.norm(vector)), 1e-12), 1.0))
    if image_file is not None:
        index, _ = _index(ctx, model, "embedding")
        spaces.append((index, _image_vector([image_file], model), 1.0))
    if not any(w > 0 for _, _, w in spaces):
        raise PicsiftError("give words, a picture, or pick 'more like this' on an image")
    return _rank(spaces, top, exclude=like)


def text_search(ctx: WebContext, query: str, offset: int, limit: int
                ) -> tuple[list[dict[str, Any]], bool]:
    """OCR full-text search (`picsift search --text`): rows of media id, score, snippet.

    Returns one page and whether there is a next one. Uses the FTS5 index only (LIMIT/OFFSET),
    so it stays fast on large corpora.
    """
    from picsift.analyses.text import _fts_query

    fts = _fts_query(query)
    try:
        rows = ctx.ws().query(
            "SELECT x.media_id, bm25(text_fts) AS score, "
            "snippet(text_fts, 1, '\x02', '\x03', '…', 12) AS snippet FROM text_fts x "
            "WHERE text_fts MATCH ? ORDER BY score LIMIT ? OFFSET ?", (fts, limit + 1, offset))
    except sqlite3.OperationalError as exc:
        raise PicsiftError(f"cannot search for {query!r}: {exc}") from exc
    out = [{"media_id": r["media_id"], "score": round(-float(r["score"]), 4),
            "snippet": _snippet_parts(r["snippet"])} for r in rows[:limit]]
    return out, len(rows) > limit


def _snippet_parts(snippet: str | None) -> list[tuple[str, bool]]:
    """Split FTS5's snippet on its markers into (text, highlighted) pieces the template escapes."""
    parts: list[tuple[str, bool]] = []
    text = " ".join((snippet or "").split())
    highlighted = False
    piece = ""
    for char in text:
        if char in "\x02\x03":
            if piece:
                parts.append((piece, highlighted))
            piece, highlighted = "", char == "\x02"
        else:
            piece += char
    if piece:
        parts.append((piece, highlighted))
    return parts


def has_text_index(ctx: WebContext) -> bool:
    return bool(ctx.ws().scalar("SELECT COUNT(*) FROM media_text"))
