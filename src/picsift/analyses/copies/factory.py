"""Which faiss index a corpus gets, what it costs, and how it is trained reproducibly.

Up to a few thousand descriptors the index is exact (Flat). Above, it is IVF with 8-bit
scalar quantisation and ``nlist`` ~ 4 sqrt(N). Assigning a descriptor to its lists is a
search among the ``nlist`` centroids. With a flat (exhaustive) quantizer that search grows
with ``nlist``: 166 us per descriptor at 65,536 lists on 2 cores, i.e. ~20 h only to assign
the 430 M descriptors of a million images (benchmarks/quantizer.py). From 65,536 lists on (~270 M descriptors, ~620k
images) the centroids are therefore searched through an HNSW graph
(``IVF65536_HNSW32,SQ8``): 1.9x faster there with 99.9 % of assignments unchanged, more as
``nlist`` grows, and the cap on ``nlist`` rises from 65,536 to 262,144 (what ~4 sqrt(N) asks
for at 4 billion descriptors, ~10 M images). Below, the flat quantizer stays: at 16,384 lists
(100k images) the graph saved little (index build 1,433 s vs 1,569 s, search no faster) and
changed 2.5 % of the verified pairs (benchmarks/README-scale.md).

Two builds of the same descriptors must give the same index (the local and Ray engines
build separately and must agree), so training is deterministic: k-means with a fixed seed,
and the HNSW graph over the centroids is built on one thread (faiss inserts in parallel,
which makes the graph, and so the assignments, depend on thread timing).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DIM = 128
FLAT_MAX_VECTORS = 5_000
HNSW_FROM_NLIST = 65_536  # from this many lists on, the coarse quantizer is an HNSW graph
NLIST_MAX_FLAT = 65_536
NLIST_MAX = 262_144
HNSW_M = 32
QUANTIZER_EF = 64  # HNSW beam while assigning: 99.9 % top-1 agreement with exact at 65k lists
TRAINING_MAX = 200_000  # descriptors sampled to train IVF centroids and codec...
TRAINING_PER_LIST_MIN = 4  # ...but never fewer than this many per list
KMEANS_ITERATIONS = 10  # place IVF centroids well enough for descriptor matching
KMEANS_SEED = 1234


def choose_index_type(n_vectors: int, requested: str = "auto") -> str:
    """Factory string for ``n_vectors`` descriptors (exact when small, IVF-SQ8 when large)."""
    if requested != "auto":
        return requested
    if n_vectors <= FLAT_MAX_VECTORS:
        return "Flat"
    # ~4 sqrt(N) lists, with at least 39 training points per list (faiss's own minimum)
    target = min(4.0 * math.sqrt(n_vectors), n_vectors / 39.0, float(NLIST_MAX))
    nlist = 2 ** max(6, math.floor(math.log2(target)))
    if nlist >= HNSW_FROM_NLIST:
        return f"IVF{nlist}_HNSW{HNSW_M},SQ8"
    return f"IVF{nlist},SQ8"


@dataclass(frozen=True)
class IndexSpec:
    """What a factory string says about the parts of an index this module cares about."""

    factory: str
    nlist: int  # 0 when not an IVF index
    hnsw_quantizer: bool
    code_size: int  # bytes per stored vector

    @property
    def is_ivf(self) -> bool:
        return self.nlist > 0

    @property
    def training_vectors(self) -> int:
        """How many descriptors training samples (0: the index needs no training)."""
        if not self.is_ivf and "PQ" not in self.factory:
            return 0
        nlist = max(self.nlist, 256)
        return min(40 * nlist, max(TRAINING_MAX, TRAINING_PER_LIST_MIN * nlist))


def parse(index_type: str) -> IndexSpec:
    """Read ``IVF<nlist>[_HNSW<M>]``, an optional ``OPQ``/``PCA`` prefix and the codec."""
    match = re.search(r"(?:^|,)IVF(\d+)(_HNSW\d*)?", index_type)
    nlist = int(match.group(1)) if match else 0
    return IndexSpec(index_type, nlist, bool(match and match.group(2)), _code_size(index_type))


def estimate_bytes(n_vectors: int, index_type: str) -> int:
    """Size of the index (codes + ids) plus owner/xy arrays, to print before a large build."""
    return n_vectors * (_code_size(index_type) + 8 + 4 + 8)


def quantizer_bytes(index_type: str) -> int:
    """RAM of the coarse quantizer: centroids, plus the HNSW graph's links when it has one."""
    spec = parse(index_type)
    links = spec.nlist * 2 * HNSW_M * 4 if spec.hnsw_quantizer else 0
    return spec.nlist * DIM * 4 + links


def _code_size(index_type: str) -> int:
    """Bytes per stored vector of the codec named in a factory string (for estimates)."""
    codec = index_type.split(",")[-1]
    if codec.startswith("PQ"):
        digits = "".join(ch for ch in codec[2:].split("x")[0] if ch.isdigit())
        return int(digits or 32)
    if codec == "SQ8":
        return DIM
    if codec in ("SQ4",):
        return DIM // 2
    if codec in ("SQfp16", "SQ16"):
        return DIM * 2
    return DIM * 4


# ---------------------------------------------------------------- training
def train_index(index_type: str, sample: np.ndarray) -> Any:
    """An empty index of ``index_type`` trained on ``sample`` (centroids, codec), the same on
    every run for the same sample."""
    import faiss

    index = faiss.index_factory(DIM, index_type, faiss.METRIC_L2)
    spec = parse(index_type)
    if spec.is_ivf:
        faiss.extract_index_ivf(index).cp.niter = KMEANS_ITERATIONS
    if spec.hnsw_quantizer:
        _train_hnsw_quantizer(index, spec, sample)
    if not index.is_trained:  # the codec (and an OPQ rotation); the centroids unless done above
        log.info("training %s on %d descriptors", index_type, len(sample))
        index.train(sample)
    return index


def _train_hnsw_quantizer(index: Any, spec: IndexSpec, sample: np.ndarray) -> None:
    """k-means centroids, then their HNSW graph built on one thread (reproducible).

    An OPQ/PCA prefix would have to be trained first and the centroids placed in its
    output space: such indexes keep faiss's own training, whose parallel graph insertion
    may differ between two builds (an explicit ``--index-type`` only; ``auto`` never asks
    for a prefix).
    """
    import faiss

    if not spec.factory.startswith("IVF"):
        return
    ivf = faiss.extract_index_ivf(index)
    quantizer = faiss.downcast_index(ivf.quantizer)
    if not hasattr(quantizer, "hnsw"):
        return
    log.info("k-means: %d centroids from %d descriptors", spec.nlist, len(sample))
    centroids = kmeans(sample, spec.nlist)
    with single_thread():
        quantizer.hnsw.efConstruction = 40
        quantizer.add(centroids)
    quantizer.hnsw.efSearch = QUANTIZER_EF  # saved with the index


def kmeans(sample: np.ndarray, k: int, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """``k`` centroids of ``sample``: faiss k-means (exhaustive assignment) up to 65,536
    centroids; above, assignments through an HNSW graph rebuilt each round on one thread."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if k <= NLIST_MAX_FLAT:
        clustering = faiss.Clustering(DIM, k)
        clustering.niter, clustering.seed = iterations, KMEANS_SEED
        clustering.max_points_per_centroid = 1 << 30  # the caller sized the sample already
        clustering.min_points_per_centroid = 1  # (and knows it is below faiss's advice)
        clustering.train(sample, faiss.IndexFlatL2(DIM))
        return faiss.vector_to_array(clustering.centroids).reshape(k, DIM)
    return _kmeans_hnsw(sample, k, iterations)


def _kmeans_hnsw(sample: np.ndarray, k: int, iterations: int) -> np.ndarray:
    import faiss

    rng = np.random.default_rng(KMEANS_SEED)
    centroids = sample[np.sort(rng.choice(len(sample), k, replace=False))].copy()
    for _ in range(iterations):
        graph = faiss.IndexHNSWFlat(DIM, HNSW_M)
        graph.hnsw.efConstruction = 40
        with single_thread():
            graph.add(centroids)
        graph.hnsw.efSearch = QUANTIZER_EF
        _, nearest = graph.search(sample, 1)
        assigned = nearest[:, 0]
        order = np.argsort(assigned, kind="stable")
        counts = np.bincount(assigned, minlength=k)
        filled = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        sums = np.add.reduceat(sample[order].astype(np.float64), starts, axis=0)
        centroids[filled] = (sums / counts[filled, None]).astype(np.float32)
        # an empty centroid restarts on a random descriptor (faiss splits a big one instead)
        empty = np.flatnonzero(~filled)
        if len(empty):
            centroids[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
    return centroids


class single_thread:
    """Run faiss on one OpenMP thread for the duration of a block (reproducible HNSW)."""

    def __enter__(self) -> None:
        import faiss

        self.saved = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        import faiss

        faiss.omp_set_num_threads(self.saved)
