"""The `picsift` command end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import hashlib
import html
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO, run_picsift

import picsift


def _snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every file under root except the workspace: content hash, size, mtime_ns, mode."""
    state = {}
    for path in sorted(root.rglob("*")):
        if ".picsift" in path.relative_to(root).parts or not path.is_file():
            continue
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        state[str(path.relative_to(root))] = (digest, st.st_size, st.st_mtime_ns, st.st_mode)
    return state


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, cli) -> None:
    out = tmp_path / "demo out"
    result = run_picsift("demo", "--out", out, "--workers", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    # The table: one row per media (32 distinct images + 3 video keyframes).
    media = pd.read_csv(out / "media.csv")
    assert media["media_id"].is_unique
    assert (media["kind"] == "image").sum() == 32
    assert (media["kind"] == "frame").sum() == 3
    assert len(pd.read_csv(out / "duplicates.csv")) == 6

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<h2>Exact duplicates</h2>" in page
    section = page.split("<h2>Exact duplicates</h2>", 1)[1].split("<h2>", 1)[0]
    assert "3 group(s) of byte-identical files, 6 paths" in section
    corpus = (out / "corpus").absolute()
    for name in ("photos/chelsea.jpg", "reposts/chelsea – repost (1).jpg",
                 "photos/rocket.jpg", "odd/rocket copy.JPG", "photos/coffee.jpg",
                 "reposts/coffee_copy.jpg"):
        assert html.escape(str(corpus / name)) in section, name
    assert section.count('<img src="data:image/jpeg;base64,') == 3
    # Broken files are listed with their reasons; the keyframes are shown.
    errors = page.split("<h2>Errors</h2>", 1)[1]
    assert "saved page.png" in errors and "HTML page saved with an image extension" in errors
    assert "empty.jpg" in errors and "notes.jpg" in errors
    assert "3 keyframes" in page
    assert "<script" not in page.lower()

    # Running it again on the same folder resumes instead of failing or duplicating.
    again = cli("demo", "--out", out, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out / "media.csv")) == len(media)


def test_info_without_workspace_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "a folder with a long enough name to overflow eighty columns" / "photos"
    folder.mkdir(parents=True)
    result = run_picsift("info", folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no picsift workspace at ")
    assert str(folder) in lines[0]
    assert "Traceback" not in result.stderr
    assert not (folder / ".picsift").exists()  # reading never creates a workspace


def test_read_verbs_without_workspace_fail_cleanly(tmp_path: Path, cli) -> None:
    for verb in ("info", "errors", "duplicates", "report", "export"):
        extra = ("--out", str(tmp_path / "x.csv")) if verb == "export" else ()
        result = cli(verb, tmp_path, *extra)
        assert result.returncode == 2, verb
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: no picsift workspace at "), result.stderr
    assert not (tmp_path / ".picsift").exists()
    assert not (tmp_path / "x.csv").exists()


def test_error_message_keeps_brackets_in_paths(tmp_path: Path, cli) -> None:
    folder = tmp_path / "photos [red] [2021]"
    folder.mkdir()
    result = cli("info", folder)
    assert result.returncode == 2
    assert str(folder) in result.stderr


def test_scan_info_errors_report_cli(demo_copy: Path, tmp_path: Path, cli) -> None:
    result = run_picsift("scan", demo_copy, "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout and f"picsift errors {demo_copy / '.picsift'}" in result.stdout

    info = cli("info", demo_copy, "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["images"] == 32 and facts["image_files"] == 35
    assert facts["exact_duplicate_groups"] == 3
    assert facts["videos"] == 1 and facts["keyframes"] == 3
    assert facts["errors"] == 3  # corrupt.png, notes.jpg, saved page.png
    assert facts["truncated"] == 1
    assert facts["roots"] == [str(demo_copy)]
    assert facts["last_run"]["status"] == "done"

    errors = cli("errors", demo_copy, "--csv", tmp_path / "errors.csv")
    assert errors.returncode == 0
    assert "3 error(s)" in errors.stdout
    listed = pd.read_csv(tmp_path / "errors.csv")
    assert set(listed["kind"]) == {"corrupt", "not_image"}

    report = cli("report", demo_copy, "--out", tmp_path / "r.html")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    for title in ("Overview", "Exact duplicates", "Videos and keyframes", "Errors"):
        assert f"<h2>{title}</h2>" in page
    assert "corrupt.png" in page.split("<h2>Errors</h2>", 1)[1]


def test_scanning_never_modifies_originals(demo_copy: Path, tmp_path: Path) -> None:
    (demo_copy / "odd" / "empty.jpg").write_bytes(b"")
    os.utime(demo_copy / "photos" / "coffee.jpg", ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(demo_copy)
    assert len(before) >= 37

    ws = picsift.open(demo_copy)
    ws.scan(workers=2, progress=False)
    ws.table()
    ws.duplicates()
    from picsift.report.html import build_report

    build_report(ws, tmp_path / "report.html")
    ws.close()
    result = run_picsift("scan", demo_copy, "--workers", "1", "--no-progress", "--retry-errors")
    assert result.returncode == 0, result.stderr

    assert _snapshot(demo_copy) == before
    # All picsift wrote went into the workspace folder.
    new = {str(p.relative_to(demo_copy)) for p in demo_copy.rglob("*")} - \
        {str(p.relative_to(DEMO)) for p in DEMO.rglob("*")}
    assert all(n == ".picsift" or n.startswith(".picsift/") or n == "odd/empty.jpg" for n in new)
