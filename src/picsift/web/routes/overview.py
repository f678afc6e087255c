"""Overview (counts, formats, analyses, errors) and the paged list of every image."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from picsift.export.table import workspace_info
from picsift.web.context import ctx_of
from picsift.web.data import analyses, error_stages, errors_page, media_list, runs, tiles
from picsift.web.routes import pager

router = APIRouter()


@router.get("/")
def overview_page(request: Request) -> Response:
    ctx = ctx_of(request)
    ws = ctx.ws()
    info = ctx.cache.get(ws, "info", lambda: workspace_info(ctx.ws()))  # ~2 s at 100k images
    errors, total_errors = errors_page(ws, 0, 20)
    return ctx.render(request, "overview.html", info=info, analyses=analyses(ctx),
                      runs=runs(ws, 10), errors=errors, total_errors=total_errors,
                      stages=error_stages(ws))


@router.get("/errors")
def errors_list(request: Request, page: int = 1, stage: str | None = None) -> Response:
    ctx = ctx_of(request)
    ws = ctx.ws()
    stages = error_stages(ws)
    if stage not in {s for s, _ in stages}:
        stage = None
    total = sum(n for s, n in stages if stage in (None, s))
    pages = pager(page, ctx.page_size, total)
    rows, _ = errors_page(ws, pages.offset, pages.size, stage)
    return ctx.render(request, "errors.html", errors=rows, pages=pages, stages=stages, stage=stage)


@router.get("/images")
def images_page(request: Request, page: int = 1, format: str | None = None) -> Response:
    ctx = ctx_of(request)
    everything = media_list(ctx)
    formats = sorted({f for _, _, f in everything if f})
    chosen = [m for m in everything if m[2] == format] if format in formats else everything
    pages = pager(page, ctx.page_size, len(chosen))
    shown = [m for m, _, _ in chosen[pages.offset:pages.offset + pages.size]]
    return ctx.render(request, "images.html", tiles=tiles(ctx.ws(), shown), pages=pages,
                      formats=formats, format=format if format in formats else None)
