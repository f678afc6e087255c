"""`picsift export`: one row per media with every feature, optionally joined with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from picsift.cli.common import WorkspaceArg, console, open_existing
from picsift.export.table import export_table


def export_command(
    workspace: Path = WorkspaceArg,
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.csv or .parquet)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="csv or parquet (default: from --out)."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Your CSV of posts/files to join."),
    on: str = typer.Option("path", "--on", help="Join on: path, filename or hash."),
    key: Optional[str] = typer.Option(None, "--key", help="Metadata column holding the key (default: same as --on)."),
) -> None:
    """Write the media table; with --metadata, one row per metadata row with its features."""
    result = export_table(open_existing(workspace), out, fmt, metadata, on, key)
    console.print(f"wrote {result['rows']} rows x {result['columns']} columns to {result['path']}")
    if metadata is not None:
        console.print(
            f"metadata rows: {result['metadata_rows']}, matched: {result['matched_rows']}, "
            f"unmatched: {result['unmatched_rows']}; media not in metadata: "
            f"{result['media_not_in_metadata']}"
        )
