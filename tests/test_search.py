"""Offline models, embeddings and search on real photos (the demo corpus's CC0 photos)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import picsift
from picsift.analyses import search as search_module
from picsift.analyses.embeddings import embed_workspace, load_embeddings
from picsift.analyses.search import search, semantic_duplicates
from picsift.analyses.vector_index import VectorIndex

DEMO = Path(picsift.__file__).parent / "demo" / "corpus"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("search")
    corpus = root / "corpus"
    shutil.copytree(DEMO / "photos", corpus / "photos")
    shutil.copytree(DEMO / "reposts", corpus / "reposts")
    ws = picsift.open(corpus, workspace=root / "ws")
    ws.scan(workers=2)
    summary = embed_workspace(ws, workers=2)
    return ws, summary, corpus, root


def _names(results: pd.DataFrame) -> list[str]:
    return [Path(p).name for p in results["path"]]


@pytest.mark.parametrize("query, expected", [
    ("a cat", {"chelsea.jpg", "chelsea_screenshot.png"}),
    ("a cup of coffee", {"coffee.jpg", "coffee_rotated.jpg"}),
    ("a rocket on a launch pad", {"rocket.jpg", "rocket_small.jpg"}),
    ("a man with a camera on a tripod", {"camera.jpg"}),
])
def test_text_query_ranks_the_right_photo_first(embedded, query, expected):
    ws, _summary, _corpus, _root = embedded
    results = search(ws, texts=[query], top=5)
    assert _names(results)[0] in expected, _names(results)


def test_image_query_returns_its_copies_first(embedded):
    ws, _summary, corpus, _root = embedded
    results = search(ws, images=[corpus / "photos" / "astronaut.jpg"], top=6)
    names = _names(results)
    assert names[0] == "astronaut.jpg" and results["score"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert {"astronaut_mirror.jpg", "astronaut_meme.jpg", "astronaut_crop.jpg"} <= set(names[:4])


def test_negative_query_pushes_results_away(embedded):
    ws, _summary, _corpus, _root = embedded
    plain = search(ws, texts=["a cat"], top=30)
    pushed = search(ws, texts=["a cat"], negative_texts=["a screenshot of a social media post"], top=30)
    rank = lambda frame, name: _names(frame).index(name)  # noqa: E731
    assert rank(pushed, "chelsea.jpg") <= rank(plain, "chelsea.jpg")
    assert pushed["score"].max() < plain["score"].max() + 1e-6


def test_semantic_duplicates_group_the_mirrored_astronaut(embedded):
    ws, _summary, _corpus, _root = embedded
    groups = semantic_duplicates(ws, threshold=0.93)
    astronaut = groups[groups["path"].str.endswith("astronaut.jpg")]
    assert len(astronaut) == 1
    members = set(groups[groups["group"] == astronaut["group"].iloc[0]]["path"].map(lambda p: Path(p).name))
    assert "astronaut_mirror.jpg" in members
    assert not members & {"coffee.jpg", "chelsea.jpg", "rocket.jpg"}


def _duplicates_before_streaming(ws, threshold: float, k: int = 20) -> pd.DataFrame:
    """semantic_duplicates as it was before streaming (commit 61b071a): vectors rebuilt one by
    one from the index, edges as Python tuples, igraph components. The reference."""
    import igraph as ig

    index = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure()
    n = len(index.media_ids)
    edges = []
    best = np.zeros(n, np.float32)
    for start in range(0, n, 4096):
        queries = np.stack([index.index.reconstruct(int(p))
                            for p in np.arange(start, min(n, start + 4096))])
        sims, pos = index.search(queries, min(k + 1, n))
        for row, (srow, prow) in enumerate(zip(sims, pos)):
            me = start + row
            for s, p in zip(srow, prow):
                if p >= 0 and p != me and s >= threshold:
                    edges.append((me, int(p)))
                    best[me] = max(best[me], s)
    groups = [c for c in ig.Graph(n=n, edges=edges).connected_components() if len(c) > 1]
    groups.sort(key=lambda c: -len(c))
    paths = search_module._paths(ws)
    rows = [{"group": g, "media_id": index.media_ids[v], "path": paths.get(index.media_ids[v]),
             "similarity": round(float(best[v]), 4)}
            for g, members in enumerate(groups, start=1) for v in members]
    return pd.DataFrame(rows, columns=["group", "media_id", "path", "similarity"])


@pytest.mark.parametrize("threshold", [0.93, 0.8, 0.6])
def test_streamed_semantic_duplicates_are_the_groups_of_before(embedded, monkeypatch, threshold):
    ws, _summary, _corpus, _root = embedded
    expected = _duplicates_before_streaming(ws, threshold)
    assert expected["group"].nunique() >= 2 or threshold > 0.9
    monkeypatch.setattr(search_module, "DUPLICATE_BATCH", 3)  # many query batches
    got = semantic_duplicates(ws, threshold=threshold)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_embeddings_do_not_depend_on_batching_or_workers(embedded, tmp_path):
    ws, summary, corpus, _root = embedded
    assert summary.embedded == len(list((corpus / "photos").iterdir())) + len(list((corpus / "reposts").iterdir())) - 2
    other = picsift.open(corpus, workspace=tmp_path / "ws")
    other.scan(workers=1)
    embed_workspace(other, workers=1, batch_size=3)
    ids_a, a = load_embeddings(ws)
    ids_b, b = load_embeddings(other)
    order = {m: i for i, m in enumerate(ids_b)}
    b = b[[order[m] for m in ids_a]]
    assert np.abs(a - b).max() < 2e-3  # float16 storage
    again = embed_workspace(other, workers=1)
    assert (again.embedded, again.already) == (0, len(ids_a))


def test_export_has_tags(embedded):
    ws, _summary, _corpus, _root = embedded
    table = ws.table()
    coffee = table[table["path"].str.endswith("photos/coffee.jpg")].iloc[0]
    assert coffee["embed_tag1"] == "espresso"
    assert 0.5 < coffee["embed_tag1_p"] <= 1.0


def test_cli_embed_search_and_models_list(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO / "photos", corpus)
    run = lambda *args: subprocess.run([sys.executable, "-m", "picsift", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    assert run("scan", str(corpus), "--no-progress").returncode == 0
    embedded = run("embed", str(corpus))
    assert embedded.returncode == 0, embedded.stderr
    queries = tmp_path / "queries.txt"
    queries.write_text("a cat\nespresso\n")
    found = run("search", str(corpus), "--queries", str(queries), "--top", "3", "--csv", str(tmp_path / "r.csv"))
    assert found.returncode == 0, found.stderr
    results = pd.read_csv(tmp_path / "r.csv")
    firsts = results[results["rank"] == 1].set_index("query")["path"].map(lambda p: Path(p).name)
    assert firsts.to_dict() == {"a cat": "chelsea.jpg", "espresso": "coffee.jpg"}
    assert (corpus / ".picsift" / "search.html").exists()
    listing = run("models", "list")
    assert listing.returncode == 0 and "efficientnet-lite0" in listing.stdout and "clip-vit-b32" in listing.stdout


@pytest.mark.skipif(not (SHARED / "imagededup").exists(), reason="needs ../shared/data (not in a user checkout)")
def test_image_query_finds_ukbench_copies_above_other_scenes(tmp_path):
    corpus = tmp_path / "c"
    shutil.copytree(SHARED / "imagededup" / "mixed_images", corpus / "mixed")
    shutil.copytree(SHARED / "imagededup" / "base_images", corpus / "base")
    ws = picsift.open(corpus, workspace=tmp_path / "ws")
    ws.scan(workers=2)
    embed_workspace(ws, workers=2)
    results = search(ws, images=[corpus / "mixed" / "ukbench00120.jpg"], top=5)
    top = set(_names(results)[:4])
    assert {"ukbench00120_hflip.jpg", "ukbench00120_resize.jpg", "ukbench00120_rotation.jpg"} <= top
