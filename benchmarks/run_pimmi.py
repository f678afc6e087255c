"""Run PIMMI (https://github.com/nrv/pimmi, GPL-3.0) on a copy-detection corpus, timed.

    python benchmarks/run_pimmi.py CORPUS_DIR [--settings defaults,copydays] [--out DIR]

PIMMI lives in its own virtual environment (default /work/pimmi-venv, or $PIMMI_VENV), created
and filled with ``pip install pimmi requests`` on first use; it is never imported here, only run
through its command line, so its GPL code and its pins (networkx<3...) stay out of picsift's env.

Each setting runs PIMMI's three steps on CORPUS_DIR/images, with a fresh index:

    pimmi [GLOBAL OPTIONS] fill IMAGES INDEX
    pimmi [GLOBAL OPTIONS] query IMAGES INDEX -o query.csv
    pimmi [GLOBAL OPTIONS] clusters INDEX query.csv -o clusters.csv

(PIMMI's parameters are options of the top-level parser: they go before the sub-command.)

Settings:
  defaults   PIMMI's config.yml as shipped (SIFT 1000 features, IVF1024,Flat, query knn 1000,
             distance ratio 0.6, connected components).
  copydays   the settings PIMMI's README gives for its Copydays results:
             --sift-nfeatures 1000 --index-type IVF1024,Flat, query --query-sift-knn 1000
             --query-dist-ratio-threshold 0.8, clusters --algo components. (They differ from the
             defaults only in the distance ratio, 0.8 instead of 0.6.)
Both use --nb-threads THREADS (default 2, the machine's cores; PIMMI ships 8 and says to set
it to the core count). IVF1024 needs enough SIFT vectors to train 1024 centroids (faiss wants
~39 per centroid); below MIN_IMAGES_FOR_IVF images IDMap,Flat (exhaustive search, the index
PIMMI's own tests use for small sets) replaces it, and the result says so.

Per step: wall time, CPU time of the step's whole process tree (user+sys, from
getrusage(RUSAGE_CHILDREN) before/after, children reaped), the largest resident set of any
process of the step (ru_maxrss from wait4, like /usr/bin/time), and the peak of the summed
proportional set size (PSS) of the process tree, sampled every 0.2 s (fair to multi-process
tools: shared pages are split, not counted once per process). Linux folds the RSS a forked child
had *before* exec (the caller's) into ru_maxrss, so the caller must stay small: copies.py keeps
heavy work out of its own process; the sampled per-process VmHWM (max_hwm_sampled_mb) is kept
as a cross-check.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_VENV = Path(os.environ.get("PIMMI_VENV", "/work/pimmi-venv"))
MIN_IMAGES_FOR_IVF = 300
NB_MATCH_RANSAC = 10          # PIMMI's default for an edge of the clusters graph (not changed)
SETTINGS = {
    "defaults": {"global": [], "query": [], "clusters": ["--algo", "components"]},
    "copydays": {
        "global": ["--sift-nfeatures", "1000", "--index-type", "IVF1024,Flat"],
        "query": ["--query-sift-knn", "1000", "--query-dist-ratio-threshold", "0.8"],
        "clusters": ["--algo", "components"],
    },
}


# --------------------------------------------------------------------------- measurement

def _children_of(root: int) -> list[int]:
    """root and all its descendants, from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ... ; comm may contain spaces and parentheses
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _proc_kib(pid: int, file: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _PssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0          # summed PSS of the tree
        self.hwm_kib = 0           # largest VmHWM (peak RSS since exec) of one process
        self.stop = threading.Event()

    def run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        while not self.stop.is_set():
            tree = _children_of(self.pid)
            total = sum(_proc_kib(p, "smaps_rollup", "Pss:") for p in tree)
            self.peak_kib = max(self.peak_kib, total)
            self.hwm_kib = max([self.hwm_kib] + [_proc_kib(p, "status", "VmHWM:") for p in tree])
            self.stop.wait(self.interval)


def measure_command(cmd: list[str], *, log: Path | None = None, cwd: Path | None = None,
                    env: dict[str, str] | None = None) -> dict:
    """Run cmd to the end; wall, CPU (tree), max RSS (any one process), peak PSS (tree sum)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=env)
        sampler = _PssSampler(proc.pid)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return {
        "cmd": cmd, "returncode": proc.returncode, "wall_s": round(wall, 3),
        "cpu_s": round(user + system, 3), "user_s": round(user, 3), "sys_s": round(system, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),        # Linux: KiB
        "max_hwm_sampled_mb": round(sampler.hwm_kib / 1024, 1),
        "peak_pss_mb": round(sampler.peak_kib / 1024, 1),
        # 1-minute load average at the end: above the core count, other work shared the CPUs
        "loadavg_1m_after": round(load, 2) if load is not None else None,
    }


def total_of(steps: dict[str, dict]) -> dict:
    return {
        "wall_s": round(sum(s["wall_s"] for s in steps.values()), 3),
        "cpu_s": round(sum(s["cpu_s"] for s in steps.values()), 3),
        "max_rss_mb": max(s["max_rss_mb"] for s in steps.values()),
        "peak_pss_mb": max(s["peak_pss_mb"] for s in steps.values()),
    }


# --------------------------------------------------------------------------- PIMMI env

def ensure_pimmi(venv: Path = DEFAULT_VENV, python: str | None = None) -> tuple[Path, str]:
    """The pimmi executable of ``venv`` (created and installed if missing) and its version."""
    pimmi = venv / "bin" / "pimmi"
    if not pimmi.exists():
        print(f"pimmi: creating {venv} and installing pimmi (pip install pimmi requests)",
              file=sys.stderr)
        base = python or getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        done = subprocess.run([*pip, "pimmi", "requests"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install pimmi failed in {venv}:\n{done.stdout}\n{done.stderr}")
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m; print(m.version('pimmi'), m.version('faiss-cpu'), "
         "m.version('opencv-python'), m.version('numpy'))"],
        capture_output=True, text=True)
    if version.returncode != 0 or not pimmi.exists():
        raise RuntimeError(f"pimmi is not usable in {venv}: {version.stderr.strip()}")
    names = ("pimmi", "faiss-cpu", "opencv-python", "numpy")
    return pimmi, ", ".join(f"{n} {v}" for n, v in zip(names, version.stdout.split()))


# --------------------------------------------------------------------------- running

def count_images(images: Path) -> int:
    return sum(1 for _r, _d, files in os.walk(images) for f in files
               if f.lower().endswith((".jpg", ".jpeg", ".png")))


def run_setting(corpus: Path, out: Path, setting: str = "defaults", threads: int = 2,
                venv: Path = DEFAULT_VENV) -> dict:
    """Run fill/query/clusters in ``out`` (emptied first); returns timings and the clusters."""
    pimmi, versions = ensure_pimmi(venv)
    images = (corpus / "images").resolve()
    n_images = count_images(images)
    spec = SETTINGS[setting]
    global_opts = ["--nb-threads", str(threads), *spec["global"]]
    index_type = "IVF1024,Flat"
    note = ""
    if n_images < MIN_IMAGES_FOR_IVF:
        index_type = "IDMap,Flat"
        note = (f"{n_images} images are too few to train IVF1024: IDMap,Flat (exhaustive, as in "
                "PIMMI's own tests) used instead")
    if "--index-type" in global_opts:
        global_opts[global_opts.index("--index-type") + 1] = index_type
    else:
        global_opts += ["--index-type", index_type]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index = out / "index"
    query_csv, clusters_csv = out / "query.csv", out / "clusters.csv"
    # PIMMI's parameters are options of its top-level parser: they go before the sub-command.
    commands = {
        "fill": [str(pimmi), *global_opts, "fill", str(images), str(index)],
        "query": [str(pimmi), *global_opts, *spec["query"], "query", str(images), str(index),
                  "-o", str(query_csv)],
        "clusters": [str(pimmi), *global_opts, "clusters", *spec["clusters"], str(index),
                     str(query_csv), "-o", str(clusters_csv)],
    }
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    steps: dict[str, dict] = {}
    for step, cmd in commands.items():
        print(f"pimmi[{setting}]: {step} ...", file=sys.stderr, flush=True)
        result = measure_command(cmd, log=out / f"{step}.log", env=env)
        steps[step] = result
        if result["returncode"] != 0:
            tail = (out / f"{step}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"pimmi {step} failed (exit {result['returncode']}):\n{tail}")
        print(f"pimmi[{setting}]: {step} {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU",
              file=sys.stderr, flush=True)
    clusters, n_edges = read_clusters(clusters_csv), count_rows(query_csv)
    links = read_links(query_csv, NB_MATCH_RANSAC)
    return {
        "tool": "pimmi", "setting": setting, "versions": versions, "index_type": index_type,
        "note": note, "threads": threads, "n_images": n_images, "steps": steps,
        "total": total_of(steps), "query_rows": n_edges,
        # clusters.csv paths are relative to the image folder: make them corpus-relative
        "predicted": {f"images/{p}": c for p, c in clusters.items()},
        "links": {frozenset((f"images/{a}", f"images/{b}")) for a, b in links},
        "link_rule": f"query.csv rows with nb_match_ransac >= {NB_MATCH_RANSAC} (the graph edges)",
        "out": str(out),
    }


def read_clusters(clusters_csv: Path) -> dict[str, str]:
    """path -> cluster_id from PIMMI's clusters.csv (images absent from it are singletons)."""
    with clusters_csv.open(newline="") as f:
        return {row["path"]: row["cluster_id"] for row in csv.DictReader(f)}


def read_links(query_csv: Path, min_ransac: int) -> list[tuple[str, str]]:
    """The (query_path, result_path) pairs PIMMI's clusters step turns into graph edges."""
    with query_csv.open(newline="") as f:
        return [(row["query_path"], row["result_path"]) for row in csv.DictReader(f)
                if row["query_path"] != row["result_path"]
                and int(float(row["nb_match_ransac"])) >= min_ransac]


def count_rows(path: Path) -> int:
    with path.open(newline="") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="corpus folder (with images/ and truth.csv)")
    ap.add_argument("--settings", default="defaults,copydays")
    ap.add_argument("--out", type=Path, default=None, help="default CORPUS/../pimmi-SETTING")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = ap.parse_args(argv)
    for setting in args.settings.split(","):
        out = (args.out / setting) if args.out else args.corpus.parent / f"pimmi-{setting}"
        result = run_setting(args.corpus, out, setting, args.threads, args.venv)
        result.pop("predicted")
        result.pop("links")
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
