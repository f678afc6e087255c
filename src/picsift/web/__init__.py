"""The local web app (`picsift serve`): a thin FastAPI layer over the Python API.

Pages are rendered on the server (Jinja2, autoescaped) with a little vanilla JS; nothing is
loaded from the network, so the app works offline. See docs/web.md.
"""

from __future__ import annotations

from picsift.web.app import create_app

__all__ = ["create_app"]
