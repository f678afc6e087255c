"""`picsift cluster`, `sample`, `validate-pairs`, `agreement`: clusters and their hand-coding."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from picsift.cli.common import WorkersOpt, WorkspaceArg, console, open_existing


def cluster_command(
    workspace: Path = WorkspaceArg,
    algo: str = typer.Option("kmeans", "--algo", help="kmeans (iterative peeling, the workshop's procedure; streams, any corpus size) or hdbscan (exact up to 10,000 images; above, fitted on a seeded sample of 10,000, every other image joining its nearest sample image's cluster only within that cluster's reach, else noise: see docs/cluster.md)."),
    sample: int = typer.Option(1000, "--sample", help="Images sampled per k-means round (hdbscan: for the silhouettes)."),
    k_min: int = typer.Option(5, "--k-min", help="First K tried in each round."),
    k_step: int = typer.Option(5, "--k-step", help="K grows by this much while the mean silhouette improves."),
    window: int = typer.Option(3, "--window", help="Stop trying K after this many in a row without a better mean silhouette."),
    threshold: float = typer.Option(0.04, "--threshold", help="A cluster with mean silhouette >= this is kept as cohesive."),
    stop_size: int = typer.Option(20, "--stop-size", help="Stop when fewer images than this are left unclustered."),
    max_rounds: int = typer.Option(50, "--max-rounds", help="At most this many k-means rounds."),
    min_cluster_size: int = typer.Option(5, "--min-cluster-size", help="hdbscan: smallest cluster."),
    min_samples: Optional[int] = typer.Option(None, "--min-samples", help="hdbscan: neighbours for a core point (default: min cluster size)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (samples, k-means, map)."),
    model: str = typer.Option("efficientnet-lite0", "--model", help="Model whose embeddings to cluster (embedded first if missing)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for clusters.csv/.html and clusters_map.png (default: <workspace>/clusters)."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Cluster images by their embeddings; write a CSV, a contact sheet and a map.

    Embeddings are read in chunks (memory grows only by per-image labels with the corpus).

    The map draws a seeded sample of at most 20,000 images.
    """
    from picsift.analyses.clusters import ClusterOptions, cluster_workspace, write_outputs

    options = ClusterOptions(algo=algo, sample=sample, k_min=k_min, k_step=k_step, window=window,
                             threshold=threshold, stop_size=stop_size, max_rounds=max_rounds,
                             min_cluster_size=min_cluster_size, min_samples=min_samples,
                             seed=seed, model=model)
    ws = open_existing(workspace)
    run = cluster_workspace(ws, options, workers, progress=True)
    for r in run.labels.rounds:
        console.print(f"round {r.round}: {r.remaining} unclustered, sample {r.sampled}, best K {r.k} "
                      f"(mean silhouette {r.score:.3f}); kept {r.kept} cohesive clusters, "
                      f"{r.clustered} images")
    console.print(f"{run.n_clusters} clusters, {len(run.table) - run.n_unclustered} images in them, "
                  f"{run.n_unclustered} unclustered ({algo}, {run.seconds} s)")
    files = write_outputs(ws, run, out)
    console.print(f"clusters: {files['csv']}")
    console.print(f"contact sheet: {files['html']}")
    console.print(f"map: {files['map']}")


def sample_command(
    workspace: Path = WorkspaceArg,
    per_cluster: int = typer.Option(..., "--per-cluster", help="Images drawn from each cluster (all when it has fewer)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same sample."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for sample.csv and images/ (default: <workspace>/clusters/sample)."),
) -> None:
    """Stratified sample of the latest clustering for hand-coding (CSV with an empty code column)."""
    from picsift.analyses.annotation import stratified_sample

    ws = open_existing(workspace)
    folder = out or ws.dir / "clusters" / "sample"
    sample = stratified_sample(ws, per_cluster, folder, seed)
    console.print(f"{len(sample)} images from {sample['cluster'].nunique()} clusters")
    console.print(f"to code: {folder / 'sample.csv'} (copies in {folder / 'images'})")


def validate_pairs_command(
    workspace: Path = WorkspaceArg,
    n: int = typer.Option(500, "--n", help="Pairs to draw (all when there are fewer)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same pairs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV to write (default: <workspace>/clusters/pairs.csv)."),
) -> None:
    """Random pairs from within clusters, to code whether they belong together (column 'same')."""
    from picsift.analyses.annotation import validation_pairs

    ws = open_existing(workspace)
    target = out or ws.dir / "clusters" / "pairs.csv"
    pairs = validation_pairs(ws, n, target, seed)
    console.print(f"{len(pairs)} pairs from {pairs['cluster'].nunique()} clusters")
    console.print(f"to code: {target}")


def agreement_command(
    first: Path = typer.Argument(..., help="CSV coded by the first coder."),
    second: Path = typer.Argument(..., help="CSV coded by the second coder."),
    column: str = typer.Option("code", "--column", help="Column holding the codes."),
    key: str = typer.Option("path", "--key", help="Column(s) identifying an item, comma-separated (pairs: pair)."),
) -> None:
    """Percent agreement, Cohen's kappa and Krippendorff's alpha (nominal) of two coders."""
    from picsift.analyses.agreement import compare_coders

    result = compare_coders(first, second, column, key)
    show = lambda v: "undefined (one code only)" if math.isnan(v) else f"{v:.3f}"  # noqa: E731
    table = Table("measure", "value")
    table.add_row("items coded by both", str(result.n_items))
    table.add_row("percent agreement", f"{100 * result.percent:.1f}%")
    table.add_row("Cohen's kappa", show(result.kappa))
    table.add_row("Krippendorff's alpha (nominal)", show(result.alpha))
    console.print(table)
    console.print(f"codes: {escape(', '.join(result.codes))}")
    if result.only_first or result.only_second:
        console.print(f"left out: {result.only_first} items coded only in {first}, "
                      f"{result.only_second} only in {second}", style="dim")
