"""Copy detection from workspace to clusters: features -> index -> query -> verify -> cluster.

Every step is resumable: features are skipped for media already described, the index only
adds media it lacks, only media not yet queried with these settings are queried, and the
clustering (cheap) is redone over all stored pairs. Adding 1,000 images to an indexed corpus
therefore extracts, indexes and queries those 1,000 only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from picsift.analyses.copies.cluster import cluster_media
from picsift.analyses.copies.extract import ensure_local_features
from picsift.analyses.copies.index import CopyIndex, IndexPlan
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.query import QueryImage, match_rows, query_batch
from picsift.engine import ProgressReporter, default_workers, make_engine
from picsift.workspace.features import FeatureSet
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)

PAIRS_SET = "copies_pairs"
CLUSTERS_SET = "copies"

_PAIR_SCHEMA = pa.schema([
    ("query_id", pa.string()), ("match_id", pa.string()), ("votes", pa.int32()),
    ("query_nb_points", pa.int32()), ("match_nb_points", pa.int32()),
    ("matches", pa.int32()), ("inliers", pa.int32()), ("inlier_ratio", pa.float32()),
    ("scale", pa.float32()), ("rotation", pa.float32()), ("mirrored", pa.bool_()),
    ("query_covered", pa.float32()), ("match_covered", pa.float32()),
    ("query_inside", pa.float32()), ("match_inside", pa.float32()), ("relation", pa.string()),
])


@dataclass
class CopiesSummary:
    described: int = 0
    failed: int = 0
    indexed: int = 0
    index_type: str = ""
    index_vectors: int = 0
    queried: int = 0
    pairs: int = 0
    clusters: int = 0
    clustered_media: int = 0
    largest_cluster: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class CopiesResult:
    """Tables of a copy-detection run (pandas DataFrames) and its summary."""

    pairs: pd.DataFrame
    clusters: pd.DataFrame
    summary: CopiesSummary


def pairs_feature_set(ws: Workspace, options: CopiesOptions) -> FeatureSet:
    return FeatureSet(ws, PAIRS_SET, "1", options.query_params())


def clusters_feature_set(ws: Workspace, options: CopiesOptions) -> FeatureSet:
    return FeatureSet(ws, CLUSTERS_SET, "1",
                      {"query": options.query_params(), "algo": options.algo,
                       "resolution": options.resolution})


def build_index(ws: Workspace, options: CopiesOptions, summary: CopiesSummary,
                announce: Callable[[IndexPlan], None] | None = None) -> tuple[CopyIndex, FeatureSet]:
    """Describe new media and add them to the index (extending, never redoing)."""
    started = time.monotonic()
    features, summary.described, summary.failed = ensure_local_features(ws, options)
    summary.seconds["features"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    index = CopyIndex(ws, options)
    index.load(mmap=True)  # extend() loads it fully only if there is something to add
    summary.indexed = index.extend(features, announce)
    if summary.indexed:
        index.save()
    summary.index_type = index.index_type
    summary.index_vectors = index.n_vectors
    summary.seconds["index"] = round(time.monotonic() - started, 2)
    return index, features


def _query_images(features: FeatureSet, todo: set[str]):  # type: ignore[no-untyped-def]
    """Yield lists of QueryImage part by part (bounded memory)."""
    for part, ids in features.ids_by_part():
        if not any(m in todo for m in ids):
            continue  # not read at all: a sliced query (--limit) touches only its parts
        meta = pq.read_table(part).to_pydict()
        rows = [i for i, m in enumerate(meta["media_id"]) if m in todo]
        arrays = FeatureSet.arrays_of(part)
        offsets = arrays["offsets"]
        yield [QueryImage(meta["media_id"][i], meta["work_width"][i], meta["work_height"][i],
                          arrays["keypoints"][offsets[i]:offsets[i + 1]],
                          arrays["descriptors"][offsets[i]:offsets[i + 1]]) for i in rows]


def query_all(ws: Workspace, options: CopiesOptions, index: CopyIndex, features: FeatureSet,
              summary: CopiesSummary, limit: int | None = None) -> None:
    """Query every indexed media not yet queried with these settings; store pairs per batch.

    ``limit``: query at most that many this run (in media-id order, i.e. an unbiased sample
    since ids are content hashes); the next run goes on with the rest.
    """
    import faiss

    started = time.monotonic()
    pairs = pairs_feature_set(ws, options)
    pairs.register()
    todo = index.indexed_ids() - pairs.done_ids()
    if limit is not None and len(todo) > limit:
        todo = set(sorted(todo)[:limit])
    n_points = dict(zip(index.media.media_ids, (int(c) for c in index.media.counts)))
    if options.engine != "local":
        _query_on_engine(ws, options, index, features, pairs, todo, summary)
        summary.seconds["query"] = round(time.monotonic() - started, 2)
        return
    faiss.omp_set_num_threads(options.workers or default_workers())
    with ProgressReporter("copy search", len(todo), enabled=options.progress) as progress:
        for images in _query_images(features, todo):
            rows: list[dict[str, Any]] = []
            for query_id, matches in query_batch(images, index, options):
                rows.extend(match_rows(query_id, matches, n_points))
            table = pa.Table.from_pylist(rows, schema=_PAIR_SCHEMA)
            pairs.write_part(table.rename_columns(
                ["media_id" if c == "query_id" else c for c in table.column_names]))
            summary.queried += len(images)
            progress.advance(len(images))
    summary.seconds["query"] = round(time.monotonic() - started, 2)


def _query_on_engine(ws: Workspace, options: CopiesOptions, index: CopyIndex,
                     features: FeatureSet, pairs: FeatureSet, todo: set[str],
                     summary: CopiesSummary) -> None:
    """Search + verify per image as engine tasks (Ray); this process writes the pairs."""
    from picsift.analyses.copies.distributed import task_for, work_items

    def store(batch: list[tuple[str, str]], results: list[list[dict[str, Any]]]) -> None:
        rows = [row for item_rows in results for row in item_rows]
        table = pa.Table.from_pylist(rows, schema=_PAIR_SCHEMA)
        pairs.write_part(table.rename_columns(
            ["media_id" if c == "query_id" else c for c in table.column_names]))
        summary.queried += len(batch)

    def fail(batch: list[tuple[str, str]], exc: BaseException) -> None:
        # Not stored: the next run queries these again.
        log.warning("copy search failed for %d image(s): %s", len(batch), exc)

    engine = make_engine(options.engine, options.address, options.workers)
    with ProgressReporter("copy search", len(todo), enabled=options.progress) as progress:
        engine.map(task_for(ws.dir, index, options), work_items(features, todo, options.batch_size),
                   store, fail, progress)


def load_pairs(ws: Workspace, options: CopiesOptions) -> pd.DataFrame:
    """All verified pairs (directed: one row per query and match) for these settings."""
    table = pairs_feature_set(ws, options).read()
    if table is None:
        return pd.DataFrame(columns=[f.name for f in _PAIR_SCHEMA])
    frame = table.to_pandas().rename(columns={"media_id": "query_id"})
    return frame.dropna(subset=["match_id"]).reset_index(drop=True)


def cluster_all(ws: Workspace, options: CopiesOptions, summary: CopiesSummary) -> pd.DataFrame:
    """Cluster every described media from the stored pairs; store as the 'copies' feature set."""
    started = time.monotonic()
    pairs = load_pairs(ws, options)
    media = ws.query("SELECT m.media_id, m.width * m.height AS area, COUNT(f.path) AS n_files "
                     "FROM media m JOIN files f ON f.media_id = m.media_id "
                     "WHERE f.kind IN ('image', 'frame') GROUP BY m.media_id")
    areas = {r["media_id"]: r["area"] or 0 for r in media}
    n_files = {r["media_id"]: r["n_files"] for r in media}
    queried = pairs_feature_set(ws, options).done_ids()
    media_ids = sorted(m for m in areas if m in queried)
    clusters = cluster_media(media_ids, pairs, algo=options.algo, resolution=options.resolution,
                             areas=areas, files_per_media=n_files)
    target = clusters_feature_set(ws, options)
    target.register()
    target.replace_all(pa.Table.from_pandas(clusters, preserve_index=False))
    summary.pairs = len(pairs)
    if not clusters.empty:
        multi = clusters[clusters["cluster_size"] > 1]
        summary.clusters = int(multi["cluster_id"].nunique())
        summary.clustered_media = len(multi)
        summary.largest_cluster = int(clusters["cluster_size"].max())
    summary.seconds["cluster"] = round(time.monotonic() - started, 2)
    return clusters


def run_copies(ws: Workspace, options: CopiesOptions,
               announce: Callable[[IndexPlan], None] | None = None) -> CopiesResult:
    """The whole pipeline on everything scanned into ``ws``."""
    from picsift.analyses.copies.tables import clusters_table, pairs_table

    summary = CopiesSummary()
    with ws.writing():
        index, features = build_index(ws, options, summary, announce)
        query_all(ws, options, index, features, summary)
        cluster_all(ws, options, summary)
    return CopiesResult(pairs_table(ws, options), clusters_table(ws, options), summary)
