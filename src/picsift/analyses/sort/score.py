"""Score every media against the labels in the model's text space."""

from __future__ import annotations

import numpy as np

from picsift.analyses.embeddings import DEFAULT_MODEL, load_embeddings
from picsift.analyses.sort.labels import Label
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


def score(ws: Workspace, labels: list[Label], model: str = DEFAULT_MODEL
          ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(media ids, cosine similarities (N, L), probabilities (N, L))."""
    ids, space = load_embeddings(ws, model, "text_space")
    sims = space @ label_vectors(labels, model).T
    return ids, sims, softmax(sims, TEMPERATURE.get(model, HUB_TEMPERATURE))
