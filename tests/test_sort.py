"""Zero-shot sorting with the offline default model, on real photos (demo corpus, CC0)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import picsift
from picsift.analyses.sort.evaluate import evaluate_sort
from picsift.analyses.sort.labels import labels_from_file, labels_from_text
from picsift.analyses.sort.sorter import SortOptions, sort_images, undo_sort
from picsift.errors import PicsiftError
from picsift.scan.worker import file_sha256

PHOTOS = Path(picsift.__file__).parent / "demo" / "corpus" / "photos"
EASY = {"chelsea.jpg": "a cat", "coffee.jpg": "a cup of coffee", "rocket.jpg": "a rocket",
        "camera.jpg": "a man with a camera"}
LABELS = "a cat, a cup of coffee, a rocket, a man with a camera"


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "scraped"
    (source / "day2").mkdir(parents=True)
    for name in EASY:
        shutil.copy2(PHOTOS / name, source / name)
    shutil.copy2(PHOTOS / "chelsea.jpg", source / "day2" / "chelsea.jpg")  # same name elsewhere
    return source


def _tree(folder: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted(folder.iterdir()) if d.is_dir()}


def test_copy_sort_puts_easy_photos_in_their_folders_without_overwriting(tmp_path):
    source = _source(tmp_path)
    before = {p: file_sha256(str(p)) for p in source.rglob("*.jpg")}
    result = sort_images(source, labels_from_text(LABELS), SortOptions(to=tmp_path / "out"),
                         workspace=tmp_path / "ws")
    tree = _tree(tmp_path / "out")
    for name, label in EASY.items():
        assert name in tree[label], (name, tree)
    assert tree["a cat"] == ["chelsea (1).jpg", "chelsea.jpg"]  # collision: a suffix, no overwrite
    assert {p: file_sha256(str(p)) for p in source.rglob("*.jpg")} == before  # originals untouched
    table = pd.read_csv(result.csv)
    assert {f"score:{label}" for label in EASY.values()} <= set(table.columns)
    assert table["model"].eq("efficientnet-lite0").all()
    assert table[[c for c in table.columns if c.startswith("score:")]].sum(axis=1).round(3).eq(1.0).all()


def test_move_then_undo_restores_everything(tmp_path):
    source = _source(tmp_path)
    before = {p.relative_to(source): file_sha256(str(p)) for p in source.rglob("*.jpg")}
    result = sort_images(source, labels_from_text(LABELS),
                         SortOptions(to=tmp_path / "out", move=True, keep_tree=True),
                         workspace=tmp_path / "ws")
    assert not list(source.rglob("*.jpg"))
    assert (tmp_path / "out" / "a cat" / "day2" / "chelsea.jpg").exists()  # --keep-tree
    counts = undo_sort(result.log)
    assert counts["restored"] == len(before)
    assert {p.relative_to(source): file_sha256(str(p)) for p in source.rglob("*.jpg")} == before


def test_abstain_threshold_sends_everything_unsure(tmp_path):
    source = _source(tmp_path)
    sort_images(source, labels_from_text(LABELS), SortOptions(to=tmp_path / "out", threshold=1.01),
                workspace=tmp_path / "ws")
    assert list(_tree(tmp_path / "out")) == ["unsure"]


def test_multi_label_and_hierarchical_labels(tmp_path):
    source = _source(tmp_path)
    labels_file = tmp_path / "labels.yaml"
    labels_file.write_text(
        "labels:\n"
        "  animal:\n"
        "    description: an animal\n"
        "    labels:\n"
        "      cat: a cat\n"
        "      horse: a horse\n"
        "  drink: a cup of coffee\n"
        "  vehicle: a rocket or a car\n"
        "  person: a man with a camera\n")
    labels = labels_from_file(labels_file)
    assert [label.name for label in labels[0].children] == ["cat", "horse"]
    sort_images(source, labels, SortOptions(to=tmp_path / "out"), workspace=tmp_path / "ws")
    assert "chelsea.jpg" in _tree(tmp_path / "out" / "animal")["cat"]
    multi = sort_images(source, labels_from_text(LABELS),
                        SortOptions(to=tmp_path / "multi", multi_label=True, multi_threshold=0.0001),
                        workspace=tmp_path / "ws")
    assert (multi.table["label"].str.count(";") >= 1).any()
    with pytest.raises(PicsiftError):
        sort_images(source, labels, SortOptions(to=tmp_path / "x", move=True, multi_label=True))


def test_eval_reports_accuracy_confusion_and_coverage(tmp_path):
    source = _source(tmp_path)
    result = sort_images(source, labels_from_text(LABELS), SortOptions(to=tmp_path / "out"),
                         workspace=tmp_path / "ws")
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"path": [str(source / n) for n in EASY] + [str(source / "day2" / "chelsea.jpg")],
                  "label": list(EASY.values()) + ["a rocket"]}).to_csv(truth, index=False)
    evaluation = evaluate_sort(result.csv, truth, tmp_path / "eval")
    assert evaluation.accuracy == pytest.approx(4 / 5)
    cat = evaluation.per_class.set_index("label").loc["a cat"]
    assert (cat["precision"], cat["recall"]) == (0.5, 1.0)
    assert int(evaluation.confusion.loc["a rocket", "a cat"]) == 1
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    assert evaluation.curve["coverage"].iloc[0] == 1.0


def test_cli_sort_and_undo(tmp_path):
    source = _source(tmp_path)
    run = subprocess.run([sys.executable, "-m", "picsift", "sort", str(source), "--to",
                          str(tmp_path / "out"), "--labels", LABELS, "--move"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    log = next((tmp_path / "out").glob("picsift-sort-*.jsonl"))
    undo = subprocess.run([sys.executable, "-m", "picsift", "sort", "undo", str(log)],
                          capture_output=True, text=True, timeout=120)
    assert undo.returncode == 0 and "restored: 5" in undo.stdout
    bad = subprocess.run([sys.executable, "-m", "picsift", "sort", str(source), "--to",
                          str(tmp_path / "o2"), "--labels", "onlyone"], capture_output=True, text=True)
    assert bad.returncode == 2 and "at least two labels" in bad.stderr
