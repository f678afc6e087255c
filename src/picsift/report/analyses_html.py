"""Report sections for the per-image analyses (colors, text, faces), present only when the
analysis has run, so `picsift report` shows whatever the workspace holds."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path
from typing import Any

from picsift.workspace.store import Workspace

MAX_ROWS = 60


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def colors_section(ws: Workspace) -> str | None:
    """Corpus color plot and a palette strip per image (first MAX_ROWS)."""
    if not ws.query("SELECT 1 FROM feature_sets WHERE name = 'colors' LIMIT 1"):
        return None
    from picsift.analyses.colors import (corpus_summary_png, colors_table, data_uri,
                                         palette_strip_data_uri)

    table = colors_table(ws, hue=False)
    if table.empty:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        plot = corpus_summary_png(table, Path(tmp) / "colors.png")
        picture = data_uri(plot.read_bytes())
    rows = "".join(
        f"<tr><td>{_e(os.path.basename(str(r['path'])))}</td>"
        f"<td><img src='{palette_strip_data_uri(r)}' alt='palette'></td>"
        f"<td>{_e(r['palette'])}</td><td>{r['colorfulness']:.0f}</td>"
        f"<td>{'yes' if r['greyscale'] else ''}</td></tr>"
        for _, r in table.head(MAX_ROWS).iterrows())
    return (f"<img src='{picture}' alt='corpus colors' style='max-width:100%'>"
            "<table><tr><th>image</th><th>palette</th><th>hex (by share)</th>"
            f"<th>colorfulness</th><th>greyscale</th></tr>{rows}</table>")


def text_section(ws: Workspace) -> str | None:
    """Languages and the first texts read (OCR), with their translation status."""
    if not ws.scalar("SELECT COUNT(*) FROM media_text"):
        return None
    languages = ws.query("SELECT COALESCE(text_language, 'und') AS l, COUNT(*) AS n FROM media_text "
                         "WHERE n_blocks > 0 GROUP BY l ORDER BY n DESC")
    summary = ", ".join(f"{_e(r['l'])} {r['n']}" for r in languages) or "no text found"
    rows = "".join(
        f"<tr><td>{_e(os.path.basename(r['path']))}</td><td>{_e(r['text_language'])}</td>"
        f"<td>{_e(r['text'])}</td><td>{_e(r['text_english'])}</td>"
        f"<td>{_e(r['translation_status'])}</td><td>{_e(r['sentiment'])}</td></tr>"
        for r in ws.query(
            "SELECT (SELECT MIN(path) FROM files f WHERE f.media_id = t.media_id) AS path, "
            "t.text_language, t.text, t.text_english, t.translation_status, t.sentiment "
            "FROM media_text t WHERE n_blocks > 0 ORDER BY path LIMIT ?", (MAX_ROWS,)))
    return (f"<p>Images with text, by language: {summary}.</p><table><tr><th>image</th>"
            "<th>language</th><th>text</th><th>English</th><th>translation</th>"
            f"<th>sentiment</th></tr>{rows}</table>")


def faces_section(ws: Workspace) -> str | None:
    """Face counts and expressions (demographics are never summarised here)."""
    if not ws.scalar("SELECT COUNT(*) FROM media_faces"):
        return None
    total = ws.scalar("SELECT COUNT(*) FROM faces")
    images = ws.scalar("SELECT COUNT(*) FROM media_faces WHERE n_faces > 0")
    looked = ws.scalar("SELECT COUNT(*) FROM media_faces")
    expressions = ", ".join(
        f"{_e(r['e'])} {r['n']}" for r in ws.query(
            "SELECT COALESCE(emotion, '(masked or off)') AS e, COUNT(*) AS n FROM faces "
            "GROUP BY e ORDER BY n DESC"))
    masked = ws.scalar("SELECT COUNT(*) FROM faces WHERE masked = 1")
    identities = ws.scalar("SELECT COUNT(DISTINCT identity) FROM faces WHERE identity >= 0")
    return (f"<p>{total} faces in {images} of {looked} media; {masked} masked; expressions: "
            f"{expressions or 'none'}; {identities} identities seen more than once "
            "(picsift faces identities: contact sheet).</p>")
