"""Step 2: a FAISS index of every RootSIFT descriptor, extended incrementally.

The index type follows the corpus size unless the user names one: exact (Flat) while the
all-against-all search stays cheap, then IVF with 8-bit scalar quantisation (4x smaller than
float, recall ~0.98 in our measurements), with ``nlist`` growing with the square root of the
number of descriptors. Alongside the FAISS file the index keeps, per descriptor, its image
(``owner``) and its keypoint position (``xy``), so the geometric check needs no other data.

Each saved state is a new directory named in ``CURRENT`` (written atomically), so a crash
while saving leaves the previous index intact. Adding images appends to the existing index;
an exact index that grows past the threshold is rebuilt once as IVF.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from picsift.analyses.copies.options import CopiesOptions
from picsift.features.local import root_sift
from picsift.workspace.features import FeatureSet, params_hash
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)

FLAT_MAX_VECTORS = 5_000
DIM = 128


def choose_index_type(n_vectors: int, requested: str = "auto") -> str:
    """Factory string for ``n_vectors`` descriptors (exact when small, IVF-SQ8 when large)."""
    if requested != "auto":
        return requested
    if n_vectors <= FLAT_MAX_VECTORS:
        return "Flat"
    # ~4 sqrt(N) lists, with at least 39 training points per list (faiss's own minimum)
    target = min(4.0 * math.sqrt(n_vectors), n_vectors / 39.0, 65536.0)
    nlist = 2 ** max(6, math.floor(math.log2(target)))
    return f"IVF{nlist},SQ8"


def estimate_bytes(n_vectors: int, index_type: str) -> int:
    """Memory of the index plus owner/xy arrays, to print before a large build."""
    per_vector = DIM * 4 if "SQ8" not in index_type and "PQ" not in index_type else DIM
    if "PQ" in index_type:
        per_vector = 32
    return n_vectors * (per_vector + 8 + 4 + 8)


@dataclass
class IndexedMedia:
    """Per indexed image: its first descriptor id, count and working size."""

    media_ids: list[str]
    first: np.ndarray
    counts: np.ndarray
    widths: np.ndarray
    heights: np.ndarray

    def position(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.media_ids)}


class CopyIndex:
    """The descriptor index of one workspace for one set of SIFT/index parameters."""

    def __init__(self, ws: Workspace, options: CopiesOptions) -> None:
        self.ws = ws
        self.options = options
        self.root = ws.dir / "copies" / "index" / params_hash("1", options.index_params())
        self.index = None
        self.owner = np.zeros(0, np.int32)
        self.xy = np.zeros((0, 2), np.float32)
        self.mapped = False  # loaded read-only from memory-mapped files (search only)
        self.media = IndexedMedia([], np.zeros(0, np.int64), np.zeros(0, np.int64),
                                  np.zeros(0, np.int32), np.zeros(0, np.int32))
        self.index_type = ""

    # ------------------------------------------------------------- persistence
    def _current(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        return path if path.exists() else None

    @property
    def version(self) -> str:
        """Name of the saved version now live ('' if none): what a worker must load."""
        current = self._current()
        return current.name if current else ""

    def load(self, media_only: bool = False, mmap: bool = False) -> bool:
        """Load the saved index (``media_only``: just the per-image table); False if none.

        ``mmap``: for searching only. An IVF index's inverted lists and the owner/xy arrays
        are memory-mapped from the saved files, read-only, so a query run (or each Ray
        worker) touches only the lists it probes and the OS shares the pages between
        processes; results are identical. Extending reloads it fully first.
        """
        import faiss

        current = self._current()
        if current is None:
            return False
        if not media_only:
            kind = (current / "TYPE").read_text().strip()
            mapped = mmap and kind.startswith("IVF")
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0
            self.index = faiss.read_index(str(current / "index.faiss"), flags)
            self.owner = np.load(current / "owner.npy", mmap_mode="r" if mapped else None)
            self.xy = np.load(current / "xy.npy", mmap_mode="r" if mapped else None)
            self.mapped = mapped
        table = pq.read_table(current / "media.parquet").to_pydict()
        self.media = IndexedMedia(table["media_id"], np.array(table["first"], np.int64),
                                  np.array(table["count"], np.int64),
                                  np.array(table["width"], np.int32),
                                  np.array(table["height"], np.int32))
        self.index_type = (current / "TYPE").read_text().strip()
        if not media_only:
            self._set_nprobe()
        return True

    def save(self) -> None:
        import faiss

        self.root.mkdir(parents=True, exist_ok=True)
        name = f"v-{uuid.uuid4().hex[:12]}"
        tmp = self.root / f".{name}.tmp"
        tmp.mkdir()
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        np.save(tmp / "owner.npy", self.owner)
        np.save(tmp / "xy.npy", self.xy)
        pq.write_table(pa.table({
            "media_id": self.media.media_ids, "first": self.media.first, "count": self.media.counts,
            "width": self.media.widths, "height": self.media.heights}), tmp / "media.parquet")
        (tmp / "TYPE").write_text(self.index_type)
        os.replace(tmp, self.root / name)
        previous = self._current()
        pointer_tmp = self.root / ".CURRENT.tmp"
        pointer_tmp.write_text(name)
        os.replace(pointer_tmp, self.root / "CURRENT")
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)

    def _set_nprobe(self) -> None:
        import faiss

        try:
            faiss.extract_index_ivf(self.index).nprobe = self.options.nprobe
        except RuntimeError:
            pass  # not an IVF index

    # --------------------------------------------------------------- building
    @property
    def n_vectors(self) -> int:
        return int(self.owner.shape[0])

    def indexed_ids(self) -> set[str]:
        return set(self.media.media_ids)

    def _new_index(self, index_type: str, sample: np.ndarray) -> None:
        import faiss

        index = faiss.index_factory(DIM, index_type, faiss.METRIC_L2)
        try:  # 10 k-means rounds place IVF centroids well enough for descriptor matching
            faiss.extract_index_ivf(index).cp.niter = 10
        except RuntimeError:
            pass
        if not index.is_trained:
            log.info("training %s on %d descriptors", index_type, len(sample))
            index.train(sample)
        self.index = index
        self.index_type = index_type
        self._set_nprobe()

    def extend(self, features: FeatureSet, announce: callable | None = None) -> int:  # type: ignore[valid-type]
        """Add every described media not yet indexed; return how many images were added."""
        metas = {part: pq.read_table(part, columns=["media_id", "n_points"]).to_pydict()
                 for part in features.parts()}
        # Parts in content order, not in the order workers happened to finish them: the same
        # media give the same index (IVF training sample, descriptor ids) on every run/engine.
        parts = sorted(metas, key=lambda p: (min(metas[p]["media_id"], default=""), p.name))
        indexed = self.indexed_ids()
        pending: list[tuple[Path, list[int]]] = []
        n_new_vectors = 0
        for part in parts:
            meta = metas[part]
            rows = [i for i, m in enumerate(meta["media_id"]) if m not in indexed]
            for i in rows:
                indexed.add(meta["media_id"][i])
            if rows:
                pending.append((part, rows))
                n_new_vectors += sum(meta["n_points"][i] for i in rows)
        if not pending:
            return 0
        if self.mapped:  # a read-only mapped index cannot grow: load it into memory
            self.load()
        total = self.n_vectors + n_new_vectors
        wanted = choose_index_type(total, self.options.index_type)
        rebuild = self.index is None or (
            self.options.index_type == "auto" and self.index_type == "Flat" and wanted != "Flat")
        needed = estimate_bytes(total, wanted)
        if announce is not None:
            announce(total, wanted, needed)
        limit = self.options.max_memory
        if limit is not None and needed > limit:
            from picsift.errors import PicsiftError

            smaller = estimate_bytes(total, "IVF65536,PQ32")
            raise PicsiftError(
                f"the copy index for {total:,} descriptors ({wanted}) needs about "
                f"{needed / 1024**3:.1f} GiB, over --max-memory {limit / 1024**3:.1f} GiB: use "
                f"--index-type IVF65536,PQ32 (about {smaller / 1024**3:.1f} GiB, lower recall) or "
                "fewer keypoints per image (--nfeatures)")
        if rebuild:
            if self.index is not None:  # exact index outgrew its size: rebuild from all parts
                self.__init__(self.ws, self.options)  # type: ignore[misc]
                return self.extend(features, announce)
            sample = self._training_sample(pending, wanted)
            self._new_index(wanted, sample)
        added = 0
        for part, rows in pending:
            added += self._add_part(features, part, rows)
        return added

    def _training_sample(self, pending: list[tuple[Path, list[int]]], index_type: str) -> np.ndarray:
        if not index_type.startswith("IVF") and "PQ" not in index_type:
            return np.zeros((0, DIM), np.float32)
        nlist = int(index_type.split(",")[0][3:].split("_")[0]) if index_type.startswith("IVF") else 256
        wanted = min(40 * nlist, 200_000)
        rng = np.random.default_rng(0)
        chunks: list[np.ndarray] = []
        budget_per_part = max(1, wanted // max(1, len(pending)))
        for part, _rows in pending:
            desc = FeatureSet.arrays_of(part)["descriptors"]
            if len(desc) > budget_per_part:
                desc = desc[rng.choice(len(desc), budget_per_part, replace=False)]
            chunks.append(root_sift(desc))
        return np.ascontiguousarray(np.concatenate(chunks))

    def _add_part(self, features: FeatureSet, part: Path, rows: list[int]) -> int:
        arrays = FeatureSet.arrays_of(part)
        meta = pq.read_table(part).to_pydict()
        offsets = arrays["offsets"]
        base_media = len(self.media.media_ids)
        descs, xys, owners, firsts, counts = [], [], [], [], []
        next_id = self.n_vectors
        for j, i in enumerate(rows):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            descs.append(arrays["descriptors"][lo:hi])
            xys.append(arrays["keypoints"][lo:hi, :2])
            owners.append(np.full(hi - lo, base_media + j, np.int32))
            firsts.append(next_id)
            counts.append(hi - lo)
            next_id += hi - lo
        vectors = root_sift(np.concatenate(descs)) if descs else np.zeros((0, DIM), np.float32)
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors))
        self.owner = np.concatenate([self.owner, *owners])
        self.xy = np.concatenate([self.xy, *xys]).astype(np.float32)
        self.media = IndexedMedia(
            self.media.media_ids + [meta["media_id"][i] for i in rows],
            np.concatenate([self.media.first, np.array(firsts, np.int64)]),
            np.concatenate([self.media.counts, np.array(counts, np.int64)]),
            np.concatenate([self.media.widths, np.array([meta["work_width"][i] for i in rows], np.int32)]),
            np.concatenate([self.media.heights, np.array([meta["work_height"][i] for i in rows], np.int32)]),
        )
        return len(rows)
