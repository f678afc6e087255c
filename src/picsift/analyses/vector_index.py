"""A persisted FAISS inner-product index over one stored embedding array, kept up to date.

Exact (Flat) up to 100k vectors, then IVF with 8-bit scalar quantisation (nlist ~ 4 sqrt(N),
nprobe 16). New embeddings are appended; the index is rebuilt only when media disappeared.
Checking, extending and building never hold the stored embeddings as one matrix: ids are
compared alone, vectors are added chunk by chunk from their parts, and IVF trains on a
seeded sample read by position. The index itself is N x dim (4 bytes a value for Flat, 1
for SQ8): that is its size in memory and on disk.
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

from picsift.analyses.embeddings import CHUNK_ROWS, ArrayVectors, EmbeddingStream, VectorSource
from picsift.errors import PicsiftError
from picsift.workspace.store import Workspace

FLAT_MAX = 100_000


class VectorIndex:
    def __init__(self, ws: Workspace, model: str, array: str) -> None:
        self.dir = ws.dir / "search" / f"{Path(model).name}-{array}"
        self.ws, self.model, self.array = ws, model, array
        self.index = None
        self.media_ids: list[str] = []
        self.stored: EmbeddingStream | None = None

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

    def _build(self, vectors: np.ndarray | VectorSource) -> None:
        """A fresh index over every row of ``vectors`` (a matrix or a streamed source)."""
        import faiss

        source = ArrayVectors(vectors) if isinstance(vectors, np.ndarray) else vectors
        n = len(source)
        dim = source.dim
        if n <= FLAT_MAX:
            index = faiss.IndexFlatIP(dim)
            # grow the code buffer once: chunked adds would otherwise reallocate it as it
            # fills, peaking at ~1.4x the index (measured 727 MB against 615 at 100k x 1280)
            index.codes.resize(n * index.code_size)
            index.codes.resize(0)  # size 0, capacity kept
        else:
            nlist = 2 ** max(6, math.floor(math.log2(min(4 * math.sqrt(n), n / 39))))
            index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
            sample = source.take(np.random.default_rng(0).choice(n, min(n, 40 * nlist),
                                                                 replace=False))
            index.train(np.ascontiguousarray(sample))
            del sample
            faiss.extract_index_ivf(index).nprobe = 16
        for _positions, chunk in source.chunks(rows=CHUNK_ROWS):
            index.add(np.ascontiguousarray(chunk))
        self.index = index

    def ensure(self) -> VectorIndex:
        """Load, extend with new embeddings, or rebuild; return self ready to search.

        ``self.stored`` is then the stream of the stored vectors, row i of the index."""
        stored = EmbeddingStream(self.ws, self.model, self.array)
        if not len(stored):
            raise PicsiftError(f"no embeddings in {self.ws.dir}: run 'picsift embed' first")
        self.stored = stored
        ids = stored.ids
        loaded = self._load()
        if loaded and ids[: len(self.media_ids)] == self.media_ids:
            if len(ids) > len(self.media_ids):
                new = np.arange(len(self.media_ids), len(ids))
                for _positions, chunk in stored.chunks(new, CHUNK_ROWS):
                    self.index.add(np.ascontiguousarray(chunk))
                self.media_ids = ids
                self._save()
            return self
        self.media_ids = ids
        self._build(stored)
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
        """Vectors of index rows: the stored ones (exact) after `ensure`; an IVF index cannot
        reconstruct without a direct map, and SQ8 would return them rounded."""
        if self.stored is not None:
            return self.stored.take(np.asarray(positions, dtype=np.int64))
        return np.stack([self.index.reconstruct(int(p)) for p in positions])
