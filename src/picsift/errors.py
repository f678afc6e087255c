"""The PicsiftError family: messages a researcher can act on, never a bare traceback."""

from __future__ import annotations


class PicsiftError(Exception):
    """Base class of every error picsift raises on purpose."""


class WorkspaceError(PicsiftError):
    """The workspace is missing, unwritable, from a newer picsift, or otherwise unusable."""


class WorkspaceBusyError(WorkspaceError):
    """Another process holds the workspace's writer lock."""

    def __init__(self, path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"workspace is busy ({who}): {path} is being written by another picsift run; "
            "wait for it to finish or stop it, then run again"
        )
        self.pid = pid


class MediaError(PicsiftError):
    """One file could not be read as an image or video; recorded per file, never fatal to a run."""

    def __init__(self, reason: str, *, kind: str = "decode") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
