"""`picsift sort`: copy (or move) every image into DEST/<label>/, with a log that undoes it.

Never overwrites: a name already taken gets " (1)", " (2)"... Moves are written to the log
before they happen (one JSON line each, flushed), so even an interrupted sort can be undone
with `picsift sort undo LOG`. The CSV keeps every label's score for every image, the chosen
label and the model, so a researcher can re-threshold without re-running.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import picsift
from picsift.analyses.embeddings import CHUNK_ROWS, DEFAULT_MODEL, embed_workspace, model_key
from picsift.analyses.sort.labels import UNSURE, Label
from picsift.analyses.sort.score import label_probabilities, label_vectors, text_space
from picsift.errors import PicsiftError


@dataclass
class SortOptions:
    """How to sort: where, copy or move, abstain threshold, multi-label, model."""

    to: Path
    move: bool = False
    threshold: float = 0.0          # top probability below this goes to DEST/unsure
    multi_label: bool = False       # every label whose probability >= multi_threshold
    multi_threshold: float = 0.3
    keep_tree: bool = False         # keep sub-folders under each label folder
    model: str = DEFAULT_MODEL
    workers: int | None = None
    progress: bool = False


@dataclass
class SortResult:
    table: pd.DataFrame
    csv: Path
    log: Path
    counts: dict[str, int] = field(default_factory=dict)


def unique_destination(path: Path) -> Path:
    """``path`` if free, else the first free "name (n).ext" beside it."""
    if not path.exists():
        return path
    for n in range(1, 100_000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise PicsiftError(f"no free name for {path}")


def _decide(labels: list[Label], probs: np.ndarray, options: SortOptions) -> list[list[int]]:
    """Indices of the chosen labels per row (empty list: unsure)."""
    chosen = []
    for row in probs:
        if options.multi_label:
            picks = [int(i) for i in np.argsort(-row) if row[i] >= options.multi_threshold]
        else:
            best = int(row.argmax())
            picks = [best] if row[best] >= options.threshold else []
        chosen.append(picks)
    return chosen


Decision = tuple[list[tuple[str, ...]], dict[str, float]]


def _assign_rows(labels: list[Label], media_ids: list[str], space: np.ndarray,
                 options: SortOptions, prefix: tuple[str, ...],
                 label_cache: dict[int, np.ndarray]) -> dict[str, Decision]:
    """Decisions for the rows of one chunk; a label's sub-labels score only the rows that
    picked it (the same rows of the same chunk: no second read of the embeddings)."""
    if id(labels) not in label_cache:
        label_cache[id(labels)] = label_vectors(labels, options.model)
    _sims, probs = label_probabilities(space, label_cache[id(labels)], options.model)
    chosen = _decide(labels, probs, options)
    below: dict[int, dict[str, Decision]] = {}
    for j, label in enumerate(labels):
        rows = [i for i, picks in enumerate(chosen) if j in picks]
        if label.children and rows:
            below[j] = _assign_rows(label.children, [media_ids[i] for i in rows], space[rows],
                                    options, prefix + (label.name,), label_cache)
    out: dict[str, Decision] = {}
    keys = ["/".join(prefix + (label.name,)) for label in labels]  # shared by every row
    for i, (media, picks) in enumerate(zip(media_ids, chosen)):
        scores = dict(zip(keys, probs[i].tolist()))
        paths: list[tuple[str, ...]] = []
        for j in picks:
            label = labels[j]
            if label.children:
                sub_paths, sub_scores = below[j][media]
                scores.update(sub_scores)
                paths.extend(sub_paths or [prefix + (label.name, UNSURE)])
            else:
                paths.append(prefix + (label.name,))
        out[media] = (paths, scores)
    return out


def _assign(ws: Any, labels: list[Label], media_ids: list[str], options: SortOptions
            ) -> dict[str, Decision]:
    """media id -> (label paths, scores by label path), descending into sub-labels.

    One streamed pass over the stored text-space vectors of ``media_ids``, ``CHUNK_ROWS`` at
    a time; media without an embedding are left out (they go to unsure)."""
    stream = text_space(ws, options.model, set(media_ids))
    label_cache: dict[int, np.ndarray] = {}
    out: dict[str, Decision] = {}
    for positions, space in stream.chunks(rows=CHUNK_ROWS):
        ids = [stream.ids[int(p)] for p in positions]
        out.update(_assign_rows(labels, ids, space, options, (), label_cache))
    return out


def sort_images(source: str | Path, labels: list[Label], options: SortOptions,
                workspace: str | Path | None = None) -> SortResult:
    """Scan, embed, score and copy/move every image of ``source`` into label folders."""
    if options.move and options.multi_label:
        raise PicsiftError("--move cannot be combined with --multi-label (an image can go to "
                           "several folders only as copies)")
    source = Path(source).expanduser().absolute()
    destination = Path(options.to).expanduser().absolute()
    if destination == source or source in destination.parents:
        raise PicsiftError("--to must be outside the folder being sorted")
    ws = picsift.open(source, workspace=workspace)
    ws.scan([source], workers=options.workers, progress=options.progress)
    embed_workspace(ws, options.model, options.workers, progress=options.progress)
    files = [(r["path"], r["relpath"], r["media_id"]) for r in ws.query(
        "SELECT path, relpath, media_id FROM files WHERE kind = 'image' AND (path = ? OR path LIKE ?) "
        "ORDER BY path", (str(source), str(source).rstrip("/") + "/%"))]
    decisions = _assign(ws, labels, sorted({m for _p, _r, m in files}), options)
    destination.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = unique_destination(destination / f"picsift-sort-{stamp}.jsonl")
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    with open(log_path, "a", encoding="utf-8") as log:
        for path, relpath, media in files:
            label_paths, scores = decisions.get(media, ([], {}))
            targets = label_paths or [(UNSURE,)]
            for n, label_path in enumerate(targets):
                folder = destination.joinpath(*[Label(p, []).folder for p in label_path])
                name = Path(relpath) if options.keep_tree and relpath else Path(Path(path).name)
                target = unique_destination(folder / name)
                target.parent.mkdir(parents=True, exist_ok=True)
                action = "move" if options.move and n == len(targets) - 1 else "copy"
                log.write(json.dumps({"action": action, "src": path, "dst": str(target),
                                      "media_id": media}) + "\n")
                log.flush()
                os.fsync(log.fileno())
                if action == "move":
                    shutil.move(path, target)
                else:
                    shutil.copy2(path, target)
                key = "/".join(label_path)
                counts[key] = counts.get(key, 0) + 1
            best = max(scores.items(), key=lambda kv: kv[1]) if scores else ("", 0.0)
            rows.append({"path": path, "media_id": media,
                         "label": ";".join("/".join(p) for p in label_paths) or UNSURE,
                         "score": round(best[1], 4), "destination": str(target),
                         **{f"score:{k}": round(v, 4) for k, v in scores.items()},
                         "model": model_key(options.model)})
    table = pd.DataFrame(rows)
    csv_path = log_path.with_suffix(".csv")
    table.to_csv(csv_path, index=False)
    return SortResult(table, csv_path, log_path, counts)


def undo_sort(log_path: str | Path) -> dict[str, int]:
    """Reverse a sort: moves go back (never over an existing file), copies are removed if
    they still hold the original bytes. Returns counts of restored, removed and skipped."""
    from picsift.scan.worker import file_sha256

    log_path = Path(log_path)
    try:
        entries = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise PicsiftError(f"cannot read sort log {log_path}: {exc}") from exc
    counts = {"restored": 0, "removed": 0, "skipped": 0}
    for entry in reversed(entries):
        src, dst = Path(entry["src"]), Path(entry["dst"])
        if not dst.exists():
            counts["skipped"] += 1
            continue
        if entry["action"] == "move":
            if src.exists():
                counts["skipped"] += 1  # never overwrite what is there now
                continue
            src.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(dst), src)
            counts["restored"] += 1
        elif file_sha256(str(dst)) == entry.get("media_id"):
            dst.unlink()
            counts["removed"] += 1
        else:
            counts["skipped"] += 1
    return counts
