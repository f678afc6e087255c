"""Copy detection on real photos (the demo corpus's CC0 photos) and their edited copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

import picsift
from picsift.analyses.cluster_metrics import evaluate_clusters, pairwise_scores

PHOTOS = Path(picsift.__file__).parent / "demo" / "corpus" / "photos"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ["astronaut", "coffee", "chelsea", "rocket"]
DISTRACTORS = ["hubble", "retina", "camera"]


def _photo(name: str) -> Image.Image:
    path = next(PHOTOS.glob(f"{name}.*"))
    return Image.open(path).convert("RGB")


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _crop_area(img: Image.Image, share: float, rng: np.random.Generator) -> Image.Image:
    side = np.sqrt(share)
    w, h = int(img.width * side), int(img.height * side)
    x = int(rng.integers(0, img.width - w))
    y = int(rng.integers(0, img.height - h))
    return img.crop((x, y, x + w, y + h))


def _caption(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    draw.text((10, 8), "WHEN IT IS MONDAY", font=_font(out.width // 12), fill="white",
              stroke_width=3, stroke_fill="black")
    return out


def _screenshot(img: Image.Image) -> Image.Image:
    photo = img.resize((360, round(360 * img.height / img.width)))
    canvas = Image.new("RGB", (460, photo.height + 200), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((20, 20), "Someone @someone - 3h", font=_font(16), fill="black")
    draw.text((20, 45), "you will not believe this", font=_font(16), fill="black")
    canvas.paste(photo, (50, 80))
    draw.text((20, photo.height + 100), "Reply  Repost  Like  Share", font=_font(15), fill="grey")
    return canvas


def _collage(images: list[Image.Image]) -> Image.Image:
    tiles = [im.resize((300, 225)) for im in images]
    canvas = Image.new("RGB", (600, 450))
    for i, tile in enumerate(tiles):
        canvas.paste(tile, ((i % 2) * 300, (i // 2) * 225))
    return canvas


def make_copy_corpus(root: Path) -> pd.DataFrame:
    """Originals, eight kinds of edited copies of each source, and distractors; truth table."""
    rng = np.random.default_rng(7)
    rows = []

    def save(img: Image.Image, name: str, truth: str, transform: str, quality: int = 85) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, "JPEG", quality=quality)
        rows.append({"path": name, "truth": truth, "transform": transform})

    for source in SOURCES:
        img = _photo(source)
        save(img, f"originals/{source}.jpg", source, "original", 92)
        save(_crop_area(img, 0.3, rng).resize((480, 360)), f"copies/{source}_crop30.jpg", source, "crop")
        save(ImageOps.mirror(img), f"copies/{source}_mirror.jpg", source, "mirror")
        save(img.rotate(20, expand=True, fillcolor="black"), f"copies/{source}_rot20.jpg", source, "rotation")
        save(img, f"copies/{source}_q15.jpg", source, "jpeg15", 15)
        save(ImageOps.grayscale(img).convert("RGB"), f"copies/{source}_grey.jpg", source, "grey")
        save(_caption(img), f"copies/{source}_meme.jpg", source, "caption")
        save(_screenshot(img), f"copies/{source}_screenshot.jpg", source, "screenshot")
    for name in DISTRACTORS:
        save(_photo(name), f"distractors/{name}.jpg", name, "distractor")
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("copies")
    corpus = root / "corpus"
    truth = make_copy_corpus(corpus)
    truth.to_csv(root / "truth.csv", index=False)
    ws = picsift.open(corpus, workspace=root / "ws")
    ws.scan(workers=2)
    result = ws.copies(workers=2)
    return ws, result, truth, corpus, root


def _cluster_of(result, corpus: Path) -> dict[str, int]:
    return {str(Path(p).relative_to(corpus)): c
            for p, c in zip(result.clusters["path"], result.clusters["cluster_id"])}


def test_every_copy_lands_in_its_sources_cluster(copy_run):
    _ws, result, truth, corpus, _root = copy_run
    cluster = _cluster_of(result, corpus)
    for source in SOURCES:
        members = truth[truth["truth"] == source]["path"]
        assert {cluster[p] for p in members} == {cluster[f"originals/{source}.jpg"]}, source


def test_distinct_sources_and_distractors_stay_apart(copy_run):
    _ws, result, truth, corpus, _root = copy_run
    cluster = _cluster_of(result, corpus)
    source_clusters = [cluster[f"originals/{s}.jpg"] for s in SOURCES]
    assert len(set(source_clusters)) == len(SOURCES)
    for name in DISTRACTORS:
        assert (result.clusters.loc[result.clusters["path"].str.endswith(f"distractors/{name}.jpg"),
                                    "cluster_size"] == 1).all(), name


def test_pairs_describe_the_transform(copy_run):
    _ws, result, _truth, _corpus, _root = copy_run
    pairs = result.pairs

    inverse = {"inside": "contains", "contains": "inside", "same": "same", "overlap": "overlap"}

    def pair(query: str, match: str) -> pd.Series:
        """The verified pair seen from ``query`` (found in either direction)."""
        rows = pairs[pairs["query_path"].str.endswith(query) & pairs["result_path"].str.endswith(match)]
        if len(rows):
            return rows.iloc[0]
        rows = pairs[pairs["query_path"].str.endswith(match) & pairs["result_path"].str.endswith(query)]
        assert len(rows) == 1, (query, match)
        row = rows.iloc[0].copy()
        for a, b in (("query_inside", "result_inside"), ("query_covered", "result_covered")):
            row[a], row[b] = row[b], row[a]
        row["relation"] = inverse[row["relation"]]
        row["rotation"] = -row["rotation"]
        return row

    mirror = pair("copies/astronaut_mirror.jpg", "originals/astronaut.jpg")
    assert bool(mirror["mirrored"]) and mirror["relation"] == "same"
    rotated = pair("copies/coffee_rot20.jpg", "originals/coffee.jpg")
    assert abs(abs(rotated["rotation"]) - 20) < 2 and not rotated["mirrored"]
    crop = pair("copies/rocket_crop30.jpg", "originals/rocket.jpg")
    assert crop["relation"] == "inside"
    assert crop["query_inside"] > 0.9 and 0.2 < crop["result_inside"] < 0.45  # 30% of the area
    assert crop["query_covered"] > crop["result_covered"]
    screenshot = pair("copies/chelsea_screenshot.jpg", "originals/chelsea.jpg")
    assert screenshot["relation"] == "contains"
    assert screenshot["result_inside"] > 0.9 and screenshot["query_inside"] < 0.7
    assert (pairs["nb_match_ransac"] <= pairs["nb_match_total"]).all()


def test_eval_against_truth_file(copy_run):
    ws, _result, _truth, _corpus, root = copy_run
    from picsift.analyses.copies.evaluation import evaluate_against_truth
    from picsift.cli.copies import _options

    scores = evaluate_against_truth(ws, _options(ws, {}), root / "truth.csv")
    assert scores.n_items == len(SOURCES) * 8 + len(DISTRACTORS)
    assert scores.pairwise_precision == 1.0 and scores.pairwise_recall == 1.0
    assert scores.adjusted_rand_index == pytest.approx(1.0)


def test_incremental_add_only_processes_new_images(copy_run, tmp_path):
    _ws, _result, _truth, _corpus, root = copy_run
    corpus = tmp_path / "corpus"
    shutil.copytree(root / "corpus", corpus)
    ws = picsift.open(corpus, workspace=tmp_path / "ws")
    ws.scan(workers=1)
    first = ws.copies(workers=1)
    assert first.summary.described == first.summary.queried == len(SOURCES) * 8 + len(DISTRACTORS)
    new = corpus / "later"
    new.mkdir()
    _crop_area(_photo("astronaut"), 0.5, np.random.default_rng(1)).save(new / "astro_late.jpg", quality=80)
    _photo("horse").convert("RGB").save(new / "horse.jpg")
    ws.scan(workers=1)
    second = ws.copies(workers=1)
    assert (second.summary.described, second.summary.indexed, second.summary.queried) == (2, 2, 2)
    cluster = _cluster_of(second, corpus)
    assert cluster["later/astro_late.jpg"] == cluster["originals/astronaut.jpg"]
    assert (second.clusters.loc[second.clusters["path"].str.endswith("later/horse.jpg"),
                                "cluster_size"] == 1).all()


def test_query_new_images_without_adding_them(copy_run, tmp_path):
    ws, result, _truth, _corpus, _root = copy_run
    from picsift.analyses.copies.external import query_external
    from picsift.cli.copies import _options

    ImageOps.mirror(_photo("coffee")).resize((300, 200)).save(tmp_path / "coffee_new.jpg")
    _photo("coins").convert("RGB").save(tmp_path / "coins.jpg")
    options = _options(ws, {})
    found = query_external(ws, [str(tmp_path)], options)
    coffee = found[found["query_path"].str.endswith("coffee_new.jpg")]
    assert coffee["result_path"].str.endswith("originals/coffee.jpg").any()
    assert coffee["mirrored"].fillna(False).astype(bool).any()
    coins = found[found["query_path"].str.endswith("coins.jpg")]
    assert coins["result_path"].isna().all()
    from picsift.analyses.copies.index import CopyIndex

    index = CopyIndex(ws, options)
    index.load()
    assert len(index.media.media_ids) == len(set(result.clusters["image_id"]))


def test_cli_copies_one_command_and_steps(tmp_path):
    corpus = tmp_path / "corpus"
    make_copy_corpus(corpus)
    env_python = sys.executable
    run = subprocess.run([env_python, "-m", "picsift", "copies", str(corpus), "--workers", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = corpus / ".picsift" / "copies"
    clusters = pd.read_csv(out / "copies_clusters.csv")
    assert {"path", "image_id", "nb_points", "degree", "cluster_id", "quality"} <= set(clusters.columns)
    pairs = pd.read_csv(out / "copies_pairs.csv")
    assert {"query_path", "result_path", "nb_match_total", "nb_match_ransac", "ransac_ratio",
            "scale", "rotation", "mirrored", "relation"} <= set(pairs.columns)
    page = (out / "copies.html").read_text()
    assert "cluster 0" in page and "mirrored" in page
    again = subprocess.run([env_python, "-m", "picsift", "copies", "cluster", str(corpus),
                            "--algo", "components"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert clusters["cluster_size"].max() == 8


def test_metrics_on_hand_computed_example():
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    predicted = {"a": 10, "b": 10, "c": 11, "d": 12, "e": 12}  # f missing: a singleton
    scores = evaluate_clusters(truth, predicted, queries={"a", "d"})
    # truth 1: best is {a,b}: P 1, R 2/3; truth 2: {d,e}: P 1 R 1; truth 3: {f}: P 1 R 1
    assert scores.cluster_precision == pytest.approx(1.0)
    assert scores.cluster_recall == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert scores.cluster_f1 == pytest.approx((0.8 + 1 + 1) / 3)
    # pairs together in truth: ab ac bc de = 4; predicted: ab de = 2, both right
    p, r, f, ari = pairwise_scores(truth, predicted)
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 / 3)
    # ARI by hand: index 2, expected 4*2/15, max 3 -> (2 - 8/15) / (3 - 8/15)
    assert ari == pytest.approx((2 - 8 / 15) / (3 - 8 / 15))
    # query AP: a's cluster {a,b} minus queries -> {b}: 1; d's {d,e} -> {e}: 1
    assert scores.query_average_precision == pytest.approx(1.0)
    assert evaluate_clusters(truth, {}, {"a"}).query_average_precision == 0.0


@pytest.mark.skipif(not (SHARED / "pimmi-small").exists(), reason="needs ../shared/data (not in a user checkout)")
def test_pimmi_small_keeps_different_scenes_apart(tmp_path):
    corpus = tmp_path / "pimmi"
    shutil.copytree(SHARED / "pimmi-small", corpus)
    ws = picsift.open(corpus, workspace=tmp_path / "ws")
    ws.scan(workers=2)
    result = ws.copies(workers=2)
    cluster = _cluster_of(result, corpus)
    assert cluster["0/000002.jpg"] == cluster["0/000005.jpg"] == cluster["0/000007.jpg"]
    assert cluster["0/000008.jpg"] == cluster["0/000009.jpg"]
    others = [p for p in cluster if p not in {"0/000002.jpg", "0/000005.jpg", "0/000007.jpg",
                                               "0/000008.jpg", "0/000009.jpg"}]
    assert len({cluster[p] for p in others}) == len(others)
    assert cluster["0/000002.jpg"] != cluster["0/000008.jpg"]
    assert not set(cluster[p] for p in others) & {cluster["0/000002.jpg"], cluster["0/000008.jpg"]}


@pytest.mark.skipif(not (SHARED / "imagededup").exists(), reason="needs ../shared/data (not in a user checkout)")
def test_imagededup_copies_found_and_base_images_apart(tmp_path):
    corpus = tmp_path / "dedup"
    shutil.copytree(SHARED / "imagededup" / "mixed_images", corpus / "mixed")
    shutil.copytree(SHARED / "imagededup" / "base_images", corpus / "base")
    ws = picsift.open(corpus, workspace=tmp_path / "ws")
    ws.scan(workers=2)
    result = ws.copies(workers=2)
    cluster = _cluster_of(result, corpus)
    group = {cluster[f"mixed/ukbench00120{s}.jpg"] for s in ("", "_hflip", "_resize", "_rotation")}
    assert len(group) == 1
    base = [p for p in cluster if p.startswith("base/")]
    # base images are 10 different scenes; ukbench00120 and 09268 also appear in mixed/
    assert len({cluster[p] for p in base}) == len(base)


def _clusters_for(edges: list[tuple[str, str]], nodes: list[str], algo: str) -> dict[str, int]:
    from picsift.analyses.copies.cluster import cluster_media

    pairs = pd.DataFrame([{"query_id": a, "match_id": b, "inliers": 50, "relation": "same",
                           "mirrored": False, "query_inside": 1.0, "match_inside": 1.0}
                          for a, b in edges])
    frame = cluster_media(nodes, pairs, algo=algo)
    return dict(zip(frame["media_id"], frame["cluster_id"]))


def test_leiden_cuts_a_collage_bridge_but_keeps_chains_whole():
    group_a = [f"a{i}" for i in range(5)]
    group_b = [f"b{i}" for i in range(5)]
    clique = [(x, y) for g in (group_a, group_b) for i, x in enumerate(g) for y in g[i + 1:]]
    # a collage holding one image of each group links to every member of both groups
    bridge = [("collage", x) for x in group_a + group_b]
    nodes = group_a + group_b + ["collage"]
    leiden = _clusters_for(clique + bridge, nodes, "leiden")
    assert len({leiden[x] for x in group_a}) == 1 and len({leiden[x] for x in group_b}) == 1
    assert leiden["a0"] != leiden["b0"]
    components = _clusters_for(clique + bridge, nodes, "components")
    assert len(set(components.values())) == 1
    chain = [(f"c{i}", f"c{i + 1}") for i in range(5)]  # crop of a crop of a crop...
    chained = _clusters_for(chain, [f"c{i}" for i in range(6)], "leiden")
    assert len(set(chained.values())) == 1


def test_max_memory_refuses_a_too_big_index_before_building_it(tmp_path: Path) -> None:
    """--max-memory: the estimate is checked before the index is built; the described
    features stay stored, so a rerun with a smaller index type goes on from there."""
    from conftest import DEMO, run_picsift

    corpus = tmp_path / "photos"
    shutil.copytree(DEMO / "photos", corpus)
    refused = run_picsift("copies", corpus, "--max-memory", "100K")
    assert refused.returncode == 2
    assert "--max-memory" in refused.stderr and "IVF65536,PQ32" in refused.stderr
    assert "Traceback" not in refused.stderr
    again = run_picsift("copies", corpus, "--max-memory", "1G")
    assert again.returncode == 0, again.stderr
    assert "described 0 new image(s)" in again.stdout


def test_memory_mapped_ivf_index_searches_like_the_loaded_one(tmp_path: Path) -> None:
    """Query runs map the saved IVF index read-only; extending loads it fully again."""
    import numpy as np

    from conftest import DEMO, run_picsift
    from picsift.analyses.copies.index import CopyIndex
    from picsift.cli.copies import _options

    corpus = tmp_path / "c"
    shutil.copytree(DEMO / "photos", corpus / "photos")
    shutil.copytree(DEMO / "reposts", corpus / "reposts")
    done = run_picsift("copies", corpus, "--index-type", "IVF64,SQ8")
    assert done.returncode == 0, done.stderr
    ws = picsift.open(corpus)
    options = _options(ws, {})
    full, mapped = CopyIndex(ws, options), CopyIndex(ws, options)
    assert full.load() and mapped.load(mmap=True)
    assert mapped.mapped and not full.mapped and mapped.index_type == "IVF64,SQ8"
    probe = np.random.default_rng(0).random((200, 128), dtype=np.float32)
    assert (full.index.search(probe, 8)[1] == mapped.index.search(probe, 8)[1]).all()
    assert np.array_equal(np.asarray(full.owner), np.asarray(mapped.owner))
    shutil.copy(DEMO / "odd" / "horse.bmp", corpus / "photos" / "horse_again.bmp")
    again = run_picsift("copies", corpus)  # new image: the mapped index is reloaded and grows
    assert again.returncode == 0, again.stderr
    grown = CopyIndex(ws, options)
    assert grown.load() and grown.n_vectors > full.n_vectors


def test_query_in_slices_with_limit_finds_what_one_run_finds(tmp_path: Path) -> None:
    """`copies query --limit N` queries N media and stops; the next run goes on with the rest;
    the pairs at the end are those of a single run."""
    from conftest import DEMO, run_picsift

    sliced, whole = tmp_path / "sliced", tmp_path / "whole"
    for root in (sliced, whole):
        shutil.copytree(DEMO / "photos", root / "photos")
        shutil.copytree(DEMO / "reposts", root / "reposts")
    assert run_picsift("copies", whole).returncode == 0
    assert run_picsift("scan", sliced).returncode == 0
    assert run_picsift("copies", "index", sliced).returncode == 0
    first = run_picsift("copies", "query", sliced, "--limit", "5")
    assert first.returncode == 0, first.stderr
    assert "queried 5 image(s)" in first.stdout
    rest = run_picsift("copies", "query", sliced)
    n_media = len(picsift.open(whole).query("SELECT media_id FROM media"))
    assert f"queried {n_media - 5} image(s)" in rest.stdout
    assert run_picsift("copies", "cluster", sliced).returncode == 0

    def pairs(root: Path) -> list[tuple[str, str]]:
        table = pd.read_csv(root / ".picsift" / "copies" / "copies_pairs.csv")
        cols = [c for c in table.columns if "path" in c][:2]
        return sorted(tuple(str(v).replace(str(root), "") for v in row)
                      for row in table[cols].to_numpy().tolist())

    assert len(pairs(whole)) >= 10 and pairs(sliced) == pairs(whole)
