"""Step 2: a FAISS index of every RootSIFT descriptor, extended incrementally.

The index type follows the corpus size unless the user names one: exact (Flat) while the
all-against-all search stays cheap, then IVF with 8-bit scalar quantisation (4x smaller than
float, recall ~0.98 in our measurements), with ``nlist`` growing with the square root of the
number of descriptors and an HNSW coarse quantizer from 65k lists on (factory.py).
Alongside the FAISS file the index keeps, per descriptor, its image (``owner``) and its
keypoint position (``xy``), so the geometric check needs no other data.

Each saved state is a new directory named in ``CURRENT`` (written atomically), so a crash
while saving leaves the previous index intact. Adding images appends to the existing index;
an exact index that grows past the threshold is rebuilt once as IVF.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from picsift.analyses.copies.factory import (
    DIM,
    choose_index_type,
    estimate_bytes,
    parse,
    quantizer_bytes,
    train_index,
)
from picsift.analyses.copies.ondisk import (
    DiskIndexWriter,
    copy_into,
    empty_like,
    is_on_disk,
    ram_while_building,
    read_on_disk,
    remove_stale_staging,
)
from picsift.analyses.copies.options import CopiesOptions
from picsift.features.local import root_sift
from picsift.workspace.features import FeatureSet, params_hash
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)

Pending = tuple[Path, dict[str, list[Any]], list[int]]  # feature part, its metadata, rows to add


@dataclass
class IndexPlan:
    """What an index build will take, announced before it starts and checked against
    ``--max-memory``: ``memory_bytes`` is the RAM of the whole index (storage "memory") or of
    the build only (storage "disk": the lists go to a file); ``disk_bytes`` its saved size."""

    vectors: int
    index_type: str
    storage: str
    memory_bytes: int
    disk_bytes: int


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
        self.on_disk = False  # inverted lists in a file (ondisk.py), never wholly in RAM
        self._staging: Path | None = None  # an on-disk version built but not yet saved
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
        processes; results are identical. Extending reloads it fully first, except an index
        stored on disk (ondisk.py), which is always mapped and never loaded whole.
        """
        import faiss

        current = self._current()
        if current is None:
            return False
        self.on_disk = is_on_disk(current)
        if not media_only and self.on_disk:
            self.index = read_on_disk(current / "index.faiss")
            self.owner = np.load(current / "owner.npy", mmap_mode="r")
            self.xy = np.load(current / "xy.npy", mmap_mode="r")
            self.mapped = True
        elif not media_only:
            kind = (current / "TYPE").read_text().strip()
            mapped = mmap and parse(kind).is_ivf
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
        if self._staging is not None:  # on disk: index, lists, owner and xy are written
            tmp, self._staging = self._staging, None
            name = tmp.name[1:].removesuffix(".tmp")
        else:
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

    def extend(self, features: FeatureSet, announce: Callable[[IndexPlan], None] | None = None
               ) -> int:
        """Add every described media not yet indexed; return how many images were added."""
        # Parts in content order, not in the order workers happened to finish them: the same
        # media give the same index (IVF training sample, descriptor ids) on every run/engine.
        # Only parts holding unindexed media are read (the ids come from the parts' id cache).
        ids_of = features.ids_by_part()
        ids_of.sort(key=lambda item: (min(item[1], default=""), item[0].name))
        indexed = self.indexed_ids()
        pending: list[Pending] = []
        n_new_vectors = 0
        for part, ids in ids_of:
            if all(m in indexed for m in ids):
                continue
            meta = pq.read_table(part, columns=["media_id", "n_points", "work_width",
                                                "work_height"]).to_pydict()
            rows = [i for i, m in enumerate(meta["media_id"]) if m not in indexed]
            for i in rows:
                indexed.add(meta["media_id"][i])
            if rows:
                pending.append((part, meta, rows))
                n_new_vectors += sum(meta["n_points"][i] for i in rows)
        if not pending:
            return 0
        total = self.n_vectors + n_new_vectors
        wanted = choose_index_type(total, self.options.index_type)
        rebuild = self.index is None or (
            self.options.index_type == "auto" and self.index_type == "Flat" and wanted != "Flat")
        plan = self.plan(total, wanted)
        if announce is not None:
            announce(plan)
        self._check_memory(plan)
        if rebuild and self.index is not None:  # exact index outgrew its size: rebuild from all parts
            self.__init__(self.ws, self.options)  # type: ignore[misc]
            return self.extend(features, announce)
        if plan.storage == "disk":
            return self._extend_on_disk(pending, total, wanted, rebuild)
        if self.mapped:  # a read-only mapped index cannot grow: load it into memory
            self.load()
        if rebuild:
            self.index = train_index(wanted, self._training_sample(pending, wanted))
            self.index_type = wanted
            self._set_nprobe()
        added = _Additions(self)
        for part, meta, rows in pending:
            batch = added.read(part, meta, rows)
            if len(batch.vectors):
                self.index.add(np.ascontiguousarray(batch.vectors))
            added.owners.append(batch.owner)
            added.xys.append(batch.xy)
        self.owner = np.concatenate([self.owner, *added.owners])
        self.xy = np.concatenate([self.xy, *added.xys]).astype(np.float32)
        added.apply()
        return added.count

    # ----------------------------------------------------------- memory plan
    def plan(self, total: int, index_type: str) -> IndexPlan:
        """Where an index of ``total`` descriptors goes, and what it costs in RAM and on disk."""
        in_memory = estimate_bytes(total, index_type)
        storage = self._storage(index_type, in_memory)
        if storage == "memory":
            return IndexPlan(total, index_type, "memory", in_memory, in_memory)
        spec = parse(index_type)
        ram = ram_while_building(quantizer_bytes(index_type), spec.code_size,
                                 self.options.max_memory, spec.training_vectors, DIM)
        return IndexPlan(total, index_type, "disk", ram, in_memory)

    def _storage(self, index_type: str, in_memory: int) -> str:
        requested = self.options.index_storage
        ivf = parse(index_type).is_ivf
        if self.on_disk:
            if requested == "memory":
                log.warning("the copy index is stored on disk already: it stays there")
            return "disk"
        if requested == "disk" and not ivf:
            from picsift.errors import PicsiftError

            raise PicsiftError(f"--index-storage disk needs an IVF index, not {index_type}: "
                               "pass --index-type IVF4096,SQ8 (or another IVF type)")
        if requested != "auto":
            return requested
        budget = self.options.max_memory or _physical_memory() // 2
        return "disk" if ivf and in_memory > budget else "memory"

    def _check_memory(self, plan: IndexPlan) -> None:
        limit = self.options.max_memory
        if limit is None or plan.memory_bytes <= limit:
            return
        from picsift.errors import PicsiftError

        gib = 1024**3
        smaller = estimate_bytes(plan.vectors, "IVF65536,PQ32")
        where = ("in memory" if plan.storage == "memory" else
                 "to build on disk (quantizer, one block, training sample)")
        raise PicsiftError(
            f"the copy index for {plan.vectors:,} descriptors ({plan.index_type}) needs about "
            f"{plan.memory_bytes / gib:.1f} GiB {where}, over --max-memory {limit / gib:.1f} GiB: "
            f"use --index-type IVF65536,PQ32 (about {smaller / gib:.1f} GiB, lower recall), "
            "--index-storage disk with an IVF index, or fewer keypoints per image (--nfeatures)")

    # ------------------------------------------------------------- on disk
    def _extend_on_disk(self, pending: list[Pending],
                        total: int, wanted: str, rebuild: bool) -> int:
        """Add ``pending`` into a new on-disk version staged next to the live one."""
        from numpy.lib.format import open_memmap

        remove_stale_staging(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".v-{uuid.uuid4().hex[:12]}.tmp"
        staging.mkdir()
        current = self._current()
        if rebuild:
            trained = train_index(wanted, self._training_sample(pending, wanted))
            previous = None
        else:
            assert current is not None
            trained = empty_like(current / "index.faiss")
            previous = self.index
        writer = DiskIndexWriter(trained, staging, self.options.max_memory, previous)
        owner = open_memmap(staging / "owner.npy", "w+", np.int32, (total,))
        xy = open_memmap(staging / "xy.npy", "w+", np.float32, (total, 2))
        copy_into(owner, self.owner)
        copy_into(xy, self.xy)
        added = _Additions(self)
        for part, meta, rows in pending:
            first = added.next_id
            batch = added.read(part, meta, rows)
            if len(batch.vectors):
                writer.add(batch.vectors, first)
            owner[first : added.next_id] = batch.owner
            xy[first : added.next_id] = batch.xy
        owner.flush()
        xy.flush()
        del owner, xy
        self.index = writer.finish()
        self.owner = np.load(staging / "owner.npy", mmap_mode="r")
        self.xy = np.load(staging / "xy.npy", mmap_mode="r")
        self.index_type, self.on_disk, self.mapped = wanted, True, True
        self._staging = staging
        self._set_nprobe()
        added.apply()
        return added.count

    def _training_sample(self, pending: list[Pending], index_type: str) -> np.ndarray:
        wanted = parse(index_type).training_vectors
        if not wanted:
            return np.zeros((0, DIM), np.float32)
        rng = np.random.default_rng(0)
        chunks: list[np.ndarray] = []
        budget_per_part = max(1, wanted // max(1, len(pending)))
        for part, _meta, _rows in pending:
            desc = FeatureSet.arrays_of(part)["descriptors"]
            if len(desc) > budget_per_part:
                desc = desc[rng.choice(len(desc), budget_per_part, replace=False)]
            chunks.append(root_sift(desc))
        return np.ascontiguousarray(np.concatenate(chunks))


@dataclass
class _PartBatch:
    vectors: np.ndarray
    owner: np.ndarray
    xy: np.ndarray


class _Additions:
    """The rows one extend adds: read part by part, per-image table appended once at the end
    (appending arrays per part would copy the whole table once per part: quadratic)."""

    def __init__(self, index: CopyIndex) -> None:
        self.index = index
        self.next_id = index.n_vectors
        self.media_ids: list[str] = []
        self.firsts: list[int] = []
        self.counts: list[int] = []
        self.widths: list[int] = []
        self.heights: list[int] = []
        self.owners: list[np.ndarray] = []
        self.xys: list[np.ndarray] = []

    @property
    def count(self) -> int:
        return len(self.media_ids)

    def read(self, part: Path, meta: dict[str, list[Any]], rows: list[int]) -> _PartBatch:
        arrays = FeatureSet.arrays_of(part)
        offsets = arrays["offsets"]
        descs, xys, owners = [], [], []
        for i in rows:
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            descs.append(arrays["descriptors"][lo:hi])
            xys.append(arrays["keypoints"][lo:hi, :2])
            owners.append(np.full(hi - lo, len(self.index.media.media_ids) + self.count, np.int32))
            self.media_ids.append(meta["media_id"][i])
            self.firsts.append(self.next_id)
            self.counts.append(hi - lo)
            self.widths.append(meta["work_width"][i])
            self.heights.append(meta["work_height"][i])
            self.next_id += hi - lo
        vectors = root_sift(np.concatenate(descs)) if descs else np.zeros((0, DIM), np.float32)
        return _PartBatch(vectors, np.concatenate(owners) if owners else np.zeros(0, np.int32),
                          (np.concatenate(xys) if xys else np.zeros((0, 2))).astype(np.float32))

    def apply(self) -> None:
        media = self.index.media
        self.index.media = IndexedMedia(
            media.media_ids + self.media_ids,
            np.concatenate([media.first, np.array(self.firsts, np.int64)]),
            np.concatenate([media.counts, np.array(self.counts, np.int64)]),
            np.concatenate([media.widths, np.array(self.widths, np.int32)]),
            np.concatenate([media.heights, np.array(self.heights, np.int32)]))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3
