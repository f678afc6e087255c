"""Step 1 of copy detection: SIFT features for every media not yet described (resumable)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa

from picsift.engine import ProgressReporter, make_engine
from picsift.features.local import EXTRACTOR, VERSION, extract_batch
from picsift.media.decode import DecodeOptions
from picsift.analyses.copies.options import CopiesOptions
from picsift.workspace.features import FeatureSet, crash_records
from picsift.workspace.store import Workspace


def sift_feature_set(ws: Workspace, options: CopiesOptions) -> FeatureSet:
    return FeatureSet(ws, EXTRACTOR, VERSION, options.sift.as_dict())


def media_paths(ws: Workspace) -> list[tuple[str, str]]:
    """(media_id, a readable path) for every image and keyframe in the workspace."""
    rows = ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') "
        "GROUP BY media_id ORDER BY media_id")
    return [(r["media_id"], r["path"]) for r in rows]


class _PartWriter:
    """Turns a batch of worker records into one feature part (+ arrays) and error rows."""

    def __init__(self, ws: Workspace, features: FeatureSet) -> None:
        self.ws = ws
        self.features = features
        self.done = 0
        self.failed = 0

    def store(self, batch: list[tuple[str, str]], records: list[dict[str, Any]]) -> None:
        good = [r for r in records if "error" not in r]
        bad = [r for r in records if "error" in r]
        if good:
            counts = np.array([len(r["descriptors"]) for r in good], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(counts)])
            table = pa.table({
                "media_id": [r["media_id"] for r in good],
                "n_points": counts.astype(np.int32),
                "work_width": np.array([r["width"] for r in good], dtype=np.int32),
                "work_height": np.array([r["height"] for r in good], dtype=np.int32),
            })
            arrays = {
                "offsets": offsets,
                "keypoints": np.concatenate([r["keypoints"] for r in good]).astype(np.float32),
                "descriptors": np.concatenate([r["descriptors"] for r in good]).astype(np.uint8),
            }
            self.features.write_part(table, arrays)
            self.done += len(good)
        if bad:
            self.ws.record_errors("sift", bad)
            self.failed += len(bad)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        self.store(batch, crash_records(batch, exc))


def ensure_local_features(ws: Workspace, options: CopiesOptions) -> tuple[FeatureSet, int, int]:
    """Extract SIFT for media that lack it; return the set, how many were done and failed."""
    features = sift_feature_set(ws, options)
    features.register()
    done = features.done_ids()
    failed = {r["path"] for r in ws.query("SELECT path FROM errors WHERE stage = 'sift'")}
    todo = [(m, p) for m, p in media_paths(ws) if m not in done and p not in failed]
    writer = _PartWriter(ws, features)
    if todo:
        task = functools.partial(extract_batch, options.sift, DecodeOptions())
        batches = [todo[i : i + options.batch_size] for i in range(0, len(todo), options.batch_size)]
        with ProgressReporter("local features", len(todo), enabled=options.progress) as progress:
            engine = make_engine(options.engine, options.address, options.workers)
            engine.map(task, batches, writer.store, writer.fail, progress)
    return features, writer.done, writer.failed
