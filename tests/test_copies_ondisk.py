"""Copy indexes stored on disk (inverted lists in a file) find what the in-memory index finds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import picsift
from conftest import DEMO, run_picsift
from picsift.analyses.copies import ondisk
from picsift.analyses.copies.index import CopyIndex, estimate_bytes
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.distributed import task_for, work_items
from picsift.analyses.copies.pipeline import CopiesSummary, build_index, load_pairs, run_copies


def _corpus(root: Path) -> Path:
    shutil.copytree(DEMO / "photos", root / "photos")
    shutil.copytree(DEMO / "reposts", root / "reposts")
    return root


def _pairs(result_pairs: pd.DataFrame, root: Path) -> list[tuple]:
    rows = result_pairs.round(4).astype(str).to_numpy().tolist()
    return sorted(tuple(str(value).replace(str(root), "") for value in row) for row in rows)


def _run(root: Path, storage: str) -> tuple[picsift.Workspace, pd.DataFrame, pd.DataFrame]:
    ws = picsift.open(root)
    ws.scan([root], workers=1)
    result = run_copies(ws, CopiesOptions(index_type="IVF64,SQ8", index_storage=storage, workers=1))
    return ws, result.pairs, result.clusters


def test_on_disk_index_gives_the_same_pairs_and_clusters_as_in_memory(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 1,000 descriptors: the ~7,700 of the corpus are spilled and merged in 8 blocks
    monkeypatch.setattr(ondisk, "block_vectors", lambda code_size, limit: 1_000)
    memory_root, disk_root = _corpus(tmp_path / "m"), _corpus(tmp_path / "d")
    ws_m, pairs_m, clusters_m = _run(memory_root, "memory")
    ws_d, pairs_d, clusters_d = _run(disk_root, "disk")
    assert len(pairs_m) >= 10
    assert _pairs(pairs_m, memory_root) == _pairs(pairs_d, disk_root)
    assert _pairs(clusters_m, memory_root) == _pairs(clusters_d, disk_root)

    options = CopiesOptions(index_type="IVF64,SQ8")
    in_memory, on_disk = CopyIndex(ws_m, options), CopyIndex(ws_d, options)
    assert in_memory.load() and on_disk.load()
    assert on_disk.on_disk and on_disk.mapped and not in_memory.on_disk
    live = on_disk.root / on_disk.version
    assert (live / ondisk.LISTS_FILE).stat().st_size > 0
    assert not list(live.glob("block-*")), "blocks are deleted once merged"
    probe = np.random.default_rng(1).random((300, 128), dtype=np.float32)
    d_m, i_m = in_memory.index.search(probe, 8)
    d_d, i_d = on_disk.index.search(probe, 8)
    assert np.array_equal(i_m, i_d) and np.allclose(d_m, d_d)
    assert np.array_equal(np.asarray(in_memory.owner), np.asarray(on_disk.owner))
    assert np.array_equal(np.asarray(in_memory.xy), np.asarray(on_disk.xy))

    # the per-image task a Ray worker runs opens the on-disk index itself and agrees
    options = CopiesOptions(index_type="IVF64,SQ8", index_storage="disk", workers=1)
    index, features = build_index(ws_d, options, CopiesSummary())
    task = task_for(ws_d.dir, index, options)
    found = {(row["query_id"], row["match_id"], row["inliers"])
             for batch in work_items(features, index.indexed_ids(), 4)
             for rows in task(batch) for row in rows if row["match_id"] is not None}
    stored = load_pairs(ws_d, options)
    assert len(found) >= 10
    assert found == set(zip(stored["query_id"], stored["match_id"], stored["inliers"]))


def test_on_disk_index_grows_with_new_images_and_survives_a_killed_build(tmp_path: Path) -> None:
    """Adding images merges the old lists with the new block into a new version; a staging
    folder left by a killed build is cleaned up; the live version is never touched."""
    memory_root, disk_root = _corpus(tmp_path / "m"), _corpus(tmp_path / "d")
    _run(memory_root, "memory")
    ws_d, _, _ = _run(disk_root, "disk")
    first = CopyIndex(ws_d, CopiesOptions(index_type="IVF64,SQ8"))
    assert first.load()
    first_version = first.version
    dead = first.root / ".v-killed0000.tmp"
    dead.mkdir()
    (dead / "block-00000.faiss").write_bytes(b"half written")
    for root in (memory_root, disk_root):
        shutil.copy(DEMO / "odd" / "horse.bmp", root / "photos" / "horse_again.bmp")
    _, pairs_m, _ = _run(memory_root, "auto")  # auto: a small index stays in memory
    ws_d, pairs_d, _ = _run(disk_root, "auto")  # ... and one on disk stays on disk
    assert _pairs(pairs_m, memory_root) == _pairs(pairs_d, disk_root)
    grown = CopyIndex(ws_d, CopiesOptions(index_type="IVF64,SQ8"))
    assert grown.load() and grown.on_disk and grown.n_vectors > first.n_vectors
    assert grown.version != first_version and not dead.exists()
    assert not (first.root / first_version).exists(), "the replaced version is removed"
    assert grown.index.ntotal == grown.n_vectors == int(grown.media.counts.sum())


def test_auto_storage_goes_to_disk_when_the_index_would_not_fit(tmp_path: Path) -> None:
    ws = picsift.open(_corpus(tmp_path / "c"))
    gib = 1024**3
    index = CopyIndex(ws, CopiesOptions(max_memory=2 * gib))
    plan = index.plan(50_000_000, "IVF16384,SQ8")  # ~7 GiB in memory
    assert plan.storage == "disk" and plan.disk_bytes == estimate_bytes(50_000_000, "IVF16384,SQ8")
    assert plan.disk_bytes > 6 * gib and plan.memory_bytes < gib
    assert index.plan(1_000_000, "IVF4096,SQ8").storage == "memory"
    assert CopyIndex(ws, CopiesOptions()).plan(50_000, "Flat").storage == "memory"


def test_cli_index_storage_disk_and_its_errors(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c")
    flat = run_picsift("copies", corpus, "--index-storage", "disk", "--index-type", "Flat")
    assert flat.returncode == 2 and "needs an IVF index" in flat.stderr
    assert "Traceback" not in flat.stderr
    bad = run_picsift("copies", corpus, "--index-storage", "tape")
    assert bad.returncode == 2 and "--index-storage" in bad.stderr
    done = run_picsift("copies", corpus, "--index-storage", "disk", "--index-type", "IVF64,SQ8")
    assert done.returncode == 0, done.stderr
    assert "resizing" not in done.stdout  # faiss's own chatter is silenced
    index = CopyIndex(picsift.open(corpus), CopiesOptions(index_type="IVF64,SQ8"))
    assert index.load() and index.on_disk
