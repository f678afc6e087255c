"""IVF copy indexes whose inverted lists live in a file, for corpora whose index outgrows RAM.

Building never holds the whole index in memory: descriptors are added to an in-RAM block of
bounded size, each full block is written to the staging folder, and at the end every block
(plus the lists of the previous version, when extending) is merged list by list into one
``lists.ivfdata`` file with faiss's ``OnDiskInvertedLists``. Searching memory-maps that
file, so a query touches only the lists it probes. The codes and ids are the ones the
in-memory index would hold (vectors are added part by part in the same order, with the same
ids), so searches give the same neighbours.

The ``owner``/``xy`` arrays beside the index are written through ``numpy`` memory maps for
the same reason.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LISTS_FILE = "lists.ivfdata"
BLOCK_BYTES = 512 * 1024**2  # one in-RAM block of codes + ids before it is spilled to disk


def is_on_disk(version_dir: Path) -> bool:
    return (version_dir / LISTS_FILE).exists()


def read_on_disk(path: Path, read_only: bool = True) -> Any:
    """Open a saved on-disk index; its lists file is found next to it wherever the folder moved."""
    import faiss

    flags = faiss.IO_FLAG_ONDISK_SAME_DIR | (faiss.IO_FLAG_READ_ONLY if read_only else 0)
    with _quiet_stdout():  # faiss announces the re-based file name on stdout
        return faiss.read_index(str(path), flags)


def empty_like(saved_index: Path) -> Any:
    """A trained but empty copy of a saved IVF index (its quantizer and codec, no lists)."""
    import faiss

    index = faiss.read_index(str(saved_index), faiss.IO_FLAG_SKIP_IVF_DATA)
    ivf = faiss.extract_index_ivf(index)
    lists = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    lists.this.disown()  # owned (and freed) by the index, not by this Python wrapper
    ivf.replace_invlists(lists, True)
    ivf.ntotal = index.ntotal = 0
    return index


def block_vectors(code_size: int, limit_bytes: int | None) -> int:
    """How many vectors one in-RAM block holds (a quarter of ``--max-memory`` at most)."""
    budget = BLOCK_BYTES if limit_bytes is None else min(BLOCK_BYTES, limit_bytes // 4)
    return max(1_000, budget // (code_size + 8))


def ram_while_building(quantizer_bytes: int, code_size: int, limit_bytes: int | None,
                       sample_vectors: int, dim: int) -> int:
    """Peak memory of an on-disk build: quantizer, one block, the training sample."""
    return quantizer_bytes + block_vectors(code_size, limit_bytes) * (code_size + 8) + \
        sample_vectors * dim * 4


class DiskIndexWriter:
    """Adds vectors in bounded blocks and merges them into an on-disk IVF index."""

    def __init__(self, trained: Any, staging: Path, limit_bytes: int | None,
                 previous: Any | None = None) -> None:
        import faiss

        self.trained = trained
        self.staging = staging
        self.previous = previous
        ivf = faiss.extract_index_ivf(trained)
        self.nlist, self.code_size = int(ivf.nlist), int(ivf.code_size)
        self.capacity = block_vectors(self.code_size, limit_bytes)
        self.block: Any = None
        self.blocks: list[Path] = []

    def add(self, vectors: np.ndarray, first_id: int) -> None:
        """Add ``vectors`` with ids ``first_id, first_id + 1, ...`` (one call per feature part,
        as the in-memory index is fed, so coarse assignments are computed identically)."""
        import faiss

        if self.block is None:
            self.block = faiss.clone_index(self.trained)
        ids = np.arange(first_id, first_id + len(vectors), dtype=np.int64)
        self.block.add_with_ids(np.ascontiguousarray(vectors), ids)
        if self.block.ntotal >= self.capacity:
            self._spill()

    def _spill(self) -> None:
        import faiss

        if self.block is None or self.block.ntotal == 0:
            return
        path = self.staging / f"block-{len(self.blocks):05d}.faiss"
        faiss.write_index(self.block, str(path))
        self.blocks.append(path)
        self.block = None

    def finish(self) -> Any:
        """Merge the previous lists and every block into ``staging/lists.ivfdata``; write
        ``staging/index.faiss``; delete the blocks; return the index, ready to search."""
        import faiss

        self._spill()
        sources = [] if self.previous is None else [self.previous]
        opened = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
                  for p in self.blocks]
        sources.extend(opened)
        lists = faiss.OnDiskInvertedLists(self.nlist, self.code_size,
                                          str(self.staging / LISTS_FILE))
        pointers = faiss.InvertedListsPtrVector()
        for source in sources:
            pointers.push_back(faiss.extract_index_ivf(source).invlists)
        with _quiet_stdout():  # faiss prints "resizing ..." on stdout
            total = int(lists.merge_from_multiple(pointers.data(), pointers.size()))
        index = faiss.clone_index(self.trained)
        ivf = faiss.extract_index_ivf(index)
        lists.this.disown()  # the index owns (and frees) the lists from here on
        ivf.replace_invlists(lists, True)
        ivf.ntotal = index.ntotal = total
        faiss.write_index(index, str(self.staging / "index.faiss"))
        del opened, sources, pointers
        for path in self.blocks:
            path.unlink(missing_ok=True)
        log.info("on-disk index: %d vectors in %d list(s) merged from %d block(s)",
                 total, self.nlist, len(self.blocks))
        return index


class _quiet_stdout:
    """Silence C-level writes to stdout (file descriptor 1) for the duration of a block."""

    def __enter__(self) -> None:
        import sys

        sys.stdout.flush()
        self.saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 1)
        os.close(self.saved)


def copy_into(target: np.ndarray, source: np.ndarray, chunk: int = 4_000_000) -> None:
    """Copy ``source`` into the head of ``target`` (memory maps) without loading it whole."""
    for start in range(0, len(source), chunk):
        stop = min(len(source), start + chunk)
        target[start:stop] = source[start:stop]


def remove_stale_staging(root: Path) -> None:
    """Delete staging folders left by a build that was killed (the live version is untouched)."""
    if not root.exists():
        return
    for path in root.glob(".v-*.tmp"):
        shutil.rmtree(path, ignore_errors=True)
