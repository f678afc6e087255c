"""Pictures the pages show, made once and cached in the workspace, never the corpus.

Thumbnails (256 px) are the report's cache (report/thumbs.py, ``<workspace>/thumbs``);
previews for the detail and inspector pages (1024 px) live in ``<workspace>/web/previews``.
Both are JPEGs named by media id, so a path never reaches the browser or comes back from it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from picsift.errors import MediaError
from picsift.media.decode import load_image
from picsift.report.thumbs import ensure_thumbnail, thumbnail_path
from picsift.web.context import WebContext
from picsift.web.data import readable_path

PREVIEW_SIZE = 1024
_LOCKS = [threading.Lock() for _ in range(64)]  # two requests never write the same file


def _lock(media_id: str) -> threading.Lock:
    return _LOCKS[int(media_id[:2], 16) % len(_LOCKS)]


def thumbnail(ctx: WebContext, media_id: str) -> Path | None:
    """The cached 256 px JPEG of a media (made on first request); None if it cannot be read."""
    ws = ctx.ws()
    cached = thumbnail_path(ws, media_id)
    if cached.exists():
        return cached
    source = readable_path(ws, media_id)
    if source is None:
        return None
    with _lock(media_id):
        return ensure_thumbnail(ws, media_id, source)


def preview_path(ctx: WebContext, media_id: str) -> Path:
    return ctx.workspace_dir / "web" / "previews" / media_id[:2] / f"{media_id}.jpg"


def preview(ctx: WebContext, media_id: str) -> Path | None:
    """The cached 1024 px JPEG (upright, RGB) of a media; None if it cannot be read."""
    target = preview_path(ctx, media_id)
    if target.exists():
        return target
    source = readable_path(ctx.ws(), media_id)
    if source is None:
        return None
    with _lock(media_id):
        if target.exists():
            return target
        try:
            image = load_image(source, size=PREVIEW_SIZE)
        except (MediaError, OSError):
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        image.save(tmp, "JPEG", quality=85)
        os.replace(tmp, target)
        return target


def etag_of(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="192" viewBox="0 0 256 192">'
    '<rect width="256" height="192" fill="#eee"/><text x="128" y="100" font-family="sans-serif" '
    'font-size="16" text-anchor="middle" fill="#888">no preview</text></svg>')
