"""Face attributes on real faces: expression, masks, and the demographic disclosure gate.

Faces are fixed boxes + landmarks (tests/data/faces/attr_faces.json), so these tests do not
depend on the face detector. ONNX-vs-original parity is checked by
scripts/export_face_attributes.py, not here (no keras/torch in the test environment).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.errors import PicsiftError
from picsift.faces import attributes as A
from picsift.faces.attributes import (
    ACCEPT_ENV,
    DISCLOSURE,
    EMOTION_GROUPS,
    EMOTIONS,
    AttributeOptions,
    FaceAttributes,
    disclosure_accepted,
)
from picsift.faces.types import Face

REPO = Path(__file__).resolve().parents[1]
FIXTURES = json.loads((REPO / "tests/data/faces/attr_faces.json").read_text())["faces"]
ASTRONAUT = "src/picsift/demo/corpus/photos/astronaut.jpg"
PORTRAIT = "tests/data/faces/portrait_woman.jpg"
TWO = "tests/data/faces/two_people.jpg"
MASKED = "tests/data/faces/masked_woman.jpg"


def load(rel: str) -> tuple[np.ndarray, list[Face]]:
    rgb = np.asarray(Image.open(REPO / rel).convert("RGB"))
    faces = [Face(tuple(f["box"]), 1.0, [tuple(p) for p in f["landmarks"]])
             for f in FIXTURES[rel]]
    return rgb, faces


def draw_mask(rgb: np.ndarray, face: Face) -> np.ndarray:
    """A light-blue pleated surgical mask from the nose to the chin (as in the export script)."""
    import cv2

    img = rgb.copy()
    (rx, ry), (lx, ly), (nx, ny), (mrx, mry), (mlx, mly) = face.landmarks
    eye_y, mouth_y = (ry + ly) / 2, (mry + mly) / 2
    d = mouth_y - eye_y
    x0, _, x1, y1 = face.box
    top, bottom = eye_y + 0.45 * d, min(y1 + 0.05 * d, mouth_y + 1.1 * d)
    left, right = x0 + 0.06 * (x1 - x0), x1 - 0.06 * (x1 - x0)
    pts = np.array([[left, top + 0.1 * d], [nx, top - 0.1 * d], [right, top + 0.1 * d],
                    [right - 0.05 * (x1 - x0), bottom - 0.3 * d], [nx, bottom],
                    [left + 0.05 * (x1 - x0), bottom - 0.3 * d]], np.int32)
    cv2.fillPoly(img, [pts], (178, 208, 232))
    for k in (0.3, 0.5, 0.7):
        y = int(top + k * (bottom - top))
        cv2.line(img, (int(left + 4), y), (int(right - 4), y), (140, 170, 200), 2)
    return img


@pytest.fixture(autouse=True)
def no_env_acceptance(monkeypatch):
    """A developer's shell must not accept the disclosure on the tests' behalf."""
    monkeypatch.delenv(ACCEPT_ENV, raising=False)


@pytest.fixture(scope="module")
def default() -> FaceAttributes:
    return FaceAttributes(AttributeOptions())


@pytest.fixture(scope="module")
def accepted() -> FaceAttributes:
    return FaceAttributes(AttributeOptions(demographics=True, accept_disclosure=True))


def test_groups_follow_ammico():
    assert set(EMOTION_GROUPS) == set(EMOTIONS)
    assert EMOTION_GROUPS["happy"] == "positive"
    assert EMOTION_GROUPS["surprise"] == EMOTION_GROUPS["neutral"] == "neutral"
    assert {EMOTION_GROUPS[e] for e in ("angry", "disgust", "fear", "sad")} == {"negative"}


def test_smiling_astronaut_is_happy(default):
    rgb, faces = load(ASTRONAUT)
    (row,) = default.analyse(rgb, faces)
    assert row["emotion"] == "happy" and row["emotion_score"] > 0.9
    assert row["emotion_group"] == "positive"
    assert sum(row[f"p_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    assert row["masked"] is False and row["mask_score"] < 0.1
    assert not {"age", "gender", "gender_score"} & row.keys()


def test_models_recorded_in_every_row(default):
    rgb, faces = load(TWO)
    rows = default.analyse(rgb, faces)
    assert len(rows) == 2
    assert set(default.models) == {"emotion", "mask"}
    assert default.models["emotion"].startswith("face_emotion_fer2013.onnx#sha256:")
    assert default.models["mask"].startswith("face_mask_mobilenetv2.onnx#sha256:")
    assert all(r["models"] == default.models for r in rows)


@pytest.mark.parametrize("rel", [ASTRONAUT, PORTRAIT, TWO])
def test_real_unmasked_faces_are_not_masked(default, rel):
    rgb, faces = load(rel)
    for row in default.analyse(rgb, faces):
        assert row["masked"] is False, row
        assert row["emotion"] in EMOTIONS


def test_real_masked_portrait_is_masked_and_gets_no_emotion(default):
    rgb, faces = load(MASKED)
    (row,) = default.analyse(rgb, faces)
    assert row["masked"] is True and row["mask_score"] > 0.6
    assert row["emotion"] is None and row["emotion_score"] is None
    assert row["emotion_group"] is None and all(row[f"p_{e}"] is None for e in EMOTIONS)


@pytest.mark.parametrize("rel", [ASTRONAUT, PORTRAIT])
def test_drawn_mask_on_real_face_is_masked(default, rel):
    rgb, faces = load(rel)
    (row,) = default.analyse(draw_mask(rgb, faces[0]), faces)
    assert row["masked"] is True and row["mask_score"] > 0.7
    assert row["emotion"] is None


def test_mixed_batch_keeps_face_order(default):
    """A masked and an open face in one call: each row belongs to its own face."""
    rgb, faces = load(TWO)
    rgb = draw_mask(rgb, faces[1])
    rows = default.analyse(rgb, faces)
    assert [r["masked"] for r in rows] == [False, True]
    assert rows[0]["emotion"] in EMOTIONS and rows[1]["emotion"] is None


def test_no_landmarks_still_works(default):
    rgb, faces = load(ASTRONAUT)
    (row,) = default.analyse(rgb, [Face(faces[0].box, 1.0)])
    assert row["emotion"] == "happy" and row["masked"] is False


def test_no_faces_no_rows(default):
    rgb, _ = load(ASTRONAUT)
    assert default.analyse(rgb, []) == []


def test_options_switch_models_off():
    rgb, faces = load(ASTRONAUT)
    fa = FaceAttributes(AttributeOptions(emotion=False))
    (row,) = fa.analyse(rgb, faces)
    assert row["emotion"] is None and row["masked"] is False
    assert set(fa.models) == {"mask"}
    (row,) = FaceAttributes(AttributeOptions(mask=False)).analyse(draw_mask(rgb, faces[0]), faces)
    assert row["masked"] is None and row["mask_score"] is None and row["emotion"] in EMOTIONS


# ----------------------------------------------------------------------- disclosure gate


def test_demographics_without_acceptance_raises_with_the_disclosure():
    with pytest.raises(PicsiftError) as err:
        FaceAttributes(AttributeOptions(demographics=True))
    message = str(err.value)
    assert DISCLOSURE in message
    assert "--accept-disclosure" in message and ACCEPT_ENV in message


def test_disclosure_says_what_ammico_said():
    text = " ".join(DISCLOSURE.lower().split())
    for words in ("probabilistic", "simplistic categories", "biased against, minorities",
                  "identifies themselves", "no estimate for children or minors is reliable"):
        assert words in text, words


def test_acceptance_by_parameter_and_env(monkeypatch):
    assert disclosure_accepted() is False
    assert disclosure_accepted(True) is True
    for value, expected in (("1", True), ("yes", True), ("True", True), ("0", False),
                            ("", False), ("no", False)):
        monkeypatch.setenv(ACCEPT_ENV, value)
        assert disclosure_accepted() is expected, value


def test_accepted_via_env_var_runs_demographics(monkeypatch):
    monkeypatch.setenv(ACCEPT_ENV, "1")
    rgb, faces = load(ASTRONAUT)
    fa = FaceAttributes(AttributeOptions(demographics=True))
    (row,) = fa.analyse(rgb, faces)
    assert isinstance(row["age"], float)
    assert fa.models["age"].startswith("face_age_cydral_v1.onnx#sha256:")
    assert fa.models["gender"].startswith("face_gender_cydral_v1.onnx#sha256:")


def test_accepted_via_parameter_estimates_age_and_gender(accepted):
    """Regression of the models' output on two adult portraits (not ground truth)."""
    for rel in (ASTRONAUT, PORTRAIT):
        rgb, faces = load(rel)
        (row,) = accepted.analyse(rgb, faces)
        assert 18 <= row["age"] <= 60, row["age"]
        assert row["gender"] == "female" and row["gender_score"] >= 0.8
        assert row["emotion"] in EMOTIONS  # emotion still reported alongside


def test_masked_face_gets_no_demographics(accepted):
    rgb, faces = load(MASKED)
    (row,) = accepted.analyse(rgb, faces)
    assert row["masked"] is True
    assert row["age"] is None and row["gender"] is None and row["gender_score"] is None


def test_small_face_and_low_confidence_give_none():
    rgb, faces = load(ASTRONAUT)
    small = np.asarray(Image.fromarray(rgb).resize((128, 128), Image.Resampling.LANCZOS))
    f = faces[0]
    tiny = Face(tuple(v / 4 for v in f.box), 1.0, [(x / 4, y / 4) for x, y in f.landmarks])
    fa = FaceAttributes(AttributeOptions(demographics=True, accept_disclosure=True))
    (row,) = fa.analyse(small, [tiny])
    assert row["age"] is None and row["gender"] is None  # 23 px face < min_age_face_px
    strict = FaceAttributes(AttributeOptions(demographics=True, accept_disclosure=True,
                                             min_gender_confidence=1.01))
    (row,) = strict.analyse(rgb, faces)
    assert isinstance(row["age"], float) and row["gender"] is None and row["gender_score"] is None


def test_crop_helpers_shapes():
    rgb, faces = load(TWO)
    assert A.face_crop(rgb, faces[0], 64).shape == (64, 64, 3)
    assert A.face_crop(rgb, faces[0], 224, margin=0.0, square=False).shape == (224, 224, 3)
    chip = A.aligned_chip(rgb, faces[0], 64)
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    # Unrotated and unpadded, the crop is the box resized like cv2.resize(INTER_LINEAR);
    # only the outermost pixels differ (we read the image beyond the box, resize clamps).
    import cv2

    face = Face((10, 20, 42, 52), 1.0)
    img = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    ours = A.face_crop(img, face, 64, margin=0.0).astype(int)
    ref = cv2.resize(img[20:52, 10:42], (64, 64), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(ours - ref)[1:-1, 1:-1].max() <= 1


def test_runtime_needs_no_torch_keras_or_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from picsift.faces.attributes import FaceAttributes, AttributeOptions\n"
        "from picsift.faces.types import Face\n"
        "fa = FaceAttributes(AttributeOptions(demographics=True, accept_disclosure=True))\n"
        "fa.analyse(np.zeros((100, 100, 3), np.uint8), [Face((20, 20, 80, 80), 1.0)])\n"
        "bad = [m for m in ('torch', 'keras', 'tensorflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
