"""Shared helpers: real images generated on the fly, the bundled demo corpus, running the CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.demo import corpus_path

DEMO = corpus_path()


DEMO_CLASSES = {"cat": "chelsea.jpg", "coffee": "coffee.jpg", "rocket": "rocket.jpg"}


def photo_variations(photo: Image.Image, seed: int, n: int) -> list[Image.Image]:
    """Different crops, mirror images and colour saturations of one real photo."""
    from PIL import ImageEnhance, ImageOps

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w, h = photo.size
        share = rng.uniform(0.6, 0.95)
        cw, ch = int(w * share), int(h * share)
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        im = photo.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        out.append(ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4)))
    return out


def class_dataset(root: Path, seed: int, n: int) -> Path:
    """One sub-folder per class of DEMO_CLASSES, n variations of its demo photo in each."""
    for label, name in DEMO_CLASSES.items():
        (root / label).mkdir(parents=True)
        photo = Image.open(DEMO / "photos" / name).convert("RGB")
        for i, im in enumerate(photo_variations(photo, seed, n)):
            im.save(root / label / f"{label}_{i}.jpg", quality=85)
    return root


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    """An RGB picture of random noise: every seed gives different bytes."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def write_noise_jpeg(path: Path, width: int = 64, height: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(width, height, seed).save(path, "JPEG", quality=90)
    return path


def write_solid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (32, 24),
                fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, fmt)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_video(path: Path, scenes: list[Image.Image], *, seconds: float = 2.0, fps: int = 10,
                size: tuple[int, int] = (160, 120), motion: bool = False) -> Path:
    """H.264 mp4 (PyAV) showing each picture for ``seconds``, frame n at time n / fps exactly.

    ``motion`` adds a small white square moving across each scene, so that no two frames of a
    scene are identical (as in real footage) while the scene-change score stays low.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    per_scene = round(seconds * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        index = 0
        for scene in scenes:
            still = np.asarray(scene.convert("RGB").resize(size))
            for step in range(per_scene):
                pixels = still
                if motion:
                    pixels = still.copy()
                    x = (step * 6) % (size[0] - 8)
                    pixels[8:16, x:x + 8] = 255
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
                index += 1
        for packet in stream.encode():
            container.mux(packet)
    return path


def picsift_env() -> dict[str, str]:
    """Environment for CLI subprocesses: no terminal width hint, so output is as in a log file."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_picsift(*args: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 120,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m picsift ARGS`` the way a user runs it, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "picsift", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or picsift_env(),
        check=False,
    )


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run the ``picsift`` entry point in this process (faster than a subprocess)."""
    from picsift.cli.app import main

    def invoke(*args: str | os.PathLike[str]) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["picsift", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled demo corpus (real CC0 photos, odd formats, broken files)."""
    target = tmp_path / "corpus"
    shutil.copytree(DEMO, target)
    return target


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary folder under /tmp every user may enter (pytest's tmp_path is 0700 for root)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="picsift-test-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                full = os.path.join(dirpath, name)
                if not os.path.islink(full):
                    os.chmod(full, 0o777)
        shutil.rmtree(path, ignore_errors=True)
