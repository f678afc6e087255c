"""Streaming stored embeddings part by part: the same rows as loading them all, in any chunking.

Parts are written through FeatureSet exactly as `picsift embed` writes them (float16 arrays
`embedding` and `text_space` beside a media_id column), with media embedded twice so the
"latest wins" rule is exercised; vectors are random, no model is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import picsift
from picsift.analyses import vector_index
from picsift.analyses.embeddings import (
    EmbeddingStream,
    embedding_set,
    iter_embeddings,
    load_embeddings,
)
from picsift.analyses.vector_index import VectorIndex
from picsift.errors import PicsiftError
from picsift.workspace.features import FeatureSet


def write_parts(ws, sizes: list[int], dim: int = 6, pool: int = 50, seed: int = 0,
                prefix: str = "m", distinct: bool = False) -> None:
    """Parts of random unit vectors; ids drawn from a pool (repeats: re-embedded media), or
    all distinct."""
    rng = np.random.default_rng(seed)
    features = embedding_set(ws)
    features.register()
    names = [f"{prefix}{i:04d}" for i in range(pool)]
    offset = 0
    for size in sizes:
        ids = names[offset : offset + size] if distinct else list(
            rng.choice(names, size, replace=False))
        offset += size
        vectors = rng.normal(size=(size, dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        features.write_part(pa.table({"media_id": ids}), {
            "embedding": vectors.astype(np.float16),
            "text_space": rng.normal(size=(size, 4)).astype(np.float16)})


def all_at_once(ws, array: str = "embedding") -> tuple[list[str], np.ndarray]:
    """How load_embeddings read the parts before streaming: concatenate, keep last rows."""
    ids: list[str] = []
    chunks = []
    for part in embedding_set(ws).parts():
        ids.extend(pq.read_table(part, columns=["media_id"]).column(0).to_pylist())
        chunks.append(FeatureSet.arrays_of(part)[array].astype(np.float32))
    matrix = np.concatenate(chunks)
    position = {m: i for i, m in enumerate(ids)}
    keep = np.array(sorted(position.values()))
    return [ids[i] for i in keep], matrix[keep]


@pytest.fixture
def ws(tmp_path: Path):
    (tmp_path / "corpus").mkdir()
    return picsift.open(tmp_path / "corpus", workspace=tmp_path / "ws")


def test_stream_reads_the_same_rows_as_loading_everything(ws):
    write_parts(ws, [7, 16, 3, 16, 1, 9, 16])
    ids, matrix = all_at_once(ws)
    assert len(ids) < 68  # some media were embedded twice: the latest part wins
    loaded_ids, loaded = load_embeddings(ws)
    assert loaded_ids == ids and np.array_equal(loaded, matrix)
    for rows in (1, 2, 5, 16, 1000):
        got_ids: list[str] = []
        got = []
        for chunk_ids, chunk in iter_embeddings(ws, rows=rows):
            assert len(chunk_ids) == len(chunk) <= rows and chunk.dtype == np.float32
            got_ids += chunk_ids
            got.append(chunk)
        assert got_ids == ids and np.array_equal(np.concatenate(got), matrix)
    _text_ids, text = all_at_once(ws, "text_space")
    assert np.array_equal(load_embeddings(ws, array="text_space")[1], text)


def test_take_and_chunks_of_some_rows_read_by_position(ws):
    write_parts(ws, [7, 16, 3, 16, 1, 9, 16])
    _ids, matrix = all_at_once(ws)
    stream = EmbeddingStream(ws)
    rng = np.random.default_rng(1)
    anywhere = rng.choice(len(stream), 25)  # unordered, with repeats
    assert np.array_equal(stream.take(anywhere), matrix[anywhere])
    some = np.sort(rng.choice(len(stream), 11, replace=False))
    for rows in (1, 3, 100):
        got = list(stream.chunks(some, rows))
        assert np.array_equal(np.concatenate([p for p, _ in got]), some)
        assert np.array_equal(np.concatenate([v for _, v in got]), matrix[some])
    with pytest.raises(ValueError):
        next(stream.chunks(some[::-1]))
    assert stream.take(np.array([], np.int64)).shape == (0, 6)


def test_stream_keeps_only_the_given_media_in_storage_order(ws):
    write_parts(ws, [7, 16, 3, 16])
    ids, matrix = all_at_once(ws)
    wanted = set(ids[::3]) | {"not-embedded"}
    stream = EmbeddingStream(ws, media=wanted)
    assert stream.ids == [m for m in ids if m in wanted]
    assert np.array_equal(stream.take(np.arange(len(stream))), matrix[::3])
    assert np.array_equal(stream.positions_of(["not-embedded", ids[3]]), [1])


def test_no_embeddings_is_a_clear_error(ws):
    with pytest.raises(PicsiftError, match="picsift embed"):
        load_embeddings(ws)
    with pytest.raises(PicsiftError, match="picsift embed"):
        next(iter_embeddings(ws))


def test_index_is_extended_part_by_part_and_equals_a_fresh_build(ws, monkeypatch):
    monkeypatch.setattr(vector_index, "CHUNK_ROWS", 4)
    write_parts(ws, [16, 16], dim=8, pool=32, distinct=True)
    first = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure()
    assert first.index.ntotal == len(first.media_ids) == 32
    added = []
    monkeypatch.setattr(VectorIndex, "_build", lambda self, v: added.append("rebuilt"))
    write_parts(ws, [16, 5], dim=8, pool=21, seed=1, prefix="new",
                distinct=True)  # new media only: appended
    ids, matrix = all_at_once(ws)
    again = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure()
    assert added == [] and again.media_ids == ids and again.index.ntotal == len(ids) == 53
    monkeypatch.undo()
    fresh = VectorIndex.__new__(VectorIndex)
    fresh._build(matrix)
    queries = matrix[::5]
    assert np.array_equal(again.search(queries, 5)[1], fresh.index.search(queries, 5)[1])
    assert np.array_equal(again.vectors_of(np.array([3, 40])), matrix[[3, 40]])
    write_parts(ws, [4], dim=8, pool=32, seed=2)  # media embedded again: order changed, rebuilt
    ids, matrix = all_at_once(ws)
    rebuilt = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure()
    assert rebuilt.media_ids == ids and rebuilt.index.ntotal == len(ids)
    assert np.array_equal(rebuilt.vectors_of(np.arange(len(ids))), matrix)


def test_ivf_index_built_from_the_stream_equals_one_built_from_the_matrix(ws, monkeypatch):
    monkeypatch.setattr(vector_index, "FLAT_MAX", 100)
    monkeypatch.setattr(vector_index, "CHUNK_ROWS", 1000)
    write_parts(ws, [1000, 1000, 700], dim=16, pool=2700, distinct=True)
    ids, matrix = all_at_once(ws)
    streamed = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure()
    assert "IVF" in type(streamed.index).__name__ and streamed.index.ntotal == len(ids)
    in_memory = VectorIndex.__new__(VectorIndex)
    in_memory._build(matrix)
    sims_a, pos_a = streamed.search(matrix[:50], 5)
    sims_b, pos_b = in_memory.index.search(matrix[:50], 5)
    assert np.array_equal(pos_a, pos_b) and np.array_equal(sims_a, sims_b)
    # an IVF,SQ8 index cannot reconstruct (no direct map): stored vectors are read instead
    assert np.array_equal(streamed.vectors_of(np.array([5, 2000])), matrix[[5, 2000]])
