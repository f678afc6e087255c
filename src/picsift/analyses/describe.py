"""`picsift describe` and `picsift detect`: captions, answers and open-vocabulary boxes per image.

Neither has an offline default: no captioning, VQA or open-vocabulary detection model ships
inside a package (docs/describe.md), so both need a model pulled once with
``picsift models pull NAME`` or, for describe, an OpenAI-compatible endpoint the user opts into.
Without one they stop before touching the workspace, with a message saying what to run.

Storage (one feature set per model, exported by ``picsift export`` as ``<set>_<column>``):

* ``describe_<model>``: ``media_id, caption, answer_<question slug>..., status, model``. The
  slug of a question is its lower-cased words joined by ``_`` (at most 48 characters, a
  number appended when two questions collide); the set's parameters keep the exact questions.
* ``detect_<model>``: ``media_id, n_objects, count_<label slug>..., boxes, status, model``.
  The label slug drops a leading article ("a police car" -> ``count_police_car``). ``boxes`` is
  a JSON list of ``{"label", "score", "box": [x0, y0, x1, y1]}`` in pixels of the upright
  original image; :func:`detections_table` unrolls it into one row per box.

``status`` is "ok" or "error: ..."; failed rows are also listed by ``picsift errors`` and are
retried by the next run, while rows that are "ok" are never recomputed for the same settings.
Torch models run in this process in batches (a second process would hold a second copy of the
model for no gain); the API mode overlaps requests with threads instead.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from picsift.analyses.copies.extract import media_paths
from picsift.engine import LocalEngine, ProgressReporter
from picsift.errors import MediaError, PicsiftError
from picsift.media.decode import DecodeOptions, load_image
from picsift.workspace.features import FeatureSet, crash_records, latest_feature_sets
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)

DESCRIBE = "describe"
DETECT = "detect"
VERSION = "1"
DECODE_SIZE = 1024  # >= every model's input (OWLv2 960 px) and the API's max side
DEFAULT_CAPTION_MODEL = "blip-base"
DEFAULT_DETECTOR = "owlv2-base"
OK = "ok"
_ARTICLES = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)


# --- column names ----------------------------------------------------------------------------

def slug(text: str, max_len: int = 48) -> str:
    """Lower-case words joined by "_" ("Is there a flag?" -> "is_there_a_flag")."""
    words = re.findall(r"[^\W_]+", text.lower())
    return "_".join(words)[:max_len].rstrip("_") or "x"


def _unique(prefix: str, names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for original, base in names:
        column, n = f"{prefix}{base}", 2
        while column in out:
            column, n = f"{prefix}{base}_{n}", n + 1
        out[column] = original
    return out


def question_columns(questions: Sequence[str]) -> dict[str, str]:
    """{column: question}: ``answer_<slug>`` per question, in order."""
    return _unique("answer_", ((q, slug(q)) for q in questions))


def label_columns(labels: Sequence[str]) -> dict[str, str]:
    """{column: label}: ``count_<slug without a leading article>`` per label, in order."""
    return _unique("count_", ((label, slug(_ARTICLES.sub("", label.strip()))) for label in labels))


def clean_list(items: Iterable[str] | str) -> list[str]:
    """Stripped, non-empty, de-duplicated items (a string is split on commas)."""
    if isinstance(items, str):
        items = items.split(",")
    seen: dict[str, None] = {}
    for item in items:
        item = " ".join(str(item).split())
        if item and item.lower() not in {s.lower() for s in seen}:
            seen[item] = None
    return list(seen)


def read_questions(path: str) -> list[str]:
    """Questions from a text file, one per line (blank lines and lines starting with # skipped)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise PicsiftError(f"cannot read the questions file {path}: {exc}") from exc
    questions = clean_list(line for line in lines if not line.lstrip().startswith("#"))
    if not questions:
        raise PicsiftError(f"the questions file {path} holds no questions (one per line)")
    return questions


def _set_name(prefix: str, model: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9._-]+', '-', model).strip('-') or 'model'}"


# --- shared run loop -------------------------------------------------------------------------

@dataclass
class RunSummary:
    """What a describe/detect run did; ``columns`` are the per-image columns it wrote."""

    model: str
    feature_set: str
    done: int = 0
    failed: int = 0
    already: int = 0
    seconds: float = 0.0
    columns: list[str] = field(default_factory=list)


def ok_ids(features: FeatureSet) -> set[str]:
    """Media whose latest row in the set is "ok" (what a resumed run skips)."""
    latest: dict[str, str] = {}
    for part in features.parts():
        table = pq.read_table(part, columns=["media_id", "status"])
        for media_id, status in zip(table.column(0).to_pylist(), table.column(1).to_pylist(),
                                    strict=True):
            latest[media_id] = status
    return {m for m, status in latest.items() if status == OK}


def _decode(batch: list[tuple[str, str]]) -> tuple[list[Image.Image], list[int], dict[int, str]]:
    """(images, their indices in the batch, {index: decode error}) with the same decoder as
    every other analysis (EXIF orientation, size limits, JPEG draft)."""
    images, kept, errors = [], [], {}
    for n, (_media_id, path) in enumerate(batch):
        try:
            images.append(load_image(path, size=DECODE_SIZE, options=DecodeOptions()))
            kept.append(n)
        except MediaError as exc:
            errors[n] = f"error: {exc.kind}: {exc.reason}"
    return images, kept, errors


class _Writer:
    """Stores each batch's rows as one part; mirrors failures into the errors table."""

    def __init__(self, ws: Workspace, features: FeatureSet, schema: pa.Schema, stage: str,
                 summary: RunSummary, stop: Callable[[list[dict[str, Any]]], str | None] | None = None
                 ) -> None:
        self.ws, self.features, self.schema = ws, features, schema
        self.stage, self.summary, self.stop = stage, summary, stop

    def store(self, batch: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist([{k: r.get(k) for k in self.schema.names} for r in rows],
                                     schema=self.schema)
        self.features.write_part(table)
        paths = dict(batch)
        bad = [r for r in rows if r["status"] != OK]
        good = [paths[r["media_id"]] for r in rows if r["status"] == OK]
        if bad:
            self.ws.record_errors(self.stage, [
                {"path": paths[r["media_id"]], "error": r["status"].removeprefix("error: ")[:300],
                 "kind": r.get("_kind", self.stage)} for r in bad])
        if good:
            with self.ws.transaction() as conn:
                conn.executemany("DELETE FROM errors WHERE path = ? AND stage = ?",
                                 [(p, self.stage) for p in good])
        self.summary.done += len(rows) - len(bad)
        self.summary.failed += len(bad)
        reason = self.stop(rows) if self.stop else None
        if reason:  # raised outside the engine's per-batch guard: ends the run, rows kept
            raise PicsiftError(reason)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        rows = [{"media_id": r["media_id"], "status": f"error: {r['error']}", "_kind": "crash"}
                for r in crash_records(batch, exc)]
        for row in rows:
            row["model"] = self.summary.model
        self.store(batch, rows)


def _run(ws: Workspace, features: FeatureSet, schema: pa.Schema, stage: str,
         task: Callable[[list[tuple[str, str]]], list[dict[str, Any]]], summary: RunSummary,
         batch_size: int, progress: bool,
         stop: Callable[[list[dict[str, Any]]], str | None] | None = None) -> RunSummary:
    started = time.monotonic()
    with ws.writing():
        features.register()
        done = ok_ids(features)
        everything = media_paths(ws)
        todo = [(m, p) for m, p in everything if m not in done]
        summary.already = len(everything) - len(todo)
        if todo:
            batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            writer = _Writer(ws, features, schema, stage, summary, stop)
            with ProgressReporter(stage, len(todo), enabled=progress) as bar:
                # workers=1: the model lives in this process (see the module docstring)
                LocalEngine(1).map(task, batches, writer.store, writer.fail, bar)
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


def _isolating(run: Callable[[list[Image.Image]], list[Any]], images: list[Image.Image]
               ) -> list[Any | BaseException]:
    """``run`` on the batch; when the batch fails, image by image so one bad image (or an
    out-of-memory on a big batch) does not fail its neighbours."""
    try:
        return list(run(images))
    except PicsiftError:
        raise
    except Exception as exc:  # noqa: BLE001
        if len(images) == 1:
            return [exc]
        log.warning("batch of %d failed (%s); retrying one by one", len(images), exc)
    out: list[Any | BaseException] = []
    for image in images:
        try:
            out.extend(run([image]))
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


def _error(exc: BaseException) -> str:
    return f"error: {exc.__class__.__name__}: {exc}"[:300]


# --- describe --------------------------------------------------------------------------------

class _LocalDescriber:
    """Captions and answers from a pulled transformers model, batch by batch."""

    def __init__(self, model: Any, caption: bool, questions: dict[str, str]) -> None:
        self.model, self.caption, self.questions = model, caption, questions
        self.kind = "model"

    def __call__(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"status": OK} for _ in images]
        jobs: list[tuple[str, Callable[[list[Image.Image]], list[str]]]] = []
        if self.caption:
            jobs.append(("caption", self.model.caption))
        for column, question in self.questions.items():
            jobs.append((column, lambda ims, q=question: self.model.answer(ims, q)))
        for column, run in jobs:
            for row, result in zip(rows, _isolating(run, images), strict=True):
                if isinstance(result, BaseException):
                    row[column] = None
                    row["status"] = row["status"] if row["status"] != OK else _error(result)
                else:
                    row[column] = result
        return rows


class _ApiDescriber:
    """Captions and answers from an OpenAI-compatible endpoint, one request per prompt."""

    def __init__(self, client: Any, caption: bool, questions: dict[str, str]) -> None:
        from picsift.models.openai_vision import ANSWER_PROMPT, CAPTION_PROMPT

        self.client = client
        self.columns = (["caption"] if caption else []) + list(questions)
        self.prompts = ([CAPTION_PROMPT] if caption else []) + [
            ANSWER_PROMPT.format(question=q) for q in questions.values()]
        self.kind = "api"

    def __call__(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        rows = []
        for replies in self.client.describe(images, self.prompts):
            row: dict[str, Any] = {"status": OK}
            for column, reply in zip(self.columns, replies, strict=True):
                row[column] = reply.text
                if reply.status != OK and row["status"] == OK:
                    row["status"] = reply.status
            rows.append(row)
        return rows


_FATAL = ("unreachable", "connection failed", "HTTP 401", "HTTP 403", "HTTP 404")


def _endpoint_down(rows: list[dict[str, Any]]) -> str | None:
    """A reason to stop an API run: every image of a batch failed the same endpoint-wide way
    (unreachable, bad key, wrong URL or model), so the rest would only fail slowly too."""
    statuses = {r["status"] for r in rows if r.get("_kind") != "decode"}
    if not statuses or OK in statuses:
        return None
    fatal = [s for s in statuses if any(f in s for f in _FATAL)]
    if len(fatal) != len(statuses):
        return None
    return (f"stopped: every request of a batch failed ({sorted(fatal)[0].removeprefix('error: ')}); "
            "check --api-base, --model and the key, then run again (failed images are retried)")


def _describe_task(describer: Any, model_label: str, batch: list[tuple[str, str]]
                   ) -> list[dict[str, Any]]:
    images, kept, errors = _decode(batch)
    results = describer(images) if images else []
    rows = []
    for n, (media_id, _path) in enumerate(batch):
        if n in errors:
            row = {"status": errors[n], "_kind": "decode"}
        else:
            row = results[kept.index(n)]
            row.setdefault("_kind", describer.kind)
        rows.append({**row, "media_id": media_id, "model": model_label})
    return rows


def describe_workspace(ws: Workspace, model: str | None = None, questions: Sequence[str] = (),
                       api_base: str | None = None, api_key_env: str | None = None,
                       accept_disclosure: bool = False, workers: int | None = None,
                       progress: bool = False, caption: bool = True, batch_size: int = 8,
                       max_new_tokens: int = 40, timeout: float = 60.0) -> RunSummary:
    """Caption every image and answer ``questions`` about it; store ``describe_<model>``.

    Local mode: ``model`` is a model pulled with ``picsift models pull`` (default blip-base),
    run with transformers in this process (GPU when present). API mode (``api_base`` given):
    ``model`` is the endpoint's model name, the key is read from the environment variable
    ``api_key_env``, images leave the machine only after ``accept_disclosure`` (or the
    environment switch), and ``workers`` is the number of requests in flight (default 4).
    Resumable: images already described "ok" with the same settings are skipped.
    """
    questions = clean_list(questions)
    columns = question_columns(questions)
    if api_base:
        from picsift.models.openai_vision import OpenAIVisionClient

        if not model:
            raise PicsiftError("the API mode needs --model: the endpoint's model name, "
                               "e.g. gpt-4o-mini")
        client = OpenAIVisionClient(model, api_base, api_key_env, accept_disclosure=accept_disclosure,
                                    timeout=timeout, concurrency=workers or 4)
        label = f"{model}@{client.host}"
        describer: Any = _ApiDescriber(client, caption, columns)
        batch_size = max(batch_size, 2 * client.concurrency)
    else:
        from picsift.models.vlm import CaptionModel

        loaded = CaptionModel.named(model or DEFAULT_CAPTION_MODEL, max_new_tokens=max_new_tokens)
        label = loaded.name
        if columns and not loaded.can_answer:
            raise loaded.answer_error()
        if caption and not loaded.can_caption:
            if not columns:
                raise loaded.caption_error()
            log.info("%s does not write captions; answering the questions only", label)
            caption = False
        describer = _LocalDescriber(loaded, caption, columns)
    if not caption and not columns:
        raise PicsiftError("nothing to do: ask for captions or give --questions")
    names = (["caption"] if caption else []) + list(columns)
    schema = pa.schema([("media_id", pa.string()), *((c, pa.string()) for c in names),
                        ("status", pa.string()), ("model", pa.string())])
    params = {"model": label, "caption": caption, "questions": columns,
              "api_base": api_base, "max_new_tokens": None if api_base else max_new_tokens}
    features = FeatureSet(ws, _set_name(DESCRIBE, label), VERSION, params, model=label)
    summary = RunSummary(model=label, feature_set=features.name, columns=names)

    def task(batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        return _describe_task(describer, label, batch)

    stop = _endpoint_down if api_base else None
    return _run(ws, features, schema, DESCRIBE, task, summary, batch_size, progress, stop)


# --- detect ----------------------------------------------------------------------------------

def _upright_sizes(ws: Workspace) -> dict[str, tuple[int, int]]:
    return {r["media_id"]: (int(r["width"]), int(r["height"])) for r in ws.query(
        "SELECT media_id, width, height FROM media WHERE width > 0 AND height > 0")}


def _detect_task(detector: Any, labels: dict[str, str], threshold: float, label: str,
                 sizes: dict[str, tuple[int, int]], batch: list[tuple[str, str]]
                 ) -> list[dict[str, Any]]:
    images, kept, errors = _decode(batch)
    wanted = list(labels.values())
    results = _isolating(lambda ims: detector.detect(ims, wanted, threshold), images) if images else []
    column_of = {text: column for column, text in labels.items()}
    rows = []
    for n, (media_id, _path) in enumerate(batch):
        row: dict[str, Any] = {"media_id": media_id, "model": label}
        if n in errors:
            rows.append({**row, "status": errors[n], "_kind": "decode"})
            continue
        image, found = images[kept.index(n)], results[kept.index(n)]
        if isinstance(found, BaseException):
            rows.append({**row, "status": _error(found), "_kind": "model"})
            continue
        width, height = sizes.get(media_id, image.size)
        sx, sy = width / image.width, height / image.height  # back to the original's pixels
        boxes = [{"label": d["label"], "score": d["score"],
                  "box": [round(d["box"][0] * sx, 1), round(d["box"][1] * sy, 1),
                          round(d["box"][2] * sx, 1), round(d["box"][3] * sy, 1)]} for d in found]
        counts = {column: 0 for column in labels}
        for d in boxes:
            counts[column_of[d["label"]]] += 1
        rows.append({**row, **counts, "n_objects": len(boxes), "status": OK,
                     "boxes": json.dumps(boxes, separators=(",", ":"))})
    return rows


def detect_objects(ws: Workspace, labels: Sequence[str] | str, model: str | None = None,
                   threshold: float = 0.1, workers: int | None = None, progress: bool = False,
                   batch_size: int = 4) -> RunSummary:
    """Zero-shot detection of ``labels`` in every image with a pulled open-vocabulary detector.

    Stores ``detect_<model>``: per-image counts per label (``count_<slug>``), ``n_objects`` and
    the boxes as JSON; :func:`detections_table` gives one row per box. ``threshold`` is the
    minimum score (OWL models score low: 0.1-0.3 is typical). ``workers`` is accepted for a
    uniform API; the model runs in this process.
    """
    from picsift.models.vlm import DetectorModel

    wanted = clean_list(labels)
    if not wanted:
        raise PicsiftError("give at least one label, e.g. --labels 'a rifle,a flag,a police car'")
    if not 0.0 <= threshold <= 1.0:
        raise PicsiftError(f"--threshold must be between 0 and 1, not {threshold}")
    detector = DetectorModel.named(model or DEFAULT_DETECTOR)
    columns = label_columns(wanted)
    if workers not in (None, 1):
        log.info("detect runs the model in this process; --workers %s ignored", workers)
    schema = pa.schema([("media_id", pa.string()), ("n_objects", pa.int32()),
                        *((c, pa.int32()) for c in columns), ("boxes", pa.string()),
                        ("status", pa.string()), ("model", pa.string())])
    params = {"model": detector.name, "labels": columns, "threshold": threshold}
    features = FeatureSet(ws, _set_name(DETECT, detector.name), VERSION, params,
                          model=detector.name)
    summary = RunSummary(model=detector.name, feature_set=features.name,
                         columns=["n_objects", *columns])
    sizes = _upright_sizes(ws)

    def task(batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        return _detect_task(detector, columns, threshold, detector.name, sizes, batch)

    return _run(ws, features, schema, DETECT, task, summary, batch_size, progress)


# --- reading results -------------------------------------------------------------------------

def _latest(ws: Workspace, prefix: str, model: str | None) -> FeatureSet:
    sets = [s for s in latest_feature_sets(ws) if s.name.startswith(prefix + "_")]
    if model is not None:
        sets = [s for s in sets if s.name == _set_name(prefix, model) or s.model == model]
    if not sets:
        verb = "describe" if prefix == DESCRIBE else "detect"
        raise PicsiftError(f"no {verb} results in {ws.dir}" + (f" for {model}" if model else "")
                           + f": run 'picsift {verb}' first")
    return max(sets, key=lambda s: max(p.stat().st_mtime for p in s.parts()))


def _paths(ws: Workspace) -> pd.DataFrame:
    return pd.read_sql_query("SELECT media_id, MIN(path) AS path FROM files "
                             "WHERE kind IN ('image', 'frame') GROUP BY media_id", ws.connect())


def results_table(ws: Workspace, kind: str = DESCRIBE, model: str | None = None) -> pd.DataFrame:
    """One row per image (latest row wins) of the latest describe/detect set, with its path."""
    features = _latest(ws, kind, model)
    table = features.read()
    frame = table.to_pandas().drop_duplicates("media_id", keep="last") if table is not None \
        else pd.DataFrame(columns=["media_id"])
    return _paths(ws).merge(frame, on="media_id", how="inner")


def detections_table(ws: Workspace, model: str | None = None) -> pd.DataFrame:
    """One row per detected box: media_id, path, label, score, x0, y0, x1, y1, model."""
    per_image = results_table(ws, DETECT, model)
    rows = []
    for row in per_image.itertuples():
        if row.status != OK or not isinstance(row.boxes, str):
            continue
        for d in json.loads(row.boxes):
            x0, y0, x1, y1 = d["box"]
            rows.append({"media_id": row.media_id, "path": row.path, "label": d["label"],
                         "score": d["score"], "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                         "model": row.model})
    return pd.DataFrame(rows, columns=["media_id", "path", "label", "score", "x0", "y0", "x1",
                                       "y1", "model"])
