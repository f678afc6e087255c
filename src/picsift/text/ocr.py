"""OCR: text blocks with boxes, confidence and reading order, in many scripts, offline.

How (chosen by measurement, ../shared/research/models-faces-ocr-text.md and
benchmarks/text.py): RapidOCR's packaged PP-OCRv6 models find the text lines and read
Latin and Chinese; when the user's languages include a script RapidOCR cannot read
(Cyrillic, Arabic, Greek, Hebrew...), tesseract reads the same line crops with those
language packs, and its reading is taken where it is in such a script. The detector runs
first on its own scale, so an image without text costs one detection pass and nothing more.
RapidOCR is pinned to its bundled files: it never tries the network.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from picsift.errors import PicsiftError
from picsift.text import tesseract
from picsift.text.scripts import RIGHT_TO_LEFT, dominant_script, script_share

log = logging.getLogger(__name__)

# Languages read by default: the scripts our users meet most (Latin, Cyrillic, Arabic, Chinese).
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "pt", "it", "ru", "uk", "ar", "zh")
# Scripts RapidOCR's packaged recogniser reads (Latin alphabet languages and Chinese/Japanese).
RAPID_SCRIPTS = frozenset({"latin", "han", "kana"})
# Script of each language that needs tesseract (anything not in RAPID_SCRIPTS).
LANGUAGE_SCRIPT: dict[str, str] = {
    "ru": "cyrillic", "uk": "cyrillic", "be": "cyrillic", "bg": "cyrillic", "sr": "cyrillic",
    "mk": "cyrillic", "ar": "arabic", "fa": "arabic", "ur": "arabic", "he": "hebrew",
    "el": "greek", "hi": "devanagari", "ko": "hangul", "th": "thai", "ka": "georgian",
    "hy": "armenian",
}
VERSION = "1"
# Tesseract's mean word confidence above which its non-Latin reading replaces RapidOCR's:
# right readings scored 0.86-0.97 on our rendered set, garbage from Latin lines 0.34-0.48.
TESSERACT_TRUST = 0.6


@dataclass(frozen=True)
class OcrOptions:
    """What to read and how hard to look. Every field is part of the stored result's identity."""

    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    max_side: int = 960             # detector input size: 960 halves the time of 736-min
    min_confidence: float = 0.5     # blocks read less surely than this are dropped
    tesseract: bool = True          # use tesseract for non-Latin/CJK scripts when installed
    threads: int = 1                # onnxruntime threads per worker process

    def params(self) -> dict[str, Any]:
        return {"languages": list(self.languages), "max_side": self.max_side,
                "min_confidence": self.min_confidence, "tesseract": self.tesseract,
                "version": VERSION}


@dataclass
class TextBlock:
    text: str
    confidence: float
    box: list[list[float]]          # four (x, y) corners in the image's pixels, clockwise
    line: int                       # reading-order line number, from 0
    order: int                      # reading-order position of the block in the image
    engine: str                     # "rapidocr" or "tesseract"
    script: str


@dataclass
class OcrResult:
    blocks: list[TextBlock] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """Full text in reading order: blocks of a line joined by spaces, lines by newlines."""
        lines: dict[int, list[str]] = {}
        for block in sorted(self.blocks, key=lambda b: b.order):
            lines.setdefault(block.line, []).append(block.text)
        return "\n".join(" ".join(parts) for _, parts in sorted(lines.items()))


def _rapidocr_files() -> dict[str, Path]:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise PicsiftError("OCR needs the text extra: pip install 'picsift[text]'")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = {"det": models / "PP-OCRv6_det_small.onnx", "rec": models / "PP-OCRv6_rec_small.onnx"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:  # never let RapidOCR fetch them: picsift runs offline
        raise PicsiftError(f"RapidOCR's packaged models are missing ({', '.join(missing)}); "
                           "reinstall rapidocr==3.10.0")
    return files


def engine_versions() -> str:
    """What produced a result, for every row: 'rapidocr-3.10.0/PP-OCRv6;tesseract-5.3.0'."""
    parts = [f"rapidocr-{importlib.metadata.version('rapidocr')}/PP-OCRv6-small"]
    program = tesseract.binary()
    if program:
        parts.append("tesseract")
    return ";".join(parts)


class OcrEngine:
    """Reads text from RGB images; one per worker process (models load once)."""

    def __init__(self, options: OcrOptions | None = None) -> None:
        self.options = options or OcrOptions()
        self._rapid = _load_rapidocr(self.options.max_side, self.options.threads)
        self._tess_languages = self._tesseract_languages()

    def _tesseract_languages(self) -> list[str]:
        """Traineddata to read non-Latin/CJK lines with; [] when none is needed or installed."""
        if not self.options.tesseract:
            return []
        wanted = [lang for lang in self.options.languages if lang in LANGUAGE_SCRIPT]
        if not wanted:
            return []
        installed = tesseract.installed_languages()
        codes = [tesseract.TESSERACT_CODES[lang] for lang in wanted
                 if tesseract.TESSERACT_CODES.get(lang) in installed]
        missing = [lang for lang in wanted if tesseract.TESSERACT_CODES.get(lang) not in installed]
        if missing:
            log.warning("no tesseract language pack for %s: text in %s will not be read "
                        "(Debian: apt-get install %s)", ", ".join(missing),
                        ", ".join(sorted({LANGUAGE_SCRIPT[m] for m in missing})),
                        " ".join(f"tesseract-ocr-{tesseract.TESSERACT_CODES.get(m, m).replace('_', '-')}"
                                 for m in missing))
        if codes and "eng" in installed:
            codes.append("eng")  # Latin words (names, handles, URLs) inside those lines
        return codes

    def _second_try(self, crops: list[np.ndarray], readings: list[tesseract.LineReading]) -> None:
        """Re-read mixed-script or unsure lines with their script's languages only and the
        other binarisation; keep whichever reading tesseract is surer of. One extra call per
        script, only for images that have such lines (Cyrillic read with the Arabic pack
        loaded came out as 'a لغ Тблько кОФЕ'; alone: 'ТОЛЬКО КОФЕ')."""
        groups: dict[str, list[int]] = {}
        for index, reading in enumerate(readings):
            script = _doubtful(reading)
            if script:
                groups.setdefault(script, []).append(index)
        for script, indices in groups.items():
            languages = _languages_of(script, self._tess_languages)
            for modes in (["auto"] * len(indices), [_alternative(crops[i]) for i in indices]):
                again = tesseract.read_lines([crops[i] for i in indices], languages, modes=modes)
                for i, reading in zip(indices, again):
                    if reading.text and reading.confidence > readings[i].confidence:
                        readings[i] = reading

    @property
    def scripts(self) -> list[str]:
        """Scripts this engine can read with its current installation."""
        extra = {LANGUAGE_SCRIPT[lang] for lang in self.options.languages
                 if tesseract.TESSERACT_CODES.get(lang) in set(self._tess_languages)}
        return sorted(RAPID_SCRIPTS | extra)

    def read(self, image: Image.Image) -> OcrResult:
        """All text blocks of one image, in reading order."""
        started = time.perf_counter()
        rgb = np.asarray(image.convert("RGB"))
        bgr = rgb[:, :, ::-1].copy()
        found = self._rapid(bgr, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(found, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return OcrResult([], round(time.perf_counter() - started, 4))
        boxes = [np.asarray(b, np.float32) for b in boxes]
        lines = [_upright(crop_quad(bgr, box, pad=0.0)) for box in boxes]
        recognised = self._rapid.recognize_txt(lines)  # one batched pass over all lines
        texts = list(recognised.txts or [""] * len(lines))
        scores = [float(s) for s in (recognised.scores or [0.0] * len(lines))]
        candidates = list(zip(boxes, texts, scores))
        blocks = self._choose(rgb, candidates)
        _order(blocks)
        return OcrResult(blocks, round(time.perf_counter() - started, 4))

    def _choose(self, rgb: np.ndarray, candidates: list[tuple[np.ndarray, str, float]]
                ) -> list[TextBlock]:
        """Per line: RapidOCR's reading, or tesseract's where it is in a script RapidOCR lacks."""
        readings: list[tesseract.LineReading | None] = [None] * len(candidates)
        if self._tess_languages:
            crops = [crop_quad(rgb, box) for box, _, _ in candidates]
            try:
                readings = list(tesseract.read_lines(crops, self._tess_languages))
                self._second_try(crops, readings)
            except Exception as exc:  # noqa: BLE001 - a broken tesseract must not stop OCR
                log.warning("tesseract could not read this image: %s", exc)
        blocks = []
        for (box, text, score), other in zip(candidates, readings):
            engine = "rapidocr"
            if other is not None and other.text:
                script = dominant_script(other.text)
                if (script not in RAPID_SCRIPTS and script != "none"
                        and script_share(other.text, script) >= 0.5
                        and other.confidence >= TESSERACT_TRUST):
                    text, score, engine = other.text, other.confidence, "tesseract"
            text = " ".join(text.split())
            if score < self.options.min_confidence or not _looks_like_text(text, engine):
                continue
            blocks.append(TextBlock(text, round(score, 4), box.round(1).tolist(), 0, 0, engine,
                                    dominant_script(text)))
        return blocks


@functools.lru_cache(maxsize=2)
def _looks_like_text(text: str, engine: str) -> bool:
    """False for the specks detectors find in textures: a lone "O" or "8" in a photo, or
    tesseract's "о Ш" and "بم" on a cup and a horse (seen on the demo corpus). A block
    needs two letters or digits in a row (one CJK character is a word); a tesseract
    reading, taken only for other scripts, needs a word of three letters."""
    from picsift.text.scripts import char_script

    words = [w for w in (''.join(ch if ch.isalnum() else ' ' for ch in text)).split()]
    if any(char_script(ch) in ("han", "kana", "hangul") for ch in text):
        return True
    if engine == "tesseract":
        return any(sum(ch.isalpha() for ch in w) >= 3 for w in words)
    return any(len(w) >= 2 for w in words)


def _doubtful(reading: tesseract.LineReading) -> str | None:
    """The script to re-read a line in, when tesseract's reading looks mixed or unsure."""
    script = dominant_script(reading.text)
    if script in RAPID_SCRIPTS or script == "none":
        return None
    if script_share(reading.text, script) < 0.9 or reading.confidence < TESSERACT_TRUST:
        return script
    return None


def _alternative(crop: np.ndarray) -> str:
    """The binarisation 'auto' did not choose for this crop."""
    first = tesseract.prepare_crop(crop, "auto")
    dark = tesseract.prepare_crop(crop, "dark-text")
    return "light-text" if np.array_equal(first, dark) else "dark-text"


def _languages_of(script: str, codes: list[str]) -> list[str]:
    wanted = {tesseract.TESSERACT_CODES[lang] for lang, s in LANGUAGE_SCRIPT.items() if s == script}
    return [c for c in codes if c in wanted] + (["eng"] if "eng" in codes else [])


@functools.lru_cache(maxsize=2)
def _load_rapidocr(max_side: int, threads: int) -> Any:
    files = _rapidocr_files()
    from rapidocr import RapidOCR

    return RapidOCR(params={
        "Global.log_level": "error", "Global.use_cls": False,
        "Det.model_path": str(files["det"]), "Rec.model_path": str(files["rec"]),
        "Det.limit_type": "max", "Det.limit_side_len": max_side,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def crop_quad(rgb: np.ndarray, box: np.ndarray, pad: float = 0.15) -> np.ndarray:
    """The text line inside a detector quadrilateral, straightened, with a small margin."""
    import cv2

    box = box.astype(np.float32)
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    width, height = max(width, 2), max(height, 2)
    margin = pad * height
    target = np.float32([[margin, margin], [width + margin, margin],
                         [width + margin, height + margin], [margin, height + margin]])
    matrix = cv2.getPerspectiveTransform(box, target)
    size = (int(width + 2 * margin), int(height + 2 * margin))
    return cv2.warpPerspective(rgb, matrix, size, flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)


def _upright(line: np.ndarray) -> np.ndarray:
    """Vertical text lines (taller than wide) are turned to read left to right."""
    return np.rot90(line).copy() if line.shape[0] >= 1.5 * line.shape[1] else line


def _order(blocks: list[TextBlock]) -> None:
    """Number lines top to bottom and blocks within a line in their script's direction.

    Two blocks share a line when their vertical extents overlap by more than half of the
    smaller one's height: robust to slight rotation and to blocks of different heights.
    """
    def extent(b: TextBlock) -> tuple[float, float]:
        ys = [p[1] for p in b.box]
        return min(ys), max(ys)

    lines: list[list[TextBlock]] = []
    for block in sorted(blocks, key=lambda b: sum(extent(b)) / 2):
        top, bottom = extent(block)
        for line in lines:
            l_top = min(extent(b)[0] for b in line)
            l_bottom = max(extent(b)[1] for b in line)
            overlap = min(bottom, l_bottom) - max(top, l_top)
            if overlap > 0.5 * min(bottom - top, l_bottom - l_top):
                line.append(block)
                break
        else:
            lines.append([block])
    order = 0
    for number, line in enumerate(lines):
        rtl = sum(b.script in RIGHT_TO_LEFT for b in line) >= len(line) / 2
        line.sort(key=lambda b: min(p[0] for p in b.box), reverse=rtl)
        for block in line:
            block.line, block.order = number, order
            order += 1
    blocks.sort(key=lambda b: b.order)
