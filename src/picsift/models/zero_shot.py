"""The offline image<->text bridge (ConSE, Norouzi et al. 2014) for the packaged models.

No CLIP weights can be installed offline, so an image is placed in the text model's space as
the probability-weighted average of the embeddings of its top ImageNet classes ("a photo of
a tabby cat"). A text query embedded by the same text model can then be compared with it.
It only knows what ImageNet's 1000 classes cover; see ModelSpec("conse-lite0").note.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from picsift.models.image_model import imagenet_classes
from picsift.models.paths import cache_dir
from picsift.models.text_model import DIM, MODEL_FILE, embed_texts

TOP_K = 10
PROMPT = "a photo of a {}."


@lru_cache(maxsize=1)
def class_text_vectors() -> np.ndarray:
    """(1000, 384) embeddings of the class prompts, cached on disk after the first use."""
    classes = imagenet_classes()
    key = hashlib.sha256((PROMPT + "\n".join(classes) + str(MODEL_FILE.stat().st_size)).encode()).hexdigest()[:16]
    path = cache_dir() / "conse" / f"classes-{key}.npy"
    if path.exists():
        return np.load(path)
    names = [c.split(",")[0].strip() for c in classes]
    vectors = embed_texts([PROMPT.format(n) for n in names])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs recomputing next time
    return vectors


def top_classes(probs: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k), probabilities (N, k)) of the k most probable classes, best first."""
    idx = np.argsort(-probs, axis=1)[:, :k]
    return idx.astype(np.int16), np.take_along_axis(probs, idx, axis=1).astype(np.float32)


def images_in_text_space(class_ids: np.ndarray, class_probs: np.ndarray) -> np.ndarray:
    """(N, 384) unit vectors: probability-weighted class-prompt embeddings."""
    if len(class_ids) == 0:
        return np.zeros((0, DIM), np.float32)
    table = class_text_vectors()
    vectors = np.einsum("nk,nkd->nd", class_probs.astype(np.float32), table[class_ids.astype(np.int64)])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
