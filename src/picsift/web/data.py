"""Read-side queries of the web pages: small SQL look-ups with LIMIT/OFFSET, and a few derived
tables cached per workspace state (the ordered media list, feature-set rows)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift.web.context import WebContext
from picsift.workspace.store import Workspace

SQL_CHUNK = 900  # SQLite's default limit on host parameters is 999


@dataclass
class Tile:
    """One picture in a grid: id, a caption people recognise, and optional extras."""

    media_id: str
    caption: str
    path: str | None = None
    note: str = ""
    score: float | None = None


def chunks(values: Sequence[str], size: int = SQL_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def first_paths(ws: Workspace, media_ids: Sequence[str]) -> dict[str, str]:
    """media id -> its alphabetically first path, for just these ids (indexed look-ups)."""
    out: dict[str, str] = {}
    for part in chunks(list(dict.fromkeys(media_ids))):
        marks = ",".join("?" * len(part))
        for row in ws.query(f"SELECT media_id, MIN(path) AS path FROM files WHERE media_id IN "
                            f"({marks}) AND kind IN ('image', 'frame') GROUP BY media_id",
                            tuple(part)):
            out[row["media_id"]] = row["path"]
    return out


def captions(ws: Workspace, media_ids: Sequence[str]) -> dict[str, str]:
    """What to print under a thumbnail: the file name, or "video.mp4 @ 2.00 s" for keyframes."""
    paths = first_paths(ws, media_ids)
    out = {m: Path(p).name for m, p in paths.items()}
    for part in chunks(list(dict.fromkeys(media_ids))):
        marks = ",".join("?" * len(part))
        for row in ws.query(
                "SELECT m.media_id, m.frame_time, (SELECT MIN(v.path) FROM files v WHERE "
                "v.media_id = m.video_id AND v.kind = 'video') AS video FROM media m "
                f"WHERE m.kind = 'frame' AND m.media_id IN ({marks})", tuple(part)):
            if row["video"]:
                out[row["media_id"]] = f"{Path(row['video']).name} @ {row['frame_time']:.2f} s"
    return out


def tiles(ws: Workspace, media_ids: Sequence[str], notes: dict[str, str] | None = None,
          scores: dict[str, float] | None = None) -> list[Tile]:
    names = captions(ws, media_ids)
    paths = first_paths(ws, media_ids)
    notes, scores = notes or {}, scores or {}
    return [Tile(m, names.get(m, m[:12]), paths.get(m), notes.get(m, ""), scores.get(m))
            for m in media_ids]


# ------------------------------------------------------------------ cached derived tables
def media_list(ctx: WebContext) -> list[tuple[str, str, str]]:
    """(media_id, first path, format) of every image and keyframe, ordered by path; cached."""
    def build() -> list[tuple[str, str, str]]:
        rows = ctx.ws().query(
            "SELECT f.media_id, MIN(f.path) AS path, m.format FROM files f JOIN media m "
            "ON m.media_id = f.media_id WHERE f.kind IN ('image', 'frame') "
            "GROUP BY f.media_id ORDER BY path")
        return [(r["media_id"], r["path"], r["format"] or "") for r in rows]

    return ctx.cache.get(ctx.ws(), "media_list", build)


@dataclass
class StoredSet:
    """One feature set as the pages show it: name, model, params, per-media rows."""

    name: str
    version: str
    model: str | None
    params: dict[str, Any]
    created: float
    rows: Any  # pandas DataFrame indexed by media_id (may be empty)


# Which feature sets are not "one row per media" or are shown by their own panel.
HIDDEN_SETS = {"copies_pairs"}


def feature_sets(ctx: WebContext) -> list[StoredSet]:
    """The latest parameter set of every feature name, with the columns the export shows."""
    def build() -> list[StoredSet]:
        import pandas as pd

        from picsift.export.table import EXPORTED_COLUMNS
        from picsift.workspace.features import latest_feature_sets

        ws = ctx.ws()
        created = {(r["name"], r["params_hash"]): r["created"]
                   for r in ws.query("SELECT name, params_hash, created FROM feature_sets")}
        out: list[StoredSet] = []
        for fs in latest_feature_sets(ws):
            if fs.name in HIDDEN_SETS:
                continue
            wanted = EXPORTED_COLUMNS.get(fs.name)
            try:
                data = fs.read(None if wanted is None else ["media_id", *wanted])
            except Exception as exc:  # a part being written or a newer schema: show the rest
                import logging

                logging.getLogger(__name__).warning("cannot read feature set %s: %s", fs.name, exc)
                data = None
            frame = (data.to_pandas().drop_duplicates("media_id", keep="last").set_index("media_id")
                     if data is not None else pd.DataFrame())
            out.append(StoredSet(fs.name, fs.version, fs.model, fs.params,
                                 created.get((fs.name, fs.hash), 0.0), frame))
        return out

    return ctx.cache.get(ctx.ws(), "feature_sets", build)


def features_of(ctx: WebContext, media_id: str) -> list[tuple[StoredSet, dict[str, Any]]]:
    """Every feature set's row for one media (sets without a row for it are left out)."""
    out = []
    for stored in feature_sets(ctx):
        if media_id in stored.rows.index:
            row = stored.rows.loc[media_id]
            values = {str(k): _plain(v) for k, v in row.items()}
            out.append((stored, values))
    return out


def _plain(value: Any) -> Any:
    """numpy scalars to Python, arrays/lists to short text (pages show values, not objects)."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        text = json.dumps(items, default=str)
        return text if len(text) <= 200 else text[:200] + "…"
    return value


def palette_of(values: dict[str, Any]) -> list[tuple[str, float | None]]:
    """(hex colour, share of pixels or None) of a colors-style row: ``palette`` is
    "#aabbcc;#112233" (docs/colors.md), ``palette_shares`` "0.41;0.22"; invalid entries dropped."""
    import re

    raw = values.get("palette") or values.get("colors_palette")
    if not isinstance(raw, str):
        return []
    shares_raw = values.get("palette_shares") or values.get("colors_palette_shares")
    shares: list[float | None] = []
    for part in (shares_raw.split(";") if isinstance(shares_raw, str) else []):
        try:
            shares.append(max(0.0, min(1.0, float(part))))
        except ValueError:
            shares.append(None)
    out: list[tuple[str, float | None]] = []
    for n, colour in enumerate(c.strip() for c in raw.split(";")):
        if re.fullmatch(r"#?[0-9A-Fa-f]{6}", colour):
            out.append((colour if colour.startswith("#") else f"#{colour}",
                        shares[n] if n < len(shares) else None))
    return out[:16]


# ------------------------------------------------------------------ single media
def media_facts(ws: Workspace, media_id: str) -> dict[str, Any] | None:
    row = ws.query("SELECT * FROM media WHERE media_id = ?", (media_id,))
    if not row:
        return None
    facts = dict(row[0])
    facts["files"] = [dict(r) for r in ws.query(
        "SELECT path, kind, root, relpath, size, mtime_ns FROM files WHERE media_id = ? "
        "ORDER BY path", (media_id,))]
    if facts.get("video_id"):
        video = ws.query("SELECT MIN(path) AS path FROM files WHERE media_id = ? AND kind = 'video'",
                         (facts["video_id"],))
        facts["video_path"] = video[0]["path"] if video else None
        facts["occurrences"] = [dict(r) for r in ws.query(
            "SELECT k.frame_time, k.frame_index, k.reason, (SELECT MIN(path) FROM files f WHERE "
            "f.media_id = k.video_id AND f.kind = 'video') AS video FROM keyframes k "
            "WHERE k.media_id = ? ORDER BY video, k.frame_time LIMIT 50", (media_id,))]
    return facts


def readable_path(ws: Workspace, media_id: str) -> str | None:
    """The file to decode for a media: its first image or stored-keyframe path."""
    row = ws.query("SELECT MIN(path) AS path FROM files WHERE media_id = ? AND kind IN "
                   "('image', 'frame')", (media_id,))
    return row[0]["path"] if row and row[0]["path"] else None


def text_of(ws: Workspace, media_id: str) -> dict[str, Any] | None:
    """OCR text, language, translation, enrichment and the blocks (with boxes) of one media."""
    row = ws.query("SELECT * FROM media_text WHERE media_id = ?", (media_id,))
    if not row:
        return None
    text = dict(row[0])
    for key in ("text_languages", "entities"):
        try:
            text[key] = json.loads(text[key]) if text.get(key) else None
        except ValueError:
            pass
    text["blocks"] = []
    for b in ws.query("SELECT block, line, text, confidence, language, script, engine, box "
                      "FROM text_blocks WHERE media_id = ? ORDER BY block", (media_id,)):
        block = dict(b)
        try:
            block["box"] = json.loads(block["box"]) if block["box"] else None
        except ValueError:
            block["box"] = None
        text["blocks"].append(block)
    return text


FACE_ATTRIBUTES = ("emotion", "emotion_score", "emotion_group", "mask_score", "masked", "age",
                   "gender", "gender_score", "identity")


def faces_of(ws: Workspace, media_id: str) -> dict[str, Any] | None:
    """Faces of one media, boxes and only the attributes that were computed.

    Demographic estimates exist only when the user accepted the disclosure of `picsift faces`
    (they are NULL otherwise), so showing the non-empty columns shows what was consented to.
    """
    looked = ws.query("SELECT * FROM media_faces WHERE media_id = ?", (media_id,))
    if not looked:
        return None
    rows = ws.query("SELECT face, x0, y0, x1, y1, score, share, " + ", ".join(FACE_ATTRIBUTES)
                    + " FROM faces WHERE media_id = ? ORDER BY face", (media_id,))
    faces = []
    for r in rows:
        face = dict(r)
        face["attributes"] = {k: face[k] for k in FACE_ATTRIBUTES if face.get(k) is not None}
        faces.append(face)
    return {**dict(looked[0]), "faces": faces}


# ------------------------------------------------------------------ overview
def analyses(ctx: WebContext) -> list[dict[str, Any]]:
    """Which analyses have run, with which model and settings, and how many media each has."""
    ws = ctx.ws()
    out: list[dict[str, Any]] = []
    for stored in feature_sets(ctx):
        out.append({"name": stored.name, "model": stored.model or "", "version": stored.version,
                    "params": json.dumps(stored.params, sort_keys=True), "media": len(stored.rows),
                    "when": _when(stored.created)})
    text = ws.query("SELECT COUNT(*) AS n, SUM(n_blocks > 0) AS with_text, MAX(ocr_model) AS model, "
                    "MAX(translation_backend) AS backend FROM media_text")
    if text and text[0]["n"]:
        out.append({"name": "text (OCR)", "model": text[0]["model"] or "", "version": "",
                    "params": f"translation backend: {text[0]['backend'] or 'none'}",
                    "media": text[0]["n"], "when": _last_run(ws, "text"),
                    "note": f"{text[0]['with_text'] or 0} with text"})
    faces = ws.query("SELECT COUNT(*) AS n, SUM(n_faces) AS faces, MAX(detector) AS detector, "
                     "MAX(embedder) AS embedder FROM media_faces")
    if faces and faces[0]["n"]:
        out.append({"name": "faces", "model": f"{faces[0]['detector']} / {faces[0]['embedder']}",
                    "version": "", "params": "", "media": faces[0]["n"],
                    "when": _last_run(ws, "faces"), "note": f"{faces[0]['faces'] or 0} faces"})
    return out


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""


def _last_run(ws: Workspace, command: str) -> str:
    return _when(ws.scalar("SELECT MAX(started) FROM runs WHERE command = ?", (command,)))


def runs(ws: Workspace, limit: int = 20) -> list[dict[str, Any]]:
    rows = ws.query("SELECT run_id, command, status, started, finished, counts FROM runs "
                    "ORDER BY run_id DESC LIMIT ?", (limit,))
    return [{**dict(r), "started": _when(r["started"]), "finished": _when(r["finished"])}
            for r in rows]


def errors_page(ws: Workspace, offset: int, limit: int, stage: str | None = None
                ) -> tuple[list[dict[str, Any]], int]:
    where, params = ("WHERE stage = ?", (stage,)) if stage else ("", ())
    total = int(ws.scalar(f"SELECT COUNT(*) FROM errors {where}", params) or 0)
    rows = ws.query(f"SELECT path, kind, reason, stage, datetime(at, 'unixepoch') AS at FROM errors "
                    f"{where} ORDER BY path LIMIT ? OFFSET ?", (*params, limit, offset))
    return [dict(r) for r in rows], total


def error_stages(ws: Workspace) -> list[tuple[str, int]]:
    return [(r["stage"], r["n"]) for r in ws.query(
        "SELECT stage, COUNT(*) AS n FROM errors GROUP BY stage ORDER BY n DESC")]
