"""kill -9 in the middle of a scan, then run it again: nothing lost, nothing twice, nothing redone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import picsift_env, run_picsift, write_noise_jpeg

TOTAL = 300


def _count_files(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # catalogue being created right now
        return None


def _scan_and_kill_midway(corpus: Path) -> int | None:
    """Start a scan, SIGKILL it (and its workers) once some but not all files are stored.

    Returns the number of files stored when it was killed, or None if it finished first.
    """
    db = corpus / ".picsift" / "catalog.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "picsift", "scan", str(corpus), "--workers", "2",
         "--no-progress", "--batch-size", "8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=picsift_env(),
        start_new_session=True,  # its own process group: the kill reaches the workers too
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            n = _count_files(db)
            if n is not None and 0 < n < TOTAL:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return _count_files(db)
            if proc.poll() is not None:
                return None
            time.sleep(0.001)
        pytest.fail("scan neither stored anything nor finished")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return None


@pytest.mark.slow
def test_killed_scan_resumes_without_redoing_work(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for i in range(TOTAL):
        # noise, so every file is a different media; 160 px so a batch takes a moment
        write_noise_jpeg(corpus / f"part{i % 3}" / f"img_{i:04d}.jpg", 160, 160, seed=i)

    stored_first = None
    for _attempt in range(4):  # a very fast machine may finish before we see it half-way
        stored_first = _scan_and_kill_midway(corpus)
        if stored_first is not None:
            break
        shutil.rmtree(corpus / ".picsift")
    assert stored_first is not None, "could not interrupt the scan half-way"
    assert 0 < stored_first < TOTAL

    db = sqlite3.connect(corpus / ".picsift" / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    first_run = db.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
    first_id = first_run["run_id"]
    assert first_run["status"] == "running" and first_run["finished"] is None  # it was killed
    first_paths = {r["path"] for r in db.execute("SELECT path FROM files WHERE run_id = ?",
                                                 (first_id,))}
    assert len(first_paths) == stored_first
    db.close()

    result = run_picsift("scan", corpus, "--workers", "2", "--no-progress", "--batch-size", "8")
    assert result.returncode == 0, result.stderr

    db = sqlite3.connect(corpus / ".picsift" / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    # Every image exactly once in files and in media.
    paths = [r["path"] for r in db.execute("SELECT path FROM files WHERE kind = 'image'")]
    expected = {str(p) for p in corpus.rglob("*.jpg")}
    assert len(paths) == TOTAL and set(paths) == expected
    assert db.execute("SELECT COUNT(*) FROM media").fetchone()[0] == TOTAL
    assert db.execute("SELECT COUNT(DISTINCT media_id) FROM files").fetchone()[0] == TOTAL
    assert db.execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 0

    # Nothing redone: rows of the killed run keep its run_id; the rerun scanned only the rest.
    kept = {r["path"] for r in db.execute("SELECT path FROM files WHERE run_id = ?", (first_id,))}
    assert kept == first_paths
    assert db.execute("SELECT COUNT(*) FROM media WHERE run_id = ?",
                      (first_id,)).fetchone()[0] == stored_first
    runs = db.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    second = runs[-1]
    assert second["status"] == "done"
    counts = json.loads(second["counts"])
    assert counts["scanned"] == TOTAL - stored_first
    assert counts["skipped"] == stored_first
    assert counts["found"] == TOTAL
    assert counts["images"] == TOTAL - stored_first
    assert db.execute("SELECT COUNT(*) FROM files WHERE run_id = ?",
                      (second["run_id"],)).fetchone()[0] == TOTAL - stored_first

    # The killed run is no longer shown as running once a later run took the workspace.
    killed = db.execute("SELECT status, finished FROM runs WHERE run_id = ?", (first_id,)).fetchone()
    assert killed["status"] == "interrupted"
    db.close()

    # No temporary files left anywhere, and the lock is free again.
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", "-journal"))]
    assert leftovers == []
    import picsift

    ws = picsift.open(corpus)
    with ws.writing():
        pass
    ws.close()

    # A third run has nothing to do.
    again = run_picsift("scan", corpus, "--workers", "1", "--no-progress")
    assert again.returncode == 0, again.stderr
    db = sqlite3.connect(corpus / ".picsift" / "catalog.sqlite")
    counts = json.loads(db.execute("SELECT counts FROM runs ORDER BY run_id DESC").fetchone()[0])
    db.close()
    assert counts["scanned"] == 0 and counts["skipped"] == TOTAL
