"""The few EXIF fields researchers ask for: when, with what camera, which way up, where."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003


@dataclass
class ExifSummary:
    """EXIF values picsift stores per media; None where the file does not say."""

    datetime: str | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def read_exif(img: Image.Image) -> ExifSummary:
    """Extract the summary; a malformed EXIF block yields what could be read, never an error."""
    summary = ExifSummary()
    try:
        exif = img.getexif()
    except Exception:
        return summary
    if not exif:
        return summary
    summary.orientation = _as_int(exif.get(_ORIENTATION))
    summary.make = _clean(exif.get(_MAKE))
    summary.model = _clean(exif.get(_MODEL))
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    summary.datetime = _exif_date(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME))
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:
        gps = {}
    if gps:
        summary.gps_lat = _coordinate(gps.get(2), gps.get(1), "S")
        summary.gps_lon = _coordinate(gps.get(4), gps.get(3), "W")
    return summary


def _as_int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _clean(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


def _exif_date(value: object) -> str | None:
    """EXIF writes '2021:03:04 10:11:12'; return ISO '2021-03-04T10:11:12'."""
    text = _clean(value)
    if not text or len(text) < 19 or text.startswith("0000"):
        return None
    date, _, time = text[:19].partition(" ")
    return f"{date.replace(':', '-')}T{time}"


def _coordinate(dms: object, ref: object, negative: str) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)  # type: ignore[union-attr]
    except Exception:
        return None
    value = d + m / 60.0 + s / 3600.0
    if _clean(ref) == negative:
        value = -value
    return round(value, 7)
