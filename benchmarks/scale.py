"""Benchmark: scan + copies + embed + cluster at growing N, local engine vs a local Ray cluster.

    .venv/bin/python benchmarks/scale.py [--n 1000 5000] [--engines local ray] [--workers 2]

1. **Corpus** (built once per N and cached under ``--workdir``): N JPEGs made from the real
   photos of ``benchmarks/copies_corpus.py`` (demo/scikit-image photos + ../shared/data).
   About 75 % are *distractors*: a random crop of a random photo, perspective-warped and
   wave-distorted with per-image random parameters, colour-shifted and resized, so two
   distractors cut from the same photo region do not verify as copies (their geometry is not
   a homography of each other). The rest are *copies* of an earlier distractor: crop, resize,
   rotation, mirror or a caption, so copy detection has real work and real clusters.
2. **Run**: for each engine and N, a fresh workspace and a child process running scan ->
   copies (SIFT, index, query+verify, cluster) -> embed -> cluster (k-means peeling), each
   step timed. ``ray``: the child calls ``ray.init(num_cpus=workers)`` first (a local Ray
   cluster: its GCS, raylet and workers are children of the child process).
3. **Measured**: wall time per step, images/s end to end, the peak RSS of the whole process
   tree (child + pool/Ray workers + Ray daemons; /proc polled every 0.2 s; shared pages are
   counted once per process, so this over-counts fork-shared memory) and the sizes on disk of
   the workspace parts (SIFT features, copy index, embeddings, catalogue).

Writes ``<workdir>/scale-bench.json`` and prints one table. The machine is shared: wall time
is noisy. Read benchmarks/README-scale.md for measured numbers and the projection.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

COPY_SHARE = 0.25


# --------------------------------------------------------------------------- corpus
def _distractor(rng: Any, photo: Any) -> Any:
    """A random crop of a real photo, warped so that no other distractor verifies against it."""
    import cv2
    import numpy as np
    from PIL import Image

    arr = np.asarray(photo)
    h, w = arr.shape[:2]
    share = rng.uniform(0.15, 0.5)
    ch, cw = int(h * math.sqrt(share)), int(w * math.sqrt(share))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = np.ascontiguousarray(arr[y : y + ch, x : x + cw])
    side = int(rng.integers(480, 900))
    scale = side / max(ch, cw)
    out_w, out_h = max(64, int(cw * scale)), max(64, int(ch * scale))
    jitter = rng.uniform(-0.12, 0.12, size=(4, 2)) * [cw, ch]
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    dst = np.float32(src + jitter) * scale
    dst -= dst.min(axis=0)
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(crop, matrix, (out_w, out_h), borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    amp, period, phase = rng.uniform(6, 16), rng.uniform(60, 180), rng.uniform(0, 2 * math.pi)
    map_x = xx + amp * np.sin(yy / period * 2 * math.pi + phase)
    map_y = yy + amp * np.cos(xx / period * 2 * math.pi + phase)
    waved = cv2.remap(warped, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    shift = rng.uniform(0.8, 1.2, size=3)
    return Image.fromarray(np.clip(waved * shift, 0, 255).astype(np.uint8))


def _copy(rng: Any, base: Any) -> tuple[Any, str]:
    """A copy of ``base``: crop, resize, rotation, mirror or caption."""
    from PIL import ImageDraw, ImageOps

    kind = ["crop", "resize", "rotate", "mirror", "caption"][int(rng.integers(0, 5))]
    w, h = base.size
    if kind == "crop":
        share = rng.uniform(0.4, 0.8)
        cw, ch = int(w * math.sqrt(share)), int(h * math.sqrt(share))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return base.crop((x, y, x + cw, y + ch)), kind
    if kind == "resize":
        f = rng.uniform(0.5, 1.5)
        return base.resize((max(64, int(w * f)), max(64, int(h * f)))), kind
    if kind == "rotate":
        return base.rotate(float(rng.uniform(-25, 25)), expand=True, fillcolor=(255, 255, 255)), kind
    if kind == "mirror":
        return ImageOps.mirror(base), kind
    out = base.copy()
    draw = ImageDraw.Draw(out)
    band = max(24, h // 8)
    draw.rectangle((0, h - band, w, h), fill=(0, 0, 0))
    draw.text((10, h - band + 4), f"repost #{int(rng.integers(0, 10**6))}", fill=(255, 255, 255))
    return out, kind


def _write_range(args: tuple[str, int, int, int]) -> list[dict[str, Any]]:
    """Images [start, stop) of corpus ``seed``; copies refer to distractors of the same chunk."""
    import numpy as np

    import copies_corpus

    out, start, stop, seed = args
    photos = [copies_corpus.load_prepared(p)
              for p in copies_corpus.discover_photos(copies_corpus.DEFAULT_DATA)]
    rng = np.random.default_rng([seed, start])
    bases: list[tuple[int, Any]] = []
    rows = []
    for i in range(start, stop):
        if bases and rng.random() < COPY_SHARE:
            truth, base = bases[int(rng.integers(0, len(bases)))]
            image, kind = _copy(rng, base)
        else:
            image, kind, truth = _distractor(rng, photos[int(rng.integers(0, len(photos)))]), "original", i
            bases.append((i, image))
            bases = bases[-200:]
        path = Path(out) / f"{i // 1000:04d}" / f"img_{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(path, quality=88)
        rows.append({"path": str(path), "truth": truth, "kind": kind})
    return rows


def build_corpus(workdir: Path, n: int, seed: int, jobs: int) -> Path:
    """N images under ``workdir/corpus-N`` (reused when complete)."""
    from concurrent.futures import ProcessPoolExecutor

    root = workdir / f"corpus-n{n}-s{seed}"
    done = root / "truth.json"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    chunks = [(str(root / "images"), s, min(n, s + 500), seed) for s in range(0, n, 500)]
    started = time.monotonic()
    with ProcessPoolExecutor(jobs) as pool:
        rows = [r for part in pool.map(_write_range, chunks) for r in part]
    done.write_text(json.dumps(rows))
    print(f"corpus of {n} images in {time.monotonic() - started:.0f} s: {root}", flush=True)
    return root


# --------------------------------------------------------------------------- measuring
def _tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack, page = 0, [root_pid], os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, []))
    return total


def _du(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_child(corpus: Path, ws_dir: Path, engine: str, workers: int, out: Path,
              query_sample: int = 0) -> dict[str, Any]:
    """Run the pipeline in a child process and poll its process tree's RSS meanwhile."""
    shutil.rmtree(ws_dir, ignore_errors=True)
    cmd = [sys.executable, str(HERE), "--child", str(corpus), str(ws_dir), engine, str(workers),
           str(out), str(query_sample)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.monotonic()
    child = subprocess.Popen(cmd, env=env)
    peak = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(child.pid))
            stop.wait(0.2)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    rc = child.wait()
    stop.set()
    thread.join()
    if rc != 0:
        raise SystemExit(f"child failed ({rc}): {' '.join(cmd)}")
    result = json.loads(out.read_text())
    result.update(engine=engine, total_s=round(time.monotonic() - started, 1),
                  peak_rss_mb=round(peak / 2**20), sizes_mb=_sizes(ws_dir))
    return result


def _sizes(ws_dir: Path) -> dict[str, float]:
    mb = 2**20
    return {"sift": round(_du(ws_dir / "features" / "sift") / mb, 1),
            "copy_index": round(_du(ws_dir / "copies" / "index") / mb, 1),
            "embeddings": round(_du(ws_dir / "features" / "embed") / mb, 1),
            "catalog": round(_du(ws_dir) / mb - sum(
                _du(ws_dir / p) for p in ("features", "copies", "thumbs", "search", "clusters")
            ) / mb, 1),
            "workspace": round(_du(ws_dir) / mb, 1)}


def child_main(corpus: str, ws_dir: str, engine: str, workers: int, out: str,
               query_sample: int = 0) -> None:
    """The measured pipeline (one engine, one N): scan, copies, embed, cluster.

    ``query_sample`` > 0: copy search + verification runs on that many images only (an
    unbiased sample: media ids are content hashes) against the index of all N, and the
    full step is projected from it; every other step processes all N. The result file is
    rewritten after each step, so an interrupted run still reports what it finished.
    """
    import picsift
    from picsift.analyses.clusters import cluster_workspace
    from picsift.analyses.copies.options import CopiesOptions
    from picsift.analyses.copies.pipeline import (CopiesSummary, build_index, cluster_all,
                                                  query_all)
    from picsift.analyses.embeddings import embed_workspace

    result: dict[str, Any] = {"complete": False}
    steps: dict[str, float] = {}
    result["steps"] = steps

    def save() -> None:
        Path(out).write_text(json.dumps(result))

    if engine == "ray":
        import ray

        t = time.monotonic()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        steps["ray_init"] = round(time.monotonic() - t, 1)
    else:
        steps["ray_init"] = 0.0
    ws = picsift.open(corpus, workspace=ws_dir)
    t = time.monotonic()
    scan = ws.scan([str(Path(corpus) / "images")], workers=workers, engine=engine)
    steps["scan"] = round(time.monotonic() - t, 1)
    result.update(images=scan.images, errors=scan.errors)
    save()
    t = time.monotonic()
    options = CopiesOptions(workers=workers, engine=engine)
    s = CopiesSummary()
    with ws.writing():
        index, features = build_index(ws, options, s)
        for k in ("features", "index"):
            steps[f"copies.{k}"] = s.seconds[k]
        result.update(descriptors=s.index_vectors, index_type=s.index_type)
        save()
        sample = query_sample if 0 < query_sample < scan.images else None
        query_all(ws, options, index, features, s, limit=sample)
        steps["copies.query"] = s.seconds["query"]
        if sample:
            result["query_sample"] = s.queried
            steps["copies.query_projected"] = round(s.seconds["query"] * scan.images / s.queried, 1)
        save()
        cluster_all(ws, options, s)
        steps["copies.cluster"] = s.seconds["cluster"]
    steps["copies"] = round(time.monotonic() - t, 1)
    result.update(pairs=s.pairs, copy_clusters=s.clusters, clustered_media=s.clustered_media,
                  largest_copy_cluster=s.largest_cluster)
    save()
    t = time.monotonic()
    embed_workspace(ws, workers=workers, engine=engine)
    steps["embed"] = round(time.monotonic() - t, 1)
    save()
    t = time.monotonic()
    run = cluster_workspace(ws, workers=workers)
    steps["cluster"] = round(time.monotonic() - t, 1)
    result.update(embedding_clusters=int(run.table["cluster"].max()), complete=True)
    save()


# --------------------------------------------------------------------------- report
def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per run; a sampled copy search shows its projection to all N (marked ~)."""
    head = (f"{'engine':6} {'N':>6} {'total s':>8} {'img/s':>6} {'scan':>6} {'sift':>6} "
            f"{'index':>6} {'query':>8} {'embed':>6} {'clust':>6} {'peak MB':>8} "
            f"{'desc':>11} {'index MB':>8} {'sift MB':>8} {'pairs':>6} {'cc':>5}")
    print(head)
    for r in rows:
        s = r["steps"]
        projected = s.get("copies.query_projected")
        total = r["total_s"] - s.get("ray_init", 0)
        if projected is not None:
            total += projected - s.get("copies.query", 0)
        query = f"~{projected:.0f}" if projected is not None else f"{s.get('copies.query', 0):.1f}"
        print(f"{r['engine']:6} {r['n']:>6} {total:>8.1f} {r['n'] / total:>6.1f} "
              f"{s.get('scan', 0):>6.1f} {s.get('copies.features', 0):>6.1f} "
              f"{s.get('copies.index', 0):>6.1f} {query:>8} {s.get('embed', 0):>6.1f} "
              f"{s.get('cluster', 0):>6.1f} {r['peak_rss_mb']:>8} {r.get('descriptors', 0):>11,} "
              f"{r['sizes_mb']['copy_index']:>8.1f} {r['sizes_mb']['sift']:>8.1f} "
              f"{r.get('pairs', 0):>6} {r.get('copy_clusters', 0):>5}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child_main(argv[1], argv[2], argv[3], int(argv[4]), argv[5], int(argv[6]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-sample", type=int, default=0,
                        help="copy search on this many images only, projected to N (0: all)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "scale")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results_path = args.workdir / "scale-bench.json"
    rows: list[dict[str, Any]] = []
    for n in args.n:
        corpus = build_corpus(args.workdir, n, args.seed, args.workers)
        for engine in args.engines:
            print(f"--- N={n} engine={engine}", flush=True)
            row = run_child(corpus, args.workdir / f"ws-n{n}-{engine}", engine, args.workers,
                            args.workdir / f"result-n{n}-{engine}.json", args.query_sample)
            row["n"] = n
            rows.append(row)
            results_path.write_text(json.dumps(rows, indent=1))
            print_table(rows)
    print(f"\nwrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
