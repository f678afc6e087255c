"""Copy clusters as contact sheets: biggest first, each member captioned with its relation."""

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

MAX_CLUSTERS = 200
MAX_MEMBERS = 60

_EXTRA_CSS = """
.tile.rep{width:260px}.rep img{max-width:260px;max-height:260px}.rel{font-weight:600;color:#0a5}
.rel.mirrored{color:#a50}.cluster{display:flex;gap:1rem;align-items:flex-start}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def build_copies_report(ws: Workspace, clusters: pd.DataFrame, pairs: pd.DataFrame,
                        out: str | Path) -> Path:
    """Write the contact-sheet page of copy clusters (clusters of one image are skipped)."""
    out = Path(out)
    multi = clusters[clusters["cluster_size"] > 1]
    sections: list[str] = []
    for n, (cluster_id, members) in enumerate(multi.groupby("cluster_id", sort=True)):
        if n >= MAX_CLUSTERS:
            sections.append(f"<p class='muted'>{multi['cluster_id'].nunique() - MAX_CLUSTERS} "
                            "more clusters: see the clusters CSV.</p>")
            break
        rep_id = members["representative_id"].iloc[0]
        rep_path = members["representative_path"].iloc[0]
        uri = thumbnail_data_uri(ws, rep_id, rep_path)
        rep_img = f"<img src='{uri}' alt=''>" if uri else "(no preview)"
        tiles = []
        for row in members.head(MAX_MEMBERS).itertuples():
            thumb = thumbnail_data_uri(ws, row.image_id, row.path)
            img = f"<img src='{thumb}' alt=''>" if thumb else "<div class='muted'>(no preview)</div>"
            cls = "rel mirrored" if "mirrored" in str(row.relation) else "rel"
            name = os.path.basename(str(row.path))
            if isinstance(row.video_path, str):  # a keyframe: say which video and when
                name = f"{os.path.basename(row.video_path)} @ {row.frame_time:.2f} s"
            tiles.append(f"<div class='tile'>{img}<span class='{cls}'>{_e(row.relation)}</span><br>"
                         f"{_e(name)}</div>")
        more = (f"<p class='muted'>… {len(members) - MAX_MEMBERS} more</p>"
                if len(members) > MAX_MEMBERS else "")
        sections.append(
            f"<div class='group'><b>cluster {_e(cluster_id)}</b> · {_e(len(members))} images · "
            f"quality {_e(members['quality'].iloc[0])}<div class='cluster'><div class='tile rep'>"
            f"{rep_img}representative<br><code>{_e(rep_path)}</code></div>"
            f"<div class='grid'>{''.join(tiles)}</div></div>{more}</div>")
    summary = (f"<p>{multi['cluster_id'].nunique()} clusters with copies, {len(multi)} images in "
               f"them, {len(clusters) - len(multi)} images without copies, "
               f"{len(pairs)} verified pairs.</p>"
               "<p class='muted'>Relations are of each image to its cluster's representative: "
               "<b>same</b> (same frame, possibly resized, re-encoded, filtered or captioned), "
               "<b>inside</b> (the image lies inside the representative: a crop of it, or pasted "
               "into it), <b>contains</b> (the representative lies inside the image), "
               "<b>overlap</b> (they share a part), <b>mirrored</b>, <b>identical bytes</b>, "
               "<b>linked</b> (a copy of another member, not of the representative).</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift copies</title>"
            f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><h1>Copy clusters</h1>"
            f"<p class='muted'>{_e(ws.dir)} · {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"{summary}{''.join(sections)}</body></html>")
    return write_page(out, page)
