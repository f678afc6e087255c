"""Zero-shot sorting with the offline default model, on real photos (demo corpus, CC0)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import picsift
from picsift.analyses.embeddings import load_embeddings
from picsift.analyses.sort import sorter
from picsift.analyses.sort.evaluate import evaluate_sort
from picsift.analyses.sort.labels import UNSURE, labels_from_file, labels_from_text
from picsift.analyses.sort.score import TEMPERATURE, label_vectors, softmax
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


def _assign_before_streaming(ws, labels, media_ids, options, prefix=()):
    """sorter._assign as it was before streaming (commit 61b071a): every embedding loaded
    again for every media with sub-labels. Frozen here as the reference."""
    space_ids, space = load_embeddings(ws, options.model, "text_space")
    probs = softmax(space @ label_vectors(labels, options.model).T, TEMPERATURE[options.model])
    keep = {m: i for i, m in enumerate(space_ids)}
    out = {}
    rows = [keep[m] for m in media_ids if m in keep]
    chosen = sorter._decide(labels, probs[rows], options)
    for media, row, picks in zip([m for m in media_ids if m in keep], rows, chosen):
        scores = {"/".join(prefix + (label.name,)): float(probs[row, j])
                  for j, label in enumerate(labels)}
        paths = []
        for j in picks:
            label = labels[j]
            if label.children:
                sub_paths, sub_scores = _assign_before_streaming(
                    ws, label.children, [media], options, prefix + (label.name,))[media]
                scores.update(sub_scores)
                paths.extend(sub_paths or [prefix + (label.name, UNSURE)])
            else:
                paths.append(prefix + (label.name,))
        out[media] = (paths, scores)
    return out


def _reference_decisions(ws, labels, media_ids, options):
    """The frozen reference, its score dicts laid out as the sorter's score rows."""
    columns = sorter.score_columns(labels)
    decisions = sorter.Decisions()
    for media, (paths, scores) in _assign_before_streaming(ws, labels, media_ids, options).items():
        decisions.add([media], [paths], np.array([[scores.get(c, np.nan) for c in columns]],
                                                 np.float32))
    return decisions.done()


HIERARCHY = """labels:
  animal:
    description: an animal
    labels:
      mammal:
        description: a mammal
        labels:
          cat: a cat
          horse: a horse
      bird: a bird
  object:
    description: an object
    labels:
      drink: a cup of coffee
      money: old coins
      machine: a rocket or a camera
  person: a person
  space: stars and galaxies in space
"""


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi-label"])
def test_streamed_hierarchical_sort_is_identical_to_before(tmp_path, monkeypatch, multi):
    source = tmp_path / "scraped"
    shutil.copytree(PHOTOS, source)
    shutil.copy2(PHOTOS / "chelsea.jpg", source / "chelsea copy.jpg")  # one media, two files
    (tmp_path / "labels.yaml").write_text(HIERARCHY)
    labels = labels_from_file(tmp_path / "labels.yaml")

    def run(out: str):
        options = SortOptions(to=tmp_path / out, multi_label=multi, multi_threshold=0.2,
                              threshold=0.0 if multi else 0.3)
        result = sort_images(source, labels, options, workspace=tmp_path / "ws")
        table = pd.read_csv(result.csv)
        table["destination"] = table["destination"].map(
            lambda d: str(Path(d).relative_to(tmp_path / out)))
        log = [{**e, "dst": str(Path(e["dst"]).relative_to(tmp_path / out))}
               for e in map(json.loads, result.log.read_text().splitlines())]
        tree = sorted(str(p.relative_to(tmp_path / out)) for p in (tmp_path / out).rglob("*")
                      if p.suffix != ".jsonl" and p.suffix != ".csv")
        return table, log, tree, result.counts

    with monkeypatch.context() as patch:
        patch.setattr(sorter, "_assign", _reference_decisions)
        before = run("before")
    monkeypatch.setattr(sorter, "CHUNK_ROWS", 2)  # 10 media: 5 chunks
    calls = []
    real = sorter.label_vectors
    monkeypatch.setattr(sorter, "label_vectors", lambda *a: calls.append(1) or real(*a))
    after = run("after")
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1:] == before[1:]
    assert len(calls) <= 4  # each of the 4 label lists embedded once, not once per media
    labelled = after[0]["label"]
    assert labelled.str.count("/").max() >= 2  # three levels were used: animal/mammal/cat
    assert any(n.startswith("animal/mammal/cat/") for n in after[2])


def test_an_interrupted_sort_resumes_without_placing_anything_twice(tmp_path, monkeypatch):
    source = _source(tmp_path)
    labels = labels_from_text(LABELS)
    real_copy, copied = shutil.copy2, []

    def copy_then_stop(src, dst, *args, **kwargs):
        if len(copied) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the sort
        copied.append(src)
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(sorter.shutil, "copy2", copy_then_stop)
    with pytest.raises(KeyboardInterrupt):
        sort_images(source, labels, SortOptions(to=tmp_path / "out"), workspace=tmp_path / "ws")
    monkeypatch.setattr(sorter.shutil, "copy2", real_copy)
    first_csv = pd.read_csv(next((tmp_path / "out").glob("picsift-sort-*.csv")))
    assert len(first_csv) == 3, "the rows of what was placed are kept"

    result = sort_images(source, labels, SortOptions(to=tmp_path / "out"), workspace=tmp_path / "ws")
    assert result.resumed == 3 and not result.failed
    placed = sorted(p.name for p in (tmp_path / "out").rglob("*.jpg"))
    expected = [p.name for p in source.rglob("*.jpg")]
    expected[expected.index("chelsea.jpg")] = "chelsea (1).jpg"  # two sources of that name
    assert placed == sorted(expected), placed
    table = pd.read_csv(result.csv)
    assert len(table) == 5 and table["destination"].map(lambda d: Path(d).exists()).all()
    assert sum(result.counts.values()) == 5
    new_log = [json.loads(line) for line in result.log.read_text().splitlines()]
    assert len(new_log) == 2, "only what was left is logged (and undone) by the new log"


def test_a_file_gone_since_the_scan_is_reported_and_the_rest_sorted(tmp_path):
    source = _source(tmp_path)
    labels = labels_from_text(LABELS)
    sort_images(source, labels, SortOptions(to=tmp_path / "first"), workspace=tmp_path / "ws")
    gone = source / "day2" / "chelsea.jpg"
    gone.unlink()  # the workspace still knows the file
    result = sort_images(source, labels, SortOptions(to=tmp_path / "second", move=True),
                         workspace=tmp_path / "ws")
    assert list(result.failed) == [str(gone)] and "gone" in result.failed[str(gone)]
    assert len(list((tmp_path / "second").rglob("*.jpg"))) == 4
    assert sum(result.counts.values()) == 4, "the file not sorted is not counted"
    assert not list(source.rglob("*.jpg"))
    log = [json.loads(line) for line in result.log.read_text().splitlines()]
    assert str(gone) not in {e["src"] for e in log}
    assert undo_sort(result.log)["restored"] == 4
