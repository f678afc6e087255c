"""Build the tables users load in pandas/R, and write them as CSV or Parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from picsift.errors import PicsiftError
from picsift.workspace.features import latest_feature_sets
from picsift.workspace.store import Workspace

# Which columns of a feature set belong in the one-row-per-media table (default: all of them).
# Pair tables are not per media and are exported by their own command.
EXPORTED_COLUMNS: dict[str, list[str]] = {
    "sift": ["n_points"],
    "copies_pairs": [],
    "copies": ["cluster_id", "cluster_size", "degree", "quality", "representative", "relation"],
}

_MEDIA_SQL = """
SELECT m.media_id, m.kind,
       (SELECT MIN(f.path) FROM files f WHERE f.media_id = m.media_id) AS path,
       (SELECT MIN(f.relpath) FROM files f WHERE f.media_id = m.media_id) AS relpath,
       (SELECT COUNT(*) FROM files f WHERE f.media_id = m.media_id) AS n_paths,
       m.format, m.width, m.height, m.mode, m.n_frames, m.file_size, m.truncated,
       m.exif_datetime, m.exif_make, m.exif_model, m.exif_orientation, m.gps_lat, m.gps_lon,
       (SELECT MIN(v.path) FROM files v WHERE v.media_id = m.video_id AND v.kind = 'video')
           AS video_path,
       m.frame_time, m.frame_index
FROM media m
WHERE EXISTS (SELECT 1 FROM files f WHERE f.media_id = m.media_id)
ORDER BY m.kind, path
"""


def media_table(ws: Workspace) -> pd.DataFrame:
    """One row per media: catalogue facts plus the latest run of every stored feature set.

    Feature columns are prefixed with the feature set's name (``phash_hash`` ...).
    """
    table = pd.read_sql_query(_MEDIA_SQL, ws.connect())
    for feature_set in latest_feature_sets(ws):
        wanted = EXPORTED_COLUMNS.get(feature_set.name)
        if wanted == []:
            continue
        data = feature_set.read(None if wanted is None else ["media_id", *wanted])
        if data is None:
            continue
        frame = data.to_pandas().drop_duplicates("media_id", keep="last")
        frame = frame.rename(
            columns={c: f"{feature_set.name}_{c}" for c in frame.columns if c != "media_id"}
        )
        table = table.merge(frame, on="media_id", how="left")
    return _with_faces(ws, _with_text(ws, table))


# Text columns (picsift text), named as AMMICO names them where they mean the same.
TEXT_COLUMNS = ("text", "n_blocks", "ocr_confidence", "text_language", "text_language_score",
                "text_languages", "text_english", "translation_status", "translation_backend",
                "text_clean",
                "text_english_correct", "polarity", "subjectivity", "sentiment", "sentiment_score",
                "entities", "ocr_model")


def _with_text(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    if not ws.scalar("SELECT COUNT(*) FROM media_text"):
        return table
    text = pd.read_sql_query(f"SELECT media_id, {', '.join(TEXT_COLUMNS)} FROM media_text",
                             ws.connect())
    return table.merge(text, on="media_id", how="left")


def errors_table(ws: Workspace) -> pd.DataFrame:
    """Every recorded failure: path, kind, reason, stage and when."""
    frame = pd.read_sql_query(
        "SELECT path, kind, reason, stage, run_id, datetime(at, 'unixepoch') AS at "
        "FROM errors ORDER BY path",
        ws.connect(),
    )
    return frame


def workspace_info(ws: Workspace) -> dict[str, Any]:
    """The counts ``picsift info`` prints."""
    scalar = ws.scalar
    formats = {
        r["format"]: r["n"]
        for r in ws.query(
            "SELECT format, COUNT(*) AS n FROM media WHERE kind='image' GROUP BY format ORDER BY n DESC"
        )
    }
    last = ws.query("SELECT command, status, started, finished, counts FROM runs "
                    "ORDER BY run_id DESC LIMIT 1")
    feature_sets = [
        {"name": r["name"], "version": r["version"], "model": r["model"],
         "params": json.loads(r["params"])}
        for r in ws.query("SELECT * FROM feature_sets ORDER BY name, created")
    ]
    return {
        "workspace": str(ws.dir),
        "roots": ws.roots,
        "image_files": scalar("SELECT COUNT(*) FROM files WHERE kind='image'"),
        "images": scalar("SELECT COUNT(DISTINCT media_id) FROM files WHERE kind='image'"),
        "videos": scalar("SELECT COUNT(*) FROM files WHERE kind='video'"),
        "keyframes": scalar("SELECT COUNT(*) FROM media WHERE kind='frame'"),
        "media": scalar("SELECT COUNT(DISTINCT media_id) FROM files WHERE kind != 'video'"),
        "exact_duplicate_groups": scalar(
            "SELECT COUNT(*) FROM (SELECT media_id FROM files WHERE kind='image' "
            "GROUP BY media_id HAVING COUNT(*) > 1)"),
        "truncated": scalar("SELECT COUNT(*) FROM media WHERE truncated = 1"),
        "errors": scalar("SELECT COUNT(*) FROM errors"),
        "formats": formats,
        "feature_sets": feature_sets,
        "runs": scalar("SELECT COUNT(*) FROM runs"),
        "last_run": dict(last[0]) if last else None,
    }


# ------------------------------------------------------------------ metadata join
JOIN_KEYS = ("path", "filename", "hash")


def _file_keys(ws: Workspace, on: str) -> pd.DataFrame:
    """(key, media_id) pairs a metadata value may match, for the chosen join."""
    files = pd.read_sql_query(
        "SELECT path, relpath, media_id FROM files WHERE kind != 'video'", ws.connect()
    )
    if on == "hash":
        keys = files[["media_id"]].drop_duplicates().assign(key=lambda d: d["media_id"])
    elif on == "filename":
        keys = files.assign(key=files["path"].map(os.path.basename))[["key", "media_id"]]
    else:
        absolute = files[["path", "media_id"]].rename(columns={"path": "key"})
        relative = files[["relpath", "media_id"]].dropna().rename(columns={"relpath": "key"})
        keys = pd.concat([absolute, relative])
    return keys.drop_duplicates(["key", "media_id"])[["key", "media_id"]]


def _normalise_key(value: Any, on: str) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip()
    if on == "hash":
        return value.lower()
    if on == "filename":
        return os.path.basename(value.replace("\\", "/"))
    value = value.replace("\\", "/")
    if os.path.isabs(value):
        return os.path.normpath(value)
    return Path(os.path.normpath(value)).as_posix()


def join_metadata(ws: Workspace, table: pd.DataFrame, metadata_csv: str | Path, on: str,
                  key_column: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Left-join the user's metadata (one row per post/file) with the media table.

    Returns the joined frame (one row per metadata row and matching media) and match counts.
    """
    if on not in JOIN_KEYS:
        raise PicsiftError(f"--on must be one of {', '.join(JOIN_KEYS)}, not {on!r}")
    try:
        metadata = pd.read_csv(metadata_csv, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PicsiftError(f"cannot read metadata file {metadata_csv}: {exc}") from exc
    column = key_column or on
    if column not in metadata.columns:
        raise PicsiftError(
            f"metadata file {metadata_csv} has no column {column!r} (columns: "
            f"{', '.join(metadata.columns)}); name it with --key"
        )
    metadata = metadata.assign(_key=metadata[column].map(lambda v: _normalise_key(v, on)),
                               _row=range(len(metadata)))
    keys = _file_keys(ws, on).rename(columns={"key": "_key"})
    matched = metadata.merge(keys, on="_key", how="left")
    joined = matched.merge(table, on="media_id", how="left", suffixes=("", "_picsift"))
    counts = {
        "metadata_rows": len(metadata),
        "matched_rows": int(matched.dropna(subset=["media_id"])["_row"].nunique()),
        "unmatched_rows": int(matched["media_id"].isna().sum()),
        "media_not_in_metadata": int(len(set(table["media_id"]) - set(matched["media_id"].dropna()))),
    }
    return joined.drop(columns=["_key", "_row"]), counts


def export_table(ws: Workspace, out: str | Path, fmt: str | None = None,
                 metadata: str | Path | None = None, on: str = "path",
                 key_column: str | None = None) -> dict[str, Any]:
    """Write the media table (joined with metadata if given) to CSV or Parquet."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "parquet"):
        raise PicsiftError(f"unknown export format {fmt!r}: use csv or parquet")
    table = media_table(ws)
    counts: dict[str, Any] = {}
    if metadata is not None:
        table, counts = join_metadata(ws, table, metadata, on, key_column)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "csv":
        table.to_csv(tmp, index=False)
    else:
        table.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return {"rows": len(table), "columns": len(table.columns), "path": str(out), **counts}


def _with_faces(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    """Per-image face columns (n_faces, largest_share, ...); the per-face long table is
    `picsift faces` -> faces.csv."""
    if not ws.scalar("SELECT COUNT(*) FROM media_faces"):
        return table
    from picsift.analyses.faces import media_faces_table

    return table.merge(media_faces_table(ws), on="media_id", how="left")
