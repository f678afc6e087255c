"""`picsift sort eval`: check a sort against a hand-labelled sample, as the seed guide asks.

Reads the sort's CSV (every label's score per image) and a truth CSV (path, label); reports
accuracy, per-class precision/recall/F1, the confusion matrix (CSV and PNG), and the
accuracy/coverage curve of the abstain threshold (CSV and PNG): how accurate the sort is
if only images whose top score passes t are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from picsift.errors import PicsiftError


@dataclass
class SortEvaluation:
    accuracy: float
    n: int
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    curve: pd.DataFrame


def _key(path: str) -> str:
    return os.path.normpath(path)


def evaluate_sort(predictions_csv: str | Path, truth_csv: str | Path, out_dir: str | Path,
                  truth_column: str = "label", path_column: str = "path") -> SortEvaluation:
    """Score the sort; write confusion.csv/.png and coverage.csv/.png into ``out_dir``."""
    try:
        pred = pd.read_csv(predictions_csv, dtype={"label": str})
        truth = pd.read_csv(truth_csv, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise PicsiftError(f"cannot read {exc}") from exc
    for column in (path_column, truth_column):
        if column not in truth.columns:
            raise PicsiftError(f"truth file {truth_csv} has no column {column!r}")
    by_path = {_key(p): row for p, row in zip(pred["path"], pred.itertuples())}
    by_name: dict[str, object] = {}
    for p, row in zip(pred["path"], pred.itertuples()):
        by_name.setdefault(os.path.basename(p), row)
    rows = []
    for path, label in zip(truth[path_column], truth[truth_column]):
        hit = by_path.get(_key(path)) or by_name.get(os.path.basename(path))
        if hit is None:
            raise PicsiftError(f"{path} (truth file) is not in the sort results")
        rows.append((label, str(hit.label).split(";")[0], float(hit.score)))
    frame = pd.DataFrame(rows, columns=["truth", "predicted", "score"])
    classes = sorted(set(frame["truth"]) | set(frame["predicted"]))
    confusion = pd.crosstab(frame["truth"], frame["predicted"]).reindex(index=classes, columns=classes,
                                                                         fill_value=0)
    per_class = []
    for c in classes:
        tp = int(confusion.loc[c, c])
        fp = int(confusion[c].sum()) - tp
        fn = int(confusion.loc[c].sum()) - tp
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        per_class.append({"label": c, "precision": round(p, 4), "recall": round(r, 4),
                          "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                          "support": int(confusion.loc[c].sum())})
    correct = (frame["truth"] == frame["predicted"]).to_numpy()
    thresholds = np.round(np.linspace(0, 1, 21), 2)
    curve = pd.DataFrame([{
        "threshold": t,
        "coverage": float((frame["score"] >= t).mean()),
        "accuracy": float(correct[frame["score"] >= t].mean()) if (frame["score"] >= t).any() else np.nan,
    } for t in thresholds])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    confusion.to_csv(out / "confusion.csv")
    curve.to_csv(out / "coverage.csv", index=False)
    pd.DataFrame(per_class).to_csv(out / "per_class.csv", index=False)
    _confusion_png(confusion, out / "confusion.png")
    _curve_png(curve, out / "coverage.png")
    return SortEvaluation(float(correct.mean()), len(frame), pd.DataFrame(per_class), confusion, curve)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _confusion_png(confusion: pd.DataFrame, path: Path) -> None:
    n = len(confusion)
    cell, margin = 56, 190
    image = Image.new("RGB", (margin + n * cell + 20, margin + n * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    peak = max(1, int(confusion.to_numpy().max()))
    for i, truth in enumerate(confusion.index):
        draw.text((10, margin + i * cell + cell // 3), str(truth)[:24], fill="black", font=_font(13))
        for j, pred in enumerate(confusion.columns):
            value = int(confusion.iloc[i, j])
            shade = int(255 - 200 * value / peak)
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell, margin + (i + 1) * cell)
            draw.rectangle(box, fill=(shade, shade, 255), outline="grey")
            draw.text((box[0] + cell // 3, box[1] + cell // 3), str(value),
                      fill="white" if shade < 120 else "black", font=_font(14))
    for j, pred in enumerate(confusion.columns):
        label = Image.new("RGBA", (margin - 10, 20), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((0, 0), str(pred)[:24], fill="black", font=_font(13))
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (margin + j * cell + cell // 3, 0), rotated)
    draw.text((10, margin + n * cell + 12), "rows: truth, columns: predicted", fill="grey", font=_font(13))
    image.save(path)


def _curve_png(curve: pd.DataFrame, path: Path) -> None:
    width, height, pad = 520, 360, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((pad, pad // 2, width - pad // 2, height - pad), outline="black")

    def xy(t: float, v: float) -> tuple[float, float]:
        return (pad + t * (width - 1.5 * pad), height - pad - v * (height - 1.5 * pad))

    for column, colour in (("accuracy", (200, 40, 40)), ("coverage", (40, 90, 200))):
        points = [xy(t, v) for t, v in zip(curve["threshold"], curve[column]) if not np.isnan(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
    draw.text((pad, height - pad + 8), "abstain threshold (top score) 0 → 1", fill="black", font=_font(13))
    draw.text((pad + 8, pad // 2 + 6), "accuracy", fill=(200, 40, 40), font=_font(13))
    draw.text((pad + 8, pad // 2 + 24), "coverage", fill=(40, 90, 200), font=_font(13))
    image.save(path)
