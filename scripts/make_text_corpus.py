#!/usr/bin/env python3
"""Render the text-in-images test set: memes and post screenshots in six scripts, with truth.

Why rendered: OCR accuracy needs exact ground truth, and rendering with real fonts (Debian's
fonts-dejavu, fonts-noto-core, fonts-noto-cjk) over real CC0 photos (picsift's demo corpus)
gives it for every script and difficulty we care about: outlined meme captions, rotated and
blurred JPEG reposts, tiny and low-contrast screenshot text, right-to-left Arabic, Chinese.

Run once by a developer (needs those Debian font packages):
    python scripts/make_text_corpus.py [OUT]     (default: tests/data/text)
The output (JPEG/PNG files + truth.json) is committed; tests never need the fonts.
Rendered images are our own work; the fonts' licences (Bitstream Vera/DejaVu, OFL) put no
restriction on images made with them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "src" / "picsift" / "demo" / "corpus" / "photos"
FONTS = {
    "bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "noto": "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "noto-bold": "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "arabic": "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
    "cjk": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
}


@dataclass
class Case:
    name: str
    kind: str                      # meme | screenshot | photo
    language: str                  # ISO 639-1 of the text ("" when no text)
    script: str                    # latin | cyrillic | arabic | han | none
    difficulty: str                # clean | rotated | small | low-contrast | none
    lines: list[str] = field(default_factory=list)


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    if name == "cjk":
        return ImageFont.truetype(FONTS["cjk"], size, index=2)  # Noto Sans CJK SC
    return ImageFont.truetype(FONTS[name], size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font_name: str, width: int, start: int) -> ImageFont.FreeTypeFont:
    size = start
    while size > 14 and draw.textlength(text, font=_font(font_name, size)) > width:
        size -= 2
    return _font(font_name, size)


def meme(photo: str, top: str, bottom: str, *, rotate: float = 0.0, blur: float = 0.0) -> Image.Image:
    """White capitals with a black outline over a photo: the classic image macro."""
    image = Image.open(PHOTOS / photo).convert("RGB").resize((720, 540))
    draw = ImageDraw.Draw(image)
    for text, y in ((top, 24), (bottom, 540 - 90)):
        font = _fit(draw, text, "bold", 680, 52)
        w = draw.textlength(text, font=font)
        draw.text(((720 - w) / 2, y), text, font=font, fill="white", stroke_width=3, stroke_fill="black")
    if rotate:
        image = image.rotate(rotate, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return image


def screenshot(name: str, handle: str, lines: list[str], *, font: str = "sans", size: int = 26,
               fg: tuple[int, int, int] = (20, 20, 20), bg: tuple[int, int, int] = (255, 255, 255),
               rtl: bool = False, width: int = 760) -> Image.Image:
    """A post as people screenshot it: author line, body text, a like counter."""
    line_h = int(size * 1.6)
    height = 120 + line_h * len(lines) + 60
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    draw.ellipse((24, 24, 84, 84), fill=(120, 160, 220))
    author_font = {"cjk": "cjk", "arabic": "arabic"}.get(font, "bold")
    author_x = width - 30 - draw.textlength(name, font=_font(author_font, 24)) if rtl else 100
    draw.text((author_x, 30), name, font=_font(author_font, 24), fill=fg, direction="rtl" if rtl else None)
    draw.text((100, 60), handle, font=_font("sans", 20), fill=(110, 110, 110))
    y = 110
    for text in lines:
        f = _font(font, size)
        x = width - 30 - draw.textlength(text, font=f) if rtl else 30
        draw.text((x, y), text, font=f, fill=fg, direction="rtl" if rtl else None,
                  language="ar" if rtl else None)
        y += line_h
    draw.line((30, y + 10, width - 30, y + 10), fill=(220, 220, 220), width=2)
    return image


def build(out: Path) -> list[Case]:
    out.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[Case, Image.Image, str]] = []

    def add(case: Case, image: Image.Image, fmt: str = "png") -> None:
        cases.append((case, image, fmt))

    add(Case("meme_en", "meme", "en", "latin", "clean", ["WHEN THE WIFI GOES DOWN", "AND YOU HAVE TO TALK TO YOUR FAMILY"]),
        meme("coffee.jpg", "WHEN THE WIFI GOES DOWN", "AND YOU HAVE TO TALK TO YOUR FAMILY"), "jpg")
    add(Case("meme_de", "meme", "de", "latin", "clean", ["WENN DER ZUG PÜNKTLICH KOMMT", "UND NIEMAND ES GLAUBT"]),
        meme("rocket.jpg", "WENN DER ZUG PÜNKTLICH KOMMT", "UND NIEMAND ES GLAUBT"), "jpg")
    add(Case("meme_uk", "meme", "uk", "cyrillic", "clean", ["КОЛИ ВІДКЛЮЧИЛИ СВІТЛО", "АЛЕ Є ГЕНЕРАТОР"]),
        meme("chelsea.jpg", "КОЛИ ВІДКЛЮЧИЛИ СВІТЛО", "АЛЕ Є ГЕНЕРАТОР"), "jpg")
    add(Case("meme_ru", "meme", "ru", "cyrillic", "clean", ["СНОВА НА ЗАВТРАК", "ТОЛЬКО КОФЕ"]),
        meme("horse.png", "СНОВА НА ЗАВТРАК", "ТОЛЬКО КОФЕ"), "jpg")
    add(Case("meme_fr_rotated", "meme", "fr", "latin", "rotated", ["QUAND LE PROF DIT", "QUE LE TEST EST FACILE"]),
        meme("astronaut.jpg", "QUAND LE PROF DIT", "QUE LE TEST EST FACILE", rotate=5, blur=0.8), "jpg-q55")
    def shot(case_name: str, language: str, script: str, difficulty: str, author: str, handle: str,
             lines: list[str], **style: object) -> None:
        add(Case(case_name, "screenshot", language, script, difficulty, [author, handle, *lines]),
            screenshot(author, handle, lines, **style))  # type: ignore[arg-type]

    shot("shot_en", "en", "latin", "clean", "Daily Reporter", "@dailyreporter",
         ["Thousands of people gathered in the city centre", "today to protest against the new law.",
          "Police estimate 12,000 participants."])
    shot("shot_de", "de", "latin", "clean", "Stadtnachrichten", "@stadtnews",
         ["Die Bürgerinitiative fordert mehr Radwege", "und eine sichere Schulstraße für alle Kinder."])
    shot("shot_uk", "uk", "cyrillic", "clean", "Новини Києва", "@kyivnews",
         ["Сьогодні в Києві відбулася зустріч волонтерів.", "Вони зібрали допомогу для лікарні."], font="noto")
    shot("shot_ar", "ar", "arabic", "clean", "أخبار اليوم", "@akhbar",
         ["أعلنت الحكومة اليوم عن إجراءات جديدة", "لمواجهة ارتفاع الأسعار في البلاد"],
         font="arabic", size=30, rtl=True)
    shot("shot_zh", "zh", "han", "clean", "新闻快讯", "@xinwen", ["今天北京的天气很好", "很多人去公园散步"],
         font="cjk", size=30)
    shot("shot_es", "es", "latin", "clean", "Noticias Madrid", "@noticiasmad",
         ["Los vecinos dicen que no fueron consultados", "sobre el cierre del parque."])
    shot("shot_pt", "pt", "latin", "clean", "Jornal do Povo", "@jornaldopovo",
         ["O governo anunciou hoje novas medidas", "para conter a inflação."])
    shot("shot_small_en", "en", "latin", "small", "City Traffic", "@citytraffic",
         ["Breaking: the bridge will stay closed until Monday", "because of storm damage."], size=13, width=520)
    shot("shot_lowcontrast_en", "en", "latin", "low-contrast", "Green Coast", "@greencoast",
         ["Volunteers cleaned the beach this weekend", "and collected two tons of plastic."],
         fg=(150, 150, 150), bg=(215, 215, 215))
    add(Case("photo_notext", "photo", "", "none", "none", []),
        Image.open(PHOTOS / "chelsea.jpg").convert("RGB"), "jpg")
    add(Case("photo_notext_hubble", "photo", "", "none", "none", []),
        Image.open(PHOTOS / "hubble.jpg").convert("RGB"), "jpg")

    truth = []
    for case, image, fmt in cases:
        if fmt.startswith("jpg"):
            quality = int(fmt.split("-q")[1]) if "-q" in fmt else 88
            filename = f"{case.name}.jpg"
            image.save(out / filename, "JPEG", quality=quality)
        else:
            filename = f"{case.name}.png"
            image.save(out / filename, "PNG", optimize=True)
        truth.append({"file": filename, **case.__dict__})
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n")
    return [c for c, _, _ in cases]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "data" / "text"
    made = build(target)
    print(f"{len(made)} images + truth.json in {target}")
