"""`picsift serve`: the local web app over one workspace (docs/web.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from picsift.cli.common import WorkspaceArg, console, err_console
from picsift.errors import PicsiftError

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_command(
    workspace: Path = WorkspaceArg,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (another than 127.0.0.1 needs --allow-remote)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a --host other than this machine (anyone on the network with the URL's token can see the corpus)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    sort: Optional[list[Path]] = typer.Option(None, "--sort", help="Results CSV of a 'picsift sort' to review (repeatable; also addable from the page)."),
) -> None:
    """Browse the workspace in a local web page: overview, copies, search, clusters, review."""
    try:
        import uvicorn

        from picsift.web import create_app
        from picsift.web.security import new_token
    except ImportError as exc:
        raise PicsiftError(f"the web app needs {exc.name}: pip install fastapi uvicorn jinja2 "
                           "python-multipart (the 'web' extra)") from exc

    local = host in LOCAL_HOSTS
    if not local and not allow_remote:
        raise PicsiftError(f"--host {host} would let other machines see the corpus: add "
                           "--allow-remote if that is what you want")
    token = new_token()
    # a DNS-rebinding page reaches 127.0.0.1 under its own name: accept only local names
    # (Starlette's host check cannot parse "[::1]:port", so IPv6 relies on the token alone)
    app = create_app(workspace, token, allowed_hosts=(
        ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else None))
    for csv in sort or []:
        from picsift.web.review_data import register_sort

        try:
            data = csv.read_bytes()
        except OSError as exc:
            raise PicsiftError(f"cannot read {csv}: {exc.strerror}") from exc
        sort_id = register_sort(app.state.ctx, csv.name, data)
        console.print(f"sort results {csv} → review page /review/sort/{sort_id}")
    shown = host if ":" not in host else f"[{host}]"
    url = f"http://{shown}:{port}/?token={token}"
    if not local:
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach "
                          "this machine and has the URL below can see every image of the "
                          "workspace (traffic is not encrypted)")
    console.print(f"workspace: {app.state.ctx.workspace_dir}")
    console.print(f"open: {url}", highlight=False)
    console.print("Ctrl-C stops the server", style="dim")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
