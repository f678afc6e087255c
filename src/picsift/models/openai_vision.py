"""Captions and answers from any OpenAI-compatible chat-completions endpoint (opt-in, online).

This is the one place where picsift sends *images* off the machine: OpenAI, a hosted provider
with an OpenAI-compatible API, or a server the user runs (vLLM, Ollama, LM Studio, llama.cpp).
Building a client therefore requires accepting :data:`DISCLOSURE` (``accept_disclosure=True`` or
``PICSIFT_ACCEPT_PRIVACY_DISCLOSURE=1``, the same switch as online translation). The API key is
read from an environment variable the user names, so it never appears on a command line or in
shell history. Only the standard library is used.

Each (image, prompt) pair is one request: the image as a base64 JPEG data URL (longer side at
most ``max_side`` pixels), the prompt as text. 429 and 5xx answers, timeouts and dropped
connections are retried with bounded exponential backoff that honours ``Retry-After``; whatever
still fails becomes an ``"error: ..."`` status for that image and prompt, never an exception out
of a batch.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from PIL import Image

from picsift.errors import PicsiftError
from picsift.text.translate import ACCEPT_ENV, disclosure_accepted

log = logging.getLogger(__name__)

DISCLOSURE = (
    "Describing images with an online model sends every image of the workspace (re-encoded as "
    "JPEG, at most 1024 pixels on the longer side), your prompts and questions, and your API key "
    "over the internet to the endpoint you chose: OpenAI, another provider, or the operator of "
    "the server at --api-base. Faces, people, places, documents and any text visible in the "
    "pictures leave your control; the provider may store, log or review them under its own "
    "terms, and may refuse some images. Do not send material that could identify or endanger "
    "sources, victims, minors or people at risk, and check that your ethics approval, data "
    "licences and data-protection rules allow it. A server you run yourself on this machine or "
    "your own network keeps the images there. Local models pulled with 'picsift models pull' "
    "send nothing anywhere."
)

CAPTION_PROMPT = "Describe this image in one or two factual sentences."
ANSWER_PROMPT = "{question}\nAnswer briefly, based only on what is visible in the image."

OK = "ok"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_HINTS = {400: "bad request", 401: "check the API key (--api-key-env)",
          403: "check the API key and its permissions", 404: "check --api-base and --model",
          413: "image too large", 429: "rate limited", 402: "payment required or quota exceeded"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Reply:
    """One (image, prompt) outcome: ``text`` only when ``status`` is "ok"."""

    text: str | None
    status: str


def require_disclosure(accept_disclosure: bool = False) -> None:
    """Refuse to send images anywhere until the user has accepted :data:`DISCLOSURE`."""
    if not disclosure_accepted(accept_disclosure):
        raise PicsiftError(
            f"describing images through an online API needs your consent first. {DISCLOSURE} "
            f"To accept, pass --accept-privacy-disclosure (accept_disclosure=True) or set the "
            f"environment variable {ACCEPT_ENV}=1; to stay offline, use a pulled model "
            "(--model blip-base) without --api-base."
        )


def image_data_url(image: Image.Image, max_side: int = 1024, quality: int = 85) -> str:
    """The picture as ``data:image/jpeg;base64,...``, longer side at most ``max_side``."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_url(api_base: str) -> str:
    """``{api_base}/chat/completions`` ("https://api.openai.com/v1" -> .../v1/chat/completions)."""
    base = api_base.strip().rstrip("/")
    if not base:
        raise PicsiftError("--api-base is empty: give the API's base URL, e.g. https://api.openai.com/v1")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Failed(Exception):
    """One attempt's failure, worded for an "error: ..." status; ``retry`` says if it may pass."""

    def __init__(self, message: str, retry: bool = False, wait: float | None = None) -> None:
        super().__init__(message)
        self.retry, self.wait = retry, wait


class OpenAIVisionClient:
    """Chat-completions client for images; one request per (image, prompt), bounded retries.

    ``api_key_env`` names the environment variable holding the key (None: send no key, as
    local servers need none). ``sleep`` is injectable so tests need not wait.
    """

    def __init__(self, model: str, api_base: str, api_key_env: str | None = None, *,
                 accept_disclosure: bool = False, timeout: float = 60.0, max_retries: int = 4,
                 max_wait: float = 60.0, backoff: float = 1.0, max_side: int = 1024,
                 max_tokens: int | None = 300, temperature: float | None = 0.0,
                 concurrency: int = 4, sleep: Callable[[float], None] = time.sleep) -> None:
        require_disclosure(accept_disclosure)
        if not model:
            raise PicsiftError("the API mode needs --model: the endpoint's model name, e.g. gpt-4o-mini")
        self.model, self.url = model, chat_url(api_base)
        self.api_key = self._key(api_key_env)
        self.timeout, self.max_retries, self.max_wait = timeout, max(0, max_retries), max_wait
        self.backoff, self.max_side = backoff, max_side
        self.max_tokens, self.temperature = max_tokens, temperature
        self.concurrency, self.sleep = max(1, concurrency), sleep
        parsed = urllib.parse.urlsplit(self.url)
        self.host = parsed.hostname or self.url
        if parsed.scheme != "https" and parsed.hostname not in _LOCAL_HOSTS:
            log.warning("endpoint %s is not https: images and key travel unencrypted", self.url)

    @staticmethod
    def _key(env: str | None) -> str | None:
        if not env:
            return None
        key = os.environ.get(env, "").strip()
        if not key:
            raise PicsiftError(f"the environment variable {env} (named by --api-key-env) is not "
                               f"set: export {env}=... with your API key, or leave out "
                               "--api-key-env for a server that needs no key")
        return key

    # --- public ------------------------------------------------------------------------------

    def ask(self, image: Image.Image | str, prompt: str) -> Reply:
        """One prompt about one image (a PIL image or an already-encoded data URL)."""
        url = image if isinstance(image, str) else image_data_url(image, self.max_side)
        body = self.request_body(url, prompt)
        attempt = 0
        while True:
            try:
                return Reply(self._parse(self._post(body)), OK)
            except _Failed as exc:
                if not exc.retry or attempt >= self.max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    return Reply(None, f"error: {exc}{tries}")
                wait = self._wait(attempt, exc.wait)
                log.info("%s; retrying in %.1f s", exc, wait)
                self.sleep(wait)
                attempt += 1

    def describe(self, images: list[Image.Image], prompts: list[str]) -> list[list[Reply]]:
        """For every image, one Reply per prompt (same order); requests run concurrently."""
        urls = [image_data_url(image, self.max_side) for image in images]
        jobs = [(i, j) for i in range(len(urls)) for j in range(len(prompts))]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(jobs)))) as pool:
            replies = list(pool.map(lambda job: self.ask(urls[job[0]], prompts[job[1]]), jobs))
        out: list[list[Reply]] = [[] for _ in urls]
        for (i, _j), reply in zip(jobs, replies, strict=True):
            out[i].append(reply)
        return out

    def request_body(self, image_url: str, prompt: str) -> dict[str, Any]:
        """The chat-completions request for one image and prompt."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": image_url}},
            ]}],
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    # --- plumbing ----------------------------------------------------------------------------

    def _wait(self, attempt: int, hinted: float | None) -> float:
        """Retry-After when the server gave one, else exponential backoff with jitter; capped."""
        if hinted is not None:
            return min(hinted, self.max_wait)
        return min(self.backoff * 2 ** attempt * (1 + random.random() / 4), self.max_wait)

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "picsift"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_failure(exc) from None
        except TimeoutError:
            raise _Failed(f"{self.host} timed out after {self.timeout:g} s", retry=True) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Failed(f"{self.host} timed out after {self.timeout:g} s", retry=True) from None
            raise _Failed(f"{self.host} unreachable: {exc.reason}", retry=True) from None
        except (OSError, HTTPException) as exc:
            raise _Failed(f"{self.host} connection failed: {exc!r}", retry=True) from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Failed(f"{self.host} returned malformed JSON") from None

    def _http_failure(self, exc: urllib.error.HTTPError) -> _Failed:
        wait = retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        detail = _error_detail(exc)
        exc.close()
        hint = _HINTS.get(exc.code) or ("provider-side error" if exc.code >= 500 else "")
        message = f"{self.host} HTTP {exc.code}" + (f" ({hint})" if hint else "")
        return _Failed(message + (f": {detail}" if detail else ""),
                       retry=exc.code in RETRY_STATUSES, wait=wait)

    def _parse(self, payload: Any) -> str:
        """The answer text of a chat-completions response, or _Failed saying what was wrong."""
        if isinstance(payload, dict) and payload.get("error"):
            raise _Failed(f"{self.host} error: {_message(payload['error'])}")
        try:
            choice = payload["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _Failed(f"{self.host} returned an unexpected response (no choices[0].message)") from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        text = " ".join(content.split()) if isinstance(content, str) else ""
        if not text:
            refusal = choice["message"].get("refusal")
            reason = choice.get("finish_reason")
            why = f"refused: {refusal}" if refusal else f"no text (finish_reason {reason})"
            raise _Failed(f"{self.host} returned {why}")
        return text


def _message(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("type") or error
    return str(error)[:200]


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The provider's own short explanation from an error body, if it sent one."""
    try:
        body = json.loads(exc.read(4096).decode(errors="replace"))
    except Exception:  # noqa: BLE001 - error bodies are optional and often not JSON
        return ""
    error = body.get("error") or body.get("message") if isinstance(body, dict) else None
    return _message(error) if error else ""
