"""Benchmark zero-shot sorting and the linear-probe classifier on a labelled set of real photos.

    .venv/bin/python benchmarks/sort.py [--per-class 30] [--workdir bench-output/sort]

The set: the 10 CC0 photos of the demo corpus, each turned into --per-class variations
(crops of 55-95 % of the side, mirror, colour and brightness changes, JPEG 60-95), so the
label of every image is known. Printed:
1. `picsift sort` end to end (scan, decode, embed, score, copy) in images/s, wall and CPU;
2. the anchor's way of running it: one image at a time through the model (Smart Image
   Sorter calls a transformers zero-shot pipeline per image). The anchor's model (CLIP) cannot
   be downloaded here, so both ways run picsift's packaged model: the comparison is about
   batching and the pipeline, not about the model;
3. zero-shot accuracy of the offline default on the 10 labels;
4. linear-probe accuracy with 5 and 20 training images per class, tested on the rest.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import picsift  # noqa: E402
from picsift.analyses.classify import predict, train_classifier  # noqa: E402
from picsift.analyses.sort.labels import _parse  # noqa: E402
from picsift.analyses.sort.sorter import SortOptions, sort_images  # noqa: E402

PHOTOS = REPO / "src" / "picsift" / "demo" / "corpus" / "photos"
LABELS = {
    "astronaut": "an astronaut in a space suit", "camera": "a man with a camera on a tripod",
    "chelsea": "a cat", "coffee": "a cup of coffee", "coins": "old coins",
    "horse": "a horse", "hubble": "galaxies and stars in deep space",
    "page": "a page of printed text", "retina": "a photograph of an eye's retina",
    "rocket": "a rocket on a launch pad",
}


def build(root: Path, per_class: int, seed: int = 0) -> Path:
    marker = root / f"set-{per_class}-{seed}.json"
    if marker.exists():
        return root / "images"
    shutil.rmtree(root / "images", ignore_errors=True)
    rng = np.random.default_rng(seed)
    for name in LABELS:
        photo = Image.open(next(PHOTOS.glob(f"{name}.*"))).convert("RGB")
        folder = root / "images" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            w, h = photo.size
            side = rng.uniform(0.55, 0.95)
            cw, ch = int(w * side), int(h * side)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            im = photo.crop((x, y, x + cw, y + ch))
            if rng.random() < 0.5:
                im = ImageOps.mirror(im)
            im = ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4))
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.8, 1.2))
            im.save(folder / f"{name}_{i:03d}.jpg", quality=int(rng.integers(60, 96)))
    marker.write_text(json.dumps({"per_class": per_class, "seed": seed}))
    return root / "images"


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "sort")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    images = build(args.workdir, args.per_class)
    n = sum(1 for _ in images.rglob("*.jpg"))
    rows: list[tuple[str, str]] = []

    # 1. sort end to end, fresh workspace
    shutil.rmtree(args.workdir / "ws", ignore_errors=True)
    shutil.rmtree(args.workdir / "sorted", ignore_errors=True)
    labels = _parse(LABELS, "benchmark")
    t, c = time.perf_counter(), cpu()
    result = sort_images(images, labels, SortOptions(to=args.workdir / "sorted", workers=args.workers),
                         workspace=args.workdir / "ws")
    wall, used = time.perf_counter() - t, cpu() - c
    rows += [("images", str(n)), ("sort end to end, images/s (wall)", f"{n / wall:.1f}"),
             ("sort end to end, CPU ms/image", f"{1000 * used / n:.1f}")]
    truth = result.table["path"].map(lambda p: Path(p).parent.name)
    predicted = result.table["label"]
    rows.append(("zero-shot accuracy, offline default (10 labels)", f"{float((truth == predicted).mean()):.3f}"))
    per_class = {k: float((predicted[truth == k] == k).mean()) for k in LABELS}
    rows.append(("  per class", ", ".join(f"{k} {v:.2f}" for k, v in per_class.items())))

    # 2. one image at a time, as the anchor runs its pipeline (same model)
    from picsift.media.decode import load_image
    from picsift.models.image_model import embed_images
    from picsift.models.zero_shot import images_in_text_space, top_classes

    files = sorted(images.rglob("*.jpg"))[: min(n, 100)]
    t, c = time.perf_counter(), cpu()
    for path in files:
        emb, probs = embed_images([Image.open(path).convert("RGB")])
        images_in_text_space(*top_classes(probs))
    wall1 = time.perf_counter() - t
    t = time.perf_counter()
    for start in range(0, len(files), 16):
        batch = [load_image(p, size=256) for p in files[start:start + 16]]
        emb, probs = embed_images(batch)
        images_in_text_space(*top_classes(probs))
    wall16 = time.perf_counter() - t
    rows += [("one image at a time (anchor's way), images/s, 1 process", f"{len(files) / wall1:.1f}"),
             ("batches of 16 + draft decode, images/s, 1 process", f"{len(files) / wall16:.1f}")]

    # 3. linear probe
    for shots in (5, 20):
        if shots >= args.per_class:
            continue
        train = args.workdir / f"train{shots}"
        test = args.workdir / f"test{shots}"
        for folder in (train, test):
            shutil.rmtree(folder, ignore_errors=True)
        for name in LABELS:
            members = sorted((images / name).glob("*.jpg"))
            for i, path in enumerate(members):
                target = (train if i < shots else test) / name
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
        report = train_classifier(train, args.workdir / f"clf{shots}.json", test=test, workers=args.workers)
        rows.append((f"linear probe, {shots}/class: CV accuracy / test accuracy",
                     f"{report.cv_accuracy:.3f} / {report.test_accuracy:.3f}"))
        predict(test, args.workdir / f"clf{shots}.json")

    rows.append(("peak RSS MB (self, children)",
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}, "
                 f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    (args.workdir / "results.json").write_text(json.dumps(dict(rows), indent=2))


if __name__ == "__main__":
    main()
