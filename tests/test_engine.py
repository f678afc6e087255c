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
