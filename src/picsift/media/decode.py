"""Decode any image file to an upright RGB picture, or say clearly why it cannot be done.

Every analysis gets pixels from here, so orientation, colour modes, size limits and broken
files are handled once: EXIF orientation applied; palette, alpha, CMYK, 16-bit, float and
greyscale brought to 8-bit RGB; animated files give their first frame (or all of them);
decompression bombs are refused before any pixel is decoded; truncated files are decoded
as far as possible and flagged. JPEGs are decoded at reduced scale (libjpeg DCT scaling via
Pillow's ``draft``) when the caller only needs a small picture, which is 2-3x faster.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from picsift.errors import MediaError
from picsift.media.exif import ExifSummary, read_exif
from picsift.media.sniff import describe_non_image

try:  # HEIC/HEIF (and AVIF on older Pillow) through libheif, when the wheel is there
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - optional plugin
    pillow_heif = None

# picsift applies its own, configurable pixel limit (DecodeOptions.max_pixels) right after
# reading the header, so Pillow's fixed global guard is switched off to let users raise it.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own default bomb limit (~ 13,000 x 13,000)
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: pixel limit (decompression-bomb guard) and whether to accept truncation."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_truncated: bool = True


@dataclass
class ImageProbe:
    """What a scan records about one image file, after a real (reduced) decode proved it readable."""

    format: str
    width: int
    height: int
    mode: str
    n_frames: int
    truncated: bool
    exif: ExifSummary = field(default_factory=ExifSummary)


def _open(path: Path, options: DecodeOptions) -> Image.Image:
    """Open the header only, refusing non-images and oversized images with a clear reason."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}", kind="io") from exc
    if size == 0:
        raise MediaError("empty file (0 bytes)", kind="empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(path)
    except UnidentifiedImageError as exc:
        reason = describe_non_image(path)
        kind = "corrupt" if reason.startswith("corrupt") else "not_image"
        raise MediaError(reason, kind=kind) from exc
    except PermissionError as exc:
        raise MediaError("permission denied: cannot open file", kind="io") from exc
    except OSError as exc:
        if exc.errno is None:  # a Pillow plugin about the bytes ("Truncated File Read"), not the OS
            raise MediaError(f"{describe_non_image(path)} ({exc})", kind="corrupt") from exc
        raise MediaError(f"cannot open image: {exc.strerror or exc}", kind="io") from exc
    except Exception as exc:  # Pillow plugins raise assorted errors on hostile headers
        raise MediaError(f"invalid image header: {exc}", kind="corrupt") from exc
    pixels = img.width * img.height
    if pixels > options.max_pixels:
        img.close()
        raise MediaError(
            f"image is {img.width} x {img.height} = {pixels:,} pixels, over the limit of "
            f"{options.max_pixels:,} (possible decompression bomb; raise --max-pixels to accept it)",
            kind="too_large",
        )
    if img.width <= 0 or img.height <= 0:
        img.close()
        raise MediaError(f"invalid image size {img.width} x {img.height}", kind="corrupt")
    return img


def _load(img: Image.Image, options: DecodeOptions) -> bool:
    """Decode pixels; return True when the file was truncated and decoded only partly."""
    try:
        img.load()
        return False
    except OSError as exc:
        message = str(exc)
        if not options.allow_truncated or "truncated" not in message:
            raise MediaError(f"corrupt image data: {message}", kind="corrupt") from exc
    # Retry tolerating the missing tail: Pillow fills what it could not read with grey.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        img.load()
    except Exception as exc:
        raise MediaError(f"truncated image, nothing decodable: {exc}", kind="corrupt") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return True


def to_rgb(img: Image.Image) -> Image.Image:
    """Bring any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        else:  # 32-bit int or float: stretch the actual range to 0-255
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    return img.convert("RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one (accurate), else Pillow's naive formula."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            import io

            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
        except Exception:
            pass
    return img.convert("RGB")


def _fit(img: Image.Image, size: int | None) -> Image.Image:
    """Shrink so the longer side is at most ``size`` (never enlarges)."""
    if size is None or max(img.size) <= size:
        return img
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _draft(img: Image.Image, size: int | None) -> None:
    """Ask libjpeg for a DCT-scaled decode no smaller than what ``_fit`` will produce."""
    if size is None or img.format != "JPEG":
        return
    # draft picks the largest 1/2, 1/4, 1/8 scale still >= the requested box.
    img.draft("RGB", (size, size))


def load_image(
    path: str | Path,
    *,
    size: int | None = None,
    options: DecodeOptions | None = None,
) -> Image.Image:
    """Return the upright RGB picture of ``path``, longer side at most ``size`` pixels.

    Raises MediaError with a one-line reason when the file cannot be decoded.
    """
    options = options or DecodeOptions()
    img = _open(Path(path), options)
    try:
        _draft(img, size)
        _load(img, options)
        return _finish(img, size)
    finally:
        img.close()


def _finish(img: Image.Image, size: int | None) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose the picture
        upright = img
    return _fit(to_rgb(upright), size)


def iter_frames(
    path: str | Path,
    *,
    size: int | None = None,
    options: DecodeOptions | None = None,
    max_frames: int | None = None,
) -> Iterator[Image.Image]:
    """Yield every frame of an animated GIF/WebP/APNG/TIFF as upright RGB (one for stills)."""
    options = options or DecodeOptions()
    img = _open(Path(path), options)
    try:
        n = getattr(img, "n_frames", 1)
        for index in range(n if max_frames is None else min(n, max_frames)):
            img.seek(index)
            _load(img, options)
            yield _finish(img.copy() if n > 1 else img, size)
    finally:
        img.close()


def probe_image(path: str | Path, options: DecodeOptions | None = None) -> ImageProbe:
    """Read header and EXIF, then decode at reduced scale to prove the pixels are readable.

    Width and height are those of the upright picture (after EXIF orientation).
    """
    options = options or DecodeOptions()
    img = _open(Path(path), options)
    try:
        fmt = img.format or "UNKNOWN"
        mode = img.mode
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        exif = read_exif(img)
        width, height = img.size
        if exif.orientation in (5, 6, 7, 8):
            width, height = height, width
        _draft(img, 256)
        truncated = _load(img, options)
        return ImageProbe(fmt, width, height, mode, n_frames, truncated, exif)
    finally:
        img.close()
