"""Hub vision-language models (captioners, VQA, open-vocabulary detectors) run with transformers.

No captioning, VQA or open-vocabulary detection model ships inside any package we can depend on
(see docs/describe.md), so these models exist only after ``picsift models pull NAME`` has saved
a transformers checkpoint (model + processor + ``model.json``) under the model cache. They run
with torch: generation and box decoding do not export to a single ONNX graph worth having.
There is deliberately no fallback: without a pulled model, loading fails with a message that
says how to get one, and no caption is ever made up.

Families (chosen from the checkpoint's architecture, recorded at pull time):

* ``blip``: BlipForConditionalGeneration, unconditional captions only.
* ``blip-vqa``: BlipForQuestionAnswering, answers only.
* ``florence2``: Florence2ForConditionalGeneration, the ``<CAPTION>`` task only.
* ``chat``: any other image-text-to-text model with a chat template (SmolVLM ...):
  captions and free questions through the chat template.
* detectors: OWL-ViT / OWLv2 (processor post-processing) and Grounding DINO (own label mapping).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from picsift.errors import PicsiftError
from picsift.models.paths import cache_dir

log = logging.getLogger(__name__)

CAPTION_TASKS = ("captioning", "vqa", "vision-language")
DETECTION_TASKS = ("object-detection",)
TRANSFORMERS_TASKS = CAPTION_TASKS + DETECTION_TASKS

CAPTION_PROMPT = "Describe this image in one or two factual sentences."
ANSWER_SUFFIX = " Answer briefly."
FLORENCE_TASK = "<CAPTION>"
DEVICE_ENV = "PICSIFT_DEVICE"  # force "cpu" or "cuda" (default: cuda when available)

_CAPTION_ONLY = {"BlipForConditionalGeneration": "blip", "Florence2ForConditionalGeneration": "florence2"}
_ANSWER_ONLY = {"BlipForQuestionAnswering": "blip-vqa"}
_DETECTORS = {"OwlViTForObjectDetection": "owl", "Owlv2ForObjectDetection": "owl",
              "GroundingDinoForObjectDetection": "grounding-dino",
              "MMGroundingDinoForObjectDetection": "grounding-dino"}


def task_of_architecture(architecture: str) -> str | None:
    """picsift's task for a transformers architecture name, or None when it is not one of ours."""
    if architecture in _ANSWER_ONLY:
        return "vqa"
    if architecture in _CAPTION_ONLY:
        return "captioning"
    if architecture in _DETECTORS:
        return "object-detection"
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if architecture in set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.values()):
        return "vision-language"
    return None


def model_class(architecture: str, task: str) -> Any:
    """The transformers class that loads a checkpoint: its own architecture, else the Auto class."""
    import transformers

    cls = getattr(transformers, architecture, None)
    if cls is not None:
        return cls
    if task == "object-detection":
        return transformers.AutoModelForZeroShotObjectDetection
    if task == "vqa":
        return transformers.AutoModelForVisualQuestionAnswering
    return transformers.AutoModelForImageTextToText


# --- locating a pulled model -----------------------------------------------------------------

def _registry_hint(tasks: tuple[str, ...]) -> str:
    from picsift.models.registry import MODELS

    return ", ".join(s.name for s in MODELS.values() if s.task in tasks)


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def resolve_folder(name: str, tasks: tuple[str, ...]) -> tuple[Path, dict[str, Any]]:
    """(cache folder, model.json) of a pulled transformers model for one of ``tasks``.

    Raises a PicsiftError that tells the user what to run when the model is not cached, or
    which models fit when ``name`` is a model for something else.
    """
    from picsift.models.hub import _source_and_name
    from picsift.models.registry import MODELS

    wanted = " or ".join(tasks)
    spec = MODELS.get(name)
    if spec is not None and spec.task not in tasks:
        raise PicsiftError(f"model {name} is {_a(spec.task)} model, not {_a(wanted)} model: "
                           f"choose one of {_registry_hint(tasks)}")
    path = Path(name).expanduser()
    if not (path / "model.json").exists():
        _source, folder = _source_and_name(name)
        path = cache_dir() / folder
    if not (path / "model.json").exists():
        hint = "" if spec is not None else f" (known {wanted} models: {_registry_hint(tasks)})"
        raise PicsiftError(f"model {name} is not cached: run 'picsift models pull {name}' "
                           f"(needs internet once){hint}")
    meta = json.loads((path / "model.json").read_text())
    if meta.get("format") != "transformers":
        raise PicsiftError(f"{path} holds an ONNX embedding model, not {_a(wanted)} model: "
                           f"choose one of {_registry_hint(tasks)}")
    if meta.get("task") not in tasks:
        raise PicsiftError(f"model {name} is {_a(str(meta.get('task')))} model, not {_a(wanted)} model: "
                           f"choose one of {_registry_hint(tasks)}")
    return path, meta


# --- torch plumbing --------------------------------------------------------------------------

def device() -> str:
    """``cuda`` when a GPU is usable (or PICSIFT_DEVICE says so), else ``cpu``."""
    import torch

    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        return forced
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(where: str, task: str) -> Any:
    """float32 on CPU (half precision is slow there); bfloat16/float16 for big chat models on GPU."""
    import torch

    if where.startswith("cuda") and task == "vision-language":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _to(inputs: Any, where: str, dtype: Any) -> dict[str, Any]:
    """Processor output on the model's device; only floating tensors take the model's dtype."""
    out: dict[str, Any] = {}
    for key, value in dict(inputs).items():
        if hasattr(value, "to"):
            value = value.to(where, dtype) if value.is_floating_point() else value.to(where)
        out[key] = value
    return out


def _rgb(images: list[Image.Image]) -> list[Image.Image]:
    return [im if im.mode == "RGB" else im.convert("RGB") for im in images]


class _Loaded:
    """A pulled checkpoint in memory: model (eval, on its device), processor and model.json."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        from transformers import AutoProcessor

        self.folder, self.meta = folder, meta
        self.name = str(meta.get("name") or folder.name)
        self.task = str(meta["task"])
        self.architecture = str(meta.get("architecture", ""))
        self.device = device()
        self.dtype = _dtype(self.device, self.task)
        cls = model_class(self.architecture, self.task)
        try:
            # cast after loading: the from_pretrained dtype keyword changed name across releases
            model = cls.from_pretrained(str(folder))
            self.model = model.to(device=self.device, dtype=self.dtype).eval()
            self.processor = AutoProcessor.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise PicsiftError(f"cannot load the pulled model in {folder}: {exc}; pull it again "
                               f"with 'picsift models pull {self.name}'") from exc
        log.info("loaded %s (%s) on %s", self.name, self.architecture, self.device)


@lru_cache(maxsize=2)
def _load(folder: str) -> _Loaded:
    path = Path(folder)
    return _Loaded(path, json.loads((path / "model.json").read_text()))


def clear_loaded() -> None:
    """Forget loaded models (frees their memory; used after a pull replaced a folder)."""
    _load.cache_clear()


# --- captions and answers --------------------------------------------------------------------

class CaptionModel:
    """A pulled captioning / VQA / chat vision-language model, run with transformers."""

    def __init__(self, loaded: _Loaded, max_new_tokens: int = 40) -> None:
        self._m = loaded
        self.name = loaded.name
        self.max_new_tokens = max_new_tokens
        arch = loaded.architecture
        self.family = _CAPTION_ONLY.get(arch) or _ANSWER_ONLY.get(arch) or "chat"
        self.can_caption = self.family != "blip-vqa"
        self.can_answer = self.family in ("blip-vqa", "chat")
        if self.family == "chat":
            tokenizer = getattr(loaded.processor, "tokenizer", None)
            if tokenizer is not None:
                tokenizer.padding_side = "left"  # decoder-only batches must end at the prompt

    @classmethod
    def named(cls, name: str, max_new_tokens: int = 40) -> CaptionModel:
        """Load a pulled model by short name, hub id or folder; clear error when not pulled."""
        folder, _meta = resolve_folder(name, CAPTION_TASKS)
        return cls(_load(str(folder)), max_new_tokens)

    def caption_error(self) -> PicsiftError:
        return PicsiftError(f"model {self.name} answers questions but does not write captions: "
                            "use blip-base, florence-2-base or smolvlm-256m for captions")

    def answer_error(self) -> PicsiftError:
        return PicsiftError(f"model {self.name} writes captions but cannot answer questions: "
                            "use blip-vqa-base or smolvlm-256m for --questions")

    def caption(self, images: list[Image.Image]) -> list[str]:
        """One caption per image (a batch)."""
        if not self.can_caption:
            raise self.caption_error()
        if not images:
            return []
        images = _rgb(images)
        processor = self._m.processor
        if self.family == "blip":
            return self._generate(processor(images=images, return_tensors="pt"), strip_prompt=False)
        if self.family == "florence2":
            inputs = processor(text=[FLORENCE_TASK] * len(images), images=images, return_tensors="pt")
            return self._generate(inputs, strip_prompt=False)
        return self._chat(images, CAPTION_PROMPT)

    def answer(self, images: list[Image.Image], question: str) -> list[str]:
        """One short answer per image to the same question."""
        if not self.can_answer:
            raise self.answer_error()
        if not images:
            return []
        images = _rgb(images)
        if self.family == "blip-vqa":
            inputs = self._m.processor(images=images, text=[question] * len(images),
                                       return_tensors="pt", padding=True)
            return self._generate(inputs, strip_prompt=False)
        return self._chat(images, question.strip() + ANSWER_SUFFIX)

    def _chat(self, images: list[Image.Image], prompt: str) -> list[str]:
        processor = self._m.processor
        if not getattr(processor, "chat_template", None):
            raise PicsiftError(f"model {self.name} ({self._m.architecture}) has no chat template; "
                               "picsift cannot prompt it")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=[text] * len(images), images=[[im] for im in images],
                           return_tensors="pt", padding=True)
        return self._generate(inputs, strip_prompt=True)

    def _generate(self, inputs: Any, strip_prompt: bool) -> list[str]:
        import torch

        batch = _to(inputs, self._m.device, self._m.dtype)
        with torch.no_grad():
            ids = self._m.model.generate(**batch, max_new_tokens=self.max_new_tokens,
                                         do_sample=False, num_beams=1)
        if strip_prompt and "input_ids" in batch:
            ids = ids[:, batch["input_ids"].shape[1]:]  # decoder-only models echo the prompt
        texts = self._m.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]


# --- open-vocabulary detection ---------------------------------------------------------------

class DetectorModel:
    """A pulled open-vocabulary detector (OWL-ViT, OWLv2, Grounding DINO), run with transformers."""

    def __init__(self, loaded: _Loaded) -> None:
        self._m = loaded
        self.name = loaded.name
        self.family = _DETECTORS.get(loaded.architecture, "owl")

    @classmethod
    def named(cls, name: str) -> DetectorModel:
        folder, _meta = resolve_folder(name, DETECTION_TASKS)
        return cls(_load(str(folder)))

    def detect(self, images: list[Image.Image], labels: list[str], threshold: float = 0.1
               ) -> list[list[dict[str, Any]]]:
        """Per image: [{"label", "score", "box": [x0, y0, x1, y1]}] in that image's pixels."""
        labels = [label.strip() for label in labels if label.strip()]
        if not labels:
            raise PicsiftError("give at least one label to detect, e.g. --labels 'a flag,a car'")
        if not images:
            return []
        images = _rgb(images)
        if self.family == "grounding-dino":
            return self._grounding_dino(images, labels, threshold)
        return self._owl(images, labels, threshold)

    def _owl(self, images: list[Image.Image], labels: list[str], threshold: float
             ) -> list[list[dict[str, Any]]]:
        import torch

        processor = self._m.processor
        inputs = processor(text=[labels] * len(images), images=images, return_tensors="pt",
                           truncation=True)  # OWL text towers take 16 tokens
        with torch.no_grad():
            outputs = self._m.model(**_to(inputs, self._m.device, self._m.dtype))
        sizes = [(im.height, im.width) for im in images]
        results = processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=sizes, text_labels=[labels] * len(images))
        return [_boxes(r["scores"], r["boxes"], [labels[int(i)] for i in r["labels"]], size)
                for r, size in zip(results, sizes, strict=True)]

    def _grounding_dino(self, images: list[Image.Image], labels: list[str], threshold: float
                        ) -> list[list[dict[str, Any]]]:
        """Each query's score for a label is its best token inside that label's span of the
        prompt ("a cat. a police car."); the processor's own post-processing decodes phrase
        text instead, which cannot always be mapped back to the label the user wrote."""
        import torch

        processor = self._m.processor
        prompt = ". ".join(label.lower() for label in labels) + "."
        inputs = processor(images=images, text=[prompt] * len(images), return_tensors="pt",
                           padding=True)
        with torch.no_grad():
            outputs = self._m.model(**_to(inputs, self._m.device, self._m.dtype))
        spans = _label_spans(inputs["input_ids"][0].tolist(), processor.tokenizer, len(labels))
        probs = outputs.logits.float().sigmoid().cpu()  # (batch, queries, text positions)
        boxes = outputs.pred_boxes.float().cpu()  # (batch, queries, 4) cx, cy, w, h in 0..1
        out = []
        for n, image in enumerate(images):
            per_label = torch.stack([probs[n, :, a:b].max(dim=-1).values for a, b in spans], dim=-1)
            scores, which = per_label.max(dim=-1)
            keep = scores > threshold
            cx, cy, w, h = boxes[n, keep].unbind(-1)
            corners = torch.stack([(cx - w / 2) * image.width, (cy - h / 2) * image.height,
                                   (cx + w / 2) * image.width, (cy + h / 2) * image.height], -1)
            out.append(_boxes(scores[keep], corners, [labels[int(i)] for i in which[keep]],
                              (image.height, image.width)))
        return out


def _label_spans(ids: list[int], tokenizer: Any, n_labels: int) -> list[tuple[int, int]]:
    """Token ranges [a, b) of each label in "[CLS] l1 . l2 . [SEP]" (falls back to the whole
    text for every label when the prompt did not tokenise as expected, e.g. truncation)."""
    dot = tokenizer.convert_tokens_to_ids(".")
    special = set(getattr(tokenizer, "all_special_ids", []))
    spans: list[tuple[int, int]] = []
    current: list[int] = []
    for position, token in enumerate(ids):
        if token in special or token == dot:
            if current:
                spans.append((current[0], current[-1] + 1))
            current = []
        else:
            current.append(position)
    if current:
        spans.append((current[0], current[-1] + 1))
    if len(spans) != n_labels:
        log.warning("prompt tokenised into %d label spans for %d labels; scoring on all tokens",
                    len(spans), n_labels)
        text = [i for i, t in enumerate(ids) if t not in special and t != dot] or [0]
        spans = [(min(text), max(text) + 1)] * n_labels
    return spans


def _boxes(scores: Any, boxes: Any, labels: list[str], size: tuple[int, int]
           ) -> list[dict[str, Any]]:
    """Detections as plain dicts, boxes clipped to the image, best first."""
    height, width = size
    found = []
    for score, box, label in zip(scores.tolist(), boxes.tolist(), labels, strict=True):
        x0, y0, x1, y1 = (max(0.0, min(float(v), float(limit)))
                          for v, limit in zip(box, (width, height, width, height), strict=True))
        found.append({"label": label, "score": round(float(score), 4),
                      "box": [round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)]})
    return sorted(found, key=lambda d: -d["score"])
