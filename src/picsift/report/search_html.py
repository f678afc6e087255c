"""Search results as a contact sheet: one row of thumbnails per query, ranked."""

from __future__ import annotations

import html
import os
import time
from pathlib import Path

import pandas as pd

from picsift.report.html import _CSS
from picsift.report.thumbs import thumbnail_data_uri
from picsift.workspace.store import Workspace
from picsift.report.files import write_page


def build_search_report(ws: Workspace, results: pd.DataFrame, out: str | Path, title: str) -> Path:
    """Write results (columns query?, rank, score, media_id, path) as an HTML page."""
    out = Path(out)
    sections = []
    groups = results.groupby("query", sort=False) if "query" in results else [(title, results)]
    for query, rows in groups:
        tiles = []
        for row in rows.itertuples():
            uri = thumbnail_data_uri(ws, row.media_id, row.path)
            img = f"<img src='{uri}' alt=''>" if uri else "<div class='muted'>(no preview)</div>"
            tiles.append(f"<div class='tile'>{img}#{row.rank} · {row.score:.3f}<br>"
                         f"{html.escape(os.path.basename(str(getattr(row, 'source', row.path))))}</div>")
        sections.append(f"<h2>{html.escape(str(query))}</h2><div class='grid'>{''.join(tiles)}</div>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift search</title>"
            f"<style>{_CSS}</style></head><body><h1>Search</h1><p class='muted'>"
            f"{html.escape(str(ws.dir))} · {time.strftime('%Y-%m-%d %H:%M')}</p>"
            f"{''.join(sections)}</body></html>")
    return write_page(out, page)
