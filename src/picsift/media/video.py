"""Turn a video into keyframes: one at each scene change, and at most ``max_interval`` apart.

Decodes with PyAV (FFmpeg bundled in the wheel). Every frame is compared with the previous
one on a 64x64 greyscale thumbnail (mean absolute difference, plus the change of the luma
histogram, which catches cuts between scenes of equal brightness). A frame whose score
passes ``scene_threshold`` starts a new scene; within a scene a frame is also kept every
``max_interval`` seconds, so slow pans and static talks are still covered. ``min_interval``
stops a flash or a dissolve from producing a burst of keyframes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from picsift.errors import MediaError

_THUMB = 64


@dataclass(frozen=True)
class KeyframeOptions:
    """Scene-change sensitivity (0-1, lower finds more cuts) and spacing limits in seconds."""

    scene_threshold: float = 0.3
    max_interval: float = 5.0
    min_interval: float = 0.5
    max_frames: int = 10_000


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None
    fps: float | None
    width: int
    height: int
    codec: str


@dataclass
class Keyframe:
    index: int
    time: float
    reason: str  # 'start', 'scene' or 'interval'
    score: float
    image: Image.Image


def scene_score(previous: np.ndarray, current: np.ndarray) -> float:
    """0 for identical thumbnails, about 0.3-1 for a cut between unrelated shots."""
    mad = float(np.mean(np.abs(current.astype(np.int16) - previous.astype(np.int16)))) / 255.0
    h1 = np.bincount(previous.ravel() >> 3, minlength=32) / previous.size
    h2 = np.bincount(current.ravel() >> 3, minlength=32) / current.size
    hist = float(np.abs(h1 - h2).sum()) / 2.0
    return max(mad * 2.0, hist)


def open_video(path: str | Path):  # type: ignore[no-untyped-def]
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise MediaError(f"not a readable video: {_short(exc)}", kind="corrupt") from exc
    if not container.streams.video:
        container.close()
        raise MediaError("file has no video stream", kind="not_video")
    return container


def video_info(container) -> VideoInfo:  # type: ignore[no-untyped-def]
    stream = container.streams.video[0]
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        duration=duration,
        fps=float(rate) if rate else None,
        width=int(stream.codec_context.width or 0),
        height=int(stream.codec_context.height or 0),
        codec=str(stream.codec_context.name),
    )


def iter_keyframes(path: str | Path, options: KeyframeOptions | None = None) -> Iterator[Keyframe]:
    """Yield keyframes in time order; raises MediaError if the video cannot be decoded at all."""
    options = options or KeyframeOptions()
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        previous: np.ndarray | None = None
        last_kept = -1e9
        kept = 0
        decoded = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded += 1
                t = float(frame.time) if frame.time is not None else index / 25.0
                thumb = frame.to_ndarray(width=_THUMB, height=_THUMB, format="gray")
                reason = None
                score = 0.0
                if previous is None:
                    reason = "start"
                else:
                    score = scene_score(previous, thumb)
                    since = t - last_kept
                    if score >= options.scene_threshold and since >= options.min_interval:
                        reason = "scene"
                    elif options.max_interval > 0 and since >= options.max_interval:
                        reason = "interval"
                previous = thumb
                if reason is not None:
                    last_kept = t
                    kept += 1
                    yield Keyframe(index, round(t, 4), reason, round(score, 4), frame.to_image())
                    if kept >= options.max_frames:
                        break
        except MediaError:
            raise
        except Exception as exc:
            if decoded == 0:
                raise MediaError(f"video could not be decoded: {_short(exc)}", kind="corrupt") from exc
            # A damaged tail: keep the keyframes found so far, like a truncated image.
        if decoded == 0:
            raise MediaError("video has no decodable frames", kind="corrupt")
    finally:
        container.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:200]
