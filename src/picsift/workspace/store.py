"""A workspace: one directory per corpus holding the catalogue, features and derived files.

Layout of ``<corpus>/.picsift/`` (or any ``--workspace`` directory)::

    catalog.sqlite   media, files, videos, errors, runs, feature sets (SQLite, WAL)
    writer.lock      held by the one process allowed to write
    features/        Parquet part-files per feature set (picsift.workspace.features)
    frames/          JPEG keyframes extracted from videos (they are media too)
    thumbs/          small JPEG previews for reports and the web page
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from picsift.errors import WorkspaceError
from picsift.workspace.lock import WriterLock
from picsift.workspace.schema import migrate

CATALOG = "catalog.sqlite"
DEFAULT_DIRNAME = ".picsift"


def resolve_workspace_dir(path: str | Path, *, create: bool, explicit: bool = False) -> Path:
    """Map what the user typed (corpus folder or workspace folder) to the workspace folder.

    ``explicit`` means the user named the workspace itself (--workspace): it is used as is.
    """
    path = Path(path).expanduser().absolute()
    if explicit or (path / CATALOG).exists() or path.name == DEFAULT_DIRNAME:
        return path
    inner = path / DEFAULT_DIRNAME
    if inner.exists() or create:
        return inner
    raise WorkspaceError(
        f"no picsift workspace at {path}: run 'picsift scan {path}' first, or pass the "
        "folder given to --workspace"
    )


class Workspace:
    """Handle on one workspace; cheap to create, opens SQLite connections on demand."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._lock = WriterLock(directory)
        self._conn: sqlite3.Connection | None = None

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, explicit: bool = False) -> Workspace:
        """Open (creating if needed) the workspace for a corpus folder or workspace folder."""
        directory = resolve_workspace_dir(path, create=create, explicit=explicit)
        if not directory.exists():
            try:
                directory.mkdir(parents=True)
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot create workspace {directory}: {exc.strerror}; "
                    "choose a writable place with --workspace"
                ) from exc
        elif not (directory / CATALOG).exists() and not create:
            raise WorkspaceError(f"{directory} is not a picsift workspace")
        ws = cls(directory)
        ws.connect()
        return ws

    def connect(self) -> sqlite3.Connection:
        """The process's connection (WAL mode, so readers are never blocked by the writer)."""
        if self._conn is None:
            try:
                conn = sqlite3.connect(self.dir / CATALOG, timeout=30.0, isolation_level=None)
            except sqlite3.Error as exc:
                raise WorkspaceError(f"cannot open catalogue in {self.dir}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            migrate(conn)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._lock.release()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.dir)!r})"

    # ------------------------------------------------------------------ paths
    def subdir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ---------------------------------------------------------------- writing
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock for the duration (re-entrant within one process)."""
        if self._lock.held:
            yield
            return
        self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic batch: everything inside is committed together or not at all."""
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def begin_run(self, command: str, params: dict[str, Any]) -> int:
        """Record a new run and return its id.

        Called while holding the writer lock, so any run still marked 'running' belongs to a
        process that died without finishing (kill -9, power loss): it is marked 'interrupted'.
        """
        with self.transaction() as conn:
            if self._lock.held:
                conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            cur = conn.execute(
                "INSERT INTO runs(command, params, started) VALUES (?, ?, ?)",
                (command, json.dumps(params, default=str, sort_keys=True), time.time()),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET finished=?, status=?, counts=? WHERE run_id=?",
                (time.time(), status, json.dumps(counts, sort_keys=True), run_id),
            )

    def record_errors(self, stage: str, records: list[dict[str, Any]]) -> None:
        """Store per-file failures of a feature extractor (records: path, kind, error)."""
        with self.transaction() as conn:
            insert_errors(conn, stage, records)

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.connect().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # ---------------------------------------------------------------- reading
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.connect().execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.connect().execute(sql, params).fetchone()
        return row[0] if row else None

    @property
    def roots(self) -> list[str]:
        """Folders this workspace has scanned, in the order first scanned."""
        return list(self.get_meta("roots", []))

    def add_roots(self, roots: list[str]) -> None:
        known = self.roots
        self.set_meta("roots", known + [r for r in roots if r not in known])

    # ----------------------------------------------------- high-level API
    def scan(self, paths: list[str | os.PathLike[str]] | None = None, **options: Any) -> Any:
        """Scan folders (default: the ones scanned before) into this workspace; see picsift.scan."""
        from picsift.scan.runner import ScanOptions, scan

        targets = [str(p) for p in paths] if paths else self.roots
        if not targets:
            raise WorkspaceError("nothing to scan: give at least one folder")
        return scan(self, targets, ScanOptions(**options))

    def table(self) -> Any:
        """One row per media with every feature computed so far, as a pandas DataFrame."""
        from picsift.export.table import media_table

        return media_table(self)

    def duplicates(self) -> Any:
        """Exact duplicates: media present at several paths, one row per path (DataFrame)."""
        from picsift.analyses.duplicates import exact_duplicates

        return exact_duplicates(self)

    def errors(self) -> Any:
        """Every file that failed, with the stage and the reason (DataFrame)."""
        from picsift.export.table import errors_table

        return errors_table(self)

    def copies(self, **options: Any) -> Any:
        """Find copies among everything scanned and cluster them; see picsift.analyses.copies.

        Keyword arguments are CopiesOptions fields (``workers``, ``algo``, ``min_inliers``...).
        Returns a CopiesResult with ``pairs`` and ``clusters`` DataFrames and a ``summary``.
        """
        from picsift.analyses.copies import CopiesOptions, run_copies

        return run_copies(self, CopiesOptions(**options))

    def info(self) -> dict[str, Any]:
        """Counts and facts summarising the workspace."""
        from picsift.export.table import workspace_info

        return workspace_info(self)


def insert_errors(conn: sqlite3.Connection, stage: str, records: list[dict[str, Any]],
                  run_id: int = 0) -> None:
    """Per-file failures (records: path, kind, error) inside the caller's transaction, so a
    batch's results and its failures are stored together or not at all."""
    now = time.time()
    conn.executemany(
        "INSERT OR REPLACE INTO errors(path, kind, reason, stage, run_id, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(r["path"], r["kind"], r["error"], stage, run_id, now) for r in records])
