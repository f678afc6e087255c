"""`picsift copies`: copy detection in one command, or step by step for big corpora.

    picsift copies PATH...            scan + features + index + query + verify + cluster
    picsift copies index W            describe new media and add them to the index
    picsift copies query W            query media not yet queried (or --images NEW... only)
    picsift copies cluster W          cluster stored pairs (--algo leiden|louvain|components)
    picsift copies eval W --truth T   PIMMI's metrics + pairwise P/R/F1 + ARI
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Optional


import typer
from rich.table import Table

import picsift
from picsift.analyses.copies.index import IndexPlan
from picsift.analyses.copies.options import (CopiesOptions, options_from_dict, options_to_dict,
                                              parse_size)
from picsift.cli.common import AddressOpt, DefaultRunGroup, EngineOpt, WorkersOpt, console, open_existing
from picsift.workspace.store import Workspace

SUBCOMMANDS = ("run", "index", "query", "cluster", "eval", "report")


app = typer.Typer(cls=DefaultRunGroup, no_args_is_help=True, add_completion=False,
                  help="Find total and partial copies (crops, mirrors, edits, pastes) and cluster them.")

# ------------------------------------------------------------------ options
AlgoOpt = typer.Option(None, "--algo", help="Clustering: leiden (default), louvain or components.")
OutOpt = typer.Option(None, "--out", "-o", help="Folder for the tables and the HTML page (default: <workspace>/copies).")
FormatOpt = typer.Option("csv", "--format", "-f", help="Table format: csv or parquet.")
MaxMemoryOpt = typer.Option(None, "--max-memory", help="Memory the copy index may take (e.g. 8G): a bigger IVF index is built on disk instead (auto storage), anything that still does not fit is refused before building; the estimate is printed before big builds.")
StorageOpt = typer.Option(None, "--index-storage", help="Where the IVF index lists live: auto (on disk when the index would take over --max-memory, or half the RAM), memory or disk. Same results either way.")


def _options(ws: Workspace, overrides: dict[str, Any]) -> CopiesOptions:
    """Last options used in this workspace, updated with the flags the user gave."""
    saved = ws.get_meta("copies_options")
    options = options_from_dict(saved) if saved else CopiesOptions()
    sift_fields = {f.name for f in fields(options.sift)}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in sift_fields:
            options.sift = type(options.sift)(**{**options.sift.as_dict(), key: value})
        else:
            setattr(options, key, value)
    return options


def _storage(value: str | None) -> str | None:
    if value is not None and value not in ("auto", "memory", "disk"):
        raise typer.BadParameter(f"--index-storage must be auto, memory or disk, not {value!r}")
    return value


def _remember(ws: Workspace, options: CopiesOptions) -> None:
    ws.set_meta("copies_options", options_to_dict(options))


def _announce(plan: IndexPlan) -> None:
    gib = 1024**3
    if plan.storage == "disk":
        console.print(f"index: {plan.vectors:,} descriptors, {plan.index_type}, on disk: about "
                      f"{plan.disk_bytes / gib:.1f} GiB of files, "
                      f"{plan.memory_bytes / gib:.1f} GiB of memory while building")
    elif plan.memory_bytes > 256 * 1024**2:
        console.print(f"index: {plan.vectors:,} descriptors, {plan.index_type}, about "
                      f"{plan.memory_bytes / gib:.1f} GiB of memory")


def _write_outputs(ws: Workspace, options: CopiesOptions, out: Optional[Path], fmt: str) -> None:
    from picsift.analyses.copies.tables import clusters_table, pairs_table
    from picsift.report.copies_html import build_copies_report

    folder = out or ws.subdir("copies")
    folder.mkdir(parents=True, exist_ok=True)
    pairs = pairs_table(ws, options)
    clusters = clusters_table(ws, options)
    if fmt == "parquet":
        pairs.to_parquet(folder / "copies_pairs.parquet", index=False)
        clusters.to_parquet(folder / "copies_clusters.parquet", index=False)
    else:
        pairs.to_csv(folder / "copies_pairs.csv", index=False)
        clusters.to_csv(folder / "copies_clusters.csv", index=False)
    page = build_copies_report(ws, clusters, pairs, folder / "copies.html")
    _print_clusters(clusters)
    console.print(f"tables: {folder}/copies_pairs.{fmt}, {folder}/copies_clusters.{fmt}")
    console.print(f"contact sheets: {page}")


def _print_clusters(clusters: Any, limit: int = 15) -> None:
    multi = clusters[clusters["cluster_size"] > 1]
    console.print(f"{multi['cluster_id'].nunique()} copy cluster(s) holding {len(multi)} images; "
                  f"{len(clusters) - len(multi)} images have no copy")
    table = Table("cluster", "size", "representative", "relations")
    table.columns[2].overflow = "fold"
    for cluster_id, members in list(multi.groupby("cluster_id", sort=True))[:limit]:
        relations = members["relation"].value_counts().to_dict()
        table.add_row(str(cluster_id), str(len(members)), str(members["representative_path"].iloc[0]),
                      ", ".join(f"{k} {v}" for k, v in relations.items()))
    if len(multi):
        console.print(table)


def _summary(summary: Any) -> None:
    console.print(
        f"described {summary.described} new image(s) ({summary.failed} failed), indexed "
        f"{summary.indexed} ({summary.index_type}, {summary.index_vectors:,} descriptors), "
        f"queried {summary.queried}, {summary.pairs} verified pair(s); seconds: "
        + ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))


# ------------------------------------------------------------------ verbs
@app.command("run")
def run_command(
    paths: list[Path] = typer.Argument(..., help="Folders to scan and search for copies."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="Workspace folder."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
    algo: Optional[str] = AlgoOpt,
    min_inliers: Optional[int] = typer.Option(None, help="Geometrically consistent matches needed (default 12)."),
    min_inlier_ratio: Optional[float] = typer.Option(None, help="Share of tentative matches that must be consistent (default 0.25)."),
    min_coverage: Optional[float] = typer.Option(None, help="Share of one image the match must span (default 0.06)."),
    max_side: Optional[int] = typer.Option(None, help="Working size of images, longest side (default 512)."),
    nfeatures: Optional[int] = typer.Option(None, help="SIFT keypoints per image at most (default 1000)."),
    index_type: Optional[str] = typer.Option(None, help="auto, Flat or a faiss factory string (IVF4096,SQ8...)."),
    mirror: Optional[bool] = typer.Option(None, "--mirror/--no-mirror", help="Also find mirrored copies (default on)."),
    max_memory: Optional[str] = MaxMemoryOpt,
    index_storage: Optional[str] = StorageOpt,
    out: Optional[Path] = OutOpt,
    fmt: str = FormatOpt,
) -> None:
    """Scan PATHs, then find and cluster copies; writes pairs, clusters and contact sheets."""
    from picsift.analyses.copies.pipeline import build_index, cluster_all, query_all, CopiesSummary
    from picsift.cli.scan import print_scan_summary

    ws = picsift.open(paths[0], workspace=workspace)
    scan_summary = ws.scan(paths, workers=workers, progress=True, engine=engine, address=address)
    print_scan_summary(scan_summary, str(ws.dir))
    options = _options(ws, dict(algo=algo, min_inliers=min_inliers, min_inlier_ratio=min_inlier_ratio,
                                min_coverage=min_coverage, max_side=max_side, nfeatures=nfeatures,
                                index_type=index_type, mirror=mirror,
                                index_storage=_storage(index_storage)))
    options.workers, options.progress = workers, True
    options.engine, options.address = engine, address
    options.max_memory = parse_size(max_memory) if max_memory else None
    summary = CopiesSummary()
    with ws.writing():
        _remember(ws, options)
        index, features = build_index(ws, options, summary, _announce)
        query_all(ws, options, index, features, summary)
        cluster_all(ws, options, summary)
    _summary(summary)
    _write_outputs(ws, options, out, fmt)


@app.command("index")
def index_command(
    workspace: Path = typer.Argument(Path("."), help="Corpus folder or workspace."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
    max_side: Optional[int] = typer.Option(None, help="Working size, longest side (default 512)."),
    nfeatures: Optional[int] = typer.Option(None, help="SIFT keypoints per image at most."),
    index_type: Optional[str] = typer.Option(None, help="auto, Flat or a faiss factory string."),
    max_memory: Optional[str] = MaxMemoryOpt,
    index_storage: Optional[str] = StorageOpt,
) -> None:
    """Describe media not yet described and add them to the index (never redoes the rest)."""
    from picsift.analyses.copies.pipeline import CopiesSummary, build_index

    ws = open_existing(workspace)
    options = _options(ws, dict(max_side=max_side, nfeatures=nfeatures, index_type=index_type,
                                index_storage=_storage(index_storage)))
    options.workers, options.progress = workers, True
    options.engine, options.address = engine, address
    options.max_memory = parse_size(max_memory) if max_memory else None
    summary = CopiesSummary()
    with ws.writing():
        _remember(ws, options)
        build_index(ws, options, summary, _announce)
    _summary(summary)


@app.command("query")
def query_command(
    workspace: Path = typer.Argument(Path("."), help="Corpus folder or workspace."),
    images: Optional[list[Path]] = typer.Option(None, "--images", help="New images/folders to query WITHOUT adding them to the index."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV for --images results (default: <workspace>/copies/query_results.csv)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Query at most this many media now (the next run goes on with the rest)."),
) -> None:
    """Query indexed media not yet queried; or, with --images, new images against the index."""
    from picsift.analyses.copies.external import default_out, query_external
    from picsift.analyses.copies.index import CopyIndex
    from picsift.analyses.copies.pipeline import CopiesSummary, query_all
    from picsift.analyses.copies.extract import sift_feature_set

    ws = open_existing(workspace)
    options = _options(ws, {})
    options.workers, options.progress = workers, True
    options.engine, options.address = engine, address
    if images:
        results = query_external(ws, [str(p) for p in images], options)
        target = out or default_out(ws, "query_results.csv")
        results.to_csv(target, index=False)
        found = results.dropna(subset=["result_path"]) if "result_path" in results else results
        console.print(f"{len(found)} match(es) for {results['query_path'].nunique()} image(s): {target}")
        return
    index = CopyIndex(ws, options)
    if not index.load(mmap=True):
        raise picsift.PicsiftError(f"no copy index in {ws.dir}: run 'picsift copies index' first")
    summary = CopiesSummary()
    with ws.writing():
        query_all(ws, options, index, sift_feature_set(ws, options), summary, limit=limit)
    console.print(f"queried {summary.queried} image(s)")


@app.command("cluster")
def cluster_command(
    workspace: Path = typer.Argument(Path("."), help="Corpus folder or workspace."),
    algo: Optional[str] = AlgoOpt,
    resolution: Optional[float] = typer.Option(None, help="Leiden/Louvain resolution (default 1.0; higher splits more)."),
    out: Optional[Path] = OutOpt,
    fmt: str = FormatOpt,
) -> None:
    """Cluster the stored pairs and write the tables and contact sheets."""
    from picsift.analyses.copies.pipeline import CopiesSummary, cluster_all

    ws = open_existing(workspace)
    options = _options(ws, dict(algo=algo, resolution=resolution))
    with ws.writing():
        _remember(ws, options)
        cluster_all(ws, options, CopiesSummary())
    _write_outputs(ws, options, out, fmt)


@app.command("report")
def report_command(
    workspace: Path = typer.Argument(Path("."), help="Corpus folder or workspace."),
    out: Optional[Path] = OutOpt,
    fmt: str = FormatOpt,
) -> None:
    """Write the tables and contact sheets of the last clustering again."""
    ws = open_existing(workspace)
    _write_outputs(ws, _options(ws, {}), out, fmt)


@app.command("eval")
def eval_command(
    workspace: Path = typer.Argument(Path("."), help="Corpus folder or workspace."),
    truth: Path = typer.Option(..., "--truth", help="CSV with a path column and a truth column."),
    truth_column: str = typer.Option("truth", help="Column holding the true group of each image."),
    path_column: str = typer.Option("path", help="Column holding the image path (absolute or relative to the scanned folder)."),
    query_column: Optional[str] = typer.Option(None, help="Column marking query images (value 1/true/original), for query AP."),
) -> None:
    """Compare the clusters with a hand-made truth: PIMMI's metrics, pairwise P/R/F1, ARI."""
    from picsift.analyses.copies.evaluation import evaluate_against_truth

    ws = open_existing(workspace)
    scores = evaluate_against_truth(ws, _options(ws, {}), truth, truth_column, path_column, query_column)
    table = Table("metric", "value")
    for key, value in scores.as_dict().items():
        table.add_row(key.replace("_", " "), "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
