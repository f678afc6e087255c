"""Pictures by id (thumbnail, preview, original as a download) and the image detail page."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import FileResponse, Response

from picsift.web.context import ctx_of
from picsift.web.data import (captions, faces_of, features_of, media_facts, palette_of,
                              readable_path, text_of)
from picsift.web.pictures import PLACEHOLDER_SVG, etag_of, preview, thumbnail
from picsift.web.security import check_media_id

router = APIRouter()
# Content addressed (the id is the sha256 of the bytes), so the browser may keep them.
CACHE = "private, max-age=86400, immutable"


def _picture(request: Request, path: Path | None) -> Response:
    if path is None:
        return Response(PLACEHOLDER_SVG, media_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=60",
                                 "X-Picsift-Preview": "none"})
    etag = etag_of(path)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE})
    return FileResponse(path, media_type="image/jpeg", headers={"ETag": etag, "Cache-Control": CACHE})


@router.get("/media/{media_id}/thumb")
def media_thumb(request: Request, media_id: str) -> Response:
    ctx = ctx_of(request)
    check_media_id(media_id)
    if not ctx.ws().scalar("SELECT 1 FROM media WHERE media_id = ?", (media_id,)):
        raise HTTPException(404, "no such media")
    return _picture(request, thumbnail(ctx, media_id))


@router.get("/media/{media_id}/preview")
def media_preview(request: Request, media_id: str) -> Response:
    ctx = ctx_of(request)
    check_media_id(media_id)
    if not ctx.ws().scalar("SELECT 1 FROM media WHERE media_id = ?", (media_id,)):
        raise HTTPException(404, "no such media")
    return _picture(request, preview(ctx, media_id))


@router.get("/media/{media_id}/original")
def media_original(request: Request, media_id: str) -> Response:
    """The file itself, always as a download (an "image" that is really HTML never renders)."""
    ctx = ctx_of(request)
    check_media_id(media_id)
    source = readable_path(ctx.ws(), media_id)
    if source is None or not Path(source).is_file():
        raise HTTPException(404, "no such media, or its file is gone")
    name = Path(source).name
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(source, media_type="application/octet-stream", filename=name,
                        headers={"X-Picsift-Type": guessed, "Cache-Control": CACHE})


def _scale(width: Any, height: Any, limit: int | None) -> tuple[float, float]:
    """Size of the picture an extractor saw: the upright image shrunk to ``limit``."""
    w, h = float(width or 0), float(height or 0)
    if limit and max(w, h) > limit:
        factor = limit / max(w, h)
        return round(w * factor), round(h * factor)
    return w, h


@router.get("/media/{media_id}")
def media_page(request: Request, media_id: str) -> Response:
    from picsift.analyses.text import DECODE_SIZE
    from picsift.web.clusters_data import cluster_tables
    from picsift.web.copies_data import copy_tables, pairs_of, relation_text
    from picsift.web.review_data import list_sorts, sort_results

    ctx = ctx_of(request)
    check_media_id(media_id)
    ws = ctx.ws()
    facts = media_facts(ws, media_id)
    if facts is None:
        raise HTTPException(404, "no such media")
    caption = captions(ws, [media_id]).get(media_id, media_id[:12])
    text = text_of(ws, media_id)
    text_frame = _scale(facts["width"], facts["height"], DECODE_SIZE) if text else None
    faces = _faces(ws, media_id)
    features = features_of(ctx, media_id)
    palette: list[str] = []
    tags: list[tuple[str, float]] = []
    generic = []
    for stored, values in features:
        if stored.name == "colors" or "palette" in values or "colors_palette" in values:
            palette = palette or palette_of(values)
        if stored.name == "embed":
            tags = [(str(values[f"tag{k}"]), float(values.get(f"tag{k}_p") or 0))
                    for k in (1, 2, 3) if values.get(f"tag{k}")]
        generic.append((stored, values))
    copies = copy_tables(ctx)
    membership = copies.by_media.get(media_id) if copies.available else None
    siblings = []
    if membership is not None and membership["cluster_size"] > 1:
        rows = copies.members.get(membership["cluster_id"], [])
        siblings = [(r["image_id"], relation_text(r["relation"])) for r in rows
                    if r["image_id"] != media_id][:24]
    pairs = pairs_of(copies, media_id) if copies.available else []
    sorted_as = []
    for info in list_sorts(ctx):
        frame = sort_results(ctx, info["id"])
        if "media_id" in frame.columns:
            hit = frame[frame["media_id"] == media_id]
            if len(hit):
                row = hit.iloc[0].to_dict()
                scores = sorted(((k[6:], float(v or 0)) for k, v in row.items()
                                 if k.startswith("score:") and v != ""), key=lambda kv: -kv[1])
                sorted_as.append({"sort": info["id"], "label": row.get("label"),
                                  "scores": scores[:8], "model": row.get("model", "")})
    semantic = cluster_tables(ctx)
    in_cluster = semantic.by_media.get(media_id) if semantic.available else None
    errors = [dict(r) for r in ws.query(
        "SELECT e.path, e.kind, e.reason, e.stage FROM errors e JOIN files f ON f.path = e.path "
        "WHERE f.media_id = ?", (media_id,))]
    return ctx.render(request, "media.html", media_id=media_id, facts=facts, caption=caption,
                      text=text, text_frame=text_frame, faces=faces, palette=palette, tags=tags,
                      generic=generic, membership=membership, siblings=siblings,
                      relation_text=relation_text, pairs=pairs, sorted_as=sorted_as,
                      in_cluster=in_cluster, errors=errors,
                      sibling_tiles=captions(ws, [s for s, _ in siblings]))


def _faces(ws: Any, media_id: str) -> dict[str, Any] | None:
    """Faces panel data only when the faces tables have rows for this media."""
    try:
        return faces_of(ws, media_id)
    except Exception:  # the faces tables are young: never lose the page over them
        import logging

        logging.getLogger(__name__).warning("cannot read faces of %s", media_id, exc_info=True)
        return None
