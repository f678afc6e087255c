"""Hub models (CLIP, SigLIP): pulled once with their own library, exported to ONNX, cached.

`picsift models pull NAME` needs internet and the ``hub`` extra (torch, transformers). It
loads the model with transformers, exports its image and text towers to two ONNX files
(``image.onnx``: pixel_values -> image_embeds; ``text.onnx``: input_ids, attention_mask ->
text_embeds), checks the exported outputs against the torch model, and saves the tokenizer
and preprocessing settings next to them with a ``model.json``. Afterwards the model runs
offline on onnxruntime, without torch. A local directory holding a transformers checkpoint
can be pulled the same way (that is how the tests build a tiny CLIP without a download).

Captioners, VQA models, chat vision-language models and open-vocabulary detectors (tasks in
:data:`picsift.models.vlm.TRANSFORMERS_TASKS`) are cached differently: generation loops and box
decoding do not export to one ONNX graph worth having, so the model and its processor are kept
as a transformers checkpoint (``save_pretrained``) with a ``model.json`` saying
``"format": "transformers"``, checked once on a blank image, and run with torch
(:mod:`picsift.models.vlm`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from picsift.errors import PicsiftError
from picsift.models.onnx_session import onnx_session
from picsift.models.paths import cache_dir
from picsift.models.registry import MODELS

EXPORT_TOLERANCE = 1e-3


def _require_hub_libraries() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise PicsiftError(
            "pulling a hub model needs torch and transformers: pip install 'picsift[hub]' "
            "(install a CPU build of torch first to avoid a multi-GB download)") from exc


def _source_and_name(name: str) -> tuple[str, str]:
    """(what transformers should load, the cache folder name)."""
    if name in MODELS and MODELS[name].hub_id:
        return MODELS[name].hub_id, name  # type: ignore[return-value]
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser().absolute()
        return str(path), path.name
    for spec in MODELS.values():
        if spec.hub_id == name:
            return name, spec.name
    return name, name.replace("/", "--")


def _features(output: Any) -> Any:
    """transformers < 5 returns the projected embedding; 5.x wraps it as ``pooler_output``."""
    if hasattr(output, "image_embeds") and output.image_embeds is not None:
        return output.image_embeds
    if hasattr(output, "text_embeds") and output.text_embeds is not None:
        return output.text_embeds
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output


def _towers(model: Any) -> tuple[Any, Any]:
    """torch modules for the two towers (defined here so that torch stays optional)."""
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _features(self.model.get_image_features(pixel_values=pixel_values))

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return _features(self.model.get_text_features(input_ids=input_ids,
                                                             attention_mask=attention_mask))

    return ImageTower().eval(), TextTower().eval()


def _export(module: Any, args: tuple[Any, ...], names: list[str], output: str, path: Path,
            dynamic: dict[str, dict[int, str]]) -> None:
    import torch

    torch.onnx.export(module, args, str(path), input_names=names, output_names=[output],
                      dynamic_axes={**dynamic, output: {0: "batch"}}, dynamo=False,
                      opset_version=17)


def pull_model(name: str, target_root: Path | None = None) -> Path:
    """Fetch (or read locally), export to ONNX, verify, and cache; return the cache folder."""
    _require_hub_libraries()
    import torch
    from transformers import AutoModel, AutoProcessor

    source, folder = _source_and_name(name)
    target = (target_root or cache_dir()) / folder
    checkpoint = _transformers_checkpoint(source)
    if checkpoint is not None:
        return _pull_transformers(source, folder, target, *checkpoint)
    try:
        model = AutoModel.from_pretrained(source).eval()
        processor = AutoProcessor.from_pretrained(source)
    except OSError as exc:
        raise PicsiftError(f"cannot load {source!r} with transformers: {exc}") from exc
    tmp = target.with_name(f".{folder}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    image_processor = getattr(processor, "image_processor", processor)
    size = image_processor.crop_size if getattr(image_processor, "do_center_crop", False) else image_processor.size
    side = int(size.get("height") or size.get("shortest_edge") or 224)
    image_tower, text_tower = _towers(model)
    pixels = torch.rand(2, 3, side, side)
    tokens = processor.tokenizer(["a photo of a cat", "two dogs"], padding="max_length",
                                 max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        _export(image_tower, (pixels,), ["pixel_values"], "image_embeds", tmp / "image.onnx",
                {"pixel_values": {0: "batch"}})
        _export(text_tower, (tokens["input_ids"], tokens["attention_mask"]),
                ["input_ids", "attention_mask"], "text_embeds", tmp / "text.onnx",
                {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}})
        expected_image = image_tower(pixels).numpy()
        expected_text = text_tower(tokens["input_ids"], tokens["attention_mask"]).numpy()
    processor.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    config = {
        "name": folder, "source": source, "image_size": side,
        "mean": list(getattr(image_processor, "image_mean", [0.48145466, 0.4578275, 0.40821073])),
        "std": list(getattr(image_processor, "image_std", [0.26862954, 0.26130258, 0.27577711])),
        "max_length": int(getattr(processor.tokenizer, "model_max_length", 77) or 77) if
        int(getattr(processor.tokenizer, "model_max_length", 77) or 77) < 10_000 else 77,
        "pad_to_max_length": "siglip" in type(model).__name__.lower(),
        "dim": int(expected_image.shape[1]),
    }
    (tmp / "model.json").write_text(json.dumps(config, indent=2))
    loaded = HubModel(tmp)
    got_image = loaded.image_session.run(None, {"pixel_values": pixels.numpy()})[0]
    got_text = loaded.text_session.run(None, {"input_ids": tokens["input_ids"].numpy(),
                                             "attention_mask": tokens["attention_mask"].numpy()})[0]
    error = max(float(np.abs(got_image - expected_image).max()), float(np.abs(got_text - expected_text).max()))
    if error > EXPORT_TOLERANCE:
        raise PicsiftError(f"ONNX export of {source!r} differs from the original by {error:.2e}")
    config["export_max_abs_error"] = error
    (tmp / "model.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    onnx_session.cache_clear()
    return target


def _transformers_checkpoint(source: str) -> tuple[str, str] | None:
    """(task, architecture) when ``source`` is a captioner/VQA/VLM/detector kept as a
    transformers checkpoint; None for the CLIP-like models that are exported to ONNX."""
    from transformers import AutoConfig

    from picsift.models.vlm import TRANSFORMERS_TASKS, task_of_architecture

    spec = next((s for s in MODELS.values() if s.hub_id == source), None)
    if spec is not None and spec.task not in TRANSFORMERS_TASKS:
        return None
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        if spec is None:
            return None  # let the ONNX path report the problem as before
        raise PicsiftError(f"cannot load {source!r} with transformers: {exc}") from exc
    architectures = getattr(config, "architectures", None) or []
    task = task_of_architecture(architectures[0]) if architectures else None
    if task is None:
        if spec is not None:
            raise PicsiftError(f"{source!r} has architecture {architectures or 'unknown'}, "
                               f"which picsift cannot run as a {spec.task} model")
        return None
    return task, architectures[0]


def _pull_transformers(source: str, folder: str, target: Path, task: str, architecture: str
                       ) -> Path:
    """Fetch with transformers, save model + processor, smoke-test on a blank image, cache."""
    import transformers
    from transformers import AutoProcessor

    from picsift.models import vlm

    cls = vlm.model_class(architecture, task)
    try:
        model = cls.from_pretrained(source)
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise PicsiftError(f"cannot load {source!r} with transformers: {exc}") from exc
    tmp = target.with_name(f".{folder}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    processor.save_pretrained(str(tmp))
    del model
    size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    meta = {"name": folder, "source": source, "format": "transformers", "task": task,
            "architecture": architecture, "transformers_version": transformers.__version__,
            "size_mb": round(size / 1e6, 1)}
    (tmp / "model.json").write_text(json.dumps(meta, indent=2))
    _smoke_test(tmp, task)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def _smoke_test(folder: Path, task: str) -> None:
    """Run the saved copy once, offline, so a broken cache shows at pull time, not mid-run."""
    from picsift.models import vlm

    blank = Image.new("RGB", (64, 48), (128, 128, 128))
    try:
        loaded = vlm._load(str(folder))
        if task == "object-detection":
            vlm.DetectorModel(loaded).detect([blank], ["a thing"], threshold=1.0)
        else:
            model = vlm.CaptionModel(loaded, max_new_tokens=3)
            if model.can_caption:
                model.caption([blank])
            if model.can_answer:
                model.answer([blank], "what is this?")
    except PicsiftError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means the cache is unusable
        raise PicsiftError(f"the pulled copy of {folder.name.strip('.').removesuffix('.tmp')} "
                           f"does not run: {exc.__class__.__name__}: {exc}") from exc
    finally:
        vlm.clear_loaded()


@dataclass
class HubModel:
    """A pulled model, run offline with onnxruntime (no torch)."""

    folder: Path

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        config_path = self.folder / "model.json"
        if not config_path.exists():
            raise PicsiftError(f"{self.folder} holds no pulled model (model.json missing)")
        self.config = json.loads(config_path.read_text())
        if self.config.get("format") == "transformers":
            raise PicsiftError(f"{self.folder.name} is a {self.config.get('task')} model, not an "
                               "image-text embedding model: use it with 'picsift describe' or "
                               "'picsift detect'")

    @classmethod
    def named(cls, name: str) -> HubModel:
        path = Path(name).expanduser()
        if (path / "model.json").exists():
            return cls(path)
        _source, folder = _source_and_name(name)
        cached = cache_dir() / folder
        if not (cached / "model.json").exists():
            raise PicsiftError(f"model {name!r} is not cached: run 'picsift models pull {name}' "
                               "once with internet access")
        return cls(cached)

    @property
    def image_session(self) -> Any:
        return onnx_session(str(self.folder / "image.onnx"))

    @property
    def text_session(self) -> Any:
        return onnx_session(str(self.folder / "text.onnx"))

    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.folder / "tokenizer" / "tokenizer.json"))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Unit-norm image embeddings: shorter side resized (bicubic), centre crop, normalise."""
        side = int(self.config["image_size"])
        mean = np.array(self.config["mean"], np.float32)
        std = np.array(self.config["std"], np.float32)
        batch = []
        for image in images:
            image = image.convert("RGB")
            scale = side / min(image.size)
            resized = image.resize((max(side, round(image.width * scale)), max(side, round(image.height * scale))),
                                   Image.Resampling.BICUBIC)
            left, top = (resized.width - side) // 2, (resized.height - side) // 2
            crop = np.asarray(resized.crop((left, top, left + side, top + side)), np.float32) / 255.0
            batch.append(((crop - mean) / std).transpose(2, 0, 1))
        (vectors,) = self.image_session.run(None, {"pixel_values": np.stack(batch).astype(np.float32)})
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokenizer = self._tokenizer()
        length = int(self.config["max_length"])
        tokenizer.enable_truncation(length)
        if self.config.get("pad_to_max_length"):
            tokenizer.enable_padding(length=length)
        else:
            tokenizer.enable_padding()
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], np.int64)
        mask = np.array([e.attention_mask for e in encoded], np.int64)
        (vectors,) = self.text_session.run(None, {"input_ids": ids, "attention_mask": mask})
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
