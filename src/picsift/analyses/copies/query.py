"""Step 3: query every image's descriptors against the index, vote, verify geometrically.

For each query descriptor the index returns ``knn`` neighbours; a neighbour is a tentative
match when its squared RootSIFT distance is below ``max_distance`` and within
``1/distance_ratio**2`` of the query's nearest neighbour in another image (an adaptive
threshold like PIMMI's: popular images with many copies keep all of them, noise does not).
Images collecting ``min_votes`` distinct matched keypoints are verified (verify.py). The same
is done with the mirrored descriptors, which finds mirrored copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from picsift.analyses.copies.index import CopyIndex
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.verify import PairGeometry, verify_pair
from picsift.features.local import mirror_descriptors, root_sift


@dataclass
class QueryImage:
    """Descriptors and keypoints of one image to query, at its working size."""

    media_id: str
    width: int
    height: int
    keypoints: np.ndarray
    descriptors: np.ndarray


@dataclass
class Match:
    query_id: str
    match_id: str
    votes: int
    geometry: PairGeometry


def _tentative(distances: np.ndarray, ids: np.ndarray, owner: np.ndarray, self_pos: int | None,
               options: CopiesOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query keypoint, candidate image, index vector) of every kept neighbour, best first."""
    n_q, k = ids.shape
    valid = ids >= 0
    owners = np.where(valid, owner[np.clip(ids, 0, None)], -1)
    if self_pos is not None:
        valid &= owners != self_pos
    d = np.where(valid, distances, np.inf)
    nearest = d.min(axis=1, keepdims=True)
    keep = valid & (d <= options.max_distance) & (d <= nearest / (options.distance_ratio ** 2))
    q_idx, col = np.nonzero(keep)
    cand = owners[q_idx, col]
    vid = ids[q_idx, col]
    dist = d[q_idx, col]
    # one match per (candidate image, query keypoint) and per (candidate keypoint): the nearest
    order = np.lexsort((dist, q_idx, cand))
    q_idx, cand, vid, dist = q_idx[order], cand[order], vid[order], dist[order]
    first = np.ones(len(cand), bool)
    first[1:] = (cand[1:] != cand[:-1]) | (q_idx[1:] != q_idx[:-1])
    q_idx, cand, vid, dist = q_idx[first], cand[first], vid[first], dist[first]
    order = np.lexsort((dist, vid))
    unique_vid = np.ones(len(vid), bool)
    sorted_vid = vid[order]
    unique_vid[order[1:]] = sorted_vid[1:] != sorted_vid[:-1]
    return q_idx[unique_vid], cand[unique_vid], vid[unique_vid]


def _verify_candidates(image: QueryImage, q_xy: np.ndarray, kept: tuple[np.ndarray, ...],
                       index: CopyIndex, options: CopiesOptions, mirrored: bool
                       ) -> dict[int, tuple[int, PairGeometry]]:
    q_idx, cand, vid = kept
    if len(cand) == 0:
        return {}
    owners, votes = np.unique(cand, return_counts=True)
    good = votes >= options.min_votes
    owners, votes = owners[good], votes[good]
    top = np.argsort(-votes, kind="stable")[: options.max_candidates]
    results: dict[int, tuple[int, PairGeometry]] = {}
    for t in top:
        owner_pos = int(owners[t])
        sel = cand == owner_pos
        geometry = verify_pair(
            q_xy[q_idx[sel]], index.xy[vid[sel]], (image.width, image.height),
            (int(index.media.widths[owner_pos]), int(index.media.heights[owner_pos])),
            mirrored=mirrored, min_inliers=options.min_inliers,
            min_inlier_ratio=options.min_inlier_ratio, min_coverage=options.min_coverage,
            ransac_threshold=options.ransac_threshold)
        if geometry is not None:
            results[owner_pos] = (int(votes[t]), geometry)
    return results


def _strongest(images: list[QueryImage], offsets: np.ndarray, limit: int) -> np.ndarray:
    """Global row numbers of each image's ``limit`` largest-scale keypoints, in order."""
    picked: list[np.ndarray] = []
    for n, image in enumerate(images):
        count = int(offsets[n + 1] - offsets[n])
        if limit <= 0 or count <= limit:
            local = np.arange(count)
        else:
            local = np.sort(np.argsort(-image.keypoints[:, 2], kind="stable")[:limit])
        picked.append(local + int(offsets[n]))
    return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def query_batch(images: list[QueryImage], index: CopyIndex, options: CopiesOptions
                ) -> Iterator[tuple[str, list[Match]]]:
    """Yield (query media id, verified matches) for each image of the batch."""
    if not images:
        return
    position = index.media.position()
    counts = [len(im.descriptors) for im in images]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    all_desc = np.concatenate([im.descriptors for im in images]) if sum(counts) else None
    searches: list[tuple[bool, np.ndarray, np.ndarray, np.ndarray]] = []
    if all_desc is not None and index.n_vectors:
        k = min(options.knn, index.n_vectors)
        rows = _strongest(images, offsets, options.query_points)
        distances, ids = index.index.search(np.ascontiguousarray(root_sift(all_desc[rows])), k)
        searches.append((False, rows, distances, ids))
        if options.mirror:
            # Mirrored copies are rarer: search only each image's strongest keypoints (largest
            # scale: the most repeatable), enough to gather the votes of a real mirrored copy.
            mirrored_rows = _strongest(images, offsets, options.mirror_points)
            distances, ids = index.index.search(
                np.ascontiguousarray(root_sift(mirror_descriptors(all_desc[mirrored_rows]))), k)
            searches.append((True, mirrored_rows, distances, ids))
    for n, image in enumerate(images):
        lo, hi = int(offsets[n]), int(offsets[n + 1])
        best: dict[int, tuple[int, PairGeometry]] = {}
        if hi > lo:
            self_pos = position.get(image.media_id)
            for mirrored, rows, distances, ids in searches:
                lo_r, hi_r = np.searchsorted(rows, [lo, hi])
                if hi_r <= lo_r:
                    continue
                local = rows[lo_r:hi_r] - lo  # keypoint index within this image
                q_xy = image.keypoints[local, :2].copy()
                if mirrored:
                    q_xy[:, 0] = image.width - q_xy[:, 0]
                kept = _tentative(distances[lo_r:hi_r], ids[lo_r:hi_r], index.owner, self_pos, options)
                for owner_pos, found in _verify_candidates(image, q_xy, kept, index, options,
                                                           mirrored).items():
                    if owner_pos not in best or found[1].inliers > best[owner_pos][1].inliers:
                        best[owner_pos] = found
        matches = [Match(image.media_id, index.media.media_ids[pos], votes, geometry)
                   for pos, (votes, geometry) in best.items()]
        matches.sort(key=lambda m: -m.geometry.inliers)
        yield image.media_id, matches


def match_rows(query_id: str, matches: list[Match], n_points: dict[str, int]) -> list[dict[str, Any]]:
    """Rows of the pairs table for one query (a row with no match marks it as queried)."""
    if not matches:
        return [{"query_id": query_id, "match_id": None}]
    rows = []
    for m in matches:
        rows.append({"query_id": query_id, "match_id": m.match_id, "votes": m.votes,
                     "query_nb_points": n_points.get(query_id, 0),
                     "match_nb_points": n_points.get(m.match_id, 0), **m.geometry.as_dict()})
    return rows
