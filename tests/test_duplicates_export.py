"""Exact duplicates across folders, and the exported table joined with a researcher's metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import picsift_env, run_picsift, sha256, write_noise_jpeg

import picsift
from picsift.errors import PicsiftError
from picsift.export.table import export_table


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    """The same bytes at three paths in different folders, plus one different picture."""
    root = tmp_path / "corpus"
    original = write_noise_jpeg(root / "2021" / "cat.jpg", 80, 60, seed=11)
    copy = root / "2022" / "reposts" / "cat_copy.jpg"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(original, copy)
    backup = root / "backup" / "cat.jpg"
    backup.parent.mkdir()
    shutil.copyfile(original, backup)
    other = write_noise_jpeg(root / "dog.jpg", 50, 70, seed=12)
    return {"root": root, "original": original, "copy": copy, "backup": backup, "other": other}


@pytest.fixture
def workspace(corpus: dict[str, Path]) -> picsift.Workspace:
    ws = picsift.open(corpus["root"])
    summary = ws.scan(workers=1, progress=False)
    assert summary.images == 4 and summary.new_media == 2
    yield ws
    ws.close()


def test_exact_duplicates_are_one_media_at_three_paths(corpus, workspace) -> None:
    ws = workspace
    cat = sha256(corpus["original"])
    assert ws.scalar("SELECT COUNT(*) FROM media") == 2
    assert ws.scalar("SELECT COUNT(*) FROM files WHERE media_id = ?", (cat,)) == 3

    dups = ws.duplicates()
    assert set(dups["group"]) == {1}
    assert len(dups) == 3
    assert set(dups["media_id"]) == {cat}
    assert set(dups["path"]) == {str(corpus[k]) for k in ("original", "copy", "backup")}
    assert set(dups["relpath"]) == {"2021/cat.jpg", "2022/reposts/cat_copy.jpg", "backup/cat.jpg"}
    assert (dups["n_paths"] == 3).all()
    assert (dups["width"] == 80).all() and (dups["height"] == 60).all()
    assert str(corpus["other"]) not in set(dups["path"])

    info = ws.info()
    assert (info["images"], info["image_files"], info["exact_duplicate_groups"]) == (2, 4, 1)


def test_no_duplicates_gives_an_empty_table(tmp_path: Path) -> None:
    write_noise_jpeg(tmp_path / "a.jpg", seed=1)
    write_noise_jpeg(tmp_path / "b.jpg", seed=2)
    ws = picsift.open(tmp_path)
    ws.scan(workers=1, progress=False)
    dups = ws.duplicates()
    assert dups.empty and "group" in dups.columns
    ws.close()


def test_cli_duplicates_lists_the_group(corpus, workspace) -> None:
    csv = corpus["root"].parent / "dups.csv"
    env = {**picsift_env(), "COLUMNS": "400"}  # wide enough that no path is folded
    result = run_picsift("duplicates", "--exact", workspace.dir, "--csv", csv, env=env)
    assert result.returncode == 0, result.stderr
    for key in ("original", "copy", "backup"):
        assert str(corpus[key]) in result.stdout
    assert str(corpus["other"]) not in result.stdout
    assert "1 group(s), 3 file(s)" in result.stdout
    written = pd.read_csv(csv)
    assert sorted(written["path"]) == sorted(str(corpus[k]) for k in ("original", "copy", "backup"))

    # The corpus folder works as well as the workspace folder.
    again = run_picsift("duplicates", corpus["root"], env=env)
    assert again.returncode == 0 and str(corpus["backup"]) in again.stdout


def test_cli_export_csv_and_parquet_one_row_per_media(corpus, workspace, tmp_path: Path,
                                                      cli) -> None:
    out_csv = tmp_path / "out" / "media.csv"
    result = run_picsift("export", corpus["root"], "--out", out_csv)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out_csv)
    assert len(table) == 2
    assert table["media_id"].is_unique
    assert set(table["media_id"]) == {sha256(corpus["original"]), sha256(corpus["other"])}
    cat = table.set_index("media_id").loc[sha256(corpus["original"])]
    assert cat["n_paths"] == 3 and cat["width"] == 80 and cat["height"] == 60
    assert cat["format"] == "JPEG" and cat["kind"] == "image"
    assert not list(out_csv.parent.glob(".*.tmp"))

    out_pq = tmp_path / "media.parquet"
    result = cli("export", corpus["root"], "--out", out_pq)
    assert result.returncode == 0, result.stderr
    parquet = pd.read_parquet(out_pq)
    assert len(parquet) == 2
    assert list(parquet.columns) == list(table.columns)
    assert sorted(parquet["media_id"]) == sorted(table["media_id"])

    forced = tmp_path / "media.data"
    assert cli("export", corpus["root"], "--out", forced, "--format", "parquet").returncode == 0
    assert len(pd.read_parquet(forced)) == 2


def _write_meta(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_join_on_relative_and_absolute_paths(corpus, workspace, tmp_path: Path) -> None:
    meta = _write_meta(tmp_path / "meta.csv", [
        {"post": "p1", "path": "2021/cat.jpg"},                  # relative to the scanned folder
        {"post": "p2", "path": str(corpus["other"])},            # absolute
        {"post": "p3", "path": "missing/nowhere.jpg"},           # not in the corpus
        {"post": "p4", "path": "./2022/reposts/cat_copy.jpg"},   # untidy relative path
        {"post": "p5", "path": "backup\\cat.jpg"},               # written on Windows
    ])
    out = tmp_path / "joined.csv"
    result = run_picsift("export", corpus["root"], "--out", out, "--metadata", meta, "--on", "path")
    assert result.returncode == 0, result.stderr
    assert "metadata rows: 5, matched: 4, unmatched: 1" in result.stdout
    assert "media not in metadata: 0" in result.stdout

    joined = pd.read_csv(out, dtype={"post": str}).set_index("post")
    assert len(joined) == 5
    cat, dog = sha256(corpus["original"]), sha256(corpus["other"])
    assert joined.loc["p1", "media_id"] == cat
    assert joined.loc["p2", "media_id"] == dog
    assert pd.isna(joined.loc["p3", "media_id"])
    assert joined.loc["p4", "media_id"] == cat
    assert joined.loc["p5", "media_id"] == cat
    # The user's column is kept as they wrote it; picsift's own path column comes next to it.
    assert joined.loc["p1", "path"] == "2021/cat.jpg"
    assert joined.loc["p2", "width"] == 50 and joined.loc["p1", "width"] == 80


def test_join_on_filename(corpus, workspace, tmp_path: Path) -> None:
    meta = _write_meta(tmp_path / "meta.csv", [
        {"id": "a", "filename": "cat.jpg"},                  # two files, same media: one match
        {"id": "b", "filename": "C:\\Users\\me\\dog.jpg"},   # only the name counts
        {"id": "c", "filename": "zebra.jpg"},
    ])
    table, counts = _join(workspace, meta, "filename", tmp_path)
    assert counts == {"metadata_rows": 3, "matched_rows": 2, "unmatched_rows": 1,
                      "media_not_in_metadata": 0}
    by_id = table.set_index("id")
    assert len(table) == 3
    assert by_id.loc["a", "media_id"] == sha256(corpus["original"])
    assert by_id.loc["b", "media_id"] == sha256(corpus["other"])
    assert pd.isna(by_id.loc["c", "media_id"])


def test_join_on_hash_with_a_named_key_column(corpus, workspace, tmp_path: Path, cli) -> None:
    meta = _write_meta(tmp_path / "meta.csv", [
        {"post": "x", "sha": sha256(corpus["other"]).upper()},
        {"post": "y", "sha": "deadbeef"},
    ])
    out = tmp_path / "joined.parquet"
    result = cli("export", corpus["root"], "--out", out, "--metadata", meta,
                 "--on", "hash", "--key", "sha")
    assert result.returncode == 0, result.stderr
    assert "matched: 1, unmatched: 1; media not in metadata: 1" in result.stdout
    joined = pd.read_parquet(out).set_index("post")
    assert joined.loc["x", "media_id"] == sha256(corpus["other"])
    assert joined.loc["x", "height"] == 70
    assert pd.isna(joined.loc["y", "media_id"])


def _join(ws: picsift.Workspace, meta: Path, on: str, tmp_path: Path):
    out = tmp_path / f"joined-{on}.csv"
    result = export_table(ws, out, metadata=meta, on=on)
    table = pd.read_csv(out, dtype=str)
    assert result["rows"] == len(table)
    counts = {k: result[k] for k in ("metadata_rows", "matched_rows", "unmatched_rows",
                                      "media_not_in_metadata")}
    return table, counts


def test_missing_key_column_is_a_clear_error(corpus, workspace, tmp_path: Path, cli) -> None:
    meta = _write_meta(tmp_path / "meta.csv", [{"post": "p1", "file": "cat.jpg"}])
    out = tmp_path / "never.csv"
    result = cli("export", corpus["root"], "--out", out, "--metadata", meta, "--on", "filename")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "has no column 'filename'" in lines[0] and "post, file" in lines[0]
    assert "--key" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()

    with pytest.raises(PicsiftError, match="--on must be one of"):
        export_table(workspace, out, metadata=meta, on="colour")
    with pytest.raises(PicsiftError, match="cannot read metadata file"):
        export_table(workspace, out, metadata=tmp_path / "absent.csv", on="path")
    with pytest.raises(PicsiftError, match="unknown export format"):
        export_table(workspace, tmp_path / "x.xlsx")
