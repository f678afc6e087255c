"""Derived tables cached per workspace state, so a page on 100k images is not a full rebuild.

The state key changes whenever anything a page could show changes: a run starts or finishes
(scan, text, faces), a feature set is registered or replaced (copies, clusters), a part is
added to one (embed appends parts: the set's folder mtime moves), or media/files/errors rows
change. Computing the key costs a handful of indexed SQLite look-ups and a few stat calls.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATE_SQL = """
SELECT (SELECT IFNULL(MAX(run_id), 0) FROM runs),
       (SELECT IFNULL(MAX(finished), 0) FROM runs),
       (SELECT IFNULL(MAX(created), 0) FROM feature_sets),
       (SELECT COUNT(*) FROM feature_sets),
       (SELECT IFNULL(MAX(rowid), 0) FROM media),
       (SELECT IFNULL(MAX(rowid), 0) FROM files),
       (SELECT COUNT(*) FROM files),
       (SELECT COUNT(*) FROM errors)
"""


def state_key(ws: Workspace) -> str:
    """A short hash naming the workspace's current state (see the module docstring)."""
    row = tuple(ws.connect().execute(_STATE_SQL).fetchone())
    mtimes: list[int] = []
    features = ws.dir / "features"
    try:
        for name in os.scandir(features):
            if name.is_dir():
                for params in os.scandir(name.path):
                    if params.is_dir():
                        mtimes.append(params.stat().st_mtime_ns)
    except OSError:
        pass
    blob = repr((row, sorted(mtimes))).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StateCache:
    """Memoise named builders per state key; one build at a time per name (a lock each)."""

    def __init__(self, min_interval: float = 1.0) -> None:
        self._values: dict[str, tuple[str, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._key: tuple[float, str] | None = None
        self._min_interval = min_interval

    def key(self, ws: Workspace) -> str:
        """The state key, recomputed at most every ``min_interval`` seconds (pages that use
        several cached tables in one request see one consistent state)."""
        now = time.monotonic()
        with self._guard:
            if self._key is not None and now - self._key[0] < self._min_interval:
                return self._key[1]
        key = state_key(ws)
        with self._guard:
            self._key = (now, key)
        return key

    def get(self, ws: Workspace, name: str, build: Callable[[], T]) -> T:
        """The value of ``build()`` for the current state, built once per state."""
        key = self.key(ws)
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
            hit = self._values.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]  # type: ignore[no-any-return]
        with lock:
            hit = self._values.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]  # type: ignore[no-any-return]
            started = time.monotonic()
            value = build()
            log.debug("built %s in %.2f s (state %s)", name, time.monotonic() - started, key)
            with self._guard:
                self._values[name] = (key, value)
            return value

    def clear(self) -> None:
        with self._guard:
            self._values.clear()
            self._key = None
