"""Screenshot-like social-media posts with known boxes, for the crop tests and benchmark.

Why rendered: cropping needs exact truth (where the photo is, where the post's text ends and
the comments begin), and drawing a post frame (avatar, name, text, a real CC0 photo from the
demo corpus, a 'Like Comment Share' bar, comment bubbles) with Debian's DejaVu fonts gives it
for light and dark mode, any size, photo aspect, a two-photo grid, a text-only post and a
JPEG-recompressed screenshot. Everything is generated on the fly (tmp_path): nothing big is
committed. The layout imitates a Facebook-style card; every size scales with ``scale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

PHOTOS = Path(__file__).resolve().parents[1] / "src" / "picsift" / "demo" / "corpus" / "photos"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
Box = tuple[int, int, int, int]

LIGHT = {"page": (255, 255, 255), "text": (5, 5, 5), "muted": (101, 103, 107),
         "line": (206, 208, 212), "bubble": (240, 242, 245), "avatar": (24, 119, 242)}
DARK = {"page": (36, 37, 38), "text": (228, 230, 235), "muted": (176, 179, 184),
        "line": (62, 64, 66), "bubble": (58, 59, 60), "avatar": (45, 136, 255)}

BODY = ["Morning walk by the harbour, the light was unreal today.",
        "Who else was out early? Tag a friend who needs this view."]
COMMENTS = [("Ana Ruiz", "Stunning! Where exactly is this?"),
            ("Tom Becker", "I walk there every day, never saw it like that."),
            ("Mia Chen", "Sharing with my family, thank you")]


@dataclass
class Post:
    """A rendered post and the truth a crop must recover (boxes are x0, y0, x1, y1)."""

    name: str
    image: Image.Image
    photos: list[Box] = field(default_factory=list)
    text: Box | None = None          # avatar, author, handle and body lines: the post's own text
    bar: Box | None = None           # the 'Like Comment Share' band between its separators
    comments: Box | None = None      # everything the comments cover
    dark: bool = False


def font(size: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), max(6, round(size)))


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    """A demo photo, centre-cropped to ``size`` (any aspect) as a feed would show it."""
    image = Image.open(PHOTOS / name).convert("RGB")
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
          f: ImageFont.FreeTypeFont, fill: tuple[int, int, int]) -> Box:
    draw.text(xy, text, font=f, fill=fill)
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=f)
    return (int(x0), int(y0), int(x1), int(y1))


def _header(draw: ImageDraw.ImageDraw, x: int, y: int, s: float, c: dict, body: list[str],
            width: int) -> tuple[list[Box], int]:
    """Avatar, author, handle and body lines from (x, y); returns their boxes and the next y."""
    d = round(48 * s)
    draw.ellipse((x, y, x + d, y + d), fill=c["avatar"])
    boxes: list[Box] = [(x, y, x + d + 1, y + d + 1)]
    boxes.append(_text(draw, (x + d + 12 * s, y + 3 * s), "Harbour Diaries", font(17 * s, True), c["text"]))
    boxes.append(_text(draw, (x + d + 12 * s, y + 27 * s), "@harbourdiaries · 3h", font(14 * s), c["muted"]))
    y += d + round(14 * s)
    for line in body:
        f = font(18 * s)
        while draw.textlength(line, font=f) > width and f.size > 8:
            f = font(f.size - 1)
        boxes.append(_text(draw, (x, y), line, f, c["text"]))
        y += round(26 * s)
    return boxes, y


def _bar(draw: ImageDraw.ImageDraw, x0: int, x1: int, y: int, s: float, c: dict) -> int:
    """The 'Like Comment Share' row: an icon and a word centred in each third; returns its bottom."""
    h = round(40 * s)
    third = (x1 - x0) / 3
    for i, word in enumerate(("Like", "Comment", "Share")):
        f = font(15 * s, True)
        w = draw.textlength(word, font=f) + 24 * s
        cx = x0 + third * (i + 0.5)
        left = cx - w / 2
        icon = 16 * s
        top = y + (h - icon) / 2
        draw.rounded_rectangle((left, top, left + icon, top + icon), radius=4 * s,
                               outline=c["muted"], width=max(1, round(2 * s)))
        draw.text((left + icon + 8 * s, y + h / 2), word, font=f, fill=c["muted"], anchor="lm")
    return y + h


def bar_snippet(width: int = 680, *, scale: float = 1.0, dark: bool = False) -> Image.Image:
    """The button bar alone, as a user would cut it from a screenshot of another size."""
    c = DARK if dark else LIGHT
    pad = round(16 * scale)
    image = Image.new("RGB", (width, round(40 * scale)), c["page"])
    _bar(ImageDraw.Draw(image), pad, width - pad, 0, scale, c)
    return image


def _comments(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, s: float, c: dict,
              n: int) -> tuple[Box, int]:
    top = y
    for name, text in COMMENTS[:n]:
        d = round(32 * s)
        draw.ellipse((x, y, x + d, y + d), fill=(230, 120, 60))
        bx = x + d + round(8 * s)
        fn, ft = font(13 * s, True), font(14 * s)
        bw = min(width - (bx - x), max(draw.textlength(name, font=fn), draw.textlength(text, font=ft)) + 24 * s)
        bh = round(52 * s)
        draw.rounded_rectangle((bx, y, bx + bw, y + bh), radius=round(16 * s), fill=c["bubble"])
        draw.text((bx + 12 * s, y + 7 * s), name, font=fn, fill=c["text"])
        draw.text((bx + 12 * s, y + 27 * s), text, font=ft, fill=c["text"])
        draw.text((bx + 12 * s, y + bh + 4 * s), "Like   Reply   2h", font=font(12 * s, True), fill=c["muted"])
        y += bh + round(30 * s)
    return (x, top, x + width, y), y


def render_post(photos: list[str], *, name: str = "post", dark: bool = False, width: int = 680,
                aspect: float | None = None, layout: str = "stack", full_bleed: bool = False,
                body: list[str] | None = None, n_comments: int = 3, radius: int = 0) -> Post:
    """Render one post. ``layout``: stack (text, photo(s) below), grid (two photos side by
    side), side (photo left, text right). ``aspect`` is width/height of each photo (default:
    the photo's own). ``full_bleed`` runs a stacked photo edge to edge; ``radius`` rounds the
    photo's corners (the truth stays the photo's rectangle)."""
    s = width / 680
    c = DARK if dark else LIGHT
    pad = round(16 * s)
    body = BODY if body is None else body
    canvas = Image.new("RGB", (width, round(3000 * s)), c["page"])
    draw = ImageDraw.Draw(canvas)
    boxes: list[Box] = []
    y = pad
    if layout == "side":
        pw = round(width * 0.5)
        ph = round(pw / (aspect or 1.0))
        canvas.paste(photo(photos[0], (pw, ph)), (pad, pad))
        boxes.append((pad, pad, pad + pw, pad + ph))
        tx = pad + pw + round(16 * s)
        text_boxes, ty = _header(draw, tx, pad, s, c, body, width - pad - tx)
        y = max(pad + ph, ty)
    else:
        text_boxes, y = _header(draw, pad, y, s, c, body, width - 2 * pad)
        y += round(10 * s)
        x0, x1 = (0, width) if full_bleed else (pad, width - pad)
        if layout == "grid" and len(photos) >= 2:
            gap = max(2, round(4 * s))
            cw = (x1 - x0 - gap) // 2
            ch = round(cw / (aspect or 1.0))
            for i, name_ in enumerate(photos[:2]):
                px = x0 + i * (cw + gap)
                canvas.paste(photo(name_, (cw, ch)), (px, y))
                boxes.append((px, y, px + cw, y + ch))
            y += ch
        elif photos:
            own = Image.open(PHOTOS / photos[0])
            ratio = aspect or own.width / own.height
            pw, ph = x1 - x0, round((x1 - x0) / ratio)
            mask = None
            if radius:
                mask = Image.new("L", (pw, ph), 0)
                ImageDraw.Draw(mask).rounded_rectangle((0, 0, pw - 1, ph - 1), radius=round(radius * s), fill=255)
            canvas.paste(photo(photos[0], (pw, ph)), (x0, y), mask)
            boxes.append((x0, y, x0 + pw, y + ph))
            y += ph
    y += round(10 * s)
    f = font(14 * s)
    draw.text((pad, y), "1.2K reactions", font=f, fill=c["muted"])
    right = "34 comments   5 shares"
    draw.text((width - pad - draw.textlength(right, font=f), y), right, font=f, fill=c["muted"])
    y += round(28 * s)
    lw = max(1, round(s))
    draw.line((pad, y, width - pad, y), fill=c["line"], width=lw)
    bar_top = y + lw
    bar_bottom = _bar(draw, pad, width - pad, bar_top, s, c)
    draw.line((pad, bar_bottom, width - pad, bar_bottom), fill=c["line"], width=lw)
    y = bar_bottom + lw + round(12 * s)
    comments, y = _comments(draw, pad, y, width - 2 * pad, s, c, n_comments)
    image = canvas.crop((0, 0, width, y + pad))
    return Post(name, image, boxes, _union(text_boxes), (0, bar_top, width, bar_bottom),
                comments, dark)


def jpeg(post: Post, quality: int = 70) -> Post:
    """The same post after a lossy re-save, as screenshots travel between platforms."""
    import io

    buffer = io.BytesIO()
    post.image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Post(post.name + f"_jpeg{quality}", Image.open(buffer).convert("RGB"), post.photos,
                post.text, post.bar, post.comments, post.dark)


def variants() -> list[Post]:
    """The standard set: every case the photo and text crops must handle."""
    posts = [
        render_post(["coffee.jpg"], name="light_landscape"),
        render_post(["hubble.jpg"], name="dark_hubble", dark=True, aspect=4 / 3),
        render_post(["astronaut.jpg"], name="light_portrait", aspect=3 / 4, width=600),
        render_post(["rocket.jpg"], name="dark_full_bleed", dark=True, full_bleed=True),
        render_post(["chelsea.jpg"], name="small", width=420),
        render_post(["camera.jpg"], name="phone_size", width=1080, aspect=1.0),
        render_post(["coins.png"], name="light_grey_photo", aspect=16 / 9),
        render_post(["rocket.jpg"], name="rounded_corners", radius=24, aspect=1.0),
        render_post(["retina.jpg", "coffee.jpg"], name="grid_light", layout="grid"),
        render_post(["astronaut.jpg", "rocket.jpg"], name="grid_dark", layout="grid", dark=True,
                    aspect=4 / 5),
        render_post(["chelsea.jpg"], name="side_by_side", layout="side", aspect=1.0, width=900,
                    body=["Our cat has opinions", "about Mondays."]),
    ]
    posts.append(jpeg(render_post(["coffee.jpg"], name="recompressed", width=640, aspect=1.2)))
    return posts


def text_only(dark: bool = False) -> Post:
    """A post with no photo at all: only text, the bar and comments."""
    return render_post([], name="text_only_dark" if dark else "text_only", dark=dark,
                       body=BODY + ["Third line of a longer post without any picture."])


def many(n: int, seed: int = 0) -> list[Post]:
    """``n`` varied posts for the benchmark: photo, mode, layout, width, aspect and JPEG
    re-saves drawn at random (seeded), every tenth one text-only."""
    import random

    rng = random.Random(seed)
    names = ["coffee.jpg", "hubble.jpg", "astronaut.jpg", "rocket.jpg", "chelsea.jpg",
             "camera.jpg", "coins.png", "retina.jpg"]
    posts = []
    for i in range(n):
        dark = rng.random() < 0.4
        width = rng.choice([420, 540, 600, 680, 720, 900, 1080])
        aspect = rng.choice([None, 1.0, 0.8, 4 / 3, 16 / 9])
        layout = rng.choice(["stack", "stack", "stack", "grid", "side" if width >= 600 else "stack"])
        if i % 10 == 9:
            post = render_post([], name=f"post{i:04d}_text", dark=dark, width=width)
        else:
            photos = rng.sample(names, 2)
            stems = "+".join(Path(n).stem for n in (photos if layout == "grid" else photos[:1]))
            post = render_post(photos, name=f"post{i:04d}_{layout}_{stems}", dark=dark, width=width,
                               aspect=aspect, layout=layout,
                               full_bleed=layout == "stack" and rng.random() < 0.3,
                               radius=rng.choice([0, 0, 16]) if layout == "stack" else 0)
        if rng.random() < 0.25:
            post = jpeg(post, rng.choice([60, 75, 90]))
        posts.append(post)
    return posts
