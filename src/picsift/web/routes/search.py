"""Search: words (embedding bridge), an uploaded picture, "more like this", OCR text (FTS)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from starlette.responses import Response

from picsift.errors import MediaError, PicsiftError
from picsift.web.context import WebContext, ctx_of
from picsift.web.data import tiles
from picsift.web.routes import pager
from picsift.web.search_data import (embedding_models, has_text_index, semantic_search,
                                     text_search)
from picsift.web.security import MEDIA_ID, require_write_token

log = logging.getLogger(__name__)
router = APIRouter()
RESULTS_PER_PAGE = 60
MAX_RESULTS = 1000


@router.get("/search")
def search_page(request: Request, q: str = "", neg: str = "", like: str = "", ocr: str = "",
                model: str = "", page: int = 1) -> Response:
    ctx = ctx_of(request)
    models = embedding_models(ctx)
    model = model if model in models else (models[0] if models else "")
    values = {"q": q, "neg": neg, "like": like if MEDIA_ID.match(like) else "", "ocr": ocr,
              "model": model, "models": models, "has_text": has_text_index(ctx)}
    if ocr.strip():
        return _ocr_results(request, ctx, ocr.strip(), page, values)
    if not (q.strip() or values["like"]):
        return ctx.render(request, "search.html", results=None, **values)
    if not models:
        return ctx.render(request, "search.html", results=None,
                          message="no embeddings yet: run 'picsift embed' first", **values)
    top = min(MAX_RESULTS, max(1, page) * RESULTS_PER_PAGE + 1)
    ranked = semantic_search(ctx, text=q, negative=neg, like=values["like"] or None,
                             model=model, top=top)
    return _grid(request, ctx, ranked, page, values)


def _grid(request: Request, ctx: WebContext, ranked: list[tuple[str, float]], page: int,
          values: dict[str, object], upload: str | None = None) -> Response:
    pages = pager(page, RESULTS_PER_PAGE, len(ranked))
    shown = ranked[pages.offset:pages.offset + pages.size]
    grid = tiles(ctx.ws(), [m for m, _ in shown], scores=dict(shown))
    return ctx.render(request, "search.html", results=grid, pages=pages, kind="semantic",
                      upload=upload, **values)


def _ocr_results(request: Request, ctx: WebContext, query: str, page: int,
                 values: dict[str, object]) -> Response:
    if not values["has_text"]:
        return ctx.render(request, "search.html", results=None,
                          message="no text read yet: run 'picsift text' first", **values)
    page = max(1, page)
    try:
        rows, more = text_search(ctx, query, (page - 1) * RESULTS_PER_PAGE, RESULTS_PER_PAGE)
    except PicsiftError as exc:  # FTS syntax the user mistyped: say so on the same page
        return ctx.render(request, "search.html", results=None, message=str(exc), **values)
    grid = tiles(ctx.ws(), [r["media_id"] for r in rows],
                 scores={r["media_id"]: r["score"] for r in rows})
    snippets = {r["media_id"]: r["snippet"] for r in rows}
    return ctx.render(request, "search.html", results=grid, snippets=snippets, kind="ocr",
                      ocr_page=page, ocr_more=more, **values)


@router.post("/search/upload", dependencies=[Depends(require_write_token)])
async def search_upload(request: Request, file: UploadFile, model: str = Form("")) -> Response:
    """Rank the corpus by similarity to an uploaded picture.

    The upload is capped (GuardMiddleware and here), decoded from a private temporary file in
    the system's temp folder (never the corpus or the workspace) and deleted at once.
    """
    from starlette.concurrency import run_in_threadpool

    ctx = ctx_of(request)
    data = await file.read(ctx.max_upload + 1)
    if len(data) > ctx.max_upload:
        raise PicsiftError(f"the picture is larger than {ctx.max_upload // (1024 * 1024)} MB")
    if not data:
        raise PicsiftError("the upload was empty")
    name = Path(file.filename or "upload").name[:120]
    return await run_in_threadpool(_search_bytes, request, ctx, data, name, model)


def _search_bytes(request: Request, ctx: WebContext, data: bytes, name: str, model: str
                  ) -> Response:
    models = embedding_models(ctx)
    if not models:
        raise PicsiftError("no embeddings yet: run 'picsift embed' first")
    model = model if model in models else models[0]
    handle, tmp = tempfile.mkstemp(prefix="picsift-upload-", suffix=".bin")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            ranked = semantic_search(ctx, image_file=Path(tmp), model=model,
                                     top=RESULTS_PER_PAGE)
        except MediaError as exc:
            raise PicsiftError(f"{name} is not a picture picsift can read: {exc.reason}") from exc
    finally:
        os.unlink(tmp)
    values = {"q": "", "neg": "", "like": "", "ocr": "", "model": model, "models": models,
              "has_text": has_text_index(ctx)}
    return _grid(request, ctx, ranked, 1, values, upload=name)
