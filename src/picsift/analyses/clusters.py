"""`picsift cluster`: group images by their stored embeddings (k-means peeling or HDBSCAN).

The default procedure is the iterative one of the images-as-data workshop, meant for corpora
where only part of the images form clear groups:

1. draw a random sample (``sample``, default 1000) of the images not yet clustered;
2. fit k-means on it for K = ``k_min``, ``k_min + k_step``, ... (default 5, 10, 15, ...).
   What is measured for each K is the mean silhouette coefficient of the sample under that
   K's labels (``sklearn.metrics.silhouette_score``, Euclidean distance between the unit-norm
   embeddings, i.e. a monotone function of cosine distance). The fit "improves" when a K
   beats the best mean silhouette seen so far; the search stops after ``window`` (default 3)
   K values in a row that do not, or when K would reach the sample size; the best K is kept;
3. every not-yet-clustered image is assigned to its nearest centroid of that fit; a cluster
   is "cohesive" when the mean silhouette of its sample members (``silhouette_samples`` on
   the sample) is at least ``threshold`` (default 0.04); cohesive clusters are final and
   their images are removed;
4. repeat on the rest until fewer than ``stop_size`` (default 20) remain, no cluster was
   cohesive, or ``max_rounds`` is reached. What is left is unclustered (cluster -1).

``algo="hdbscan"`` runs ``sklearn.cluster.HDBSCAN`` once on every image instead (noise is
cluster -1). Clusters are numbered 1, 2, ... (per round, biggest first). The silhouette
reported for a cluster is the mean silhouette of its members at the time it was kept (for
HDBSCAN: over all clustered images, or a random sample of ``sample`` of them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from picsift.analyses.embeddings import DEFAULT_MODEL, embed_workspace, load_embeddings
from picsift.errors import PicsiftError
from picsift.workspace.features import FeatureSet, latest_feature_sets
from picsift.workspace.store import Workspace

FEATURE_NAME = "clusters"
VERSION = "1"
ALGOS = ("kmeans", "hdbscan")
UNCLUSTERED = -1


@dataclass
class ClusterOptions:
    """Every hyper-parameter of a run (each one is a flag of `picsift cluster`)."""

    algo: str = "kmeans"
    sample: int = 1000
    k_min: int = 5
    k_step: int = 5
    window: int = 3
    threshold: float = 0.04
    stop_size: int = 20
    max_rounds: int = 50
    min_cluster_size: int = 5
    min_samples: int | None = None
    seed: int = 0
    model: str = DEFAULT_MODEL

    def check(self) -> None:
        if self.algo not in ALGOS:
            raise PicsiftError(f"unknown --algo {self.algo!r}: choose one of {', '.join(ALGOS)}")
        for name in ("sample", "k_min", "k_step", "window", "stop_size", "max_rounds",
                     "min_cluster_size"):
            if getattr(self, name) < 1:
                raise PicsiftError(f"--{name.replace('_', '-')} must be at least 1")
        if self.k_min < 2:
            raise PicsiftError("--k-min must be at least 2 (a silhouette needs two clusters)")
        if self.min_cluster_size < 2:
            raise PicsiftError("--min-cluster-size must be at least 2")
        if self.min_samples is not None and self.min_samples < 1:
            raise PicsiftError("--min-samples must be at least 1")

    def params(self) -> dict[str, Any]:
        """The parameters that matter for the chosen algorithm (the feature set's identity)."""
        keep = {"kmeans": ("sample", "k_min", "k_step", "window", "threshold", "stop_size",
                           "max_rounds", "seed"),
                "hdbscan": ("min_cluster_size", "min_samples", "sample", "seed")}[self.algo]
        values = asdict(self)
        return {"algo": self.algo, "model": self.model, **{k: values[k] for k in keep}}


@dataclass
class RoundLog:
    """What one k-means round saw and decided (kept in the summary, printed by the CLI)."""

    round: int
    remaining: int
    sampled: int
    k: int
    score: float
    scores: dict[int, float]
    kept: int
    clustered: int


@dataclass
class Labels:
    """Per-row result of a clustering: cluster (-1: none), its silhouette, the round kept."""

    cluster: np.ndarray
    silhouette: np.ndarray
    round: np.ndarray
    rounds: list[RoundLog] = field(default_factory=list)


def _search_k(sample: np.ndarray, options: ClusterOptions, seed: int
              ) -> tuple[Any, float, dict[int, float]] | None:
    """Best k-means fit of the sample by mean silhouette (see the module docstring)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(sample)
    best: tuple[Any, float] | None = None
    scores: dict[int, float] = {}
    without_gain = 0
    k = options.k_min
    while k < n:
        model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(sample)
        if len(np.unique(model.labels_)) >= 2:  # identical points can collapse clusters
            score = float(silhouette_score(sample, model.labels_))
            scores[k] = round(score, 4)
            if best is None or score > best[1]:
                best, without_gain = (model, score), 0
            else:
                without_gain += 1
                if without_gain >= options.window:
                    break
        k += options.k_step
    return None if best is None else (best[0], best[1], scores)


def iterative_kmeans(vectors: np.ndarray, options: ClusterOptions | None = None) -> Labels:
    """The workshop's peeling procedure on the rows of ``vectors`` (see the module docstring)."""
    from sklearn.metrics import silhouette_samples

    options = options or ClusterOptions()
    n = len(vectors)
    result = Labels(np.full(n, UNCLUSTERED, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    rng = np.random.default_rng(options.seed)
    remaining = np.arange(n)
    next_id = 1
    for round_no in range(1, options.max_rounds + 1):
        if len(remaining) < options.stop_size or len(remaining) < 3:
            break
        picked = np.sort(rng.choice(remaining, min(options.sample, len(remaining)), replace=False))
        fit = _search_k(vectors[picked], options, options.seed + round_no)
        if fit is None:
            break
        model, score, scores = fit
        per_point = silhouette_samples(vectors[picked], model.labels_)
        assigned = model.predict(vectors[remaining])
        cohesive = []
        for c in range(model.n_clusters):
            members = model.labels_ == c
            if members.any() and per_point[members].mean() >= options.threshold:
                cohesive.append((int((assigned == c).sum()), c, float(per_point[members].mean())))
        kept_rows = 0
        for _size, c, silhouette in sorted(cohesive, key=lambda t: (-t[0], t[1])):
            rows = remaining[assigned == c]
            result.cluster[rows], result.round[rows] = next_id, round_no
            result.silhouette[rows] = silhouette
            next_id += 1
            kept_rows += len(rows)
        result.rounds.append(RoundLog(round_no, len(remaining), len(picked), model.n_clusters,
                                      round(score, 4), scores, len(cohesive), kept_rows))
        if not cohesive:
            break
        remaining = remaining[result.cluster[remaining] == UNCLUSTERED]
    return result


def hdbscan_labels(vectors: np.ndarray, options: ClusterOptions | None = None) -> Labels:
    """HDBSCAN on every row; clusters renumbered biggest first, noise stays -1."""
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import silhouette_samples

    options = options or ClusterOptions(algo="hdbscan")
    n = len(vectors)
    result = Labels(np.full(n, UNCLUSTERED, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    if n < options.min_cluster_size:
        return result
    raw = HDBSCAN(min_cluster_size=options.min_cluster_size, min_samples=options.min_samples,
                  copy=True).fit(vectors).labels_
    found, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = sorted(zip(found, sizes), key=lambda t: (-t[1], t[0]))
    for new, (old, _size) in enumerate(order, start=1):
        result.cluster[raw == old] = new
    result.round[result.cluster > 0] = 1
    clustered = np.flatnonzero(result.cluster > 0)
    if len(order) >= 2:
        rng = np.random.default_rng(options.seed)
        if len(clustered) > options.sample:
            clustered = np.sort(rng.choice(clustered, options.sample, replace=False))
        labels = result.cluster[clustered]
        if len(np.unique(labels)) >= 2:
            per_point = silhouette_samples(vectors[clustered], labels)
            for c in np.unique(labels):
                result.silhouette[result.cluster == c] = float(per_point[labels == c].mean())
    return result


def cluster_vectors(vectors: np.ndarray, options: ClusterOptions) -> Labels:
    options.check()
    if options.algo == "hdbscan":
        return hdbscan_labels(vectors, options)
    return iterative_kmeans(vectors, options)


def media_paths(ws: Workspace) -> dict[str, str]:
    """One path per image or keyframe media (the alphabetically first of its copies)."""
    return {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') "
        "GROUP BY media_id")}


def cluster_set(ws: Workspace, options: ClusterOptions) -> FeatureSet:
    return FeatureSet(ws, FEATURE_NAME, VERSION, options.params(), model=options.model)


@dataclass
class ClusterRun:
    """Result of `cluster_workspace`: the table (path, media_id, cluster, silhouette, round)."""

    table: pd.DataFrame
    options: ClusterOptions
    labels: Labels
    vectors: np.ndarray
    seconds: float = 0.0

    @property
    def n_clusters(self) -> int:
        return int((self.table["cluster"].unique() > 0).sum())

    @property
    def n_unclustered(self) -> int:
        return int((self.table["cluster"] == UNCLUSTERED).sum())


def cluster_workspace(ws: Workspace, options: ClusterOptions | None = None,
                      workers: int | None = None, progress: bool = False) -> ClusterRun:
    """Embed what is missing, cluster every image and store the labels as feature set 'clusters'."""
    options = options or ClusterOptions()
    options.check()
    started = time.monotonic()
    with ws.writing():
        embed_workspace(ws, options.model, workers, progress=progress)
        ids, vectors = load_embeddings(ws, options.model)
        paths = media_paths(ws)
        keep = [i for i, m in enumerate(ids) if m in paths]
        if not keep:
            raise PicsiftError(f"no embedded images in {ws.dir}: run 'picsift scan' first")
        ids, vectors = [ids[i] for i in keep], vectors[keep]
        labels = cluster_vectors(vectors, options)
        table = pd.DataFrame({
            "path": [paths[m] for m in ids], "media_id": ids, "cluster": labels.cluster,
            "silhouette": np.round(labels.silhouette, 4), "round": labels.round})
        features = cluster_set(ws, options)
        features.register()
        features.replace_all(pa.Table.from_pandas(
            table[["media_id", "cluster", "silhouette", "round"]], preserve_index=False))
    # clusters 1, 2, ... first, unclustered last; by path within each
    order = np.lexsort((table["path"].to_numpy(), table["cluster"].to_numpy(),
                        table["cluster"].to_numpy() == UNCLUSTERED))
    table = table.iloc[order].reset_index(drop=True)
    vectors = vectors[order]
    labels = Labels(labels.cluster[order], labels.silhouette[order], labels.round[order],
                    labels.rounds)  # aligned with the table's rows
    return ClusterRun(table, options, labels, vectors, round(time.monotonic() - started, 2))


def load_clusters(ws: Workspace) -> pd.DataFrame:
    """The latest stored clustering: path, media_id, cluster, silhouette, round."""
    stored = next((s for s in latest_feature_sets(ws) if s.name == FEATURE_NAME), None)
    data = stored.read() if stored is not None else None
    if data is None:
        raise PicsiftError(f"no clusters in {ws.dir}: run 'picsift cluster' first")
    frame = data.to_pandas().drop_duplicates("media_id", keep="last")
    paths = media_paths(ws)
    frame = frame[frame["media_id"].isin(paths.keys())].copy()
    frame.insert(0, "path", frame["media_id"].map(paths))
    return frame.sort_values(["cluster", "path"]).reset_index(drop=True)


def write_outputs(ws: Workspace, run: ClusterRun, out: str | Path | None = None
                  ) -> dict[str, Path]:
    """clusters.csv, clusters_map.png and clusters.html in ``out`` (default: <workspace>/clusters)
    so a run can be read, shared and checked by eye."""
    from picsift.analyses.cluster_map import draw_map, map_layout
    from picsift.report.clusters_html import build_clusters_report

    folder = Path(out) if out is not None else ws.dir / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "clusters.csv"
    run.table.to_csv(csv, index=False)
    coords, method = map_layout(run.vectors, seed=run.options.seed)
    png = draw_map(coords, run.table["cluster"].to_numpy(), folder / "clusters_map.png",
                   title=f"{method} of {len(coords)} images, {run.n_clusters} clusters "
                         f"({run.options.algo})")
    html = build_clusters_report(ws, run.table, folder / "clusters.html", run.options.params(),
                                 png, [asdict(r) for r in run.labels.rounds])
    return {"csv": csv, "map": png, "html": html}
