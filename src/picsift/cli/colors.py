"""`picsift colors`: named-color shares, palettes, tone and colorfulness of every image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import AddressOpt, EngineOpt, WorkersOpt, WorkspaceArg, console, open_existing


def colors_command(
    workspace: Path = WorkspaceArg,
    metric: str = typer.Option(
        "ciede2000", "--metric",
        help="Color distance used to name pixels: ciede2000 or cie76 (AMMICO's default)."),
    palette_size: int = typer.Option(
        5, "--palette-size", "-k", help="Colors in each image's palette (1-16)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o",
        help="CSV with one row per image (default: <workspace>/colors.csv); "
             "the plot (.png) and the page (.html) are written beside it."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
) -> None:
    """Colors of every image: 12 named-color shares, palette, tone, colorfulness, sharpness."""
    from picsift.analyses.colors import (ColorOptions, analyse_colors, build_colors_page,
                                         colors_table, corpus_summary_png)

    ws = open_existing(workspace)
    options = ColorOptions(metric=metric, palette_size=palette_size)
    summary = analyse_colors(ws, options, workers=workers, progress=True, engine=engine,
                             address=address)
    console.print(f"analysed {summary.analysed} images ({summary.already} already done or "
                  f"failed before), {summary.failed} failed, {summary.seconds:.1f} s "
                  f"(metric {summary.metric})")
    table = colors_table(ws, options)
    target = out or ws.dir / "colors.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(target, index=False)
    plot = corpus_summary_png(table, target.with_suffix(".png"))
    page = build_colors_page(ws, table, target.with_suffix(".html"), plot, options.params())
    shown = Table("color", "mean share", "images where it leads")
    leaders = table[list(summary.corpus)].idxmax(axis=1).value_counts() if len(table) else {}
    for name, share in summary.top_colors(5):
        shown.add_row(name, f"{share:.1%}", str(int(leaders.get(name, 0))))
    console.print(shown)
    if len(table):
        console.print(f"greyscale images: {int(table['greyscale'].sum())} of {len(table)}; "
                      f"median colorfulness {table['colorfulness'].median():.0f}")
    console.print(f"colors table: {target}\nplot: {plot}\npage: {page}")
    if summary.failed:
        console.print("see the failures with: picsift errors " + str(workspace))
