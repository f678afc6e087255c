"""Query NEW images against an existing copy index without adding them to it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd

from picsift.analyses.copies.index import CopyIndex
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.query import QueryImage, query_batch
from picsift.engine import ProgressReporter, make_engine
from picsift.errors import PicsiftError
from picsift.features.local import extract_batch
from picsift.media.decode import DecodeOptions
from picsift.scan.discover import Candidate, DiscoveryProblem, discover
from picsift.workspace.store import Workspace


def query_external(ws: Workspace, paths: list[str], options: CopiesOptions) -> pd.DataFrame:
    """Pairs table (query_path, result_path, ...) for images outside the workspace's index."""
    from picsift.analyses.copies.tables import _media_facts

    index = CopyIndex(ws, options)
    if not index.load(mmap=True):
        raise PicsiftError(f"no copy index in {ws.dir}: run 'picsift copies index' first")
    found = list(discover(paths, videos=False))
    items = [c for c in found if isinstance(c, Candidate)]
    problems = [p for p in found if isinstance(p, DiscoveryProblem)]
    records: list[dict[str, Any]] = []

    def keep(batch: list[tuple[str, str]], results: list[dict[str, Any]]) -> None:
        records.extend(results)

    def fail(batch: list[tuple[str, str]], exc: BaseException) -> None:
        records.extend({"media_id": m, "path": p, "error": str(exc)} for m, p in batch)

    work = [(c.path, c.path) for c in items]
    task = functools.partial(extract_batch, options.sift, DecodeOptions())
    batches = [work[i : i + options.batch_size] for i in range(0, len(work), options.batch_size)]
    with ProgressReporter("describe new images", len(work), enabled=options.progress) as progress:
        engine = make_engine(options.engine, options.address, options.workers)
        engine.map(task, batches, keep, fail, progress)
    facts = _media_facts(ws).set_index("media_id")
    rows: list[dict[str, Any]] = []
    images = [QueryImage(r["media_id"], r["width"], r["height"], r["keypoints"], r["descriptors"])
              for r in records if "error" not in r]
    for start in range(0, len(images), 16):
        for query_path, matches in query_batch(images[start : start + 16], index, options):
            if not matches:
                rows.append({"query_path": query_path, "result_path": None})
            for m in matches:
                rows.append({"query_path": query_path, "result_image_id": m.match_id,
                             "result_path": facts["path"].get(m.match_id),
                             "nb_match_total": m.geometry.matches,
                             "nb_match_ransac": m.geometry.inliers,
                             "ransac_ratio": m.geometry.inlier_ratio,
                             **{k: v for k, v in m.geometry.as_dict().items()
                                if k not in ("matches", "inliers", "inlier_ratio")}})
    for r in records:
        if "error" in r:
            rows.append({"query_path": r["path"], "result_path": None, "error": r["error"]})
    for p in problems:
        rows.append({"query_path": p.path, "result_path": None, "error": p.reason})
    return pd.DataFrame(rows)


def default_out(ws: Workspace, name: str) -> Path:
    return ws.subdir("copies") / name
