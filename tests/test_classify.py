"""A linear probe trained on a few real photos per class predicts held-out variations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DEMO_CLASSES, class_dataset

from picsift.analyses.classify import predict, train_classifier

CLASSES = DEMO_CLASSES


def test_few_shot_classifier_predicts_held_out_images(tmp_path):
    train = class_dataset(tmp_path / "train", seed=1, n=5)
    test = class_dataset(tmp_path / "test", seed=2, n=4)
    report = train_classifier(train, tmp_path / "clf.json", test=test, workers=2)
    assert report.classes == sorted(CLASSES)
    assert report.cv_accuracy >= 0.9
    assert report.test_accuracy == 1.0
    saved = json.loads((tmp_path / "clf.json").read_text())
    assert saved["format"] == "picsift-classifier-1" and saved["model"] == "efficientnet-lite0"
    predictions = predict(test, tmp_path / "clf.json")
    assert set(predictions.columns) >= {"path", "predicted", "probability", "p:cat"}
    truth = predictions["path"].map(lambda p: Path(p).parent.name)
    assert (predictions["predicted"] == truth).all()
    assert np.allclose(predictions[[f"p:{c}" for c in sorted(CLASSES)]].sum(axis=1), 1.0, atol=1e-3)
    # scored chunk by chunk (3 rows at a time here): the same table as in one go
    from picsift.analyses import classify

    classify.PREDICT_ROWS = 3
    try:
        assert predict(test, tmp_path / "clf.json").equals(predictions)
    finally:
        classify.PREDICT_ROWS = 8192


def test_binary_and_regression_targets(tmp_path):
    train = class_dataset(tmp_path / "train", seed=3, n=5)
    labels = pd.DataFrame({"path": [str(p) for p in sorted(train.rglob("*.jpg"))]})
    labels["label"] = labels["path"].map(lambda p: "yes" if "/cat/" in p else "no")
    labels.to_csv(tmp_path / "binary.csv", index=False)
    report = train_classifier(train, tmp_path / "bin.json", labels_csv=tmp_path / "binary.csv")
    assert report.classes == ["no", "yes"] and report.cv_accuracy >= 0.9
    scored = predict(train, tmp_path / "bin.json")
    assert (scored.loc[scored["path"].str.contains("/cat/"), "predicted"] == "yes").all()
    labels["label"] = labels["path"].map(lambda p: {"cat": 1.0, "coffee": 2.0, "rocket": 3.0}[Path(p).parent.name])
    labels.to_csv(tmp_path / "values.csv", index=False)
    regression = train_classifier(train, tmp_path / "reg.json", labels_csv=tmp_path / "values.csv",
                                  target="regression")
    assert regression.cv_r2 > 0.5


def test_cli_train_and_predict(tmp_path):
    train = class_dataset(tmp_path / "train", seed=4, n=5)
    run = subprocess.run([sys.executable, "-m", "picsift", "train", "--from", str(train), "--out",
                          str(tmp_path / "c.json")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "cross-validated accuracy" in run.stdout
    one = tmp_path / "one"
    (one / "x").mkdir(parents=True)
    (train / "cat" / "cat_0.jpg").rename(one / "x" / "cat.jpg")
    pred = subprocess.run([sys.executable, "-m", "picsift", "predict", str(one), "--classifier",
                           str(tmp_path / "c.json")], capture_output=True, text=True, timeout=300)
    assert pred.returncode == 0, pred.stderr
    assert pd.read_csv(one / "predictions.csv")["predicted"].tolist() == ["cat"]
    with pytest.raises(Exception):
        train_classifier(one, tmp_path / "bad.json")
