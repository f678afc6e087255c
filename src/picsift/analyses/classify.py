"""Supervised classification on stored embeddings: train, cross-validate, predict.

A linear probe (logistic regression with balanced class weights, for unbalanced data; ridge
regression for continuous targets) on the image embeddings: fast, needs few examples (5 per
class work for distinct classes), and honest about its quality through stratified
cross-validation. The trained classifier is saved as JSON (weights, classes, embedding
model), not as a pickle, so a shared file cannot run code on the reader's machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import picsift
from picsift.analyses.embeddings import (DEFAULT_MODEL, EmbeddingStream, embed_workspace,
                                         iter_embeddings, model_key)
from picsift.errors import PicsiftError
from picsift.workspace.store import Workspace

FORMAT = "picsift-classifier-1"


@dataclass
class TrainReport:
    target: str                  # classification | regression
    n: int
    classes: list[str]
    cv_folds: int
    cv_accuracy: float | None    # classification
    cv_r2: float | None          # regression
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    test_accuracy: float | None = None
    test_r2: float | None = None


PREDICT_ROWS = 8192  # embeddings scored at a time by `predict`

def _labelled(ws: Workspace, root: Path, labels_csv: Path | None, model: str
              ) -> tuple[np.ndarray, list[str], list[str]]:
    """(X, labels, paths): class = first sub-folder of each image, or the CSV's label."""
    files = ws.query("SELECT path, relpath, media_id FROM files WHERE kind = 'image' ORDER BY path")
    wanted: dict[str, str] = {}
    if labels_csv is not None:
        table = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
        if not {"path", "label"} <= set(table.columns):
            raise PicsiftError(f"{labels_csv} needs 'path' and 'label' columns")
        for path, label in zip(table["path"], table["label"]):
            full = Path(path) if Path(path).is_absolute() else (labels_csv.parent / path)
            wanted[str(full.absolute())] = label
    # only the labelled images' vectors are read (the training set), not the whole corpus's
    labelled = {r["media_id"] for r in files
                if (wanted.get(r["path"]) if labels_csv is not None
                    else len(Path(r["relpath"] or "").parts) > 1)}
    stream = EmbeddingStream(ws, model, media=labelled)
    matrix = stream.take(np.arange(len(stream))) if len(stream) else np.zeros((0, 1), np.float32)
    position = {m: i for i, m in enumerate(stream.ids)}
    rows, labels, paths = [], [], []
    for r in files:
        if labels_csv is not None:
            label = wanted.get(r["path"])
        else:
            parts = Path(r["relpath"] or "").parts
            label = parts[0] if len(parts) > 1 else None
        if label in (None, "") or r["media_id"] not in position:
            continue
        rows.append(position[r["media_id"]])
        labels.append(label)
        paths.append(r["path"])
    if not rows:
        raise PicsiftError(f"no labelled images under {root}: use one sub-folder per class "
                           "or --labels-csv with path,label")
    return matrix[rows], labels, paths


def _prepare(folder: Path, model: str, workers: int | None, workspace: Path | None) -> Workspace:
    ws = picsift.open(folder, workspace=workspace)
    ws.scan([folder], workers=workers)
    embed_workspace(ws, model, workers)
    return ws


def train_classifier(source: str | Path, out: str | Path, *, labels_csv: str | Path | None = None,
                     test: str | Path | None = None, target: str = "classification",
                     model: str = DEFAULT_MODEL, workers: int | None = None,
                     c: float = 1.0, folds: int = 5) -> TrainReport:
    """Train on ``source``, cross-validate, optionally test on ``test``; save JSON to ``out``."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    source = Path(source).absolute()
    ws = _prepare(source, model, workers, None)
    x, y, _paths = _labelled(ws, source, Path(labels_csv).absolute() if labels_csv else None, model)
    regression = target == "regression"
    if regression:
        try:
            values = np.array([float(v) for v in y])
        except ValueError as exc:
            raise PicsiftError("--target regression needs numeric labels") from exc
        estimator: Any = Ridge(alpha=1.0 / c)
        n_folds = max(2, min(folds, len(values) // 2))
        predicted = cross_val_predict(estimator, x, values, cv=KFold(n_folds, shuffle=True, random_state=0))
        estimator.fit(x, values)
        report = TrainReport("regression", len(values), [], n_folds, None,
                             float(r2_score(values, predicted)), pd.DataFrame(), pd.DataFrame())
        weights = {"coef": estimator.coef_.tolist(), "intercept": float(estimator.intercept_)}
    else:
        classes = sorted(set(y))
        if len(classes) < 2:
            raise PicsiftError("need at least two classes to train a classifier")
        smallest = min(y.count(k) for k in classes)
        n_folds = max(2, min(folds, smallest))
        if smallest < 2:
            raise PicsiftError("every class needs at least 2 examples (5 or more is better)")
        estimator = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        predicted = cross_val_predict(estimator, x, y, cv=StratifiedKFold(n_folds, shuffle=True, random_state=0))
        estimator.fit(x, y)
        p, r, f, s = precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
        per_class = pd.DataFrame({"label": classes, "precision": p.round(4), "recall": r.round(4),
                                  "f1": f.round(4), "support": s})
        confusion = pd.DataFrame(confusion_matrix(y, predicted, labels=classes), index=classes, columns=classes)
        report = TrainReport("classification", len(y), classes, n_folds,
                             float(np.mean(np.array(predicted) == np.array(y))), None, per_class, confusion)
        weights = {"coef": estimator.coef_.tolist(), "intercept": estimator.intercept_.tolist(),
                   "classes": [str(k) for k in estimator.classes_]}
    saved = {"format": FORMAT, "target": report.target, "model": model_key(model), "weights": weights,
             "trained_on": str(source), "n": report.n, "cv": {"folds": n_folds,
             "accuracy": report.cv_accuracy, "r2": report.cv_r2}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved))
    if test is not None:
        scored = predict(Path(test), out, workers=workers)
        test_ws = picsift.open(Path(test).absolute())
        tx, ty, tpaths = _labelled(test_ws, Path(test).absolute(), None, model)
        truth = dict(zip(tpaths, ty))
        scored = scored[scored["path"].isin(truth)]
        if regression:
            from sklearn.metrics import r2_score as r2

            report.test_r2 = float(r2([float(truth[p]) for p in scored["path"]], scored["predicted"]))
        else:
            report.test_accuracy = float(np.mean([truth[p] == str(v) for p, v in
                                                  zip(scored["path"], scored["predicted"])]))
    return report


def load_classifier(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PicsiftError(f"cannot read classifier {path}: {exc}") from exc
    if data.get("format") != FORMAT:
        raise PicsiftError(f"{path} is not a picsift classifier")
    return data


def predict(folder: str | Path, classifier: str | Path, *, workers: int | None = None,
            workspace: str | Path | None = None) -> pd.DataFrame:
    """Predictions (and class probabilities) for every image of ``folder``."""
    from picsift.analyses import finetune

    if finetune.is_finetuned(classifier):  # a fine-tuned network: onnxruntime, no torch
        return finetune.predict_finetuned(folder, classifier, workers=workers, workspace=workspace)
    data = load_classifier(classifier)
    model = data["model"]
    ws = _prepare(Path(folder).absolute(), model, workers, Path(workspace) if workspace else None)
    weights = data["weights"]
    paths = {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') GROUP BY media_id")}
    frames = [_predict_chunk(ids, x, weights, data["target"], paths)
              for ids, x in iter_embeddings(ws, model, rows=PREDICT_ROWS)]  # memory flat in N
    return pd.concat(frames, ignore_index=True)


def _predict_chunk(ids: list[str], x: np.ndarray, weights: dict[str, Any], target: str,
                   paths: dict[str, str]) -> pd.DataFrame:
    coef = np.array(weights["coef"], np.float64)
    frame = pd.DataFrame({"path": [paths.get(m) for m in ids], "media_id": ids})
    if target == "regression":
        frame["predicted"] = x @ coef + weights["intercept"]
        return frame
    logits = x @ coef.T + np.array(weights["intercept"])
    classes = weights["classes"]
    if len(classes) == 2:  # sklearn's binary model has one row of weights for classes[1]
        logits = np.column_stack([-logits[:, 0], logits[:, 0]]) / 2 if logits.shape[1] == 1 else logits
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    frame["predicted"] = [classes[i] for i in probs.argmax(axis=1)]
    frame["probability"] = probs.max(axis=1).round(4)
    for j, name in enumerate(classes):
        frame[f"p:{name}"] = probs[:, j].round(4)
    return frame
    return frame
