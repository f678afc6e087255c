"""Build the demo corpus shipped in src/picsift/demo/corpus from public-domain/CC0 photos.

Source photos come from scikit-image's bundled sample data (each one public domain or CC0;
see the LICENSE-DATA.md this script writes next to the corpus). The corpus shows what picsift
handles: exact byte copies under other names, edited reposts (crop, mirror, meme caption,
resize, rotation, colour filter, pasted into a screenshot), odd formats and modes, EXIF
orientation, broken files, and a short video with three scenes.

Run once by a developer (needs scikit-image): python scripts/make_demo_corpus.py
The output is committed; picsift itself never needs scikit-image.
"""

from __future__ import annotations

import io
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import skimage.data as data
from PIL import Image, ImageDraw, ImageFont, ImageOps

OUT = Path(__file__).resolve().parents[1] / "src" / "picsift" / "demo" / "corpus"
TEXT_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "text"
POSTS = ("shot_uk.png", "shot_es.png", "shot_zh.png", "shot_ar.png")

SOURCES = {
    # name: (loader, licence note)
    "astronaut": (data.astronaut, "public domain (NASA)"),
    "coffee": (data.coffee, "CC0, Rachel Michetti"),
    "chelsea": (data.chelsea, "CC0, Stefan van der Walt"),
    "rocket": (data.rocket, "public domain (SpaceX)"),
    "hubble": (data.hubble_deep_field, "public domain (NASA)"),
    "horse": (data.horse, "CC0, Andreas Preuss"),
    "camera": (data.camera, "CC0, Lav Varshney"),
    "retina": (data.retina, "CC0 (Häggström, 2014)"),
    "page": (data.page, "no known copyright restrictions"),
    "coins": (data.coins, "no known copyright restrictions (Greek coins, Brooklyn Museum)"),
}


def load(name: str) -> Image.Image:
    arr = SOURCES[name][0]()
    if arr.dtype == bool:
        arr = (~arr).astype(np.uint8) * 255
    img = Image.fromarray(arr)
    img.thumbnail((800, 800))
    return img


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        return ImageFont.load_default()


def save_jpeg(img: Image.Image, path: Path, quality: int = 85, **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, "JPEG", quality=quality, **kw)


def meme(img: Image.Image, top: str, bottom: str) -> Image.Image:
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    f = font(max(18, out.width // 12))
    for text, y in ((top, 8), (bottom, out.height - out.width // 9 - 8)):
        w = draw.textlength(text, font=f)
        draw.text(((out.width - w) / 2, y), text, font=f, fill="white", stroke_width=3,
                  stroke_fill="black")
    return out


def screenshot(img: Image.Image) -> Image.Image:
    photo = img.convert("RGB").resize((480, round(480 * img.height / img.width)))
    canvas = Image.new("RGB", (560, photo.height + 260), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((20, 20, 60, 60), fill=(29, 155, 240))
    draw.text((72, 22), "Cat Facts @catfacts · 2h", font=font(16), fill=(20, 20, 20))
    draw.text((72, 44), "Look who is judging you today", font=font(16), fill=(20, 20, 20))
    canvas.paste(photo, (40, 90))
    y = 90 + photo.height + 16
    draw.text((40, y), "Reply   Repost   Like 1.2K   Share", font=font(15), fill=(90, 90, 90))
    draw.line((20, y + 30, 540, y + 30), fill=(220, 220, 220))
    draw.text((40, y + 45), "@someone: this cat knows", font=font(14), fill=(40, 40, 40))
    return canvas


def exif_rotated(img: Image.Image, path: Path) -> None:
    """Store pixels rotated as a phone camera does, with Orientation=6 and camera EXIF."""
    stored = img.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # upright = rotate back
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "DemoCam"
    exif[0x0110] = "DC-1"
    exif[0x0132] = "2021:05:17 14:03:22"
    exif.get_ifd(0x8769)[0x9003] = "2021:05:17 14:03:22"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (Fraction(48), Fraction(51), Fraction(2916, 100))
    gps[3] = "E"
    gps[4] = (Fraction(2), Fraction(17), Fraction(4008, 100))
    stored.save(path, "JPEG", quality=88, exif=exif)


def video(path: Path) -> None:
    """6 s, 10 fps, 320x240 H.264: astronaut (static), coffee (slow zoom), rocket (pan)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.options = {"crf": "30", "preset": "veryslow"}
    for name in ("astronaut", "coffee", "rocket"):
        src = load(name).convert("RGB").resize((480, 360))
        for i in range(20):
            box = (i * 4, i * 3, i * 4 + 320 + (0 if name != "coffee" else 60 - 3 * i),
                   i * 3 + 240 + (0 if name != "coffee" else 45 - 2 * i))
            frame = src.crop(box).resize((320, 240))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    photos, reposts, odd, vids = (OUT / d for d in ("photos", "reposts", "odd", "video"))
    for d in (photos, reposts, odd, vids):
        d.mkdir(parents=True)
    for name in SOURCES:
        img = load(name)
        if name in ("horse", "coins", "page"):
            img.save(photos / f"{name}.png", optimize=True)
        else:
            save_jpeg(img, photos / f"{name}.jpg")

    # exact copies under other names
    shutil.copyfile(photos / "coffee.jpg", reposts / "coffee_copy.jpg")
    shutil.copyfile(photos / "chelsea.jpg", reposts / "chelsea – repost (1).jpg")
    shutil.copyfile(photos / "rocket.jpg", odd / "rocket copy.JPG")
    # edited reposts (for copy detection)
    astro = load("astronaut")
    save_jpeg(astro.crop((120, 60, 520, 460)), reposts / "astronaut_crop.jpg", 80)
    save_jpeg(ImageOps.mirror(astro), reposts / "astronaut_mirror.jpg", 80)
    save_jpeg(meme(astro, "WHEN THE WIFI", "FINALLY CONNECTS"), reposts / "astronaut_meme.jpg", 75)
    rocket = load("rocket")
    save_jpeg(rocket.resize((rocket.width * 2 // 5, rocket.height * 2 // 5)), reposts / "rocket_small.jpg", 55)
    save_jpeg(load("coffee").rotate(10, expand=True, fillcolor="white"), reposts / "coffee_rotated.jpg", 80)
    retina = np.asarray(load("retina").convert("RGB")).astype(np.float32)
    sepia = np.clip(retina @ np.array([[.39, .35, .27], [.77, .69, .53], [.19, .17, .13]]), 0, 255)
    save_jpeg(Image.fromarray(sepia.astype(np.uint8)), reposts / "retina_sepia.jpg", 80)
    screenshot(load("chelsea")).save(reposts / "chelsea_screenshot.png", optimize=True)

    # odd formats and modes
    exif_rotated(load("astronaut").resize((400, 400)), odd / "phone_photo_rotated.jpg")
    load("coffee").convert("CMYK").save(odd / "coffee_cmyk.jpg", "JPEG", quality=85)
    grey16 = (np.asarray(load("camera").convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(odd / "camera_16bit.png")
    rgba = load("chelsea").convert("RGBA").resize((300, 200))
    rgba.putalpha(Image.linear_gradient("L").resize((300, 200)))
    rgba.save(odd / "chelsea_alpha.png")
    frames = [load(n).convert("RGB").resize((200, 150)).convert("P", palette=Image.Palette.ADAPTIVE)
              for n in ("horse", "coins", "rocket")]
    frames[0].save(odd / "animated.gif", save_all=True, append_images=frames[1:], duration=300, loop=0)
    load("hubble").resize((240, 180)).save(odd / "hubble.webp", quality=80)
    load("hubble").resize((240, 180)).save(odd / "hubble.tiff", compression="tiff_lzw")
    load("horse").convert("RGB").resize((160, 120)).save(odd / "horse.bmp")
    try:
        load("coffee").resize((240, 160)).save(odd / "coffee.avif", quality=60)
    except Exception as exc:  # pragma: no cover
        print("no AVIF writer:", exc, file=sys.stderr)
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        load("chelsea").resize((240, 160)).save(odd / "chelsea.heic", quality=60)
    except Exception as exc:  # pragma: no cover
        print("no HEIC writer:", exc, file=sys.stderr)
    # broken files, reported with a reason, never fatal
    jpeg = (photos / "rocket.jpg").read_bytes()
    (odd / "truncated_rocket.jpg").write_bytes(jpeg[: len(jpeg) * 6 // 10])
    (odd / "notes.jpg").write_text("This is a text file someone saved with a .jpg name.\n")
    (odd / "saved page.png").write_text("<!DOCTYPE html><html><body><img src=x.png></body></html>\n")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "PNG")
    (odd / "corrupt.png").write_bytes(buffer.getvalue()[:40] + bytes(200))
    # empty.jpg (0 bytes) is created by `picsift demo` when it copies the corpus.
    video(vids / "three_scenes.mp4")
    # posts with text in four scripts, for `picsift text` (rendered by make_text_corpus.py)
    posts = OUT / "posts"
    posts.mkdir()
    for name in POSTS:
        shutil.copyfile(TEXT_SET / name, posts / name)

    lines = ["# Demo corpus: provenance and licences", "",
             "Made by scripts/make_demo_corpus.py from photos bundled with scikit-image "
             "(skimage.data). Every source is public domain or CC0:", ""]
    lines += [f"- {name}: {note}" for name, (_, note) in SOURCES.items()]
    lines += ["", "Edited copies, odd formats, broken files and the video are derived from them.",
              "posts/ holds screenshots of made-up posts rendered by scripts/make_text_corpus.py "
              "with Debian's DejaVu and Noto fonts (our own work, CC0)."]
    (OUT / "LICENSE-DATA.md").write_text("\n".join(lines) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
