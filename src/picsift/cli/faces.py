"""`picsift faces`: detect faces, find a person, group identities, verify two photos.

    picsift faces W                         detect + embed + emotion + mask for every media
    picsift faces find W --face photo.jpg   images where that person appears, with distance
    picsift faces identities W              group all faces into identities + contact sheet
    picsift faces verify a.jpg b.jpg        same person or not
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import AddressOpt, EngineOpt, DefaultRunGroup, WorkersOpt, WorkspaceArg, console, open_existing

app = typer.Typer(cls=DefaultRunGroup, no_args_is_help=True, add_completion=False,
                  help="Faces: detection, identities across images, expression, masks "
                       "(age/gender only after --accept-disclosure).")
ThresholdOpt = typer.Option(None, "--threshold", help="Same-person distance (default: the calibrated 0.6 of docs/faces.md).")


@app.command("run")
def run_command(
    workspace: Path = WorkspaceArg,
    min_score: float = typer.Option(0.7, "--min-score", help="Detector confidence below which a face is dropped."),
    emotion: bool = typer.Option(True, "--emotion/--no-emotion", help="Facial expression per face."),
    mask: bool = typer.Option(True, "--mask/--no-mask", help="Face-mask detection per face."),
    demographics: bool = typer.Option(False, "--demographics", help="Estimate age and gender (needs --accept-disclosure)."),
    accept: bool = typer.Option(False, "--accept-disclosure", help="Accept the disclosure on demographic estimates (see docs/faces.md)."),
    min_gender_confidence: float = typer.Option(0.9, "--min-gender-confidence", help="Leave gender empty below this confidence."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV, one row per face (default: <workspace>/faces.csv)."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
) -> None:
    """Find every face: box, landmarks, identity embedding, expression, mask."""
    from picsift.analyses.faces import FaceOptions, detect_faces, faces_table

    ws = open_existing(workspace)
    options = FaceOptions(min_score=min_score, emotion=emotion, mask=mask, demographics=demographics,
                          accept_disclosure=accept, min_gender_confidence=min_gender_confidence)
    summary = detect_faces(ws, options, workers=workers, progress=True, engine=engine,
                           address=address)
    console.print(f"looked at {summary.looked_at} media ({summary.already} already done): "
                  f"{summary.faces} faces in {summary.with_faces} media, {summary.failed} failed, "
                  f"{summary.seconds:.1f} s")
    table = faces_table(ws)
    target = out or ws.dir / "faces.csv"
    table.to_csv(target, index=False)
    if len(table):
        counts = table["emotion"].fillna("(masked or off)").value_counts().to_dict()
        console.print("expressions: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(f"faces table: {target}")


@app.command("find")
def find_command(
    workspace: Path = WorkspaceArg,
    face: Path = typer.Option(..., "--face", help="A photo of the person to look for (its largest face is used)."),
    threshold: Optional[float] = ThresholdOpt,
    all_faces: bool = typer.Option(False, "--all-faces", help="Look for every face of the photo, not only the largest."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the matches to this CSV."),
) -> None:
    """Images in which the same person appears, nearest first (distance < threshold)."""
    from picsift.analyses.faces import find_person

    ws = open_existing(workspace)
    found = find_person(ws, face, threshold=threshold, all_faces=all_faces)
    console.print(f"target {face}:")
    for row in found.itertuples():
        console.print(f"  found {row.path} (face {row.face}) distance {row.distance:.3f}", soft_wrap=True)
    console.print(f"{len(found)} matching faces")
    if csv:
        found.to_csv(csv, index=False)
        console.print(f"matches: {csv}")


@app.command("identities")
def identities_command(
    workspace: Path = WorkspaceArg,
    threshold: Optional[float] = ThresholdOpt,
    min_faces: int = typer.Option(2, "--min-faces", help="Smallest identity (faces seen once get none)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Contact sheet (default: <workspace>/identities.html)."),
) -> None:
    """Group every face into identities (same person across images); contact sheet per identity."""
    from picsift.analyses.faces import cluster_identities, faces_table
    from picsift.report.faces_html import build_identities_report

    ws = open_existing(workspace)
    sizes = cluster_identities(ws, threshold=threshold, min_faces=min_faces)
    table = Table("identity", "faces")
    for row in sizes.head(20).itertuples():
        table.add_row(str(row.identity), str(row.faces))
    console.print(table)
    faces = faces_table(ws)
    console.print(f"{len(sizes)} identities over {int(sizes['faces'].sum()) if len(sizes) else 0} "
                  f"of {len(faces)} faces")
    page = build_identities_report(ws, faces, html or ws.dir / "identities.html")
    console.print(f"contact sheet: {page}")


@app.command("verify")
def verify_command(
    a: Path = typer.Argument(..., help="First photo."),
    b: Path = typer.Argument(..., help="Second photo."),
    threshold: Optional[float] = ThresholdOpt,
) -> None:
    """Are the largest faces of two photos the same person?"""
    from picsift.analyses.faces import verify

    result = verify(a, b, threshold)
    verdict = "same person" if result["same_person"] else "different people"
    console.print(f"{verdict}: distance {result['distance']:.3f} (threshold {result['threshold']})")
