"""Scan folders into a workspace: discover, skip what is done, map workers, store per batch.

Crash-safety: each batch's records are committed in one SQLite transaction, so a kill -9
loses at most the batches in flight; a rerun skips every file already stored (same path,
size and modification time) or already failed, and scans only the rest.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from picsift.engine import ProgressReporter, make_engine
from picsift.media.decode import DEFAULT_MAX_PIXELS, DecodeOptions
from picsift.media.video import KeyframeOptions
from picsift.scan.discover import Candidate, DiscoveryProblem, discover
from picsift.scan.worker import WorkerConfig, error_record, scan_batch
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)


@dataclass
class ScanOptions:
    """Settings of a scan (CLI flags map one to one)."""

    workers: int | None = None
    batch_size: int = 32
    engine: str = "local"           # local | ray (docs/scale.md)
    address: str | None = None      # Ray cluster: auto | ray://host:port | local
    max_pixels: int = DEFAULT_MAX_PIXELS
    videos: bool = True
    scene_threshold: float = 0.3
    max_interval: float = 5.0
    min_interval: float = 0.5
    retry_errors: bool = False
    progress: bool = False


@dataclass
class ScanSummary:
    """What a scan did; printed at the end of a CLI run."""

    run_id: int
    found: int = 0
    skipped: int = 0
    scanned: int = 0
    images: int = 0
    videos: int = 0
    frames: int = 0
    new_media: int = 0
    errors: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _known_state(ws: Workspace, retry_errors: bool, keyframes: KeyframeOptions
                 ) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of files already stored or already failed.

    Videos whose keyframes were extracted with other settings are left out (re-extracted).
    """
    current = json.dumps(asdict(keyframes))
    state = {
        r["path"]: (r["size"], r["mtime_ns"])
        for r in ws.query(
            "SELECT f.path, f.size, f.mtime_ns, f.kind, v.params FROM files f LEFT JOIN videos v "
            "ON f.kind = 'video' AND v.video_id = f.media_id WHERE f.kind != 'frame'")
        if r["kind"] != "video" or r["params"] is None or _same_params(r["params"], current)
    }
    if not retry_errors:
        for r in ws.query("SELECT path, size, mtime_ns FROM errors WHERE stage = 'scan'"):
            state.setdefault(r["path"], (r["size"], r["mtime_ns"]))
    return state


def _same_params(stored: str, current: str) -> bool:
    try:
        return json.loads(stored) == json.loads(current)
    except ValueError:
        return False


def _batches(candidates: list[Candidate], batch_size: int) -> list[list[Candidate]]:
    """Images in batches; each video alone (one video is already a lot of work)."""
    images = [c for c in candidates if c.kind == "image"]
    videos = [[c] for c in candidates if c.kind == "video"]
    return videos + [images[i : i + batch_size] for i in range(0, len(images), batch_size)]


def scan(ws: Workspace, roots: list[str], options: ScanOptions) -> ScanSummary:
    """Scan ``roots`` into ``ws``; see the module docstring for the guarantees."""
    with ws.writing():
        started = time.monotonic()
        run_id = ws.begin_run("scan", {"roots": roots, **asdict(options)})
        summary = ScanSummary(run_id=run_id)
        try:
            _scan(ws, roots, options, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.seconds = round(time.monotonic() - started, 3)
            status = "interrupted" if summary.interrupted else "done"
            ws.finish_run(run_id, status, summary.as_dict())
        return summary


def _scan(ws: Workspace, roots: list[str], options: ScanOptions, summary: ScanSummary) -> None:
    from pathlib import Path

    abs_roots = [str(Path(r).expanduser().absolute()) for r in roots]
    ws.add_roots(abs_roots)
    keyframes = KeyframeOptions(options.scene_threshold, options.max_interval, options.min_interval)
    known = _known_state(ws, options.retry_errors, keyframes)
    todo: list[Candidate] = []
    problems: list[DiscoveryProblem] = []
    for item in discover(abs_roots, videos=options.videos):
        if isinstance(item, DiscoveryProblem):
            problems.append(item)
            continue
        summary.found += 1
        if known.get(item.path) == (item.size, item.mtime_ns):
            summary.skipped += 1
        else:
            todo.append(item)
    _store_discovery_problems(ws, abs_roots, problems, summary)

    config = WorkerConfig(
        decode=DecodeOptions(max_pixels=options.max_pixels),
        keyframes=keyframes,
        frames_dir=str(ws.subdir("frames")),
    )
    writer = _BatchWriter(ws, summary)
    engine = make_engine(options.engine, options.address, options.workers)
    task = functools.partial(scan_batch, config)
    with ProgressReporter("scan", len(todo), enabled=options.progress) as progress:
        engine.map(task, _batches(todo, options.batch_size), writer.store, writer.fail, progress)


def _store_discovery_problems(ws: Workspace, roots: list[str], problems: list[DiscoveryProblem],
                              summary: ScanSummary) -> None:
    now = time.time()
    with ws.transaction() as conn:
        # Folder problems under these roots that are gone (folder fixed) are cleared.
        for root in roots:
            conn.execute(
                "DELETE FROM errors WHERE stage = 'discover' AND (path = ? OR path LIKE ?)",
                (root, root.rstrip("/") + "/%"),
            )
        for p in problems:
            conn.execute(
                "INSERT OR REPLACE INTO errors(path, kind, reason, stage, run_id, at) "
                "VALUES (?, ?, ?, 'discover', ?, ?)",
                (p.path, p.kind, p.reason, summary.run_id, now),
            )
            summary.errors += 1
            summary.error_kinds[p.kind] = summary.error_kinds.get(p.kind, 0) + 1


class _BatchWriter:
    """Stores each finished batch in one transaction (runs in the main process only)."""

    def __init__(self, ws: Workspace, summary: ScanSummary) -> None:
        self.ws = ws
        self.summary = summary

    def fail(self, batch: list[Candidate], exc: BaseException) -> None:
        reason = f"{exc.__class__.__name__}: {exc}"[:300]
        self.store(batch, [error_record(c, "crash", reason, "scan") for c in batch])

    def store(self, batch: list[Candidate], records: list[dict[str, Any]]) -> None:
        run_id = self.summary.run_id
        with self.ws.transaction() as conn:
            for rec in records:
                self.summary.scanned += 1
                if rec["t"] == "error":
                    self._error(conn, rec, run_id)
                elif rec["t"] == "image":
                    self._image(conn, rec, run_id)
                else:
                    self._video(conn, rec, run_id)

    def _error(self, conn: Any, rec: dict[str, Any], run_id: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO errors(path, kind, reason, stage, size, mtime_ns, run_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["path"], rec["kind"], rec["reason"], rec["stage"], rec["size"], rec["mtime_ns"],
             run_id, time.time()),
        )
        # A file that used to decode and now fails is no longer a valid file of the corpus.
        conn.execute("DELETE FROM files WHERE path = ?", (rec["path"],))
        self.summary.errors += 1
        self.summary.error_kinds[rec["kind"]] = self.summary.error_kinds.get(rec["kind"], 0) + 1

    def _insert_media(self, conn: Any, media: dict[str, Any], run_id: int) -> None:
        columns = list(media) + ["run_id"]
        cur = conn.execute(
            f"INSERT OR IGNORE INTO media({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            (*media.values(), run_id),
        )
        self.summary.new_media += cur.rowcount

    def _insert_file(self, conn: Any, rec: dict[str, Any], media_id: str, kind: str,
                     run_id: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO files(path, media_id, kind, root, relpath, size, mtime_ns, "
            "run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["path"], media_id, kind, rec.get("root"), rec.get("relpath"), rec["size"],
             rec["mtime_ns"], run_id),
        )
        conn.execute("DELETE FROM errors WHERE path = ?", (rec["path"],))

    def _image(self, conn: Any, rec: dict[str, Any], run_id: int) -> None:
        self._insert_media(conn, rec["media"], run_id)
        self._insert_file(conn, rec, rec["media"]["media_id"], "image", run_id)
        self.summary.images += 1

    def _video(self, conn: Any, rec: dict[str, Any], run_id: int) -> None:
        info = rec["info"]
        conn.execute(
            "INSERT OR REPLACE INTO videos(video_id, duration, fps, width, height, codec, "
            "n_keyframes, params, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["video_id"], info["duration"], info["fps"], info["width"], info["height"],
             info["codec"], len(rec["frames"]), json.dumps(rec["params"]), run_id),
        )
        self._insert_file(conn, rec, rec["video_id"], "video", run_id)
        conn.execute("DELETE FROM keyframes WHERE video_id = ?", (rec["video_id"],))
        for frame in rec["frames"]:
            conn.execute(
                "INSERT OR REPLACE INTO keyframes(video_id, frame_index, frame_time, reason, "
                "media_id, run_id) VALUES (?, ?, ?, ?, ?, ?)",
                (rec["video_id"], frame["index"], frame["time"], frame["reason"],
                 frame["media_id"], run_id))
            self._insert_media(conn, {
                "media_id": frame["media_id"], "kind": "frame", "format": "JPEG",
                "width": frame["width"], "height": frame["height"], "mode": "RGB",
                "n_frames": 1, "file_size": frame["size"], "video_id": rec["video_id"],
                "frame_time": frame["time"], "frame_index": frame["index"],
            }, run_id)
            self._insert_file(conn, {**frame, "root": None, "relpath": None},
                              frame["media_id"], "frame", run_id)
        self.summary.videos += 1
        self.summary.frames += len(rec["frames"])
