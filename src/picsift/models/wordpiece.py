"""BERT uncased WordPiece tokenizer in pure Python, for the packaged MiniLM text model.

Gives the same token ids as the model's tokenizer.json (Hugging Face tokenizers'
BertNormalizer with accent stripping and lower-casing, BertPreTokenizer, WordPiece with ##
continuations, [CLS] ... [SEP], truncation at 256 tokens) so picsift needs neither torch nor
the tokenizers package to embed text offline.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

MAX_SEQ_LEN = 256


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    # Cc, Cf, Co, Cs are dropped; unassigned code points (Cn) are kept, as the Rust
    # BertNormalizer does (they then become [UNK]).
    cat = unicodedata.category(ch)
    return cat.startswith("C") and cat != "Cn"


def _is_whitespace(ch: str) -> bool:
    # Rust's char::is_whitespace (Unicode White_Space) is what the pre-tokenizer uses.
    return ch.isspace() or unicodedata.category(ch) == "Zs"


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    # the Rust BertNormalizer's ranges, quirk included: it starts the CJK Ext. E range at
    # 0x2B920 where HF's Python BertTokenizer has 0x2B820
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class BertWordPiece:
    """Tokenizer over a vocab.txt; ``batch`` gives padded ids and attention mask."""

    def __init__(self, vocab_path: Path, max_len: int = MAX_SEQ_LEN):
        words = Path(vocab_path).read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        self.vocab = {w: i for i, w in enumerate(words)}
        self.unk, self.cls, self.sep, self.pad = (
            self.vocab["[UNK]"],
            self.vocab["[CLS]"],
            self.vocab["[SEP]"],
            self.vocab["[PAD]"],
        )
        self.max_len = max_len

    def _normalize(self, text: str) -> str:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                out.append(" ")
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = unicodedata.normalize("NFD", "".join(out))
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        # per character: str.lower() on the whole string would apply the Greek final-sigma
        # rule, which the Rust normalizer does not
        return "".join(c.lower() for c in text)

    def _pre_tokenize(self, text: str) -> list[str]:
        words, cur = [], []
        for ch in text:
            if _is_whitespace(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
            elif _is_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
        return words

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for w in self._pre_tokenize(self._normalize(text)):
            ids.extend(self._wordpiece(w))
        return [self.cls] + ids[: self.max_len - 2] + [self.sep]

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        seqs = [self.encode(t) for t in texts]
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.pad, np.int64)
        mask = np.zeros((len(seqs), width), np.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return ids, mask
