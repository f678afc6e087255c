"""Which writing system a string is in, from Unicode ranges.

Why: the packaged RapidOCR recogniser reads Latin and Chinese/Japanese only, and reads
Cyrillic as Latin look-alikes ("CHOBA HA 3ABTPA"); tesseract reads the other scripts well.
Knowing a reading's script lets the OCR trust each engine only where it is good, and lets
language-ID say "und" when a script and a language disagree.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"), (0x2DE0, 0x2DFF, "cyrillic"), (0xA640, 0xA69F, "cyrillic"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0E00, 0x0E7F, "thai"),
    (0x3040, 0x30FF, "kana"), (0xAC00, 0xD7AF, "hangul"), (0x1100, 0x11FF, "hangul"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
)

# Scripts written right to left: reading order inside a line runs from the right.
RIGHT_TO_LEFT = frozenset({"arabic", "hebrew"})


def char_script(ch: str) -> str | None:
    """The script of one letter, or None for digits, punctuation, spaces and symbols."""
    if not ch.isalpha():
        return None
    code = ord(ch)
    for low, high, name in _RANGES:
        if low <= code <= high:
            return name
    return unicodedata.name(ch, "other").split(" ")[0].lower()


def script_counts(text: str) -> Counter[str]:
    return Counter(s for s in map(char_script, text) if s)


def dominant_script(text: str) -> str:
    """The script of most letters in ``text``; 'none' when it has no letters."""
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else "none"


def script_share(text: str, script: str) -> float:
    counts = script_counts(text)
    total = sum(counts.values())
    return counts[script] / total if total else 0.0
