"""`picsift crop`: cut the picture (and the post's text) out of screenshots of posts.

    picsift crop SCREENSHOTS --to CROPS                      the photo(s) of every post
    picsift crop SCREENSHOTS --to CROPS --mode both          photos and the post's text block
    picsift crop SCREENSHOTS --to CROPS --mode below-reference --reference like_bar.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from picsift.cli.common import WorkersOpt, console


def crop_command(
    src: Path = typer.Argument(..., help="Folder of screenshots (searched recursively) or one image."),
    to: Path = typer.Option(..., "--to", help="Folder for the crops and crops.csv (sub-folders mirror SRC)."),
    reference: Optional[list[Path]] = typer.Option(
        None, "--reference", "-r",
        help="A snippet of the platform's UI (e.g. its 'Like Comment Share' bar); repeat for several. "
             "Needed by --mode below-reference; in text modes it marks where the post ends."),
    mode: str = typer.Option("photo", "--mode",
                             help="photo (the picture(s)), text (the post's own text block), both, "
                                  "or below-reference (keep what lies above the reference snippet)."),
    ocr: bool = typer.Option(False, "--ocr/--no-ocr",
                             help="Find text lines with OCR in text modes (about 15x slower than "
                                  "--no-ocr, which reads them from the pixels)."),
    min_area: float = typer.Option(0.05, "--min-area", help="Smallest photo, as a share of the screenshot."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Crop photos and post text out of screenshots; originals are never changed."""
    from picsift.analyses.crop import CropOptions, crop_folder

    options = CropOptions(mode=mode.lower(), min_area=min_area, ocr=ocr)
    summary = crop_folder(src, to, references=reference or [], options=options,
                          workers=workers, progress=True)
    console.print(f"looked at {summary.images} images in {summary.seconds:.1f} s: "
                  f"{summary.crops} crops from {summary.cropped} images, "
                  f"{summary.whole_photo} plain photos (no UI around them: not cropped), "
                  f"{summary.nothing_found} with nothing to crop, {summary.failed} failed")
    if summary.by_kind:
        console.print("crops: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_kind.items())))
    if options.mode in ("text", "both"):
        console.print("text lines from " + ("OCR" if summary.ocr_used else "the pixels (no OCR)"))
    if summary.failures:
        shown = Table("file", "reason")
        shown.columns[0].overflow = "fold"
        for path, reason in summary.failures[:10]:
            shown.add_row(escape(Path(path).name), escape(reason))
        console.print(shown)
        if len(summary.failures) > 10:
            console.print(f"... and {len(summary.failures) - 10} more in {summary.failures_table}")
    console.print(f"crops table: {summary.table} (per image: {summary.images_table})")
