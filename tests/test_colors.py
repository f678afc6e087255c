"""Color features: exact shares on generated pictures, plausible ones on real photos, and the
workspace run (resume, broken files, export, the command's files)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import picsift
from picsift.analyses.colors import (ColorOptions, analyse_colors, colors_table,
                                     corpus_summary_png, palette_strip_png)
from picsift.errors import PicsiftError
from picsift.features import colors as C
from picsift.media.decode import load_image

DEMO = Path(picsift.__file__).parent / "demo" / "corpus"
PHOTOS = DEMO / "photos"

CANONICAL = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
             "yellow": (255, 255, 0), "cyan": (0, 255, 255), "orange": (255, 165, 0),
             "purple": (128, 0, 128), "pink": (255, 192, 203), "brown": (165, 42, 42),
             "grey": (128, 128, 128), "white": (255, 255, 255), "black": (0, 0, 0)}


def solid(color: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    picture = np.zeros((*size, 3), dtype=np.uint8)
    picture[:] = color
    return picture


def photo(name: str) -> np.ndarray:
    return np.asarray(load_image(PHOTOS / name, size=C.MAX_SIDE))


def shares(row: dict) -> dict[str, float]:
    return {name: row[name] for name in C.COLOR_NAMES}


# ---------------------------------------------------------------- conversions
def test_srgb_to_lab_matches_reference_values() -> None:
    # CIELAB of sRGB primaries (D65), as published by colour-science / Bruce Lindbloom.
    expected = {(255, 0, 0): (53.2408, 80.0925, 67.2032), (0, 255, 0): (87.7347, -86.1827, 83.1793),
                (0, 0, 255): (32.2970, 79.1875, -107.8602), (255, 255, 255): (100.0, 0.0, 0.0),
                (0, 0, 0): (0.0, 0.0, 0.0), (128, 128, 128): (53.5850, 0.0, 0.0)}
    for rgb, lab in expected.items():
        assert C.rgb_to_lab(np.array(rgb)) == pytest.approx(lab, abs=0.01), rgb


def test_lab_round_trip_is_lossless() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5000, 3))
    assert np.array_equal(C.lab_to_rgb(C.rgb_to_lab(rgb)), rgb)


@pytest.mark.parametrize("lab1, lab2, expected", [  # Sharma, Wu & Dalal (2005), table 1
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
])
def test_ciede2000_matches_sharma_test_data(lab1, lab2, expected) -> None:
    one, two = np.array(lab1), np.array(lab2)
    assert float(C.delta_e_ciede2000(one, two)) == pytest.approx(expected, abs=1e-4)
    assert float(C.delta_e_ciede2000(two, one)) == pytest.approx(expected, abs=1e-4)  # symmetric


def test_reference_colors_are_the_12_names_and_css_keywords() -> None:
    table = C.reference_table()
    assert {r["group"] for r in table} == set(C.COLOR_NAMES)
    assert len(table) == 139 and len({r["keyword"] for r in table}) == 139
    assert len({r["hex"] for r in table}) == 139  # aqua = cyan and magenta = fuchsia dropped
    for row in table:  # every keyword is named after its own group, whatever the metric
        for metric in C.METRICS:
            assert C.name_of(row["rgb"], metric) == row["group"], (row, metric)


def test_metric_spellings() -> None:
    assert C.normalise_metric("CIE 1976") == "cie76"
    assert C.normalise_metric("CIEDE2000") == "ciede2000"
    with pytest.raises(PicsiftError, match="ciede2000 or cie76"):
        C.normalise_metric("cam16")


# ---------------------------------------------------------------- generated pictures
@pytest.mark.parametrize("metric", C.METRICS)
@pytest.mark.parametrize("name", C.COLOR_NAMES)
def test_pure_color_is_all_that_name(name: str, metric: str) -> None:
    row = C.color_features(solid(CANONICAL[name]), metric=metric)
    assert row[name] == 1.0
    assert sum(shares(row).values()) == pytest.approx(1.0)
    assert row["palette"] == ["#%02x%02x%02x" % CANONICAL[name]]
    assert row["palette_shares"] == [1.0]


def test_known_mixtures_give_exact_shares() -> None:
    picture = solid((255, 0, 0), (64, 64))
    picture[48:] = (255, 255, 255)  # a quarter white
    row = C.color_features(picture)
    assert row["red"] == 0.75 and row["white"] == 0.25
    assert row["palette"] == ["#ff0000", "#ffffff"] and row["palette_shares"] == [0.75, 0.25]

    picture = solid((0, 0, 255), (40, 40))
    picture[:, 20:30] = (255, 255, 0)
    picture[:, 30:] = (0, 0, 0)
    row = C.color_features(picture, metric="cie76", palette_size=3)
    assert (row["blue"], row["yellow"], row["black"]) == (0.5, 0.25, 0.25)
    assert row["palette"][0] == "#0000ff" and sorted(row["palette"][1:]) == ["#000000", "#ffff00"]


def test_shares_survive_quantisation_and_noise() -> None:
    rng = np.random.default_rng(0)
    picture = solid((200, 20, 30), (64, 64)).astype(int)
    picture[32:] = (20, 140, 40)
    noisy = np.clip(picture + rng.integers(-6, 7, picture.shape), 0, 255).astype(np.uint8)
    row = C.color_features(noisy)
    assert row["red"] == pytest.approx(0.5, abs=0.01)
    assert row["green"] == pytest.approx(0.5, abs=0.01)
    assert len(row["palette"]) == 5 and sum(row["palette_shares"]) == pytest.approx(1.0)


def test_greyscale_detection() -> None:
    ramp = np.repeat(np.tile(np.arange(256, dtype=np.uint8), (64, 1))[..., None], 3, axis=2)
    assert C.color_features(ramp)["greyscale"]
    # a grey photo saved as an RGB JPEG: chroma noise from compression is not color
    buffer = io.BytesIO()
    Image.fromarray(photo("camera.jpg")).convert("RGB").save(buffer, "JPEG", quality=70)
    assert C.color_features(np.asarray(Image.open(buffer).convert("RGB")))["greyscale"]
    assert C.color_features(photo("camera.jpg"))["greyscale"]
    assert C.color_features(photo("coins.png"))["greyscale"]
    assert not C.color_features(photo("chelsea.jpg"))["greyscale"]
    assert not C.color_features(photo("hubble.jpg"))["greyscale"]  # dark, but tinted
    dot = ramp.copy()
    dot[:2, :50] = (255, 0, 0)  # 100 of 16,384 pixels: still a grey picture
    assert C.color_features(dot)["greyscale"]
    dot[:8] = (255, 0, 0)  # 12 %: not any more
    assert not C.color_features(dot)["greyscale"]


def test_hue_histogram() -> None:
    for rgb, degrees in (((255, 0, 0), 0), ((0, 0, 255), 240), ((0, 255, 0), 120)):
        hist = C.color_features(solid(rgb))["hue_histogram"]
        assert hist.shape == (C.HUE_BINS,) and hist[degrees // 20] == pytest.approx(1.0)
    assert not C.color_features(solid((90, 90, 90)))["hue_histogram"].any()
    hist = C.color_features(photo("coffee.jpg"))["hue_histogram"]
    assert hist.sum() == pytest.approx(1.0) and hist[:3].sum() > 0.8  # reds and oranges


def test_colorfulness_orders_grey_photo_saturated() -> None:
    stripes = np.zeros((60, 60, 3), dtype=np.uint8)
    for n, rgb in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255),
                             (0, 255, 255)]):
        stripes[:, n * 10:(n + 1) * 10] = rgb
    grey = C.color_features(photo("camera.jpg"))["colorfulness"]
    cat = C.color_features(photo("chelsea.jpg"))["colorfulness"]
    saturated = C.color_features(stripes)["colorfulness"]
    assert grey == pytest.approx(0.0, abs=1e-6) and 15 < cat < saturated and saturated > 109


def test_tone_columns() -> None:
    white, black = C.color_features(solid((255, 255, 255))), C.color_features(solid((0, 0, 0)))
    assert white["brightness"] == pytest.approx(1.0) and black["brightness"] == 0.0
    assert white["contrast"] == pytest.approx(0.0, abs=1e-9)
    half = solid((0, 0, 0), (64, 64))
    half[32:] = 255
    assert C.color_features(half)["contrast"] == pytest.approx(0.5)
    assert C.color_features(solid((255, 0, 0)))["saturation"] == pytest.approx(1.0)
    assert white["saturation"] == 0.0


def test_sharpness_drops_with_blur_and_ignores_size() -> None:
    picture = photo("astronaut.jpg")
    blurred = cv2.GaussianBlur(picture, (0, 0), 2.0)
    sharp, soft = C.color_features(picture)["sharpness"], C.color_features(blurred)["sharpness"]
    assert soft < sharp / 3
    full = np.asarray(load_image(PHOTOS / "astronaut.jpg"))  # 512 px
    assert C.color_features(full)["sharpness"] == pytest.approx(sharp, rel=0.25)


def test_odd_inputs() -> None:
    assert C.color_features(solid((10, 200, 10), (1, 1)))["green"] == 1.0
    assert C.color_features(solid((10, 10, 200), (1, 300)))["blue"] == 1.0
    as_float = C.color_features(solid((255, 0, 0)).astype(np.float32))
    assert as_float["red"] == 1.0
    with pytest.raises(ValueError):
        C.color_features(np.zeros((10, 10), dtype=np.uint8))


def test_palette_is_deterministic_and_cache_agrees_with_direct_naming() -> None:
    picture = photo("retina.jpg")
    first, again = C.color_features(picture, seed=3), C.color_features(picture, seed=3)
    assert first["palette"] == again["palette"]
    codes = np.random.default_rng(2).choice(1 << 18, 3000, replace=False)
    for metric in C.METRICS:
        direct = C.name_colors(C.rgb_to_lab(C._code_rgb(codes)), metric)
        assert np.array_equal(C._CACHE.lookup(codes, metric), direct)


# ---------------------------------------------------------------- real photos
def top(row: dict, n: int = 3) -> list[str]:
    return [k for k, _ in sorted(shares(row).items(), key=lambda kv: -kv[1])[:n]]


@pytest.mark.parametrize("metric", C.METRICS)
def test_real_photos_are_plausible(metric: str) -> None:
    coffee = C.color_features(photo("coffee.jpg"), metric=metric)
    assert top(coffee, 1) == ["brown"]
    assert coffee["brown"] + coffee["black"] + coffee["red"] + coffee["white"] > 0.9
    light = [C.rgb_to_lab(np.array(C._hex_to_rgb(h)))[0] for h in coffee["palette"]]
    assert max(light) > 75  # the cup
    cat = C.color_features(photo("chelsea.jpg"), metric=metric)
    assert top(cat, 1) == ["brown"] and cat["brown"] > 0.6 and cat["brown"] + cat["grey"] > 0.9
    hubble = C.color_features(photo("hubble.jpg"), metric=metric)
    assert hubble["black"] > 0.85 and hubble["brightness"] < 0.15
    retina = C.color_features(photo("retina.jpg"), metric=metric)
    assert retina["red"] + retina["orange"] > 0.55 and retina["black"] > 0.15
    camera = C.color_features(photo("camera.jpg"), metric=metric)
    assert camera["grey"] + camera["black"] + camera["white"] == pytest.approx(1.0, abs=0.01)


# ---------------------------------------------------------------- the workspace run
@pytest.fixture(scope="module")
def colored(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("colors")
    corpus = root / "corpus"
    shutil.copytree(PHOTOS, corpus / "photos")
    for name, rgb in (("red", (255, 0, 0)), ("white", (255, 255, 255))):
        Image.new("RGB", (40, 30), rgb).save(corpus / f"{name}.png")
    broken = corpus / "broken.jpg"
    Image.new("RGB", (30, 20), (10, 120, 200)).save(broken, "JPEG")
    ws = picsift.open(corpus, workspace=root / "ws")
    ws.scan(workers=1)
    broken.write_bytes(b"this is no longer a picture")  # scanned fine, breaks afterwards
    first = analyse_colors(ws, workers=2)
    second = analyse_colors(ws, workers=2)
    return ws, first, second, root


def test_workspace_run_stores_and_resumes(colored) -> None:
    ws, first, second, _root = colored
    assert (first.analysed, first.failed, first.already) == (12, 1, 0)
    assert (second.analysed, second.failed, second.already) == (0, 0, 13)
    table = colors_table(ws)
    assert len(table) == 12 and list(table.columns[:2]) == ["path", "media_id"]
    by_name = table.set_index(table["path"].map(lambda p: Path(p).name))
    assert by_name.loc["red.png", "red"] == 1.0 and by_name.loc["white.png", "white"] == 1.0
    assert by_name.loc["red.png", "palette"] == "#ff0000"
    assert by_name.loc["coffee.jpg", "palette"].count(";") == 4
    assert {f"hue_{d:03d}" for d in range(0, 360, 20)} <= set(table.columns)
    assert table[list(C.COLOR_NAMES)].sum(axis=1).to_numpy() == pytest.approx(1.0)
    errors = ws.query("SELECT path, stage FROM errors WHERE stage = 'colors'")
    assert [Path(r["path"]).name for r in errors] == ["broken.jpg"]
    assert first.top_colors(1)[0][0] in ("grey", "black", "brown", "white")


def test_other_options_make_a_new_set(colored) -> None:
    ws, _first, _second, _root = colored
    options = ColorOptions(metric="cie76", palette_size=3)
    summary = analyse_colors(ws, options, workers=1)
    assert (summary.analysed, summary.already) == (12, 1)  # the broken file is not retried
    assert colors_table(ws)["palette"].str.count(";").max() == 2  # the latest set
    assert colors_table(ws, ColorOptions())["palette"].str.count(";").max() == 4


def test_export_has_color_columns(colored) -> None:
    from picsift.export.table import export_table

    ws, _first, _second, root = colored
    export_table(ws, root / "export.csv")
    frame = pd.read_csv(root / "export.csv")
    for column in ("colors_red", "colors_black", "colors_palette", "colors_colorfulness",
                   "colors_greyscale", "colors_sharpness"):
        assert column in frame.columns, column
    red = frame[frame["path"].str.endswith("red.png")]
    assert red["colors_red"].iloc[0] == 1.0


def test_command_writes_table_plot_and_page(colored) -> None:
    import typer
    from typer.testing import CliRunner

    from picsift.cli.colors import colors_command

    ws, _first, _second, root = colored
    app = typer.Typer()
    app.command()(colors_command)
    result = CliRunner().invoke(app, [str(ws.dir), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "mean share" in result.output and "colors.html" in result.output
    table = pd.read_csv(ws.dir / "colors.csv")
    assert len(table) == 12 and "colorfulness" in table.columns
    with Image.open(ws.dir / "colors.png") as plot:
        assert plot.size[0] >= 600
    page = (ws.dir / "colors.html").read_text(encoding="utf-8")
    assert page.count("class='tile'") == 12 and "data:image/jpeg;base64" in page


def test_plots_draw_from_a_table(tmp_path: Path) -> None:
    rows = [{**{n: 0.0 for n in C.COLOR_NAMES}, "red": 1.0, "colorfulness": 80.0,
             "greyscale": False}, {**{n: 0.0 for n in C.COLOR_NAMES}, "grey": 1.0,
                                   "colorfulness": 0.0, "greyscale": True}]
    path = corpus_summary_png(pd.DataFrame(rows), tmp_path / "summary.png")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert ((pixels == (255, 0, 0)).all(axis=1)).sum() > 1000  # the red bar
    strip = Image.open(io.BytesIO(palette_strip_png("#ff0000;#0000ff", "0.75;0.25", 100, 10)))
    line = np.asarray(strip.convert("RGB"))[5]
    assert tuple(line[40]) == (255, 0, 0) and tuple(line[90]) == (0, 0, 255)
