"""Copy search and verification as engine tasks (``--engine ray``): one image per work item.

The local pipeline queries in the driver with FAISS using every core. On a cluster the
per-image work (k-NN search of its descriptors, then RANSAC verification of its candidates) is
what scales out: each Ray worker loads the saved index once (cached per process, keyed by the
index version) from the workspace, which must therefore be on storage every node can read,
reads the query image's descriptors from its feature part, and returns the pairs rows. The
driver writes them, as the single writer. Results are the same as the local path's: the search
of one image does not depend on which other images share its batch.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from picsift.analyses.copies.index import CopyIndex
from picsift.analyses.copies.options import CopiesOptions, options_from_dict
from picsift.analyses.copies.query import QueryImage, match_rows, query_batch
from picsift.workspace.features import FeatureSet

log = logging.getLogger(__name__)

WorkItem = tuple[str, str]  # (feature part path, media id)


@functools.lru_cache(maxsize=1)
def _index(ws_dir: str, version: str, options_json: str) -> tuple[CopyIndex, dict[str, int]]:
    """The saved index, loaded once per worker process (``version`` keys the cache)."""
    import faiss

    from picsift.workspace.store import Workspace

    faiss.omp_set_num_threads(1)  # the engine runs one task per CPU
    index = CopyIndex(Workspace(Path(ws_dir)), options_from_dict(json.loads(options_json)))
    if not index.load(mmap=True) or index.version != version:
        raise RuntimeError(f"copy index {version} not found in {ws_dir} from this worker: "
                           "is the workspace on storage shared by every node?")
    n_points = dict(zip(index.media.media_ids, (int(c) for c in index.media.counts)))
    return index, n_points


def query_items(ws_dir: str, version: str, options_json: str, batch: list[WorkItem]
                ) -> list[list[dict[str, Any]]]:
    """Engine task: the pairs rows of each (part, media id) item, in the batch's order."""
    index, n_points = _index(ws_dir, version, options_json)
    options = options_from_dict(json.loads(options_json))
    by_part: dict[str, list[str]] = defaultdict(list)
    for part, media_id in batch:
        by_part[part].append(media_id)
    rows: dict[str, list[dict[str, Any]]] = {}
    for part, wanted in by_part.items():
        images = _images(Path(part), set(wanted))
        for query_id, matches in query_batch(images, index, options):
            rows[query_id] = match_rows(query_id, matches, n_points)
    return [rows[m] for _, m in batch]


def _images(part: Path, wanted: set[str]) -> list[QueryImage]:
    meta = pq.read_table(part).to_pydict()
    arrays = FeatureSet.arrays_of(part)
    offsets = arrays["offsets"]
    return [QueryImage(m, meta["work_width"][i], meta["work_height"][i],
                       arrays["keypoints"][offsets[i]:offsets[i + 1]],
                       arrays["descriptors"][offsets[i]:offsets[i + 1]])
            for i, m in enumerate(meta["media_id"]) if m in wanted]


def work_items(features: FeatureSet, todo: set[str], batch_size: int) -> list[list[WorkItem]]:
    """Batches of (part, media id) to query, part by part (a batch reads one part)."""
    batches: list[list[WorkItem]] = []
    for part, ids in features.ids_by_part():
        items = [(str(part), m) for m in ids if m in todo]  # as the local path does
        batches.extend(items[i : i + batch_size] for i in range(0, len(items), batch_size))
    return batches


def task_for(ws_dir: Path, index: CopyIndex, options: CopiesOptions) -> functools.partial[Any]:
    """The picklable task for the engine (only paths and settings travel, not the index)."""
    data = asdict(options)
    data.pop("progress", None)
    return functools.partial(query_items, str(ws_dir), index.version,
                             json.dumps(data, sort_keys=True))
