"""The matched region of a verified copy pair, for the pair inspector.

The pairs table keeps how two images relate (scale, rotation, mirrored, shares covered) but
not where: the inspector recomputes it from the stored SIFT keypoints and descriptors of the
two images (no image is decoded): RootSIFT nearest neighbours with a ratio test, then the same
RANSAC fit as verification (analyses/copies/verify.py), which gives the transform, the
inliers, and so each image's frame drawn inside the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from picsift.web.context import WebContext


@dataclass
class LocalFeatures:
    width: int
    height: int
    xy: np.ndarray           # (n, 2) keypoint positions at the working size
    descriptors: np.ndarray  # (n, 128) uint8


def _locations(ctx: WebContext) -> dict[str, tuple[str, int]]:
    """media id -> (part file, row) of the SIFT set the copies used; built once per state."""
    def build() -> dict[str, tuple[str, int]]:
        from picsift.analyses.copies.extract import sift_feature_set
        from picsift.web.copies_data import copy_tables

        options = copy_tables(ctx).options
        if options is None:
            return {}
        out: dict[str, tuple[str, int]] = {}
        for part, ids in sift_feature_set(ctx.ws(), options).ids_by_part():
            for row, media_id in enumerate(ids):
                out[media_id] = (str(part), row)
        return out

    return ctx.cache.get(ctx.ws(), "sift_locations", build)


def local_features(ctx: WebContext, media_id: str) -> LocalFeatures | None:
    from pathlib import Path

    import pyarrow.parquet as pq

    from picsift.workspace.features import FeatureSet

    where = _locations(ctx).get(media_id)
    if where is None:
        return None
    part, row = Path(where[0]), where[1]
    meta = pq.read_table(part, columns=["work_width", "work_height"]).slice(row, 1).to_pylist()[0]
    arrays = FeatureSet.arrays_of(part)
    lo, hi = int(arrays["offsets"][row]), int(arrays["offsets"][row + 1])
    return LocalFeatures(int(meta["work_width"]), int(meta["work_height"]),
                         arrays["keypoints"][lo:hi, :2].astype(np.float32),
                         arrays["descriptors"][lo:hi])


def _matches(q: np.ndarray, r: np.ndarray, max_distance: float, ratio: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, result rows) of mutual-best RootSIFT matches passing the ratio test."""
    from picsift.features.local import root_sift

    if len(q) < 2 or len(r) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    qa, ra = root_sift(q), root_sift(r)
    distances = np.maximum(0.0, 2.0 - 2.0 * qa @ ra.T)   # squared L2 of unit vectors
    order = np.argsort(distances, axis=1)[:, :2]
    rows = np.arange(len(q))
    d1, d2 = distances[rows, order[:, 0]], distances[rows, order[:, 1]]
    keep = (d1 <= max_distance) & (d1 <= d2 * ratio * ratio)
    q_idx, r_idx = rows[keep], order[keep, 0]
    best_q = np.argmin(distances, axis=0)                # mutual: r's nearest query is q
    mutual = best_q[r_idx] == q_idx
    return q_idx[mutual], r_idx[mutual]


def _hull(points: np.ndarray) -> list[list[float]]:
    import cv2

    if len(points) < 3:
        return []
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).round(1).tolist()


def matched_region(ctx: WebContext, query_id: str, result_id: str, mirrored: bool,
                   options: Any) -> dict[str, Any] | None:
    """Where each image lies in the other, the inliers and their hulls (working-size pixels).

    None when a side has no stored features or no transform can be fitted again.
    """
    from picsift.analyses.copies.verify import _fit, _invert, _rect
    from picsift.features.local import mirror_descriptors

    q, r = local_features(ctx, query_id), local_features(ctx, result_id)
    if q is None or r is None:
        return None
    q_desc = mirror_descriptors(q.descriptors) if mirrored else q.descriptors
    q_xy = q.xy.copy()
    if mirrored:
        q_xy[:, 0] = q.width - q_xy[:, 0]
    qi, ri = _matches(q_desc, r.descriptors, options.max_distance, options.distance_ratio)
    if len(qi) < 3:
        return None
    threshold = max(1.5, options.ransac_threshold * math.hypot(r.width, r.height))
    fitted = _fit("similarity", q_xy[qi], r.xy[ri], threshold)
    if fitted is None or fitted[1].sum() < options.min_inliers:
        fitted = _fit("affine", q_xy[qi], r.xy[ri], threshold) or fitted
    if fitted is None:
        return None
    transform, inlier = fitted
    q_frame = _rect(q.width, q.height)                     # query frame (mirrored coords)
    in_result = q_frame @ transform[:, :2].T + transform[:, 2]
    back = _invert(transform)
    r_frame = _rect(r.width, r.height) @ back[:, :2].T + back[:, 2]
    q_points, r_points = q_xy[qi][inlier], r.xy[ri][inlier]
    if mirrored:  # back to the query's own (unmirrored) coordinates
        r_frame[:, 0] = q.width - r_frame[:, 0]
        q_points = q_points.copy()
        q_points[:, 0] = q.width - q_points[:, 0]
    return {
        "matches": int(len(qi)), "inliers": int(inlier.sum()),
        "query": {"width": q.width, "height": q.height,
                  "frame_of_other": r_frame.round(1).tolist(),
                  "points": q_points.round(1).tolist(), "hull": _hull(q_points)},
        "result": {"width": r.width, "height": r.height,
                   "frame_of_other": in_result.round(1).tolist(),
                   "points": r_points.round(1).tolist(), "hull": _hull(r_points)},
    }
