"""`picsift describe` / `picsift detect`: hub models and the OpenAI-compatible API, offline.

Plumbing only, never quality: the transformers models here are tiny, randomly initialised
BLIP / BLIP-VQA / Idefics3 (SmolVLM's architecture) / OWLv2 / OWL-ViT / Grounding DINO
checkpoints built from a config (with
tokenizers built from a few words), pulled from a local folder exactly as a hub model is pulled,
and run over real demo photos; their "captions" are random words. The API path runs against a
chat-completions server on 127.0.0.1 started by the test. Needs the `hub` extra.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

import picsift  # noqa: E402
from picsift.analyses.describe import (  # noqa: E402
    DESCRIBE, DETECT, describe_workspace, detect_objects, detections_table, label_columns,
    question_columns, results_table)
from picsift.errors import PicsiftError  # noqa: E402
from picsift.models.hub import HubModel, pull_model  # noqa: E402
from picsift.models.openai_vision import (  # noqa: E402
    DISCLOSURE, OpenAIVisionClient, image_data_url, retry_after)
from picsift.models.vlm import CaptionModel, DetectorModel  # noqa: E402

DEMO = Path(picsift.__file__).parent / "demo" / "corpus" / "photos"
WORDS = "a an the photo of cat dog man woman car street flag police people sky building is there yes no".split()
ACCEPT_ENV = "PICSIFT_ACCEPT_PRIVACY_DISCLOSURE"


# --- tiny models -----------------------------------------------------------------------------

def _bert_tokenizer(extra: tuple[str, ...] = ()) -> Any:
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *extra, *WORDS]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, bos_token="[DEC]",
                             model_max_length=32), len(vocab)


def _clip_tokenizer() -> Any:
    from transformers import CLIPTokenizerFast

    # OWL treats a query whose first token id is 0 as padding: keep <|startoftext|> off 0
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return CLIPTokenizerFast(vocab=vocab, merges=[], pad_token="!", model_max_length=16), len(vocab)


def _tiny_blip(folder: Path, vqa: bool) -> None:
    from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForQuestionAnswering,
                              BlipImageProcessor, BlipProcessor)

    tokenizer, size = _bert_tokenizer()
    config = BlipConfig(
        text_config={"vocab_size": size, "hidden_size": 32, "intermediate_size": 64,
                     "num_attention_heads": 4, "num_hidden_layers": 2, "encoder_hidden_size": 32,
                     "max_position_embeddings": 64, "bos_token_id": 5, "pad_token_id": 0,
                     "sep_token_id": 3, "eos_token_id": 3},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2},
        projection_dim=16)
    torch.manual_seed(0)
    cls = BlipForQuestionAnswering if vqa else BlipForConditionalGeneration
    cls(config).eval().save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(folder)


def _tiny_owl(folder: Path, v2: bool) -> None:
    from transformers import (Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor,
                              Owlv2Processor, OwlViTConfig, OwlViTForObjectDetection,
                              OwlViTImageProcessor, OwlViTProcessor)

    tokenizer, size = _clip_tokenizer()
    square = {"height": 32, "width": 32}
    if v2:
        config_cls, model_cls = Owlv2Config, Owlv2ForObjectDetection
        processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size=square), tokenizer=tokenizer)
    else:
        config_cls, model_cls = OwlViTConfig, OwlViTForObjectDetection
        processor = OwlViTProcessor(image_processor=OwlViTImageProcessor(size=square, crop_size=square),
                                    tokenizer=tokenizer)
    config = config_cls(
        text_config={"vocab_size": size, "hidden_size": 32, "intermediate_size": 64,
                     "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 16,
                     "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_attention_heads": 4, "num_hidden_layers": 2},
        projection_dim=32)
    torch.manual_seed(0)
    model_cls(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)


def _tiny_grounding_dino(folder: Path) -> None:
    from transformers import (GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    tokenizer, size = _bert_tokenizer(extra=(".",))
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                          window_size=4, out_features=["stage1", "stage2"])
    config = GroundingDinoConfig(
        backbone_config=backbone, use_pretrained_backbone=False,
        text_config={"model_type": "bert", "vocab_size": size, "hidden_size": 16,
                     "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                     "max_position_embeddings": 32},
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10,
        num_feature_levels=2, encoder_n_points=2, decoder_n_points=2, max_text_len=32)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=tokenizer).save_pretrained(folder)


def _tiny_idefics3(folder: Path) -> None:
    """SmolVLM's architecture (Idefics3) with a chat template: the "chat" family."""
    from transformers import (BertTokenizerFast, Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessor, Idefics3Processor)

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<image>", "<fake_token_around_image>",
             "<global-img>", "<end_of_utterance>", ":", "?", ".", *WORDS]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=256,
                                  model_input_names=["input_ids", "attention_mask"])
    template = ("{% for m in messages %}User:{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                "<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
                "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": 32},
                                               max_image_size={"longest_edge": 32}),
        tokenizer=tokenizer, image_seq_len=4, chat_template=template)
    config = Idefics3Config(
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 32,
                       "num_attention_heads": 2, "num_hidden_layers": 1},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 32,
                     "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "num_hidden_layers": 2, "max_position_embeddings": 256, "pad_token_id": 0,
                     "bos_token_id": 2, "eos_token_id": 8},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=2, pad_token_id=0)
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny-blip": lambda f: _tiny_blip(f, vqa=False),
    "tiny-blip-vqa": lambda f: _tiny_blip(f, vqa=True),
    "tiny-owlv2": lambda f: _tiny_owl(f, v2=True),
    "tiny-owlvit": lambda f: _tiny_owl(f, v2=False),
    "tiny-gdino": _tiny_grounding_dino,
    "tiny-idefics3": _tiny_idefics3,
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every tiny model, pulled from its local folder into a model cache (no network)."""
    root = tmp_path_factory.mktemp("vlm")
    for name, build in BUILDERS.items():
        source = root / "src" / name
        source.mkdir(parents=True)
        build(source)
        pull_model(str(source), target_root=root / "cache")
    return root / "cache"


@pytest.fixture
def models(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PICSIFT_MODELS", str(cache))
    monkeypatch.setenv("PICSIFT_DEVICE", "cpu")
    return cache


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "horse.png", "page.png"):
        shutil.copy(DEMO / name, corpus / name)
    workspace = picsift.open(corpus)
    workspace.scan(workers=1)
    return workspace


def _photos(n: int = 3) -> list[Image.Image]:
    from picsift.media import load_image

    return [load_image(p, size=256) for p in sorted(DEMO.glob("*.jpg"))[:n]]


# --- pulling and loading ---------------------------------------------------------------------

def test_pull_keeps_a_transformers_checkpoint(models: Path) -> None:
    meta = json.loads((models / "tiny-blip" / "model.json").read_text())
    assert meta["format"] == "transformers" and meta["task"] == "captioning"
    assert meta["architecture"] == "BlipForConditionalGeneration"
    assert (models / "tiny-blip" / "config.json").exists()
    assert not list(models.glob("*/image.onnx"))
    tasks = {name: json.loads((models / name / "model.json").read_text())["task"] for name in BUILDERS}
    assert tasks == {"tiny-blip": "captioning", "tiny-blip-vqa": "vqa", "tiny-owlv2": "object-detection",
                     "tiny-owlvit": "object-detection", "tiny-gdino": "object-detection",
                     "tiny-idefics3": "vision-language"}
    with pytest.raises(PicsiftError, match="not an image-text embedding model"):
        HubModel.named("tiny-blip")


def test_unpulled_model_fails_fast_with_the_command_to_run(ws: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSIFT_MODELS", str(tmp_path / "empty"))
    expected = "model blip-base is not cached: run 'picsift models pull blip-base' (needs internet once)"
    with pytest.raises(PicsiftError) as caught:
        describe_workspace(ws)
    assert expected in str(caught.value)
    with pytest.raises(PicsiftError, match=r"run 'picsift models pull owlv2-base'"):
        detect_objects(ws, "a flag")
    with pytest.raises(PicsiftError, match="is an image-text model, not an object-detection model"):
        DetectorModel.named("clip-vit-b32")
    assert not (ws.dir / "features" / "describe_blip-base").exists()


def test_caption_and_answer_models(models: Path) -> None:
    photos = _photos()
    captioner = CaptionModel.named("tiny-blip", max_new_tokens=6)
    captions = captioner.caption(photos)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    with pytest.raises(PicsiftError, match="cannot answer questions"):
        captioner.answer(photos, "is there a cat?")
    vqa = CaptionModel.named(str(models / "tiny-blip-vqa"), max_new_tokens=4)  # a folder works too
    answers = vqa.answer(photos, "is there a cat?")
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    with pytest.raises(PicsiftError, match="does not write captions"):
        vqa.caption(photos)


def test_chat_model_captions_and_answers_without_echoing_the_prompt(models: Path, ws: Any) -> None:
    chat = CaptionModel.named("tiny-idefics3", max_new_tokens=4)
    assert chat.family == "chat" and chat.can_caption and chat.can_answer
    photos = _photos(2)
    for texts in (chat.caption(photos), chat.answer(photos, "is there a cat?")):
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
        assert not any("user" in t.lower() or "assistant" in t.lower() for t in texts)
    summary = describe_workspace(ws, model="tiny-idefics3", questions=["Is there a cat?"],
                                 max_new_tokens=3, batch_size=3)
    assert summary.columns == ["caption", "answer_is_there_a_cat"] and summary.done == 5


@pytest.mark.parametrize("name", ["tiny-owlv2", "tiny-owlvit", "tiny-gdino"])
def test_detector_returns_labelled_boxes_inside_the_image(models: Path, name: str) -> None:
    photos = _photos(2)
    labels = ["a cat", "a police car", "flag"]
    found = DetectorModel.named(name).detect(photos, labels, threshold=0.0)
    assert len(found) == 2 and all(found)
    for image, boxes in zip(photos, found):
        for d in boxes:
            assert d["label"] in labels and 0.0 <= d["score"] <= 1.0
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height
    assert DetectorModel.named(name).detect(photos, labels, threshold=1.0) == [[], []]


# --- describe / detect over a workspace ------------------------------------------------------

def test_describe_workspace_stores_exports_and_resumes(models: Path, ws: Any) -> None:
    from picsift.export.table import media_table

    summary = describe_workspace(ws, model="tiny-blip", max_new_tokens=5)
    assert (summary.done, summary.failed, summary.already) == (5, 0, 0)
    assert summary.feature_set == "describe_tiny-blip" and summary.columns == ["caption"]
    table = results_table(ws, DESCRIBE, "tiny-blip")
    assert len(table) == 5 and set(table["status"]) == {"ok"} and set(table["model"]) == {"tiny-blip"}
    assert all(isinstance(c, str) for c in table["caption"])
    exported = media_table(ws)
    assert exported["describe_tiny-blip_caption"].notna().sum() == 5
    again = describe_workspace(ws, model="tiny-blip", max_new_tokens=5)
    assert (again.done, again.already) == (0, 5)


def test_describe_questions_and_failed_images_are_retried(models: Path, ws: Any) -> None:
    questions = ["Is there a flag?", "How many people?", "is there a FLAG?"]
    victim = Path(ws.query("SELECT path FROM files WHERE path LIKE '%coffee.jpg'")[0]["path"])
    good = victim.read_bytes()
    victim.write_bytes(b"not a jpeg any more")
    first = describe_workspace(ws, model="tiny-blip-vqa", questions=questions, max_new_tokens=3)
    assert first.columns == ["answer_is_there_a_flag", "answer_how_many_people"]  # deduplicated
    assert (first.done, first.failed) == (4, 1)
    table = results_table(ws, DESCRIBE, "tiny-blip-vqa").set_index("path")
    assert "caption" not in table  # a VQA model does not caption
    assert table.loc[str(victim), "status"].startswith("error: ")
    assert table.drop(index=str(victim))["answer_how_many_people"].map(type).eq(str).all()
    errors = ws.query("SELECT path, stage FROM errors WHERE stage = 'describe'")
    assert [e["path"] for e in errors] == [str(victim)]
    victim.write_bytes(good)
    second = describe_workspace(ws, model="tiny-blip-vqa", questions=questions, max_new_tokens=3)
    assert (second.done, second.failed, second.already) == (1, 0, 4)
    assert not ws.query("SELECT path FROM errors WHERE stage = 'describe'")
    assert set(results_table(ws, DESCRIBE, "tiny-blip-vqa")["status"]) == {"ok"}


def test_describe_refuses_what_the_model_cannot_do(models: Path, ws: Any) -> None:
    with pytest.raises(PicsiftError, match="cannot answer questions"):
        describe_workspace(ws, model="tiny-blip", questions=["is there a cat?"])
    with pytest.raises(PicsiftError, match="does not write captions"):
        describe_workspace(ws, model="tiny-blip-vqa")
    with pytest.raises(PicsiftError, match="not a captioning or vqa or vision-language model"):
        describe_workspace(ws, model="tiny-owlv2")


def test_detect_counts_per_label_and_long_boxes_table(models: Path, ws: Any) -> None:
    from picsift.export.table import media_table

    summary = detect_objects(ws, "a cat, a police car,flag", model="tiny-owlv2", threshold=0.0)
    assert summary.columns == ["n_objects", "count_cat", "count_police_car", "count_flag"]
    assert (summary.done, summary.failed) == (5, 0)
    per_image = results_table(ws, DETECT, "tiny-owlv2")
    counts = per_image[["count_cat", "count_police_car", "count_flag"]].sum(axis=1)
    assert (counts == per_image["n_objects"]).all() and per_image["n_objects"].min() > 0
    boxes = detections_table(ws, "tiny-owlv2")
    assert len(boxes) == per_image["n_objects"].sum()
    assert set(boxes["label"]) <= {"a cat", "a police car", "flag"}
    sizes = {r["media_id"]: (r["width"], r["height"]) for r in ws.query("SELECT media_id, width, height FROM media")}
    for row in boxes.itertuples():  # in the original image's pixels, not the decoded copy's
        width, height = sizes[row.media_id]
        assert 0 <= row.x0 <= row.x1 <= width + 0.1 and 0 <= row.y0 <= row.y1 <= height + 0.1
    exported = media_table(ws)
    assert "detect_tiny-owlv2_count_police_car" in exported
    strict = detect_objects(ws, ["a cat", "a police car", "flag"], model="tiny-owlv2", threshold=1.0)
    assert strict.done == 5  # new settings: recomputed, not resumed
    assert results_table(ws, DETECT, "tiny-owlv2")["n_objects"].sum() == 0


def test_label_and_question_columns() -> None:
    assert label_columns(["a rifle", "A flag", "the police car", "an owl"]) == {
        "count_rifle": "a rifle", "count_flag": "A flag", "count_police_car": "the police car",
        "count_owl": "an owl"}
    assert list(question_columns(["Is there a weapon?", "Is there a weapon!"])) == [
        "answer_is_there_a_weapon", "answer_is_there_a_weapon_2"]


def test_cli_commands(models: Path, ws: Any, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from picsift.cli.describe import describe_command, detect_command

    app = typer.Typer()
    app.command("describe")(describe_command)
    app.command("detect")(detect_command)
    runner = CliRunner()
    root = str(ws.dir.parent)
    questions = tmp_path / "questions.txt"
    questions.write_text("# one per line\nIs there a cat?\n\nWhat colour is the sky?\n")
    done = runner.invoke(app, ["describe", root, "--model", "tiny-blip-vqa", "--questions", str(questions),
                               "--max-tokens", "3"])
    assert done.exit_code == 0, done.output
    written = (ws.dir / "describe.csv").read_text().splitlines()[0]
    assert "answer_is_there_a_cat" in written and "answer_what_colour_is_the_sky" in written
    done = runner.invoke(app, ["detect", root, "--labels", "a cat,flag", "--model", "tiny-owlvit",
                               "--threshold", "0"])
    assert done.exit_code == 0, done.output
    assert (ws.dir / "detect_boxes.csv").exists() and "count_flag" in (ws.dir / "detect.csv").read_text()


# --- the OpenAI-compatible API ---------------------------------------------------------------

class FakeApi:
    """A chat-completions server on 127.0.0.1: scripted answers first, then ``default``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[tuple[Any, ...]] = deque()
        self.default: Callable[[dict[str, Any]], tuple[Any, ...]] = lambda body: ("ok", "a caption")
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                api.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                action = api.script.popleft() if api.script else api.default(body)
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    action = ("ok", "too late")
                    kind = "ok"
                if kind == "ok":
                    payload = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                        {"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": action[1]}}]}).encode()
                    self._send(200, payload, {})
                elif kind == "raw":
                    self._send(200, action[1], {})
                else:  # ("status", code, headers, json body)
                    self._send(action[1], json.dumps(action[3]).encode(), action[2])

            def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(ACCEPT_ENV, raising=False)
    monkeypatch.setenv("TEST_VISION_KEY", "sk-test-123")
    server = FakeApi()
    yield server
    server.close()


def _client(api: FakeApi, sleeps: list[float], **options: Any) -> OpenAIVisionClient:
    return OpenAIVisionClient("vision-mini", api.base, "TEST_VISION_KEY", accept_disclosure=True,
                              sleep=sleeps.append, **options)


def test_request_shape_and_image_encoding(api: FakeApi) -> None:
    sleeps: list[float] = []
    big = Image.new("RGB", (2000, 1000), (10, 200, 30))
    reply = _client(api, sleeps).ask(big, "What is shown?")
    assert (reply.status, reply.text) == ("ok", "a caption")
    (request,) = api.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    body = request["body"]
    assert body["model"] == "vision-mini" and body["max_tokens"] == 300 and body["temperature"] == 0
    (message,) = body["messages"]
    assert message["role"] == "user"
    text, image = message["content"]
    assert text == {"type": "text", "text": "What is shown?"}
    url = image["image_url"]["url"]
    assert image["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (1024, 512)
    assert sleeps == []


def test_no_key_env_sends_no_authorization(api: FakeApi) -> None:
    client = OpenAIVisionClient("m", api.base, None, accept_disclosure=True)
    assert client.ask(Image.new("RGB", (8, 8)), "hi").status == "ok"
    assert "Authorization" not in api.requests[0]["headers"]
    with pytest.raises(PicsiftError, match="MISSING_KEY_VAR"):
        OpenAIVisionClient("m", api.base, "MISSING_KEY_VAR", accept_disclosure=True)


def test_rate_limit_retry_after_is_honoured(api: FakeApi) -> None:
    sleeps: list[float] = []
    api.script.extend([("status", 429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}),
                       ("status", 503, {}, {}), ("ok", "finally")])
    reply = _client(api, sleeps, backoff=0.5).ask(Image.new("RGB", (8, 8)), "hi")
    assert (reply.status, reply.text) == ("ok", "finally")
    assert len(api.requests) == 3
    assert sleeps[0] == 3.0 and 1.0 <= sleeps[1] <= 1.25  # Retry-After, then backoff 0.5 * 2
    capped: list[float] = []
    api.script.extend([("status", 429, {"Retry-After": "3600"}, {}), ("ok", "fine")])
    assert _client(api, capped, max_wait=5).ask(Image.new("RGB", (8, 8)), "hi").status == "ok"
    assert capped == [5]
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_server_errors_exhaust_retries_into_an_error_status(api: FakeApi) -> None:
    sleeps: list[float] = []
    api.default = lambda body: ("status", 500, {}, {"error": {"message": "boom"}})
    reply = _client(api, sleeps, max_retries=2).ask(Image.new("RGB", (8, 8)), "hi")
    assert reply.text is None
    assert reply.status.startswith("error: 127.0.0.1 HTTP 500 (provider-side error): boom")
    assert reply.status.endswith("after 3 attempts") and len(api.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("action, expected", [
    (("raw", b"{not json"), "malformed JSON"),
    (("status", 400, {}, {"error": {"message": "image too small"}}), "HTTP 400 (bad request): image too small"),
    (("status", 401, {}, {"error": {"message": "bad key"}}), "check the API key"),
    (("ok", ""), "returned no text (finish_reason stop)"),
    (("raw", b'{"choices": []}'), "unexpected response"),
])
def test_client_errors_are_not_retried(api: FakeApi, action: tuple[Any, ...], expected: str) -> None:
    api.script.append(action)
    reply = _client(api, []).ask(Image.new("RGB", (8, 8)), "hi")
    assert reply.status.startswith("error: ") and expected in reply.status
    assert len(api.requests) == 1


def test_timeout_becomes_an_error_status(api: FakeApi) -> None:
    api.script.extend([("sleep", 1.5), ("sleep", 1.5)])
    sleeps: list[float] = []
    reply = _client(api, sleeps, timeout=0.3, max_retries=1).ask(Image.new("RGB", (8, 8)), "hi")
    assert "timed out after 0.3 s" in reply.status and reply.status.endswith("after 2 attempts")


def test_content_parts_are_joined(api: FakeApi) -> None:
    api.script.append(("ok", [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]))
    assert _client(api, []).ask(Image.new("RGB", (8, 8)), "hi").text == "two parts"


def test_disclosure_gate(api: FakeApi, ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PicsiftError) as caught:
        OpenAIVisionClient("m", api.base, "TEST_VISION_KEY")
    assert DISCLOSURE in str(caught.value) and ACCEPT_ENV in str(caught.value)
    with pytest.raises(PicsiftError, match="needs your consent"):
        describe_workspace(ws, model="m", api_base=api.base, api_key_env="TEST_VISION_KEY")
    assert api.requests == [] and not list((ws.dir / "features").glob("describe_*"))  # nothing sent
    monkeypatch.setenv(ACCEPT_ENV, "1")
    assert OpenAIVisionClient("m", api.base, "TEST_VISION_KEY").ask(Image.new("RGB", (8, 8)), "x").status == "ok"


def test_describe_workspace_through_the_api(api: FakeApi, ws: Any) -> None:
    def answer(body: dict[str, Any]) -> tuple[Any, ...]:
        prompt = body["messages"][0]["content"][0]["text"]
        if "unanswerable" in prompt:
            return ("status", 400, {}, {"error": {"message": "cannot answer that"}})
        return ("ok", f"reply to: {prompt.splitlines()[0]}")

    api.default = answer
    summary = describe_workspace(ws, model="vision-mini", questions=["Is there a cat?"],
                                 api_base=api.base, api_key_env="TEST_VISION_KEY",
                                 accept_disclosure=True, workers=3)
    assert summary.model == "vision-mini@127.0.0.1" and (summary.done, summary.failed) == (5, 0)
    assert len(api.requests) == 10  # a caption and one question per image
    table = results_table(ws, DESCRIBE, summary.model)
    assert set(table["answer_is_there_a_cat"]) == {"reply to: Is there a cat?"}
    assert table["caption"].str.startswith("reply to: Describe this image").all()
    again = describe_workspace(ws, model="vision-mini", questions=["Is there a cat?"],
                               api_base=api.base, api_key_env="TEST_VISION_KEY", accept_disclosure=True)
    assert (again.done, again.already) == (0, 5) and len(api.requests) == 10  # resumed, nothing re-sent
    failing = describe_workspace(ws, model="vision-mini", questions=["unanswerable?"], caption=False,
                                 api_base=api.base, api_key_env="TEST_VISION_KEY", accept_disclosure=True)
    assert (failing.done, failing.failed) == (0, 5)
    statuses = set(results_table(ws, DESCRIBE, summary.model)["status"])
    assert statuses == {"error: 127.0.0.1 HTTP 400 (bad request): cannot answer that"}
    assert len(ws.query("SELECT path FROM errors WHERE stage = 'describe'")) == 5


def test_api_run_stops_when_the_endpoint_rejects_everything(api: FakeApi, ws: Any) -> None:
    api.default = lambda body: ("status", 401, {}, {"error": {"message": "invalid key"}})
    with pytest.raises(PicsiftError, match=r"stopped: every request of a batch failed .*HTTP 401"):
        describe_workspace(ws, model="m", api_base=api.base, api_key_env="TEST_VISION_KEY",
                           accept_disclosure=True, workers=1, batch_size=2)
    assert len(api.requests) == 2  # one batch, not the whole corpus
    table = results_table(ws, DESCRIBE, "m@127.0.0.1")
    assert len(table) == 2 and table["status"].str.contains("check the API key").all()


def test_image_data_url_keeps_small_images() -> None:
    url = image_data_url(Image.new("L", (300, 200)))
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (300, 200)
