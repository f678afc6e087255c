"""Generate a copy-detection corpus with exact ground truth from real photos.

    python benchmarks/copies_corpus.py --n 1000 --out bench-output/copies/corpus-n1000-seed0

Real photos (the project's demo photos or scikit-image's data photos, and the real photos under
../shared/data: PIMMI's small demo set, UKBench photos from imagededup's tests, AMMICO's Pexels
photos and street pictures, the mandrill) are split, by --seed, into *sources* (2/3) and
*distractors* (1/3). Each source appears once as itself (``original``, is_original=1) and then as
copies made with the named transforms below, repeated with fresh random parameters (another crop,
another angle...) until the corpus holds exactly --n images. The truth of a copy is its source id.
Each distractor appears once (``distractor``); the first three also get one large crop
(``distractor_crop``) and form a truth group of two with it.

Transforms (column ``transform``): crop_small (keeps 25-40 % of the area), crop_medium (50-70 %),
zoom (crop of 30-60 % then upscale 1.6-2.5x), rotate (+-5-30 degrees, canvas expanded), mirror,
jpeg15 (JPEG quality 15), colour (hue shift and saturation change), grey, meme (white Impact-like
caption with a black outline, top and bottom), watermark (semi-transparent handle or logo in a
corner), screenshot (pasted into a white social-media-like frame with a header, text and buttons;
the photo covers 30-60 % of the frame), collage (2x2 grid with three distractors: the collage
*belongs to* the source it was made for, and the three distractor truth ids are listed in
``collage_members``, because a collage genuinely contains four images).

Output: ``OUT/images/img_NNNNN.jpg`` (names shuffled, saying nothing about the truth) and
``OUT/truth.csv`` with columns path (relative to OUT), truth, transform, is_original,
collage_members (';'-separated truth ids), round, source_file, width, height, params (JSON).
Deterministic for a given --seed, machine fonts and Pillow version (text rendering uses the first
bold condensed TrueType font found, else Pillow's built-in font). A finished corpus is kept and
reused when its manifest.json matches the request.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

GENERATOR_VERSION = 5
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEMO_PHOTOS = ROOT / "src" / "picsift" / "demo" / "corpus" / "photos"

TRANSFORMS = ["crop_small", "crop_medium", "zoom", "rotate", "mirror", "jpeg15", "colour", "grey",
              "meme", "watermark", "screenshot", "collage"]
MIN_SIDE, MAX_SIDE = 480, 1200          # longest side of a prepared source / distractor
N_DISTRACTOR_CROPS = 3

# scikit-image data photos (file in skimage/data) and the demo-corpus copy of the same photo.
SKIMAGE_PHOTOS = {
    "astronaut": ("astronaut.png", "astronaut.jpg"),
    "camera": ("camera.png", "camera.jpg"),
    "chelsea": ("chelsea.png", "chelsea.jpg"),
    "coffee": ("coffee.png", "coffee.jpg"),
    "coins": ("coins.png", "coins.png"),
    "horse": ("horse.png", "horse.png"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "hubble.jpg"),
    "immunohistochemistry": ("ihc.png", None),
    "motorcycle_left": ("motorcycle_left.png", None),
    "page": ("page.png", "page.png"),
    "retina": ("retina.jpg", "retina.jpg"),
    "rocket": ("rocket.jpg", "rocket.jpg"),
    "moon": ("moon.png", None),
    "text": ("text.png", None),
}
# Real photos under shared/data. pimmi-small 0/000002 = 0/000005 = 0/000007 (byte-identical) and
# 0/000008 ~ 0/000009 (same truck): one representative each.
SHARED_PHOTOS = {
    "pimmi-000000": "pimmi-small/0/000000.jpg",
    "pimmi-000001": "pimmi-small/0/000001.jpg",
    "pimmi-000002": "pimmi-small/0/000002.jpg",
    "pimmi-000003": "pimmi-small/0/000003.jpg",
    "pimmi-000004": "pimmi-small/0/000004.jpg",
    "pimmi-000006": "pimmi-small/0/000006.jpg",
    "pimmi-000008": "pimmi-small/0/000008.jpg",
    "pimmi-000010": "pimmi-small/1/000010.jpg",
    "ukbench00120": "imagededup/base_images/ukbench00120.jpg",
    "ukbench01380": "imagededup/base_images/ukbench01380.jpg",
    "ukbench08976": "imagededup/base_images/ukbench08976.jpg",
    "ukbench08996": "imagededup/base_images/ukbench08996.jpg",
    "ukbench09012": "imagededup/base_images/ukbench09012.jpg",
    "ukbench09040": "imagededup/base_images/ukbench09040.jpg",
    "ukbench09060": "imagededup/base_images/ukbench09060.jpg",
    "ukbench09268": "imagededup/base_images/ukbench09268.jpg",
    "ukbench09348": "imagededup/base_images/ukbench09348.jpg",
    "ukbench09380": "imagededup/base_images/ukbench09380.jpg",
    "mandrill": "imagededup/formats_images/baboon.pgm",
    "pexels-1954659": "ammico/pexels-1000990-1954659.jpg",
    "pexels-4750169": "ammico/pexels-maksgelatin-4750169.jpg",
    "pexels-415829": "ammico/pexels-pixabay-415829.jpg",
    "ammico-img2746": "ammico/IMG_2746.png",
    "ammico-img2809": "ammico/IMG_2809.png",
    "ammico-img3758": "ammico/IMG_3758.png",
}

FONT_CANDIDATES = {
    "impact": ["Impact.ttf", "impact.ttf", "Anton-Regular.ttf", "DejaVuSansCondensed-Bold.ttf",
               "LiberationSansNarrow-Bold.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"],
    "bold": ["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf"],
    "regular": ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"],
}
FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts",
             "C:/Windows/Fonts", str(Path.home() / ".fonts")]

# Caption / post words: common words recur across memes as in real ones (and, drawn in the same
# font, they are a genuine source of false matches between unrelated memes).
WORDS = """a about actually after again all always and any are asked at back bad be because been
before best better big boss bread breaking but by can cat change coffee code come could day
deadline did do does dog done down every everyone everything face family feel final finally
find first for friday friend from fun game get give go going good got great guys had happy
has have he her here him his home how i if in is it job just keep kids know last late let life
like literally little live long look lost love made make man me mean mom monday money mood more
morning most my need never new news next nice night no nobody not nothing now of off oh ok old
on one only opinion or our out over people phone pizza plan please point rain real right run
said same say school see she should sleep so some still stop summer sure take talk team than
that the their them then there they thing think this time to today together tomorrow too true
try two unpopular up us very vibes wait want was watch way we weekend well were what when where
which who why will win with work works world would wrong yes yet you your""".split()
# Watermarks: a few recurring agency / account marks (the same mark on unrelated photos is a real
# trap) and, more often, one-off handles.
BRAND_MARKS = ["@newsdaily", "NEWS24", "©FotoAgency", "PicWire", "TrendTV", "@viral.pics"]
APP_NAMES = ["Chirper", "Photogram", "FaceSpace", "Reddish", "TokTalk", "Mastodont"]
BRAND_COLOURS = [(29, 161, 242), (66, 103, 178), (255, 69, 0), (225, 48, 108), (0, 0, 0),
                 (99, 100, 255), (37, 211, 102)]


@dataclass
class Photo:
    name: str          # short stable name, e.g. "skimage-astronaut"
    file: str          # where it was read from (for provenance)
    sha256: str


# --------------------------------------------------------------------------- photo discovery

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def discover_photos(data_dir: Path) -> list[Photo]:
    """Distinct real photos, by stable name; byte-identical files are dropped."""
    photos: list[Photo] = []
    skimage_dir: Path | None = None
    try:
        import skimage.data  # noqa: PLC0415
        skimage_dir = Path(skimage.data.__file__).parent
    except Exception:  # noqa: BLE001 - skimage is optional
        skimage_dir = None
    for name, (sk_file, demo_file) in SKIMAGE_PHOTOS.items():
        path = None
        if skimage_dir is not None and (skimage_dir / sk_file).is_file():
            path = skimage_dir / sk_file
        elif demo_file and (DEMO_PHOTOS / demo_file).is_file():
            path = DEMO_PHOTOS / demo_file       # the demo photos are these skimage photos
        if path is not None:
            photos.append(Photo(f"skimage-{name}", str(path), _sha256(path)))
    if data_dir.is_dir():
        for name, rel in SHARED_PHOTOS.items():
            path = data_dir / rel
            if path.is_file():
                photos.append(Photo(name, str(path), _sha256(path)))
    seen: set[str] = set()
    distinct = []
    for photo in photos:
        if photo.sha256 not in seen:
            seen.add(photo.sha256)
            distinct.append(photo)
    return distinct


def load_prepared(photo: Photo) -> Image.Image:
    """RGB, longest side brought into [MIN_SIDE, MAX_SIDE] (alpha flattened on white)."""
    with Image.open(photo.file) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("RGB")
        longest = max(im.size)
        target = min(max(longest, MIN_SIDE), MAX_SIDE)
        if target != longest:
            scale = target / longest
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            if scale < 0.5:
                im = im.reduce(max(1, int(1 / scale / 1.5)))
            im = im.resize(size, Image.Resampling.LANCZOS)
        return im.copy()


# --------------------------------------------------------------------------- fonts and text

_FONT_PATHS: dict[str, str | None] = {}


def _find_font(kind: str) -> str | None:
    if kind in _FONT_PATHS:
        return _FONT_PATHS[kind]
    found = None
    for candidate in FONT_CANDIDATES[kind]:
        for base in FONT_DIRS:
            if not os.path.isdir(base):
                continue
            for dirpath, _dirs, files in sorted(os.walk(base)):
                if candidate in files:
                    found = os.path.join(dirpath, candidate)
                    break
            if found:
                break
        if found:
            break
    _FONT_PATHS[kind] = found
    return found


def font(kind: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(8, int(size))
    path = _find_font(kind)
    if path:
        return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def fonts_used() -> dict[str, str | None]:
    return {kind: _find_font(kind) for kind in FONT_CANDIDATES}


def _text_size(draw: ImageDraw.ImageDraw, text: str, fnt, stroke: int = 0) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=fnt, stroke_width=stroke)
    return right - left, bottom - top


def _handle(rng: np.random.Generator) -> str:
    if rng.random() < 0.3:
        return str(rng.choice(BRAND_MARKS))
    a, b = rng.choice(WORDS, size=2)
    sep = str(rng.choice(["", "_", "."]))
    digits = str(int(rng.integers(1, 999))) if rng.random() < 0.5 else ""
    return f"@{a}{sep}{b}{digits}"


def _words(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi + 1))))


# --------------------------------------------------------------------------- transforms

def _uniform(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def _crop_box(rng, w: int, h: int, area_lo: float, area_hi: float) -> tuple[int, int, int, int, float]:
    area = _uniform(rng, area_lo, area_hi)
    aspect = math.exp(_uniform(rng, math.log(0.75), math.log(1.33)))   # crop shape vs. image shape
    fw = min(1.0, math.sqrt(area) * aspect)
    fh = min(1.0, area / fw)
    fw = min(1.0, area / fh)
    cw, ch = max(16, round(w * fw)), max(16, round(h * fh))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return x, y, x + cw, y + ch, cw * ch / (w * h)


def _rescale(rng, im: Image.Image, params: dict) -> Image.Image:
    """Re-upload style downscale: longest side to 60-100 % (never below 400 px)."""
    longest = max(im.size)
    if longest <= 400:
        return im
    scale = _uniform(rng, max(0.6, 400 / longest), 1.0)
    if scale > 0.97:
        return im
    params["rescale"] = round(scale, 3)
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                     Image.Resampling.LANCZOS)


def _fit_longest(im: Image.Image, longest: int) -> Image.Image:
    if max(im.size) <= longest:
        return im
    scale = longest / max(im.size)
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                     Image.Resampling.LANCZOS)


def t_crop(rng, im, params, lo, hi):
    x0, y0, x1, y1, kept = _crop_box(rng, im.width, im.height, lo, hi)
    params.update(box=[x0, y0, x1, y1], area_kept=round(kept, 3))
    return im.crop((x0, y0, x1, y1))


def t_zoom(rng, im, params):
    out = t_crop(rng, im, params, 0.30, 0.60)
    factor = _uniform(rng, 1.6, 2.5)
    size = (round(out.width * factor), round(out.height * factor))
    if max(size) > MAX_SIDE:
        factor *= MAX_SIDE / max(size)
        size = (round(out.width * factor), round(out.height * factor))
    params["upscale"] = round(factor, 3)
    return out.resize(size, Image.Resampling.BICUBIC)


def t_rotate(rng, im, params):
    angle = _uniform(rng, 5, 30) * (1 if rng.random() < 0.5 else -1)
    fill = (0, 0, 0) if rng.random() < 0.7 else (255, 255, 255)
    params.update(angle=round(angle, 2), fill=list(fill))
    out = im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    return _fit_longest(out, MAX_SIDE)


def t_colour(rng, im, params):
    hue = _uniform(rng, 0.08, 0.25) * (1 if rng.random() < 0.5 else -1)
    sat = _uniform(rng, 0.35, 0.7) if rng.random() < 0.5 else _uniform(rng, 1.4, 2.0)
    val = _uniform(rng, 0.85, 1.15)
    params.update(hue_shift=round(hue, 3), saturation=round(sat, 3), value=round(val, 3))
    hsv = np.asarray(im.convert("HSV")).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue * 256) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * val, 0, 255)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def t_meme(rng, im, params):
    out = im.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    texts = [_words(rng, 2, 5).upper(), _words(rng, 2, 6).upper()]
    size0 = int(h * _uniform(rng, 0.08, 0.13))
    sizes = []
    for i, text in enumerate(texts):
        size = size0
        while True:
            fnt = font("impact", size)
            stroke = max(2, size // 12)
            tw, th = _text_size(draw, text, fnt, stroke)
            if tw <= 0.94 * w or size <= 10:
                break
            size = int(size * 0.9)
        x = (w - tw) // 2
        y = int(0.02 * h) if i == 0 else h - th - int(0.04 * h)
        left, top, _r, _b = draw.textbbox((0, 0), text, font=fnt, stroke_width=stroke)
        draw.text((x - left, y - top), text, font=fnt, fill=(255, 255, 255), stroke_width=stroke,
                  stroke_fill=(0, 0, 0))
        sizes.append(size)
    params.update(top=texts[0], bottom=texts[1], font_px=sizes)
    return out


def t_watermark(rng, im, params):
    base = im.convert("RGBA")
    w, h = base.size
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    text = _handle(rng)
    size = int(min(w, h) * _uniform(rng, 0.05, 0.09))
    fnt = font("bold", size)
    tw, th = _text_size(draw, text, fnt)
    logo = rng.random() < 0.5
    pad = max(4, size // 3)
    bw, bh = tw + (2 * pad if logo else 0), th + (2 * pad if logo else 0)
    corner = str(rng.choice(["top-left", "top-right", "bottom-left", "bottom-right"]))
    margin = int(min(w, h) * 0.03)
    x = margin if "left" in corner else w - bw - margin
    y = margin if "top" in corner else h - bh - margin
    alpha = int(_uniform(rng, 0.55, 0.85) * 255)
    if logo:
        colour = BRAND_COLOURS[int(rng.integers(len(BRAND_COLOURS)))]
        draw.rounded_rectangle((x, y, x + bw, y + bh), radius=pad, fill=(*colour, alpha))
    left, top, _r, _b = draw.textbbox((0, 0), text, font=fnt)
    tx, ty = x + (pad if logo else 0) - left, y + (pad if logo else 0) - top
    if not logo:
        draw.text((tx + 2, ty + 2), text, font=fnt, fill=(0, 0, 0, alpha // 2))
    draw.text((tx, ty), text, font=fnt, fill=(255, 255, 255, alpha))
    params.update(text=text, corner=corner, logo=bool(logo), font_px=size, alpha=round(alpha / 255, 2))
    return Image.alpha_composite(base, overlay).convert("RGB")


def t_screenshot(rng, im, params):
    target = _uniform(rng, 0.30, 0.60)
    longest = _uniform(rng, 460, 720)
    scale = longest / max(im.size)
    iw, ih = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    photo = im.resize((iw, ih), Image.Resampling.LANCZOS)
    margin = int(rng.integers(16, 48))
    header = int(rng.integers(110, 170))
    footer = int(rng.integers(70, 120))
    min_w, min_h = iw + 2 * margin, ih + header + footer + margin
    frame_area = iw * ih / target
    aspect = _uniform(rng, 0.6, 1.4)
    fw = max(min_w, int(math.sqrt(frame_area * aspect)))
    fh = max(min_h, int(frame_area / fw))
    if fw * fh < frame_area:           # min height won: widen to keep the share near target
        fw = max(fw, int(frame_area / fh))
    bg = (255, 255, 255) if rng.random() < 0.7 else (245, 248, 250)
    frame = Image.new("RGB", (fw, fh), bg)
    draw = ImageDraw.Draw(frame)
    brand = BRAND_COLOURS[int(rng.integers(len(BRAND_COLOURS)))]
    bar = int(header * 0.38)
    draw.rectangle((0, 0, fw, bar), fill=brand)
    draw.text((margin, bar * 0.2), str(rng.choice(APP_NAMES)), font=font("bold", bar * 0.55),
              fill=(255, 255, 255))
    av = int((header - bar) * 0.55)
    ay = bar + (header - bar - av) // 2
    draw.ellipse((margin, ay, margin + av, ay + av),
                 fill=tuple(int(c) for c in rng.integers(60, 200, 3)))
    draw.text((margin + av + 10, ay), _handle(rng).lstrip("@©"),
              font=font("bold", av * 0.42), fill=(20, 20, 20))
    draw.text((margin + av + 10, ay + av * 0.5), _words(rng, 3, 7),
              font=font("regular", av * 0.36), fill=(90, 90, 90))
    x = margin + int(rng.integers(0, max(1, fw - iw - 2 * margin) + 1))
    y = header
    frame.paste(photo, (x, y))
    by = y + ih + 12
    bfont = font("regular", max(12, footer * 0.26))
    bx = margin
    for label in ("Like", "Comment", "Share"):
        text = f"{label} {int(rng.integers(1, 999))}" if label != "Share" else label
        tw, th = _text_size(draw, text, bfont)
        if bx + tw + 24 > fw - margin:
            break
        draw.rounded_rectangle((bx, by, bx + tw + 24, by + th + 16), radius=8,
                               outline=(200, 200, 200), fill=(240, 242, 245), width=2)
        draw.text((bx + 12, by + 6), text, font=bfont, fill=(60, 60, 60))
        bx += tw + 40
    ly = by + footer * 0.7
    tfont = font("regular", max(11, footer * 0.22))
    while ly + 20 < fh - margin // 2:
        draw.text((margin, ly), _words(rng, 4, 10), font=tfont, fill=(110, 110, 110))
        ly += max(18, footer * 0.34)
    share = iw * ih / (fw * fh)
    params.update(photo_box=[x, y, x + iw, y + ih], frame=[fw, fh], share=round(share, 3))
    return frame


def _cover(im: Image.Image, w: int, h: int) -> Image.Image:
    scale = max(w / im.width, h / im.height)
    size = (max(w, round(im.width * scale)), max(h, round(im.height * scale)))
    big = im.resize(size, Image.Resampling.LANCZOS)
    x, y = (big.width - w) // 2, (big.height - h) // 2
    return big.crop((x, y, x + w, y + h))


def t_collage(rng, im, params, distractors: list[tuple[str, Image.Image]]):
    cw = int(rng.integers(300, 520))
    ch = int(cw * _uniform(rng, 0.75, 1.25))
    gap = int(rng.integers(4, 14))
    bg = (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0)
    picks = rng.choice(len(distractors), size=3, replace=False)
    slot = int(rng.integers(0, 4))
    members = [distractors[int(i)] for i in picks]
    tiles = members[:slot] + [("__source__", im)] + members[slot:]
    out = Image.new("RGB", (2 * cw + 3 * gap, 2 * ch + 3 * gap), bg)
    for k, (_name, tile) in enumerate(tiles):
        r, c = divmod(k, 2)
        out.paste(_cover(tile, cw, ch), (gap + c * (cw + gap), gap + r * (ch + gap)))
    params.update(slot=slot, cell=[cw, ch], gap=gap)
    return out, [name for name, _ in members]


# --------------------------------------------------------------------------- generation

_BASES: dict[str, Image.Image] = {}
_DISTRACTOR_IMAGES: list[tuple[str, Image.Image]] = []


def _render(task: dict) -> dict:
    """Make one image (runs in a worker; bases are inherited through fork)."""
    rng = np.random.default_rng(task["rng_key"])
    im = _BASES[task["photo"]]
    transform = task["transform"]
    params: dict = {}
    members: list[str] = []
    quality = int(rng.integers(70, 96))
    if transform in ("original", "distractor"):
        out, quality = im, 92
    elif transform == "distractor_crop":
        out = t_crop(rng, im, params, 0.60, 0.80)
    elif transform == "crop_small":
        out = t_crop(rng, im, params, 0.25, 0.40)
    elif transform == "crop_medium":
        out = t_crop(rng, im, params, 0.50, 0.70)
    elif transform == "zoom":
        out = t_zoom(rng, im, params)
    elif transform == "rotate":
        out = t_rotate(rng, im, params)
    elif transform == "mirror":
        out = _rescale(rng, ImageOps.mirror(im), params)
    elif transform == "jpeg15":
        out, quality = _rescale(rng, im, params), 15
    elif transform == "colour":
        out = _rescale(rng, t_colour(rng, im, params), params)
    elif transform == "grey":
        out = _rescale(rng, ImageOps.grayscale(im), params)
    elif transform == "meme":
        out = t_meme(rng, _rescale(rng, im, params), params)
    elif transform == "watermark":
        out = t_watermark(rng, _rescale(rng, im, params), params)
    elif transform == "screenshot":
        out = t_screenshot(rng, im, params)
    elif transform == "collage":
        out, members = t_collage(rng, im, params, _DISTRACTOR_IMAGES)
    else:
        raise ValueError(transform)
    params["quality"] = quality
    if task.get("attempt"):
        params["attempt"] = task["attempt"]
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=quality)
    Path(task["abs_path"]).write_bytes(buf.getvalue())
    return {"path": task["path"], "truth": task["truth"], "transform": transform,
            "is_original": int(transform == "original"),
            "collage_members": ";".join(f"distractor:{m}" for m in members),
            "round": task["round"], "source_file": task["source_file"],
            "width": out.width, "height": out.height,
            "params": json.dumps(params, sort_keys=True, separators=(",", ":")),
            "_sha256": hashlib.sha256(buf.getvalue()).hexdigest()}


def plan(photos: list[Photo], n: int, seed: int, exclude: tuple[str, ...] = ()
         ) -> tuple[list[dict], list[Photo], list[Photo]]:
    """The list of images to make (before names are assigned), sources and distractors."""
    unknown = set(exclude) - set(TRANSFORMS)
    if unknown:
        raise SystemExit(f"unknown transforms {sorted(unknown)}; known: {', '.join(TRANSFORMS)}")
    if set(exclude) >= set(TRANSFORMS):
        raise SystemExit("every transform is excluded")
    rng = np.random.default_rng([seed, 0])
    order = [photos[int(i)] for i in rng.permutation(len(photos))]
    n_sources = round(len(order) * 2 / 3)
    sources = sorted(order[:n_sources], key=lambda p: p.name)
    distractors = sorted(order[n_sources:], key=lambda p: p.name)
    if len(distractors) < 3:
        raise SystemExit("need at least 3 distractor photos for collages")
    tasks: list[dict] = []

    def add(photo: Photo, truth: str, transform: str, rnd: int, key: list[int]) -> None:
        tasks.append({"photo": photo.name, "truth": truth, "transform": transform, "round": rnd,
                      "source_file": photo.file, "rng_key": [seed, *key]})

    for i, photo in enumerate(sources):
        add(photo, f"source:{photo.name}", "original", 0, [1, i, 0, 0])
    for i, photo in enumerate(distractors):
        add(photo, f"distractor:{photo.name}", "distractor", 0, [2, i, 0, 0])
    for i, photo in enumerate(distractors[:N_DISTRACTOR_CROPS]):
        add(photo, f"distractor:{photo.name}", "distractor_crop", 1, [3, i, 0, 0])
    if n < len(tasks):
        raise SystemExit(f"--n {n} is below the {len(tasks)} originals and distractors")
    rnd = 1
    while len(tasks) < n:
        for t_index, transform in enumerate(TRANSFORMS):
            if transform in exclude:
                continue
            for i, photo in enumerate(sources):
                if len(tasks) >= n:
                    break
                add(photo, f"source:{photo.name}", transform, rnd, [4, i, t_index, rnd])
        rnd += 1
    return tasks, sources, distractors


def manifest_for(photos: list[Photo], n: int, seed: int, exclude: tuple[str, ...] = ()) -> dict:
    return {"generator_version": GENERATOR_VERSION, "n": n, "seed": seed,
            "excluded_transforms": sorted(exclude),
            "photos": {p.name: p.sha256 for p in photos},
            "pillow": Image.__version__, "fonts": fonts_used()}


def generate(out: Path, n: int, seed: int = 0, data_dir: Path = DEFAULT_DATA, jobs: int = 2,
             force: bool = False, quiet: bool = False, exclude: tuple[str, ...] = ()) -> Path:
    """Write (or reuse) the corpus at ``out``; returns the path of truth.csv."""
    photos = discover_photos(data_dir)
    if len(photos) < 10:
        raise SystemExit(f"only {len(photos)} real photos found (data dir {data_dir}); "
                         "expected the shared data folder and/or scikit-image")
    manifest = manifest_for(photos, n, seed, exclude)
    truth_csv = out / "truth.csv"
    manifest_file = out / "manifest.json"
    if not force and truth_csv.is_file() and manifest_file.is_file():
        try:
            old = json.loads(manifest_file.read_text())
        except ValueError:
            old = None
        if old and {k: old.get(k) for k in manifest} == manifest:
            if not quiet:
                print(f"corpus: reusing {out} ({n} images)", file=sys.stderr)
            return truth_csv
    if out.exists():
        shutil.rmtree(out)
    images = out / "images"
    images.mkdir(parents=True)
    tasks, sources, distractors = plan(photos, n, seed, exclude)
    names = np.random.default_rng([seed, 9]).permutation(len(tasks))
    for task, k in zip(tasks, names):
        task["path"] = f"images/img_{int(k):05d}.jpg"
        task["abs_path"] = str(out / task["path"])
    started = time.perf_counter()
    global _BASES, _DISTRACTOR_IMAGES  # noqa: PLW0603 - inherited by forked workers
    _BASES = {p.name: load_prepared(p) for p in photos if p in sources or p in distractors}
    _DISTRACTOR_IMAGES = [(p.name, _BASES[p.name]) for p in distractors]
    if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            rows = pool.map(_render, tasks, chunksize=16)
    else:
        rows = [_render(t) for t in tasks]
    # No two files may be byte-identical (e.g. two rounds of jpeg15 that drew no downscale):
    # re-draw the later one with another random key until every file is unique.
    by_path = {t["path"]: t for t in tasks}
    rows.sort(key=lambda r: r["path"])
    while True:
        seen: set[str] = set()
        redo = []
        for i, row in enumerate(rows):
            if row["_sha256"] in seen:
                redo.append(i)
            seen.add(row["_sha256"])
        if not redo:
            break
        for i in redo:
            task = by_path[rows[i]["path"]]
            task["attempt"] = task.get("attempt", 0) + 1
            task["rng_key"] = [*task["rng_key"][:5], task["attempt"]]
            rows[i] = _render(task)
    for row in rows:
        del row["_sha256"]
    with truth_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest.update(sources=[p.name for p in sources], distractors=[p.name for p in distractors],
                    seconds=round(time.perf_counter() - started, 1))
    manifest_file.write_text(json.dumps(manifest, indent=1))
    if not quiet:
        print(f"corpus: wrote {len(rows)} images to {out} in {manifest['seconds']} s "
              f"({len(sources)} sources, {len(distractors)} distractors)", file=sys.stderr)
    return truth_csv


def corpus_tag(n: int, seed: int, exclude: tuple[str, ...] = ()) -> str:
    return f"n{n}-seed{seed}" + (f"-without-{'+'.join(sorted(exclude))}" if exclude else "")


def read_truth(truth_csv: Path) -> list[dict]:
    with Path(truth_csv).open(newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="corpus folder (default bench-output/copies/corpus-n{N}-seed{SEED})")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                    help=f"shared real-image folder (default {DEFAULT_DATA})")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--force", action="store_true", help="regenerate even if a matching corpus exists")
    ap.add_argument("--exclude-transforms", default="",
                    help="comma-separated transforms to leave out (e.g. collage)")
    args = ap.parse_args(argv)
    exclude = tuple(sorted(filter(None, args.exclude_transforms.split(","))))
    out = args.out or ROOT / "bench-output" / "copies" / f"corpus-{corpus_tag(args.n, args.seed, exclude)}"
    generate(out, args.n, args.seed, args.data_dir, args.jobs, args.force, exclude=exclude)
    return 0


if __name__ == "__main__":
    sys.exit(main())
