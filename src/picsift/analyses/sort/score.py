"""Score every media against the labels in the model's text space, chunk by chunk.

Scores are computed on stored text-space vectors read part by part (`EmbeddingStream`), so
memory holds one chunk of vectors and the (rows x labels) scores, never the whole corpus.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import numpy as np

from picsift.analyses.embeddings import CHUNK_ROWS, DEFAULT_MODEL, EmbeddingStream, embedding_set
from picsift.analyses.sort.labels import Label
from picsift.errors import PicsiftError
from picsift.workspace.store import Workspace

# cosine similarities are turned into probabilities with a softmax at this temperature:
# the offline bridge's cosines spread over ~0.1-0.8, CLIP-like models' over ~0.15-0.35
TEMPERATURE = {DEFAULT_MODEL: 0.05}
HUB_TEMPERATURE = 0.01


def label_vectors(labels: list[Label], model: str) -> np.ndarray:
    """(L, d): mean embedding of each label's prompts, unit norm."""
    if model == DEFAULT_MODEL:
        from picsift.models.text_model import embed_texts
    else:
        from picsift.models.hub import HubModel

        embed_texts = HubModel.named(model).embed_texts  # type: ignore[assignment]
    rows = []
    for label in labels:
        vectors = embed_texts(label.prompts).mean(axis=0)
        rows.append(vectors / max(np.linalg.norm(vectors), 1e-12))
    return np.stack(rows).astype(np.float32)


def softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    z = values / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def label_probabilities(space: np.ndarray, vectors: np.ndarray, model: str
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities, probabilities) of text-space rows against label vectors."""
    sims = space @ vectors.T
    return sims, softmax(sims, TEMPERATURE.get(model, HUB_TEMPERATURE))


def text_space(ws: Workspace, model: str = DEFAULT_MODEL, media: Collection[str] | None = None
               ) -> EmbeddingStream:
    """The stored text-space vectors (of ``media`` only, when given), to read in chunks."""
    if not embedding_set(ws, model).parts():
        raise PicsiftError(f"no embeddings in {ws.dir}: run 'picsift embed' first")
    return EmbeddingStream(ws, model, "text_space", media)


def score_chunks(ws: Workspace, labels: list[Label], model: str = DEFAULT_MODEL,
                 media: Collection[str] | None = None, rows: int = CHUNK_ROWS
                 ) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """(media ids, similarities, probabilities) ``rows`` media at a time (latest wins)."""
    stream = text_space(ws, model, media)
    vectors = label_vectors(labels, model)
    for positions, space in stream.chunks(rows=rows):
        sims, probs = label_probabilities(space, vectors, model)
        yield [stream.ids[int(p)] for p in positions], sims, probs


def score(ws: Workspace, labels: list[Label], model: str = DEFAULT_MODEL
          ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(media ids, cosine similarities (N, L), probabilities (N, L)), streamed: the result is
    N x L (labels, not embedding dimensions)."""
    ids: list[str] = []
    sims: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    for chunk_ids, chunk_sims, chunk_probs in score_chunks(ws, labels, model):
        ids.extend(chunk_ids)
        sims.append(chunk_sims)
        probs.append(chunk_probs)
    return ids, np.concatenate(sims), np.concatenate(probs)
