"""`picsift crop`: photo boxes, the post's text block and AMMICO-style reference cropping,
checked against screenshot-like posts rendered with known boxes (tests/crop_posts.py)."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import crop_posts as cp
from conftest import DEMO, sha256
from picsift.analyses.crop import (CropOptions, analyse_layout, crop_below_reference, crop_folder,
                                   find_photo_regions, find_post_text_region, iou, locate_reference)
from picsift.errors import PicsiftError

VARIANTS = {post.name: post for post in cp.variants()}
TEXT_ONLY = [cp.text_only(), cp.text_only(dark=True)]


def _inside(inner: tuple, outer: tuple) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_photo_boxes_match_the_truth(name: str) -> None:
    post = VARIANTS[name]
    regions = find_photo_regions(np.asarray(post.image))
    assert len(regions) == len(post.photos), regions
    for truth in post.photos:  # each photo found once, IoU > 0.9
        assert max(iou(r.box, truth) for r in regions) > 0.9, (truth, regions)
    assert all(r.kind == "photo" and r.method == "ui-palette" and 0.5 <= r.score <= 1 for r in regions)


@pytest.mark.parametrize("post", TEXT_ONLY, ids=lambda p: p.name)
def test_text_only_post_has_no_photo(post: cp.Post) -> None:
    assert find_photo_regions(np.asarray(post.image)) == []


@pytest.mark.parametrize("name", ["coffee.jpg", "hubble.jpg", "retina.jpg", "camera.jpg", "coins.png"])
def test_plain_photo_is_the_whole_image(name: str) -> None:
    """Not a screenshot: one region, the whole picture, marked so that nothing is cropped."""
    image = Image.open(DEMO / "photos" / name).convert("RGB")
    regions = find_photo_regions(np.asarray(image))
    assert [(r.box, r.method) for r in regions] == [((0, 0, image.width, image.height), "whole-image")]


def test_screenshot_drawn_by_another_script() -> None:
    """The demo corpus's chelsea_screenshot.png (scripts/make_demo_corpus.py, a different
    layout: no comment bubbles, a 'Reply Repost Like Share' row): photo at (40, 90, 520, 409)."""
    rgb = np.asarray(Image.open(DEMO / "reposts" / "chelsea_screenshot.png").convert("RGB"))
    regions = find_photo_regions(rgb)
    assert len(regions) == 1 and iou(regions[0].box, (40, 90, 520, 409)) > 0.95
    text = find_post_text_region(rgb, [regions[0].box])
    assert text is not None
    assert _inside((72, 22, 290, 62), text) and text[3] < 90  # author line and body, not the photo


@pytest.mark.parametrize("post", [*VARIANTS.values(), *TEXT_ONLY], ids=lambda p: p.name)
def test_text_region_without_ocr(post: cp.Post) -> None:
    rgb = np.asarray(post.image)
    layout = analyse_layout(rgb)
    photos = [r.box for r in find_photo_regions(rgb, layout=layout)]
    box = find_post_text_region(rgb, photos, None, layout=layout)
    assert box is not None
    assert iou(box, post.text) > 0.8, (box, post.text)
    assert box[3] <= post.bar[1] and box[3] <= post.comments[1]  # never the bar or the comments


@pytest.mark.slow
def test_text_region_with_ocr() -> None:
    if importlib.util.find_spec("rapidocr") is None:
        pytest.skip("the text extra is not installed")
    from picsift.text.ocr import OcrEngine, OcrOptions

    engine = OcrEngine(OcrOptions(tesseract=False))
    for post in (VARIANTS["light_landscape"], VARIANTS["side_by_side"], TEXT_ONLY[0]):
        rgb = np.asarray(post.image)
        blocks = engine.read(post.image).blocks
        photos = [r.box for r in find_photo_regions(rgb)]
        box = find_post_text_region(rgb, photos, blocks)
        assert box is not None and iou(box, post.text) > 0.8, (post.name, box, post.text)
        assert box[3] <= post.comments[1]


# reference snippets -------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.6, 1.5, 2.0])
@pytest.mark.parametrize("name", ["light_landscape", "dark_hubble", "grid_light", "recompressed_jpeg70"])
def test_reference_snippet_crops_everything_below(name: str, scale: float) -> None:
    """The bar rendered on its own at another size is found; kept = full width above its top."""
    post = VARIANTS[name]
    width = post.image.width
    snippet = cp.bar_snippet(round(width * scale), scale=scale * width / 680, dark=post.dark)
    found = crop_below_reference(np.asarray(post.image), np.asarray(snippet))
    assert found is not None
    match, kept = found
    assert kept[:3] == (0, 0, width)
    assert abs(kept[3] - post.bar[1]) <= 3          # cut at the bar's top edge
    assert abs(match[3] - post.bar[3]) <= 4 and iou(match, post.bar) > 0.8


def test_light_snippet_finds_a_dark_mode_bar() -> None:
    post = VARIANTS["grid_dark"]
    found = locate_reference(np.asarray(post.image), np.asarray(cp.bar_snippet(1020, scale=1.5)))
    assert found is not None and abs(found.kept_box[3] - post.bar[1]) <= 3
    assert 0.6 < found.scale < 0.74 and found.similarity >= 0.4


@pytest.mark.parametrize("path", ["photos/coffee.jpg", "photos/hubble.jpg", "posts/shot_es.png",
                                  "reposts/chelsea_screenshot.png"])
def test_reference_absent_gives_none(path: str) -> None:
    rgb = np.asarray(Image.open(DEMO / path).convert("RGB"))
    for scale in (0.6, 1.0, 1.5):
        assert crop_below_reference(rgb, np.asarray(cp.bar_snippet(round(680 * scale), scale=scale))) is None


# a folder of screenshots --------------------------------------------------------------------


def _corpus(root: Path) -> dict[str, cp.Post]:
    """SRC with sub-folders: PNG and JPEG screenshots, a text-only post, a plain photo, a
    corrupt file and a non-image; returns the posts by relative path."""
    posts = {
        "light_landscape.png": VARIANTS["light_landscape"],
        "feed/grid_dark.png": VARIANTS["grid_dark"],
        "feed/deeper/text_only.png": TEXT_ONLY[0],
        "feed/jpeg_post.jpg": VARIANTS["light_portrait"],
    }
    for rel, post in posts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        post.image.save(root / rel, quality=95) if rel.endswith(".jpg") else post.image.save(root / rel)
    shutil.copy(DEMO / "photos" / "coffee.jpg", root / "plain_photo.jpg")
    shutil.copy(DEMO / "odd" / "corrupt.png", root / "feed" / "corrupt.png")
    (root / "notes.txt").write_text("not an image")
    return posts


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _state(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (sha256(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_crop_folder_end_to_end(tmp_path: Path) -> None:
    src, dest = tmp_path / "shots", tmp_path / "crops"
    posts = _corpus(src)
    before = _state(src)
    summary = crop_folder(src, dest, mode="both", ocr=False)

    assert _state(src) == before  # originals: same bytes, same mtime, nothing added
    assert summary.images == 6 and summary.failed == 1 and summary.whole_photo == 1
    assert summary.by_kind == {"photo": 4, "text": 4}
    assert "corrupt" in summary.failures[0][1] and summary.failures[0][0].endswith("corrupt.png")
    assert _read_csv(dest / "failures.csv")[0]["source"].endswith("corrupt.png")

    rows = _read_csv(dest / "crops.csv")
    assert list(rows[0]) == ["source", "crop", "kind", "x0", "y0", "x1", "y1", "score", "method",
                             "source_width", "source_height", "created"]
    for rel, post in posts.items():
        mine = [r for r in rows if r["source"] == str(src / rel)]
        photos = [tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1")) for r in mine if r["kind"] == "photo"]
        assert len(photos) == len(post.photos)
        assert all(max(iou(b, t) for b in photos) > 0.9 for t in post.photos)
        text = [r for r in mine if r["kind"] == "text"]
        assert len(text) == 1 and iou(tuple(int(text[0][k]) for k in ("x0", "y0", "x1", "y1")), post.text) > 0.8
    for row in rows:  # each crop is exactly those source pixels, mirrored under DEST
        crop = Path(row["crop"])
        assert crop.parent == dest / Path(row["source"]).relative_to(src).parent
        box = tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        source = Image.open(row["source"]).convert("RGB")
        assert Image.open(crop).size == (box[2] - box[0], box[3] - box[1])
        if crop.suffix == ".png":
            assert np.array_equal(np.asarray(Image.open(crop).convert("RGB")), np.asarray(source.crop(box)))
    assert (dest / "feed" / "grid_dark_photo.png").exists() and (dest / "feed" / "grid_dark_photo2.png").exists()
    assert (dest / "feed" / "jpeg_post_photo.jpg").exists()
    outcomes = {Path(r["source"]).name: r["outcome"] for r in _read_csv(dest / "images.csv")}
    assert outcomes["plain_photo.jpg"] == "whole-photo" and outcomes["text_only.png"] == "cropped"
    assert not any(dest.rglob("plain_photo*.jpg"))


def test_crop_folder_never_overwrites(tmp_path: Path) -> None:
    src, dest = tmp_path / "shots", tmp_path / "crops"
    src.mkdir()
    VARIANTS["light_landscape"].image.save(src / "post.png")
    first = crop_folder(src, dest)
    written = dest / "post_photo.png"
    stamp = (sha256(written), written.stat().st_mtime_ns)
    second = crop_folder(src, dest)
    assert first.crops == second.crops == 1
    assert (sha256(written), written.stat().st_mtime_ns) == stamp
    assert (dest / "post_photo_1.png").exists()
    rows = _read_csv(dest / "crops.csv")  # appended: both runs' provenance
    assert [Path(r["crop"]).name for r in rows] == ["post_photo.png", "post_photo_1.png"]


def test_crop_folder_below_reference(tmp_path: Path) -> None:
    src, dest = tmp_path / "shots", tmp_path / "crops"
    src.mkdir()
    post = VARIANTS["dark_hubble"]
    post.image.save(src / "post.png")
    Image.open(DEMO / "photos" / "rocket.jpg").save(src / "photo.jpg")
    reference = tmp_path / "bar.png"
    cp.bar_snippet(1020, scale=1.5).save(reference)  # light mode, 1.5x: still found
    summary = crop_folder(src, dest, references=[reference], mode="below-reference")
    rows = _read_csv(dest / "crops.csv")
    assert summary.crops == 1 and rows[0]["kind"] == "post"
    assert abs(int(rows[0]["y1"]) - post.bar[1]) <= 3 and rows[0]["method"].startswith("sift-reference")
    assert Image.open(rows[0]["crop"]).size == (post.image.width, int(rows[0]["y1"]))
    assert {Path(r["source"]).name: r["outcome"] for r in _read_csv(dest / "images.csv")}["photo.jpg"] == "nothing-found"


def test_text_mode_ends_the_post_at_a_reference(tmp_path: Path) -> None:
    """In the text modes a reference snippet marks where the post ends."""
    src, dest = tmp_path / "shots", tmp_path / "crops"
    src.mkdir()
    post = TEXT_ONLY[1]
    post.image.save(src / "post.png")
    reference = tmp_path / "bar.png"
    cp.bar_snippet(408, scale=0.6).save(reference)
    crop_folder(src, dest, references=[reference], mode="text", ocr=False)
    (row,) = _read_csv(dest / "crops.csv")
    assert row["kind"] == "text" and row["method"] == "ink-lines+reference"
    box = tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
    assert iou(box, post.text) > 0.8 and box[3] <= post.bar[1]


def test_crop_folder_refuses_bad_setups(tmp_path: Path) -> None:
    src = tmp_path / "shots"
    src.mkdir()
    VARIANTS["small"].image.save(src / "post.png")
    with pytest.raises(PicsiftError, match="another folder"):
        crop_folder(src, src)
    with pytest.raises(PicsiftError, match="reference"):
        crop_folder(src, tmp_path / "out", mode="below-reference")
    with pytest.raises(PicsiftError, match="unknown crop mode"):
        CropOptions(mode="everything")
    inside = src / "crops"  # DEST inside SRC: its crops are never cropped again
    crop_folder(src, inside)
    again = crop_folder(src, inside)
    assert again.images == 1 and sorted(p.name for p in inside.glob("*.png")) == ["post_photo.png", "post_photo_1.png"]


def test_cli_crop(tmp_path: Path) -> None:
    from picsift.cli.crop import crop_command

    app = typer.Typer()
    app.command("crop")(crop_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the verb name
    src = tmp_path / "shots"
    _corpus(src)
    result = CliRunner().invoke(app, ["crop", str(src), "--to", str(tmp_path / "out"),
                                      "--mode", "both", "--no-ocr", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert "8 crops from 4 images" in result.output and "1 failed" in result.output
    assert "corrupt.png" in result.output and "photo 4, text 4" in result.output
    assert len(_read_csv(tmp_path / "out" / "crops.csv")) == 8
