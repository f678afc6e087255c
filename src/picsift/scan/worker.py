"""The per-file part of a scan, run in worker processes: hash, probe, extract keyframes.

Returns plain dicts (cheap to pickle) that the main process writes to the catalogue. Never
raises for a bad file: every failure becomes an ``error`` record with a one-line reason.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from picsift.errors import MediaError
from picsift.media.decode import DecodeOptions, probe_image
from picsift.media.video import KeyframeOptions, iter_keyframes, open_video, video_info
from picsift.scan.discover import Candidate

_CHUNK = 1 << 20
FRAME_JPEG_QUALITY = 92


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, picklable."""

    decode: DecodeOptions
    keyframes: KeyframeOptions
    frames_dir: str


def file_sha256(path: str) -> str:
    """Content hash, streamed so huge files never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan_batch(config: WorkerConfig, batch: list[Candidate]) -> list[dict[str, Any]]:
    """Scan a batch of candidates; one or more records per candidate."""
    records: list[dict[str, Any]] = []
    for candidate in batch:
        try:
            if candidate.kind == "video":
                records.append(_scan_video(config, candidate))
            else:
                records.append(_scan_image(config, candidate))
        except MediaError as exc:
            records.append(error_record(candidate, exc.kind, exc.reason, "scan"))
        except PermissionError:
            records.append(error_record(candidate, "io", "permission denied: cannot read file", "scan"))
        except OSError as exc:
            records.append(error_record(candidate, "io", f"cannot read file: {exc.strerror or exc}", "scan"))
        except Exception as exc:  # an unexpected decoder failure is still a per-file error
            records.append(error_record(candidate, "corrupt", f"{exc.__class__.__name__}: {exc}"[:300], "scan"))
    return records


def error_record(candidate: Candidate, kind: str, reason: str, stage: str) -> dict[str, Any]:
    return {
        "t": "error", "path": candidate.path, "kind": kind, "reason": reason, "stage": stage,
        "size": candidate.size, "mtime_ns": candidate.mtime_ns,
    }


def _file_fields(candidate: Candidate) -> dict[str, Any]:
    return {
        "path": candidate.path, "root": candidate.root, "relpath": candidate.relpath,
        "size": candidate.size, "mtime_ns": candidate.mtime_ns,
    }


def _scan_image(config: WorkerConfig, candidate: Candidate) -> dict[str, Any]:
    probe = probe_image(candidate.path, config.decode)
    media_id = file_sha256(candidate.path)
    exif = probe.exif
    return {
        "t": "image",
        **_file_fields(candidate),
        "media": {
            "media_id": media_id, "kind": "image", "format": probe.format,
            "width": probe.width, "height": probe.height, "mode": probe.mode,
            "n_frames": probe.n_frames, "file_size": candidate.size,
            "truncated": int(probe.truncated),
            "exif_datetime": exif.datetime, "exif_make": exif.make, "exif_model": exif.model,
            "exif_orientation": exif.orientation, "gps_lat": exif.gps_lat, "gps_lon": exif.gps_lon,
        },
    }


def _scan_video(config: WorkerConfig, candidate: Candidate) -> dict[str, Any]:
    container = open_video(candidate.path)
    try:
        info = video_info(container)
    finally:
        container.close()
    video_id = file_sha256(candidate.path)
    out_dir = Path(config.frames_dir) / video_id[:2] / video_id
    out_dir.mkdir(parents=True, exist_ok=True)
    frames: list[dict[str, Any]] = []
    for keyframe in iter_keyframes(candidate.path, config.keyframes):
        buffer = io.BytesIO()
        keyframe.image.save(buffer, "JPEG", quality=FRAME_JPEG_QUALITY)
        data = buffer.getvalue()
        frame_path = out_dir / f"frame-{keyframe.index:07d}.jpg"
        _write_atomic(frame_path, data)
        stat = frame_path.stat()
        frames.append({
            "media_id": hashlib.sha256(data).hexdigest(), "path": str(frame_path),
            "time": keyframe.time, "index": keyframe.index, "reason": keyframe.reason,
            "width": keyframe.image.width, "height": keyframe.image.height,
            "size": len(data), "mtime_ns": stat.st_mtime_ns,
        })
    return {
        "t": "video", **_file_fields(candidate), "video_id": video_id,
        "info": asdict(info), "frames": frames,
        "params": asdict(config.keyframes),
    }


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
