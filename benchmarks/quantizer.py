"""Benchmark: assigning RootSIFT descriptors to IVF lists, exhaustive vs HNSW centroid search.

    .venv/bin/python benchmarks/quantizer.py [--workspace bench-output/scale/ws-n10000-local]
        [--nlist 8192 65536] [--queries 100000] [--ef 16 32 64]

Reads the SIFT features stored in a workspace (benchmarks/scale.py writes them), samples
200,000 descriptors for centroids (k-means, as the index does, up to 16,384 lists; sampled
descriptors above, which is enough to time the search), then times assigning ``--queries``
other descriptors to their 4 nearest centroids (nprobe 4) with faiss's flat index and with an
HNSW graph over the same centroids (built on one thread, as picsift does), and reports how
often both agree on the nearest list and on the 4 probed lists. Why: the centroid search is
what an IVF index spends its build and search time on once nlist is large
(src/picsift/analyses/copies/factory.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def descriptors(workspace: Path, wanted: int) -> np.ndarray:
    """Up to ``wanted`` RootSIFT descriptors from the workspace's SIFT parts, every part."""
    from picsift.features.local import root_sift

    parts = sorted(workspace.glob("features/sift/*/part-*.npz"))
    if not parts:
        raise SystemExit(f"no SIFT features under {workspace}: run benchmarks/scale.py first")
    chunks, total = [], 0
    for part in parts[:: max(1, len(parts) // 400)]:
        with np.load(part) as data:
            chunks.append(data["descriptors"])
        total += len(chunks[-1])
        if total >= wanted:
            break
    return np.ascontiguousarray(root_sift(np.concatenate(chunks)[:wanted]))


def main(argv: list[str] | None = None) -> int:
    import faiss

    from picsift.analyses.copies.factory import kmeans, single_thread

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path,
                        default=REPO / "bench-output" / "scale" / "ws-n10000-local")
    parser.add_argument("--nlist", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args(argv)
    data = descriptors(args.workspace, 200_000 + args.queries)
    if len(data) < 200_000 + args.queries:
        raise SystemExit(f"only {len(data)} descriptors in {args.workspace}")
    sample, queries = data[:200_000], data[200_000:]
    print(f"{faiss.omp_get_max_threads()} thread(s), {len(queries):,} descriptors assigned, nprobe 4")
    print(f"{'nlist':>7} {'search':>14} {'us/descriptor':>14} {'top-1 agree':>12} {'4 lists agree':>14}")
    for nlist in args.nlist:
        centroids = (kmeans(sample, nlist) if nlist <= 16_384
                     else np.ascontiguousarray(sample[:nlist]))
        flat = faiss.IndexFlatL2(128)
        flat.add(centroids)
        started = time.perf_counter()
        _, exact = flat.search(queries, 4)
        flat_us = (time.perf_counter() - started) / len(queries) * 1e6
        print(f"{nlist:>7} {'flat':>14} {flat_us:>14.1f} {'-':>12} {'-':>14}")
        graph = faiss.IndexHNSWFlat(128, 32)
        graph.hnsw.efConstruction = 40
        with single_thread():
            graph.add(centroids)
        for ef in args.ef:
            graph.hnsw.efSearch = ef
            started = time.perf_counter()
            _, found = graph.search(queries, 4)
            us = (time.perf_counter() - started) / len(queries) * 1e6
            top1 = float((found[:, 0] == exact[:, 0]).mean())
            probed = float(np.mean([len(set(a) & set(b)) / 4 for a, b in zip(found, exact)]))
            print(f"{nlist:>7} {f'HNSW32 ef{ef}':>14} {us:>14.1f} {top1:>12.4f} {probed:>14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
