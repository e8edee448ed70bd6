"""`openai:<model>`: any OpenAI-compatible chat-completions endpoint (OpenAI, llama.cpp server, vLLM, Ollama).

Scope: one POST to `<base_url>/chat/completions` per call over the standard library's HTTP client
(no `openai` package needed), with a per-request timeout, bounded retries with exponential backoff
and jitter on connection errors, timeouts, 429 and 5xx (never on other 4xx), and token counts from
the response's `usage`. The base URL includes the API version, as with the `openai` package:
`https://api.openai.com/v1` (default), `http://127.0.0.1:8080/v1` for a local server.
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

from tabcoder.backends.base import Backend, Completion, Messages, ModelStatus, register, register_status
from tabcoder.errors import BackendError, LLMError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 4
NO_KEY = "sk-no-key-required"  # local servers ignore the key but clients must send one
_RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx


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

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float = 0.2,
        top_p: float = 0.95,
        max_tokens: int = 1024,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = stop
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
            return min(self.backoff_max, server_wait)
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
            raise _Retryable(f"no answer within {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(f"no answer within {self.timeout:g} s") from exc
            raise _Retryable(f"cannot connect: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"connection failed: {exc!r}") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise LLMError(f"{self.model_id}: {self.url} returned invalid JSON: {raw[:200]!r}") from exc
        if not isinstance(data, dict):
            raise LLMError(f"{self.model_id}: unexpected response: {raw[:200]!r}")
        return data

    def _parse(self, data: dict[str, Any], seconds: float, messages: Messages) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"{self.model_id}: response has no choices[0].message: {str(data)[:300]}") from exc
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        if prompt_tokens is None or completion_tokens is None:  # ~4 characters per token
            log.debug("%s: no usage in response; token counts are estimates", self.model_id)
            prompt_tokens = prompt_tokens if prompt_tokens is not None else sum(
                len(str(m.get("content") or "")) for m in messages
            ) // 4
            completion_tokens = completion_tokens if completion_tokens is not None else len(text) // 4
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return Completion(
            text=text,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            seconds=seconds,
            model=self.model_id,
            cached_prompt_tokens=int(cached) if cached is not None else None,
            finish_reason=choice.get("finish_reason"),
        )


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


OPENAI_SETTINGS = ("base_url", "api_key", "timeout", "max_retries")


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
    return OpenAIBackend(
        rest,
        base_url=base_url or DEFAULT_BASE_URL,
        api_key=api_key or NO_KEY,
        timeout=float(settings.get("timeout", DEFAULT_TIMEOUT)),
        max_retries=int(settings.get("max_retries", DEFAULT_MAX_RETRIES)),
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
