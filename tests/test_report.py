"""The HTML report escapes every string that comes from the corpus."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from conftest import write_noise_jpeg

import picsift
from picsift.report.html import build_report

SCRIPT_NAME = "<script>alert(1)</script>.jpg"


def test_report_escapes_hostile_file_names(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    # '/' cannot be part of a file name, so the name spans a folder: <script>alert(1)< / script>.jpg
    hostile = corpus / SCRIPT_NAME
    assert hostile.parent.name == "<script>alert(1)<"
    write_noise_jpeg(hostile, seed=1)
    shutil.copyfile(hostile, corpus / "copy.jpg")  # a duplicate: its full path is listed
    attribute = corpus / '"><img src=x onerror=alert(2)>.png'
    attribute.write_text("<html><script>alert(3)</script></html>")  # an error with a reason
    newline = corpus / "two\nlines & <b>bold.gif"
    newline.write_bytes(b"GIF89a broken")
    write_noise_jpeg(corpus / "plain.jpg", seed=2)

    ws = picsift.open(corpus)
    ws.scan(workers=1, progress=False)
    assert {str(hostile), str(corpus / "copy.jpg")} <= set(ws.duplicates()["path"])
    assert {str(attribute), str(newline)} <= set(ws.errors()["path"])
    out = build_report(ws)
    ws.close()
    assert out == corpus / ".picsift" / "report.html"
    page = out.read_text(encoding="utf-8")

    # No markup from a file name survives: no script, no injected tag or attribute.
    assert "<script" not in page.lower()
    assert "<img src=x" not in page
    assert "<b>bold" not in page
    assert not re.search(r"<img[^>]*onerror", page)
    # ... and the names are still there, readable once unescaped.
    assert html.escape(str(hostile)) in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert html.escape(str(attribute)) in page
    assert html.escape("two\\nlines & <b>bold.gif") in page  # newline shown as \n
    assert "script&gt;.jpg" in page  # the gallery caption (file name only)
    # Every <img> is an inlined thumbnail.
    assert all(src.startswith("data:image/jpeg;base64,")
               for src in re.findall(r'<img src="([^"]*)"', page))
    assert len(re.findall(r"<img ", page)) == len(re.findall(r'<img src="data:', page))


def test_report_of_a_fresh_workspace_says_nothing_found(tmp_path: Path) -> None:
    write_noise_jpeg(tmp_path / "only.jpg")
    ws = picsift.open(tmp_path)
    ws.scan(workers=1, progress=False)
    page = build_report(ws, tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    ws.close()
    assert "No byte-identical files at several paths." in page
    assert "No videos." in page and "No errors." in page
    assert page.count('<img src="data:image/jpeg;base64,') == 1


def test_report_shows_colors_once_computed(tmp_path: Path) -> None:
    """Analysis sections appear only after the analysis ran (here: colors)."""
    from conftest import DEMO
    import picsift
    from picsift.analyses.colors import analyse_colors
    from picsift.report.html import build_report

    shutil.copytree(DEMO / "photos", tmp_path / "photos")
    ws = picsift.open(tmp_path / "photos")
    ws.scan(workers=1)
    before = build_report(ws, tmp_path / "before.html").read_text()
    assert "<h2>Colors</h2>" not in before and "<h2>Faces</h2>" not in before
    analyse_colors(ws, workers=1)
    after = build_report(ws, tmp_path / "after.html").read_text()
    assert "<h2>Colors</h2>" in after and "coffee.jpg" in after and "palette" in after
