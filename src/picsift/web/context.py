"""What every request handler needs: the workspace (one SQLite connection per thread), the
token, the state cache and the templates."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from picsift.web.cache import StateCache
from picsift.workspace.store import Workspace

HERE = Path(__file__).parent
PAGE_SIZE = 100
MAX_UPLOAD = 20 * 1024 * 1024


@dataclass
class WebContext:
    """Shared, read-mostly state of one running app."""

    workspace_dir: Path
    token: str
    page_size: int = PAGE_SIZE
    max_upload: int = MAX_UPLOAD
    cache: StateCache = field(default_factory=StateCache)
    _local: threading.local = field(default_factory=threading.local)
    templates: Environment = field(init=False)

    def __post_init__(self) -> None:
        # autoescape everything: names, OCR text and metadata come from files we do not trust
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(default=True,
                                                                  default_for_string=True),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["basename"] = lambda p: Path(str(p)).name if p else ""
        self.templates.filters["human_bytes"] = human_bytes
        self.templates.filters["fmt"] = fmt

    def ws(self) -> Workspace:
        """This thread's handle (sqlite3 connections must stay in the thread that made them)."""
        ws = getattr(self._local, "ws", None)
        if ws is None:
            ws = Workspace(self.workspace_dir)
            ws.connect()
            self._local.ws = ws
        return ws

    def writable_dir(self, name: str) -> Path:
        """A folder of the workspace the app may write into (annotations, web caches)."""
        path = self.workspace_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def render(self, request: Request, template: str, status_code: int = 200,
               **values: Any) -> HTMLResponse:
        page = self.templates.get_template(template).render(
            request=request, token=self.token, nav=request.url.path, **values)
        return HTMLResponse(page, status_code=status_code)


def ctx_of(request: Request) -> WebContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def human_bytes(value: Any) -> str:
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers short, NaN/None empty, everything else as text (escaped by the template)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)
