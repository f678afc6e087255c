"""`picsift sort`: zero-shot sorting into folders; `sort undo`; `sort eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import DefaultRunGroup, WorkersOpt, console


app = typer.Typer(cls=DefaultRunGroup, no_args_is_help=True, add_completion=False,
                  help="Sort images into folders by labels you write (zero-shot, no training).")


@app.command("run")
def sort_command(
    source: Path = typer.Argument(..., help="Folder of images to sort (recursively)."),
    to: Path = typer.Option(..., "--to", help="Destination: one sub-folder per label."),
    labels: Optional[str] = typer.Option(None, "--labels", help='Comma-separated labels: "a weapon, a meme, a screenshot".'),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file", help="YAML file: labels with descriptions, prompts, sub-labels."),
    move: bool = typer.Option(False, "--move", help="Move instead of copy (logged; undo with 'picsift sort undo LOG')."),
    threshold: float = typer.Option(0.0, help="Top score below this goes to DEST/unsure (abstain)."),
    multi_label: bool = typer.Option(False, "--multi-label", help="Copy into every label scoring >= --multi-threshold."),
    multi_threshold: float = typer.Option(0.3, help="Score needed per label with --multi-label."),
    keep_tree: bool = typer.Option(False, "--keep-tree", help="Keep sub-folders under each label folder."),
    model: str = typer.Option("efficientnet-lite0", "--model", help="Model (see picsift models list); pinned, never auto-chosen."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="Workspace folder."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Copy (default) or move every image into DEST/<label>/; writes a CSV of all scores."""
    from picsift.analyses.sort.labels import labels_from_file, labels_from_text
    from picsift.analyses.sort.sorter import SortOptions, sort_images
    from picsift.errors import PicsiftError

    if bool(labels) == bool(labels_file):
        raise PicsiftError("give either --labels or --labels-file")
    parsed = labels_from_file(labels_file) if labels_file else labels_from_text(labels or "")
    result = sort_images(source, parsed, SortOptions(
        to=to, move=move, threshold=threshold, multi_label=multi_label,
        multi_threshold=multi_threshold, keep_tree=keep_tree, model=model, workers=workers,
        progress=True), workspace=workspace)
    table = Table("label", "images")
    for label, n in sorted(result.counts.items(), key=lambda kv: -kv[1]):
        table.add_row(label, str(n))
    console.print(table)
    if result.resumed:
        console.print(f"{result.resumed} file(s) placed by an earlier sort into {to} were "
                      "left where they are (resumed)")
    for path, reason in result.failed.items():
        console.print(f"[red]not sorted[/red] {path}: {reason}")
    console.print(f"scores: {result.csv}")
    console.print(f"log (undo with 'picsift sort undo {result.log}'): {result.log}")


@app.command("undo")
def undo_command(log: Path = typer.Argument(..., help="The .jsonl log written by a sort.")) -> None:
    """Put moved files back and remove copies (never overwrites anything)."""
    from picsift.analyses.sort.sorter import undo_sort

    counts = undo_sort(log)
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("eval")
def eval_command(
    results: Path = typer.Argument(..., help="The .csv written by a sort."),
    truth: Path = typer.Option(..., "--truth", help="CSV with path and label columns (hand-labelled)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for confusion/coverage CSV and PNG."),
) -> None:
    """Accuracy, per-class P/R/F1, confusion matrix and accuracy/coverage curve."""
    from picsift.analyses.sort.evaluate import evaluate_sort

    folder = out or results.with_name(results.stem + "-eval")
    evaluation = evaluate_sort(results, truth, folder)
    console.print(f"accuracy {evaluation.accuracy:.3f} on {evaluation.n} images")
    table = Table("label", "precision", "recall", "F1", "support")
    for row in evaluation.per_class.itertuples():
        table.add_row(str(row.label), f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", str(row.support))
    console.print(table)
    console.print(f"confusion matrix and coverage curve: {folder}")
