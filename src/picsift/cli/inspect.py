"""Read-only verbs: `picsift info`, `picsift errors`, `picsift duplicates`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import WorkspaceArg, console, open_existing


def info_command(workspace: Path = WorkspaceArg,
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Summarise a workspace: counts, formats, errors, feature sets, last run."""
    import json

    info = open_existing(workspace).info()
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    table = Table(show_header=False, box=None)
    for key in ("workspace", "images", "image_files", "exact_duplicate_groups", "videos",
                "keyframes", "media", "truncated", "errors", "runs"):
        table.add_row(key.replace("_", " "), str(info[key]))
    table.add_row("roots", "\n".join(info["roots"]))
    table.add_row("formats", ", ".join(f"{k} {v}" for k, v in info["formats"].items()))
    table.add_row("features", ", ".join(f["name"] for f in info["feature_sets"]) or "-")
    console.print(table)


def errors_command(
    workspace: Path = WorkspaceArg,
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write them to this CSV file."),
) -> None:
    """List every file or folder that failed, with the reason."""
    frame = open_existing(workspace).errors()
    if csv:
        frame.to_csv(csv, index=False)
    if frame.empty:
        console.print("no errors")
        return
    table = Table("path", "kind", "reason", "stage")
    table.columns[0].overflow = "fold"
    for row in frame.itertuples():
        table.add_row(repr(row.path)[1:-1], row.kind, row.reason, row.stage)
    console.print(table)
    console.print(f"{len(frame)} error(s)")


def duplicates_command(
    workspace: Path = WorkspaceArg,
    exact: bool = typer.Option(True, "--exact", help="Byte-identical files (default)."),
    semantic: bool = typer.Option(False, "--semantic", help="Near-identical by image embedding (needs picsift embed)."),
    threshold: float = typer.Option(0.95, help="Cosine similarity for --semantic (0-1)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the groups to this CSV file."),
    limit: int = typer.Option(50, help="Groups to print (the CSV always has all)."),
) -> None:
    """List groups of byte-identical images found at several paths (or --semantic near-duplicates)."""
    if semantic:
        from picsift.analyses.search import semantic_duplicates

        groups = semantic_duplicates(open_existing(workspace), threshold)
        if csv:
            groups.to_csv(csv, index=False)
        table = Table("group", "similarity", "path")
        table.columns[2].overflow = "fold"
        for row in groups[groups["group"] <= limit].itertuples():
            table.add_row(str(row.group), f"{row.similarity:.3f}", str(row.path))
        console.print(table)
        console.print(f"{groups['group'].nunique()} group(s) at cosine >= {threshold}")
        return
    frame = open_existing(workspace).duplicates()
    if csv:
        frame.to_csv(csv, index=False)
        console.print(f"wrote {csv}")
    if frame.empty:
        console.print("no exact duplicates")
        return
    table = Table("group", "paths", "path", "size", "w x h")
    table.columns[2].overflow = "fold"
    shown = frame[frame["group"] <= limit]
    for row in shown.itertuples():
        table.add_row(str(row.group), str(row.n_paths), repr(row.path)[1:-1], str(row.size),
                      f"{row.width} x {row.height}")
    console.print(table)
    console.print(f"{frame['group'].max()} group(s), {len(frame)} file(s)")
