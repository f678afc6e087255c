"""Identities as a contact sheet: each identity's face crops side by side, so a researcher
can check by eye that a group is one person before counting their appearances."""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

import pandas as pd

from picsift.errors import MediaError
from picsift.media.decode import load_image
from picsift.report.html import _CSS
from picsift.workspace.store import Workspace
from picsift.report.files import write_page

MAX_IDENTITIES = 200
MAX_FACES = 30
CHIP = 96
_EXTRA_CSS = ".chips{display:flex;flex-wrap:wrap;gap:.4rem}.chip{width:7rem;font-size:.75rem;" \
             "word-break:break-all}.chip img{display:block;width:96px;height:96px;object-fit:cover;border-radius:4px}"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def face_chip(path: str, box: tuple[float, float, float, float], reference: tuple[int, int] | None,
              size: int = CHIP) -> str | None:
    """A data URI of the face (with a margin) cut from ``path``; None if it cannot be read.

    Boxes refer to the picture the detector saw (``reference`` = its width, height), which
    may be smaller than the file; they are rescaled to the decoded picture here.
    """
    try:
        image = load_image(path, size=max(reference) if reference else None)
    except MediaError:
        return None
    sx = image.width / reference[0] if reference else 1.0
    sy = image.height / reference[1] if reference else 1.0
    x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    margin = 0.2 * max(x1 - x0, y1 - y0)
    crop = image.crop((int(max(0, x0 - margin)), int(max(0, y0 - margin)),
                       int(min(image.width, x1 + margin)), int(min(image.height, y1 + margin))))
    crop.thumbnail((size, size))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _chips(ws: Workspace, faces: pd.DataFrame) -> str:
    sizes = {r["media_id"]: (r["width"], r["height"]) for r in ws.query(
        "SELECT media_id, width, height FROM media_faces")}
    tiles = []
    for row in faces.head(MAX_FACES).itertuples():
        uri = face_chip(str(row.path), (row.x0, row.y0, row.x1, row.y1), sizes.get(row.media_id))
        img = f"<img src='{uri}' alt=''>" if uri else "<div class='muted'>(no preview)</div>"
        label = f"{os.path.basename(str(row.path))}" + (f" · {row.emotion}" if isinstance(row.emotion, str) else "")
        tiles.append(f"<div class='chip'>{img}{_e(label)}</div>")
    more = (f"<p class='muted'>… {len(faces) - MAX_FACES} more (see faces.csv)</p>"
            if len(faces) > MAX_FACES else "")
    return f"<div class='chips'>{''.join(tiles)}</div>{more}"


def build_identities_report(ws: Workspace, faces: pd.DataFrame, out: str | Path) -> Path:
    """Write the page for ``faces`` (faces_table with the identity column)."""
    out = Path(out)
    known = faces[faces["identity"].fillna(-1) >= 0]
    sections = []
    for n, (identity, members) in enumerate(known.groupby("identity", sort=True)):
        if n >= MAX_IDENTITIES:
            sections.append("<p class='muted'>more identities: see faces.csv</p>")
            break
        images = members["media_id"].nunique()
        sections.append(f"<div class='group'><b>identity {int(identity)}</b> · {len(members)} faces "
                        f"in {images} images{_chips(ws, members)}</div>")
    rest = faces[faces["identity"].fillna(-1) < 0]
    if len(rest):
        sections.append(f"<h2>Seen once ({len(rest)})</h2>{_chips(ws, rest)}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>picsift identities</title>"
            f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><h1>Identities</h1>"
            f"<p class='muted'>{_e(ws.dir)} · {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"<p>{known['identity'].nunique()} identities, {len(known)} faces in them, "
            f"{len(rest)} faces seen once.</p>{''.join(sections)}</body></html>")
    return write_page(out, page)
