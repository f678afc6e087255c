"""Search a corpus by text ("a crowd with flags") or by image ("more like this").

Text queries are compared with each image's position in text space (the packaged ConSE
bridge: weak, see `picsift models list`); image queries with image embeddings. Several
queries are averaged; negative queries push results away (score minus half their
similarity). Returns a DataFrame: rank, score, media_id, path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from picsift.analyses.embeddings import DEFAULT_MODEL
from picsift.analyses.vector_index import VectorIndex
from picsift.errors import PicsiftError
from picsift.media.decode import load_image
from picsift.workspace.store import Workspace

NEGATIVE_WEIGHT = 0.5


def _text_vector(texts: list[str], model: str) -> np.ndarray:
    if model == DEFAULT_MODEL:
        from picsift.models.text_model import embed_texts

        vectors = embed_texts(texts)
    else:
        from picsift.models.hub import HubModel

        vectors = HubModel.named(model).embed_texts(texts)
    vector = vectors.mean(axis=0)
    return vector / max(np.linalg.norm(vector), 1e-12)


def _image_vector(paths: list[str | Path], model: str) -> np.ndarray:
    images = [load_image(p, size=256 if model == DEFAULT_MODEL else 512) for p in paths]
    if model == DEFAULT_MODEL:
        from picsift.models.image_model import embed_images

        vectors = embed_images(images)[0]
    else:
        from picsift.models.hub import HubModel

        vectors = HubModel.named(model).embed_images(images)
    vector = vectors.mean(axis=0)
    return vector / max(np.linalg.norm(vector), 1e-12)


def _paths(ws: Workspace) -> dict[str, str]:
    return {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') GROUP BY media_id")}


def _sources(ws: Workspace) -> dict[str, str]:
    """For keyframes, "video.mp4 @ 2.00 s": what a researcher recognises, not the stored JPEG."""
    return {r["media_id"]: f"{Path(r['video']).name} @ {r['frame_time']:.2f} s" for r in ws.query(
        "SELECT m.media_id, m.frame_time, (SELECT MIN(v.path) FROM files v WHERE v.media_id = m.video_id "
        "AND v.kind = 'video') AS video FROM media m WHERE m.kind = 'frame'") if r["video"]}


def search(ws: Workspace, texts: list[str] | None = None, images: list[str | Path] | None = None,
           negative_texts: list[str] | None = None, negative_images: list[str | Path] | None = None,
           top: int = 50, model: str = DEFAULT_MODEL) -> pd.DataFrame:
    """Rank media by similarity to the queries; see the module docstring."""
    texts, images = texts or [], images or []
    negative_texts, negative_images = negative_texts or [], negative_images or []
    if not texts and not images:
        raise PicsiftError("give a text query, an image (--image) or a queries file")
    spaces: list[tuple[VectorIndex, np.ndarray, float]] = []
    if texts or negative_texts:
        index = VectorIndex(ws, model, "text_space").ensure()
        if texts:
            spaces.append((index, _text_vector(texts, model), 1.0))
        if negative_texts:
            spaces.append((index, _text_vector(negative_texts, model), -NEGATIVE_WEIGHT))
    if images or negative_images:
        index = VectorIndex(ws, model, "embedding").ensure()
        if images:
            spaces.append((index, _image_vector(images, model), 1.0))
        if negative_images:
            spaces.append((index, _image_vector(negative_images, model), -NEGATIVE_WEIGHT))
    positives = sum(1 for _, _, w in spaces if w > 0)
    scores: dict[str, float] = {}
    for index, vector, weight in spaces:
        n = len(index.media_ids)
        k = n if weight < 0 or n <= 10_000 else min(n, max(top * 20, 1000))
        sims, pos = index.search(vector[None, :], k)
        for s, p in zip(sims[0], pos[0]):
            if p < 0:
                continue
            media = index.media_ids[int(p)]
            scores[media] = scores.get(media, 0.0) + weight * float(s) / (positives if weight > 0 else 1)
    paths = _paths(ws)
    sources = _sources(ws)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:top]
    return pd.DataFrame({
        "rank": np.arange(1, len(ranked) + 1),
        "score": [round(s, 4) for _, s in ranked],
        "media_id": [m for m, _ in ranked],
        "path": [paths.get(m) for m, _ in ranked],
        "source": [sources.get(m, paths.get(m)) for m, _ in ranked],
    })


def semantic_duplicates(ws: Workspace, threshold: float = 0.95, model: str = DEFAULT_MODEL,
                        k: int = 20) -> pd.DataFrame:
    """Groups of images whose embeddings have cosine >= threshold (imagededup's CNN mode).

    One row per path: group, media_id, path, best similarity to another member.
    """
    import igraph as ig

    index = VectorIndex(ws, model, "embedding").ensure()
    n = len(index.media_ids)
    edges: list[tuple[int, int]] = []
    best = np.zeros(n, np.float32)
    batch = 4096
    for start in range(0, n, batch):
        queries = index.vectors_of(np.arange(start, min(n, start + batch)))
        sims, pos = index.search(queries, min(k + 1, n))
        for row, (srow, prow) in enumerate(zip(sims, pos)):
            me = start + row
            for s, p in zip(srow, prow):
                if p >= 0 and p != me and s >= threshold:
                    edges.append((me, int(p)))
                    best[me] = max(best[me], s)
    graph = ig.Graph(n=n, edges=edges)
    groups = [c for c in graph.connected_components() if len(c) > 1]
    groups.sort(key=lambda c: -len(c))
    paths = _paths(ws)
    rows = []
    for g, members in enumerate(groups, start=1):
        for v in members:
            media = index.media_ids[v]
            rows.append({"group": g, "media_id": media, "path": paths.get(media),
                         "similarity": round(float(best[v]), 4)})
    return pd.DataFrame(rows, columns=["group", "media_id", "path", "similarity"])
