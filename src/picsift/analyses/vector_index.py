"""A persisted FAISS inner-product index over one stored embedding array, kept up to date.

Exact (Flat) up to 100k vectors, then IVF with 8-bit scalar quantisation (nlist ~ 4 sqrt(N),
nprobe 16). New embeddings are appended; the index is rebuilt only when media disappeared.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from picsift.workspace.store import Workspace

FLAT_MAX = 100_000


class VectorIndex:
    def __init__(self, ws: Workspace, model: str, array: str) -> None:
        self.dir = ws.dir / "search" / f"{Path(model).name}-{array}"
        self.ws, self.model, self.array = ws, model, array
        self.index = None
        self.media_ids: list[str] = []

    def _load(self) -> bool:
        import faiss

        pointer = self.dir / "CURRENT"
        if not pointer.exists():
            return False
        current = self.dir / pointer.read_text().strip()
        if not current.exists():
            return False
        self.index = faiss.read_index(str(current / "index.faiss"))
        self.media_ids = pq.read_table(current / "ids.parquet").column(0).to_pylist()
        return True

    def _save(self) -> None:
        import faiss

        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"v-{uuid.uuid4().hex[:10]}"
        tmp = self.dir / f".{name}"
        tmp.mkdir()
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        pq.write_table(pa.table({"media_id": self.media_ids}), tmp / "ids.parquet")
        os.replace(tmp, self.dir / name)
        old = (self.dir / "CURRENT").read_text().strip() if (self.dir / "CURRENT").exists() else None
        (self.dir / ".CURRENT").write_text(name)
        os.replace(self.dir / ".CURRENT", self.dir / "CURRENT")
        if old:
            shutil.rmtree(self.dir / old, ignore_errors=True)

    def _build(self, vectors: np.ndarray) -> None:
        import faiss

        n, dim = vectors.shape
        if n <= FLAT_MAX:
            index = faiss.IndexFlatIP(dim)
        else:
            nlist = 2 ** max(6, math.floor(math.log2(min(4 * math.sqrt(n), n / 39))))
            index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)]
            index.train(np.ascontiguousarray(sample))
            faiss.extract_index_ivf(index).nprobe = 16
        index.add(np.ascontiguousarray(vectors))
        self.index = index

    def ensure(self) -> VectorIndex:
        """Load, extend with new embeddings, or rebuild; return self ready to search."""
        from picsift.analyses.embeddings import load_embeddings

        ids, vectors = load_embeddings(self.ws, self.model, self.array)
        loaded = self._load()
        if loaded and ids[: len(self.media_ids)] == self.media_ids:
            if len(ids) > len(self.media_ids):
                self.index.add(np.ascontiguousarray(vectors[len(self.media_ids):]))
                self.media_ids = ids
                self._save()
            return self
        self.media_ids = ids
        self._build(vectors)
        self._save()
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product. A handful of queries runs on one thread: measured 0.26 ms
        against 5-16 ms with two OpenMP threads on a busy 2-core machine (benchmarks/embed.py)."""
        import faiss

        k = min(k, len(self.media_ids))
        few = len(queries) < 64
        threads = faiss.omp_get_max_threads()
        if few:
            faiss.omp_set_num_threads(1)
        try:
            return self.index.search(np.ascontiguousarray(queries.astype(np.float32)), k)
        finally:
            if few:
                faiss.omp_set_num_threads(threads)

    def vectors_of(self, positions: np.ndarray) -> np.ndarray:
        return np.stack([self.index.reconstruct(int(p)) for p in positions])
