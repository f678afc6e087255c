"""Benchmark: picsift scan throughput and JPEG decode+resize paths.

    .venv/bin/python benchmarks/scan.py [--n 2000] [--workdir DIR] [--decode-n 300]

1. Builds (once, cached in the workdir) a corpus of N JPEGs, 800x600 to 1600x1200, quality
   80-95, made from the bundled CC0 photos (random crops, resizes, flips, colour jitter and
   sensor-like noise, so every file differs and compresses like a photo).
2. Times ``picsift`` scan (hash + metadata + verifying decode) through the Python API, with 1
   and 2 workers (fresh workspace each), and a rerun where every file is skipped.
3. Times decode + resize to 224 px and 512 px (longer side) on the same images, one process,
   one thread, for picsift's ``load_image`` and the alternatives (Pillow, OpenCV,
   simplejpeg, pyvips when installed), and measures how far each result is from a
   high-quality reference (full decode + Lanczos) so speed is not bought with bad pixels.
4. Prints one table and writes everything to ``<workdir>/scan-bench.json``.

CPU time (``time.process_time``, plus reaped worker processes for the scan) is the figure to
compare: wall-clock on a shared machine is noisy. "img/s per core" is 1000 / CPU ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# One thread per library: the decode figures are per core, and process_time would count
# helper threads anyway. Must be set before the libraries are imported.
os.environ.setdefault("VIPS_CONCURRENCY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

import picsift  # noqa: E402
from picsift.media import decode as picsift_decode  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "src" / "picsift" / "demo" / "corpus" / "photos"
GENERATOR_VERSION = 2
SIZES = (224, 512)

try:
    import cv2

    cv2.setNumThreads(1)
except Exception:  # pragma: no cover - optional
    cv2 = None
try:
    import simplejpeg
except Exception:  # pragma: no cover - optional
    simplejpeg = None
try:
    import pyvips
except Exception as _exc:  # pragma: no cover - optional (pip install pyvips pyvips-binary)
    pyvips = None
    PYVIPS_ERROR = f"{_exc.__class__.__name__}: {_exc}"
else:
    PYVIPS_ERROR = ""


# --------------------------------------------------------------------------- corpus
_SOURCES: list[np.ndarray] = []


def _sources() -> list[np.ndarray]:
    if not _SOURCES:
        for path in sorted(PHOTOS.iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                with Image.open(path) as img:
                    _SOURCES.append(np.asarray(img.convert("RGB")))
    return _SOURCES


def _exif(rng: np.random.Generator, orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = ["Canon", "NIKON CORPORATION", "Apple", "SONY", "FUJIFILM"][rng.integers(5)]
    exif[0x0110] = f"Model {int(rng.integers(1, 90))}"
    day = int(rng.integers(1, 28))
    exif[0x0132] = f"2021:{int(rng.integers(1, 13)):02d}:{day:02d} 12:{day:02d}:00"
    if orientation != 1:
        exif[0x0112] = orientation
    return exif


def make_jpeg(index: int, seed: int) -> tuple[bytes, dict[str, Any]]:
    """One synthetic photo, deterministic in (index, seed)."""
    rng = np.random.default_rng([seed, index])
    sources = _sources()
    src = sources[int(rng.integers(len(sources)))]
    h, w = src.shape[:2]
    # Random crop of 45-100 % of each side.
    ch, cw = int(h * rng.uniform(0.45, 1.0)), int(w * rng.uniform(0.45, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = src[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    # Output size: longer side 800-1600, camera-like aspect ratios.
    aspect = [4 / 3, 3 / 2, 16 / 9, 1.0][int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1]))]
    long_side = int(rng.integers(800, 1601 if aspect > 1 else 1201))  # at most ~1600x1200
    short_side = max(600 if long_side >= 1067 else 450, int(round(long_side / aspect)))
    short_side = min(short_side, long_side)
    portrait = rng.random() < 0.25
    size = (short_side, long_side) if portrait else (long_side, short_side)
    img = Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.BICUBIC)
    # Colour jitter and sensor-like noise (fine detail makes file sizes photo-like).
    arr = np.asarray(img, dtype=np.float32)
    gain = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    arr = arr * gain + rng.uniform(-12, 12)
    sigma = rng.uniform(2.0, 6.0)
    arr += rng.normal(0.0, sigma, size=arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    grey = rng.random() < 0.05
    if grey:
        img = img.convert("L")
    # 10 % are stored sideways with EXIF orientation 6, like phone pictures taken upright.
    orientation = 6 if rng.random() < 0.10 else 1
    if orientation == 6:
        img = img.transpose(Image.Transpose.ROTATE_90)
    quality = int(rng.integers(80, 96))
    subsampling = 0 if rng.random() < 0.2 else 2  # 4:4:4 or 4:2:0
    progressive = bool(rng.random() < 0.1)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, subsampling=subsampling,
             progressive=progressive, exif=_exif(rng, orientation))
    info = {"width": img.width, "height": img.height, "quality": quality, "grey": grey,
            "orientation": orientation, "progressive": progressive,
            "subsampling": "444" if subsampling == 0 else "420"}
    return buffer.getvalue(), info


def _write_one(args: tuple[int, int, str]) -> dict[str, Any]:
    index, seed, folder = args
    data, info = make_jpeg(index, seed)
    name = f"d{index // 100:03d}/img{index:06d}.jpg"
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"name": name, "bytes": len(data), **info}


def build_corpus(workdir: Path, n: int, seed: int, jobs: int) -> tuple[Path, list[dict[str, Any]]]:
    """Generate the corpus once; a rerun with the same n and seed reuses it."""
    folder = workdir / f"corpus-n{n}-s{seed}"
    manifest_path = workdir / f"corpus-n{n}-s{seed}.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        files = manifest.get("files", [])
        if (manifest.get("version") == GENERATOR_VERSION and len(files) == n
                and all((folder / f["name"]).is_file() for f in files)):
            print(f"corpus: reusing {n} images in {folder}")
            return folder, files
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"corpus: generating {n} JPEGs in {folder} ...", flush=True)
    started = time.perf_counter()
    tasks = [(i, seed, str(folder)) for i in range(n)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            files = list(pool.map(_write_one, tasks, chunksize=16))
    else:
        files = [_write_one(t) for t in tasks]
    manifest_path.write_text(json.dumps({"version": GENERATOR_VERSION, "n": n, "seed": seed,
                                         "files": files}))
    print(f"corpus: done in {time.perf_counter() - started:.1f} s", flush=True)
    return folder, files


def corpus_stats(files: list[dict[str, Any]]) -> dict[str, Any]:
    mp = [f["width"] * f["height"] / 1e6 for f in files]
    return {
        "images": len(files),
        "total_mb": round(sum(f["bytes"] for f in files) / 1e6, 1),
        "mean_kb": round(statistics.mean(f["bytes"] for f in files) / 1e3, 1),
        "mean_megapixels": round(statistics.mean(mp), 3),
        "min_megapixels": round(min(mp), 3),
        "max_megapixels": round(max(mp), 3),
        "grey": sum(f["grey"] for f in files),
        "orientation_6": sum(f["orientation"] == 6 for f in files),
        "progressive": sum(f["progressive"] for f in files),
        "subsampling_444": sum(f["subsampling"] == "444" for f in files),
    }


# --------------------------------------------------------------------------- clocks
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Row:
    benchmark: str
    size: str
    images: int
    cpu_ms_per_img: float
    wall_img_per_s: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def img_per_s_per_core(self) -> float:
        return 1000.0 / self.cpu_ms_per_img if self.cpu_ms_per_img > 0 else float("nan")


# --------------------------------------------------------------------------- scan
def bench_scan(corpus: Path, workdir: Path, n: int, workers_list: list[int]) -> list[Row]:
    rows: list[Row] = []
    for workers in workers_list:
        ws_dir = workdir / f"ws-scan-w{workers}"
        if ws_dir.exists():
            shutil.rmtree(ws_dir)
        ws = picsift.open(corpus, workspace=ws_dir)
        try:
            cpu0, child0, wall0 = time.process_time(), _children_cpu(), time.perf_counter()
            summary = ws.scan(workers=workers, progress=False)
            wall = time.perf_counter() - wall0
            # Worker processes are joined at the end of the scan, so their CPU is reaped.
            cpu = time.process_time() - cpu0 + _children_cpu() - child0
            if summary.images != n or summary.errors:
                raise SystemExit(f"scan went wrong: {summary}")
            rows.append(Row(f"picsift scan, {workers} worker{'s' * (workers > 1)}", "full", n,
                            1000 * cpu / n, n / wall,
                            "hash + EXIF + verifying decode, fresh ws",
                            {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}))
            if workers == workers_list[-1]:
                cpu0, child0, wall0 = time.process_time(), _children_cpu(), time.perf_counter()
                again = ws.scan(workers=workers, progress=False)
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0 + _children_cpu() - child0
                if again.skipped != n:
                    raise SystemExit(f"rerun did not skip everything: {again}")
                rows.append(Row(f"picsift scan rerun, {workers} worker{'s' * (workers > 1)}",
                                "-", n, 1000 * cpu / n, n / wall,
                                "every file skipped",
                                {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}))
        finally:
            ws.close()
        print(f"  {rows[-1].benchmark}: {rows[-1].wall_img_per_s:.0f} img/s", flush=True)
    return rows


# --------------------------------------------------------------------------- decode paths
def _fit_dims(width: int, height: int, size: int) -> tuple[int, int]:
    if max(width, height) <= size:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def m_picsift(path: str, size: int) -> np.ndarray:
    return np.asarray(picsift_decode.load_image(path, size=size))


def m_pillow_draft(path: str, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img.draft("RGB", (size, size))
        img = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(img.resize(_fit_dims(*img.size, size), Image.Resampling.BILINEAR,
                                     reducing_gap=2.0))


def m_pillow_full(path: str, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(img.resize(_fit_dims(*img.size, size), Image.Resampling.BILINEAR,
                                     reducing_gap=2.0))


def m_cv2(path: str, size: int) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)  # applies EXIF orientation
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, _fit_dims(w, h, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def m_simplejpeg(path: str, size: int) -> np.ndarray:
    with open(path, "rb") as handle:
        data = handle.read()
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    tw, th = _fit_dims(w, h, size)
    rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True,
                                 min_width=tw, min_height=th)
    if rgb.shape[1] != tw or rgb.shape[0] != th:
        rgb = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
    return rgb


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _draft_dims(width: int, height: int, size: int) -> tuple[int, int]:
    """Size Pillow's draft((size, size)) decodes to: 1/1, 1/2, 1/4 or 1/8, both sides >= size."""
    ratio = min(width // size, height // size)
    scale = next(s for s in (8, 4, 2, 1) if ratio >= s or s == 1)
    return -(-width // scale), -(-height // scale)


def _simplejpeg_as_picsift(path: str, size: int, same_scale: bool) -> np.ndarray:
    """What a simplejpeg fast path inside load_image would do: Pillow header (bomb guard,
    EXIF orientation), simplejpeg decode, Pillow BILINEAR fit, transpose."""
    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112, 1)
        img.fp.seek(0)
        data = img.fp.read()
    if same_scale:  # the DCT scale picsift's Pillow path uses: same size, same pixels
        min_w, min_h = _draft_dims(width, height, size)
        target = _fit_dims(min_w, min_h, size)
    else:  # the smallest DCT scale (k/8) still >= the target: less work, softer result
        target = min_w, min_h = _fit_dims(width, height, size)
    out = Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=not same_scale,
                                                 min_width=min_w, min_height=min_h))
    if out.size != target:
        out = out.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    method = _TRANSPOSE.get(orientation)
    return np.asarray(out.transpose(method) if method is not None else out)


def m_simplejpeg_same_scale(path: str, size: int) -> np.ndarray:
    return _simplejpeg_as_picsift(path, size, same_scale=True)


def m_simplejpeg_target_scale(path: str, size: int) -> np.ndarray:
    return _simplejpeg_as_picsift(path, size, same_scale=False)


def m_pyvips(path: str, size: int) -> np.ndarray:
    thumb = pyvips.Image.thumbnail(path, size, height=size)  # auto-rotates, shrink-on-load
    if thumb.bands == 1:
        thumb = thumb.colourspace("srgb")
    return thumb.numpy()


@dataclass
class Method:
    name: str
    func: Callable[[str, int], np.ndarray]
    upright: bool  # applies EXIF orientation
    note: str
    available: bool = True
    why_not: str = ""


def decode_methods() -> list[Method]:
    sj = simplejpeg is not None
    return [
        Method("picsift load_image", m_picsift, True,
               "bomb guard, EXIF, draft, BILINEAR"),
        Method("Pillow draft + BILINEAR (bare)", m_pillow_draft, True,
               "draft, EXIF, BILINEAR; no checks"),
        Method("Pillow full decode + BILINEAR", m_pillow_full, True, "no draft"),
        Method("OpenCV imread + INTER_AREA", m_cv2, True, "imread applies EXIF",
               cv2 is not None, "opencv not installed"),
        Method("simplejpeg DCT-scaled + cv2 INTER_AREA", m_simplejpeg, False,
               "k/8 scale >= target, fastdct; no EXIF",
               sj and cv2 is not None, "simplejpeg/opencv not installed"),
        Method("simplejpeg in load_image, same DCT scale", m_simplejpeg_same_scale, True,
               "picsift's DCT scale, islow: same output",
               sj, "simplejpeg not installed"),
        Method("simplejpeg in load_image, target DCT scale", m_simplejpeg_target_scale, True,
               "k/8 scale >= target, fastdct, EXIF",
               sj, "simplejpeg not installed"),
        Method("pyvips thumbnail", m_pyvips, True, "shrink-on-load, lanczos3, EXIF",
               pyvips is not None, f"pyvips unavailable ({PYVIPS_ERROR})"),
    ]


def _reference(path: str, out_hw: tuple[int, int], upright: bool) -> np.ndarray:
    with Image.open(path) as img:
        img = (ImageOps.exif_transpose(img) if upright else img).convert("RGB")
        return np.asarray(img.resize((out_hw[1], out_hw[0]), Image.Resampling.LANCZOS))


def bench_decode(paths: list[str], rounds: int, quality_n: int) -> list[Row]:
    rows: list[Row] = []
    for method in decode_methods():
        if not method.available:
            print(f"  skip {method.name}: {method.why_not}", flush=True)
            rows.append(Row(method.name, "-", 0, float("nan"), float("nan"),
                            f"skipped: {method.why_not}"))
            continue
        for size in SIZES:
            for path in paths[:5]:  # warm-up (imports, caches)
                method.func(path, size)
            cpu_runs, wall_runs = [], []
            for _ in range(rounds):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for path in paths:
                    method.func(path, size)
                cpu_runs.append(time.process_time() - cpu0)
                wall_runs.append(time.perf_counter() - wall0)
            # Quality: mean absolute difference (0-255) to full decode + Lanczos, same size.
            diffs, size_ok = [], 0
            for path in paths[:quality_n]:
                out = method.func(path, size)
                if max(out.shape[:2]) in (size, size - 1, size + 1):
                    size_ok += 1
                ref = _reference(path, out.shape[:2], method.upright)
                diffs.append(float(np.abs(out.astype(np.int16) - ref.astype(np.int16)).mean()))
            n = len(paths)
            row = Row(method.name, str(size), n, 1000 * min(cpu_runs) / n, n / min(wall_runs),
                      method.note, {
                          "cpu_ms_per_img_all_rounds": [round(1000 * c / n, 3) for c in cpu_runs],
                          "wall_ms_per_img_all_rounds": [round(1000 * w / n, 3) for w in wall_runs],
                          "mad_vs_reference": round(statistics.mean(diffs), 3),
                          "longer_side_ok": f"{size_ok}/{len(diffs)}",
                      })
            rows.append(row)
            print(f"  {method.name} @ {size}: {row.cpu_ms_per_img:.2f} ms CPU/img, "
                  f"MAD {row.extra['mad_vs_reference']:.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- report
def print_table(rows: list[Row], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except Exception:  # pragma: no cover - rich is a dependency, but stay usable
        Console = None
    headers = ["benchmark", "size", "CPU ms/img", "img/s per core", "img/s wall", "MAD vs ref",
               "note"]
    body = []
    for r in rows:
        if r.images == 0:
            body.append([r.benchmark, "-", "-", "-", "-", "-", r.note])
            continue
        mad = r.extra.get("mad_vs_reference")
        body.append([r.benchmark, r.size, f"{r.cpu_ms_per_img:.2f}",
                     f"{r.img_per_s_per_core:.0f}", f"{r.wall_img_per_s:.0f}",
                     "-" if mad is None else f"{mad:.2f}", r.note])
    if Console is not None:
        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="right" if h not in ("benchmark", "note") else "left")
        for line in body:
            table.add_row(*line)
        Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for line in body:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """NaN (skipped methods) is not valid JSON: write null."""
    return {k: (None if isinstance(v, float) and v != v else
                round(v, 3) if isinstance(v, float) else v) for k, v in record.items()}


def _versions() -> dict[str, str]:
    import PIL

    out = {"python": platform.python_version(), "pillow": PIL.__version__,
           "numpy": np.__version__, "picsift": picsift.__version__}
    if cv2 is not None:
        out["opencv"] = cv2.__version__
    if simplejpeg is not None:
        out["simplejpeg"] = simplejpeg.__version__
    if pyvips is not None:
        out["pyvips"] = pyvips.__version__
        out["libvips"] = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output",
                        help="corpus cache, workspaces and results (default bench-output/)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="scan worker counts (default 1,2)")
    parser.add_argument("--decode-n", type=int, default=300,
                        help="images used for the decode comparison (default 300)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed passes per decode method and size; best is kept (default 3)")
    parser.add_argument("--quality-n", type=int, default=40,
                        help="images used for the pixel-difference check (default 40)")
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    workdir = args.workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    corpus, files = build_corpus(workdir, args.n, args.seed, jobs=max(1, cores or 1))
    stats = corpus_stats(files)
    print(f"corpus: {stats}")

    rows: list[Row] = []
    if not args.skip_scan:
        print("scan:", flush=True)
        rows += bench_scan(corpus, workdir, args.n, [int(w) for w in args.workers.split(",")])
    if not args.skip_decode:
        # Evenly spread over the corpus so sizes, greys and rotated files are all represented.
        step = max(1, len(files) // max(1, args.decode_n))
        chosen = [str(corpus / f["name"]) for f in files[::step][: args.decode_n]]
        print(f"decode: {len(chosen)} images, {args.rounds} rounds, one thread", flush=True)
        rows += bench_decode(chosen, args.rounds, min(args.quality_n, len(chosen)))

    load_after = os.getloadavg()
    title = (f"picsift scan & decode benchmark: {stats['images']} JPEGs, "
             f"{stats['mean_megapixels']} MP mean, {cores} cores, "
             f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print_table(rows, title)
    print("CPU ms/img: best of rounds (process_time; scan includes worker processes). "
          "MAD: mean abs pixel difference (0-255) to full decode + Lanczos at the same size.")
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cores": cores, "platform": platform.platform(),
                    "processor": platform.processor(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "versions": _versions(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "corpus": {"path": str(corpus), **stats},
        "results": [_clean({**asdict(r), "img_per_s_per_core": r.img_per_s_per_core})
                    for r in rows],
    }
    out = workdir / "scan-bench.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
