"""Face identity embeddings: dlib's ResNet (128-d, "same person" when L2 < 0.6).

The model files come from the PyPI package ``face_recognition_models`` (CC0) and run on
``dlib-bin``; both are optional, so everything here loads lazily and says clearly what to
install when they are missing. ``face_recognition_models/__init__.py`` imports
``pkg_resources``, which setuptools >= 81 removed, so the files are located with
``importlib.util.find_spec`` without importing the package.

Alignment (measured, docs/faces-models.md): dlib's 5-point shape predictor is run on a box
converted to the shape dlib's own detector draws, and dlib cuts its 150 x 150 chip from those
points, as the network was trained. For a face rolled beyond ``ROLL_CHIP_DEG`` (lying, upside
down), where the predictor's upright start shape fails, the chip is cut by ``aligned_crop``
from the detector's five landmarks instead.

``aligned_crop`` needs only OpenCV: attribute models (emotion, mask, age) use it too.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from picsift.faces.types import Face

log = logging.getLogger(__name__)

SAME_PERSON_THRESHOLD = 0.6     # dlib's published operating point; our calibration agrees
EMBED_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
ROLL_CHIP_DEG = 30.0

# Where the five Face landmarks (right eye, left eye, nose tip, right and left mouth corner)
# fall in dlib's face chip with padding 0, as fractions of the chip side. Measured: dlib's
# 5-point predictor + get_face_chip on the test faces and their mirror images, RetinaFace
# landmarks mapped into that chip, averaged and made left-right symmetric.
TEMPLATE_5 = np.array([
    [0.2453, 0.2181],
    [0.7547, 0.2181],
    [0.5000, 0.4872],
    [0.2894, 0.7397],
    [0.7106, 0.7397],
])

_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


class FaceModelsMissing(RuntimeError):
    """dlib or the face_recognition_models files are not installed."""


def models_dir() -> Path:
    """Folder holding the dlib model files of ``face_recognition_models`` (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing(
            "face identity embeddings need the model files of face_recognition_models: "
            "pip install face_recognition_models==0.3.0 dlib-bin")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    for name in (_PREDICTOR, _RESNET):
        if not (folder / name).is_file():
            raise FaceModelsMissing(f"model file missing: {folder / name}")
    return folder


def dlib_available() -> bool:
    """True when dlib and the model files can be loaded (used by tests and the CLI)."""
    try:
        models_dir()
        return importlib.util.find_spec("dlib") is not None
    except FaceModelsMissing:
        return False


@lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any, Any]:
    """(dlib module, 5-point predictor, ResNet), loaded once per process."""
    try:
        import dlib
    except ImportError as exc:
        raise FaceModelsMissing("face identity embeddings need dlib: pip install dlib-bin") from exc
    folder = models_dir()
    log.info("loading dlib face models from %s", folder)
    return (dlib, dlib.shape_predictor(str(folder / _PREDICTOR)),
            dlib.face_recognition_model_v1(str(folder / _RESNET)))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings; below SAME_PERSON_THRESHOLD = same person."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


# --------------------------------------------------------------------------- alignment


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) src -> dst, 2x3."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    norm = float((s ** 2).sum())
    if norm < 1e-9:
        raise ValueError("degenerate landmarks")
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    rot = np.array([[a, -b], [b, a]])
    return np.c_[rot, md - rot @ ms]


def _chip_transform(face: Face, size: int, padding: float) -> np.ndarray:
    """2x3 map image -> chip: from the five landmarks, else from the box (no rotation)."""
    if len(face.landmarks) >= 5:
        target = (TEMPLATE_5 + padding) / (1 + 2 * padding) * size
        try:
            return _similarity(np.asarray(face.landmarks[:5], np.float64), target)
        except ValueError:
            pass
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0, 1.0) * (1 + 2 * padding)
    scale = size / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])


def aligned_crop(rgb: np.ndarray, face: Face, size: int = CHIP_SIZE,
                 padding: float = CHIP_PADDING) -> np.ndarray:
    """An upright, eye-level size x size face chip (uint8 RGB), framed like dlib's face chips.

    Large faces are sampled at an integer multiple of ``size`` and reduced with area
    averaging, so they are not aliased; outside the image the border is repeated.
    """
    import cv2

    to_chip = _chip_transform(face, size, padding)
    scale = float(np.hypot(to_chip[0, 0], to_chip[1, 0]))   # chip px per image px
    k = max(1, min(8, int(1.0 / max(scale, 1e-6))))
    image = np.ascontiguousarray(rgb)
    if k == 1:
        return cv2.warpAffine(image, to_chip, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    big = cv2.warpAffine(image, to_chip * k, (size * k, size * k), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _roll_deg(face: Face) -> float:
    if len(face.landmarks) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.landmarks[0], face.landmarks[1]
    return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


def dlib_box(face: Face) -> tuple[int, int, int, int]:
    """The face's box redrawn the way dlib's HOG detector draws it (what the 5-point
    predictor was trained on): measured on the test faces, dlib's box is 8 % wider, 15 %
    shorter and centred 5 % lower than RetinaFace's."""
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * h
    half_w, half_h = 0.54 * w, 0.425 * h
    return (int(round(cx - half_w)), int(round(cy - half_h)),
            int(round(cx + half_w)), int(round(cy + half_h)))


# --------------------------------------------------------------------------- embedder


class FaceEmbedder:
    """128-d identity embeddings with dlib's ResNet (LFW 99.38 % per dlib's author)."""

    name = ("dlib_face_recognition_resnet_model_v1 (face_recognition_models 0.3.0, "
            "dlib 5-point alignment)")

    def __init__(self, jitters: int = 0) -> None:
        self.jitters = int(jitters)

    def _one(self, dlib: Any, predictor: Any, resnet: Any, rgb: np.ndarray,
             face: Face) -> np.ndarray:
        if len(face.landmarks) >= 5 and abs(_roll_deg(face)) > ROLL_CHIP_DEG:
            chip = aligned_crop(rgb, face, CHIP_SIZE, CHIP_PADDING)
            return np.asarray(resnet.compute_face_descriptor(chip, self.jitters), np.float32)
        shape = predictor(rgb, dlib.rectangle(*dlib_box(face)))
        return np.asarray(resnet.compute_face_descriptor(rgb, shape, self.jitters, CHIP_PADDING),
                          np.float32)

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(n, 128) float32, one row per face; a row of NaN where that face failed
        (NaN is never within the threshold of anything, so a failure never merges people)."""
        out = np.full((len(faces), EMBED_DIM), np.nan, np.float32)
        if not faces:
            return out
        dlib, predictor, resnet = _dlib_models()
        image = np.ascontiguousarray(np.asarray(rgb)[:, :, :3], dtype=np.uint8)
        for i, face in enumerate(faces):
            try:
                out[i] = self._one(dlib, predictor, resnet, image, face)
            except Exception as exc:  # one bad face must not lose the others
                log.warning("face %d: embedding failed: %s", i, exc)
        return out
