"""Image embeddings for search, near-duplicates and clustering (worker side).

Each media is decoded at reduced size (JPEG draft) and embedded by the packaged image model;
stored per batch: the unit-norm embedding (float16: halves the size, cosine error < 1e-3),
the ImageNet top-10 classes with probabilities (tags, and the offline text bridge), and the
image's vector in text space (ConSE) so text search needs no recomputation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from picsift.errors import MediaError
from picsift.media.decode import DecodeOptions, load_image

EXTRACTOR = "embed"
VERSION = "1"
DECODE_SIZE = 256  # >= the model's 224 input, lets libjpeg decode at 1/2-1/8 scale


def embed_batch(model: str, decode: DecodeOptions, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Worker task: (media_id, path) pairs -> one record per media (or an error record).

    ``model`` is the packaged default or a pulled hub model (name or folder); a hub model's
    image embedding is also its text-space vector (CLIP-like models share one space).
    """
    images, kept, out = [], [], []
    for media_id, path in batch:
        try:
            images.append(load_image(path, size=DECODE_SIZE, options=decode))
            kept.append(media_id)
        except MediaError as exc:
            out.append({"media_id": media_id, "path": path, "error": exc.reason, "kind": exc.kind})
    if images and model != "efficientnet-lite0":
        from picsift.models.hub import HubModel

        embeddings = HubModel.named(model).embed_images(images)
        for n, media_id in enumerate(kept):
            out.append({"media_id": media_id, "embedding": embeddings[n],
                        "classes": np.zeros(0, np.int16), "probs": np.zeros(0, np.float32),
                        "text_space": embeddings[n]})
    elif images:
        from picsift.models.image_model import embed_images
        from picsift.models.zero_shot import images_in_text_space, top_classes

        embeddings, probs = embed_images(images, threads=1)
        ids, top_p = top_classes(probs)
        text_space = images_in_text_space(ids, top_p)
        for n, media_id in enumerate(kept):
            out.append({"media_id": media_id, "embedding": embeddings[n], "classes": ids[n],
                        "probs": top_p[n], "text_space": text_space[n]})
    return out
