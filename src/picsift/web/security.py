"""The web app's security model (docs/web.md): a per-run token, ids not paths, bounded bodies.

* Every page needs the token printed by `picsift serve` (``?token=`` once; the app then keeps
  it in an HttpOnly, SameSite=Strict cookie), so other users of a shared machine cannot
  browse the corpus through 127.0.0.1.
* Write actions need the token in the ``X-Picsift-Token`` header or a ``token`` form field:
  the cookie alone is not enough, so a page on another site cannot make the browser write.
* Media are addressed by their 64-hex content hash only; nothing takes a path.
* Request bodies (uploads) are capped before they are parsed; uploads stay in memory or in
  the system's temporary folder and are never written into the corpus.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "picsift_token"
TOKEN_HEADER = "x-picsift-token"
MEDIA_ID = re.compile(r"^[0-9a-f]{64}$")
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")

CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(given: str | None, token: str) -> bool:
    return bool(given) and secrets.compare_digest(str(given).encode(), token.encode())


def check_media_id(media_id: str) -> str:
    """A media id or a 404: ids are the only way to name a picture, never a path."""
    if not MEDIA_ID.match(media_id or ""):
        raise HTTPException(404, "no such media")
    return media_id


def check_slug(value: str, what: str = "name") -> str:
    """Coder names, sort ids: letters, digits, '_', '-', '.', no path separators."""
    if not SLUG.match(value or "") or ".." in value:
        raise HTTPException(400, f"invalid {what}: use letters, digits, '_', '-' and '.'")
    return value


async def require_write_token(request: Request) -> None:
    """FastAPI dependency of every write endpoint: header or form field, else 403."""
    token: str = request.app.state.ctx.token
    if same_token(request.headers.get(TOKEN_HEADER), token):
        return
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        if same_token(str(form.get("token") or ""), token):
            return
    raise HTTPException(403, "this action needs the token printed by 'picsift serve'")


class GuardMiddleware:
    """Pure ASGI middleware: token on every page, security headers, body size cap."""

    def __init__(self, app: ASGIApp, token: str, max_body: int, protect_reads: bool = True) -> None:
        self.app, self.token, self.max_body = app, token, max_body
        self.protect_reads = protect_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query_token = request.query_params.get("token")
        valid_query = same_token(query_token, self.token)
        allowed = (not self.protect_reads or scope["path"].startswith("/static/")
                   or valid_query
                   or same_token(request.cookies.get(TOKEN_COOKIE), self.token)
                   or same_token(request.headers.get(TOKEN_HEADER), self.token))
        if not allowed:
            await _plain(send, 403, "picsift: open the address printed by 'picsift serve' "
                                    "(it ends with ?token=...).\n")
            return
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _plain(send, 413, f"picsift: request too large (limit {self.max_body} bytes)\n")
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, f"request too large (limit {self.max_body} bytes)")
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                extra = [(b"content-security-policy", CSP.encode()),
                         (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY"),
                         (b"cross-origin-resource-policy", b"same-origin")]
                headers += [h for h in extra if h[0] not in names]
                if valid_query and not same_token(request.cookies.get(TOKEN_COOKIE), self.token):
                    headers.append((b"set-cookie", (f"{TOKEN_COOKIE}={self.token}; Path=/; "
                                                    "HttpOnly; SameSite=Strict").encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
