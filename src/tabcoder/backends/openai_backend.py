"""`openai:<model>`: any OpenAI-compatible chat-completions endpoint (OpenAI, llama.cpp server, vLLM, Ollama).

Scope: one POST to `<base_url>/chat/completions` per call over the standard library's HTTP client
(no `openai` package needed), and reading every legal reply shape. The base URL includes the API
version, as with the `openai` package: `https://api.openai.com/v1` (default), `http://127.0.0.1:8080/v1`
for a local server.

Retry policy (docs/llm-faults.md): connection failures, HTTP 408, 429 and 5xx, and bodies that are not
JSON (truncated) are retried up to `max_retries` times (4; `TABCODER_LLM_RETRIES`), waiting 1, 2, 4, 8 s (times a random factor in
[0.5, 1], at most 30 s) or what the server's `Retry-After` asks (at most 60 s). Other 4xx are not retried.
A call with no answer within `timeout` seconds (`--llm-timeout`, 180 s by default) is not retried: a
server that hangs once usually hangs again, and the search should stop with a clear error at the limit.

Replies: `content` as a string or as a list of parts (`{"type": "text", "text": ...}`), `usage` missing,
partial or with numbers as strings (estimated from the text when missing), llama.cpp's `timings` (prompt
time); an empty `choices`, a reply without a message, or JSON that is not an object is an `LLMError` that
quotes the start of the body.

Why not the `openai` package: it would add httpx, pydantic and their pins to every install for one POST;
its retries treat a timeout like any error (retried, so a hang costs the timeout several times), and
its typed replies drop the `timings` field that llama.cpp servers send. The wire format is small and stable.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tabcoder.backends.base import (Backend, Completion, GenerationSettings, Messages, ModelStatus, env_int,
                                    register, register_status)
from tabcoder.errors import BackendError, LLMError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 180.0  # one call: a hosted model writes 1,536 tokens in well under a minute
DEFAULT_MAX_RETRIES = 4
RETRY_AFTER_MAX = 60.0
RETRIES_ENV = "TABCODER_LLM_RETRIES"
NO_KEY = "sk-no-key-required"  # local servers ignore the key but clients must send one
_RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx


class LLMTimeout(LLMError):
    """No answer within the per-call timeout."""


class _Retryable(Exception):
    """A failure worth another attempt; `wait` is a server-requested delay (Retry-After), if any."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class OpenAIBackend(Backend):
    """Chat completions over HTTP against an OpenAI-compatible server."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = NO_KEY,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.model_id = f"openai:{model}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
        }
        if settings.seed is not None:
            body["seed"] = settings.seed
        if settings.stop:
            body["stop"] = list(settings.stop)
        t0 = time.perf_counter()
        data = self._post_with_retries(json.dumps(body).encode())
        return self._parse(data, time.perf_counter() - t0, messages)

    def _post_with_retries(self, payload: bytes) -> dict[str, Any]:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._post(payload)
            except _Retryable as exc:
                if attempt + 1 == attempts:
                    raise LLMError(
                        f"{self.model_id}: request to {self.url} failed after {attempts} attempt(s): {exc}"
                    ) from exc
                delay = self._backoff(attempt, exc.wait)
                log.warning("%s: %s; retry %d/%d in %.1f s", self.model_id, exc, attempt + 1, self.max_retries, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return min(RETRY_AFTER_MAX, server_wait)
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        return delay * random.uniform(0.5, 1.0)

    def _post(self, payload: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._api_key}",
                "User-Agent": "tabcoder",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code in _RETRY_STATUSES or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}: {detail}", _retry_after(exc)) from exc
            hint = " (check OPENAI_API_KEY / --api-key)" if exc.code in (401, 403) else ""
            raise LLMError(f"{self.model_id}: {self.url} answered HTTP {exc.code}: {detail}{hint}") from exc
        except TimeoutError as exc:
            raise self._timeout() from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timeout() from exc
            raise _Retryable(f"cannot connect: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"connection failed: {exc!r}") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise _Retryable(f"the reply is not valid JSON (truncated?): {raw[:200]!r}") from exc
        if not isinstance(data, dict):
            raise LLMError(f"{self.model_id}: {self.url} answered JSON that is not an object: {raw[:200]!r}")
        return data

    def _timeout(self) -> LLMTimeout:
        return LLMTimeout(f"{self.model_id}: no answer from {self.url} within {self.timeout:g} s (--llm-timeout); "
                          "the server is hung or too slow for this limit: check it, or raise --llm-timeout")

    def _parse(self, data: dict[str, Any], seconds: float, messages: Messages) -> Completion:
        choices = data.get("choices")
        if "error" in data and not choices:
            raise LLMError(f"{self.model_id}: the server answered an error: {str(data['error'])[:300]}")
        if not isinstance(choices, list) or not choices:
            raise LLMError(f"{self.model_id}: the reply has no choices: {json.dumps(data)[:300]}")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise LLMError(f"{self.model_id}: the reply's choices[0] has no message: {json.dumps(data)[:300]}")
        text = message_text(message.get("content"))
        if text is None:
            raise LLMError(f"{self.model_id}: the reply's message content is neither text nor a list of parts: "
                           f"{json.dumps(message)[:300]}")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        details = usage.get("prompt_tokens_details")
        prompt_tokens = _count(usage.get("prompt_tokens"))
        completion_tokens = _count(usage.get("completion_tokens"))
        if prompt_tokens is None or completion_tokens is None:  # ~4 characters per token
            log.debug("%s: no usable usage in the reply; token counts are estimates", self.model_id)
            if prompt_tokens is None:
                prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4
            if completion_tokens is None:
                completion_tokens = len(text) // 4
        cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
        timings = data.get("timings")
        if not isinstance(timings, dict):
            timings = {}
        prompt_ms = _number(timings.get("prompt_ms"))
        finish = choice.get("finish_reason")
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=seconds,
            model=self.model_id,
            prompt_seconds=None if prompt_ms is None else prompt_ms / 1000,
            cached_prompt_tokens=None if cached is None else min(cached, prompt_tokens),
            finish_reason=None if finish is None else str(finish),
        )


def message_text(content: Any) -> str | None:
    """A message's text: a string, a list of parts (text parts joined; others skipped), or None -> ""."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return None


def _number(value: Any) -> float | None:
    """A non-negative number from an int, float or numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - best effort, for the message only
        return exc.reason or ""
    try:
        message = json.loads(body)["error"]["message"]
        return str(message)[:500]
    except (ValueError, KeyError, TypeError):
        return body[:500] or str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


OPENAI_SETTINGS = ("base_url", "api_key", "llm_timeout", "max_retries")


@register("openai", forms=("openai:<model>",), settings=OPENAI_SETTINGS)
def _openai_factory(rest: str, settings: dict[str, Any]) -> Backend:
    if not rest:
        raise BackendError("openai needs a model name: openai:<model>, e.g. openai:gpt-4o-mini")
    base_url = settings.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    api_key = settings.get("api_key") or os.environ.get("OPENAI_API_KEY") or None
    if base_url is None and api_key is None:
        raise BackendError(
            "openai backend needs an API key or a server: set OPENAI_API_KEY (or --api-key), or point "
            "OPENAI_BASE_URL / --base-url at an OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1)"
        )
    retries = settings.get("max_retries")
    return OpenAIBackend(
        rest,
        base_url=base_url or DEFAULT_BASE_URL,
        api_key=api_key or NO_KEY,
        timeout=float(settings.get("llm_timeout") or DEFAULT_TIMEOUT),
        max_retries=int(retries) if retries is not None else env_int(RETRIES_ENV, DEFAULT_MAX_RETRIES, minimum=0),
    )


@register_status
def _openai_status() -> list[ModelStatus]:
    base_url = os.environ.get("OPENAI_BASE_URL")
    has_key = bool(os.environ.get("OPENAI_API_KEY"))
    if base_url or has_key:
        detail = f"server {base_url or DEFAULT_BASE_URL}, {'API key set' if has_key else 'no API key (none sent)'}"
        return [ModelStatus("openai:<model>", True, detail)]
    return [
        ModelStatus(
            "openai:<model>",
            False,
            "set OPENAI_API_KEY, or OPENAI_BASE_URL / --base-url for a local OpenAI-compatible server",
        )
    ]
