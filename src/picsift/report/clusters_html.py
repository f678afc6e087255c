"""A clustering as a contact sheet: the map, then each cluster as a gallery (up to 40 images),
so a researcher can judge cohesion by eye before coding anything."""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from picsift.report.html import _CSS
from picsift.report.thumbs import thumbnail_data_uri
from picsift.workspace.store import Workspace
from picsift.report.files import write_page

MAX_CLUSTERS = 100
MAX_MEMBERS = 40

_EXTRA_CSS = ".map{max-width:100%;border:1px solid #eee}.swatch{display:inline-block;width:.9rem;" \
             "height:.9rem;border-radius:50%;vertical-align:middle;margin-right:.3rem}"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _gallery(ws: Workspace, members: pd.DataFrame) -> str:
    tiles = []
    for row in members.head(MAX_MEMBERS).itertuples():
        uri = thumbnail_data_uri(ws, row.media_id, row.path)
        img = f"<img src='{uri}' alt=''>" if uri else "<div class='muted'>(no preview)</div>"
        tiles.append(f"<div class='tile'>{img}{_e(os.path.basename(str(row.path)))}</div>")
    more = (f"<p class='muted'>… {len(members) - MAX_MEMBERS} more (see the CSV)</p>"
            if len(members) > MAX_MEMBERS else "")
    return f"<div class='grid'>{''.join(tiles)}</div>{more}"


def _rounds_table(rounds: list[dict[str, Any]]) -> str:
    if not rounds:
        return ""
    rows = "".join(
        f"<tr><td>{r['round']}</td><td>{r['remaining']}</td><td>{r['sampled']}</td>"
        f"<td>{r['k']}</td><td>{r['score']:.3f}</td><td>{r['kept']}</td><td>{r['clustered']}</td>"
        f"<td class='muted'>{_e(', '.join(f'{k}: {v:.3f}' for k, v in r['scores'].items()))}"
        "</td></tr>" for r in rounds)
    return ("<h2>Rounds</h2><table><tr><th>round</th><th>unclustered before</th><th>sampled</th>"
            "<th>best K</th><th>mean silhouette</th><th>cohesive clusters</th><th>images kept</th>"
            f"<th>mean silhouette per K tried</th></tr>{rows}</table>")


def build_clusters_report(ws: Workspace, table: pd.DataFrame, out: str | Path,
                          params: dict[str, Any], map_png: Path | None = None,
                          rounds: list[dict[str, Any]] | None = None) -> Path:
    """Write the page for ``table`` (path, media_id, cluster, silhouette, round)."""
    from picsift.analyses.cluster_map import cluster_colour

    out = Path(out)
    clustered = table[table["cluster"] > 0]
    ids = sorted(clustered["cluster"].unique())
    sections: list[str] = []
    for n, cluster in enumerate(ids):
        if n >= MAX_CLUSTERS:
            sections.append(f"<p class='muted'>{len(ids) - MAX_CLUSTERS} more clusters: "
                            "see the clusters CSV.</p>")
            break
        members = clustered[clustered["cluster"] == cluster]
        r, g, b = cluster_colour(int(cluster))
        silhouette = members["silhouette"].iloc[0]
        sil = "n/a" if pd.isna(silhouette) else f"{silhouette:.3f}"
        sections.append(
            f"<div class='group'><span class='swatch' style='background:rgb({r},{g},{b})'></span>"
            f"<b>cluster {_e(cluster)}</b> · {len(members)} images · silhouette {sil} · "
            f"round {_e(members['round'].iloc[0])}{_gallery(ws, members)}</div>")
    rest = table[table["cluster"] <= 0]
    if len(rest):
        sections.append(f"<h2>Unclustered ({len(rest)})</h2>{_gallery(ws, rest)}")
    picture = ""
    if map_png is not None and Path(map_png).exists():
        data = base64.b64encode(Path(map_png).read_bytes()).decode("ascii")
        picture = f"<img class='map' src='data:image/png;base64,{data}' alt='map of the clusters'>"
    settings = ", ".join(f"{k}={v}" for k, v in params.items())
    summary = (f"<p>{len(ids)} clusters, {len(clustered)} images in them, {len(rest)} "
               f"unclustered.</p><p class='muted'>{_e(settings)}</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift clusters</title>"
            f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><h1>Clusters</h1>"
            f"<p class='muted'>{_e(ws.dir)} · {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"{summary}{picture}{_rounds_table(rounds or [])}<h2>Clusters</h2>"
            f"{''.join(sections)}</body></html>")
    return write_page(out, page)
