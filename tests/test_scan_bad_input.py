"""A corpus of everything that goes wrong in real folders, scanned in one run.

The run must finish, store every good image, and record each bad entry once with the right
kind and a reason a researcher can act on. Permission cases need a non-root user: when the
tests run as root (CI containers) the scan runs in a forked child that drops to nobody.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import noise_image, write_noise_jpeg

import picsift

NOBODY = 65534
MAX_PIXELS = 50_000  # good test images are 64 x 64 = 4,096 pixels; the bomb is 120,000


def build_bad_corpus(root: Path) -> dict[str, Path]:
    """Write the corpus; return the notable paths by role."""
    p: dict[str, Path] = {}
    p["plain"] = write_noise_jpeg(root / "good" / "plain.jpg", seed=1)
    p["space"] = write_noise_jpeg(root / "good" / "with  two spaces.jpg", seed=2)
    p["unicode"] = write_noise_jpeg(root / "good" / "ünïcødé 猫 – (1).jpg", seed=3)
    p["newline"] = write_noise_jpeg(root / "good" / "new\nline.jpg", seed=4)
    p["png"] = root / "good" / "graphic.png"
    noise_image(48, 40, seed=5).save(p["png"])

    bad = root / "bad"
    bad.mkdir()
    p["zero"] = bad / "zero.jpg"
    p["zero"].write_bytes(b"")
    whole = noise_image(64, 64, seed=6)
    whole.save(bad / "whole.tmpjpeg", "JPEG", quality=90)
    data = (bad / "whole.tmpjpeg").read_bytes()
    (bad / "whole.tmpjpeg").unlink()
    p["truncated"] = bad / "truncated.jpg"
    p["truncated"].write_bytes(data[: len(data) * 2 // 3])
    p["header_cut"] = bad / "header_cut.jpg"
    p["header_cut"].write_bytes(data[:120])
    p["text"] = bad / "notes.jpg"
    p["text"].write_text("These are my notes, not a photo.\n")
    p["html"] = bad / "saved page.png"
    p["html"].write_text("<!DOCTYPE html>\n<html><head><title>Not Found</title></head></html>\n")
    p["bomb"] = bad / "bomb.png"
    from PIL import Image

    Image.new("L", (400, 300), 0).save(p["bomb"], optimize=True)
    p["bad_name"] = Path(os.fsdecode(os.path.join(os.fsencode(bad), b"caf\xe9.jpg")))
    p["bad_name"].write_bytes(p["plain"].read_bytes())

    p["unreadable_file"] = write_noise_jpeg(root / "locked" / "secret.jpg", seed=7)
    p["unreadable_dir"] = root / "closed"
    write_noise_jpeg(p["unreadable_dir"] / "inside.jpg", seed=8)

    p["loop"] = root / "loop" / "back"
    p["loop"].parent.mkdir()
    p["loop"].symlink_to("..", target_is_directory=True)  # loop/back -> the corpus root
    p["broken_link"] = root / "dangling.jpg"
    p["broken_link"].symlink_to(root / "gone.jpg")
    p["good_link"] = root / "link to plain.jpg"
    p["good_link"].symlink_to(p["plain"])

    # Open everything to everyone (the scan may run as nobody), then close the two on purpose.
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o666)
    p["unreadable_file"].chmod(0o000)
    p["unreadable_dir"].chmod(0o000)
    return p


def _preload() -> None:
    """Import what a scan needs while still root: the interpreter may live in /root (0700)."""
    import importlib

    from PIL import Image

    for module in ("concurrent.futures.process", "picsift.export.table", "picsift.scan.runner"):
        importlib.import_module(module)
    Image.init()


def _drop_privileges() -> None:
    if os.geteuid() == 0:
        _preload()
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _drop_privileges_and_scan(corpus: str, workspace: str, conn: Any, retry: bool) -> None:
    try:
        _drop_privileges()
        ws = picsift.open(corpus, workspace=workspace)
        summary = ws.scan([corpus], workers=1, max_pixels=MAX_PIXELS, retry_errors=retry)
        conn.send(("ok", summary.as_dict()))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it and fails
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def scan_as_unprivileged(corpus: Path, workspace: Path, *, retry: bool = False) -> dict[str, Any]:
    """Scan in a forked child that cannot bypass file permissions (drops root to nobody)."""
    if not workspace.exists():
        workspace.mkdir()
        workspace.chmod(0o777)
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_drop_privileges_and_scan,
                        args=(str(corpus), str(workspace), child_end, retry))
    child.start()
    child_end.close()
    try:
        status, payload = parent_end.recv()
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    assert status == "ok", payload
    return payload


@pytest.fixture
def scanned(world_tmp: Path) -> tuple[dict[str, Path], dict[str, Any], picsift.Workspace]:
    corpus = world_tmp / "corpus"
    corpus.mkdir()
    paths = build_bad_corpus(corpus)
    summary = scan_as_unprivileged(corpus, world_tmp / "ws")
    ws = picsift.open(corpus, workspace=world_tmp / "ws", create=False)
    yield paths, summary, ws
    ws.close()


def test_permissions_really_deny_the_scanner(world_tmp: Path) -> None:
    """Guard for the test itself: the child really cannot read what was closed."""
    secret = write_noise_jpeg(world_tmp / "secret.jpg")
    secret.chmod(0o000)
    ctx = multiprocessing.get_context("fork")

    def try_read() -> None:
        _drop_privileges()
        try:
            secret.read_bytes()
        except PermissionError:
            os._exit(0)
        os._exit(1)

    child = ctx.Process(target=try_read)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0


def test_run_completes_and_stores_the_good_images(scanned) -> None:
    paths, summary, ws = scanned
    assert summary["interrupted"] is False
    stored = {r["path"]: r for r in ws.query("SELECT * FROM files WHERE kind = 'image'")}
    for role in ("plain", "space", "unicode", "newline", "png", "good_link", "truncated"):
        assert str(paths[role]) in stored, role
    # Nothing bad slipped in as an image, and nothing was stored twice through the loop.
    assert len(stored) == 7
    assert not any("/loop/back/" in p for p in stored)
    relpaths = {r["relpath"] for r in stored.values()}
    assert "good/new\nline.jpg" in relpaths
    assert "good/ünïcødé 猫 – (1).jpg" in relpaths

    # The symlinked copy and the original are one media; the table has one row per media.
    table = ws.table()
    assert len(table) == 6
    assert set(table["kind"]) == {"image"}
    plain = table[table["media_id"] == stored[str(paths["plain"])]["media_id"]].iloc[0]
    assert plain["n_paths"] == 2 and (plain["width"], plain["height"]) == (64, 64)
    truncated = table[table["path"] == str(paths["truncated"])].iloc[0]
    assert truncated["truncated"] == 1
    assert ws.info()["truncated"] == 1


EXPECTED_ERRORS = {
    # role: (kind, stage, words the reason must contain)
    "zero": ("empty", "scan", "0 bytes"),
    "header_cut": ("corrupt", "scan", "JPEG"),
    "text": ("not_image", "scan", "text file"),
    "html": ("not_image", "scan", "HTML page"),
    "bomb": ("too_large", "scan", "over the limit of 50,000"),
    "unreadable_file": ("io", "scan", "permission denied"),
    "unreadable_dir": ("unreadable_folder", "discover", "Permission denied"),
    "loop": ("symlink_loop", "discover", "symbolic link loop"),
    "broken_link": ("io", "discover", "broken symbolic link"),
}


def test_each_bad_entry_is_an_error_with_kind_and_reason(scanned) -> None:
    paths, _summary, ws = scanned
    errors = ws.errors()
    by_path = {row.path: row for row in errors.itertuples()}
    for role, (kind, stage, words) in EXPECTED_ERRORS.items():
        row = by_path.get(str(paths[role]))
        assert row is not None, f"{role} missing from errors: {sorted(by_path)}"
        assert (row.kind, row.stage) == (kind, stage), (role, row)
        assert words in row.reason, (role, row.reason)
        assert "\n" not in row.reason and len(row.reason) < 300
    bad_name = [row for row in errors.itertuples() if row.kind == "bad_name"]
    assert len(bad_name) == 1
    assert bad_name[0].path.endswith("/bad/caf\\xe9.jpg")
    assert "UTF-8" in bad_name[0].reason
    assert len(errors) == len(EXPECTED_ERRORS) + 1
    assert errors["path"].is_unique

    # The image inside the unreadable folder was not reached, and is not invented.
    assert not ws.query("SELECT 1 FROM files WHERE path LIKE '%inside.jpg'")


def test_summary_counts_the_failures(scanned) -> None:
    _paths, summary, ws = scanned
    assert summary["errors"] == len(EXPECTED_ERRORS) + 1
    assert summary["error_kinds"] == {
        "bad_name": 1, "corrupt": 1, "empty": 1, "io": 2,
        "not_image": 2, "symlink_loop": 1, "too_large": 1, "unreadable_folder": 1,
    }
    assert summary["images"] == 7
    assert summary["new_media"] == 6
    # found = files discovery handed to the scanner: 7 good, 5 bad, the unreadable one.
    assert summary["found"] == 13
    assert summary["scanned"] == 13
    info = ws.info()
    assert info["errors"] == summary["errors"]
    assert info["image_files"] == 7
    run = ws.query("SELECT status, counts FROM runs")
    assert [r["status"] for r in run] == ["done"]


def test_rescan_skips_failures_until_changed_or_retried(scanned, world_tmp: Path) -> None:
    paths, first, ws = scanned
    ws.close()
    again = scan_as_unprivileged(world_tmp / "corpus", world_tmp / "ws")
    assert again["scanned"] == 0
    assert again["skipped"] == first["found"]
    # Discovery problems are found again (they are not files), scan failures are remembered.
    assert again["errors"] == 4
    # Fix the text file: it is scanned again because it changed, and leaves the error list.
    fixed = paths["text"]
    fixed.unlink()
    noise_image(20, 20, seed=9).save(fixed, "JPEG")
    fixed.chmod(0o666)
    third = scan_as_unprivileged(world_tmp / "corpus", world_tmp / "ws")
    assert third["scanned"] == 1 and third["images"] == 1
    ws = picsift.open(world_tmp / "corpus", workspace=world_tmp / "ws", create=False)
    try:
        assert str(fixed) not in set(ws.errors()["path"])
        assert ws.scalar("SELECT COUNT(*) FROM files WHERE path = ?", (str(fixed),)) == 1
    finally:
        ws.close()
    # --retry-errors tries the five remaining failed files again (they fail again, same kinds).
    retried = scan_as_unprivileged(world_tmp / "corpus", world_tmp / "ws", retry=True)
    assert retried["scanned"] == 5 and retried["images"] == 0
    assert retried["error_kinds"] == {"bad_name": 1, "corrupt": 1, "empty": 1, "io": 2,
                                      "not_image": 1, "symlink_loop": 1, "too_large": 1,
                                      "unreadable_folder": 1}


def test_catalogue_is_consistent(scanned) -> None:
    _, _, ws = scanned
    db = sqlite3.connect(ws.dir / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    orphans = db.execute(
        "SELECT COUNT(*) FROM files f LEFT JOIN media m ON m.media_id = f.media_id "
        "WHERE f.kind = 'image' AND m.media_id IS NULL").fetchone()[0]
    assert orphans == 0
    both = db.execute("SELECT COUNT(*) FROM files f JOIN errors e ON e.path = f.path").fetchone()[0]
    assert both == 0
    db.close()
