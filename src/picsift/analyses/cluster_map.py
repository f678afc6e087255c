"""The 2-D map of a clustering: t-SNE (PCA above 5000 points, where t-SNE gets slow), drawn
with Pillow so picsift needs no plotting library. Large corpora are drawn from a bounded,
seeded sample (`map_sample`), so the map never needs every embedding in memory."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TSNE_MAX_POINTS = 5000
NOISE_COLOUR = (190, 190, 190)


MAP_FLOOR = 20  # a sampled map still shows this many images of every cluster (when it has them)


def map_sample(clusters: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Increasing row positions of at most ``limit`` rows to draw: all rows when there are
    that few; else up to ``MAP_FLOOR`` of every cluster (fewer when clusters are very many),
    the rest drawn at random, all with ``seed``, so small clusters still appear."""
    n = len(clusters)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    order = np.argsort(clusters, kind="stable")
    found, starts, counts = np.unique(clusters[order], return_index=True, return_counts=True)
    real = found > 0
    floor = min(MAP_FLOOR, max(1, limit // (2 * max(1, int(real.sum())))))
    chosen = np.zeros(n, bool)
    for start, count in zip(starts[real], counts[real]):
        members = order[start : start + count]
        chosen[rng.choice(members, min(floor, count), replace=False)] = True
    rest = np.flatnonzero(~chosen)
    room = limit - int(chosen.sum())
    if room > 0:
        chosen[rng.choice(rest, min(room, len(rest)), replace=False)] = True
    picked = np.flatnonzero(chosen)
    if len(picked) > limit:  # more clusters than dots: one image of a random ``limit`` of them
        picked = np.sort(rng.choice(picked, limit, replace=False))
    return picked


def map_layout(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates and the method's name ("t-SNE" or "PCA")."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(vectors)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)]), "PCA"
    if n > TSNE_MAX_POINTS:
        return PCA(n_components=2, random_state=seed).fit_transform(vectors), "PCA"
    reduced = vectors
    if vectors.shape[1] > 50 and n > 50:  # usual t-SNE practice: denoise and speed up first
        reduced = PCA(n_components=50, random_state=seed).fit_transform(vectors)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(reduced), "t-SNE"


def cluster_colour(cluster: int) -> tuple[int, int, int]:
    """A distinct, stable colour per cluster id (golden-angle hues); grey for unclustered."""
    if cluster < 1:
        return NOISE_COLOUR
    hue = (cluster * 0.618033988749895) % 1.0
    value = 0.85 if cluster % 2 else 0.65
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, value)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_map(coords: np.ndarray, clusters: np.ndarray, out: str | Path, title: str = "",
             size: int = 1000) -> Path:
    """Scatter plot PNG: one dot per image coloured by cluster, cluster numbers at medians."""
    out = Path(out)
    margin, top = 30, 40
    image = Image.new("RGB", (size, size + top - margin), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.text((margin, 10), title, fill="black", font=font)
    if len(coords):
        low, high = coords.min(axis=0), coords.max(axis=0)
        span = np.where(high - low > 0, high - low, 1.0)
        pixels = (coords - low) / span * (size - 2 * margin) + margin
        pixels[:, 1] += top - margin
        radius = 4 if len(coords) < 2000 else 2
        for noise_first in (True, False):  # grey underneath, clusters on top
            for (x, y), c in zip(pixels, clusters):
                if (c < 1) == noise_first:
                    draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                                 fill=cluster_colour(int(c)))
        for c in np.unique(clusters[clusters > 0]):
            x, y = np.median(pixels[clusters == c], axis=0)
            draw.text((x + 6, y - 8), str(int(c)), fill="black", font=font,
                      stroke_width=2, stroke_fill="white")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out
