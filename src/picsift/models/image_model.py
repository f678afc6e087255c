"""The packaged image model: EfficientNet-Lite0 (ImageNet) on onnxruntime.

Gives a 1280-d embedding (L2-normalised: cosine = dot product) for image-to-image search and
clustering, and ImageNet class probabilities for tags and the offline text bridge.
Preprocessing matches the export check (scripts/export_efficientnet_lite0.py): the whole
image squashed to 224 x 224 with bilinear resampling, ImageNet mean/std.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from picsift.models.onnx_session import onnx_session
from picsift.models.registry import WEIGHTS

INPUT_SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MODEL_FILE = WEIGHTS / "efficientnet_lite0.onnx"


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    return (WEIGHTS / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def preprocess(images: list[Image.Image]) -> np.ndarray:
    """RGB images -> float32 NCHW batch."""
    batch = np.stack([
        np.asarray(im.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR),
                   np.float32) for im in images])
    batch = (batch / 255.0 - MEAN) / STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def embed_images(images: list[Image.Image], threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(unit-norm embeddings (N, 1280), ImageNet probabilities (N, 1000))."""
    if not images:
        return np.zeros((0, 1280), np.float32), np.zeros((0, 1000), np.float32)
    session = onnx_session(str(MODEL_FILE), threads)
    embedding, logits = session.run(["embedding", "logits"], {"pixels": preprocess(images)})
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    return embedding / np.maximum(norms, 1e-12), softmax(logits)
