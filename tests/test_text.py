"""Text in images: real OCR on rendered memes and screenshots (tests/data/text, made by
scripts/make_text_corpus.py with real fonts over real photos), language-ID, the pipeline's
storage, resume and full-text search, and the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_picsift

pytest.importorskip("rapidocr", reason="the text extra is not installed")

from picsift.text import tesseract  # noqa: E402
from picsift.text.langid import identify, identify_image  # noqa: E402
from picsift.text.ocr import OcrEngine, OcrOptions  # noqa: E402

DATA = Path(__file__).parent / "data" / "text"
TRUTH = {case["file"]: case for case in json.loads((DATA / "truth.json").read_text())}

# Upper bounds of the character error rate per image, a little above what we measured
# (benchmarks/text.py prints the current figures).
CER_BOUND = {
    "meme_en.jpg": 0.03, "meme_de.jpg": 0.03, "meme_fr_rotated.jpg": 0.08,
    "meme_uk.jpg": 0.15, "meme_ru.jpg": 0.2,
    "shot_en.png": 0.03, "shot_de.png": 0.03, "shot_es.png": 0.03, "shot_pt.png": 0.03,
    "shot_small_en.png": 0.05, "shot_lowcontrast_en.png": 0.05, "shot_zh.png": 0.05,
    "shot_uk.png": 0.06, "shot_ar.png": 0.12,
}
NEEDS_TESSERACT = {"cyrillic": ["rus", "ukr"], "arabic": ["ara"]}


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, case-insensitive, whitespace collapsed (as in the research)."""
    ref, hyp = (" ".join(s.lower().split()) for s in (reference, hypothesis))
    previous = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        current = [i]
        for j, b in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / max(1, len(ref))


@pytest.fixture(scope="module")
def readings() -> dict[str, object]:
    engine = OcrEngine(OcrOptions())
    return {name: engine.read(Image.open(DATA / name)) for name in TRUTH}


def _skip_without_tesseract(script: str) -> None:
    wanted = NEEDS_TESSERACT.get(script)
    if wanted and not set(wanted) <= tesseract.installed_languages():
        pytest.skip(f"tesseract with {'+'.join(wanted)} is not installed (scripts/system-deps.sh)")


@pytest.mark.parametrize("name", sorted(CER_BOUND))
def test_ocr_character_error_rate(readings: dict[str, object], name: str) -> None:
    case = TRUTH[name]
    _skip_without_tesseract(case["script"])
    result = readings[name]
    error = cer(" ".join(case["lines"]), result.text.replace("\n", " "))  # type: ignore[attr-defined]
    assert error <= CER_BOUND[name], (name, result.text)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["photo_notext.jpg", "photo_notext_hubble.jpg"])
def test_photo_without_text_has_no_text(readings: dict[str, object], name: str) -> None:
    assert readings[name].blocks == []  # type: ignore[attr-defined]
    assert readings[name].text == ""  # type: ignore[attr-defined]


def test_blocks_have_boxes_reading_order_and_confidence(readings: dict[str, object]) -> None:
    result = readings["shot_en.png"]
    blocks = result.blocks  # type: ignore[attr-defined]
    assert [b.order for b in blocks] == list(range(len(blocks)))
    assert [b.line for b in blocks] == sorted(b.line for b in blocks)
    ys = [min(p[1] for p in b.box) for b in blocks]
    assert ys == sorted(ys)  # one block per line here: top to bottom
    assert all(0.5 <= b.confidence <= 1 and len(b.box) == 4 for b in blocks)
    assert result.text.splitlines()[2] == "Thousands of people gathered in the city centre"  # type: ignore[attr-defined]


def test_arabic_lines_are_read_by_tesseract_right_to_left(readings: dict[str, object]) -> None:
    _skip_without_tesseract("arabic")
    blocks = readings["shot_ar.png"].blocks  # type: ignore[attr-defined]
    arabic = [b for b in blocks if b.script == "arabic"]
    assert len(arabic) >= 3 and {b.engine for b in arabic} == {"tesseract"}
    first_line = [b for b in blocks if b.line == 0]
    # author (right) before handle (left): right-to-left order within the line
    assert first_line[0].script == "arabic" and first_line[-1].text == "@akhbar"


def test_latin_meme_is_not_replaced_by_cyrillic_look_alikes(readings: dict[str, object]) -> None:
    """The rotated French meme once came back as 'QUE ІЕЛТЕЗІЕЗТРАСИ Й' from tesseract."""
    blocks = readings["meme_fr_rotated.jpg"].blocks  # type: ignore[attr-defined]
    assert {b.script for b in blocks} == {"latin"} and {b.engine for b in blocks} == {"rapidocr"}


def test_without_tesseract_cyrillic_is_not_invented(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tesseract: Latin still read; Cyrillic lines are what RapidOCR makes of them."""
    monkeypatch.setenv("PICSIFT_TESSERACT", "/nonexistent/tesseract")
    tesseract.installed_languages.cache_clear()
    try:
        engine = OcrEngine(OcrOptions())
        assert engine.scripts == ["han", "kana", "latin"]
        assert cer(" ".join(TRUTH["shot_en.png"]["lines"]),
                   engine.read(Image.open(DATA / "shot_en.png")).text.replace("\n", " ")) < 0.03
    finally:
        tesseract.installed_languages.cache_clear()


@pytest.mark.parametrize("text, code", [
    ("Сьогодні в Києві відбулася зустріч волонтерів.", "uk"),
    ("Die Bürgerinitiative fordert mehr Radwege", "de"),
    ("أعلنت الحكومة اليوم عن إجراءات جديدة", "ar"),
    ("今天北京的天气很好", "zh"),
    ("WHEN THE WIFI GOES DOWN", "en"),
    ("ok", "und"),                       # too short to tell
    ("@bbcnews https://t.co/x 2024", "und"),  # handles, links and numbers are not language
])
def test_language_identification(text: str, code: str) -> None:
    assert identify(text).code == code


def test_mixed_language_image_reports_the_mix() -> None:
    main, mix = identify_image(["Hello everyone, this is the morning news in English",
                                "Guten Morgen, hier sind die Nachrichten"])
    assert main.code == "en" and set(mix) == {"en", "de"} and mix["en"] > mix["de"]


# ------------------------------------------------------------------ pipeline + CLI
@pytest.fixture(scope="module")
def text_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("textcorpus")
    for name in ["shot_en.png", "shot_es.png", "shot_zh.png", "meme_uk.jpg", "photo_notext.jpg"]:
        shutil.copy(DATA / name, folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    run_picsift("scan", str(folder))
    result = run_picsift("text", str(folder), "--no-enrich", "--workers", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    return folder


def test_text_command_writes_tables_and_records_bad_files(text_workspace: Path) -> None:
    import pandas as pd

    table = pd.read_csv(text_workspace / ".picsift" / "text.csv")
    assert len(table) == 5
    by_name = {Path(p).name: row for p, row in zip(table["path"], table.to_dict("records"))}
    assert by_name["photo_notext.jpg"]["n_blocks"] == 0
    assert by_name["shot_es.png"]["text_language"] == "es"
    assert by_name["shot_zh.png"]["text_language"] == "zh"
    assert "Los vecinos" in by_name["shot_es.png"]["text"]
    assert "rapidocr" in by_name["shot_en.png"]["ocr_model"]
    blocks = pd.read_csv(text_workspace / ".picsift" / "text_blocks.csv")
    assert set(blocks.columns) >= {"media_id", "block", "line", "text", "confidence", "language", "box"}
    errors = run_picsift("errors", str(text_workspace)).stdout
    assert "broken.png" in errors


def test_text_rerun_skips_and_changed_translation_redoes_only_post(text_workspace: Path) -> None:
    again = run_picsift("text", str(text_workspace), "--no-enrich")
    assert again.returncode == 0 and "read 0 images (5 already read)" in again.stdout
    db = sqlite3.connect(text_workspace / ".picsift" / "catalog.sqlite")
    before = dict(db.execute("SELECT media_id, seconds FROM media_text").fetchall())
    other = run_picsift("text", str(text_workspace), "--no-enrich", "--translate-backend", "none")
    assert other.returncode == 0, other.stderr
    assert "read 0 images" in other.stdout
    after = dict(db.execute("SELECT media_id, seconds FROM media_text").fetchall())
    assert before == after  # OCR results untouched
    statuses = {s for (s,) in db.execute("SELECT translation_status FROM media_text WHERE n_blocks > 0")}
    assert statuses <= {"not-requested", "source-is-target"}


def test_search_by_written_words(text_workspace: Path) -> None:
    from picsift import open as open_workspace
    from picsift.analyses.text import search_text

    ws = open_workspace(text_workspace)
    hits = search_text(ws, "vecinos parque")
    assert [Path(p).name for p in hits["path"]] == ["shot_es.png"]
    assert "[vecinos]" in hits["snippet"].iloc[0]
    assert [Path(p).name for p in search_text(ws, "北京")["path"]] == ["shot_zh.png"]
    assert [Path(p).name for p in search_text(ws, "protest*")["path"]] == ["shot_en.png"]
    assert search_text(ws, "elephant").empty
    cli = run_picsift("search", str(text_workspace), "--text", "thousands people")
    assert cli.returncode == 0 and "shot_en.png" in cli.stdout


def test_online_backend_needs_the_disclosure(text_workspace: Path) -> None:
    refused = run_picsift("text", str(text_workspace), "--translate-backend", "deepl", "--api-key", "x")
    assert refused.returncode == 2
    assert "disclos" in refused.stderr.lower() and "Traceback" not in refused.stderr


def test_enrichment_columns_follow_the_english_text(text_workspace: Path) -> None:
    """English text and offline translations get sentiment and entities; untranslated
    Chinese gets none (never an English model on foreign text)."""
    pytest.importorskip("spacy", reason="the text extra is not installed")
    done = run_picsift("text", str(text_workspace), timeout=300)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(text_workspace / ".picsift" / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    rows = {r["text_language"]: r for r in db.execute("SELECT * FROM media_text WHERE n_blocks > 0")}
    english = rows["en"]
    assert english["sentiment"] in ("positive", "negative", "neutral")
    assert -1 <= english["polarity"] <= 1 and 0 <= english["subjectivity"] <= 1
    assert "protest" in english["text_clean"] and "12,000" not in english["text_clean"]
    spanish = rows["es"]
    assert spanish["translation_status"] == "translated" and "park" in spanish["text_english"]
    assert spanish["sentiment"] is not None
    chinese = rows["zh"]
    assert chinese["text_english"] is None and chinese["sentiment"] is None
    assert json.loads(chinese["entities"]) == []
    assert "no offline model for zh" in chinese["translation_status"]
