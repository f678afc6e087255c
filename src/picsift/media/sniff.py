"""Say what a file that is not an image really is, so the error message helps the researcher."""

from __future__ import annotations

from pathlib import Path

_IMAGE_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (b"<svg", "an SVG vector drawing (not supported: rasterise it first)"),
]


def describe_non_image(path: Path) -> str:
    """One-line reason for a file that Pillow could not identify, from its first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not head:
        return "empty file (0 bytes)"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "not an image: it is an HTML page saved with an image extension"
    if stripped.startswith(b"<?xml") and b"<svg" in stripped:
        return "not an image: it is an SVG vector drawing (not supported: rasterise it first)"
    for signature, fmt in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return f"corrupt {fmt} file: the header is damaged and the image cannot be decoded"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "corrupt WEBP file: the header is damaged and the image cannot be decoded"
    for signature, what in _SIGNATURES:
        if stripped.startswith(signature.lower()) or head.startswith(signature):
            return f"not an image: it is {what}"
    if head[4:8] == b"ftyp":
        return "not an image: it is an MP4/MOV/HEIF container Pillow cannot read"
    if _looks_like_text(head):
        return "not an image: it is a text file with an image extension"
    return f"not a readable image: corrupt or unknown format (first bytes {head[:8].hex(' ')})"


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head
