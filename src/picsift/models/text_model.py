"""The packaged text model: all-MiniLM-L6-v2 (int8 ONNX, pooling inside) on onnxruntime."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from picsift.models.onnx_session import onnx_session
from picsift.models.registry import WEIGHTS
from picsift.models.wordpiece import BertWordPiece

MODEL_FILE = WEIGHTS / "all_minilm_l6_v2_int8.onnx"
DIM = 384


@lru_cache(maxsize=1)
def _tokenizer() -> BertWordPiece:
    return BertWordPiece(WEIGHTS / "all_minilm_l6_v2_vocab.txt")


def embed_texts(texts: list[str], batch_size: int = 32, threads: int = 0) -> np.ndarray:
    """Unit-norm sentence embeddings (N, 384); English works best."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    session = onnx_session(str(MODEL_FILE), threads)
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = _tokenizer().batch(texts[start : start + batch_size])
        (vectors,) = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
        out.append(vectors)
    vectors = np.concatenate(out).astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
