"""`picsift describe` and `picsift detect`: captions, answers and labelled boxes per image.

Both need a hub model pulled once (`picsift models pull blip-base`, `... owlv2-base`); describe
can instead use an OpenAI-compatible endpoint after the user accepts the privacy disclosure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import WorkersOpt, WorkspaceArg, console, open_existing


def describe_command(
    workspace: Path = WorkspaceArg,
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Pulled model (blip-base [default], blip-vqa-base, florence-2-base, smolvlm-256m; see picsift models list) or, with --api-base, the endpoint's model name (e.g. gpt-4o-mini)."),
    questions: Optional[Path] = typer.Option(None, "--questions", "-q",
                                             help="Text file with one question per line; each becomes a column answer_<question words>."),
    caption: bool = typer.Option(True, "--caption/--no-caption", help="Write a caption per image (off: only answer the questions)."),
    api_base: Optional[str] = typer.Option(None, "--api-base",
                                           help="Base URL of an OpenAI-compatible API (https://api.openai.com/v1, or your vLLM/Ollama server). Sends the images there: needs --accept-privacy-disclosure."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env",
                                              help="Name of the environment variable holding the API key (e.g. OPENAI_API_KEY); the key itself never goes on the command line."),
    accept: bool = typer.Option(False, "--accept-privacy-disclosure",
                                help="Accept that the API endpoint receives your images (or set PICSIFT_ACCEPT_PRIVACY_DISCLOSURE=1)."),
    max_new_tokens: int = typer.Option(40, "--max-tokens", help="Longest caption or answer a local model writes (tokens)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per model call (lower it if memory runs out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV with one row per image (default: <workspace>/describe.csv)."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Caption every image and answer your questions about it with a vision-language model."""
    from picsift.analyses.describe import DESCRIBE, describe_workspace, read_questions, results_table

    asked = read_questions(str(questions)) if questions else []
    ws = open_existing(workspace)
    summary = describe_workspace(ws, model=model, questions=asked, api_base=api_base,
                                 api_key_env=api_key_env, accept_disclosure=accept,
                                 workers=workers, progress=True, caption=caption,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens)
    console.print(f"described {summary.done} images with {summary.model} ({summary.already} "
                  f"already done), {summary.failed} failed, {summary.seconds:.1f} s")
    table = results_table(ws, DESCRIBE, summary.model)
    target = out or ws.dir / "describe.csv"
    table.drop(columns=[c for c in table.columns if c.startswith("_")]).to_csv(target, index=False)
    shown = Table("path", *summary.columns[:3], "status")
    shown.columns[0].overflow = "fold"
    for row in table.head(12).itertuples(index=False):
        values = row._asdict()
        shown.add_row(Path(values["path"]).name, *(_short(values.get(c)) for c in summary.columns[:3]),
                      _short(values.get("status"), 30))
    console.print(shown)
    console.print(f"table: {target} (also in 'picsift export' as {summary.feature_set}_*)")
    if summary.failed:
        console.print(f"see the failures with: picsift errors {workspace}; run again to retry them")


def detect_command(
    workspace: Path = WorkspaceArg,
    labels: str = typer.Option(..., "--labels", "-l", help='What to look for, comma-separated: "a rifle,a flag,a police car".'),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Pulled open-vocabulary detector: owlv2-base [default], owlvit-base or grounding-dino-tiny."),
    threshold: float = typer.Option(0.1, "--threshold", "-t", help="Minimum score of a box (0-1; OWL models score low, 0.1-0.3 is typical)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per model call."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV with one row per image (default: <workspace>/detect.csv); boxes go next to it as *_boxes.csv."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Find and count objects named in plain words (zero-shot detection) in every image."""
    from picsift.analyses.describe import DETECT, detect_objects, detections_table, results_table

    ws = open_existing(workspace)
    summary = detect_objects(ws, labels, model=model, threshold=threshold, workers=workers,
                             progress=True, batch_size=batch_size)
    console.print(f"searched {summary.done} images with {summary.model} ({summary.already} "
                  f"already done), {summary.failed} failed, {summary.seconds:.1f} s")
    per_image = results_table(ws, DETECT, summary.model)
    target = out or ws.dir / "detect.csv"
    per_image.drop(columns=["boxes"], errors="ignore").to_csv(target, index=False)
    boxes = detections_table(ws, summary.model)
    boxes_path = target.with_name(target.stem + "_boxes.csv")
    boxes.to_csv(boxes_path, index=False)
    counts = Table("label", "images", "boxes")
    for column in summary.columns[1:]:
        values = per_image[column].fillna(0) if column in per_image else []
        counts.add_row(column.removeprefix("count_"), str(int((values > 0).sum())), str(int(values.sum())))
    console.print(counts)
    console.print(f"tables: {target}, {boxes_path} (also in 'picsift export' as {summary.feature_set}_*)")
    if summary.failed:
        console.print(f"see the failures with: picsift errors {workspace}; run again to retry them")


def _short(value: object, width: int = 50) -> str:
    if not isinstance(value, str):
        return ""
    return value if len(value) <= width else value[: width - 1] + "…"
