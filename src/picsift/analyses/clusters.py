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

Memory stays bounded whatever the corpus size: embeddings are read from their stored parts
chunk by chunk (`EmbeddingStream`), only the per-round sample is held as a matrix, and what
grows with N are per-image ids and label arrays. Step 3 predicts chunk by chunk; chunks of a
multiple of 256 rows (scikit-learn's own block) give bit-for-bit the labels of predicting
all rows at once. HDBSCAN needs all its points in memory and O(n^2 dim) time, so above
``HDBSCAN_FIT_MAX`` (10,000) images it is fitted on a random sample of that many (``seed``).
Every other image then takes the cluster of its nearest sample image when that one is
clustered and the image is within the cluster's reach, HDBSCAN's own density test: its
distance to that image and its own core distance (to its ``min_samples``-th neighbour,
itself counted, among the sample) are both at most the largest core distance of the
cluster's sample members. Otherwise it is noise. Up to the limit the result is exact
HDBSCAN, as before. The 2-D map shows at most ``MAP_MAX_POINTS`` images (a seeded
sample with every cluster represented; the title says so).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from picsift.analyses.embeddings import (
    CHUNK_ROWS,
    DEFAULT_MODEL,
    ArrayVectors,
    EmbeddingStream,
    VectorSource,
    embed_workspace,
)
from picsift.errors import PicsiftError
from picsift.workspace.features import FeatureSet, latest_feature_sets
from picsift.workspace.store import Workspace

FEATURE_NAME = "clusters"
VERSION = "1"
ALGOS = ("kmeans", "hdbscan")
UNCLUSTERED = -1
HDBSCAN_FIT_MAX = 10_000   # HDBSCAN holds its points in memory and is O(n^2 dim): fit at most this
MAP_MAX_POINTS = 20_000    # images drawn on the 2-D map (a seeded sample above this)


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


def _as_source(vectors: np.ndarray | VectorSource) -> VectorSource:
    return ArrayVectors(vectors) if isinstance(vectors, np.ndarray) else vectors


def iterative_kmeans(vectors: np.ndarray | VectorSource, options: ClusterOptions | None = None,
                     chunk_rows: int | None = None, rank: np.ndarray | None = None) -> Labels:
    """The workshop's peeling procedure on the rows of ``vectors`` (see the module docstring).

    ``vectors`` is a matrix or a `VectorSource` (e.g. the stored parts): only each round's
    sample is held in memory; the rest is predicted ``chunk_rows`` at a time. ``rank``: the
    canonical position of each row (e.g. of its media id); samples are drawn and fed to
    k-means in that order, so the result does not depend on the storage order (which
    differs with the engine and the order workers finished their batches).
    """
    from sklearn.metrics import silhouette_samples

    options = options or ClusterOptions()
    chunk_rows = chunk_rows or CHUNK_ROWS
    source = _as_source(vectors)
    n = len(source)
    result = Labels(np.full(n, UNCLUSTERED, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    rng = np.random.default_rng(options.seed)
    remaining = np.arange(n)
    next_id = 1
    for round_no in range(1, options.max_rounds + 1):
        if len(remaining) < options.stop_size or len(remaining) < 3:
            break
        candidates = remaining if rank is None else remaining[np.argsort(rank[remaining], kind="stable")]
        picked = np.sort(rng.choice(candidates, min(options.sample, len(remaining)), replace=False))
        sample = source.take(picked)
        if rank is not None:  # canonical order: k-means' initialisation sees the same sequence
            sample = sample[np.argsort(rank[picked], kind="stable")]
        fit = _search_k(sample, options, options.seed + round_no)
        if fit is None:
            break
        model, score, scores = fit
        per_point = silhouette_samples(sample, model.labels_)
        del sample
        assigned = np.empty(len(remaining), np.int64)  # nearest centroid, chunk by chunk
        done = 0
        for positions, chunk in source.chunks(remaining, chunk_rows):
            assigned[done : done + len(positions)] = model.predict(chunk)
            done += len(positions)
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


def _extend_hdbscan(source: VectorSource, fit_rows: np.ndarray, fitted: np.ndarray,
                    fit_labels: np.ndarray, k: int, chunk_rows: int) -> np.ndarray:
    """Labels of every row from a fit on ``fit_rows`` (see the module docstring): a row outside
    the fit takes the cluster of its nearest fitted point when that point is clustered and
    the row is within the cluster's reach, else it is noise."""
    import faiss

    labels = np.full(len(source), UNCLUSTERED, np.int64)
    labels[fit_rows] = fit_labels
    k = min(k, len(fitted))
    if not (fit_labels >= 0).any():
        return labels
    # core distance as HDBSCAN counts it: to the k-th neighbour, the point itself the first
    index = faiss.IndexFlatL2(fitted.shape[1])
    index.add(np.ascontiguousarray(fitted))
    core = np.sqrt(np.maximum(index.search(np.ascontiguousarray(fitted), k)[0][:, -1], 0))
    reach = np.zeros(int(fit_labels.max()) + 1)
    np.maximum.at(reach, fit_labels[fit_labels >= 0], core[fit_labels >= 0])
    others = np.setdiff1d(np.arange(len(source)), fit_rows, assume_unique=True)
    neighbours = max(k - 1, 1)  # an outside row is its own first neighbour
    for positions, chunk in source.chunks(others, chunk_rows):
        squared, hit = index.search(np.ascontiguousarray(chunk), neighbours)
        dist = np.sqrt(np.maximum(squared, 0))
        own_core = dist[:, -1] if k > 1 else np.zeros(len(chunk))
        cluster = fit_labels[hit[:, 0]]
        limit = reach[np.maximum(cluster, 0)]
        inside = (cluster >= 0) & (dist[:, 0] <= limit) & (own_core <= limit)
        labels[positions[inside]] = cluster[inside]
    return labels


def hdbscan_labels(vectors: np.ndarray | VectorSource, options: ClusterOptions | None = None,
                   chunk_rows: int | None = None) -> Labels:
    """HDBSCAN on every row (on a sample above ``HDBSCAN_FIT_MAX``, see the module docstring);
    clusters renumbered biggest first, noise stays -1."""
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import silhouette_samples

    options = options or ClusterOptions(algo="hdbscan")
    source = _as_source(vectors)
    n = len(source)
    result = Labels(np.full(n, UNCLUSTERED, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    if n < options.min_cluster_size:
        return result
    fit_rows = np.arange(n)
    if n > HDBSCAN_FIT_MAX:
        fit_rows = np.sort(np.random.default_rng([options.seed, n]).choice(
            n, HDBSCAN_FIT_MAX, replace=False))
    fitted = source.take(fit_rows)
    raw = HDBSCAN(min_cluster_size=options.min_cluster_size, min_samples=options.min_samples,
                  copy=True).fit(fitted).labels_
    if n > HDBSCAN_FIT_MAX:
        raw = _extend_hdbscan(source, fit_rows, fitted, raw,
                              options.min_samples or options.min_cluster_size,
                              chunk_rows or CHUNK_ROWS)
    del fitted
    found, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = sorted(zip(found, sizes), key=lambda t: (-t[1], t[0]))
    renumber = np.full(int(raw.max()) + 2, UNCLUSTERED, np.int64)  # raw -1 lands on the last
    for new, (old, _size) in enumerate(order, start=1):
        renumber[old] = new
    result.cluster = renumber[raw]
    result.round[result.cluster > 0] = 1
    clustered = np.flatnonzero(result.cluster > 0)
    if len(order) >= 2:
        rng = np.random.default_rng(options.seed)
        if len(clustered) > options.sample:
            clustered = np.sort(rng.choice(clustered, options.sample, replace=False))
        labels = result.cluster[clustered]
        if len(np.unique(labels)) >= 2:
            per_point = silhouette_samples(source.take(clustered), labels)
            by_cluster = np.full(len(order) + 1, np.nan)
            for c in np.unique(labels):
                by_cluster[c] = float(per_point[labels == c].mean())
            result.silhouette = np.where(result.cluster > 0,
                                         by_cluster[np.maximum(result.cluster, 0)], np.nan)
    return result


def cluster_vectors(vectors: np.ndarray | VectorSource, options: ClusterOptions,
                    chunk_rows: int | None = None, rank: np.ndarray | None = None) -> Labels:
    options.check()
    if options.algo == "hdbscan":
        return hdbscan_labels(vectors, options, chunk_rows)
    return iterative_kmeans(vectors, options, chunk_rows, rank)


def media_paths(ws: Workspace) -> dict[str, str]:
    """One path per image or keyframe media (the alphabetically first of its copies)."""
    return {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') "
        "GROUP BY media_id")}


def cluster_set(ws: Workspace, options: ClusterOptions) -> FeatureSet:
    return FeatureSet(ws, FEATURE_NAME, VERSION, options.params(), model=options.model)


@dataclass
class ClusterRun:
    """Result of `cluster_workspace`: the table (path, media_id, cluster, silhouette, round),
    and the rows drawn on the map with their embeddings (at most ``MAP_MAX_POINTS``)."""

    table: pd.DataFrame
    options: ClusterOptions
    labels: Labels
    map_rows: np.ndarray      # increasing positions in ``table``
    map_vectors: np.ndarray   # (len(map_rows), dim) float32, aligned with map_rows
    seconds: float = 0.0

    @property
    def n_clusters(self) -> int:
        return int((self.table["cluster"].unique() > 0).sum())

    @property
    def n_unclustered(self) -> int:
        return int((self.table["cluster"] == UNCLUSTERED).sum())


def cluster_workspace(ws: Workspace, options: ClusterOptions | None = None,
                      workers: int | None = None, progress: bool = False) -> ClusterRun:
    """Embed what is missing, cluster every image and store the labels as feature set 'clusters'.

    The embeddings are streamed from their stored parts (see the module docstring on memory).
    """
    from picsift.analyses.cluster_map import map_sample

    options = options or ClusterOptions()
    options.check()
    started = time.monotonic()
    with ws.writing():
        embed_workspace(ws, options.model, workers, progress=progress)
        paths = media_paths(ws)
        stream = EmbeddingStream(ws, options.model, media=paths)
        if not len(stream):
            raise PicsiftError(f"no embedded images in {ws.dir}: run 'picsift scan' first")
        ids = stream.ids
        rank = np.argsort(np.argsort(np.array(ids, dtype=object), kind="stable"), kind="stable")
        labels = cluster_vectors(stream, options, rank=rank)
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
    labels = Labels(labels.cluster[order], labels.silhouette[order], labels.round[order],
                    labels.rounds)  # aligned with the table's rows
    map_rows = map_sample(labels.cluster, MAP_MAX_POINTS, options.seed)
    map_vectors = stream.take(order[map_rows])
    return ClusterRun(table, options, labels, map_rows, map_vectors,
                      round(time.monotonic() - started, 2))


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
    coords, method = map_layout(run.map_vectors, seed=run.options.seed)
    drawn = f"{len(coords)} images" if len(coords) == len(run.table) else (
        f"a sample of {len(coords)} of {len(run.table)} images")
    png = draw_map(coords, run.table["cluster"].to_numpy()[run.map_rows],
                   folder / "clusters_map.png",
                   title=f"{method} of {drawn}, {run.n_clusters} clusters ({run.options.algo})")
    html = build_clusters_report(ws, run.table, folder / "clusters.html", run.options.params(),
                                 png, [asdict(r) for r in run.labels.rounds])
    return {"csv": csv, "map": png, "html": html}
