"""`picsift copies eval`: read a truth CSV, match it to the clusters by path, score."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from picsift.analyses.cluster_metrics import ClusterScores, evaluate_clusters
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.tables import clusters_table
from picsift.errors import PicsiftError
from picsift.workspace.store import Workspace

_TRUE = {"1", "true", "yes", "original", "query"}


def evaluate_against_truth(ws: Workspace, options: CopiesOptions, truth_csv: str | Path,
                           truth_column: str = "truth", path_column: str = "path",
                           query_column: str | None = None) -> ClusterScores:
    """Score the stored clusters; truth paths may be absolute or relative to a scanned root."""
    try:
        truth = pd.read_csv(truth_csv, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise PicsiftError(f"cannot read truth file {truth_csv}: {exc}") from exc
    for column in (truth_column, path_column) + ((query_column,) if query_column else ()):
        if column not in truth.columns:
            raise PicsiftError(f"truth file {truth_csv} has no column {column!r} "
                               f"(columns: {', '.join(truth.columns)})")
    clusters = clusters_table(ws, options)
    if clusters.empty:
        raise PicsiftError("no copy clusters in this workspace yet: run 'picsift copies' first")
    predicted = dict(zip(clusters["path"], clusters["cluster_id"]))
    roots = ws.roots

    def absolute(path: str) -> str:
        if os.path.isabs(path):
            return os.path.normpath(path)
        for root in roots:
            candidate = os.path.normpath(os.path.join(root, path))
            if candidate in predicted:
                return candidate
        return os.path.normpath(os.path.join(roots[0], path)) if roots else path

    keys = truth[path_column].map(absolute)
    truth_map = dict(zip(keys, truth[truth_column]))
    queries = None
    if query_column:
        queries = {k for k, q in zip(keys, truth[query_column]) if q.strip().lower() in _TRUE}
    return evaluate_clusters(truth_map, {k: predicted.get(k) for k in truth_map}, queries)
