"""`picsift text`: OCR, language, translation and enrichment for every media, resumable.

Two halves, each recorded with the settings it was made with (media_text.ocr_hash and
post_hash): reading the pixels (OCR + language-ID, slow, in worker processes), then
translation and enrichment of the stored text (fast, no image decoding). Changing only
the translation target or backend redoes the second half; changing the OCR languages
redoes both. Results go to SQLite (media_text, text_blocks) with an FTS5 index, so
`picsift search --text` finds images by the words written in them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from picsift.analyses.copies.extract import media_paths
from picsift.engine import LocalEngine, ProgressReporter, make_engine
from picsift.errors import MediaError, PicsiftError
from picsift.media.decode import DecodeOptions, load_image
from picsift.text.ocr import OcrOptions
from picsift.workspace.store import Workspace, insert_errors

log = logging.getLogger(__name__)
DECODE_SIZE = 2400    # OCR reads line crops from the full picture: keep small text legible
POST_VERSION = "1"


@dataclass(frozen=True)
class TextOptions:
    """Everything `picsift text` can be told; see docs/text.md."""

    ocr: OcrOptions = field(default_factory=OcrOptions)
    translate_to: str = "en"
    backend: str = "offline"          # offline | none | google | deepl | libretranslate
    accept_disclosure: bool = False
    api_key: str | None = None
    endpoint: str | None = None
    enrich: bool = True               # cleaning, spelling, sentiment, entities
    spell: bool = True
    entities: bool = True

    def ocr_hash(self) -> str:
        return _hash(self.ocr.params())

    def post_params(self) -> dict[str, Any]:
        return {"translate_to": self.translate_to, "backend": self.backend, "enrich": self.enrich,
                "spell": self.spell, "entities": self.entities, "version": POST_VERSION}

    def post_hash(self) -> str:
        return _hash(self.post_params())


@dataclass
class TextSummary:
    read: int = 0
    with_text: int = 0
    failed: int = 0
    already: int = 0
    post_processed: int = 0
    seconds: float = 0.0
    languages: dict[str, int] = field(default_factory=dict)
    translation: dict[str, int] = field(default_factory=dict)


def _hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- worker side
@functools.lru_cache(maxsize=2)
def _engine(options: OcrOptions) -> Any:
    from picsift.text.ocr import OcrEngine

    return OcrEngine(options)


def ocr_batch(options: OcrOptions, decode: DecodeOptions, batch: list[tuple[str, str]]
              ) -> list[dict[str, Any]]:
    """Worker task: (media_id, path) pairs -> blocks and languages, or an error record."""
    from picsift.text.langid import identify, identify_image
    from picsift.text.ocr import engine_versions

    engine = _engine(options)
    out: list[dict[str, Any]] = []
    for media_id, path in batch:
        try:
            image = load_image(path, size=DECODE_SIZE, options=decode)
        except MediaError as exc:
            out.append({"media_id": media_id, "path": path, "error": exc.reason, "kind": exc.kind})
            continue
        result = engine.read(image)
        blocks = []
        for b in result.blocks:
            language = identify(b.text)
            blocks.append({"block": b.order, "line": b.line, "text": b.text,
                           "confidence": b.confidence, "language": language.code,
                           "language_score": language.score, "script": b.script,
                           "engine": b.engine, "box": json.dumps(b.box)})
        main, mix = identify_image([b.text for b in result.blocks]) if blocks else (None, {})
        out.append({"media_id": media_id, "path": path, "text": result.text, "blocks": blocks,
                    "language": main.code if main else None,
                    "language_score": main.score if main else None, "mix": mix,
                    "confidence": (round(sum(b.confidence for b in result.blocks) / len(blocks), 4)
                                   if blocks else None),
                    "seconds": result.seconds, "model": engine_versions()})
    return out


@functools.lru_cache(maxsize=2)
def _translator(options: TextOptions) -> Any:
    from picsift.text.translate import TranslationService

    return TranslationService(options.translate_to, options.backend,
                              accept_disclosure=options.accept_disclosure,
                              api_key=options.api_key, endpoint=options.endpoint)


def post_batch(options: TextOptions, batch: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Worker task: (media_id, text, language) -> translation and enrichment columns."""
    from picsift.text.translate import describe

    translations = _translator(options).translate_many([(text, lang) for _, text, lang in batch])
    english = []
    for (_, text, lang), t in zip(batch, translations):
        if options.translate_to == "en" and t.status in ("translated", "source-is-target"):
            english.append(t.text)
        elif lang == "en":
            english.append(text)
        else:
            english.append(None)
    enriched: list[Any] = [None] * len(batch)
    if options.enrich:
        from picsift.text.enrich import enrich_many

        enriched = enrich_many([(text, lang or "und", en) for (_, text, lang), en
                                in zip(batch, english)], spell=options.spell,
                               entities=options.entities)
    out = []
    for (media_id, _, lang), t, en, e in zip(batch, translations, english, enriched):
        status = t.status if t.status != "no-offline-model" else describe(t, lang, options.translate_to)
        record: dict[str, Any] = {
            "media_id": media_id, "text_english": en if options.translate_to == "en" else t.text,
            "translation_status": status, "translation_backend": t.backend}
        if e is not None:
            record.update({"text_clean": e.text_clean, "text_english_correct": e.text_english_correct,
                           "polarity": e.polarity, "subjectivity": e.subjectivity,
                           "sentiment": e.sentiment, "sentiment_score": e.sentiment_score,
                           "entities": json.dumps(e.entities, ensure_ascii=False),
                           "post_model": e.model})
        out.append(record)
    return out


# ---------------------------------------------------------------- main side
def index_words(*texts: str | None) -> str:
    """What the full-text index sees: the texts, with Chinese/Japanese characters spaced.

    SQLite's unicode61 tokenizer treats a run of CJK characters as one word, so "北京"
    would never match "今天北京的天气很好"; one character per token makes a phrase query
    of the characters find it.
    """
    from picsift.text.scripts import char_script

    joined = "\n".join(t for t in texts if t)
    return "".join(f" {ch} " if char_script(ch) in ("han", "kana") else ch for ch in joined)


class _OcrWriter:
    def __init__(self, ws: Workspace, options: TextOptions, run_id: int, summary: TextSummary) -> None:
        self.ws, self.summary, self.run_id = ws, summary, run_id
        self.ocr_hash = options.ocr_hash()

    def store(self, batch: list[tuple[str, str]], records: list[dict[str, Any]]) -> None:
        good = [r for r in records if "error" not in r]
        bad = [r for r in records if "error" in r]
        with self.ws.transaction() as conn:
            for r in good:
                conn.execute("DELETE FROM text_blocks WHERE media_id = ?", (r["media_id"],))
                conn.execute("DELETE FROM text_fts WHERE media_id = ?", (r["media_id"],))
                conn.execute("DELETE FROM media_text WHERE media_id = ?", (r["media_id"],))
                conn.executemany(
                    "INSERT INTO text_blocks(media_id, block, line, text, confidence, language, "
                    "language_score, script, engine, box) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(r["media_id"], b["block"], b["line"], b["text"], b["confidence"], b["language"],
                      b["language_score"], b["script"], b["engine"], b["box"]) for b in r["blocks"]])
                conn.execute(
                    "INSERT INTO media_text(media_id, ocr_hash, text, n_blocks, ocr_confidence, "
                    "text_language, text_language_score, text_languages, ocr_model, seconds, run_id) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (r["media_id"], self.ocr_hash, r["text"], len(r["blocks"]), r["confidence"],
                     r["language"], r["language_score"], json.dumps(r["mix"]), r["model"],
                     r["seconds"], self.run_id))
                if r["text"]:
                    conn.execute("INSERT INTO text_fts(media_id, words) VALUES (?, ?)",
                                 (r["media_id"], index_words(r["text"])))
                    self.summary.with_text += 1
            insert_errors(conn, "text", bad, self.run_id)
        self.summary.read += len(good)
        self.summary.failed += len(bad)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        from picsift.workspace.features import crash_records

        self.store(batch, crash_records(batch, exc))


class _PostWriter:
    COLUMNS = ("text_english", "translation_status", "translation_backend", "text_clean",
               "text_english_correct", "polarity", "subjectivity", "sentiment", "sentiment_score",
               "entities", "post_model")

    def __init__(self, ws: Workspace, options: TextOptions, summary: TextSummary) -> None:
        self.ws, self.summary = ws, summary
        self.post_hash = options.post_hash()

    def store(self, batch: list[tuple[str, str, str]], records: list[dict[str, Any]]) -> None:
        texts = {media_id: text for media_id, text, _ in batch}
        with self.ws.transaction() as conn:
            for r in records:
                values = [r.get(c) for c in self.COLUMNS]
                conn.execute(
                    f"UPDATE media_text SET {', '.join(c + ' = ?' for c in self.COLUMNS)}, "
                    "post_hash = ? WHERE media_id = ?", (*values, self.post_hash, r["media_id"]))
                conn.execute("DELETE FROM text_fts WHERE media_id = ?", (r["media_id"],))
                conn.execute("INSERT INTO text_fts(media_id, words) VALUES (?, ?)",
                             (r["media_id"], index_words(texts[r["media_id"]], r.get("text_english"))))
        self.summary.post_processed += len(records)

    def fail(self, batch: list[tuple[str, str, str]], exc: BaseException) -> None:
        log.warning("translation/enrichment failed for %d texts: %s", len(batch), exc)
        records = [{"media_id": m, "translation_status": f"error: {exc}"[:300]} for m, _, _ in batch]
        self.store(batch, records)


def _check_backend(options: TextOptions) -> None:
    """Refuse an online backend before any work starts unless the disclosure is accepted."""
    if options.backend in ("offline", "none"):
        return
    _translator(options)  # raises PicsiftError with the disclosure when not accepted


def extract_text(ws: Workspace, options: TextOptions | None = None, *, workers: int | None = None,
                 batch_size: int = 4, progress: bool = False, engine: str = "local",
                 address: str | None = None) -> TextSummary:
    """Read the text of every media not yet read with these settings, then post-process it."""
    options = options or TextOptions()
    _check_backend(options)
    started = time.monotonic()
    summary = TextSummary()
    with ws.writing():
        run_id = ws.begin_run("text", {"ocr": options.ocr.params(), "post": options.post_params()})
        status = "interrupted"
        try:
            _read_images(ws, options, run_id, summary, workers, batch_size, progress,
                         engine, address)
            _post_process(ws, options, summary, workers, progress)
            status = "done"
        finally:
            ws.finish_run(run_id, status, {"read": summary.read, "failed": summary.failed,
                                           "post_processed": summary.post_processed})
    for r in ws.query("SELECT COALESCE(text_language, 'none') AS l, COUNT(*) AS n FROM media_text "
                      "WHERE n_blocks > 0 GROUP BY l ORDER BY n DESC"):
        summary.languages[r["l"]] = r["n"]
    for r in ws.query("SELECT translation_status AS s, COUNT(*) AS n FROM media_text "
                      "WHERE n_blocks > 0 GROUP BY s ORDER BY n DESC"):
        summary.translation[r["s"] or "pending"] = r["n"]
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


def _read_images(ws: Workspace, options: TextOptions, run_id: int, summary: TextSummary,
                 workers: int | None, batch_size: int, progress: bool, engine: str = "local",
                 address: str | None = None) -> None:
    ocr_hash = options.ocr_hash()
    done = {r["media_id"] for r in ws.query("SELECT media_id FROM media_text WHERE ocr_hash = ?",
                                            (ocr_hash,))}
    failed = {r["path"] for r in ws.query("SELECT path FROM errors WHERE stage = 'text'")}
    everything = media_paths(ws)
    todo = [(m, p) for m, p in everything if m not in done and p not in failed]
    summary.already = len(everything) - len(todo)
    if not todo:
        return
    from picsift.text.ocr import OcrEngine

    OcrEngine(options.ocr)  # fail fast (missing extra); uncached: workers build their own
    task = functools.partial(ocr_batch, options.ocr, DecodeOptions())
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    writer = _OcrWriter(ws, options, run_id, summary)
    with ProgressReporter("text: OCR", len(todo), enabled=progress) as bar:
        make_engine(engine, address, workers).map(task, batches, writer.store, writer.fail, bar)


def _post_process(ws: Workspace, options: TextOptions, summary: TextSummary,
                  workers: int | None, progress: bool) -> None:
    post_hash = options.post_hash()
    with ws.transaction() as conn:  # images without text need no work: mark them at once
        conn.execute("UPDATE media_text SET post_hash = ?, translation_status = 'empty' "
                     "WHERE n_blocks = 0 AND (post_hash IS NULL OR post_hash != ?)",
                     (post_hash, post_hash))
    rows = ws.query("SELECT media_id, text, text_language FROM media_text WHERE n_blocks > 0 "
                    "AND (post_hash IS NULL OR post_hash != ?) ORDER BY media_id", (post_hash,))
    if not rows:
        return
    items = [(r["media_id"], r["text"], r["text_language"] or "und") for r in rows]
    task = functools.partial(post_batch, options)
    batches = [items[i : i + 32] for i in range(0, len(items), 32)]
    writer = _PostWriter(ws, options, summary)
    # Translation backends and spaCy load once per process; a handful of batches is not
    # worth a pool, and online backends should not be hit in parallel.
    pool_workers = 1 if options.backend not in ("offline", "none") or len(batches) < 4 else workers
    with ProgressReporter("text: translate+enrich", len(items), enabled=progress) as bar:
        LocalEngine(pool_workers).map(task, batches, writer.store, writer.fail, bar)


def text_table(ws: Workspace) -> Any:
    """One row per media with text columns (AMMICO's names), joined to a path."""
    import pandas as pd

    frame = pd.read_sql_query(
        "SELECT f.path, t.* FROM media_text t JOIN (SELECT media_id, MIN(path) AS path FROM files "
        "WHERE kind IN ('image', 'frame') GROUP BY media_id) f USING (media_id) ORDER BY f.path",
        ws.connect())
    return frame.drop(columns=["ocr_hash", "post_hash", "run_id"])


def blocks_table(ws: Workspace) -> Any:
    """The long table: one row per text block, with its box and language."""
    import pandas as pd

    return pd.read_sql_query("SELECT * FROM text_blocks ORDER BY media_id, block", ws.connect())


def search_text(ws: Workspace, query: str, limit: int = 20) -> Any:
    """Media whose text (or its translation) contains the query's words, best first.

    Plain words are all required (any order, accents and case ignored, "prefix*" allowed);
    a query with FTS5 syntax (quotes, OR, NEAR) is passed on as written.
    """
    import pandas as pd
    import sqlite3

    fts = _fts_query(query)
    try:
        frame = pd.read_sql_query(
            "SELECT x.media_id, bm25(text_fts) AS score, snippet(text_fts, 1, '[', ']', '…', 12) "
            "AS snippet FROM text_fts x WHERE text_fts MATCH ? ORDER BY score LIMIT ?",
            ws.connect(), params=(fts, limit))
    except (sqlite3.OperationalError, pd.errors.DatabaseError) as exc:
        raise PicsiftError(f"cannot search for {query!r}: {exc}") from exc
    if frame.empty:
        return frame.assign(path=[], text=[])
    ids = tuple(frame["media_id"])
    marks = ",".join("?" * len(ids))  # only the hits: fast on 100k-image workspaces
    paths = {r["media_id"]: r["path"] for r in ws.query(
        f"SELECT media_id, MIN(path) AS path FROM files WHERE media_id IN ({marks}) "
        "GROUP BY media_id", ids)}
    texts = {r["media_id"]: r["text"] for r in ws.query(
        f"SELECT media_id, text FROM media_text WHERE media_id IN ({marks})", ids)}
    frame["path"] = frame["media_id"].map(paths)
    frame["text"] = frame["media_id"].map(texts)
    frame["snippet"] = frame["snippet"].str.replace(r"\s+", " ", regex=True)
    frame["score"] = (-frame["score"]).round(4)
    return frame[["path", "media_id", "score", "snippet", "text"]]


def fts_query(query: str) -> str:
    """The FTS5 MATCH expression for a user's query (see search_text)."""
    return _fts_query(query)


def _fts_query(query: str) -> str:
    if any(token in query for token in ('"', " OR ", " NEAR", " NOT ", "(")):
        return index_words(query)
    terms = []
    for word in query.split():
        prefix = word.endswith("*")
        pieces = index_words(word.rstrip("*").replace('"', "")).split()
        if pieces:  # CJK characters, spaced one per token, stay adjacent as a phrase
            terms.append('"' + " ".join(pieces) + '"' + ("*" if prefix else ""))
    if not terms:
        raise PicsiftError("the text query is empty")
    return " ".join(terms)
