"""Crop screenshots of posts: the picture alone, the post's own text, or everything above a
user-given piece of the platform's UI.

Why this works without a model: a screenshot's UI is drawn in a handful of exact flat colours
(page, cards, comment bubbles), while a photo almost never fills large areas with one exact
colour. So the UI palette is found from the image's large flat areas; every pixel far from
all palette colours is "content"; a morphological opening removes text strokes (thin) and
keeps photos (solid); solid blocks are joined, their sides moved to where the picture really
ends, and each large one is a photo. Text lines come from OCR when asked and installed, else
from bands of ink rows outside the photos; the post's text is the lines above (or beside)
the photo, down to the first UI break. The reference mode is AMMICO's "crop posts": SIFT
keypoints of a UI snippet (e.g. the 'Like Comment Share' bar) are matched into the
screenshot (RANSAC similarity, checked by pixel correlation) and what lies above the match is
kept. See docs/crop.md for the modes, the decisions, the measurements and the limits.
"""

from __future__ import annotations

import csv
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image

from picsift.errors import MediaError, PicsiftError

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels, x1/y1 exclusive
MODES = ("photo", "text", "both", "below-reference")
VERSION = "1"

# A UI colour must cover at least this share of the flat pixels' image (page, card, bubbles).
PALETTE_MIN_SHARE = 0.01
PALETTE_MAX_COLORS = 6
FLAT_RANGE = 3          # 3x3 max-min (per channel) at or under which a pixel is flat
UI_TOLERANCE = 12       # a pixel within this (max channel difference) of a palette colour is UI
EXACT = 3               # ... and within this, exactly that UI colour (JPEG noise allowed)
ANCHOR_SHARE = 0.3      # a photo's outer line keeps this share of the strength just inside it
INK_CONTRAST = 40       # text strokes differ from their background by more than this
MIN_DENSITY = 0.5       # share of content pixels a photo box must have
WHOLE_SHARE = 0.97      # a region this wide and tall is the whole image: not a screenshot
# Words of the button bar in the languages our users read most (OCR hint, never required).
BAR_WORDS = frozenset(
    "like comment share reply retweet repost quote send save likes comments shares "
    "gefällt kommentieren teilen antworten j'aime commenter partager répondre "
    "me gusta comentar compartir responder curtir comentar compartilhar "
    "mi piace commenta condividi rispondi нравится комментировать поделиться "
    "подобається коментувати поширити".split()
)


@dataclass(frozen=True)
class Region:
    """A found region: its box, how sure (0-1), what it is and which method found it."""

    box: Box
    score: float
    kind: str = "photo"
    method: str = "ui-palette"


class ReferenceMatch(NamedTuple):
    """Where a reference snippet was found, what is kept above it, and how well it matched."""

    match_box: Box
    kept_box: Box
    inliers: int
    scale: float           # size in the screenshot / size of the snippet
    similarity: float      # normalised cross-correlation of the snippet with the matched pixels


@dataclass
class Layout:
    """What the photo and text finders share: the UI palette and the content mask."""

    palette: np.ndarray            # (k, 3) int16 UI colours, most frequent first
    distance: np.ndarray           # uint8 (h, w): max channel distance to the nearest UI colour
    kernel: int                    # opening size that removes text strokes at this image size

    @property
    def content(self) -> np.ndarray:
        """Pixels far from every UI colour: photos, text strokes, icons."""
        return self.distance > UI_TOLERANCE

    @property
    def ink(self) -> np.ndarray:
        """Pixels clearly unlike the UI: text strokes, not JPEG ringing around them."""
        return self.distance > INK_CONTRAST

    @property
    def background(self) -> np.ndarray:
        return self.palette[0] if len(self.palette) else np.array([255, 255, 255], np.int16)


# ---------------------------------------------------------------------------------------------
# layout: UI palette and content mask


def _channel_max(image: np.ndarray) -> np.ndarray:
    """Largest of the three channels (numpy's max over a last axis of 3 is ten times slower)."""
    r, g, b = cv2.split(np.ascontiguousarray(image))
    return cv2.max(cv2.max(r, g), b)


def _colour_distance(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """uint8 largest channel difference of every pixel to one colour."""
    scalar = tuple(float(v) for v in colour) + (0.0,)
    return _channel_max(cv2.absdiff(rgb, scalar))


def _local_range(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel 3x3 max-min over the channels: 0 on flat UI fills, high on texture and edges."""
    kernel = np.ones((3, 3), np.uint8)
    return _channel_max(cv2.dilate(rgb, kernel) - cv2.erode(rgb, kernel))


def ui_palette(rgb: np.ndarray, *, min_share: float = PALETTE_MIN_SHARE,
               max_colors: int = PALETTE_MAX_COLORS, tolerance: int = UI_TOLERANCE) -> np.ndarray:
    """The UI's fill colours (page first, then cards, bubbles, bars); empty for a plain photo.

    The page is the most frequent flat colour; it must run along at least half the image's
    border and be one exact colour there (a plain photo's dark or pale background spreads
    over many shades). Other flat colours join only when one fills most of a solid block, as
    one exact colour, and that block sits on the page (a comment bubble, a card); blocks
    inside a photo (a clipped black coat, a smooth sky) are surrounded by the photo instead.
    """
    candidates = _flat_colours(rgb, min_share / 2, tolerance)
    if (not candidates or _border_share(rgb, candidates[0], tolerance) < 0.5
            or _border_exact_share(rgb, candidates[0], tolerance) < 0.7):
        return np.zeros((0, 3), np.int16)
    palette = [candidates[0]]
    kernel = _kernel(rgb.shape)
    floor = 0.002 * rgb.shape[0] * rgb.shape[1]
    while len(palette) < max_colors:
        content = content_mask(rgb, np.array(palette))
        panel = _panel_colour(rgb, _solid_components(content, kernel, floor),
                              [c for c in candidates if not any(c is p for p in palette)],
                              palette, tolerance)
        if panel is None:
            break
        palette.append(panel)
    return np.array(palette, np.int16).reshape(-1, 3)


def _flat_colours(rgb: np.ndarray, min_share: float, tolerance: int) -> list[np.ndarray]:
    """Colours of the flat pixels covering at least ``min_share`` of the image, most first
    (32-level bins, each bin's colour its median, near-duplicates dropped)."""
    pixels = rgb[_local_range(rgb) <= FLAT_RANGE]
    total = rgb.shape[0] * rgb.shape[1]
    if len(pixels) < min_share * total:
        return []
    step = max(1, len(pixels) // 400_000)
    pixels = pixels[::step]
    q = pixels >> 3
    bins = (q[:, 0].astype(np.int32) << 10) | (q[:, 1].astype(np.int32) << 5) | q[:, 2]
    counts = np.bincount(bins, minlength=1 << 15)
    colours: list[np.ndarray] = []
    for index in np.argsort(counts)[::-1][:32]:
        if counts[index] * step < min_share * total:
            break
        colour = np.median(pixels[bins == index], axis=0).astype(np.int16)
        if not any(np.abs(colour - c).max() <= tolerance for c in colours):
            colours.append(colour)
    return colours


def _border_share(rgb: np.ndarray, colour: np.ndarray, tolerance: int) -> float:
    """Share of the image's outermost pixels within ``tolerance`` of ``colour``."""
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])[None]
    return float((_colour_distance(edge, colour) <= tolerance).mean())


def _border_exact_share(rgb: np.ndarray, colour: np.ndarray, tolerance: int) -> float:
    """Of the border pixels near ``colour``, the share within ``EXACT`` of it: a page is one
    exact colour out there, far from any content (even after JPEG), while a photo's dark or
    pale background spreads over many nearby shades."""
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])[None]
    distance = _colour_distance(edge, colour)
    near = distance <= tolerance
    return float((distance[near] <= EXACT).mean()) if near.any() else 0.0


def _panel_colour(rgb: np.ndarray, boxes: list[Box], candidates: list[np.ndarray],
                  palette: list[np.ndarray], tolerance: int) -> np.ndarray | None:
    """A candidate colour that makes one solid block a UI panel (a bubble, a card): it fills
    most of the block as one exact colour, the block's inner margin is that colour or the
    UI's (panels pad their text; a black night sky has stars up to its edges), and the block
    sits on the UI (a clipped dark coat inside a photo is surrounded by the photo)."""
    for box in boxes:
        x0, y0, x1, y1 = box
        patch = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        for colour in candidates:
            distance = _colour_distance(patch, colour)
            near = distance <= tolerance
            if near.mean() < 0.5 or (distance[near] <= EXACT).mean() < 0.6:
                continue
            inner = ui_distance(_ring(rgb, box, -3), np.array([*palette, colour]))
            outer = ui_distance(_ring(rgb, box, 3), np.array(palette))
            if (inner <= tolerance).mean() >= 0.93 and (outer <= tolerance).mean() >= 0.5:
                return colour
    return None


def _ring(rgb: np.ndarray, box: Box, offset: int) -> np.ndarray:
    """The one-pixel ring ``offset`` pixels outside ``box`` (inside when negative), as 1 x n."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box[0] - offset, box[1] - offset, box[2] - 1 + offset, box[3] - 1 + offset
    parts = [rgb[y, max(0, x0):min(w, x1 + 1)] for y in (y0, y1) if 0 <= y < h]
    parts += [rgb[max(0, y0):min(h, y1 + 1), x] for x in (x0, x1) if 0 <= x < w]
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros((1, 1, 3), np.uint8)
    return np.ascontiguousarray(np.concatenate(parts)[None])


def _kernel(shape: tuple[int, ...]) -> int:
    """Opening size that removes text strokes at this screenshot size (about 1.2% of it)."""
    return max(7, round(min(shape[:2]) * 0.012)) | 1


def ui_distance(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Per pixel, the largest channel difference to the nearest UI colour (255 without UI)."""
    if not len(palette):
        return np.full(rgb.shape[:2], 255, np.uint8)
    nearest = None
    for colour in palette:
        distance = _colour_distance(rgb, colour)
        nearest = distance if nearest is None else cv2.min(nearest, distance)
    return nearest


def content_mask(rgb: np.ndarray, palette: np.ndarray, tolerance: int = UI_TOLERANCE) -> np.ndarray:
    """True where a pixel is farther than ``tolerance`` from every UI colour."""
    return ui_distance(rgb, palette) > tolerance


def analyse_layout(rgb: np.ndarray) -> Layout:
    """Palette, content mask and the stroke-removing kernel size for one screenshot."""
    rgb = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
    palette = ui_palette(rgb)
    return Layout(palette, ui_distance(rgb, palette), _kernel(rgb.shape))


# ---------------------------------------------------------------------------------------------
# photos


def find_photo_regions(rgb: np.ndarray, *, min_area: float = 0.05,
                       text_boxes: Sequence[Box] | None = None,
                       layout: Layout | None = None) -> list[Region]:
    """Photographic regions of a screenshot, top to bottom then left to right.

    ``min_area`` is the smallest photo as a share of the image (avatars and icons are smaller).
    ``text_boxes`` (OCR lines, optional) reject a candidate that is mostly text, such as a
    text post on a gradient background. A plain photo (no UI around it) comes back as one
    region covering the whole image with method "whole-image"; a text-only post gives [].
    """
    layout = layout or analyse_layout(rgb)
    content = layout.content
    h, w = content.shape
    # pieces as small as a few kernels: a photo with scattered UI-like pixels (faint stars on
    # black, dark clothes in dark mode) opens into fragments that are joined below
    boxes = _merge_touching(_solid_components(content, layout.kernel, 4 * layout.kernel ** 2),
                            layout.distance)
    boxes = sorted(boxes, key=_area, reverse=True)
    for i, box in enumerate(boxes):  # the largest first: small pieces of a photo get absorbed
        rivals = [b for j, b in enumerate(boxes) if j != i and _area(b) >= 0.25 * _area(box)]
        boxes[i] = _refine(box, layout.distance, rivals)
    boxes = _merge_touching(boxes, layout.distance)
    regions = []
    for box in boxes:
        area = (box[2] - box[0]) * (box[3] - box[1])
        if area < min_area * h * w:
            continue
        density = float(content[box[1]:box[3], box[0]:box[2]].mean())
        if density < MIN_DENSITY or _mostly_text(box, text_boxes):
            continue
        whole = (box[2] - box[0]) >= WHOLE_SHARE * w and (box[3] - box[1]) >= WHOLE_SHARE * h
        method = "whole-image" if whole else "ui-palette"
        regions.append(Region((0, 0, w, h) if whole else box, round(density, 3), "photo", method))
    return sorted(regions, key=lambda r: (r.box[1], r.box[0]))


def _solid_components(content: np.ndarray, kernel: int, min_pixels: float) -> list[Box]:
    """Boxes of what survives an opening: solid blocks of content, not thin text strokes."""
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))
    opened = cv2.morphologyEx(content.astype(np.uint8), cv2.MORPH_OPEN, element)
    n, _, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    boxes = []
    for x, y, bw, bh, _ in stats[1:n]:
        if bw * bh >= min_pixels and bw >= 2 * kernel and bh >= 2 * kernel:
            boxes.append((int(x), int(y), int(x + bw), int(y + bh)))
    return boxes


def _merge_touching(boxes: list[Box], distance: np.ndarray) -> list[Box]:
    """Join pieces of one photo (split where its colours come near the UI's), never two
    photos of a grid: between those runs a line of the UI colour, exact or JPEG-noisy."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _same_photo(boxes[i], boxes[j], distance):
                    a, b = boxes[i], boxes.pop(j)
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    merged = True
                    break
            if merged:
                break
    return boxes


def _same_photo(a: Box, b: Box, distance: np.ndarray) -> bool:
    """Overlapping or touching; or aligned, with every line between them off the UI colours
    and at least half as strong as the pieces' facing edges."""
    overlap_x = min(a[2], b[2]) - max(a[0], b[0])
    overlap_y = min(a[3], b[3]) - max(a[1], b[1])
    if overlap_x > 0 and overlap_y > 0:
        return True
    if overlap_x > 0.5 * min(a[2] - a[0], b[2] - b[0]):      # one above the other
        top, bottom = (a, b) if a[1] < b[1] else (b, a)
        x0, x1 = max(a[0], b[0]), min(a[2], b[2])
        rows = ([max(top[1], top[3] - 1 - k) for k in range(3)]
                + [min(bottom[3] - 1, bottom[1] + k) for k in range(3)])
        edges = distance[rows, x0:x1]
        gap = distance[top[3]:bottom[1], x0:x1]
        return _bridges(gap, edges, axis=1)
    if overlap_y > 0.5 * min(a[3] - a[1], b[3] - b[1]):      # side by side
        left, right = (a, b) if a[0] < b[0] else (b, a)
        y0, y1 = max(a[1], b[1]), min(a[3], b[3])
        cols = ([max(left[0], left[2] - 1 - k) for k in range(3)]
                + [min(right[2] - 1, right[0] + k) for k in range(3)])
        edges = distance[y0:y1, cols].T
        gap = distance[y0:y1, left[2]:right[0]].T
        return _bridges(gap, edges, axis=1)
    return False


def _bridges(gap: np.ndarray, edges: np.ndarray, axis: int) -> bool:
    """Whether the lines of ``gap`` (rows) are photo, judged against the strength of the two
    pieces just inside their facing edges (``edges``: one row per piece, several lines deep)."""
    if gap.size == 0:
        return True   # touching
    strength = np.minimum(gap, 32).mean(axis=axis)
    facing = float(np.minimum(edges, 32).mean(axis=-1).reshape(2, -1).max(axis=1).min())
    off = (gap > EXACT).mean(axis=axis)
    return bool(off.min() >= 0.9 and strength.min() >= 0.5 * facing)


def _refine(box: Box, distance: np.ndarray, others: Sequence[Box], most: int = 3) -> Box:
    """Move each side of a photo box to where the picture really ends.

    The opening keeps only what is clearly unlike the UI, so a photo's border area in
    colours near the page's is left out. A side grows line by line while the next line is
    mostly not exactly a UI colour, at least half as strong (mean distance to the UI,
    capped) as the line before it and ``ANCHOR_SHARE`` as strong as the picture just inside:
    a photo fades gradually, its border with the page (however JPEG blurred it) is a drop.
    A side that runs into another photo (``others``; pieces much smaller than this one are
    not others but parts of it) stops before the weakest line on the way: the gap of a grid.
    Then up to ``most`` outer lines much weaker than the picture (JPEG ringing) are shaved.
    """
    h, w = distance.shape
    strength = np.minimum(distance, 32).astype(np.float32) / 32
    off = distance > EXACT
    x0, y0, x1, y1 = box

    def rows(y: int) -> tuple[float, float]:
        return float(off[y, x0:x1].mean()), float(strength[y, x0:x1].mean())

    def cols(x: int) -> tuple[float, float]:
        return float(off[y0:y1, x].mean()), float(strength[y0:y1, x].mean())

    def row_box(y: int) -> Box:
        return (x0, y, x1, y + 1)

    def col_box(x: int) -> Box:
        return (x, y0, x + 1, y1)

    y0 = _grow(rows, row_box, y0, -1, h, others)
    y1 = _grow(rows, row_box, y1 - 1, 1, h, others) + 1
    x0 = _grow(cols, col_box, x0, -1, w, others)
    x1 = _grow(cols, col_box, x1 - 1, 1, w, others) + 1
    return _shave((x0, y0, x1, y1), strength, most)


def _grow(line: Any, line_box: Any, edge: int, step: int, size: int,
          others: Sequence[Box]) -> int:
    """The last line of the photo going outward from line ``edge`` by ``step`` (see _refine);
    ``line(i)`` gives (share off the UI colours, strength) of line i, of ``size`` lines."""
    inside = [line(i)[1] for i in (edge, edge - step, edge - 2 * step) if 0 <= i < size]
    anchor = max(inside)
    powers = [inside[0]]
    at = edge
    while 0 <= at + step < size:
        nxt = at + step
        if any(_area(_intersect(line_box(nxt), o)) for o in others):
            if at == edge:
                return edge
            weakest = int(np.argmin(powers[1:])) + 1   # lines crossed, the weakest is the gap
            return edge + step * (weakest - 1)
        share, power = line(nxt)
        if share < 0.5 or power < 0.5 * powers[-1] or power < ANCHOR_SHARE * anchor:
            return at
        powers.append(power)
        at = nxt
    return at


def _shave(box: Box, strength: np.ndarray, most: int) -> Box:
    """Drop up to ``most`` outer lines much weaker than the picture inside (JPEG ringing)."""
    x0, y0, x1, y1 = box

    def row(y: int) -> float:
        return float(strength[y, x0:x1].mean())

    def col(x: int) -> float:
        return float(strength[y0:y1, x].mean())

    for _ in range(most):
        if y1 - y0 > 2 * most and row(y0) < ANCHOR_SHARE * max(row(y0 + 1), row(y0 + 2)):
            y0 += 1
        if y1 - y0 > 2 * most and row(y1 - 1) < ANCHOR_SHARE * max(row(y1 - 2), row(y1 - 3)):
            y1 -= 1
        if x1 - x0 > 2 * most and col(x0) < ANCHOR_SHARE * max(col(x0 + 1), col(x0 + 2)):
            x0 += 1
        if x1 - x0 > 2 * most and col(x1 - 1) < ANCHOR_SHARE * max(col(x1 - 2), col(x1 - 3)):
            x1 -= 1
    return (x0, y0, x1, y1)


def _mostly_text(box: Box, text_boxes: Sequence[Box] | None) -> bool:
    if not text_boxes:
        return False
    area = (box[2] - box[0]) * (box[3] - box[1])
    covered = sum(_area(_intersect(box, t)) for t in text_boxes)
    return covered > 0.6 * area


# ---------------------------------------------------------------------------------------------
# the post's own text


@dataclass
class TextLine:
    """One line of text (OCR line or band of ink), with what decides whether it is the post's."""

    box: Box
    contrast: float          # how far its strokes are from the background (secondary text is paler)
    words: int               # clusters separated by wide gaps: a button bar has 3 or more, spread
    spread: float            # share of the width its clusters span
    text: str = ""


def find_post_text_region(rgb: np.ndarray, photo_boxes: Sequence[Box],
                          ocr_blocks: Sequence[Any] | None = None, *,
                          bar_top: int | None = None, layout: Layout | None = None) -> Box | None:
    """The box of the post's own text (author and body), without the comments below.

    With photos: the text lines above or beside the photos, stopping at the first UI break
    (separator line or button bar). Without: the lines above the first break, less trailing
    pale lines (reaction counts are drawn in the secondary colour). ``ocr_blocks`` (objects
    with ``box`` = four corners, e.g. picsift.text.ocr.TextBlock) give the lines; without them
    lines are bands of content pixels. ``bar_top`` (from a reference match) is a known break.
    """
    layout = layout or analyse_layout(rgb)
    if not len(layout.palette):
        return None  # no UI at all: a plain picture, not a post
    h, w = layout.content.shape
    ink = _ink_without_photos(layout.ink, photo_boxes)
    separators = _separator_rows(ink)
    for y in separators:
        ink[y, :] = False
    if ocr_blocks:
        lines = _ocr_lines(rgb, layout, ocr_blocks)
    else:
        lines = _ink_lines(rgb, layout, ink)
    lines = [ln for ln in lines if not any(_inside(ln.box, p) for p in photo_boxes)]
    chosen = _post_lines(lines, photo_boxes, separators, bar_top) if lines else []
    if not chosen:
        return None
    heights = sorted(ln.box[3] - ln.box[1] for ln in chosen)
    pad = max(2, round(0.1 * heights[len(heights) // 2]))
    box = _union([ln.box for ln in chosen])
    box = (max(0, box[0] - pad), max(0, box[1] - pad), min(w, box[2] + pad), min(h, box[3] + pad))
    if box[2] - box[0] >= WHOLE_SHARE * w and box[3] - box[1] >= WHOLE_SHARE * h:
        return None  # the whole picture: not a post's text block
    return box


def _ink_without_photos(content: np.ndarray, photo_boxes: Sequence[Box]) -> np.ndarray:
    ink = content.copy()
    for x0, y0, x1, y1 in photo_boxes:
        ink[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = False
    return ink


def _separator_rows(ink: np.ndarray) -> list[int]:
    """Rows of thin horizontal rules (over half the width, at most a few pixels thick)."""
    h, w = ink.shape
    full = ink.mean(axis=1) >= 0.5
    rows, y = [], 0
    limit = max(3, round(0.004 * h))
    while y < h:
        if full[y]:
            end = y
            while end < h and full[end]:
                end += 1
            if end - y <= limit:
                rows.extend(range(y, end))
            y = end
        else:
            y += 1
    return rows


def _ink_lines(rgb: np.ndarray, layout: Layout, ink: np.ndarray) -> list[TextLine]:
    """Bands of rows holding ink, split where a whole row is empty."""
    h, w = ink.shape
    counts = ink.sum(axis=1)
    busy = counts >= max(2, round(0.003 * w))
    lines, y = [], 0
    while y < h:
        if not busy[y]:
            y += 1
            continue
        end = y
        while end < h and (busy[end] or (end + 1 < h and busy[end + 1])):
            end += 1
        cols = np.flatnonzero(ink[y:end].any(axis=0))
        if len(cols) and end - y >= 4:
            box = (int(cols[0]), y, int(cols[-1]) + 1, end)
            lines.append(_describe(rgb, layout, ink, box))
        y = end
    return lines


def _ocr_lines(rgb: np.ndarray, layout: Layout, blocks: Sequence[Any]) -> list[TextLine]:
    """OCR blocks grouped into lines by vertical overlap."""
    boxes = [(_quad_box(b.box), getattr(b, "text", "")) for b in blocks]
    groups: list[list[tuple[Box, str]]] = []
    for box, text in sorted(boxes, key=lambda item: (item[0][1] + item[0][3]) / 2):
        for group in groups:
            g = _union([b for b, _ in group])
            overlap = min(g[3], box[3]) - max(g[1], box[1])
            if overlap > 0.5 * min(g[3] - g[1], box[3] - box[1]):
                group.append((box, text))
                break
        else:
            groups.append([(box, text)])
    h, w = layout.content.shape
    lines = []
    for group in groups:
        box = _clip(_union([b for b, _ in group]), w, h)
        if _area(box) == 0:
            continue
        line = _describe(rgb, layout, layout.ink, box)
        line.words = max(line.words, len(group)) if _spread(group, w) >= 0.5 else line.words
        line.text = " ".join(t for _, t in sorted(group, key=lambda item: item[0][0]))
        lines.append(line)
    return lines


def _spread(group: list[tuple[Box, str]], width: int) -> float:
    return (max(b[2] for b, _ in group) - min(b[0] for b, _ in group)) / width


def _describe(rgb: np.ndarray, layout: Layout, ink: np.ndarray, box: Box) -> TextLine:
    """Contrast (98th percentile distance of its ink from the background) and word clusters."""
    x0, y0, x1, y1 = box
    mask = ink[y0:y1, x0:x1]
    distance = _colour_distance(np.ascontiguousarray(rgb[y0:y1, x0:x1]), layout.background)
    contrast = float(np.percentile(distance[mask], 98)) if mask.any() else 0.0
    w = ink.shape[1]
    cols = np.flatnonzero(mask.any(axis=0)) + x0
    gap = max(8, round(0.06 * w))
    clusters = 1 + int(np.sum(np.diff(cols) > gap)) if len(cols) else 0
    spread = (cols[-1] - cols[0] + 1) / w if len(cols) else 0.0
    return TextLine(box, contrast, clusters, float(spread))


def _is_bar(line: TextLine) -> bool:
    """A button bar: three or more short labels spread over most of the width."""
    words = {t.strip(".,:;!·").lower() for t in line.text.split()}
    if words and len(words & BAR_WORDS) >= 2 and len(words) <= 6:
        return True
    return line.words >= 3 and line.spread >= 0.5


def _post_lines(lines: list[TextLine], photo_boxes: Sequence[Box], separators: list[int],
                bar_top: int | None) -> list[TextLine]:
    """The lines that belong to the post: from the top down to the first UI break."""
    lines = sorted(lines, key=lambda ln: ln.box[1])
    first = lines[0].box[1]
    breaks = [y for y in separators if y > first]
    breaks += [ln.box[1] for ln in lines if _is_bar(ln) and ln.box[1] > first]
    if bar_top is not None and bar_top > first:
        breaks.append(bar_top)
    stop = min(breaks) if breaks else None
    chosen = [ln for ln in lines if stop is None or ln.box[3] <= stop]
    if photo_boxes:
        bottom = max(p[3] for p in photo_boxes)
        return [ln for ln in chosen if ln.box[3] <= bottom]
    return _drop_trailing_secondary(chosen)


def _drop_trailing_secondary(lines: list[TextLine]) -> list[TextLine]:
    """Reaction counts and time stamps just above the bar are paler than the body line
    before them (the UI's secondary colour); a post's own lines keep one contrast."""
    kept = list(lines)
    while len(kept) > 1 and kept[-1].contrast < 0.85 * kept[-2].contrast:
        kept.pop()
    return kept


# ---------------------------------------------------------------------------------------------
# reference snippets (AMMICO's crop posts)


def locate_reference(rgb: np.ndarray, reference_rgb: np.ndarray, *, min_inliers: int = 8,
                     min_similarity: float = 0.4, try_inverted: bool = True,
                     cache: dict | None = None) -> ReferenceMatch | None:
    """Find a UI snippet in a screenshot at any scale from about 0.5x to 2x.

    SIFT keypoints of the snippet are matched to the screenshot's (two nearest candidates
    each: UI bars repeat their icons and words, which defeats Lowe's ratio test), a RANSAC
    similarity (scale, shift, tiny rotation: a screenshot at another size) picks the
    consistent ones, the projected snippet must be an upright rectangle, and the pixels
    there must correlate with the snippet (``min_similarity``, normalised cross-correlation),
    which rejects chance geometry in photos. ``try_inverted`` also tries the snippet's tones
    inverted, so a light-mode snippet finds the bar of a dark-mode screenshot. ``cache`` (a
    dict kept per screenshot) saves the screenshot's keypoints across several snippets.
    """
    scene = _features(rgb, cache)
    if scene[1] is None or len(scene[0]) < min_inliers:
        return None
    gray = cv2.cvtColor(np.ascontiguousarray(reference_rgb[:, :, :3]), cv2.COLOR_RGB2GRAY)
    scene_gray = cache.get("gray") if cache is not None else None
    if scene_gray is None:
        scene_gray = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2GRAY)
        if cache is not None:
            cache["gray"] = scene_gray
    best: tuple[float, ReferenceMatch] | None = None
    for variant in ([gray, 255 - gray] if try_inverted else [gray]):
        found = _match_one(scene_gray, scene, variant, min_inliers, min_similarity)
        if found and (best is None or found[0] > best[0]):
            best = found
    return None if best is None else best[1]


def crop_below_reference(rgb: np.ndarray, reference_rgb: np.ndarray,
                         **kwargs: Any) -> tuple[Box, Box] | None:
    """(box of the matched snippet, box kept above it) or None when the snippet is not there.

    As AMMICO's crop posts, the snippet and everything below it are cropped away; the kept
    box is the full width from the top of the image to the top edge of the match."""
    found = locate_reference(rgb, reference_rgb, **kwargs)
    return None if found is None else (found.match_box, found.kept_box)


_SIFT_MIN_SIDE = 1000   # smaller screenshots are enlarged so that small UI text has keypoints
_SIFT_MAX_SIDE = 2400
_REFERENCE_MIN_HEIGHT = 48


def _features(rgb: np.ndarray, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoint positions (in the image's pixels) and descriptors of the screenshot."""
    if cache is not None and "scene" in cache:
        return cache["scene"]
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2GRAY)
    result = _sift_points(gray, _SIFT_MIN_SIDE / max(gray.shape), _SIFT_MAX_SIDE / max(gray.shape))
    if cache is not None:
        cache["scene"] = result
    return result


def _sift_points(gray: np.ndarray, at_least: float,
                 at_most: float = 8.0) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT on ``gray`` resized by ``at_least`` (>= 1) capped at ``at_most``; points in the
    original pixels."""
    factor = min(max(1.0, at_least), at_most)
    if factor != 1.0:
        interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
        gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=interpolation)
    keypoints, descriptors = _sift().detectAndCompute(gray, None)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2) / factor
    return points, descriptors


@functools.lru_cache(maxsize=1)
def _sift() -> Any:
    return cv2.SIFT_create()


def _match_one(scene_gray: np.ndarray, scene: tuple[np.ndarray, np.ndarray | None],
               gray: np.ndarray, min_inliers: int, min_similarity: float
               ) -> tuple[float, ReferenceMatch] | None:
    """One snippet (one tone variant) against the screenshot: (similarity, match) or None."""
    points, descriptors = _sift_points(gray, _REFERENCE_MIN_HEIGHT / gray.shape[0])
    scene_points, scene_desc = scene
    if descriptors is None or len(points) < min_inliers:
        return None
    matches = _one_to_one(cv2.BFMatcher(cv2.NORM_L2).knnMatch(descriptors, scene_desc, k=2))
    src = np.float32([points[m.queryIdx] for m in matches]).reshape(-1, 2)
    dst = np.float32([scene_points[m.trainIdx] for m in matches]).reshape(-1, 2)
    if len(src) < min_inliers:
        return None
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                              ransacReprojThreshold=4.0, maxIters=4000)
    if model is None or len(np.unique(dst[mask.ravel() > 0], axis=0)) < min_inliers:
        return None
    rh, rw = gray.shape
    corners = np.float32([[0, 0], [rw, 0], [rw, rh], [0, rh]]).reshape(-1, 1, 2)
    quad = cv2.transform(corners, model).reshape(4, 2)
    scale = _plausible_rectangle(quad, rw, rh)
    if scale is None:
        return None
    h, w = scene_gray.shape
    box = (int(round(quad[:, 0].min())), int(round(quad[:, 1].min())),
           int(round(quad[:, 0].max())), int(round(quad[:, 1].max())))
    similarity = _similarity(scene_gray, gray, box)
    if similarity < min_similarity:
        return None
    match = _clip(box, w, h)
    inliers = int(mask.sum())
    return similarity, ReferenceMatch(match, (0, 0, w, match[1]), inliers, round(scale, 3),
                                      round(similarity, 3))


def _one_to_one(pairs: Sequence[Sequence[Any]]) -> list[Any]:
    """Both nearest candidates of every snippet keypoint, but each screenshot keypoint used
    once (its closest): otherwise one 'hub' keypoint collects many matches and RANSAC settles
    on a model that shrinks the whole snippet onto it."""
    used: set[int] = set()
    kept = []
    for match in sorted((m for pair in pairs for m in pair), key=lambda m: m.distance):
        if match.trainIdx not in used:
            used.add(match.trainIdx)
            kept.append(match)
    return kept


def _plausible_rectangle(quad: np.ndarray, width: float, height: float) -> float | None:
    """The scale of the match when the projected snippet is an upright rectangle, else None."""
    top = quad[1] - quad[0]
    left = quad[3] - quad[0]
    sx, sy = float(np.hypot(*top)) / width, float(np.hypot(*left)) / height
    if not (0.25 <= sx <= 4.0 and 0.25 <= sy <= 4.0) or abs(sx - sy) > 0.2 * max(sx, sy):
        return None
    if abs(top[1]) > 0.05 * abs(top[0]) + 2 or abs(left[0]) > 0.05 * abs(left[1]) + 2:
        return None
    return (sx + sy) / 2


def _similarity(scene_gray: np.ndarray, gray: np.ndarray, box: Box) -> float:
    """Normalised cross-correlation of the snippet with the pixels under ``box``, compared at
    the smaller of the two sizes (enlarging blurs text and would lower a true match)."""
    h, w = scene_gray.shape
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = _clip(box, w, h)
    if x1 - x0 < 4 or y1 - y0 < 4 or (cx1 - cx0) * (cy1 - cy0) < 0.7 * (x1 - x0) * (y1 - y0):
        return 0.0  # degenerate, or mostly outside the picture
    rh, rw = gray.shape
    # the part of the snippet that lies inside the picture
    sx, sy = rw / (x1 - x0), rh / (y1 - y0)
    ref = gray[round((cy0 - y0) * sy):round((cy1 - y0) * sy),
               round((cx0 - x0) * sx):round((cx1 - x0) * sx)]
    patch = scene_gray[cy0:cy1, cx0:cx1]
    if ref.size == 0 or patch.size == 0:
        return 0.0
    if patch.shape[0] * patch.shape[1] > ref.shape[0] * ref.shape[1]:
        patch = cv2.resize(patch, (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_AREA)
    else:
        ref = cv2.resize(ref, (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_AREA)
    patch, ref = patch.astype(np.float32), ref.astype(np.float32)
    if patch.std() < 1 or ref.std() < 1:
        return 0.0
    return float(cv2.matchTemplate(patch, ref, cv2.TM_CCOEFF_NORMED)[0, 0])


# ---------------------------------------------------------------------------------------------
# a folder of screenshots


@dataclass(frozen=True)
class CropOptions:
    """How to crop: the mode, the smallest photo, whether to read text with OCR, and how to
    write (JPEG sources stay JPEG at ``jpeg_quality``, everything else becomes PNG)."""

    mode: str = "photo"
    min_area: float = 0.05
    ocr: bool = True
    jpeg_quality: int = 95
    min_side: int = 16             # crops thinner than this are not written

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PicsiftError(f"unknown crop mode {self.mode!r}: choose one of {', '.join(MODES)}")


@dataclass
class CropSummary:
    """What a crop run did, for the CLI and the caller."""

    images: int = 0
    cropped: int = 0                # images with at least one crop written
    crops: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    whole_photo: int = 0            # not screenshots: the photo is the whole image
    nothing_found: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    ocr_used: bool = False
    seconds: float = 0.0
    table: Path | None = None
    failures_table: Path | None = None
    images_table: Path | None = None


CROP_COLUMNS = ["source", "crop", "kind", "x0", "y0", "x1", "y1", "score", "method",
                "source_width", "source_height", "created"]
IMAGE_COLUMNS = ["source", "outcome", "n_crops", "width", "height", "seconds", "note"]
FAILURE_COLUMNS = ["source", "reason"]


def crop_folder(src: str | Path, dest: str | Path, *, references: Iterable[str | Path] = (),
                mode: str = "photo", ocr: bool = True, min_area: float = 0.05,
                workers: int | None = 1, progress: bool = False,
                options: CropOptions | None = None) -> CropSummary:
    """Crop every image under ``src`` (recursively) into ``dest``, mirroring sub-folders.

    Originals are only read. Crops never overwrite a file (name_1, name_2...). ``dest``
    gets crops.csv (one row per crop: source, crop, kind, box in source pixels, score,
    method), images.csv (one row per source: outcome) and failures.csv (files that could not
    be decoded, with the reason); all three are appended to when they exist. ``workers``
    > 1 (or None: all cores) runs on a process pool, worth it with OCR.
    """
    from picsift.engine.local import LocalEngine
    from picsift.engine.progress import ProgressReporter

    options = options or CropOptions(mode=mode, min_area=min_area, ocr=ocr)
    src, dest = Path(src).resolve(), Path(dest).resolve()
    if src == dest:
        raise PicsiftError(f"--to must be another folder than {src}: "
                           "crops never go among the originals")
    refs = tuple(_load_reference(Path(r)) for r in references)
    if options.mode == "below-reference" and not refs:
        raise PicsiftError("mode below-reference needs at least one --reference snippet of the UI")
    files, problems = _sources(src, dest)
    dest.mkdir(parents=True, exist_ok=True)
    if options.ocr and options.mode in ("text", "both") and _ocr_reader(options) is None:
        options = CropOptions(**{**options.__dict__, "ocr": False})  # not installed: ink lines
    job = _Job(src, dest, options, refs)
    summary = CropSummary(ocr_used=options.ocr and options.mode in ("text", "both"))
    started = time.perf_counter()
    outcomes: list[dict] = []
    failures = list(problems)

    def store(batch: list[str], results: list[dict]) -> None:
        outcomes.extend(results)

    def fail(batch: list[str], exc: BaseException) -> None:  # a bug, never a bad file
        log.error("crop: batch failed: %s", exc)
        failures.extend((path, f"analysis failed: {exc}") for path in batch)

    batches = [files[i:i + 4] for i in range(0, len(files), 4)]
    engine = LocalEngine(1 if len(batches) < 2 else workers)
    with ProgressReporter("crop", len(files), enabled=progress) as bar:
        engine.map(functools.partial(_crop_batch, job=job), batches, store, fail, bar)
    outcomes.sort(key=lambda o: o["source"])
    crop_rows = [row for o in outcomes for row in o["crops"]]
    failures.extend((o["source"], o["failure"]) for o in outcomes if o["failure"])
    _summarise(summary, outcomes, crop_rows, failures, len(files))
    summary.table = _append_csv(dest / "crops.csv", CROP_COLUMNS, crop_rows)
    summary.images_table = _append_csv(dest / "images.csv", IMAGE_COLUMNS,
                                       [o["image"] for o in outcomes if o["image"]])
    if failures:
        summary.failures_table = _append_csv(
            dest / "failures.csv", FAILURE_COLUMNS, [{"source": p, "reason": r} for p, r in failures])
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary



@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to crop a batch (picklable)."""

    src: Path
    dest: Path
    options: CropOptions
    references: tuple[np.ndarray, ...] = ()


def _summarise(summary: CropSummary, outcomes: list[dict], crop_rows: list[dict],
               failures: list[tuple[str, str]], n_files: int) -> None:
    summary.images = n_files
    summary.crops = len(crop_rows)
    for row in crop_rows:
        summary.by_kind[row["kind"]] = summary.by_kind.get(row["kind"], 0) + 1
    for o in outcomes:
        outcome = o["image"]["outcome"] if o["image"] else "failed"
        summary.cropped += outcome == "cropped"
        summary.whole_photo += outcome == "whole-photo"
        summary.nothing_found += outcome == "nothing-found"
    summary.failed = len(failures)
    summary.failures = failures


def _sources(src: Path, dest: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Image files under ``src`` in a stable order, leaving out ``dest`` when it lies inside."""
    from picsift.scan.discover import Candidate, discover

    if not src.exists():
        raise PicsiftError(f"no such file or folder: {src}")
    files, problems = [], []
    for found in discover([str(src)], videos=False):
        if isinstance(found, Candidate):
            if dest in Path(found.path).parents:
                continue
            files.append(found.path)
        else:
            problems.append((found.path, found.reason))
    return files, problems


def _crop_batch(batch: list[str], job: _Job) -> list[dict]:
    """Worker task: crop each file of the batch; a bad file becomes a failure, never an error."""
    reader = _ocr_reader(job.options) if job.options.mode in ("text", "both") else None
    return [_crop_one(Path(path), job, reader) for path in batch]


def _crop_one(path: Path, job: _Job, reader: Any) -> dict:
    """Decode, find and write one image's crops; returns its rows for the tables."""
    from picsift.media.decode import load_image

    started = time.perf_counter()
    outcome: dict = {"source": str(path), "crops": [], "image": None, "failure": ""}
    try:
        image = load_image(path)
    except MediaError as exc:
        outcome["failure"] = exc.reason
        log.info("crop: skipped %s: %s", path, exc.reason)
        return outcome
    try:
        regions, note = find_regions(np.asarray(image), job.options, job.references, reader)
        outcome["crops"] = _write_crops(image, path, job, regions)
    except Exception as exc:  # one odd picture must not stop the run
        log.exception("crop: failed on %s", path)
        outcome["failure"] = f"analysis failed: {exc}"
        return outcome
    written = len(outcome["crops"])
    state = "cropped" if written else ("whole-photo" if note == "whole-photo" else "nothing-found")
    outcome["image"] = {"source": str(path), "outcome": state, "n_crops": written,
                        "width": image.width, "height": image.height,
                        "seconds": round(time.perf_counter() - started, 3), "note": note}
    return outcome


def find_regions(rgb: np.ndarray, options: CropOptions, references: Sequence[np.ndarray] = (),
                 reader: Any = None) -> tuple[list[Region], str]:
    """Every region to crop from one picture under ``options``, and a note on the outcome."""
    layout = analyse_layout(rgb)
    regions: list[Region] = []
    notes: list[str] = []
    if options.mode == "below-reference":
        found = _best_reference(rgb, references)
        if found is None:
            return [], "no reference matched"
        return [Region(found.kept_box, found.similarity, "post",
                       f"sift-reference(inliers={found.inliers},scale={found.scale})")], ""
    blocks = reader(Image.fromarray(rgb)) if reader is not None else None
    text_boxes = [_quad_box(b.box) for b in blocks] if blocks else None
    photos = find_photo_regions(rgb, min_area=options.min_area, text_boxes=text_boxes,
                                layout=layout)
    whole = [r for r in photos if r.method == "whole-image"]
    photos = [r for r in photos if r.method != "whole-image"]
    if whole:
        notes.append("whole-photo")
    if options.mode in ("photo", "both"):
        regions.extend(photos)
    if options.mode in ("text", "both") and not whole:
        bar = _best_reference(rgb, references) if references else None
        box = find_post_text_region(rgb, [r.box for r in photos], blocks,
                                    bar_top=bar.match_box[1] if bar else None, layout=layout)
        if box is not None:
            method = ("ocr-lines" if blocks else "ink-lines") + ("+reference" if bar else "")
            regions.append(Region(box, 1.0, "text", method))
    return regions, ";".join(notes)


def _best_reference(rgb: np.ndarray, references: Sequence[np.ndarray]) -> ReferenceMatch | None:
    """The reference that matched best (AMMICO keeps the one with most matches; picsift the
    highest pixel similarity, which does not favour snippets with more keypoints)."""
    cache: dict = {}
    best = None
    for ref in references:
        found = locate_reference(rgb, ref, cache=cache)
        if found and (best is None or found.similarity > best.similarity):
            best = found
    return best


def _load_reference(path: Path) -> np.ndarray:
    from picsift.media.decode import load_image

    try:
        return np.asarray(load_image(path))
    except MediaError as exc:
        raise PicsiftError(f"cannot read reference snippet {path}: {exc.reason}") from exc


_READERS: dict[bool, Any] = {}


def _ocr_reader(options: CropOptions) -> Any:
    """A function image -> OCR blocks, once per process; None when OCR is off or missing
    (then text lines come from the pixels)."""
    if not options.ocr:
        return None
    if True not in _READERS:
        try:
            from picsift.text.ocr import OcrEngine, OcrOptions

            engine = OcrEngine(OcrOptions(tesseract=False))
            _READERS[True] = lambda image: engine.read(image).blocks
        except Exception as exc:  # the text extra is optional: fall back, say so once
            log.warning("crop: OCR unavailable (%s); text lines come from the pixels", exc)
            _READERS[True] = None
    return _READERS[True]


# ---------------------------------------------------------------------------------------------
# writing


def _write_crops(image: Image.Image, path: Path, job: _Job, regions: list[Region]) -> list[dict]:
    """Write each region as its own file next to where the source sits under ``src``."""
    relative = path.relative_to(job.src) if job.src.is_dir() else Path(path.name)
    folder = job.dest / relative.parent
    jpeg = path.suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif")
    counts: dict[str, int] = {}
    rows = []
    for region in regions:
        x0, y0, x1, y1 = region.box
        if x1 - x0 < job.options.min_side or y1 - y0 < job.options.min_side:
            continue
        counts[region.kind] = counts.get(region.kind, 0) + 1
        n = counts[region.kind]
        stem = f"{path.stem}_{region.kind}" + (str(n) if n > 1 else "")
        target = _write_new(image.crop(region.box), folder, stem, jpeg, job.options.jpeg_quality)
        rows.append({"source": str(path), "crop": str(target), "kind": region.kind,
                     "x0": x0, "y0": y0, "x1": x1, "y1": y1, "score": region.score,
                     "method": region.method, "source_width": image.width,
                     "source_height": image.height,
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return rows


def _write_new(crop: Image.Image, folder: Path, stem: str, jpeg: bool, quality: int) -> Path:
    """Write under a name that does not exist yet (stem, stem_1, stem_2...), never replacing."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".jpg" if jpeg else ".png"
    n = 0
    while True:
        target = folder / (stem + (f"_{n}" if n else "") + suffix)
        try:
            handle = open(target, "xb")  # exclusive create: safe against a parallel run too
        except FileExistsError:
            n += 1
            continue
        with handle:
            if jpeg:
                crop.save(handle, "JPEG", quality=quality, subsampling=0)
            else:  # level 1: a third of the time of the default, files about 6 % larger
                crop.save(handle, "PNG", compress_level=1)
        return target


def _append_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """Append rows (header only for a new file) so earlier runs' provenance is kept."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------
# boxes


def _quad_box(points: Any) -> Box:
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (int(np.floor(arr[:, 0].min())), int(np.floor(arr[:, 1].min())),
            int(np.ceil(arr[:, 0].max())), int(np.ceil(arr[:, 1].max())))


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _intersect(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _clip(box: Box, w: int, h: int) -> Box:
    return (max(0, min(w, box[0])), max(0, min(h, box[1])),
            max(0, min(w, box[2])), max(0, min(h, box[3])))


def _inside(box: Box, container: Box, share: float = 0.8) -> bool:
    return _area(_intersect(box, container)) >= share * max(1, _area(box))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inter = _area(_intersect(a, b))
    union = _area(a) + _area(b) - inter
    return inter / union if union else 0.0


__all__ = ["CropOptions", "CropSummary", "Layout", "ReferenceMatch", "Region", "analyse_layout",
           "content_mask", "crop_below_reference", "crop_folder", "find_photo_regions",
           "find_post_text_region", "find_regions", "iou", "locate_reference", "ui_palette"]

