"""`picsift sort`: copy (or move) every image into DEST/<label>/, with a log that undoes it.

Never overwrites: a name already taken gets " (1)", " (2)"... Moves are written to the log
before they happen (one JSON line each, flushed), so even an interrupted sort can be undone
with `picsift sort undo LOG`. Sorting again into the same destination resumes: files that
an earlier sort's log shows placed there (and still there) are not copied or moved again.
A file that cannot be copied or moved (vanished, unreadable) is reported and skipped.
The CSV keeps every label's score for every image, the chosen
label and the model, so a researcher can re-threshold without re-running.
"""

from __future__ import annotations

import csv
import json
import logging
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

logger = logging.getLogger(__name__)


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
    """Where the sort wrote its CSV and undo log, and how many files went to each label
    (``resumed``: placed by an earlier sort into the same destination; ``failed``: path ->
    reason for files that could not be copied or moved)."""

    csv: Path
    log: Path
    counts: dict[str, int] = field(default_factory=dict)
    resumed: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The CSV (one row per image, every label's score), read when asked for."""
        return pd.read_csv(self.csv)


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


Decision = tuple[list[tuple[str, ...]], np.ndarray]  # label paths, scores by score_columns


class Decisions:
    """Per image: the label paths chosen and one float32 row of scores (by ``score_columns``,
    NaN where a sub-label was not scored). One matrix and shared path tuples, not one dict
    of floats per image: ~0.1 KB per image plus 4 bytes per label."""

    def __init__(self) -> None:
        self.row: dict[str, int] = {}
        self.paths: list[list[tuple[str, ...]]] = []
        self.blocks: list[np.ndarray] = []
        self.scores = np.zeros((0, 0), np.float32)

    def add(self, media_ids: list[str], paths: list[list[tuple[str, ...]]],
            scores: np.ndarray) -> None:
        for media in media_ids:
            self.row[media] = len(self.row)
        self.paths.extend(paths)
        self.blocks.append(scores)

    def done(self) -> "Decisions":
        if self.blocks:
            self.scores = np.concatenate(self.blocks)
            self.blocks = []
        return self

    def get(self, media: str) -> Decision | None:
        row = self.row.get(media)
        return None if row is None else (self.paths[row], self.scores[row])

    def __len__(self) -> int:
        return len(self.row)


def score_columns(labels: list[Label], prefix: tuple[str, ...] = ()) -> list[str]:
    """Every label path ("animal", "animal/cat"...) in tree order: the CSV's score columns."""
    keys: list[str] = []
    for label in labels:
        keys.append("/".join(prefix + (label.name,)))
        keys.extend(score_columns(label.children, prefix + (label.name,)))
    return keys


class _Scorer:
    """Decides the label paths of chunks of rows, descending into sub-labels; a label's
    sub-labels score only the rows that picked it (no second read of the embeddings)."""

    def __init__(self, labels: list[Label], options: SortOptions) -> None:
        self.labels = labels
        self.options = options
        self.columns = {key: i for i, key in enumerate(score_columns(labels))}
        self.cache: dict[int, np.ndarray] = {}
        self.interned: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per label path

    def chunk(self, media_ids: list[str], space: np.ndarray, into: Decisions) -> None:
        scores = np.full((len(media_ids), len(self.columns)), np.nan, np.float32)
        paths = self._level(self.labels, space, (), scores, np.arange(len(media_ids)))
        into.add(media_ids, [[self.interned.setdefault(p, p) for p in row] for row in paths],
                 scores)

    def _level(self, labels: list[Label], space: np.ndarray, prefix: tuple[str, ...],
               scores: np.ndarray, rows: np.ndarray) -> list[list[tuple[str, ...]]]:
        """Label paths of ``rows`` at this level (filling their scores)."""
        if id(labels) not in self.cache:
            self.cache[id(labels)] = label_vectors(labels, self.options.model)
        _sims, probs = label_probabilities(space, self.cache[id(labels)], self.options.model)
        cols = [self.columns["/".join(prefix + (label.name,))] for label in labels]
        scores[np.ix_(rows, cols)] = probs
        chosen = _decide(labels, probs, self.options)
        below: dict[int, dict[int, list[tuple[str, ...]]]] = {}
        for j, label in enumerate(labels):
            picked = [i for i, picks in enumerate(chosen) if j in picks]
            if label.children and picked:
                sub = self._level(label.children, space[picked], prefix + (label.name,), scores,
                                  rows[picked])
                below[j] = dict(zip(picked, sub))
        out: list[list[tuple[str, ...]]] = []
        for i, picks in enumerate(chosen):
            paths: list[tuple[str, ...]] = []
            for j in picks:
                label = labels[j]
                if label.children:
                    paths.extend(below[j][i] or [prefix + (label.name, UNSURE)])
                else:
                    paths.append(prefix + (label.name,))
            out.append(paths)
        return out


def _assign(ws: Any, labels: list[Label], media_ids: list[str], options: SortOptions
            ) -> Decisions:
    """media id -> (label paths, scores by ``score_columns``), descending into sub-labels.

    One streamed pass over the stored text-space vectors of ``media_ids``, ``CHUNK_ROWS`` at
    a time; media without an embedding are left out (they go to unsure)."""
    stream = text_space(ws, options.model, set(media_ids))
    scorer = _Scorer(labels, options)
    out = Decisions()
    for positions, space in stream.chunks(rows=CHUNK_ROWS):
        scorer.chunk([stream.ids[int(p)] for p in positions], space, out)
    return out.done()


def sort_images(source: str | Path, labels: list[Label], options: SortOptions,
                workspace: str | Path | None = None) -> SortResult:
    """Scan, embed, score and copy/move every image of ``source`` into label folders.

    The CSV is written row by row as files are placed (an interrupted sort keeps the rows of
    what it placed); nothing per image but its decision is held in memory."""
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
    csv_path = log_path.with_suffix(".csv")
    columns = score_columns(labels)
    model = model_key(options.model)
    counts: dict[str, int] = {}
    placed = placed_before(destination)
    result = SortResult(csv_path, log_path, counts)
    with open(log_path, "a", encoding="utf-8") as log, \
            open(csv_path, "w", encoding="utf-8", newline="") as sheet:
        rows = csv.writer(sheet)
        rows.writerow(["path", "media_id", "label", "score", "destination",
                       *(f"score:{k}" for k in columns), "model"])
        for path, relpath, media in files:
            label_paths, scores = decisions.get(media) or ([], None)
            targets = label_paths or [(UNSURE,)]
            earlier = placed.get(path, [])
            if earlier:
                result.resumed += 1
            last = earlier[-1] if earlier else ""
            try:
                for n, label_path in enumerate(targets):
                    if n >= len(earlier):  # else placed by the interrupted sort resumed here
                        last = str(_place(path, relpath, media, label_path, destination,
                                          options, "move" if options.move and
                                          n == len(targets) - 1 else "copy", log))
                    key = "/".join(label_path)
                    counts[key] = counts.get(key, 0) + 1
            except OSError as exc:
                reason = exc.strerror or str(exc)
                result.failed[path] = reason
                logger.warning("%s: not sorted: %s", path, reason)
                continue
            known = scores is not None and not np.isnan(scores).all()
            rows.writerow([path, media, ";".join("/".join(p) for p in label_paths) or UNSURE,
                           round(float(np.nanmax(scores)), 4) if known else 0.0, last,
                           *(_cell(v) for v in (scores if scores is not None else
                                                [np.nan] * len(columns))), model])
    return result


def _place(path: str, relpath: str | None, media: str, label_path: tuple[str, ...],
           destination: Path, options: SortOptions, action: str, log: Any) -> Path:
    """Copy or move one file into its label folder under a free name; logged first."""
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "the file is gone (moved or deleted since the scan)", path)
    folder = destination.joinpath(*[Label(p, []).folder for p in label_path])
    name = Path(relpath) if options.keep_tree and relpath else Path(Path(path).name)
    target = unique_destination(folder / name)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.write(json.dumps({"action": action, "src": path, "dst": str(target),
                          "media_id": media}) + "\n")
    log.flush()
    os.fsync(log.fileno())
    if action == "move":
        shutil.move(path, target)
    else:
        shutil.copy2(path, target)
    return target


def placed_before(destination: Path) -> dict[str, list[str]]:
    """Source path -> where earlier sorts into ``destination`` put it (and it still is),
    from their logs: what a new sort there does not place again."""
    placed: dict[str, list[str]] = {}
    for log_path in sorted(destination.glob("picsift-sort-*.jsonl")):
        try:
            lines = log_path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            logger.warning("%s: sort log not read: %s", log_path, exc.strerror or exc)
            continue
        for line in lines:
            try:
                entry = json.loads(line)
                src, dst = str(entry["src"]), str(entry["dst"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by the interruption
            if os.path.exists(dst):
                placed.setdefault(src, []).append(dst)
    return placed


def _cell(value: float) -> str:
    return "" if np.isnan(value) else str(round(float(value), 4))


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
