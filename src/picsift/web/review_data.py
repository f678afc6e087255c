"""Review and annotation files: what the Review pages read and the CSVs they write.

Everything written goes under ``<workspace>/annotations/`` (never the corpus):

* ``sorts/<id>.csv``: a sort's results (`picsift sort` writes them next to its destination;
  the page uploads them, or `picsift serve --sort CSV` registers them);
* ``sort-<id>/truth.csv``: the reviewer's labels, columns ``path,label`` first, which is what
  `picsift sort eval RESULTS --truth truth.csv` reads (plus media_id, predicted, score, when);
* ``sample-<coder>.csv``: the stratified sample (`picsift sample`) with the coder's ``code``;
* ``pairs-<coder>.csv``: the validation pairs (`picsift validate-pairs`) with ``same`` coded.

`picsift agreement sample-a.csv sample-b.csv` and
`picsift agreement pairs-a.csv pairs-b.csv --column same --key pair` compare two coders.
Every write replaces the file atomically (temporary file + rename) under a lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from picsift.errors import PicsiftError
from picsift.web.context import WebContext

ANNOTATIONS = "annotations"
TRUTH_COLUMNS = ["path", "label", "media_id", "predicted", "score", "reviewed_at"]
_WRITE = threading.Lock()
_READ_CACHE: dict[str, tuple[int, pd.DataFrame]] = {}


def _atomic_csv(frame: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, target)


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV as text columns, cached until the file changes (sorts of 100k rows stay quick)."""
    stamp = path.stat().st_mtime_ns
    hit = _READ_CACHE.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _READ_CACHE[str(path)] = (stamp, frame)
    return frame


# ------------------------------------------------------------------ sort results
def sorts_dir(ctx: WebContext) -> Path:
    return ctx.writable_dir(f"{ANNOTATIONS}/sorts")


def sort_id_for(name: str, data: bytes) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:40] or "sort"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}"


def register_sort(ctx: WebContext, name: str, data: bytes) -> str:
    """Keep a copy of a sort's results CSV in the workspace; return its id."""
    import io

    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PicsiftError(f"{name} is not a CSV: {exc}") from exc
    missing = [c for c in ("path", "label", "score") if c not in frame.columns]
    if missing or not any(c.startswith("score:") for c in frame.columns):
        raise PicsiftError(f"{name} is not the results CSV of 'picsift sort' (it needs path, "
                           "label, score and score:<label> columns)")
    sort_id = sort_id_for(name, data)
    target = sorts_dir(ctx) / f"{sort_id}.csv"
    with _WRITE:
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    return sort_id


def list_sorts(ctx: WebContext) -> list[dict[str, Any]]:
    folder = ctx.workspace_dir / ANNOTATIONS / "sorts"
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.glob("*.csv")):
        frame = _read_csv(path)
        truth = truth_path(ctx, path.stem)
        reviewed = len(_read_csv(truth)) if truth.exists() else 0
        out.append({"id": path.stem, "images": len(frame), "reviewed": reviewed,
                    "labels": sort_labels(frame)})
    return out


def sort_results(ctx: WebContext, sort_id: str) -> pd.DataFrame:
    path = ctx.workspace_dir / ANNOTATIONS / "sorts" / f"{sort_id}.csv"
    known = {p.stem for p in (ctx.workspace_dir / ANNOTATIONS / "sorts").glob("*.csv")} \
        if path.parent.exists() else set()
    if sort_id not in known:
        raise PicsiftError(f"no sort results named {sort_id!r}")
    return _read_csv(path)


def sort_labels(frame: pd.DataFrame) -> list[str]:
    """The labels a reviewer can choose: the sort's leaf labels, then other labels it used."""
    scored = [c[len("score:"):] for c in frame.columns if c.startswith("score:")]
    leaves = [s for s in scored if not any(o.startswith(s + "/") for o in scored)]
    used = []
    for value in frame["label"].unique():
        for label in str(value).split(";"):
            if label and label not in leaves and label not in used:
                used.append(label)
    return leaves + sorted(used)


def truth_path(ctx: WebContext, sort_id: str) -> Path:
    return ctx.workspace_dir / ANNOTATIONS / f"sort-{sort_id}" / "truth.csv"


def read_truth(ctx: WebContext, sort_id: str) -> dict[str, dict[str, Any]]:
    path = truth_path(ctx, sort_id)
    if not path.exists():
        return {}
    return {row["path"]: row for row in _read_csv(path).to_dict("records")}


def set_truth(ctx: WebContext, sort_id: str, row: dict[str, Any], label: str | None) -> Path:
    """Record (or with ``label=None`` forget) the reviewer's label of one sorted image."""
    with _WRITE:
        truth = read_truth(ctx, sort_id)
        if label is None:
            truth.pop(row["path"], None)
        else:
            truth[row["path"]] = {
                "path": row["path"], "label": label, "media_id": row.get("media_id", ""),
                "predicted": str(row.get("label", "")).split(";")[0],
                "score": row.get("score", ""), "reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        target = truth_path(ctx, sort_id)
        _atomic_csv(pd.DataFrame(list(truth.values()), columns=TRUTH_COLUMNS), target)
        return target


def review_order(frame: pd.DataFrame, order: str, only: str | None) -> list[int]:
    """Row numbers to go through: file order, or least sure first; optionally one label."""
    rows = frame
    if only:
        rows = rows[rows["label"].str.split(";").str[0] == only]
    if order == "unsure-first":
        scores = pd.to_numeric(rows["score"], errors="coerce").fillna(0.0)
        rows = rows.assign(_s=scores).sort_values(["_s", "path"], kind="stable")
    return [int(i) for i in rows.index]


# ------------------------------------------------------------------ coding samples / pairs
@dataclass
class Task:
    """An annotation task: the source CSV picsift wrote, the column a coder fills."""

    kind: str          # "sample" or "pairs"
    source: Path
    column: str
    key: str


def tasks(ctx: WebContext) -> dict[str, Task]:
    clusters = ctx.workspace_dir / "clusters"
    return {"sample": Task("sample", clusters / "sample" / "sample.csv", "code", "path"),
            "pairs": Task("pairs", clusters / "pairs.csv", "same", "pair")}


def coder_path(ctx: WebContext, kind: str, coder: str) -> Path:
    return ctx.workspace_dir / ANNOTATIONS / f"{kind}-{coder}.csv"


def coder_table(ctx: WebContext, task: Task, coder: str) -> pd.DataFrame:
    """The coder's copy of the task (created from the source on first use)."""
    target = coder_path(ctx, task.kind, coder)
    if target.exists():
        return _read_csv(target)
    if not task.source.exists():
        raise PicsiftError(f"no {task.kind} to code yet: create it first")
    frame = _read_csv(task.source).copy()
    frame[task.column] = ""
    return frame


def set_code(ctx: WebContext, task: Task, coder: str, row: int, code: str) -> Path:
    with _WRITE:
        frame = coder_table(ctx, task, coder).copy()
        if not 0 <= row < len(frame):
            raise PicsiftError("no such item")
        frame.loc[row, task.column] = code.strip()
        target = coder_path(ctx, task.kind, coder)
        _atomic_csv(frame, target)
        return target


def coders(ctx: WebContext, kind: str) -> list[dict[str, Any]]:
    folder = ctx.workspace_dir / ANNOTATIONS
    if not folder.exists():
        return []
    task = tasks(ctx)[kind]
    out = []
    for path in sorted(folder.glob(f"{kind}-*.csv")):
        frame = _read_csv(path)
        done = int((frame[task.column].str.strip() != "").sum()) if task.column in frame else 0
        out.append({"coder": path.stem[len(kind) + 1:], "items": len(frame), "coded": done,
                    "file": path.name})
    return out
