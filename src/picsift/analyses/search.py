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


DUPLICATE_BATCH = 4096  # query vectors per index search


def semantic_duplicates(ws: Workspace, threshold: float = 0.95, model: str = DEFAULT_MODEL,
                        k: int = 20) -> pd.DataFrame:
    """Groups of images whose embeddings have cosine >= threshold (imagededup's CNN mode).

    One row per path: group, media_id, path, best similarity to another member. Every image
    asks the index for its k nearest neighbours, with its stored vector read from the parts
    a batch at a time; edges go to integer arrays and groups are the connected components
    of that sparse graph (biggest first, then by first image in storage order).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = VectorIndex(ws, model, "embedding").ensure()
    assert index.stored is not None
    n = len(index.media_ids)
    sources: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    best = np.zeros(n, np.float32)
    vertex = np.int32 if n < 2**31 else np.int64  # at most n * k edges: 4 bytes an end
    for me, queries in index.stored.chunks(rows=DUPLICATE_BATCH):
        sims, pos = index.search(queries, min(k + 1, n))
        near = (pos >= 0) & (pos != me[:, None]) & (sims >= threshold)
        rows, cols = np.nonzero(near)
        sources.append(me[rows].astype(vertex))
        targets.append(pos[rows, cols].astype(vertex))
        best[me] = np.maximum(best[me], np.where(near, sims, 0).max(axis=1, initial=0))
    edges_from = np.concatenate(sources) if sources else np.zeros(0, vertex)
    edges_to = np.concatenate(targets) if targets else np.zeros(0, vertex)
    graph = coo_matrix((np.ones(len(edges_from), np.int8), (edges_from, edges_to)), shape=(n, n))
    _count, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    first = np.full(len(sizes), n, np.int64)
    np.minimum.at(first, component, np.arange(n))
    members = np.flatnonzero(sizes[component] > 1)
    # groups ordered biggest first, ties by their first member; members by position
    grouped = np.unique(component[members])
    rank = np.empty(len(sizes), np.int64)
    rank[grouped[np.lexsort((first[grouped], -sizes[grouped]))]] = np.arange(1, len(grouped) + 1)
    members = members[np.lexsort((members, rank[component[members]]))]
    paths = _paths(ws)
    ids = [index.media_ids[int(v)] for v in members]
    return pd.DataFrame({"group": rank[component[members]], "media_id": ids,
                         "path": [paths.get(m) for m in ids],
                         "similarity": [round(float(best[v]), 4) for v in members]},
                        columns=["group", "media_id", "path", "similarity"])
