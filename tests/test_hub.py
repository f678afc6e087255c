"""The hub path (pull -> ONNX -> cache -> offline embed/search) with a tiny CLIP built here.

No download: the test builds a randomly initialised, tiny CLIP (and a character-level
tokenizer) from a config, saves it as a transformers checkpoint, and pulls that folder.
Needs the `hub` extra (torch, transformers); skipped without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnx")

import picsift  # noqa: E402
from picsift.models.hub import HubModel, _features, pull_model  # noqa: E402

DEMO = Path(picsift.__file__).parent / "demo" / "corpus"


def _tiny_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizerFast

    chars = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizerFast(vocab_file=str(folder / "vocab.json"),
                                  merges_file=str(folder / "merges.txt"))
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_attention_heads": 4, "num_hidden_layers": 2,
                     "max_position_embeddings": 32, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2},
        projection_dim=16)
    CLIPModel(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hub")
    source = root / "tiny-clip"
    source.mkdir()
    _tiny_clip(source)
    cached = pull_model(str(source), target_root=root / "cache")
    return source, cached, root


def test_pull_exports_both_towers_and_caches(pulled):
    _source, cached, _root = pulled
    config = json.loads((cached / "model.json").read_text())
    assert (cached / "image.onnx").exists() and (cached / "text.onnx").exists()
    assert config["dim"] == 16 and config["image_size"] == 32
    assert config["export_max_abs_error"] < 1e-3


def test_offline_model_matches_torch_on_real_photos(pulled):
    from transformers import CLIPModel, CLIPProcessor

    source, cached, _root = pulled
    model = CLIPModel.from_pretrained(source).eval()
    processor = CLIPProcessor.from_pretrained(source)
    from picsift.media import load_image

    photos = [load_image(p) for p in sorted((DEMO / "photos").glob("*.jpg"))[:4]]
    texts = ["a cat", "a cup of coffee", "rocket"]
    with torch.no_grad():
        want_img = _features(model.get_image_features(**processor(images=photos, return_tensors="pt"))).numpy()
        tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
        want_txt = _features(model.get_text_features(**tokens)).numpy()
    want_img /= np.linalg.norm(want_img, axis=1, keepdims=True)
    want_txt /= np.linalg.norm(want_txt, axis=1, keepdims=True)
    hub = HubModel(cached)
    got_img = hub.embed_images(photos)
    got_txt = hub.embed_texts(texts)
    assert np.min(np.sum(got_img * want_img, axis=1)) > 0.99  # same up to resize rounding
    assert np.abs(got_txt - want_txt).max() < 1e-4


def test_embed_and_search_with_a_pulled_model(pulled, tmp_path, monkeypatch):
    from picsift.analyses.embeddings import embed_workspace
    from picsift.analyses.search import search

    _source, cached, root = pulled
    monkeypatch.setenv("PICSIFT_MODELS", str(root / "cache"))
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO / "photos", corpus)
    ws = picsift.open(corpus)
    ws.scan(workers=1)
    summary = embed_workspace(ws, model=cached.name, workers=2)
    assert summary.embedded == len(list(corpus.iterdir())) - 1  # .picsift
    found = search(ws, images=[corpus / "coffee.jpg"], top=3, model=cached.name)
    assert Path(found["path"].iloc[0]).name == "coffee.jpg"
    assert found["score"].iloc[0] == pytest.approx(1.0, abs=1e-2)
    by_text = search(ws, texts=["a cat"], top=3, model=str(cached))
    assert len(by_text) == 3  # a random tiny model ranks arbitrarily; the plumbing must work
