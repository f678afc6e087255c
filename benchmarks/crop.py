#!/usr/bin/env python3
"""Benchmark of `picsift crop`: speed per mode and how close the crops are to the truth.

    .venv/bin/python benchmarks/crop.py [--n 200] [--seed 0] [--ocr-n 30] [--workers 1]

The corpus: --n screenshot-like posts rendered by tests/crop_posts.py (real CC0 photos from
the demo corpus in a post frame; light and dark mode; 420-1080 px wide; single photos of
any aspect, full-bleed or with rounded corners, two-photo grids, photo-beside-text layouts,
every tenth post text-only; a quarter re-saved as JPEG at quality 60-90), written as PNG
with their true boxes. Each mode runs `crop_folder` over the whole folder (OCR mode over the
first --ocr-n posts: it is slow) and is scored from its crops.csv:

- photo: posts whose photo count is right and every photo has IoU > 0.9; IoU mean / 5th
  percentile / min over the true photos (a missed photo counts 0);
- text: IoU of the post's text box (author, body) with the truth, share > 0.8, and how
  often the box reaches the button bar or the comments (it never should);
- below-reference: the 'Like Comment Share' bar rendered alone at 1.5x (light mode, so dark
  posts need the inverted match): found share, |cut - bar top| mean and max in pixels.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

import crop_posts  # noqa: E402
from picsift.analyses.crop import CropOptions, crop_folder, iou  # noqa: E402


def build_corpus(folder: Path, n: int, seed: int) -> dict[str, dict]:
    """Render the posts once per (n, seed); return the truth by file name."""
    truth_file = folder / "truth.json"
    if truth_file.exists():
        return json.loads(truth_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for post in crop_posts.many(n, seed):
        name = f"{post.name}.png"
        post.image.save(folder / name)
        truth[name] = {"photos": post.photos, "text": post.text, "bar": post.bar,
                       "comments": post.comments, "dark": post.dark,
                       "width": post.image.width, "height": post.image.height}
    truth_file.write_text(json.dumps(truth))
    return truth


def run_mode(corpus: Path, out: Path, options: CropOptions, workers: int,
             references: list[Path] | None = None, only: int | None = None) -> tuple[list[dict], float, int]:
    """Crop the corpus (or its first ``only`` posts) into a fresh folder; rows, seconds, n."""
    source = corpus
    if only is not None:
        source = out.with_name(out.name + "-src")
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        for path in sorted(corpus.glob("*.png"))[:only]:
            shutil.copy(path, source / path.name)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = crop_folder(source, out, references=references or [], options=options, workers=workers)
    seconds = time.perf_counter() - started
    with open(out / "crops.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows, seconds, summary.images


def _box(row: dict) -> tuple[int, int, int, int]:
    return (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))


def _by_source(rows: list[dict], kind: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for row in rows:
        if row["kind"] == kind:
            found.setdefault(Path(row["source"]).name, []).append(_box(row))
    return found


def score_photos(rows: list[dict], truth: dict[str, dict], names: list[str]) -> dict:
    found = _by_source(rows, "photo")
    ious, right = [], 0
    for name in names:
        boxes, photos = found.get(name, []), truth[name]["photos"]
        best = [max([iou(b, tuple(p)) for b in boxes] or [0.0]) for p in photos]
        ious.extend(best)
        right += len(boxes) == len(photos) and all(v > 0.9 for v in best)
    values = np.array(ious) if ious else np.zeros(1)
    return {"posts right": f"{right}/{len(names)}", "IoU mean": f"{values.mean():.3f}",
            "IoU p5": f"{np.percentile(values, 5):.3f}", "IoU min": f"{values.min():.3f}"}


def score_text(rows: list[dict], truth: dict[str, dict], names: list[str]) -> dict:
    found = _by_source(rows, "text")
    ious, leaks = [], 0
    for name in names:
        t = truth[name]
        boxes = found.get(name, [])
        ious.append(max([iou(b, tuple(t["text"])) for b in boxes] or [0.0]))
        leaks += any(b[3] > min(t["bar"][1], t["comments"][1]) for b in boxes)
    values = np.array(ious)
    return {"IoU > 0.8": f"{int((values > 0.8).sum())}/{len(names)}", "IoU mean": f"{values.mean():.3f}",
            "IoU min": f"{values.min():.3f}", "into bar/comments": str(leaks)}


def score_reference(rows: list[dict], truth: dict[str, dict], names: list[str]) -> dict:
    found = _by_source(rows, "post")
    errors = [abs(found[n][0][3] - truth[n]["bar"][1]) for n in names if n in found]
    errs = np.array(errors) if errors else np.array([np.nan])
    return {"found": f"{len(errors)}/{len(names)}", "|cut - bar top| mean px": f"{np.nanmean(errs):.1f}",
            "max px": f"{np.nanmax(errs):.0f}", "within 3 px": str(int((errs <= 3).sum()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ocr-n", type=int, default=30, help="posts for the OCR text mode (0: skip)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "crop")
    args = parser.parse_args()

    corpus = args.workdir / f"corpus-n{args.n}-seed{args.seed}"
    truth = build_corpus(corpus, args.n, args.seed)
    names = sorted(truth)
    reference = args.workdir / "like_bar_1.5x.png"
    crop_posts.bar_snippet(1020, scale=1.5).save(reference)

    results = []
    plan = [("photo", CropOptions(mode="photo", ocr=False), None, None),
            ("text (pixels)", CropOptions(mode="text", ocr=False), None, None),
            ("both (pixels)", CropOptions(mode="both", ocr=False), None, None),
            ("below-reference", CropOptions(mode="below-reference", ocr=False), [reference], None)]
    if args.ocr_n:
        plan.append(("text (OCR)", CropOptions(mode="text", ocr=True), None, args.ocr_n))
    for label, options, references, only in plan:
        out = args.workdir / f"out-{label.split()[0]}{'-ocr' if 'OCR' in label else ''}"
        rows, seconds, n = run_mode(corpus, out, options, args.workers, references, only)
        subset = names[:only] if only else names
        if options.mode == "photo":
            scores = score_photos(rows, truth, subset)
        elif options.mode == "below-reference":
            scores = score_reference(rows, truth, subset)
        elif options.mode == "both":
            scores = {**{f"photo {k}": v for k, v in score_photos(rows, truth, subset).items()
                         if k in ("posts right", "IoU mean")},
                      **{f"text {k}": v for k, v in score_text(rows, truth, subset).items()
                         if k in ("IoU > 0.8", "IoU mean")}}
        else:
            scores = score_text(rows, truth, subset)
        results.append((label, n, seconds, scores))
        print(f"{label}: {n} images in {seconds:.1f} s", file=sys.stderr)

    print(f"\ncrop benchmark: {args.n} generated posts (seed {args.seed}), workers={args.workers}")
    print(f"{'mode':<16} {'images':>6} {'seconds':>8} {'images/s':>9}  scores")
    for label, n, seconds, scores in results:
        text = ", ".join(f"{k} {v}" for k, v in scores.items())
        print(f"{label:<16} {n:>6} {seconds:>8.1f} {n / seconds:>9.2f}  {text}")
    (args.workdir / "results.json").write_text(json.dumps(
        [{"mode": m, "images": n, "seconds": round(s, 2), **sc} for m, n, s, sc in results], indent=1))


if __name__ == "__main__":
    main()
