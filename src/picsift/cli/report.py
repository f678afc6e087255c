"""`picsift report`: the self-contained HTML report of a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from picsift.cli.common import WorkspaceArg, console, open_existing
from picsift.report.html import build_report


def report_command(
    workspace: Path = WorkspaceArg,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default: <workspace>/report.html)."),
) -> None:
    """Write an HTML report: overview, exact duplicates, video keyframes, images, errors."""
    path = build_report(open_existing(workspace), out)
    console.print(f"report: {path}")
