"""Step 4: decide whether tentative matches between two images are a real copy, and how.

A similarity transform (rotation, uniform scale, translation: what crops, zooms, rotations
and pasting do) is fitted with RANSAC to the matched keypoints. A pair is a copy when enough
matches agree (``min_inliers``), they are a large enough share of the tentative matches
(``min_inlier_ratio``) and they span a real region of at least one image (``min_coverage``):
unrelated photos do produce 10-40 spurious "inliers" (PIMMI's own test shows it), but these
are few relative to the matches and bunched in a small area.

The fitted transform tells how the images relate: scale, rotation, mirroring, and which part
of each image the other covers, so "A lies inside B" (A is a crop of B, or was pasted into
B) differs from "B lies inside A" and from two partial overlaps (two crops, collages).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INSIDE = 0.9  # share of an image that must fall inside the other to call it "inside"


@dataclass
class PairGeometry:
    """The verified relation between a query image and a matched image."""

    matches: int
    inliers: int
    inlier_ratio: float
    scale: float            # size of query content in the match / size in the query
    rotation: float         # degrees, counter-clockwise, query -> match
    mirrored: bool
    query_covered: float    # share of the query's area spanned by the inliers (hull)
    match_covered: float    # share of the match's area spanned by the inliers (hull)
    query_inside: float     # share of the query's frame that maps inside the match's frame
    match_inside: float     # share of the match's frame that maps inside the query's frame
    relation: str           # same | inside | contains | overlap

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hull_share(points: np.ndarray, width: float, height: float) -> float:
    import cv2

    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(min(1.0, cv2.contourArea(hull) / max(1.0, width * height)))


def _rect(width: float, height: float) -> np.ndarray:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def _inside_share(transform: np.ndarray, src_wh: tuple[float, float],
                  dst_wh: tuple[float, float]) -> float:
    """Share of the source frame that lands inside the destination frame."""
    import cv2

    corners = _rect(*src_wh)
    projected = corners @ transform[:, :2].T + transform[:, 2]
    area_src = abs(cv2.contourArea(projected.astype(np.float32)))
    if area_src <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(projected.astype(np.float32), _rect(*dst_wh))
    return float(min(1.0, inter / area_src))


def _invert(transform: np.ndarray) -> np.ndarray:
    full = np.vstack([transform, [0, 0, 1]])
    return np.linalg.inv(full)[:2]


def relation_of(query_inside: float, match_inside: float) -> str:
    if query_inside >= INSIDE and match_inside >= INSIDE:
        return "same"
    if query_inside >= INSIDE:
        return "inside"
    if match_inside >= INSIDE:
        return "contains"
    return "overlap"


MAX_ANISOTROPY = 2.0  # stretched thumbnails are common; stronger distortions are not copies


def _fit(model: str, src: np.ndarray, dst: np.ndarray, threshold: float
         ) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC fit of a similarity (4 dof) or, for stretched copies, a full affine (6 dof)."""
    import cv2

    estimate = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    transform, mask = estimate(src.astype(np.float32), dst.astype(np.float32), method=cv2.RANSAC,
                               ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995,
                               refineIters=10)
    if transform is None or mask is None:
        return None
    linear = transform[:, :2]
    if model == "affine":
        singular = np.linalg.svd(linear, compute_uv=False)
        if np.linalg.det(linear) <= 0 or singular[0] > MAX_ANISOTROPY * singular[1]:
            return None  # a reflection or a strong shear: not how copies are made
    return transform, mask.ravel().astype(bool)


def verify_pair(q_xy: np.ndarray, m_xy: np.ndarray, q_wh: tuple[int, int],
                m_wh: tuple[int, int], *, mirrored: bool, min_inliers: int,
                min_inlier_ratio: float, min_coverage: float,
                ransac_threshold: float) -> PairGeometry | None:
    """Fit and judge; ``q_xy`` are already mirrored when ``mirrored`` (query frame flipped).

    Returns None when the pair is not a copy.
    """
    n = len(q_xy)
    if n < max(3, min_inliers):
        return None
    threshold = max(1.5, ransac_threshold * math.hypot(*m_wh))
    def good(fit: tuple[np.ndarray, np.ndarray] | None) -> bool:
        return fit is not None and fit[1].sum() >= min_inliers and fit[1].sum() / n >= min_inlier_ratio

    fitted = _fit("similarity", q_xy, m_xy, threshold)
    if not good(fitted):
        # A stretched copy still agrees locally with a similarity; only then try an affine.
        if fitted is None or fitted[1].sum() < min_inliers // 2:
            return None
        fitted = _fit("affine", q_xy, m_xy, threshold)
        if not good(fitted):
            return None
    assert fitted is not None
    transform, inlier = fitted
    inliers = int(inlier.sum())
    ratio = inliers / n
    scale = math.sqrt(abs(float(np.linalg.det(transform[:, :2]))))
    if not 0.05 <= scale <= 20.0:
        return None
    a, b = float(transform[0, 0]), float(transform[1, 0])
    q_cov = _hull_share(q_xy[inlier], *q_wh)
    m_cov = _hull_share(m_xy[inlier], *m_wh)
    if max(q_cov, m_cov) < min_coverage:
        return None
    q_in = _inside_share(transform, q_wh, m_wh)
    m_in = _inside_share(_invert(transform), m_wh, q_wh)
    rotation = math.degrees(math.atan2(b, a))
    return PairGeometry(
        matches=n, inliers=inliers, inlier_ratio=round(ratio, 4), scale=round(scale, 4),
        rotation=round(rotation, 2), mirrored=mirrored, query_covered=round(q_cov, 4),
        match_covered=round(m_cov, 4), query_inside=round(q_in, 4), match_inside=round(m_in, 4),
        relation=relation_of(q_in, m_in),
    )
