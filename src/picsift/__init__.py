"""picsift: turn a pile of images and videos into data, offline.

>>> import picsift
>>> ws = picsift.open("corpus/")        # doctest: +SKIP
>>> ws.scan()                            # doctest: +SKIP
>>> ws.table()                           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from picsift.errors import MediaError, PicsiftError, WorkspaceBusyError, WorkspaceError
from picsift.workspace.store import Workspace

__version__ = "0.1.0"


def open(path: str | Path, *, workspace: str | Path | None = None, create: bool = True) -> Workspace:  # noqa: A001
    """Open the workspace of a corpus folder (``<path>/.picsift``) or an explicit workspace.

    ``ws.scan()`` with no argument then scans ``path``.
    """
    if workspace is not None:
        ws = Workspace.open(workspace, create=create, explicit=True)
    else:
        ws = Workspace.open(path, create=create)
    corpus = Path(path).expanduser().absolute()
    if corpus.is_dir() and corpus != ws.dir and not ws.roots:
        ws.add_roots([str(corpus)])
    return ws


__all__ = ["MediaError", "PicsiftError", "Workspace", "WorkspaceBusyError", "WorkspaceError",
           "__version__", "open"]
