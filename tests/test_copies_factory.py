"""Index types sized to the corpus: HNSW coarse quantizer for big nlist, reproducible builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import picsift
from conftest import DEMO
from picsift.analyses.copies import factory
from picsift.analyses.copies.factory import choose_index_type, kmeans, parse, train_index
from picsift.analyses.copies.index import CopyIndex
from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.pipeline import run_copies


def test_auto_index_type_grows_with_the_corpus() -> None:
    assert choose_index_type(4_000) == "Flat"
    assert choose_index_type(4_330_000) == "IVF8192,SQ8"  # 10k images
    assert choose_index_type(42_900_000) == "IVF16384,SQ8"  # 100k images
    assert choose_index_type(430_000_000) == "IVF65536_HNSW32,SQ8"  # 1M images
    assert choose_index_type(4_300_000_000) == "IVF262144_HNSW32,SQ8"  # 10M: the cap
    assert choose_index_type(10**12) == "IVF262144_HNSW32,SQ8"
    assert choose_index_type(10**6, "IVF1024,PQ32") == "IVF1024,PQ32"


def test_factory_strings_are_read_whatever_their_prefix() -> None:
    spec = parse("IVF16384_HNSW32,SQ8")
    assert (spec.nlist, spec.hnsw_quantizer, spec.code_size) == (16384, True, 128)
    spec = parse("OPQ32,IVF65536_HNSW32,PQ32")
    assert (spec.nlist, spec.hnsw_quantizer, spec.code_size, spec.is_ivf) == (65536, True, 32, True)
    assert parse("IVF4096,SQ8").nlist == 4096 and not parse("IVF4096,SQ8").hnsw_quantizer
    assert not parse("Flat").is_ivf and parse("Flat").training_vectors == 0
    # never fewer than 4 training descriptors per list, never more than 40
    assert parse("IVF262144_HNSW32,SQ8").training_vectors == 4 * 262144
    assert parse("IVF1024,SQ8").training_vectors == 40 * 1024


def _descriptors(n: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors, like RootSIFT descriptors (non-negative, norm 1)."""
    rng = np.random.default_rng(seed)
    centres = rng.random((50, 128), dtype=np.float32) ** 3
    points = centres[rng.integers(0, 50, n)] + 0.05 * rng.random((n, 128), dtype=np.float32)
    return np.ascontiguousarray(points / np.linalg.norm(points, axis=1, keepdims=True))


def test_hnsw_quantized_index_is_built_identically_twice_and_finds_neighbours() -> None:
    sample, data = _descriptors(8_000, 1), _descriptors(20_000, 2)
    indexes = []
    for _ in range(2):
        index = train_index("IVF256_HNSW32,SQ8", sample)
        index.add(data)
        indexes.append(index)
    import faiss

    lists = [faiss.extract_index_ivf(i).invlists for i in indexes]
    assert [lists[0].list_size(k) for k in range(256)] == [lists[1].list_size(k) for k in range(256)]
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(indexes[0]).quantizer)
    assert quantizer.ntotal == 256 and quantizer.hnsw.efSearch == factory.QUANTIZER_EF
    # neighbours agree with exact search on most queries (approximate, as any IVF)
    faiss.extract_index_ivf(indexes[0]).nprobe = 4
    exact = faiss.IndexFlatL2(128)
    exact.add(data)
    _, found = indexes[0].search(data[:500], 1)
    _, truth = exact.search(data[:500], 1)
    assert (found[:, 0] == truth[:, 0]).mean() > 0.95


def test_hnsw_kmeans_is_as_good_as_exhaustive_kmeans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 65,536 centroids k-means assigns through an HNSW graph: checked here at a size a
    test can afford, against faiss's exhaustive k-means on the same sample."""
    sample = _descriptors(20_000, 3)
    exhaustive = kmeans(sample, 128)
    monkeypatch.setattr(factory, "NLIST_MAX_FLAT", 64)
    approximate = kmeans(sample, 128)
    assert np.array_equal(approximate, kmeans(sample, 128)), "reproducible"

    def inertia(centroids: np.ndarray) -> float:
        distances = ((sample[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        return float(distances.min(1).mean())

    start = sample[np.sort(np.random.default_rng(factory.KMEANS_SEED).choice(20_000, 128, False))]
    assert inertia(approximate) < 0.8 * inertia(start)
    assert inertia(approximate) < 1.1 * inertia(exhaustive)


def test_a_corpus_indexed_with_an_hnsw_quantizer_finds_its_copies(tmp_path: Path) -> None:
    """The whole copy pipeline on real images with IVF + HNSW, in memory and on disk, gives
    the same pairs as each other (identical builds) and as the flat quantizer; an OPQ + PQ
    index (the compact choice for billions of descriptors) is built on disk too."""
    results = {}
    for name, index_type, storage in (("flat", "IVF64,SQ8", "memory"),
                                      ("hnsw", "IVF64_HNSW32,SQ8", "memory"),
                                      ("hnsw-disk", "IVF64_HNSW32,SQ8", "disk"),
                                      ("opq-disk", "OPQ32,IVF64,PQ32", "disk")):
        root = tmp_path / name
        shutil.copytree(DEMO / "photos", root / "photos")
        shutil.copytree(DEMO / "reposts", root / "reposts")
        ws = picsift.open(root)
        ws.scan([root], workers=1)
        options = CopiesOptions(index_type=index_type, index_storage=storage, workers=1)
        result = run_copies(ws, options)
        index = CopyIndex(ws, options)
        assert index.load() and index.index_type == index_type
        results[name] = {(str(a).replace(str(root), ""), str(b).replace(str(root), ""))
                         for a, b in zip(result.pairs["query_path"], result.pairs["result_path"])}
    assert len(results["flat"]) >= 10
    assert results["hnsw"] == results["hnsw-disk"]
    for name in ("hnsw", "opq-disk"):
        overlap = len(results[name] & results["flat"]) / len(results["flat"] | results[name])
        assert overlap > 0.8, name
