"""`picsift demo`: the main job on the bundled demo corpus, start to finish."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape

import picsift
from picsift.cli.common import WorkersOpt, console
from picsift.cli.inspect import duplicates_command, errors_command, info_command
from picsift.cli.scan import print_scan_summary
from picsift.demo import corpus_path
from picsift.export.table import export_table
from picsift.report.html import build_report


def demo_command(
    out: Path = typer.Option(Path("picsift-demo"), "--out", "-o", help="Where to copy the corpus and write results."),
    workers: int | None = WorkersOpt,
    fresh: bool = typer.Option(False, help="Start from scratch (delete --out first)."),
) -> None:
    """Copy the demo corpus, scan it (images + video keyframes), list duplicates and errors,
    find copies, export the table and write the HTML reports."""
    corpus = out / "corpus"
    if fresh and out.exists():
        shutil.rmtree(out)
    if not corpus.exists():
        shutil.copytree(corpus_path(), corpus)
        (corpus / "odd" / "empty.jpg").write_bytes(b"")  # git cannot be trusted with 0-byte media
    console.rule("scan")
    ws = picsift.open(corpus, workspace=out / "workspace")
    summary = ws.scan([corpus], workers=workers, progress=True)
    print_scan_summary(summary, str(ws.dir))
    console.rule("workspace")
    info_command(ws.dir, as_json=False)
    console.rule("exact duplicates")
    duplicates_command(ws.dir, exact=True, semantic=False, threshold=0.95,
                       csv=out / "duplicates.csv", limit=20)
    console.rule("errors (expected: the demo has broken files on purpose)")
    errors_command(ws.dir, csv=None)
    console.rule("copy detection")
    from picsift.cli.copies import _options, _remember, _summary, _write_outputs
    from picsift.analyses.copies.pipeline import CopiesSummary, build_index, cluster_all, query_all

    options = _options(ws, {})
    options.workers, options.progress = workers, True
    copies = CopiesSummary()
    with ws.writing():
        _remember(ws, options)
        index, features = build_index(ws, options, copies)
        query_all(ws, options, index, features, copies)
        cluster_all(ws, options, copies)
    _summary(copies)
    _write_outputs(ws, options, out / "copies", "csv")
    console.rule("embeddings and search (offline models)")
    from picsift.analyses.embeddings import embed_workspace
    from picsift.analyses.search import search
    from picsift.report.search_html import build_search_report

    embedded = embed_workspace(ws, workers=workers, progress=True)
    console.print(f"embedded {embedded.embedded} media in {embedded.seconds} s")
    results = []
    for query in ("a cat", "a cup of coffee", "a rocket"):
        found = search(ws, texts=[query], top=5).assign(query=query)
        results.append(found)
        console.print(f"{query!r}: " + ", ".join(Path(p).name for p in found["path"].head(3)))
    import pandas as pd

    page = build_search_report(ws, pd.concat(results, ignore_index=True), out / "search.html", "demo")
    console.print(f"search contact sheet: {page}")
    _text_section(ws, out, workers)
    _faces_section(ws, out, workers)
    _colors_section(ws, out, workers)
    console.rule("outputs")
    result = export_table(ws, out / "media.csv")
    console.print(f"table: {result['path']} ({result['rows']} rows x {result['columns']} columns)")
    report = build_report(ws, out / "report.html")
    console.print(f"report: {report.absolute()}  (open it in a browser)")


def _text_section(ws: picsift.Workspace, out: Path, workers: int | None) -> None:
    """OCR, language, offline translation and a search by written words."""
    console.rule("text in images (offline OCR, language, translation)")
    try:
        from picsift.analyses.text import extract_text, search_text, text_table
        from picsift.text.ocr import engine_versions

        engine_versions()
    except Exception as exc:  # noqa: BLE001 - the text extra is optional
        console.print(f"skipped: {exc}")
        return
    summary = extract_text(ws, workers=workers, progress=True)
    console.print(f"read {summary.read} media, {summary.with_text} with text; languages: "
                  + ", ".join(f"{k} {v}" for k, v in summary.languages.items()))
    table = text_table(ws)
    for row in table[table["n_blocks"] > 0].itertuples():
        first = str(row.text).splitlines()[-1][:60]
        english = f"  →  {str(row.text_english).splitlines()[-1][:60]}" if isinstance(row.text_english, str) \
            and row.text_language != "en" else ""
        console.print(escape(f"[{row.text_language}] {Path(row.path).name}: {first}{english}"
                             f"  ({row.translation_status})"))
    hits = search_text(ws, "parque")
    console.print("written-word search 'parque': " + ", ".join(Path(p).name for p in hits["path"]))
    table.to_csv(out / "text.csv", index=False)
    console.print(f"text table: {out / 'text.csv'}")


def _faces_section(ws: picsift.Workspace, out: Path, workers: int | None) -> None:
    """Faces, expressions and the same person across reposts (no demographics: no consent)."""
    console.rule("faces (offline; age/gender stay off without --accept-disclosure)")
    from picsift.analyses.faces import cluster_identities, detect_faces, faces_table
    from picsift.faces.recognize import dlib_available
    from picsift.report.faces_html import build_identities_report

    summary = detect_faces(ws, workers=workers, progress=True)
    console.print(f"{summary.faces} faces in {summary.with_faces} of "
                  f"{summary.looked_at + summary.already} media")
    faces = faces_table(ws)
    for row in faces.head(8).itertuples():
        console.print(f"{Path(row.path).name}: face {row.face}, {row.emotion or 'no expression'}"
                      f" ({row.emotion_group or '-'}), masked={bool(row.masked)}")
    if dlib_available() and len(faces):
        sizes = cluster_identities(ws)
        faces = faces_table(ws)
        page = build_identities_report(ws, faces, out / "identities.html")
        console.print(f"{len(sizes)} identities seen more than once; contact sheet: {page}")
    faces.to_csv(out / "faces.csv", index=False)


def _colors_section(ws: picsift.Workspace, out: Path, workers: int | None) -> None:
    console.rule("colors")
    from picsift.analyses.colors import analyse_colors, colors_table, corpus_summary_png

    analyse_colors(ws, workers=workers, progress=True)
    table = colors_table(ws, hue=False)
    names = ["red", "green", "blue", "yellow", "cyan", "orange", "purple", "pink", "brown",
             "grey", "white", "black"]
    means = table[names].mean().sort_values(ascending=False)
    console.print("corpus colors: " + ", ".join(f"{k} {v:.0%}" for k, v in means.head(5).items()))
    plot = corpus_summary_png(table, out / "colors.png")
    console.print(f"color plot: {plot}")
