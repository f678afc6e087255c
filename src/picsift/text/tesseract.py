"""Reading text-line crops with Debian's tesseract, one process call per image.

Why tesseract at all: the OCR recogniser that ships inside a PyPI package (RapidOCR) reads
Latin and Chinese only; tesseract's language packs read Cyrillic, Arabic, Greek, Hebrew and
more, and are excellent on clean screenshots (../shared/research: CER 0.045 on Ukrainian,
0.039 on Arabic). Why one call per image: a tesseract process costs ~0.1-0.3 s to start and
load its models, so the line crops of an image are stacked into one picture and read
together; each word is mapped back to its crop by its vertical position.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
from PIL import Image

# ISO 639-1 -> tesseract traineddata name (Debian package tesseract-ocr-<name with - for _>).
TESSERACT_CODES: dict[str, str] = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "pt": "por", "it": "ita", "nl": "nld",
    "pl": "pol", "tr": "tur", "ru": "rus", "uk": "ukr", "be": "bel", "bg": "bul", "sr": "srp",
    "mk": "mkd", "ar": "ara", "fa": "fas", "ur": "urd", "he": "heb", "el": "ell", "hi": "hin",
    "zh": "chi_sim", "ja": "jpn", "ko": "kor", "th": "tha", "ka": "kat", "hy": "hye",
}
LINE_HEIGHT = 56   # crops are scaled to this height: tesseract likes ~30 px letters
GAP = 24           # white rows between stacked crops, so lines never merge


@dataclass(frozen=True)
class LineReading:
    text: str
    confidence: float  # mean word confidence, 0..1 (tesseract reports 0..100)


def binary() -> str | None:
    """Path of the tesseract program ($PICSIFT_TESSERACT overrides), or None if absent."""
    return os.environ.get("PICSIFT_TESSERACT") or shutil.which("tesseract")


@functools.lru_cache(maxsize=4)
def installed_languages(program: str | None = None) -> frozenset[str]:
    """Traineddata names tesseract can load ('eng', 'ukr', ...); empty without tesseract."""
    program = program or binary()
    if not program:
        return frozenset()
    try:
        listing = subprocess.run([program, "--list-langs"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line.strip() for line in listing.splitlines()[1:] if line.strip())


def prepare_crop(rgb: np.ndarray, mode: str = "auto") -> np.ndarray:
    """A line crop as black text on white, LINE_HEIGHT tall: what tesseract reads best.

    ``auto``: light backgrounds (screenshots, even low-contrast ones) are split by Otsu's
    threshold. Otherwise the text is taken to be the light strokes (meme captions: white
    letters with a black outline over a photo, dark-mode posts), which tesseract misses
    unless they are isolated by a high threshold and inverted. ``dark-text`` and
    ``light-text`` force one reading, for a second try when ``auto`` guessed wrong (a white
    caption over a white sky looks like a light background).
    """
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = LINE_HEIGHT / max(1, gray.shape[0])
    gray = cv2.resize(gray, None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if mode == "light-text":
        return np.where(gray >= 200, 0, 255).astype(np.uint8)
    if mode == "dark-text" or np.median(border) >= 128:
        _, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    elif np.std(border) < 25:  # flat dark background: dark mode
        _, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        out = np.where(gray >= 200, 0, 255).astype(np.uint8)
    return out


def stack(crops: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One white picture with the crops one under the other; the y-range of each."""
    width = max(c.shape[1] for c in crops) + 2 * GAP
    height = sum(c.shape[0] + GAP for c in crops) + GAP
    canvas = np.full((height, width), 255, np.uint8)
    spans, y = [], GAP
    for crop in crops:
        canvas[y : y + crop.shape[0], GAP : GAP + crop.shape[1]] = crop
        spans.append((y, y + crop.shape[0]))
        y += crop.shape[0] + GAP
    return canvas, spans


def read_lines(crops: list[np.ndarray], languages: list[str], *, modes: list[str] | None = None,
               timeout: float = 60.0) -> list[LineReading]:
    """Read each RGB line crop with tesseract ``languages`` (traineddata names).

    ``modes`` (one per crop) choose the binarisation, see prepare_crop.
    Returns one reading per crop, in order; an empty reading where tesseract saw nothing.
    Raises OSError/TimeoutExpired when tesseract cannot run: the caller records that.
    """
    if not crops:
        return []
    program = binary()
    if not program:
        raise OSError("tesseract is not installed")
    modes = modes or ["auto"] * len(crops)
    canvas, spans = stack([prepare_crop(c, m) for c, m in zip(crops, modes)])
    png = io.BytesIO()
    Image.fromarray(canvas).save(png, "PNG")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    done = subprocess.run(
        [program, "stdin", "stdout", "-l", "+".join(languages), "--psm", "6", "tsv"],
        input=png.getvalue(), capture_output=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise OSError(f"tesseract failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    words: list[list[tuple[tuple[int, ...], str, float]]] = [[] for _ in crops]
    for row in done.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        top, height, conf = int(cells[7]), int(cells[9]), float(cells[10])
        centre = top + height / 2
        for index, (y0, y1) in enumerate(spans):
            if y0 - GAP / 2 <= centre <= y1 + GAP / 2:
                order = tuple(int(c) for c in cells[2:6])  # block, paragraph, line, word
                words[index].append((order, cells[11], max(conf, 0.0)))
                break
    readings = []
    for found in words:
        found.sort()
        text = " ".join(w for _, w, _ in found)
        confidence = float(np.mean([c for _, _, c in found])) / 100 if found else 0.0
        readings.append(LineReading(text, round(confidence, 4)))
    return readings
