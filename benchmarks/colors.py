"""Benchmark: color features (``picsift colors``), alone and end to end, CIE76 vs CIEDE2000.

    .venv/bin/python benchmarks/colors.py [--n 2000] [--features-n 300] [--workers 2]

Uses the generated corpus of ``benchmarks/scan.py`` (N JPEGs of 0.5-1.9 MP made from the
bundled CC0 photos; built once and cached under ``--corpus-dir``).

1. **Features alone**: ``color_features`` on ``--features-n`` pictures decoded beforehand at
   256 px, one process, one thread, per metric: a *cold* pass (empty name cache, as in a fresh
   worker) and a *warm* pass; plus a per-stage breakdown (ms per image) and the cost of naming
   every pixel without quantisation (what the 6-bit code cache avoids).
2. **End to end**: ``analyse_colors`` (decode at 256 px + features + Parquet parts) on a copy of
   a scanned workspace of the corpus, ``--workers`` processes, per metric; wall-clock img/s and
   CPU ms per image (this process + its reaped workers).

The machine is shared: wall-clock figures are noisy, CPU ms/image is the steadier figure.
Writes ``<workdir>/colors-bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's tiny matmuls: one thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
CLEAN_ENV = dict(os.environ)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _corpus(args: argparse.Namespace) -> Path:
    """The generated corpus of benchmarks/scan.py (cached under --corpus-dir)."""
    sys.path.insert(0, str(HERE.parent))
    try:
        import scan as scan_bench  # noqa: PLC0415 - benchmarks/scan.py
    finally:
        sys.path.pop(0)
        for key in ("OMP_NUM_THREADS", "VIPS_CONCURRENCY"):
            if key in CLEAN_ENV:
                os.environ[key] = CLEAN_ENV[key]
            else:
                os.environ.pop(key, None)
    args.corpus_dir.mkdir(parents=True, exist_ok=True)
    folder, _files = scan_bench.build_corpus(args.corpus_dir, args.n, args.seed, jobs=2)
    return folder


def _pictures(corpus: Path, n: int) -> list[np.ndarray]:
    from picsift.media.decode import load_image

    paths = sorted(corpus.rglob("*.jpg"))[:n]
    return [np.asarray(load_image(p, size=256)) for p in paths]


def _stages(pictures: list[np.ndarray], metric: str) -> dict[str, float]:
    """Mean ms per image of each step of color_features (warm name cache)."""
    from picsift.features import colors as C

    clocks: dict[str, float] = {k: 0.0 for k in
                                ("quantise", "naming", "palette", "hue", "tone", "sharpness")}
    for rgb in pictures:
        t0 = time.perf_counter()
        codes, counts, mean_rgb = C.quantise(rgb)
        t1 = time.perf_counter()
        C._CACHE.lookup(codes, metric)
        t2 = time.perf_counter()
        weights = counts.astype(np.float64)
        C.palette(codes, weights, mean_rgb, 5, 0)
        t3 = time.perf_counter()
        C._hue_histogram(mean_rgb, weights)
        t4 = time.perf_counter()
        C._tone(rgb)
        t5 = time.perf_counter()
        C.sharpness(rgb)
        t6 = time.perf_counter()
        for key, dt in zip(clocks, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            clocks[key] += dt
    return {k: round(1000 * v / len(pictures), 3) for k, v in clocks.items()}


def bench_features(pictures: list[np.ndarray]) -> list[dict[str, Any]]:
    from picsift.features import colors as C

    rows: list[dict[str, Any]] = []
    distinct = [len(C.quantise(p)[0]) for p in pictures]
    for metric in C.METRICS:
        C.clear_cache()
        for label in ("cold", "warm"):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for rgb in pictures:
                C.color_features(rgb, metric=metric)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            rows.append({"benchmark": f"color_features, {metric}, {label} cache",
                         "images": len(pictures), "cpu_ms_per_img": 1000 * cpu / len(pictures),
                         "img_per_s": len(pictures) / wall,
                         "note": f"{C.cache_stats().get(metric, 0):,} codes named so far"})
            print(f"  {rows[-1]['benchmark']}: {rows[-1]['img_per_s']:.0f} img/s", flush=True)
        rows[-1]["stages_ms"] = _stages(pictures, metric)
        # Without quantisation: name every pixel of a few pictures directly.
        few = pictures[:3]
        cpu0 = time.process_time()
        for rgb in few:
            C.name_colors(C.rgb_to_lab(rgb.reshape(-1, 3)), metric)
        per = (time.process_time() - cpu0) / len(few)
        rows.append({"benchmark": f"naming every pixel, {metric} (no quantisation)",
                     "images": len(few), "cpu_ms_per_img": 1000 * per, "img_per_s": 1 / per,
                     "note": "what the per-code cache avoids"})
    rows.append({"benchmark": "distinct 6-bit codes per 256 px picture", "images": len(pictures),
                 "cpu_ms_per_img": float("nan"), "img_per_s": float("nan"),
                 "note": f"median {statistics.median(distinct):.0f}, max {max(distinct)}"})
    return rows


def _scanned_workspace(corpus: Path, workdir: Path, cached: Path) -> Path:
    """A scanned workspace of the corpus: a copy of benchmarks/scan.py's when it exists."""
    import picsift

    source = workdir / "ws-scanned"
    if not (source / "catalog.sqlite").exists():
        if (cached / "catalog.sqlite").exists():
            shutil.copytree(cached, source, ignore=shutil.ignore_patterns("features", "thumbs"))
        else:
            print("scanning the corpus once ...", flush=True)
            picsift.open(corpus, workspace=source).scan(workers=2)
    return source


def bench_workspace(corpus: Path, workdir: Path, cached: Path, workers: int,
                    n: int) -> list[dict[str, Any]]:
    import picsift
    from picsift.analyses.colors import ColorOptions, analyse_colors

    source = _scanned_workspace(corpus, workdir, cached)
    rows = []
    for metric in ("cie76", "ciede2000"):
        target = workdir / f"ws-{metric}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        ws = picsift.open(corpus, workspace=target)
        cpu0, child0, wall0 = time.process_time(), _children_cpu(), time.perf_counter()
        summary = analyse_colors(ws, ColorOptions(metric=metric), workers=workers)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0 + _children_cpu() - child0
        done = summary.analysed
        if done != n or summary.failed:
            print(f"  warning: {summary}", flush=True)
        rows.append({"benchmark": f"analyse_colors, {metric}, {workers} workers",
                     "images": done, "cpu_ms_per_img": 1000 * cpu / max(done, 1),
                     "img_per_s": done / wall,
                     "note": f"decode 256 px + features + parts, wall {wall:.1f} s"})
        print(f"  {rows[-1]['benchmark']}: {rows[-1]['img_per_s']:.0f} img/s", flush=True)
        ws.close()
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'benchmark':58} {'images':>6} {'CPU ms/img':>10} {'img/s':>8}  note")
    for row in rows:
        cpu = "" if np.isnan(row["cpu_ms_per_img"]) else f"{row['cpu_ms_per_img']:.1f}"
        rate = "" if np.isnan(row["img_per_s"]) else f"{row['img_per_s']:.0f}"
        print(f"{row['benchmark']:58} {row['images']:>6} {cpu:>10} {rate:>8}  {row['note']}")
        if "stages_ms" in row:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in row["stages_ms"].items())
            print(f"{'':58} {'':>6} {'':>10} {'':>8}  ms/img: {stages}")
    print("\n(2 shared cores: wall-clock figures are noisy; compare CPU ms/img)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--features-n", type=int, default=300,
                        help="pictures for the features-alone pass (default 300)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "colors")
    parser.add_argument("--corpus-dir", type=Path, default=REPO / "bench-output")
    parser.add_argument("--skip-workspace", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(args)
    print(f"decoding {args.features_n} pictures at 256 px ...", flush=True)
    pictures = _pictures(corpus, args.features_n)
    rows = bench_features(pictures)
    if not args.skip_workspace:
        rows += bench_workspace(corpus, args.workdir, args.corpus_dir / "ws-scan-w2",
                                args.workers, args.n)
    print_table(rows)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "rows": rows}
    (args.workdir / "colors-bench.json").write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
