"""Clustering real photos (the demo corpus's CC0 photos, each varied 8 ways) and hand-coding.

The corpus: 4 sources x 8 variations (flip, crops, colour jitter, resize...). A clustering
that works puts the variations of one photo together and the photos apart.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageOps

import picsift
from conftest import DEMO, run_picsift
from picsift.analyses import clusters
from picsift.analyses.agreement import (cohens_kappa, compare_coders, krippendorff_alpha_nominal,
                                        percent_agreement)
from picsift.analyses.annotation import _pair_indices, stratified_sample, validation_pairs
from picsift.analyses.cluster_map import MAP_FLOOR, cluster_colour, map_sample
from picsift.analyses.cluster_metrics import pairwise_scores
from picsift.analyses.clusters import (ClusterOptions, Labels, cluster_workspace, hdbscan_labels,
                                       iterative_kmeans, media_paths, write_outputs)
from picsift.analyses.embeddings import EmbeddingStream, embed_workspace, load_embeddings
from picsift.errors import PicsiftError

SOURCES = ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg")


def variations(image: Image.Image, seed: int) -> list[Image.Image]:
    """The original and 7 edits a repost might show: mirror, crops, colour jitter, resizes."""
    rng = np.random.default_rng(seed)
    w, h = image.size

    def crop(share: float) -> Image.Image:
        cw, ch = int(w * share), int(h * share)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((x, y, x + cw, y + ch))

    def jitter(im: Image.Image) -> Image.Image:
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.7, 1.3))
        return ImageEnhance.Color(im).enhance(rng.uniform(0.5, 1.5))

    return [image, ImageOps.mirror(image), crop(0.8), crop(0.65), jitter(image),
            jitter(ImageOps.mirror(crop(0.85))), image.resize((w // 2, h // 2)),
            jitter(crop(0.75)).resize((w * 2 // 3, h * 2 // 3))]


def write_corpus(folder: Path) -> None:
    for seed, name in enumerate(SOURCES):
        image = Image.open(DEMO / "photos" / name).convert("RGB")
        for i, variant in enumerate(variations(image, seed)):
            path = folder / f"{Path(name).stem}_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            variant.save(path, quality=90)


def source_of(path: str) -> str:
    return Path(path).stem.rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cluster")
    write_corpus(root / "corpus")
    ws = picsift.open(root / "corpus", workspace=root / "ws")
    ws.scan(workers=2)
    embed_workspace(ws, workers=2)
    return ws, root


def scores(table: pd.DataFrame) -> tuple[float, float, float, float]:
    """Pairwise precision, recall, F1, ARI against the sources (unclustered: singletons)."""
    truth = {r.media_id: source_of(r.path) for r in table.itertuples()}
    predicted = {r.media_id: r.cluster for r in table.itertuples() if r.cluster > 0}
    return pairwise_scores(truth, predicted)


def test_iterative_kmeans_with_defaults_recovers_the_sources(embedded):
    ws, _root = embedded
    run = cluster_workspace(ws, ClusterOptions())
    assert len(run.table) == 32
    precision, _recall, _f1, ari = scores(run.table)
    assert ari > 0.7 and precision > 0.9, (ari, precision)
    kept = run.table[run.table["cluster"] > 0]
    assert (kept["silhouette"] >= 0.04).all()
    first = run.labels.rounds[0]
    tried = list(first.scores)
    assert tried[:2] == [5, 10]  # K = k_min, k_min + k_step, ...
    assert first.k == max(first.scores, key=first.scores.get)
    # the search stopped after `window` K values without a better mean silhouette
    assert len(tried) - 1 - tried.index(first.k) == 3 or tried[-1] + 5 >= first.sampled


def test_hdbscan_recovers_the_sources(embedded):
    ws, _root = embedded
    run = cluster_workspace(ws, ClusterOptions(algo="hdbscan"))
    precision, _recall, _f1, ari = scores(run.table)
    assert ari > 0.7 and precision > 0.9, (ari, precision)
    assert run.labels.rounds == [] and set(run.table["round"]) <= {0, 1}


def test_small_samples_peel_clusters_over_several_rounds(embedded):
    ws, _root = embedded
    options = ClusterOptions(sample=12, stop_size=4, threshold=0.3, seed=3)
    run = cluster_workspace(ws, options)
    rounds = run.labels.rounds
    assert len(rounds) >= 2
    assert all(r.sampled <= 12 for r in rounds)
    assert rounds[1].remaining == rounds[0].remaining - rounds[0].clustered
    kept = run.table[run.table["cluster"] > 0]
    assert (kept["silhouette"] >= 0.3).all()
    assert kept["round"].nunique() >= 2
    assert scores(run.table)[0] > 0.9  # what is peeled off is pure
    unclustered = run.table[run.table["cluster"] == -1]
    assert (unclustered["round"] == 0).all() and unclustered["silhouette"].isna().all()


def test_outputs_and_export_show_the_latest_run(embedded, tmp_path):
    ws, _root = embedded
    kmeans = cluster_workspace(ws, ClusterOptions())
    cluster_workspace(ws, ClusterOptions(algo="hdbscan"))
    again = cluster_workspace(ws, ClusterOptions())  # same params as the first: still the latest
    files = write_outputs(ws, again, tmp_path / "out")

    csv = pd.read_csv(files["csv"])
    assert list(csv.columns) == ["path", "media_id", "cluster", "silhouette", "round"]
    assert len(csv) == 32 and csv["path"].map(lambda p: Path(p).exists()).all()
    exported = ws.table().set_index("media_id")["clusters_cluster"]
    assert exported[csv["media_id"]].tolist() == csv["cluster"].tolist()
    assert sorted(csv["cluster"]) == sorted(kmeans.table["cluster"])

    page = files["html"].read_text()
    clusters = sorted(c for c in csv["cluster"].unique() if c > 0)
    for c in clusters:
        assert f"cluster {c}</b> · {(csv['cluster'] == c).sum()} images" in page
    assert page.count("data:image/jpeg;base64,") == 32
    assert "data:image/png;base64," in page  # the map, inlined

    with Image.open(files["map"]) as png:
        colours = {colour for _count, colour in png.convert("RGB").getcolors(1_000_000)}
    assert {cluster_colour(int(c)) for c in clusters} <= colours


def _kmeans_before_streaming(vectors: np.ndarray, options: ClusterOptions) -> Labels:
    """iterative_kmeans as it was when every vector was in memory (commit 61b071a), frozen
    here as the reference the streamed procedure must match."""
    from sklearn.metrics import silhouette_samples

    n = len(vectors)
    result = Labels(np.full(n, -1, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    rng = np.random.default_rng(options.seed)
    remaining = np.arange(n)
    next_id = 1
    for round_no in range(1, options.max_rounds + 1):
        if len(remaining) < options.stop_size or len(remaining) < 3:
            break
        picked = np.sort(rng.choice(remaining, min(options.sample, len(remaining)), replace=False))
        fit = clusters._search_k(vectors[picked], options, options.seed + round_no)
        if fit is None:
            break
        model, score, scores = fit
        per_point = silhouette_samples(vectors[picked], model.labels_)
        assigned = model.predict(vectors[remaining])
        cohesive = []
        for c in range(model.n_clusters):
            members = model.labels_ == c
            if members.any() and per_point[members].mean() >= options.threshold:
                cohesive.append((int((assigned == c).sum()), c, float(per_point[members].mean())))
        kept_rows = 0
        for _size, c, silhouette in sorted(cohesive, key=lambda t: (-t[0], t[1])):
            rows = remaining[assigned == c]
            result.cluster[rows], result.round[rows] = next_id, round_no
            result.silhouette[rows] = silhouette
            next_id += 1
            kept_rows += len(rows)
        result.rounds.append(clusters.RoundLog(round_no, len(remaining), len(picked),
                                               model.n_clusters, round(score, 4), scores,
                                               len(cohesive), kept_rows))
        if not cohesive:
            break
        remaining = remaining[result.cluster[remaining] == -1]
    return result


def _hdbscan_before_streaming(vectors: np.ndarray, options: ClusterOptions) -> Labels:
    """hdbscan_labels as it was before streaming (commit 61b071a), the reference."""
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import silhouette_samples

    n = len(vectors)
    result = Labels(np.full(n, -1, np.int64), np.full(n, np.nan), np.zeros(n, np.int64))
    raw = HDBSCAN(min_cluster_size=options.min_cluster_size, min_samples=options.min_samples,
                  copy=True).fit(vectors).labels_
    found, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = sorted(zip(found, sizes), key=lambda t: (-t[1], t[0]))
    for new, (old, _size) in enumerate(order, start=1):
        result.cluster[raw == old] = new
    result.round[result.cluster > 0] = 1
    clustered = np.flatnonzero(result.cluster > 0)
    if len(order) >= 2:
        rng = np.random.default_rng(options.seed)
        if len(clustered) > options.sample:
            clustered = np.sort(rng.choice(clustered, options.sample, replace=False))
        labels = result.cluster[clustered]
        if len(np.unique(labels)) >= 2:
            per_point = silhouette_samples(vectors[clustered], labels)
            for c in np.unique(labels):
                result.silhouette[result.cluster == c] = float(per_point[labels == c].mean())
    return result


def _same(a: Labels, b: Labels) -> bool:
    return (np.array_equal(a.cluster, b.cluster) and np.array_equal(a.round, b.round)
            and np.array_equal(a.silhouette, b.silhouette, equal_nan=True) and a.rounds == b.rounds)


def _in_memory(ws) -> tuple[list[str], np.ndarray]:
    """What cluster_workspace clustered before streaming: every embedding, then the images."""
    ids, vectors = load_embeddings(ws)
    paths = media_paths(ws)
    keep = [i for i, m in enumerate(ids) if m in paths]
    return [ids[i] for i in keep], vectors[keep]


@pytest.mark.parametrize("options", [
    ClusterOptions(),
    ClusterOptions(sample=12, stop_size=4, threshold=0.3, seed=3),  # several rounds
    ClusterOptions(sample=10, k_min=2, k_step=1, stop_size=3, threshold=0.2, seed=5),
], ids=["defaults", "peeling", "small-k"])
def test_streamed_kmeans_gives_exactly_the_in_memory_labels(embedded, options, monkeypatch):
    ws, _root = embedded
    ids, vectors = _in_memory(ws)
    expected = _kmeans_before_streaming(vectors, options)
    stream = EmbeddingStream(ws, media=media_paths(ws))
    assert stream.ids == ids and len(stream.parts) >= 2
    for rows in (1, 3, 7, 256):  # 3 rows a chunk: 11 chunks, across part boundaries
        assert _same(iterative_kmeans(stream, options, chunk_rows=rows), expected), rows
    assert _same(iterative_kmeans(vectors, options), expected)  # a matrix still works
    # end to end: the stored table of a streamed run with tiny chunks is the in-memory one
    # on the rows in media-id order (cluster_workspace samples in that canonical order)
    order = np.argsort(np.array(ids, dtype=object), kind="stable")
    ids = [ids[i] for i in order]
    expected = _kmeans_before_streaming(vectors[order], options)
    monkeypatch.setattr(clusters, "CHUNK_ROWS", 3)
    run = cluster_workspace(ws, options)
    by_media = run.table.set_index("media_id")
    assert by_media.loc[ids, "cluster"].tolist() == expected.cluster.tolist()
    assert by_media.loc[ids, "round"].tolist() == expected.round.tolist()
    assert np.allclose(by_media.loc[ids, "silhouette"], np.round(expected.silhouette, 4),
                       equal_nan=True)


def test_hdbscan_up_to_its_limit_is_the_in_memory_hdbscan(embedded):
    ws, _root = embedded
    _ids, vectors = _in_memory(ws)
    options = ClusterOptions(algo="hdbscan", sample=10)
    stream = EmbeddingStream(ws, media=media_paths(ws))
    assert _same(hdbscan_labels(stream, options, chunk_rows=3),
                 _hdbscan_before_streaming(vectors, options))


def test_hdbscan_above_its_limit_fits_a_sample_and_joins_only_close_images(embedded, monkeypatch):
    ws, _root = embedded
    ids, vectors = _in_memory(ws)
    monkeypatch.setattr(clusters, "HDBSCAN_FIT_MAX", 24)
    options = ClusterOptions(algo="hdbscan", min_cluster_size=3)
    run = cluster_workspace(ws, options)
    assert run.n_clusters >= 2
    assert scores(run.table)[0] > 0.9  # what joins a cluster joins the right one
    # the rule, checked by brute force: an image outside the fitted sample takes the cluster
    # of its nearest sample image when that one is clustered and both its distance to it and
    # its own core distance are within the cluster's largest core distance; else noise
    k = options.min_cluster_size
    fit = np.sort(np.random.default_rng([options.seed, len(ids)]).choice(len(ids), 24,
                                                                         replace=False))
    cluster_of = run.table.set_index("media_id").loc[ids, "cluster"].to_numpy()
    sample = vectors[fit]
    core = np.sort(np.linalg.norm(sample[:, None] - sample[None], axis=2), axis=1)[:, k - 1]
    reach = {c: core[cluster_of[fit] == c].max() for c in set(cluster_of[fit]) if c > 0}
    joined = []
    for row in np.setdiff1d(np.arange(len(ids)), fit):
        gaps = np.sort(np.linalg.norm(sample - vectors[row], axis=1))
        nearest = fit[np.argmin(np.linalg.norm(sample - vectors[row], axis=1))]
        c = cluster_of[nearest]
        inside = c > 0 and max(gaps[0], gaps[k - 2]) <= reach[c] + 1e-5
        assert cluster_of[row] == (c if inside else -1), row
        joined.append(inside)
    assert any(joined) and not all(joined)  # 8 images outside the fit: some joined


def test_map_sample_is_bounded_seeded_and_shows_every_cluster():
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1, 2, 3], 50_000, p=[0.5, 0.4, 0.0996, 0.0004])  # cluster 3: ~20
    rows = map_sample(labels, 2_000, seed=1)
    assert len(rows) == 2_000 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, map_sample(labels, 2_000, seed=1))
    assert (labels[rows] == 3).sum() >= min(MAP_FLOOR, (labels == 3).sum())
    assert np.array_equal(map_sample(labels[:100], 2_000), np.arange(100))
    many = np.arange(5_000)  # more clusters than dots: still bounded
    assert len(map_sample(many, 300)) == 300


def test_the_map_of_a_large_run_is_drawn_from_a_bounded_sample(embedded, monkeypatch, tmp_path):
    ws, _root = embedded
    monkeypatch.setattr(clusters, "MAP_MAX_POINTS", 10)
    run = cluster_workspace(ws, ClusterOptions())
    assert len(run.map_rows) == 10 and run.map_vectors.shape == (10, 1280)
    ids, vectors = _in_memory(ws)
    position = {m: i for i, m in enumerate(ids)}
    drawn = [position[m] for m in run.table["media_id"].to_numpy()[run.map_rows]]
    assert np.array_equal(run.map_vectors, vectors[drawn])
    files = write_outputs(ws, run, tmp_path / "out")
    assert len(pd.read_csv(files["csv"])) == 32  # the table keeps every image
    assert files["map"].exists()


def test_stratified_sample_counts_copies_and_seed(embedded, tmp_path):
    ws, _root = embedded
    cluster_workspace(ws, ClusterOptions(algo="hdbscan"))
    sizes = ws.table()["clusters_cluster"].value_counts()
    sample = stratified_sample(ws, 3, tmp_path / "a", seed=1)
    expected = {c: min(3, n) for c, n in sizes.items() if c > 0}
    assert sample.groupby("cluster").size().to_dict() == expected
    written = pd.read_csv(tmp_path / "a" / "sample.csv", keep_default_na=False)
    assert list(written.columns) == ["path", "media_id", "cluster", "file", "code"]
    assert (written["code"] == "").all()
    for row in written.itertuples():
        assert (tmp_path / "a" / "images" / row.file).read_bytes() == Path(row.path).read_bytes()
    assert len(list((tmp_path / "a" / "images").iterdir())) == len(written)

    same = stratified_sample(ws, 3, tmp_path / "b", seed=1)
    other = stratified_sample(ws, 3, tmp_path / "c", seed=2)
    assert same["path"].tolist() == sample["path"].tolist()
    assert other["path"].tolist() != sample["path"].tolist()
    assert len(stratified_sample(ws, 100, tmp_path / "all")) == int(sizes[sizes.index > 0].sum())
    with pytest.raises(PicsiftError, match="already exists"):
        stratified_sample(ws, 3, tmp_path / "a", seed=5)


def test_validation_pairs_are_within_clusters_distinct_and_seeded(embedded, tmp_path):
    ws, _root = embedded
    cluster_workspace(ws, ClusterOptions(algo="hdbscan"))
    cluster_of = dict(zip(ws.table()["path"], ws.table()["clusters_cluster"]))
    pairs = validation_pairs(ws, 20, tmp_path / "p.csv", seed=7)
    written = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(written.columns) == ["pair", "path_a", "path_b", "cluster", "same"]
    assert len(written) == 20 and (written["same"] == "").all()
    assert all(cluster_of[a] == cluster_of[b] == c
               for a, b, c in zip(written["path_a"], written["path_b"], written["cluster"]))
    unordered = {frozenset(p) for p in zip(written["path_a"], written["path_b"])}
    assert len(unordered) == 20 and all(len(p) == 2 for p in unordered)
    assert validation_pairs(ws, 20, tmp_path / "q.csv", seed=7).equals(pairs)
    assert not validation_pairs(ws, 20, tmp_path / "r.csv", seed=8).equals(pairs)
    sizes = pd.Series(cluster_of).value_counts()
    every = sum(n * (n - 1) // 2 for c, n in sizes.items() if c > 0)
    assert len(validation_pairs(ws, 10_000, tmp_path / "all.csv")) == every


def test_pairs_of_big_clusters_are_drawn_without_listing_them():
    sizes = np.array([3000, 2000, 2])  # 7.5 million pairs: sampled, not enumerated
    pairs = _pair_indices(sizes, 500, np.random.default_rng(0))
    assert len(set(pairs)) == 500
    assert all(0 <= i < j < sizes[c] for c, i, j in pairs)
    share_first = sum(c == 0 for c, _i, _j in pairs) / 500  # 4.5M of 6.5M pairs: ~0.69
    assert 0.6 < share_first < 0.78


# Two coders, ten items, codes a/b/c (by hand):
#   coder 1: a a a b b b c c a b      coder 2: a a b b b c c c a a
#   agreement: items 1 2 4 5 7 8 9 alike -> p_o = 7/10 = 0.7
#   coder 1 shares a .4 b .4 c .2; coder 2 shares a .4 b .3 c .3
#   p_e = .4*.4 + .4*.3 + .2*.3 = .34 -> kappa = (.7 - .34) / (1 - .34) = .36/.66 = 6/11
#   alpha: n = 20 values; n_a = 8, n_b = 7, n_c = 5; 3 disagreeing units each add
#   o_ck + o_kc = 2 -> sum_{c!=k} o_ck = 6; sum_{c!=k} n_c n_k = 20^2 - (64+49+25) = 262
#   alpha = 1 - (n - 1) * 6 / 262 = 1 - 114/262 = 74/131
CODER_1 = "a a a b b b c c a b".split()
CODER_2 = "a a b b b c c c a a".split()


def test_kappa_and_alpha_match_the_hand_computation():
    assert percent_agreement(CODER_1, CODER_2) == pytest.approx(0.7)
    assert cohens_kappa(CODER_1, CODER_2) == pytest.approx(6 / 11)
    assert krippendorff_alpha_nominal(list(zip(CODER_1, CODER_2))) == pytest.approx(74 / 131)
    assert cohens_kappa(CODER_1, CODER_1) == pytest.approx(1.0)
    assert math.isnan(cohens_kappa(["a"] * 4, ["a"] * 4))
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"]] * 4))


def test_alpha_with_four_coders_and_missing_values_matches_krippendorff():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: 0.743
    coders = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3",
              ". 3 3 3 2 3 4 2 2 5 1 .", "1 2 3 3 2 4 4 1 2 5 1 ."]
    units = [[v for v in unit if v != "."] for unit in zip(*(c.split() for c in coders))]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_compare_coders_uses_only_items_both_coded(tmp_path):
    paths = [f"img{i}.jpg" for i in range(12)]
    first = pd.DataFrame({"path": paths, "code": [*CODER_1, "a", "b"]})
    second = pd.DataFrame({"path": paths, "code": [*CODER_2, "", " "]})
    first.to_csv(tmp_path / "one.csv", index=False)
    second.sample(frac=1, random_state=0).to_csv(tmp_path / "two.csv", index=False)  # order differs
    result = compare_coders(tmp_path / "one.csv", tmp_path / "two.csv")
    assert (result.n_items, result.only_first, result.only_second) == (10, 2, 0)
    assert result.kappa == pytest.approx(6 / 11) and result.alpha == pytest.approx(74 / 131)
    assert result.codes == ["a", "b", "c"]
    with pytest.raises(PicsiftError, match=r"lacks the column\(s\) 'label'"):
        compare_coders(tmp_path / "one.csv", tmp_path / "two.csv", column="label")


def test_cli_cluster_sample_pairs_agreement_end_to_end(tmp_path):
    corpus = tmp_path / "corpus"
    for seed, name in enumerate(SOURCES[:3]):
        image = Image.open(DEMO / "photos" / name).convert("RGB")
        for i, variant in enumerate(variations(image, seed)[:6]):
            corpus.mkdir(exist_ok=True)
            variant.save(corpus / f"{Path(name).stem}_{i}.jpg", quality=90)
    assert run_picsift("scan", corpus, "--workers", "2", "--no-progress").returncode == 0
    out = tmp_path / "out"
    clustered = run_picsift("cluster", corpus, "--k-min", "2", "--k-step", "1", "--stop-size", "6",
                            "--seed", "1", "--out", out, "--workers", "1", timeout=300)
    assert clustered.returncode == 0, clustered.stderr
    assert "round 1:" in clustered.stdout
    table = pd.read_csv(out / "clusters.csv")
    assert len(table) == 18  # embedded first: the workspace had no embeddings
    assert scores(table)[3] > 0.7
    assert (out / "clusters.html").exists() and (out / "clusters_map.png").exists()

    sampled = run_picsift("sample", corpus, "--per-cluster", "2", "--seed", "4")
    assert sampled.returncode == 0, sampled.stderr
    sample = pd.read_csv(corpus / ".picsift" / "clusters" / "sample" / "sample.csv")
    n_clusters = table.loc[table["cluster"] > 0, "cluster"].nunique()
    assert len(sample) == 2 * n_clusters

    paired = run_picsift("validate-pairs", corpus, "--n", "5", "--seed", "4",
                         "--out", tmp_path / "pairs.csv")
    assert paired.returncode == 0, paired.stderr
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert len(pairs) == 5
    coder_1 = pairs.assign(same=["yes", "yes", "no", "yes", "no"])
    coder_2 = pairs.assign(same=["yes", "no", "no", "yes", "no"])
    coder_1.to_csv(tmp_path / "c1.csv", index=False)
    coder_2.to_csv(tmp_path / "c2.csv", index=False)
    # p_o = 4/5; shares yes .6/.4, no .4/.6 -> p_e = .48, kappa = .32/.52 = 0.615
    agreed = run_picsift("agreement", tmp_path / "c1.csv", tmp_path / "c2.csv",
                         "--column", "same", "--key", "pair")
    assert agreed.returncode == 0, agreed.stderr
    assert "80.0%" in agreed.stdout and "0.615" in agreed.stdout


def test_cli_agreement_error_is_one_line(cli, tmp_path):
    pd.DataFrame({"path": ["a.jpg"], "same": ["yes"]}).to_csv(tmp_path / "c.csv", index=False)
    result = cli("agreement", tmp_path / "c.csv", tmp_path / "c.csv")
    assert result.returncode == 2
    message = f"error: {tmp_path / 'c.csv'} lacks the column(s) 'code'"
    assert result.stderr.strip().splitlines() == [message]


@pytest.mark.parametrize("sample", [1000, 12])
def test_clusters_do_not_depend_on_the_order_embeddings_were_stored(embedded, tmp_path, sample):
    """Engines store batches in the order workers finish them: reversing the parts' order
    must give the same clusters (samples are drawn and fed to k-means by media id)."""
    import shutil

    ws, root = embedded
    copy = tmp_path / "ws"
    shutil.copytree(ws.dir, copy)
    reordered = picsift.open(root / "corpus", workspace=copy)
    options = ClusterOptions(sample=sample, stop_size=5)
    stored = EmbeddingStream(reordered)
    parts = [p for p, _rows in stored.parts]
    assert len(parts) >= 2
    names = [p.name for p in parts]
    for part, name in zip(parts, reversed(names)):  # swap names pairwise via temporary names
        part.rename(part.with_name("tmp-" + name))
        part.with_suffix(".npz").rename(part.with_name("tmp-" + name).with_suffix(".npz"))
    for name in names:
        tmp = parts[0].parent / ("tmp-" + name)
        tmp.rename(tmp.with_name(name))
        tmp.with_suffix(".npz").rename(tmp.with_name(name).with_suffix(".npz"))
    assert EmbeddingStream(reordered).ids != stored.ids  # really another storage order
    before = cluster_workspace(ws, options).table.set_index("media_id")["cluster"]
    after = cluster_workspace(reordered, options).table.set_index("media_id")["cluster"]
    assert (before > 0).sum() >= 10
    assert before.sort_index().equals(after.sort_index())
