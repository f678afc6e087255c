"""Peak memory of the embedding consumers at growing N: does it grow with N x dim?

    .venv/bin/python benchmarks/stream_memory.py [--sizes 20000,100000,200000]
        [--part-rows 1024] [--tasks cluster,sort,duplicates] [--workdir bench-output/stream]

For every N, a temporary workspace gets N synthetic unit-norm embeddings written through
FeatureSet exactly as `picsift embed` stores them (a Parquet part with media_id beside an
.npz of float16 `embedding` (1280-d) and `text_space` (384-d) arrays), plus one fake `files`
row per media so the analyses see N images (no pixels are needed: nothing is decoded).
The vectors: 12 tight groups (70 % of the images) around random centres, the rest spread
out, and 3 % near-copies of another image of the same part (for the duplicate search).

Each task then runs alone in a fresh child process that imports everything first, so its
peak RSS minus its RSS after imports is what the task itself needed:

- cluster: `cluster_workspace` (k-means peeling, default options) and `write_outputs`
  (CSV, map of at most 20,000 images, HTML);
- hdbscan: `cluster_workspace` with `algo="hdbscan"` (fitted on 10,000 images, the rest
  joined by core distance);
- sort: the decisions of `picsift sort` (`sorter._assign`) for a hierarchical label set
  (the copying of files is left out: there are no files);
- duplicates: `semantic_duplicates` at cosine 0.95, building the FAISS index first.

The table shows, per task and N, wall seconds, peak RSS, the peak's growth over the imports,
and for comparison what loading every embedding as one float32 matrix would take. The
duplicate search keeps a FAISS index of N x dim (4 bytes a value up to 100k images, 1 byte
with SQ8 above): its size is shown apart, as it is the index, not the reading.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DIM, TEXT_DIM = 1280, 384
LABELS = """labels:
  animal:
    description: an animal
    labels:
      cat: a cat
      dog: a dog
      bird: a bird
  vehicle:
    description: a vehicle
    labels:
      car: a car
      rocket: a rocket
  food: a plate of food
  document: a page of printed text
  space: stars and galaxies
"""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def generate(folder: Path, n: int, part_rows: int, seed: int = 0) -> float:
    """A workspace in ``folder`` with n synthetic embedded images; returns seconds taken."""
    import pyarrow as pa

    import picsift
    from picsift.analyses.embeddings import embedding_set

    started = time.perf_counter()
    (folder / "corpus").mkdir(parents=True)
    ws = picsift.open(folder / "corpus", workspace=folder / "ws")
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(12, DIM)))
    text_centres = _unit(rng.normal(size=(12, TEXT_DIM)))
    features = embedding_set(ws)
    features.register()
    with ws.writing():
        for start in range(0, n, part_rows):
            m = min(part_rows, n - start)
            ids = [f"{i:064x}" for i in range(start, start + m)]
            group = rng.integers(0, 12, m)
            grouped = rng.random(m) < 0.7
            image = rng.normal(size=(m, DIM))
            image[grouped] = centres[group[grouped]] * 30 + image[grouped]
            text = rng.normal(size=(m, TEXT_DIM))
            text[grouped] = text_centres[group[grouped]] * 10 + text[grouped]
            copies = np.flatnonzero(rng.random(m) < 0.03)
            originals = rng.integers(0, m, len(copies))
            image[copies] = image[originals] + rng.normal(scale=0.05, size=(len(copies), DIM))
            features.write_part(pa.table({"media_id": ids}), {
                "embedding": _unit(image).astype(np.float16),
                "text_space": _unit(text).astype(np.float16)})
            with ws.transaction() as conn:
                conn.executemany("INSERT INTO media(media_id, kind, run_id) VALUES (?, 'image', 0)",
                                 [(i,) for i in ids])
                conn.executemany(
                    "INSERT INTO files(path, media_id, kind, root, relpath, run_id) "
                    "VALUES (?, ?, 'image', ?, ?, 0)",
                    [(str(folder / "corpus" / f"{i[-12:]}.jpg"), i, str(folder / "corpus"),
                      f"{i[-12:]}.jpg") for i in ids])
    return time.perf_counter() - started


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(task: str, folder: Path) -> None:
    """Run one task on the workspace in ``folder``; print one JSON line of figures."""
    import faiss  # everything a task imports, before the baseline
    import pandas
    import scipy.sparse.csgraph
    import sklearn.cluster
    import sklearn.decomposition
    import sklearn.manifold
    import sklearn.metrics
    import yaml

    import picsift
    from picsift.analyses.clusters import ClusterOptions, cluster_workspace, write_outputs
    from picsift.analyses.search import semantic_duplicates
    from picsift.analyses.sort import sorter
    from picsift.analyses.sort.labels import _parse
    from picsift.models.text_model import embed_texts

    del faiss, pandas, scipy, sklearn  # loaded for the baseline only
    embed_texts(["warm up"])  # the text model's session is part of the imports
    ws = picsift.open(folder / "corpus", workspace=folder / "ws", create=False)
    baseline = _rss_kb("VmHWM")
    started = time.perf_counter()
    extra: dict[str, object] = {}
    if task == "cluster":
        run = cluster_workspace(ws, ClusterOptions(seed=0))
        clustered = time.perf_counter() - started
        write_outputs(ws, run, folder / "clusters-out")
        extra = {"clusters": run.n_clusters, "rounds": len(run.labels.rounds),
                 "map_points": len(run.map_rows), "cluster_s": round(clustered, 1)}
    elif task == "hdbscan":
        run = cluster_workspace(ws, ClusterOptions(algo="hdbscan", seed=0))
        extra = {"clusters": run.n_clusters, "noise": run.n_unclustered}
    elif task == "sort":
        labels = _parse(yaml.safe_load(LABELS)["labels"], "bench")
        media = [r["media_id"] for r in ws.query("SELECT media_id FROM media")]
        decisions = sorter._assign(ws, labels, media,
                                   sorter.SortOptions(to=folder / "sorted"))
        extra = {"labelled": sum(1 for paths in decisions.paths if paths)}
    elif task == "duplicates":
        from picsift.analyses.vector_index import VectorIndex

        groups = semantic_duplicates(ws, threshold=0.95)
        index = VectorIndex(ws, "efficientnet-lite0", "embedding").ensure().index
        code = index.code_size if hasattr(index, "code_size") else index.d * 4
        extra = {"groups": int(groups["group"].nunique()), "index_mb": index.ntotal * code / 1e6,
                 "index": type(index).__name__}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"task": task, "seconds": round(seconds, 1), "peak_mb": peak / 1024,
                      "baseline_mb": baseline / 1024, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000,100000,200000")
    parser.add_argument("--part-rows", type=int, default=1024,
                        help="rows per stored part (picsift embed writes 16 per batch)")
    parser.add_argument("--tasks", default="cluster,hdbscan,sort,duplicates")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-output" / "stream")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the tasks (1: leaves a core to others)")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{name: str(args.threads) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        folder = Path(tempfile.mkdtemp(prefix=f"stream-{n}-", dir=args.workdir))
        try:
            made = generate(folder, n, args.part_rows)
            print(f"N={n}: workspace written in {made:.0f} s", file=sys.stderr)
            for task in args.tasks.split(","):
                done = subprocess.run([sys.executable, __file__, "--child", task, str(folder)],
                                      capture_output=True, text=True, env=env, check=False)
                if done.returncode:
                    raise SystemExit(f"{task} at N={n} failed:\n{done.stderr[-3000:]}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                figures["n"] = n
                rows.append(figures)
                print(json.dumps(figures), file=sys.stderr)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\nparts of {args.part_rows} rows, {DIM}-d embeddings (+{TEXT_DIM}-d text space), "
          f"{args.threads} thread(s)")
    print("| task | N | wall s | peak RSS MB | peak - imports MB | all N x 1280 float32 MB | "
          "index MB | result |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        result = {"cluster": lambda r: f"{r['clusters']} clusters, {r['rounds']} rounds "
                                       f"({r['cluster_s']:.0f} s), map of {r['map_points']}",
                  "hdbscan": lambda r: f"{r['clusters']} clusters, {r['noise']} noise "
                                       f"(fit on {min(r['n'], 10_000)})",
                  "sort": lambda r: f"{r['labelled']} labelled",
                  "duplicates": lambda r: f"{r['groups']} groups, {r['index']}"}[r["task"]](r)
        index = f"{r['index_mb']:.0f}" if "index_mb" in r else "-"
        print(f"| {r['task']} | {r['n']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
              f"{r['peak_mb'] - r['baseline_mb']:.0f} | {r['n'] * DIM * 4 / 1e6:.0f} | {index} | "
              f"{result} |")


if __name__ == "__main__":
    main()
