"""`picsift train` and `picsift predict`: a linear probe on the image embeddings, or (with
--finetune and the finetune extra) the image network itself, fine-tuned."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from picsift.cli.common import WorkersOpt, console

if TYPE_CHECKING:
    from picsift.analyses.classify import TrainReport


def train_command(
    source: Path = typer.Option(..., "--from", help="Folder with one sub-folder per class (or any folder with --labels-csv)."),
    out: Path = typer.Option(Path("classifier.json"), "--out", "-o", help="Where to save the classifier (JSON)."),
    labels_csv: Optional[Path] = typer.Option(None, "--labels-csv", help="CSV with path,label instead of sub-folders."),
    test: Optional[Path] = typer.Option(None, "--test", help="Held-out folder (one sub-folder per class) to test on."),
    target: str = typer.Option("classification", help="classification or regression (numeric labels)."),
    model: str = typer.Option("efficientnet-lite0", "--model", help="Embedding model."),
    c: float = typer.Option(1.0, "--c", help="Inverse regularisation strength."),
    workers: Optional[int] = WorkersOpt,
    finetune: bool = typer.Option(False, "--finetune/--no-finetune", help="Fine-tune EfficientNet-Lite0 itself instead of a linear probe (needs the finetune extra: torch); saves JSON + ONNX."),
    epochs: int = typer.Option(10, "--epochs", help="Fine-tuning: passes over the training images (early stopping may end sooner)."),
    unfreeze: str = typer.Option("head", "--unfreeze", help="Fine-tuning: what learns: head, last-blocks or all."),
    device: str = typer.Option("auto", "--device", help="Fine-tuning: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps."),
) -> None:
    """Train a classifier on stored embeddings, cross-validated, with class weights (or, with
    --finetune, fine-tune the image network itself)."""
    if finetune:
        _finetune(source, out, labels_csv, test, target, model, workers, epochs, unfreeze, device)
        return
    from picsift.analyses.classify import train_classifier

    report = train_classifier(source, out, labels_csv=labels_csv, test=test, target=target,
                              model=model, workers=workers, c=c)
    if report.target == "regression":
        console.print(f"{report.n} images; cross-validated R² {report.cv_r2:.3f} ({report.cv_folds} folds)")
        if report.test_r2 is not None:
            console.print(f"test R² {report.test_r2:.3f}")
    else:
        console.print(f"{report.n} images, {len(report.classes)} classes; cross-validated accuracy "
                      f"{report.cv_accuracy:.3f} ({report.cv_folds} folds)")
        _print_classes(report)
    console.print(f"classifier: {out}")


def _print_classes(report: TrainReport) -> None:
    table = Table("label", "precision", "recall", "F1", "support")
    for row in report.per_class.itertuples():
        table.add_row(str(row.label), f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", str(row.support))
    console.print(table)
    if report.test_accuracy is not None:
        console.print(f"test accuracy {report.test_accuracy:.3f}")


def _finetune(source: Path, out: Path, labels_csv: Optional[Path], test: Optional[Path], target: str,
              model: str, workers: Optional[int], epochs: int, unfreeze: str, device: str) -> None:
    from picsift.analyses.finetune import finetune_classifier
    from picsift.errors import PicsiftError

    if target != "classification":
        raise PicsiftError("--finetune trains classifiers only: use --target classification")
    if model != "efficientnet-lite0":
        raise PicsiftError("--finetune fine-tunes efficientnet-lite0 only: leave --model out")
    report = finetune_classifier(source, out, labels_csv=labels_csv, test=test, epochs=epochs,
                                 unfreeze=unfreeze, device=device, workers=workers, progress=True)
    console.print(f"{report.n} images, {len(report.classes)} classes; fine-tuned ({report.unfreeze}) on "
                  f"{report.device}, best epoch {report.best_epoch} of {len(report.history)}; "
                  f"validation accuracy {report.cv_accuracy:.3f} ({report.n_val} held-out images)")
    _print_classes(report)
    console.print(f"classifier: {out} (network: {report.onnx})")


def predict_command(
    folder: Path = typer.Argument(..., help="Folder (or workspace) of images to classify."),
    classifier: Path = typer.Option(..., "--classifier", help="A file written by picsift train."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV of predictions (default: <folder>/predictions.csv)."),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """Predict a class (with probabilities) or a value for every image."""
    from picsift.analyses.classify import predict

    frame = predict(folder, classifier, workers=workers)
    target = out or Path(folder) / "predictions.csv"
    frame.to_csv(target, index=False)
    if "probability" in frame:
        counts = frame["predicted"].value_counts().to_dict()
        console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    console.print(f"{len(frame)} predictions: {target}")
