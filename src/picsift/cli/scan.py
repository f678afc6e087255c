"""`picsift scan`: find images and videos, hash, probe, extract keyframes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

import picsift
from picsift.cli.common import AddressOpt, EngineOpt, WorkersOpt, console
from picsift.media.decode import DEFAULT_MAX_PIXELS
from picsift.scan.runner import ScanSummary


def scan_command(
    paths: list[Path] = typer.Argument(..., help="Folders (or files) to scan, recursively."),
    workspace: Optional[Path] = typer.Option(
        None, "--workspace", "-w", help="Workspace folder (default: <first PATH>/.picsift)."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
    batch_size: int = typer.Option(32, help="Images per batch (one atomic write each)."),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, help="Refuse images with more pixels (decompression-bomb guard)."),
    videos: bool = typer.Option(True, "--videos/--no-videos", help="Extract video keyframes."),
    scene_threshold: float = typer.Option(
        0.3, help="Scene-change score (0-1) that starts a new keyframe; lower finds more cuts."),
    max_interval: float = typer.Option(
        5.0, help="Seconds between keyframes within one scene at most (0: scene changes only)."),
    min_interval: float = typer.Option(0.5, help="Seconds between two keyframes at least."),
    retry_errors: bool = typer.Option(False, help="Try again files that failed before."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Scan folders into a workspace. Resumable: a rerun only does what is not done yet."""
    ws = picsift.open(paths[0], workspace=workspace)
    summary = ws.scan(
        paths, workers=workers, batch_size=batch_size, max_pixels=max_pixels, videos=videos,
        scene_threshold=scene_threshold, max_interval=max_interval, min_interval=min_interval,
        retry_errors=retry_errors, progress=progress, engine=engine, address=address,
    )
    print_scan_summary(summary, str(ws.dir))
    if summary.interrupted:
        raise typer.Exit(130)


def print_scan_summary(summary: ScanSummary, workspace: str) -> None:
    table = Table(title="scan", show_header=False, box=None)
    rows = [
        ("files found", summary.found),
        ("already done (skipped)", summary.skipped),
        ("scanned now", summary.scanned),
        ("images stored", summary.images),
        ("new distinct media", summary.new_media),
        ("videos", summary.videos),
        ("keyframes", summary.frames),
        ("failed", summary.errors),
        ("seconds", summary.seconds),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if summary.errors:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary.error_kinds.items()))
        console.print(
            f"[yellow]{summary.errors} file(s) or folder(s) failed ({kinds}); "
            f"see them with: picsift errors {workspace!s}[/yellow]"
        )
    if summary.interrupted:
        console.print("[yellow]interrupted: everything stored so far is kept; run the same "
                      "command again to resume.[/yellow]")
    console.print(f"workspace: {workspace}")
