"""One writer per workspace: an OS file lock that dies with its process (kill -9 included)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from picsift.errors import WorkspaceBusyError


class WriterLock:
    """Exclusive, non-blocking lock on ``<workspace>/writer.lock`` holding the owner's pid.

    flock() locks are released by the kernel when the process dies, so a crashed run never
    leaves a stale lock behind; the pid in the file only serves the error message.
    """

    def __init__(self, workspace: Path) -> None:
        self.path = workspace / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise WorkspaceBusyError(str(self.path.parent), pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
