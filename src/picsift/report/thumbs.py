"""Small JPEG previews, made once per media and cached in the workspace (reports, web page)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from picsift.errors import MediaError
from picsift.media.decode import load_image
from picsift.workspace.store import Workspace

THUMB_SIZE = 256


def thumbnail_path(ws: Workspace, media_id: str) -> Path:
    return ws.dir / "thumbs" / media_id[:2] / f"{media_id}.jpg"


def ensure_thumbnail(ws: Workspace, media_id: str, source: str | Path) -> Path | None:
    """Path of the cached preview, creating it from ``source``; None if it cannot be decoded."""
    target = thumbnail_path(ws, media_id)
    if target.exists():
        return target
    try:
        image = load_image(source, size=THUMB_SIZE)
    except (MediaError, OSError):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    image.save(tmp, "JPEG", quality=82)
    os.replace(tmp, target)
    return target


def thumbnail_data_uri(ws: Workspace, media_id: str, source: str | Path) -> str | None:
    """The preview inlined as a data: URI, so an HTML report stays one self-contained file."""
    path = ensure_thumbnail(ws, media_id, source)
    if path is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
