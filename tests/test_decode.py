"""picsift.media.decode: every odd kind of image comes out as upright 8-bit RGB, or a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, noise_image
from PIL import Image

from picsift.errors import MediaError
from picsift.media.decode import DecodeOptions, iter_frames, load_image, probe_image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def close(pixel: object, expected: tuple[int, ...], tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected)) <= tol))


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    # The upright picture: 60 wide, 30 high, blue, with a red top-left and green top-right block.
    upright = np.zeros((30, 60, 3), np.uint8)
    upright[:] = BLUE
    upright[:8, :8] = RED
    upright[:8, -8:] = GREEN
    # A camera held sideways stores the pixels rotated 90 degrees anticlockwise and writes
    # Orientation=6 ("rotate 90 clockwise to display").
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (30, 60)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())

    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (60, 30)
    pixels = np.asarray(image)
    assert close(pixels[3, 3], RED)
    assert close(pixels[3, -4], GREEN)
    assert close(pixels[-4, 3], BLUE)
    assert close(pixels[-4, -4], BLUE)

    probe = probe_image(path)
    assert probe.exif.orientation == 6
    assert (probe.width, probe.height) == (60, 30)

    # Reduced decode keeps the orientation too.
    small = load_image(path, size=20)
    assert small.size == (20, 10)
    assert close(np.asarray(small)[1, 1], RED, tol=40)


def test_demo_rotated_phone_photo_is_upright() -> None:
    path = DEMO / "odd" / "phone_photo_rotated.jpg"
    with Image.open(path) as raw:
        stored = raw.size
        orientation = raw.getexif().get(0x0112)
    assert orientation in (5, 6, 7, 8)
    image = load_image(path)
    assert image.size == (stored[1], stored[0])
    probe = probe_image(path)
    assert (probe.width, probe.height) == image.size


def test_cmyk_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (20, 10), (255, 0, 0, 0))  # pure cyan ink
    cmyk.paste((0, 0, 0, 255), (10, 0, 20, 10))  # pure black ink on the right half
    path = tmp_path / "cmyk.tif"
    cmyk.save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    assert close(pixels[5, 2], (0, 255, 255))
    assert close(pixels[5, 17], (0, 0, 0))
    assert probe_image(path).mode == "CMYK"


def test_demo_cmyk_jpeg_looks_like_the_rgb_original() -> None:
    cmyk = load_image(DEMO / "odd" / "coffee_cmyk.jpg")
    rgb = load_image(DEMO / "photos" / "coffee.jpg")
    assert cmyk.mode == "RGB"
    assert cmyk.size == rgb.size
    diff = np.abs(np.asarray(cmyk, dtype=int) - np.asarray(rgb, dtype=int)).mean()
    assert diff < 25, diff  # inverted or channel-swapped CMYK would be ~100


def test_16bit_greyscale_scales_to_8bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I;16")
    image = load_image(path)
    assert image.mode == "RGB"
    row = np.asarray(image)[0]
    assert row[:, 0].tolist() == [0, 1, 128, 255]
    assert (row[:, 0] == row[:, 1]).all() and (row[:, 1] == row[:, 2]).all()


def test_demo_16bit_png_uses_the_full_range() -> None:
    image = load_image(DEMO / "odd" / "camera_16bit.png")
    pixels = np.asarray(image)
    assert image.mode == "RGB"
    # Clipping (16-bit values taken as 8-bit) would make nearly everything 255.
    assert pixels.min() < 40 and pixels.max() > 200
    assert (pixels == 255).mean() < 0.2


def test_palette_with_transparency_is_flattened_on_white(tmp_path: Path) -> None:
    indices = np.zeros((10, 10), np.uint8)
    indices[:, 5:] = 1
    image = Image.fromarray(indices, "P")
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)  # index 0 (black) is transparent

    rgb = np.asarray(load_image(path))
    assert close(rgb[5, 1], WHITE, tol=0)  # transparent -> white, not black
    assert close(rgb[5, 8], RED, tol=0)


def test_rgba_is_flattened_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[:, 0] = (255, 0, 0, 0)      # fully transparent red -> white
    rgba[:, 1] = (0, 0, 255, 255)    # opaque blue stays blue
    rgba[:, 2] = (0, 0, 0, 128)      # half-transparent black -> mid grey
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)

    rgb = np.asarray(load_image(path))
    assert close(rgb[0, 0], WHITE, tol=0)
    assert close(rgb[0, 1], BLUE, tol=0)
    assert close(rgb[0, 2], (127, 127, 127), tol=2)


def test_one_bit_image(tmp_path: Path) -> None:
    bits = Image.new("1", (8, 4), 0)
    bits.paste(1, (4, 0, 8, 4))
    path = tmp_path / "bits.png"
    bits.save(path)
    with Image.open(path) as raw:
        assert raw.mode == "1"
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (4, 8, 3)
    assert (rgb[:, :4] == 0).all()
    assert (rgb[:, 4:] == 255).all()


def test_animated_gif_first_frame_and_all_frames(tmp_path: Path) -> None:
    colours = [RED, GREEN, BLUE]
    frames = [Image.new("RGB", (16, 12), c) for c in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)

    first = load_image(path)
    assert first.mode == "RGB" and first.size == (16, 12)
    assert close(np.asarray(first)[6, 8], RED)
    assert probe_image(path).n_frames == 3

    all_frames = list(iter_frames(path))
    assert len(all_frames) == 3
    for image, colour in zip(all_frames, colours):
        assert image.mode == "RGB" and image.size == (16, 12)
        assert close(np.asarray(image).reshape(-1, 3).mean(axis=0), colour)
    assert len(list(iter_frames(path, max_frames=2))) == 2


def test_still_image_gives_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    Image.new("RGB", (5, 5), GREEN).save(path)
    frames = list(iter_frames(path))
    assert len(frames) == 1 and close(np.asarray(frames[0])[2, 2], GREEN, tol=0)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (400, 300), 0).save(path, optimize=True)  # tiny file, 120,000 pixels
    assert path.stat().st_size < 2000
    options = DecodeOptions(max_pixels=100_000)
    for call in (lambda: load_image(path, options=options),
                 lambda: probe_image(path, options),
                 lambda: next(iter_frames(path, options=options))):
        with pytest.raises(MediaError) as info:
            call()
        assert info.value.kind == "too_large"
        message = str(info.value)
        assert "120,000 pixels" in message
        assert "limit of 100,000" in message
    # Under the limit the same file decodes.
    assert load_image(path, options=DecodeOptions(max_pixels=120_000)).size == (400, 300)


def test_truncated_jpeg_decodes_and_is_flagged(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    noise_image(200, 150, seed=3).save(whole, "JPEG", quality=90)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])

    assert probe_image(whole).truncated is False
    probe = probe_image(cut)
    assert probe.truncated is True
    assert (probe.format, probe.width, probe.height) == ("JPEG", 200, 150)
    image = load_image(cut)
    assert image.size == (200, 150)
    # The part that was there is the real picture (top rows match the intact file).
    top_cut = np.asarray(image, dtype=int)[:16]
    top_whole = np.asarray(load_image(whole), dtype=int)[:16]
    assert np.abs(top_cut - top_whole).mean() < 2

    with pytest.raises(MediaError) as info:
        load_image(cut, options=DecodeOptions(allow_truncated=False))
    assert info.value.kind == "corrupt"


def test_demo_truncated_jpeg_is_flagged() -> None:
    assert probe_image(DEMO / "odd" / "truncated_rocket.jpg").truncated is True


@pytest.mark.parametrize("landscape", [True, False])
def test_draft_decode_of_big_jpeg(tmp_path: Path, landscape: bool) -> None:
    size = (4000, 3000) if landscape else (3000, 4000)
    gradient = np.linspace(0, 255, size[0], dtype=np.uint8)
    pixels = np.repeat(np.stack([gradient] * 3, axis=-1)[None], size[1], axis=0)
    path = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(path, "JPEG", quality=85)

    image = load_image(path, size=224)
    assert image.mode == "RGB"
    assert max(image.size) == 224
    assert image.size == ((224, 168) if landscape else (168, 224))
    # Still the same picture: dark on the left, bright on the right.
    row = np.asarray(image, dtype=int)[image.height // 2, :, 0]
    assert row[:5].mean() < 20 and row[-5:].mean() > 235
    # A small image is never enlarged.
    with Image.open(DEMO / "reposts" / "rocket_small.jpg") as small:
        assert load_image(small.filename, size=4096).size == small.size


@pytest.mark.parametrize(
    ("name", "content", "kind", "words"),
    [
        ("empty.jpg", b"", "empty", "0 bytes"),
        ("notes.jpg", b"shopping list: milk, eggs\n", "not_image", "text file"),
        ("page.png", b"<!DOCTYPE html><html><body>404</body></html>", "not_image", "HTML"),
        ("doc.jpg", b"%PDF-1.7\n" + bytes(range(256)), "not_image", "PDF"),
        ("head.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt", "PNG"),
    ],
)
def test_non_images_give_a_clear_reason(tmp_path: Path, name: str, content: bytes, kind: str,
                                        words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError) as info:
        probe_image(path)
    assert info.value.kind == kind
    assert words in info.value.reason
    assert "\n" not in info.value.reason


def test_every_readable_demo_image_decodes_to_rgb() -> None:
    readable = [p for p in DEMO.rglob("*") if p.suffix.lower() in
                {".jpg", ".png", ".tiff", ".webp", ".gif", ".bmp", ".heic", ".avif"}
                and p.name not in {"notes.jpg", "saved page.png", "corrupt.png"}]
    assert len(readable) >= 28
    for path in readable:
        image = load_image(path, size=64)
        assert image.mode == "RGB", path
        assert 1 <= min(image.size) and max(image.size) <= 64, path


def test_jpeg_cut_inside_its_header_is_corrupt_not_io(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    noise_image(64, 64, seed=4).save(whole, "JPEG", quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:120])  # ends before the image data starts
    with pytest.raises(MediaError) as info:
        probe_image(cut)
    assert info.value.kind == "corrupt"  # 'io' would send the user looking at permissions
    assert "JPEG" in info.value.reason
