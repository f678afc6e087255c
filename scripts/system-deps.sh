#!/usr/bin/env bash
# Debian packages picsift uses when present: tesseract (OCR of Cyrillic, Arabic, Greek...
# scripts that the pip-installed OCR model cannot read) and apertium (offline es->en
# translation). picsift runs without them, reading Latin/Chinese text only and marking
# other languages untranslated; `make install` calls this script, which installs them only
# where it can (root with apt-get) and otherwise says what to install.
set -uo pipefail
PACKAGES="tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-spa \
tesseract-ocr-por tesseract-ocr-ita tesseract-ocr-rus tesseract-ocr-ukr tesseract-ocr-ara \
tesseract-ocr-chi-sim apertium apertium-eng-spa"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
        || echo "warning: could not install$missing; picsift text will read Latin/Chinese only"
else
    echo "note: for OCR of Cyrillic/Arabic/... and offline Spanish translation, install:$missing"
    echo "      (Debian/Ubuntu: sudo apt-get install$missing)"
fi
exit 0
