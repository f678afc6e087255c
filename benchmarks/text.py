#!/usr/bin/env python3
"""Benchmark of `picsift text`: OCR accuracy per engine and script, and end-to-end speed.

1. Per engine, on the rendered set in tests/data/text (memes and screenshots in English,
   German, French, Spanish, Portuguese, Ukrainian, Russian, Arabic and Chinese; rotated,
   small and low-contrast cases; photos without text): character error rate and seconds
   per image for RapidOCR alone, tesseract alone (whole image, all language packs) and
   picsift's hybrid (RapidOCR lines, tesseract for scripts RapidOCR lacks).
2. End to end: `picsift text` (scan excluded) on a mixed corpus where most images carry no
   text, as scraped corpora do: images/s with the default workers, OCR only and with
   translation + enrichment.

    .venv/bin/python benchmarks/text.py [--copies 6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
DATA = REPO / "tests" / "data" / "text"
OUT = REPO / "bench-output" / "text"


def cer(reference: str, hypothesis: str) -> float:
    from test_text import cer as _cer  # one definition of the metric, shared with the tests

    return _cer(reference, hypothesis)


def tesseract_whole(image: Image.Image, languages: str) -> str:
    import io

    png = io.BytesIO()
    image.save(png, "PNG")
    done = subprocess.run(["tesseract", "stdin", "stdout", "-l", languages, "--psm", "3"],
                          input=png.getvalue(), capture_output=True, check=False)
    return done.stdout.decode("utf-8", errors="replace")


def engines() -> dict[str, object]:
    from picsift.text.ocr import OcrEngine, OcrOptions

    hybrid = OcrEngine(OcrOptions())
    rapid = OcrEngine(OcrOptions(tesseract=False))
    return {
        "rapidocr": lambda im: rapid.read(im).text,
        "tesseract": lambda im: tesseract_whole(im, "eng+deu+fra+spa+por+rus+ukr+ara+chi_sim"),
        "hybrid (picsift)": lambda im: hybrid.read(im).text,
    }


def accuracy_table() -> None:
    truth = json.loads((DATA / "truth.json").read_text())
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, list[float]] = defaultdict(list)
    per_image: dict[str, dict[str, float]] = defaultdict(dict)
    for name, read in engines().items():
        for case in truth:
            image = Image.open(DATA / case["file"]).convert("RGB")
            read(image)  # warm (first call loads models)
            started = time.perf_counter()
            text = read(image)
            seconds[name].append(time.perf_counter() - started)
            error = cer(" ".join(case["lines"]), text.replace("\n", " ")) if case["lines"] else float(bool(text.strip()))
            key = f"{case['script']}/{case['kind']}"
            rows[name][key].append(error)
            rows[name]["ALL"].append(error)
            per_image[case["file"]][name] = error
    keys = sorted({k for r in rows.values() for k in r if k != "ALL"}) + ["ALL"]
    names = list(rows)
    print("\nCER by script/kind (lower is better; photos: 1 if any text was invented)")
    print(f"{'group':22s}" + "".join(f"{n:>18s}" for n in names))
    for k in keys:
        print(f"{k:22s}" + "".join(f"{np.mean(rows[n][k]):18.3f}" for n in names))
    print(f"{'s/image (1 thread)':22s}" + "".join(f"{np.mean(seconds[n]):18.2f}" for n in names))
    print("\nCER per image")
    print(f"{'image':26s}" + "".join(f"{n:>18s}" for n in names))
    for image, errors in per_image.items():
        print(f"{image:26s}" + "".join(f"{errors[n]:18.3f}" for n in names))


def mixed_corpus(copies: int) -> Path:
    """The text set once plus `copies` variants of every demo photo (no text): ~80 % no text."""
    folder = OUT / "mixed"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in DATA.glob("*.*"):
        if path.suffix != ".json":
            shutil.copy(path, folder / path.name)
    photos = sorted((REPO / "src" / "picsift" / "demo" / "corpus" / "photos").glob("*"))
    for n in range(copies):
        for photo in photos:
            image = Image.open(photo).convert("RGB")
            w, h = image.size
            image = image.crop((n * 7, n * 5, w - n * 3, h - n * 4)).resize((max(64, w - n * 20), max(64, h - n * 15)))
            image.save(folder / f"{photo.stem}_{n}.jpg", quality=85)
    return folder


def end_to_end(copies: int) -> None:
    folder = mixed_corpus(copies)
    picsift = [sys.executable, "-m", "picsift"]
    subprocess.run([*picsift, "scan", str(folder)], check=True, capture_output=True)
    n = sum(1 for p in folder.iterdir() if p.is_file())
    print(f"\nend to end on {n} images ({len(list(DATA.glob('*.*'))) - 3} with text), default workers")
    for label, extra in (("OCR + language only", ["--no-enrich", "--translate-backend", "none"]),
                         ("then translate + enrich (OCR stored)", [])):
        if label.startswith("OCR"):
            shutil.rmtree(folder / ".picsift")
            subprocess.run([*picsift, "scan", str(folder)], check=True, capture_output=True)
        started = time.perf_counter()
        done = subprocess.run([*picsift, "text", str(folder), *extra], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr)
        print(f"  {label:28s} {elapsed:7.1f} s  {n / elapsed:6.2f} images/s  (incl. ~2 s start-up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="variants of each demo photo (no text)")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    if not args.skip_accuracy:
        accuracy_table()
    end_to_end(args.copies)


if __name__ == "__main__":
    main()
