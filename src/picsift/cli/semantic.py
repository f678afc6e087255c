"""`picsift embed`, `picsift search`, `picsift models`: the models layer on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.errors import PicsiftError
from picsift.cli.common import AddressOpt, EngineOpt, WorkersOpt, WorkspaceArg, console, open_existing

models_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="List the models picsift knows; pull hub models once for offline use.")


@models_app.command("list")
def models_list() -> None:
    """Every model: task, size, licence, whether it works offline, whether it is cached."""
    from picsift.models.registry import MODELS

    for spec in MODELS.values():
        where = "ships with picsift (offline)" if spec.offline else f"hub: {spec.hub_id} ({spec.library})"
        ready = "ready" if spec.cached() else f"not cached: picsift models pull {spec.name}"
        console.print(f"[bold]{spec.name}[/bold]  {spec.task}, {spec.size_mb:g} MB, {spec.licence}; "
                      f"{where}; {ready}")
        console.print(f"    {spec.note}", style="dim")


@models_app.command("pull")
def models_pull(name: str = typer.Argument(..., help="Short name or hub id of a hub model.")) -> None:
    """Fetch a hub model once with its own library and cache it for offline use (ONNX for
    CLIP-like models, the library's own format for captioning and detection; needs internet)."""
    from picsift.models.hub import pull_model

    path = pull_model(name)
    console.print(f"cached: {path}")


def embed_command(
    workspace: Path = WorkspaceArg,
    model: str = typer.Option("efficientnet-lite0", "--model", help="Image model (see picsift models list)."),
    workers: Optional[int] = WorkersOpt,
    batch_size: int = typer.Option(16, help="Images per batch."),
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
) -> None:
    """Store an embedding for every image and keyframe (resumable)."""
    from picsift.analyses.embeddings import embed_workspace

    summary = embed_workspace(open_existing(workspace), model, workers, batch_size, progress=True,
                              engine=engine, address=address)
    console.print(f"embedded {summary.embedded} new media with {summary.model} "
                  f"({summary.already} already done, {summary.failed} failed) in {summary.seconds} s")


def search_command(
    workspace: Path = WorkspaceArg,
    text: Optional[list[str]] = typer.Argument(None, help="Text queries (averaged)."),
    image: Optional[list[Path]] = typer.Option(None, "--image", help="Query image(s): more like this."),
    negative: Optional[list[str]] = typer.Option(None, "--not", help="Text to move away from."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="File with one query per line: each searched separately."),
    top: int = typer.Option(50, "--top", help="Results per query."),
    model: str = typer.Option("efficientnet-lite0", "--model", help="Model whose embeddings to search (see picsift models list)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the results to this CSV."),
    html: Optional[Path] = typer.Option(None, "--html", help="Contact sheet (default: <workspace>/search.html)."),
    written: Optional[str] = typer.Option(None, "--text", help="Find images by the words written in them (needs 'picsift text' first); all words must occur, 'prefix*' allowed."),
) -> None:
    """Find images by text ("a crowd with flags"), by image (--image photo.jpg), or by the
    words written in them (--text "stop the war")."""
    import pandas as pd

    if written is not None:
        _search_written(workspace, written, top, csv)
        return

    from picsift.analyses.search import search
    from picsift.report.search_html import build_search_report

    ws = open_existing(workspace)
    if queries is not None:
        lines = [q.strip() for q in queries.read_text(encoding="utf-8").splitlines() if q.strip()]
        results = pd.concat([search(ws, texts=[q], negative_texts=negative, top=top, model=model).assign(query=q)
                             for q in lines], ignore_index=True)
    else:
        label = " + ".join([*(text or []), *(str(p) for p in image or [])])
        results = search(ws, texts=text, images=image, negative_texts=negative, top=top, model=model).assign(query=label)
    table = Table("query", "rank", "score", "path")
    table.columns[3].overflow = "fold"
    for row in results.groupby("query", sort=False).head(10).itertuples():
        table.add_row(str(row.query), str(row.rank), f"{row.score:.3f}", str(row.path))
    console.print(table)
    if csv:
        results.to_csv(csv, index=False)
        console.print(f"results: {csv}")
    page = build_search_report(ws, results, html or ws.dir / "search.html", "search")
    console.print(f"contact sheet: {page}")


def _search_written(workspace: Path, query: str, top: int, csv: Optional[Path]) -> None:
    from picsift.analyses.text import search_text

    ws = open_existing(workspace)
    if not ws.scalar("SELECT COUNT(*) FROM media_text"):
        raise PicsiftError(f"no text read in {ws.dir} yet: run 'picsift text {workspace}' first")
    results = search_text(ws, query, limit=top)
    table = Table("score", "path", "where the words are")
    table.columns[1].overflow = "fold"
    for row in results.itertuples():
        table.add_row(f"{row.score:.2f}", str(row.path), str(row.snippet))
    console.print(table)
    console.print(f"{len(results)} images with {query!r} written in them")
    if csv:
        results.to_csv(csv, index=False)
        console.print(f"results: {csv}")
