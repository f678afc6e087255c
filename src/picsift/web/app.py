"""The FastAPI app factory: one app per workspace and per run token."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse, Response

from picsift.errors import PicsiftError
from picsift.web.context import HERE, MAX_UPLOAD, PAGE_SIZE, WebContext
from picsift.web.security import GuardMiddleware
from picsift.workspace.store import CATALOG, resolve_workspace_dir

log = logging.getLogger(__name__)


def create_app(workspace_dir: str | Path, token: str, *, page_size: int = PAGE_SIZE,
               max_upload: int = MAX_UPLOAD, allowed_hosts: list[str] | None = None,
               protect_reads: bool = True) -> FastAPI:
    """The web app of one workspace; every page needs ``token`` (see picsift.web.security).

    ``allowed_hosts`` (e.g. ["127.0.0.1", "localhost"]) rejects other Host headers, which
    stops DNS-rebinding pages from reading a local server; None accepts any host.
    """
    from picsift.errors import WorkspaceError
    from picsift.web.routes import annotate, clusters, copies, media, overview, review, search

    directory = resolve_workspace_dir(workspace_dir, create=False)
    if not (directory / CATALOG).exists():
        raise WorkspaceError(f"{directory} is not a picsift workspace: run 'picsift scan' first")
    if not token:
        raise ValueError("the web app needs a token")
    ctx = WebContext(directory, token, page_size=page_size, max_upload=max_upload)
    ctx.ws()  # fail now (newer schema, unreadable catalogue), not on the first page

    app = FastAPI(title="picsift", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (overview, copies, search, clusters, media, review, annotate):
        app.include_router(module.router)

    @app.exception_handler(PicsiftError)
    async def _picsift_error(request: Request, exc: PicsiftError) -> Response:
        return _error_page(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors())
        return _error_page(request, 422, f"invalid request ({fields or 'parameters'})")

    # innermost first: host check, then the guard (token, headers, body cap) outside it
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"])
    app.add_middleware(GuardMiddleware, token=token, max_body=max_upload + 64 * 1024,
                       protect_reads=protect_reads)
    return app


def _error_page(request: Request, status: int, message: str) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "")
    if request.url.path.startswith("/api/") or not wants_html:
        return PlainTextResponse(message, status_code=status)
    ctx: WebContext = request.app.state.ctx
    return ctx.render(request, "error.html", status_code=status, status=status, message=message)
