"""Copy-detection benchmark: picsift against PIMMI on the same generated corpus and machine.

    .venv/bin/python benchmarks/copies.py --n 1000 [--seed 0] [--workdir bench-output/copies]
                                          [--skip-pimmi] [--skip-picsift]
                                          [--pimmi-settings defaults,copydays] [--threads 2]

1. makes (or reuses) the corpus WORKDIR/corpus-n{N}-seed{SEED} (benchmarks/copies_corpus.py);
2. runs PIMMI's fill/query/clusters with its defaults and its Copydays settings, in its own venv
   (benchmarks/run_pimmi.py; created on first use);
3. runs picsift in a child process per step, on a fresh workspace:
       ws = picsift.open(CORPUS/images, workspace=WS); ws.scan(workers=T)      # step "scan"
       result = ws.copies(workers=T)                                            # step "copies"
   and reads result.clusters (path, media_id, cluster_id);
4. scores every run with the same code (picsift.analyses.cluster_metrics.evaluate_clusters plus
   the figures below), prints one table with ratios and writes WORKDIR/results-n{N}-seed{SEED}.json.

Images absent from a tool's clusters count as singletons. Timings are taken identically for both
tools (see run_pimmi.measure_command): wall, CPU of the whole process tree, max RSS of one
process, peak summed PSS of the tree.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import copies_corpus  # noqa: E402
import run_pimmi  # noqa: E402

COPY_TRANSFORMS = copies_corpus.TRANSFORMS + ["distractor_crop"]


# --------------------------------------------------------------------------- picsift child

def _picsift_step(step: str, images: str, ws_dir: str, out_csv: str, workers: int) -> int:
    """Runs inside a child process so that it is measured like PIMMI's steps."""
    import picsift  # noqa: PLC0415

    ws = picsift.open(images, workspace=ws_dir)
    if step == "scan":
        summary = ws.scan(workers=workers)
        print(f"scan: {summary}", flush=True)
        return 0
    if not hasattr(ws, "copies"):
        print("picsift has no Workspace.copies() yet: the copy-detection pipeline is not "
              "written/installed in this checkout", file=sys.stderr)
        return 3
    try:
        result = ws.copies(workers=workers)
    except (ImportError, AttributeError) as exc:
        print(f"picsift's copies() is not usable yet: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    clusters = result.clusters
    missing = {"path", "cluster_id"} - set(clusters.columns)
    if missing:
        print(f"result.clusters lacks columns {sorted(missing)}: has {list(clusters.columns)}",
              file=sys.stderr)
        return 4
    cols = [c for c in ("path", "media_id", "cluster_id", "cluster_size") if c in clusters.columns]
    clusters[cols].to_csv(out_csv, index=False)
    pairs = getattr(result, "pairs", None)
    n_pairs = len(pairs) if pairs is not None else -1
    if pairs is not None and {"query_path", "result_path"} <= set(pairs.columns):
        pairs[["query_path", "result_path"]].to_csv(out_csv + ".pairs.csv", index=False)
    with open(out_csv + ".info.json", "w") as f:
        json.dump({"pairs": n_pairs, "summary": str(getattr(result, "summary", ""))[:2000]}, f)
    print(f"copies: {len(clusters)} cluster rows, {n_pairs} pairs", flush=True)
    return 0


def run_picsift(corpus: Path, out: Path, threads: int) -> dict:
    images = (corpus / "images").resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ws_dir = out / "workspace"
    clusters_csv = out / "clusters.csv"
    steps: dict[str, dict] = {}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for step in ("scan", "copies"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "_picsift", step, str(images),
               str(ws_dir), str(clusters_csv), str(threads)]
        print(f"picsift: {step} ...", file=sys.stderr, flush=True)
        result = run_pimmi.measure_command(cmd, log=out / f"{step}.log", env=env)
        steps[step] = result
        if result["returncode"] != 0:
            tail = (out / f"{step}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"picsift {step} failed (exit {result['returncode']}):\n{tail}")
        print(f"picsift: {step} {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU",
              file=sys.stderr, flush=True)
    predicted, links, info = load_picsift_output(corpus, out)
    try:
        from importlib.metadata import version  # noqa: PLC0415
        versions = f"picsift {version('picsift')}"
    except Exception:  # noqa: BLE001
        versions = "picsift"
    return {"tool": "picsift", "setting": f"workers={threads}", "versions": versions,
            "threads": threads, "n_images": copies_corpus_count(images), "steps": steps,
            "total": run_pimmi.total_of(steps), "pairs": info.get("pairs"),
            "predicted": predicted, "links": links, "link_rule": "every row of result.pairs",
            "out": str(out)}


def load_picsift_output(corpus: Path, out: Path
                        ) -> tuple[dict[str, str], set[frozenset[str]] | None, dict]:
    """Corpus-relative path -> cluster id, the verified pairs, and the info of a picsift run."""
    images = (corpus / "images").resolve()

    def rel(p: str) -> str:
        path = Path(p)
        return os.path.relpath(path if path.is_absolute() else images / path, corpus.resolve())

    with (out / "clusters.csv").open(newline="") as f:
        predicted = {rel(row["path"]): row["cluster_id"] for row in csv.DictReader(f)}
    info = json.loads((out / "clusters.csv.info.json").read_text())
    links = None
    pairs_csv = out / "clusters.csv.pairs.csv"
    if pairs_csv.is_file():
        with pairs_csv.open(newline="") as f:
            links = {frozenset((rel(r["query_path"]), rel(r["result_path"])))
                     for r in csv.DictReader(f) if r["query_path"] != r["result_path"]}
    return predicted, links, info


def load_pimmi_output(out: Path) -> tuple[dict[str, str], set[frozenset[str]]]:
    clusters = run_pimmi.read_clusters(out / "clusters.csv")
    links = run_pimmi.read_links(out / "query.csv", run_pimmi.NB_MATCH_RANSAC)
    return ({f"images/{p}": c for p, c in clusters.items()},
            {frozenset((f"images/{a}", f"images/{b}")) for a, b in links})


def reuse_previous(name: str, previous: dict, fingerprint: str) -> dict | None:
    """An earlier run of the same corpus (kept in the results JSON), re-read from its files."""
    entry = previous.get(name)
    if not entry or entry.get("corpus_sha256") != fingerprint:
        return None
    out = Path(entry["out"])
    try:
        if entry["tool"] == "picsift":
            predicted, links, _info = load_picsift_output(Path(entry["corpus"]), out)
        else:
            predicted, links = load_pimmi_output(out)
    except (OSError, KeyError, ValueError):
        return None
    print(f"{name}: reusing the run of {entry.get('created')} (not re-run)", file=sys.stderr)
    return {**entry, "predicted": predicted, "links": links, "reused": True}


def copies_corpus_count(images: Path) -> int:
    return run_pimmi.count_images(images)


# --------------------------------------------------------------------------- evaluation

def evaluate(rows: list[dict], predicted: dict[str, str],
             links: set[frozenset[str]] | None = None) -> dict:
    """Every figure of one run against truth.csv rows (links: the tool's verified pairs)."""
    from picsift.analyses.cluster_metrics import evaluate_clusters  # noqa: PLC0415

    truth = {r["path"]: r["truth"] for r in rows}
    unknown = set(predicted) - set(truth)
    pred = {p: c for p, c in predicted.items() if p in truth}
    queries = {r["path"] for r in rows if r["is_original"] == "1"}
    scores = evaluate_clusters(truth, pred, queries).as_dict()

    # full labelling: missing items are their own singleton
    label = {p: ("c", pred[p]) if p in pred else ("s", p) for p in truth}
    members: dict[object, list[str]] = defaultdict(list)
    for p, c in label.items():
        members[c].append(p)
    sizes = Counter(label.values())

    # recall per transform: copy in the same predicted cluster as its source's original
    anchor = {r["truth"]: r["path"] for r in rows if r["transform"] in ("original", "distractor")}
    hits: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r["transform"] in COPY_TRANSFORMS:
            hits[r["transform"]].append(int(label[r["path"]] == label[anchor[r["truth"]]]))
    recall_by_transform = {t: sum(v) / len(v) for t, v in sorted(hits.items())}
    copies_all = [h for t, v in hits.items() if t != "distractor_crop" for h in v]

    # distractors: strict = alone (or with their own crop); lenient = also with collages of them
    collage_of: dict[str, set[str]] = defaultdict(set)     # distractor truth -> collage paths
    for r in rows:
        for m in filter(None, r["collage_members"].split(";")):
            collage_of[m].add(r["path"])
    strict = lenient = 0
    distractors = [r for r in rows if r["transform"] == "distractor"]
    for r in distractors:
        others = [p for p in members[label[r["path"]]] if truth[p] != r["truth"]]
        strict += not others
        lenient += all(p in collage_of[r["truth"]] for p in others)

    # pairwise precision when a collage linked to one of its 3 other images is not an error
    together_pred = sum(s * (s - 1) // 2 for s in sizes.values())
    together_both = sum(c * (c - 1) // 2 for c in Counter((truth[p], label[p]) for p in truth).values())
    excused = 0
    for r in rows:
        if r["collage_members"]:
            mset = set(r["collage_members"].split(";"))
            excused += sum(1 for p in members[label[r["path"]]] if truth[p] in mset)
    denominator = together_pred - excused
    scores.update(
        pairwise_precision_collage_ok=together_both / denominator if denominator else 1.0,
        recall_by_transform=recall_by_transform,
        copy_recall=sum(copies_all) / len(copies_all) if copies_all else None,
        distractor_precision=strict / len(distractors) if distractors else None,
        distractor_precision_collage_ok=lenient / len(distractors) if distractors else None,
        largest_cluster=max(sizes.values()),
        non_singleton_clusters=sum(1 for s in sizes.values() if s > 1),
        images_in_clusters=sum(s for s in sizes.values() if s > 1),
        unknown_paths=len(unknown),
    )
    if links is not None:
        scores.update(link_scores(rows, links))
    return scores


def link_scores(rows: list[dict], links: set[frozenset[str]]) -> dict:
    """Pair-level figures, before any clustering: what the matcher itself got right."""
    truth = {r["path"]: r["truth"] for r in rows}
    by_path = {r["path"]: r for r in rows}
    anchor = {r["truth"]: r["path"] for r in rows if r["transform"] in ("original", "distractor")}
    links = {pair for pair in links if len(pair) == 2 and pair <= truth.keys()}

    def members(path: str) -> set[str]:
        return set(filter(None, by_path[path]["collage_members"].split(";")))

    correct = acceptable = 0
    for pair in links:
        a, b = tuple(pair)
        if truth[a] == truth[b]:
            correct += 1
        elif truth[b] in members(a) or truth[a] in members(b) or members(a) & members(b):
            acceptable += 1     # a collage and one of its images, or two collages sharing one
    hits: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r["transform"] in COPY_TRANSFORMS:
            hits[r["transform"]].append(int(frozenset((r["path"], anchor[r["truth"]])) in links))
    n = len(links)
    return {
        "links": n,
        "link_precision": correct / n if n else None,
        "link_precision_collage_ok": (correct + acceptable) / n if n else None,
        "link_recall_by_transform": {t: sum(v) / len(v) for t, v in sorted(hits.items())},
    }


# --------------------------------------------------------------------------- table

METRIC_ROWS = [
    ("cluster precision (PIMMI macro)", "cluster_precision", "{:.3f}"),
    ("cluster recall (PIMMI macro)", "cluster_recall", "{:.3f}"),
    ("cluster F1 (PIMMI macro)", "cluster_f1", "{:.3f}"),
    ("pairwise precision", "pairwise_precision", "{:.3f}"),
    ("pairwise precision, collage links ok", "pairwise_precision_collage_ok", "{:.3f}"),
    ("pairwise recall", "pairwise_recall", "{:.3f}"),
    ("pairwise F1", "pairwise_f1", "{:.3f}"),
    ("adjusted Rand index", "adjusted_rand_index", "{:.3f}"),
    ("query average precision", "query_average_precision", "{:.3f}"),
    ("copy recall, all transforms", "copy_recall", "{:.3f}"),
    ("distractor precision (alone)", "distractor_precision", "{:.3f}"),
    ("distractor precision, collage links ok", "distractor_precision_collage_ok", "{:.3f}"),
    ("predicted clusters (incl. singletons)", "n_predicted_clusters", "{:d}"),
    ("clusters of 2+ images", "non_singleton_clusters", "{:d}"),
    ("largest cluster", "largest_cluster", "{:d}"),
]


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def build_table(runs: dict[str, dict], truth_groups: int, n_images: int) -> str:
    names = list(runs)
    ratio_pairs: list[tuple[str, str]] = []
    if "picsift" in runs:
        ratio_pairs = [("picsift", n) for n in names if n != "picsift"]
    elif len(names) >= 2:
        ratio_pairs = [(names[-1], names[0])]
    header = ["metric", *names, *[f"{a}/{b}" for a, b in ratio_pairs]]
    lines: list[list[str]] = []

    def add(label: str, values: dict[str, float | None], fmt: str) -> None:
        cells = [_fmt(fmt, values.get(n)) for n in names]
        for a, b in ratio_pairs:
            va, vb = values.get(a), values.get(b)
            cells.append(f"{va / vb:.2f}x" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb else "-")
        lines.append([label, *cells])

    for label, key, fmt in METRIC_ROWS:
        add(label, {n: r["scores"].get(key) for n, r in runs.items()}, fmt)
    transforms = sorted({t for r in runs.values() for t in r["scores"]["recall_by_transform"]},
                        key=lambda t: COPY_TRANSFORMS.index(t) if t in COPY_TRANSFORMS else 99)
    for t in transforms:
        add(f"  recall: {t}", {n: r["scores"]["recall_by_transform"].get(t) for n, r in runs.items()},
            "{:.3f}")
    add("verified links (pairs)", {n: r["scores"].get("links") for n, r in runs.items()}, "{:d}")
    add("link precision", {n: r["scores"].get("link_precision") for n, r in runs.items()}, "{:.3f}")
    add("link precision, collage links ok",
        {n: r["scores"].get("link_precision_collage_ok") for n, r in runs.items()}, "{:.3f}")
    for t in transforms:
        add(f"  link recall: {t}", {n: r["scores"].get("link_recall_by_transform", {}).get(t)
                                    for n, r in runs.items()}, "{:.3f}")
    add("images/s (whole pipeline, wall)",
        {n: r["n_images"] / r["total"]["wall_s"] for n, r in runs.items()}, "{:.2f}")
    add("wall s", {n: r["total"]["wall_s"] for n, r in runs.items()}, "{:.1f}")
    add("CPU s (process tree)", {n: r["total"]["cpu_s"] for n, r in runs.items()}, "{:.1f}")
    add("CPU s per image", {n: r["total"]["cpu_s"] / r["n_images"] for n, r in runs.items()}, "{:.3f}")
    add("max RSS MB (one process)", {n: r["total"]["max_rss_mb"] for n, r in runs.items()}, "{:.0f}")
    add("peak PSS MB (process tree)", {n: r["total"]["peak_pss_mb"] for n, r in runs.items()}, "{:.0f}")
    steps = []
    for r in runs.values():
        steps += [s for s in r["steps"] if s not in steps]
    for step in steps:
        add(f"  wall s: {step}", {n: r["steps"][step]["wall_s"] for n, r in runs.items()
                                  if step in r["steps"]}, "{:.1f}")
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    out = [f"{n_images} images, {truth_groups} truth groups",
           "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))),
           "  ".join("-" * w for w in widths)]
    for line in lines:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths))))
    return "\n".join(out)


# --------------------------------------------------------------------------- driver

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_picsift":
        step, images, ws_dir, out_csv, workers = argv[1:6]
        return _picsift_step(step, images, ws_dir, out_csv, int(workers))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="corpus size (e.g. 1000 or 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench-output" / "copies")
    ap.add_argument("--skip-pimmi", action="store_true")
    ap.add_argument("--skip-picsift", action="store_true")
    ap.add_argument("--pimmi-settings", default="defaults,copydays",
                    help=f"comma-separated, among {', '.join(run_pimmi.SETTINGS)}")
    ap.add_argument("--pimmi-venv", type=Path, default=run_pimmi.DEFAULT_VENV)
    ap.add_argument("--threads", type=int, default=2,
                    help="workers for both tools (PIMMI --nb-threads, picsift workers)")
    ap.add_argument("--data-dir", type=Path, default=copies_corpus.DEFAULT_DATA)
    ap.add_argument("--regenerate", action="store_true", help="rebuild the corpus")
    ap.add_argument("--exclude-transforms", default="",
                    help="corpus without these transforms, e.g. 'collage' (collages bridge sources)")
    args = ap.parse_args(argv)

    exclude = tuple(sorted(filter(None, args.exclude_transforms.split(","))))
    tag = copies_corpus.corpus_tag(args.n, args.seed, exclude)
    workdir = args.workdir.resolve()
    corpus = workdir / f"corpus-{tag}"
    # In a child process: the driver stays small, and its memory is not inherited (through fork,
    # before exec) into the ru_maxrss of the tools it measures.
    subprocess.run([sys.executable, str(HERE / "copies_corpus.py"), "--n", str(args.n), "--seed",
                    str(args.seed), "--out", str(corpus), "--data-dir", str(args.data_dir),
                    "--jobs", str(args.threads), *(["--force"] if args.regenerate else []),
                    *(["--exclude-transforms", ",".join(exclude)] if exclude else [])],
                   check=True)
    truth_csv = corpus / "truth.csv"
    rows = copies_corpus.read_truth(truth_csv)
    manifest = json.loads((corpus / "manifest.json").read_text())

    fingerprint = hashlib.sha256(truth_csv.read_bytes()).hexdigest()
    out_json = workdir / f"results-{tag}.json"

    def previous_runs() -> dict:
        try:
            return json.loads(out_json.read_text()).get("runs", {})
        except (OSError, ValueError):
            return {}

    # A tool that is skipped keeps its last run of this very corpus (re-scored from its files),
    # so PIMMI can be run once and picsift many times, and the table still shows both.
    previous = previous_runs()
    runs: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for setting in filter(None, args.pimmi_settings.split(",")):
        name = f"pimmi-{setting}"
        if args.skip_pimmi:
            if (old := reuse_previous(name, previous, fingerprint)) is not None:
                runs[name] = old
            continue
        try:
            runs[name] = run_pimmi.run_setting(corpus, workdir / f"{name}-{tag}", setting,
                                               args.threads, args.pimmi_venv)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other runs
            failures[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name} FAILED: {failures[name]}", file=sys.stderr)
    if args.skip_picsift:
        if (old := reuse_previous("picsift", previous, fingerprint)) is not None:
            runs["picsift"] = old
    else:
        try:
            runs["picsift"] = run_picsift(corpus, workdir / f"picsift-{tag}", args.threads)
        except Exception as exc:  # noqa: BLE001
            failures["picsift"] = f"{type(exc).__name__}: {exc}"
            print(f"picsift FAILED: {failures['picsift']}", file=sys.stderr)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    for run in runs.values():
        if not run.get("reused"):
            run.update(created=now, corpus=str(corpus), corpus_sha256=fingerprint)

    for run in runs.values():
        run["scores"] = evaluate(rows, run["predicted"], run.get("links"))
    truth_groups = len({r["truth"] for r in rows})
    results = {
        "benchmark": "copies", "created": now,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "corpus": {"dir": str(corpus), "n_images": len(rows), "truth_groups": truth_groups,
                   "seed": args.seed, "sources": manifest.get("sources"),
                   "distractors": manifest.get("distractors"),
                   "transforms": dict(Counter(r["transform"] for r in rows))},
        "runs": {n: {k: v for k, v in r.items() if k not in ("predicted", "links", "reused")}
                 for n, r in runs.items()},
        "failures": failures,
    }
    # keep other runs of this same corpus that were neither run nor shown now (re-read the file
    # just before writing: another invocation may have written it meanwhile)
    kept = {n: r for n, r in previous_runs().items()
            if n not in results["runs"] and r.get("corpus_sha256") == fingerprint}
    results["runs"] = {**kept, **results["runs"]}
    out_json.write_text(json.dumps(results, indent=1, default=str))
    if runs:
        print(build_table(runs, truth_groups, len(rows)))
    for run in runs.values():
        if run.get("note"):
            print(f"note ({run['tool']} {run['setting']}): {run['note']}")
        if run.get("reused"):
            print(f"note ({run['tool']} {run['setting']}): not re-run, figures of the run of "
                  f"{run.get('created')}")
    for name, why in failures.items():
        print(f"{name}: FAILED: {why.splitlines()[0]}")
    print(f"results: {out_json}")
    return 1 if failures and not runs else 0


if __name__ == "__main__":
    sys.exit(main())
