"""The engine runs work in worker processes the same way from a script, a notebook or the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import DEMO


def test_script_without_main_guard_scans_with_workers(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for photo in sorted((DEMO / "photos").glob("*.jpg"))[:4]:
        (corpus / photo.name).write_bytes(photo.read_bytes())
    script = tmp_path / "notebook_like.py"
    script.write_text(
        "import picsift\n"
        f"ws = picsift.open({str(corpus)!r})\n"
        "summary = ws.scan(workers=2)\n"
        "print('stored', summary.images, 'errors', summary.errors)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "stored 4 errors 0" in run.stdout


def test_forked_workers_do_not_hang_after_opencv_ran_in_the_parent(tmp_path: Path) -> None:
    """OpenCV's thread pool, started in the parent (OCR, a query photo...), hung every
    forked SIFT worker at cv2.setNumThreads: the engine now stops it before forking."""
    script = tmp_path / "parent_used_opencv.py"
    script.write_text(
        "import shutil, sys\n"
        "from pathlib import Path\n"
        "import cv2, numpy as np\n"
        "import picsift\n"
        "img = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)\n"
        "for _ in range(3):\n"
        "    cv2.GaussianBlur(cv2.resize(img, (900, 900)), (31, 31), 5)\n"
        "folder = Path(sys.argv[1]) / 'photos'\n"
        "shutil.copytree(sys.argv[2], folder)\n"
        "ws = picsift.open(folder)\n"
        "ws.scan(workers=2)\n"
        "print('described', ws.copies(workers=2).summary.described)\n")
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(DEMO / "photos")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "described 10" in done.stdout
