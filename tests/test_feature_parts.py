"""Feature parts and the cache of which media each part holds (ids.parquet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import picsift
from picsift.workspace import features as features_module
from picsift.workspace.features import IDS_CACHE, FeatureSet


def _set(tmp_path: Path) -> FeatureSet:
    ws = picsift.open(tmp_path / "corpus", workspace=tmp_path / "ws")
    features = FeatureSet(ws, "demo", "1", {"k": 1})
    features.register()
    return features


def _write(features: FeatureSet, ids: list[str]) -> Path:
    return features.write_part(pa.table({"media_id": ids, "value": [len(i) for i in ids]}),
                               {"v": np.arange(len(ids))})


def _read_every_part(features: FeatureSet) -> list[tuple[str, list[str]]]:
    return [(p.name, pq.read_table(p, columns=["media_id"]).column(0).to_pylist())
            for p in features.parts()]


def test_ids_cache_follows_parts_added_and_removed(tmp_path: Path) -> None:
    features = _set(tmp_path)
    assert features.ids_by_part() == [] and features.done_ids() == set()
    _write(features, ["a", "b"])
    _write(features, ["c"])
    assert [(p.name, ids) for p, ids in features.ids_by_part()] == _read_every_part(features)
    cache = features.dir / IDS_CACHE
    assert cache.exists() and features.parts() == sorted(features.dir.glob("part-*.parquet"))
    assert cache not in features.parts(), "the cache is not a part"
    assert features.read().num_rows == 3

    # a part added after the cache was written is found and the cache grows
    _write(features, ["d", "e"])
    assert features.done_ids() == {"a", "b", "c", "d", "e"}
    cached = pq.read_table(cache).column("part").to_pylist()
    assert sorted(cached) == [p.name for p in features.parts()]

    # parts that are gone (a replaced set) drop out of the cache
    features.replace_all(pa.table({"media_id": ["z"], "value": [1]}))
    assert features.done_ids() == {"z"}
    assert pq.read_table(cache).column("part").to_pylist() == [features.parts()[0].name]


def test_ids_cache_is_derived_data_never_trusted_blindly(tmp_path: Path) -> None:
    features = _set(tmp_path)
    _write(features, ["a", "b"])
    assert features.done_ids() == {"a", "b"}
    cache = features.dir / IDS_CACHE
    cache.write_bytes(b"not parquet at all")  # a torn or foreign file: rebuilt from the parts
    _write(features, ["c"])
    assert features.done_ids() == {"a", "b", "c"}
    assert pq.read_table(cache).num_rows == 2
    cache.unlink()  # deleted: rebuilt too
    assert features.done_ids() == {"a", "b", "c"} and cache.exists()
    # the cache is what is read: a cached part is not opened again
    pq.write_table(pa.table({"part": [p.name for p in features.parts()],
                             "media_ids": [["x"], ["y"]]}), cache)
    assert features.done_ids() == {"x", "y"}


def test_a_read_only_feature_folder_still_lists_its_ids(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    features = _set(tmp_path)
    _write(features, ["a"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(features_module.pq, "write_table", refuse)  # as a read-only folder does
    assert features.done_ids() == {"a"}  # the cache could not be written: no error
    assert not (features.dir / IDS_CACHE).exists()
    assert not list(features.dir.glob(".*.tmp")), "no temporary file left behind"
