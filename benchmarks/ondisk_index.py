"""Benchmark: building the copy index in memory vs on disk, on real SIFT features.

    .venv/bin/python benchmarks/ondisk_index.py [--workspace bench-output/scale/ws-n10000-local]
        [--index-type IVF8192,SQ8] [--max-memory 256M] [--queries 500]

Uses the SIFT features already stored in a workspace (run benchmarks/scale.py first: its
``ws-nN-local`` workspaces hold them). For each storage (``memory``, then ``disk`` with
``--max-memory``), a child process builds the index from scratch under its own parameters
(an explicit ``--index-type``, so the workspace's own index is not touched), then searches
and verifies ``--queries`` images. Measured: build and search wall time, peak RSS of the child
and anonymous (owned, not file-backed) memory (polled every 0.1 s), the size of the saved index, and whether both storages found the same
pairs for the queried images.
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
    Path(out).write_text(json.dumps({
        "images": added, "descriptors": loaded.n_vectors, "build_s": round(build, 1),
        "search_s": round(search, 1), "queried": summary.queried,
        "index_mb": round(size / 2**20, 1), "on_disk": loaded.on_disk, "pairs": found}))
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


def measure(args: argparse.Namespace, storage: str) -> dict[str, Any]:
    out = Path(f"/tmp/ondisk-bench-{storage}.json")
    cmd = [sys.executable, str(HERE), "--child", str(args.workspace), args.index_type, storage,
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
    result.update(storage=storage, peak_rss_mb=round(peak / 2**20),
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
    parser.add_argument("--index-type", default="IVF8192,SQ8")
    parser.add_argument("--max-memory", default="256M")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args(argv)
    rows = [measure(args, "memory"), measure(args, "disk")]
    print(f"{'storage':8} {'images':>7} {'descriptors':>12} {'build s':>8} {'search s':>9} "
          f"{'queried':>8} {'peak RSS MB':>12} {'peak anon MB':>13} {'index MB':>9}")
    for r in rows:
        print(f"{r['storage']:8} {r['images']:>7} {r['descriptors']:>12,} {r['build_s']:>8} "
              f"{r['search_s']:>9} {r['queried']:>8} {r['peak_rss_mb']:>12} "
              f"{r['peak_anon_mb']:>13} {r['index_mb']:>9}")
    same = rows[0]["pairs"] == rows[1]["pairs"]
    print(f"same pairs for the {rows[0]['queried']} queried images: {same} "
          f"({len(rows[0]['pairs'])} directed pairs)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
