"""Benchmark: building the copy index in memory vs on disk, flat vs HNSW coarse quantizer,
on real SIFT features.

    .venv/bin/python benchmarks/ondisk_index.py [--workspace bench-output/scale/ws-n10000-local]
        [--index-type IVF8192,SQ8 [IVF8192_HNSW32,SQ8 ...]] [--storage memory disk]
        [--max-memory 256M] [--queries 500]

Uses the SIFT features already stored in a workspace (run benchmarks/scale.py first: its
``ws-nN-local`` workspaces hold them). For each storage (``memory``, then ``disk`` with
``--max-memory``), a child process builds the index from scratch under its own parameters
(an explicit ``--index-type``, so the workspace's own index is not touched), then searches
and verifies ``--queries`` images. Measured: build and search wall time, peak RSS of the child
and anonymous (owned, not file-backed) memory (polled every 0.1 s), the size of the saved index, and whether both storages found the same
pairs for the queried images. When the workspace holds pairs of its own (default settings,
e.g. from benchmarks/scale.py), each build's pairs are also compared with those, image by
image, for the images both queried.
"""

from __future__ import annotations

import argparse
import json
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


def child(ws_dir: str, index_type: str, storage: str, max_memory: str, queries: int,
          out: str) -> None:
    import picsift
    from picsift.analyses.copies.extract import sift_feature_set
    from picsift.analyses.copies.index import CopyIndex
    from picsift.analyses.copies.options import CopiesOptions, parse_size
    from picsift.analyses.copies.pipeline import (CopiesSummary, load_pairs, pairs_feature_set,
                                                  query_all)

    ws = picsift.open(ws_dir, workspace=ws_dir)
    options = CopiesOptions(index_type=index_type, index_storage=storage, workers=2,
                            max_memory=parse_size(max_memory) if storage == "disk" else None)
    index = CopyIndex(ws, options)
    shutil.rmtree(index.root, ignore_errors=True)
    shutil.rmtree(pairs_feature_set(ws, options).dir, ignore_errors=True)
    features = sift_feature_set(ws, options)
    started = time.monotonic()
    with ws.writing():
        added = index.extend(features)
        index.save()
    build = time.monotonic() - started
    saved = index.root / index.version
    size = sum(p.stat().st_size for p in saved.iterdir())
    loaded = CopyIndex(ws, options)
    loaded.load(mmap=True)
    summary = CopiesSummary()
    started = time.monotonic()
    with ws.writing():
        query_all(ws, options, loaded, features, summary, limit=queries)
    search = time.monotonic() - started
    pairs = load_pairs(ws, options)
    found = sorted(f"{q}>{m}" for q, m in zip(pairs["query_id"], pairs["match_id"]))
    queried = pairs_feature_set(ws, options).done_ids()
    own = pairs_feature_set(ws, CopiesOptions())
    reference = None
    if own.read() is not None:
        theirs = load_pairs(ws, CopiesOptions())
        both = queried & own.done_ids()
        reference = {"queried_by_both": len(both),
                     "pairs": sorted(f"{q}>{m}" for q, m in zip(theirs["query_id"],
                                                                theirs["match_id"]) if q in both),
                     "ours": sorted(f for f in found if f.split(">")[0] in both)}
    Path(out).write_text(json.dumps({
        "images": added, "descriptors": loaded.n_vectors, "build_s": round(build, 1),
        "search_s": round(search, 1), "queried": summary.queried,
        "index_mb": round(size / 2**20, 1), "on_disk": loaded.on_disk, "pairs": found,
        "reference": reference}))
    pairs_set = pairs_feature_set(ws, options)  # remove this benchmark's index and pairs only
    shutil.rmtree(index.root, ignore_errors=True)
    shutil.rmtree(pairs_set.dir, ignore_errors=True)
    with ws.transaction() as conn:
        conn.execute("DELETE FROM feature_sets WHERE name = ? AND params_hash = ?",
                     (pairs_set.name, pairs_set.hash))


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) of ``pid`` in bytes. RSS also counts the pages of memory-mapped
    files (the lists file being merged, the mapped index): page cache the OS can drop.
    Anonymous RSS is the memory the process really owns."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon"):
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values.get("VmRSS", 0), values.get("RssAnon", 0)


def measure(args: argparse.Namespace, index_type: str, storage: str) -> dict[str, Any]:
    out = Path(f"/tmp/ondisk-bench-{storage}.json")
    cmd = [sys.executable, str(HERE), "--child", str(args.workspace), index_type, storage,
           args.max_memory, str(args.queries), str(out)]
    proc = subprocess.Popen(cmd)
    peak, peak_anon, stop = 0, 0, threading.Event()

    def poll() -> None:
        nonlocal peak, peak_anon
        while not stop.is_set():
            rss, anon = _memory(proc.pid)
            peak, peak_anon = max(peak, rss), max(peak_anon, anon)
            stop.wait(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    if proc.wait() != 0:
        raise SystemExit(f"child failed: {' '.join(cmd)}")
    stop.set()
    thread.join()
    result = json.loads(out.read_text())
    result.update(index_type=index_type, storage=storage, peak_rss_mb=round(peak / 2**20),
                  peak_anon_mb=round(peak_anon / 2**20))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], argv[4], int(argv[5]), argv[6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path,
                        default=REPO / "bench-output" / "scale" / "ws-n10000-local")
    parser.add_argument("--index-type", nargs="+", default=["IVF8192,SQ8"])
    parser.add_argument("--storage", nargs="+", default=["memory", "disk"],
                        choices=["memory", "disk"])
    parser.add_argument("--max-memory", default="256M")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args(argv)
    rows = [measure(args, t, st) for t in args.index_type for st in args.storage]
    print(f"{'index type':22} {'storage':8} {'images':>7} {'descriptors':>12} {'build s':>8} "
          f"{'search s':>9} {'queried':>8} {'peak RSS MB':>12} {'peak anon MB':>13} "
          f"{'index MB':>9}")
    for r in rows:
        print(f"{r['index_type']:22} {r['storage']:8} {r['images']:>7} {r['descriptors']:>12,} "
              f"{r['build_s']:>8} {r['search_s']:>9} {r['queried']:>8} {r['peak_rss_mb']:>12} "
              f"{r['peak_anon_mb']:>13} {r['index_mb']:>9}")
    ok = True
    for r in rows:
        first = rows[0]
        if r is not first:
            same = r["pairs"] == first["pairs"]
            agree = _jaccard(r["pairs"], first["pairs"])
            print(f"{r['index_type']} {r['storage']} vs {first['index_type']} {first['storage']}: "
                  f"same pairs {same} (Jaccard {agree:.3f}, {len(r['pairs'])} vs "
                  f"{len(first['pairs'])} directed pairs)")
            ok &= same or r["index_type"] != first["index_type"]
        ref = r.get("reference")
        if ref and ref["queried_by_both"]:
            print(f"{r['index_type']} {r['storage']} vs the workspace's own pairs on "
                  f"{ref['queried_by_both']} images: Jaccard {_jaccard(ref['ours'], ref['pairs']):.3f} "
                  f"({len(ref['ours'])} vs {len(ref['pairs'])} directed pairs)")
    return 0 if ok else 1


def _jaccard(a: list[str], b: list[str]) -> float:
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 1.0

if __name__ == "__main__":
    raise SystemExit(main())
