"""`picsift colors`: color features of every media, stored as the feature set "colors".

One row per media: the share of each of AMMICO's 12 color names, the dominant palette, tone
(brightness, contrast, saturation), colorfulness, sharpness and a greyscale flag; the hue
histogram is stored as an array beside each part. The run is resumable (media already in the
set, or already failed, are skipped) and per-file failures are recorded under stage "colors".
Also here: the corpus summary plot and the per-image palette page, drawn with Pillow.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFont

from picsift.analyses.copies.extract import media_paths
from picsift.engine import ProgressReporter, make_engine
from picsift.errors import PicsiftError
from picsift.features.colors import (BITS, COLOR_NAMES, EXTRACTOR, HUE_BINS, VERSION,
                                     colors_batch, normalise_metric)
from picsift.media.decode import DecodeOptions
from picsift.workspace.features import FeatureSet, crash_records
from picsift.workspace.store import Workspace
from picsift.report.files import write_page

log = logging.getLogger(__name__)

STAGE = "colors"
TONE_COLUMNS = ("brightness", "contrast", "saturation", "colorfulness", "sharpness", "greyscale")
# How each name is drawn in plots: its own CSS keyword.
DISPLAY_HEX = {"red": "#ff0000", "green": "#008000", "blue": "#0000ff", "yellow": "#ffff00",
               "cyan": "#00ffff", "orange": "#ffa500", "purple": "#800080", "pink": "#ffc0cb",
               "brown": "#a52a2a", "grey": "#808080", "white": "#ffffff", "black": "#000000"}
# Hasler & Süsstrunk (2003), table 2: colorfulness M at which viewers' ratings change.
COLORFULNESS_LEVELS = ((15, "slightly"), (33, "moderately"), (45, "averagely"), (59, "quite"),
                       (82, "highly"), (109, "extremely"))
MAX_PAGE_IMAGES = 400


@dataclass(frozen=True)
class ColorOptions:
    """Settings of a colors run; changing any of them makes a new feature set."""

    metric: str = "ciede2000"
    palette_size: int = 5
    seed: int = 0
    decode_size: int = 256
    batch_size: int = 32

    def params(self) -> dict[str, Any]:
        """What identifies the stored set (batch size does not change results)."""
        if not 1 <= self.palette_size <= 16:
            raise PicsiftError(f"--palette-size must be 1 to 16, not {self.palette_size}")
        return {"metric": normalise_metric(self.metric), "palette_size": self.palette_size,
                "seed": self.seed, "decode_size": self.decode_size, "bits": BITS}


@dataclass
class ColorSummary:
    metric: str
    analysed: int = 0
    failed: int = 0
    already: int = 0
    seconds: float = 0.0
    corpus: dict[str, float] = field(default_factory=dict)  # mean share per name, all stored

    def top_colors(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` names with the largest mean share over the corpus."""
        return sorted(self.corpus.items(), key=lambda kv: -kv[1])[:n]


def color_set(ws: Workspace, options: ColorOptions = ColorOptions()) -> FeatureSet:
    return FeatureSet(ws, EXTRACTOR, VERSION, options.params())


def _join(values: list[Any], fmt: str = "{}") -> str:
    return ";".join(fmt.format(v) for v in values)


class _Writer:
    def __init__(self, ws: Workspace, features: FeatureSet, summary: ColorSummary) -> None:
        self.ws, self.features, self.summary = ws, features, summary

    def store(self, batch: list[tuple[str, str]], records: list[dict[str, Any]]) -> None:
        good = [r for r in records if "error" not in r]
        bad = [r for r in records if "error" in r]
        if good:
            columns: dict[str, Any] = {"media_id": [r["media_id"] for r in good]}
            for name in COLOR_NAMES:
                columns[name] = np.array([r[name] for r in good], dtype=np.float64)
            columns["palette"] = [_join(r["palette"]) for r in good]
            columns["palette_shares"] = [_join(r["palette_shares"], "{:.4f}") for r in good]
            for name in TONE_COLUMNS:
                columns[name] = [r[name] for r in good]
            hues = np.stack([r["hue_histogram"] for r in good]).astype(np.float32)
            self.features.write_part(pa.table(columns), {"hue_histogram": hues})
            self.summary.analysed += len(good)
        if bad:
            self.ws.record_errors(STAGE, bad)
            self.summary.failed += len(bad)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        log.warning("a colors batch failed as a whole: %s", exc)
        self.store(batch, crash_records(batch, exc))


def analyse_colors(ws: Workspace, options: ColorOptions = ColorOptions(),
                   workers: int | None = None, progress: bool = False, engine: str = "local",
                   address: str | None = None) -> ColorSummary:
    """Compute the color features of every media not yet done with these options."""
    started = time.monotonic()
    params = options.params()
    summary = ColorSummary(metric=params["metric"])
    with ws.writing():
        features = color_set(ws, options)
        features.register()
        done = features.done_ids()
        failed = {r["path"] for r in ws.query("SELECT path FROM errors WHERE stage = ?", (STAGE,))}
        everything = media_paths(ws)
        todo = [(m, p) for m, p in everything if m not in done and p not in failed]
        summary.already = len(everything) - len(todo)
        if todo:
            size = max(1, options.batch_size)
            batches = [todo[i:i + size] for i in range(0, len(todo), size)]
            task = functools.partial(colors_batch, params, DecodeOptions())
            writer = _Writer(ws, features, summary)
            with ProgressReporter("colors", len(todo), enabled=progress) as bar:
                make_engine(engine, address, workers).map(task, batches, writer.store,
                                                          writer.fail, bar)
    table = _read(features)
    if table is not None and len(table):
        summary.corpus = {n: float(table[n].mean()) for n in COLOR_NAMES}
    summary.seconds = round(time.monotonic() - started, 2)
    log.info("colors: %d analysed, %d already, %d failed in %.1f s", summary.analysed,
             summary.already, summary.failed, summary.seconds)
    return summary


def _read(features: FeatureSet, hue: bool = False) -> pd.DataFrame | None:
    """The set as a frame (latest row per media), with hue_<degree> columns if ``hue``."""
    frames = []
    for part in features.parts():
        frame = pd.read_parquet(part)
        if hue:
            hist = FeatureSet.arrays_of(part).get("hue_histogram")
            width = 360 // HUE_BINS
            if hist is not None:
                frame = pd.concat([frame, pd.DataFrame(
                    hist, columns=[f"hue_{k * width:03d}" for k in range(hist.shape[1])])], axis=1)
        frames.append(frame)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True).drop_duplicates("media_id", keep="last")


def _latest_set(ws: Workspace) -> FeatureSet:
    import json

    rows = ws.query("SELECT version, params FROM feature_sets WHERE name = ? "
                    "ORDER BY created DESC", (EXTRACTOR,))
    for row in rows:
        candidate = FeatureSet(ws, EXTRACTOR, row["version"], json.loads(row["params"]))
        if candidate.parts():
            return candidate
    raise PicsiftError(f"no color features in {ws.dir}: run 'picsift colors' first")


def colors_table(ws: Workspace, options: ColorOptions | None = None,
                 hue: bool = True) -> pd.DataFrame:
    """One row per media: path, media_id, the 12 shares, palette, tone columns (and the hue
    histogram as hue_000 ... hue_340 columns, each bin's start in degrees)."""
    features = color_set(ws, options) if options is not None else _latest_set(ws)
    table = _read(features, hue=hue)
    if table is None:
        raise PicsiftError(f"no color features in {ws.dir}: run 'picsift colors' first")
    paths = pd.DataFrame(media_paths(ws), columns=["media_id", "path"])[["path", "media_id"]]
    table = paths.merge(table, on="media_id", how="inner")
    return table.sort_values("path", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- pictures
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgb(hexcode: str) -> tuple[int, int, int]:
    return int(hexcode[1:3], 16), int(hexcode[3:5], 16), int(hexcode[5:7], 16)


def _split(value: Any, number: bool = False) -> list[Any]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    items = [v for v in str(value or "").split(";") if v]
    return [float(v) for v in items] if number else items


def _strip(colors: list[str], shares: list[float], width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    total = sum(shares) or 1.0
    x = 0.0
    for n, (hexcode, share) in enumerate(zip(colors, shares)):
        right = width if n == len(colors) - 1 else x + width * share / total
        if right - x >= 0.5:
            draw.rectangle((round(x), 0, max(round(x), round(right) - 1), height - 1),
                           fill=_rgb(hexcode))
        x = right
    draw.rectangle((0, 0, width - 1, height - 1), outline=(200, 200, 200))
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def palette_strip_png(palette: list[str] | str, shares: list[float] | str, width: int = 240,
                      height: int = 22) -> bytes:
    """A strip of the palette's colors, each as wide as its share (PNG bytes)."""
    return _png(_strip(_split(palette), _split(shares, True), width, height))


def names_strip_png(row: dict[str, Any] | pd.Series, width: int = 240, height: int = 12) -> bytes:
    """The 12 named-color shares of one row as a stacked strip (PNG bytes)."""
    names = [n for n in COLOR_NAMES if float(row[n]) > 0]
    return _png(_strip([DISPLAY_HEX[n] for n in names], [float(row[n]) for n in names],
                       width, height))


def data_uri(png: bytes) -> str:
    """PNG bytes inlined as a data: URI (reports stay one self-contained file)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def palette_strip_data_uri(row: dict[str, Any] | pd.Series) -> str:
    """The palette strip of a colors_table row, ready for an <img src=...>."""
    return data_uri(palette_strip_png(row["palette"], row["palette_shares"]))


def corpus_summary_png(source: Workspace | pd.DataFrame, path: str | Path) -> Path:
    """Plot the corpus: mean share of each named color as colored bars, and the distribution
    of colorfulness with Hasler & Süsstrunk's verbal levels marked."""
    table = colors_table(source, hue=False) if isinstance(source, Workspace) else source
    width, pad = 900, 60
    image = Image.new("RGB", (width, 640), "white")
    draw = ImageDraw.Draw(image)
    _share_bars(draw, table, (pad, 40, width - 20, 300))
    _colorfulness_histogram(draw, table, (pad, 380, width - 20, 590))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, "PNG")
    os.replace(tmp, path)
    return path


def _share_bars(draw: ImageDraw.ImageDraw, table: pd.DataFrame,
                box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    means = [float(table[n].mean()) if len(table) else 0.0 for n in COLOR_NAMES]
    peak = max(max(means), 1e-9)
    draw.text((left - 40, top - 30), f"mean share of each color name ({len(table)} images)",
              fill="black", font=_font(16))
    draw.line((left, bottom, right, bottom), fill="black")
    slot = (right - left) / len(COLOR_NAMES)
    for n, (name, value) in enumerate(zip(COLOR_NAMES, means)):
        x0 = left + n * slot + slot * 0.15
        x1 = left + (n + 1) * slot - slot * 0.15
        y0 = bottom - (bottom - top - 20) * value / peak
        draw.rectangle((x0, y0, x1, bottom), fill=_rgb(DISPLAY_HEX[name]), outline=(90, 90, 90))
        draw.text((x0, y0 - 16), f"{value:.1%}", fill="black", font=_font(12))
        draw.text((x0, bottom + 6), name, fill="black", font=_font(13))


def _colorfulness_histogram(draw: ImageDraw.ImageDraw, table: pd.DataFrame,
                            box: tuple[int, int, int, int], bins: int = 30) -> None:
    left, top, right, bottom = box
    values = table["colorfulness"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    high = max(120.0, float(values.max()) if len(values) else 0.0)
    counts, edges = np.histogram(values, bins=bins, range=(0.0, high))
    peak = max(int(counts.max()) if len(counts) else 0, 1)
    grey = int(table["greyscale"].sum()) if len(table) else 0
    draw.text((left - 40, top - 40), f"colorfulness M (Hasler & Susstrunk 2003); {grey} greyscale "
              "images", fill="black", font=_font(16))
    draw.line((left, bottom, right, bottom), fill="black")
    scale = (right - left) / high
    for count, lo, hi in zip(counts, edges[:-1], edges[1:]):
        if count:
            y0 = bottom - (bottom - top - 10) * count / peak
            draw.rectangle((left + lo * scale, y0, left + hi * scale - 1, bottom),
                           fill=(70, 110, 190))
    draw.text((left - 30, top), str(peak), fill="grey", font=_font(12))
    for level, label in COLORFULNESS_LEVELS:
        if level <= high:
            x = left + level * scale
            draw.line((x, top, x, bottom), fill=(200, 80, 80))
            draw.text((x + 2, top - 14), label, fill=(200, 80, 80), font=_font(11))
    for tick in range(0, int(high) + 1, 20):
        draw.text((left + tick * scale - 6, bottom + 6), str(tick), fill="black", font=_font(12))


# ---------------------------------------------------------------- the page
def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


_PAGE_CSS = (".strip{display:block;margin:.25rem 0;border-radius:2px}"
             ".plot{max-width:100%;border:1px solid #eee}"
             ".hex{font-family:monospace;font-size:.7rem;color:#555;word-break:normal}")


def _tile(ws: Workspace, row: pd.Series) -> str:
    from picsift.report.thumbs import thumbnail_data_uri

    uri = thumbnail_data_uri(ws, row["media_id"], row["path"])
    img = f"<img src='{uri}' alt=''>" if uri else "<div class='muted'>(no preview)</div>"
    top = sorted(((float(row[n]), n) for n in COLOR_NAMES), reverse=True)[:3]
    names = ", ".join(f"{n} {v:.0%}" for v, n in top if v > 0)
    flag = " · greyscale" if bool(row["greyscale"]) else ""
    return (f"<div class='tile'>{img}"
            f"<img class='strip' src='{palette_strip_data_uri(row)}' width='170' alt='palette'>"
            f"<img class='strip' src='{data_uri(names_strip_png(row, 170, 8))}' width='170' "
            f"alt='named colors'><span class='hex'>{_e(' '.join(_split(row['palette'])))}</span>"
            f"<br>{_e(os.path.basename(str(row['path'])))}<br><span class='muted'>{_e(names)}; "
            f"colorfulness {float(row['colorfulness']):.0f}{flag}</span></div>")


def build_colors_page(ws: Workspace, table: pd.DataFrame, out: str | Path,
                      plot: Path | None = None, params: dict[str, Any] | None = None) -> Path:
    """Write the colors page: the corpus plot, then every image (up to MAX_PAGE_IMAGES) with
    its thumbnail, palette strip and named-color strip."""
    from picsift.report.html import _CSS

    out = Path(out)
    picture = ""
    if plot is not None and Path(plot).exists():
        uri = data_uri(Path(plot).read_bytes())
        picture = f"<img class='plot' src='{uri}' alt='corpus colors'>"
    tiles = "".join(_tile(ws, row) for _, row in table.head(MAX_PAGE_IMAGES).iterrows())
    more = (f"<p class='muted'>… {len(table) - MAX_PAGE_IMAGES} more images: see the CSV.</p>"
            if len(table) > MAX_PAGE_IMAGES else "")
    settings = ", ".join(f"{k}={v}" for k, v in (params or {}).items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift colors</title>"
            f"<style>{_CSS}{_PAGE_CSS}</style></head><body><h1>Colors</h1>"
            f"<p class='muted'>{_e(ws.dir)} · {_e(time.strftime('%Y-%m-%d %H:%M'))} · "
            f"{len(table)} images · {_e(settings)}</p>{picture}"
            f"<h2>Images</h2><p class='muted'>Each image: its palette (width = share), then "
            f"the 12 named colors (width = share).</p><div class='grid'>{tiles}</div>{more}"
            "</body></html>")
    return write_page(out, page)
