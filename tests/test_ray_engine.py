"""--engine ray: a local Ray cluster stores exactly what the local engine stores, and a worker
that dies mid-run loses nothing (retried) while an item that always kills it is reported alone."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import DEMO

import picsift
from picsift.engine import ProgressReporter, make_engine
from picsift.errors import PicsiftError

ray = pytest.importorskip("ray", reason="the Ray engine tests need ray: pip install 'picsift[ray]'")

MEDIA_COLUMNS = ("media_id, kind, format, width, height, mode, n_frames, file_size, truncated, "
                 "exif_datetime, exif_make, exif_model, exif_orientation, gps_lat, gps_lon")


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A private 2-CPU Ray cluster for this module, shut down after."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # Tasks defined in this test module are shipped by value (workers cannot import tests/).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


# ------------------------------------------------------------------ same results
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos and their reposts (crops, mirror, meme, screenshot, sepia...)."""
    root = tmp_path_factory.mktemp("ray-corpus") / "corpus"
    shutil.copytree(DEMO / "photos", root / "photos")
    shutil.copytree(DEMO / "reposts", root / "reposts")
    return root


def _run_all(corpus: Path, workspace: Path, engine: str) -> picsift.Workspace:
    from picsift.analyses.embeddings import embed_workspace

    ws = picsift.open(corpus, workspace=workspace)
    summary = ws.scan(workers=2, engine=engine, batch_size=4)
    assert summary.errors == 0 and summary.images == 19
    ws.copies(workers=2, engine=engine, batch_size=4)
    embed_workspace(ws, workers=2, batch_size=4, engine=engine)
    return ws


def _arrays(features: Any, names: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """media_id -> {array name: that media's rows}, whatever the order of parts and rows."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for part in features.parts():
        ids = pq.read_table(part, columns=["media_id"]).column(0).to_pylist()
        arrays = features.arrays_of(part)
        offsets = arrays.get("offsets")
        for i, media_id in enumerate(ids):
            if offsets is not None:
                out[media_id] = {n: arrays[n][offsets[i]:offsets[i + 1]] for n in names}
            else:
                out[media_id] = {n: arrays[n][i] for n in names}
    return out


def _clusters(ws: picsift.Workspace) -> set[frozenset[str]]:
    from picsift.analyses.copies.options import CopiesOptions
    from picsift.analyses.copies.pipeline import clusters_feature_set

    table = clusters_feature_set(ws, CopiesOptions()).read().to_pandas()
    return {frozenset(g["media_id"]) for _, g in table.groupby("cluster_id")}


def test_ray_engine_stores_what_the_local_engine_stores(cluster: Any, corpus: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from picsift.analyses.copies.extract import sift_feature_set
    from picsift.analyses.copies.options import CopiesOptions
    from picsift.analyses.embeddings import embedding_set
    from picsift.engine.ray_engine import RayEngine

    local = _run_all(corpus, tmp_path / "ws-local", "local")
    tasks: list[str] = []
    ray_map = RayEngine.map
    monkeypatch.setattr(RayEngine, "map", lambda self, task, *a: (
        tasks.append(task.func.__name__), ray_map(self, task, *a))[1])
    remote = _run_all(corpus, tmp_path / "ws-ray", "ray")
    # scan, SIFT, copy search + verification, embeddings: all ran as Ray tasks
    assert tasks == ["scan_batch", "extract_batch", "query_items", "embed_batch"]

    query = f"SELECT {MEDIA_COLUMNS} FROM media ORDER BY media_id"
    assert [dict(r) for r in local.query(query)] == [dict(r) for r in remote.query(query)]
    files = "SELECT path, media_id, kind, size FROM files ORDER BY path"
    assert [dict(r) for r in local.query(files)] == [dict(r) for r in remote.query(files)]

    n_media = len(local.query("SELECT media_id FROM media"))  # exact copies are one media
    sift_local = _arrays(sift_feature_set(local, CopiesOptions()), ("keypoints", "descriptors"))
    sift_ray = _arrays(sift_feature_set(remote, CopiesOptions()), ("keypoints", "descriptors"))
    assert sift_local.keys() == sift_ray.keys() and len(sift_local) == n_media
    for media_id, arrays in sift_local.items():
        for name, values in arrays.items():
            assert np.array_equal(values, sift_ray[media_id][name]), (media_id, name)

    emb_local = _arrays(embedding_set(local), ("embedding",))
    emb_ray = _arrays(embedding_set(remote), ("embedding",))
    assert emb_local.keys() == emb_ray.keys() and len(emb_local) == n_media
    for media_id, arrays in emb_local.items():
        assert np.allclose(arrays["embedding"], emb_ray[media_id]["embedding"], atol=1e-3)

    clusters_local, clusters_ray = _clusters(local), _clusters(remote)
    assert clusters_local == clusters_ray
    assert any(len(c) >= 3 for c in clusters_local)  # the reposts really were found


# ------------------------------------------------------------------ crashes
def _double_or_die(poison: int, marker: str, batch: list[int]) -> list[int]:
    """Dies (SIGKILL, like the OOM killer) on ``poison``; dies once on item 5 if ``marker``."""
    if poison in batch:
        os.kill(os.getpid(), signal.SIGKILL)
    if 5 in batch and marker:
        try:
            os.remove(marker)  # atomic: only the first attempt dies
        except FileNotFoundError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return [x * 2 for x in batch]


def _map(task: Any, items: list[int]) -> tuple[dict[int, int], list[list[int]]]:
    stored: dict[int, int] = {}
    failed: list[list[int]] = []

    def on_result(batch: list[int], results: list[int]) -> None:
        stored.update(zip(batch, results))

    def on_failure(batch: list[int], exc: BaseException) -> None:
        assert "crashed its Ray worker" in str(exc)
        failed.append(batch)

    batches = [items[i : i + 4] for i in range(0, len(items), 4)]
    with ProgressReporter("test", len(items), enabled=False) as progress:
        make_engine("ray").map(task, batches, on_result, on_failure, progress)
    return stored, failed


def test_killed_worker_is_retried_and_nothing_is_lost(cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "kill-once"
    marker.write_text("")
    stored, failed = _map(functools.partial(_double_or_die, -1, str(marker)), list(range(12)))
    assert not marker.exists()  # a worker really died
    assert failed == []
    assert stored == {x: 2 * x for x in range(12)}


def test_item_that_always_kills_its_worker_is_reported_alone(cluster: Any) -> None:
    stored, failed = _map(functools.partial(_double_or_die, 6, ""), list(range(12)))
    assert failed == [[6]]
    assert stored == {x: 2 * x for x in range(12) if x != 6}


def _raise_on_three(batch: list[int]) -> list[int]:
    if 3 in batch:
        raise ValueError("bad item 3")
    return batch


def test_task_exception_reports_the_batch_with_its_own_error(cluster: Any) -> None:
    errors: list[tuple[list[int], BaseException]] = []
    stored: list[int] = []
    with ProgressReporter("test", 8, enabled=False) as progress:
        make_engine("ray").map(_raise_on_three, [[0, 1], [2, 3], [4, 5], [6, 7]],
                               lambda b, r: stored.extend(r),
                               lambda b, e: errors.append((b, e)), progress)
    assert sorted(stored) == [0, 1, 4, 5, 6, 7]
    assert [b for b, _ in errors] == [[2, 3]]
    assert isinstance(errors[0][1], ValueError) and "bad item 3" in str(errors[0][1])


# ------------------------------------------------------------------ no ray installed
def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(PicsiftError, match=r"pip install 'picsift\[ray\]'"):
        make_engine("ray")


def test_unknown_engine_and_stray_address_are_refused() -> None:
    with pytest.raises(PicsiftError, match="unknown engine"):
        make_engine("spark")
    with pytest.raises(PicsiftError, match="needs --engine ray"):
        make_engine("local", "auto")


def _slow(batch: list[int]) -> list[int]:
    import time

    time.sleep(0.5)
    return batch


def test_ctrl_c_cancels_outstanding_tasks(cluster: Any) -> None:
    stored: list[list[int]] = []

    def on_result(batch: list[int], results: list[int]) -> None:
        stored.append(batch)
        raise KeyboardInterrupt  # as if Ctrl-C arrived while storing the first batch

    with ProgressReporter("test", 40, enabled=False) as progress:
        with pytest.raises(KeyboardInterrupt):
            make_engine("ray").map(_slow, [[i] for i in range(40)], on_result,
                                   lambda b, e: None, progress)
    assert len(stored) == 1
    # the cluster is usable again at once (cancelled tasks do not block new ones)
    again: list[int] = []
    with ProgressReporter("test", 2, enabled=False) as progress:
        make_engine("ray").map(_slow, [[1], [2]], lambda b, r: again.extend(r),
                               lambda b, e: None, progress)
    assert sorted(again) == [1, 2]


def test_colors_and_faces_on_ray_match_the_local_engine(cluster: Any, tmp_path: Path) -> None:
    """The other per-image maps (colors, faces; text works the same way) run as Ray tasks
    with the local engine's results."""
    import pandas as pd

    from picsift.analyses.colors import analyse_colors, colors_table
    from picsift.analyses.faces import FaceOptions, detect_faces, faces_table

    source = tmp_path / "src"
    source.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "camera.jpg"):
        shutil.copy(DEMO / "photos" / name, source / name)
    results = {}
    for engine in ("local", "ray"):
        ws = picsift.open(source, workspace=tmp_path / f"ws-{engine}")
        ws.scan(workers=2)
        analyse_colors(ws, workers=2, engine=engine)
        detect_faces(ws, FaceOptions(emotion=True, mask=False), workers=2, engine=engine)
        colors = colors_table(ws, hue=False).drop(columns=["path"]).sort_values("media_id")
        faces = faces_table(ws).drop(columns=["path"]).sort_values(["media_id", "face"])
        results[engine] = (colors.reset_index(drop=True), faces.reset_index(drop=True))
    pd.testing.assert_frame_equal(results["local"][0], results["ray"][0])
    pd.testing.assert_frame_equal(results["local"][1], results["ray"][1])
    assert len(results["ray"][1]) >= 2  # the astronaut and the cameraman
