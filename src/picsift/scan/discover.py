"""Find image and video files under folders, recording every folder or name that cannot be used.

Walks with os.scandir (fast, one stat per entry), follows symbolic links but never the same
directory twice (symlink loops are reported, not followed forever), skips picsift's own
workspace folders, and never raises for one bad entry.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .gif .bmp .dib .tif .tiff .heic .heif .avif "
    ".ppm .pgm .pbm .pnm".split()
)
VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .webm .mkv .avi .mpg .mpeg .wmv .flv .3gp .ts".split())
SKIP_DIRS = frozenset({".picsift", ".git", "__pycache__"})


@dataclass(frozen=True)
class Candidate:
    """A file to scan, with the stat facts used to decide whether it changed since last time."""

    path: str
    root: str
    relpath: str
    kind: str  # 'image' or 'video'
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DiscoveryProblem:
    """A folder or entry that could not be used, with a one-line reason."""

    path: str
    kind: str
    reason: str


def media_kind(name: str) -> str | None:
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def discover(
    roots: list[str], *, videos: bool = True
) -> Iterator[Candidate | DiscoveryProblem]:
    """Yield candidates and problems under every root (a root may also be a single file)."""
    visited: set[tuple[int, int]] = set()
    for root in roots:
        root_path = os.path.abspath(os.path.expanduser(root))
        try:
            st = os.stat(root_path)
        except OSError as exc:
            yield DiscoveryProblem(root_path, "missing", f"cannot access: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root_path, root_path, visited, videos)
        else:
            base = os.path.dirname(root_path)
            yield from _entry_file(root_path, base, st, videos, explicit=True)


def _walk(
    directory: str, root: str, visited: set[tuple[int, int]], videos: bool
) -> Iterator[Candidate | DiscoveryProblem]:
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
        except OSError as exc:
            yield DiscoveryProblem(current, "unreadable_folder", f"cannot access folder: {exc.strerror}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            yield DiscoveryProblem(
                current, "symlink_loop",
                "folder already visited through another path (symbolic link loop or alias); not scanned twice",
            )
            continue
        visited.add(key)
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield DiscoveryProblem(
                current, "unreadable_folder", f"cannot list folder: {exc.strerror or exc}"
            )
            continue
        subdirs: list[str] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name not in SKIP_DIRS:
                    subdirs.append(entry.path)
                continue
            if media_kind(entry.name) is None:
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                reason = (
                    "broken symbolic link" if entry.is_symlink() else f"cannot stat: {exc.strerror}"
                )
                yield DiscoveryProblem(entry.path, "io", reason)
                continue
            yield from _entry_file(entry.path, root, st, videos, explicit=False)
        stack.extend(reversed(subdirs))


def _entry_file(
    path: str, root: str, st: os.stat_result, videos: bool, *, explicit: bool
) -> Iterator[Candidate | DiscoveryProblem]:
    kind = media_kind(path)
    if kind is None:
        if explicit:
            yield DiscoveryProblem(path, "unsupported", "not an image or video file extension")
        return
    if kind == "video" and not videos:
        return
    if not stat.S_ISREG(st.st_mode):
        yield DiscoveryProblem(path, "io", "not a regular file")
        return
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        yield DiscoveryProblem(
            safe_path(path), "bad_name", "file name is not valid UTF-8; rename the file to scan it"
        )
        return
    relpath = os.path.relpath(path, root)
    yield Candidate(path, root, Path(relpath).as_posix(), kind, st.st_size, st.st_mtime_ns)


def safe_path(path: str) -> str:
    """A printable, storable form of a path whose name is not valid UTF-8."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
