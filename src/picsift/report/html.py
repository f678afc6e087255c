"""The HTML report: one self-contained page a researcher can open, keep and share.

Every string that comes from files (names, paths, reasons) is escaped. Thumbnails are inlined
so the page survives being moved; sections are capped so huge corpora still give a small page.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

from picsift.report.thumbs import thumbnail_data_uri
from picsift.workspace.store import Workspace
from picsift.report.files import write_page

MAX_DUPLICATE_GROUPS = 60
MAX_GALLERY = 48
MAX_KEYFRAMES = 120
MAX_ERRORS = 500

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f;
max-width:1200px}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.muted{color:#666}.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#f5f5f7;border-radius:8px;padding:.7rem 1rem;min-width:7rem}
.card b{display:block;font-size:1.6rem}table{border-collapse:collapse;font-size:.9rem}
td,th{border-bottom:1px solid #eee;padding:.3rem .6rem;text-align:left;vertical-align:top}
.grid{display:flex;flex-wrap:wrap;gap:.6rem}.tile{width:170px;font-size:.75rem;word-break:break-all}
.tile img{max-width:170px;max-height:170px;display:block;border-radius:4px;background:#eee}
.group{border:1px solid #e3e3e3;border-radius:8px;padding:.6rem;margin:.6rem 0}
code{font-size:.8rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _tile(ws: Workspace, media_id: str, path: str, caption: str) -> str:
    uri = thumbnail_data_uri(ws, media_id, path)
    img = f'<img src="{uri}" alt="">' if uri else '<div class="muted">(no preview)</div>'
    return f'<div class="tile">{img}{caption}</div>'


def _summary(info: dict[str, Any]) -> str:
    cards = [
        ("images", info["images"]), ("image files", info["image_files"]),
        ("exact-duplicate groups", info["exact_duplicate_groups"]), ("videos", info["videos"]),
        ("keyframes", info["keyframes"]), ("truncated", info["truncated"]),
        ("errors", info["errors"]),
    ]
    html_cards = "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards)
    formats = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in info["formats"].items())
    roots = "<br>".join(_e(r) for r in info["roots"])
    return (f'<div class="cards">{html_cards}</div><h2>Formats</h2><table>'
            f"<tr><th>format</th><th>images</th></tr>{formats}</table>"
            f'<p class="muted">Scanned folders:<br>{roots}</p>')


def _duplicates(ws: Workspace) -> str:
    frame = ws.duplicates()
    if frame.empty:
        return "<p>No byte-identical files at several paths.</p>"
    parts = [f"<p>{frame['group'].max()} group(s) of byte-identical files, "
             f"{len(frame)} paths. Largest first.</p>"]
    for group, rows in frame.groupby("group", sort=True):
        if group > MAX_DUPLICATE_GROUPS:
            parts.append("<p class='muted'>… and more; see <code>picsift duplicates --csv</code>.</p>")
            break
        first = rows.iloc[0]
        tile = _tile(ws, first.media_id, first.path, f"{_e(first.width)} x {_e(first.height)} {_e(first.format)}")
        paths = "".join(f"<li><code>{_e(p)}</code></li>" for p in rows["path"])
        parts.append(f'<div class="group"><b>group {_e(group)}</b> · {_e(len(rows))} paths'
                     f'<div style="display:flex;gap:1rem">{tile}<ul>{paths}</ul></div></div>')
    return "".join(parts)


def _videos(ws: Workspace) -> str:
    videos = ws.query(
        "SELECT f.path, v.* FROM videos v JOIN files f ON f.media_id = v.video_id AND "
        "f.kind = 'video' GROUP BY v.video_id ORDER BY f.path")
    if not videos:
        return "<p>No videos.</p>"
    parts = []
    shown = 0
    for video in videos:
        frames = ws.query(
            "SELECT k.media_id, k.frame_time, MIN(f.path) AS path FROM keyframes k JOIN files f "
            "ON f.media_id = k.media_id AND f.kind = 'frame' WHERE k.video_id = ? "
            "GROUP BY k.video_id, k.frame_index ORDER BY k.frame_time", (video["video_id"],))
        tiles = []
        for frame in frames:
            if shown >= MAX_KEYFRAMES:
                break
            shown += 1
            tiles.append(_tile(ws, frame["media_id"], frame["path"], f"t = {frame['frame_time']:.2f} s"))
        duration = f"{video['duration']:.1f} s" if video["duration"] else "?"
        parts.append(f'<div class="group"><b>{_e(video["path"])}</b> · {_e(duration)} · '
                     f'{_e(video["width"])}x{_e(video["height"])} {_e(video["codec"])} · '
                     f'{_e(video["n_keyframes"])} keyframes<div class="grid">{"".join(tiles)}</div></div>')
    return "".join(parts)


def _gallery(ws: Workspace) -> str:
    rows = ws.query(
        "SELECT m.media_id, MIN(f.path) AS path, m.width, m.height, m.format FROM media m "
        "JOIN files f ON f.media_id = m.media_id AND f.kind = 'image' GROUP BY m.media_id "
        "ORDER BY path LIMIT ?", (MAX_GALLERY,))
    tiles = "".join(
        _tile(ws, r["media_id"], r["path"],
              f"{_e(os.path.basename(r['path']))}<br>{_e(r['width'])}x{_e(r['height'])} {_e(r['format'])}")
        for r in rows)
    return f'<div class="grid">{tiles}</div>'


def _errors(ws: Workspace) -> str:
    frame = ws.errors()
    if frame.empty:
        return "<p>No errors.</p>"
    rows = "".join(
        f"<tr><td><code>{_e(repr(r.path)[1:-1])}</code></td><td>{_e(r.kind)}</td>"
        f"<td>{_e(r.reason)}</td><td>{_e(r.stage)}</td></tr>"
        for r in frame.head(MAX_ERRORS).itertuples())
    more = f'<p class="muted">{len(frame) - MAX_ERRORS} more: picsift errors</p>' if len(frame) > MAX_ERRORS else ""
    return (f"<p>{len(frame)} file(s) or folder(s) could not be used. Nothing else was affected.</p>"
            f"<table><tr><th>path</th><th>kind</th><th>reason</th><th>stage</th></tr>{rows}</table>{more}")


def build_report(ws: Workspace, out: str | Path | None = None) -> Path:
    """Write the report (default ``<workspace>/report.html``) and return its path."""
    info = ws.info()
    out = Path(out) if out else ws.dir / "report.html"
    sections = [
        ("Overview", _summary(info)),
        ("Exact duplicates", _duplicates(ws)),
        ("Videos and keyframes", _videos(ws)),
        (f"Images (first {MAX_GALLERY})", _gallery(ws)),
        ("Errors", _errors(ws)),
    ]
    from picsift.report.analyses_html import colors_section, faces_section, text_section

    for title, build in (("Text in images", text_section), ("Faces", faces_section),
                         ("Colors", colors_section)):
        content = build(ws)
        if content is not None:
            sections.insert(-1, (title, content))
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift report</title>"
            f"<style>{_CSS}</style></head><body><h1>picsift report</h1>"
            f"<p class='muted'>{_e(info['workspace'])} · {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"{body}</body></html>")
    return write_page(out, page)
