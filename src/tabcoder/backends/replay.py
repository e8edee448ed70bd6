"""Backends that answer from a script instead of a model: `replay:<file.jsonl>` and `ScriptedBackend`.

Scope: `ReplayBackend` returns recorded responses in order from a JSONL file. Accepted lines:
`{"text": ..., "prompt_tokens"?, "completion_tokens"?, "seconds"?, "model"?}`, an event holding such
an object under `"completion"`, or a run's `journal.jsonl` attempt record (`index`, `response`,
`reflection`, `calls`): attempts are taken in index order (a later line for the same index replaces
the earlier one) and each call replays the response ("code") or the reflection ("reflection").
Other lines are skipped. `ScriptedBackend` is the in-memory fake for tests: queue texts (or
exceptions to raise, or callables `messages -> text`) and inspect what it was asked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Union

from tabcoder.backends.base import (Backend, Completion, GenerationSettings, Messages, ModelStatus, register,
                                    register_status)
from tabcoder.errors import BackendError, LLMError

log = logging.getLogger(__name__)


def _approx_tokens(text: str) -> int:
    return len(text.split())


def _record_from_line(obj: Any) -> dict[str, Any] | None:
    """The response record in one JSONL object, or None if the line holds none."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("text"), str):
        return obj
    inner = obj.get("completion")
    if isinstance(inner, dict) and isinstance(inner.get("text"), str):
        return inner
    if isinstance(inner, str):
        return {"text": inner}
    return None


def _is_attempt(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("index"), int) and isinstance(obj.get("response"), str)


def _records_from_attempt(attempt: dict[str, Any], attempts: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The model replies made during one journal attempt's step, in call order, with their recorded cost.
    A reflection call's text is stored on the attempt it reflected on (`about`)."""
    calls = [c for c in attempt.get("calls") or [] if isinstance(c, dict)] or [{"purpose": "code"}]
    out = []
    for call in calls:
        if call.get("purpose", "code") == "reflection":
            about: Any = call.get("about")  # a JSON value: the index of the attempt reflected on, if recorded
            text = attempts.get(about, attempt).get("reflection")
        else:
            text = attempt["response"]
        if isinstance(text, str):
            out.append({**{k: v for k, v in call.items() if k not in ("purpose", "about")}, "text": text})
    return out


def load_recorded(path: Path) -> list[dict[str, Any]]:
    """The recorded responses in `path`, in order. Raises BackendError if none can be read."""
    records = []
    attempts: dict[int, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BackendError(f"cannot read replay file {path}: {exc}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            if lineno == len(lines):  # an interrupted run can leave a truncated last line
                log.warning("replay file %s: skipping unreadable last line %d", path, lineno)
                continue
            raise BackendError(f"replay file {path}, line {lineno}: not JSON ({exc})") from exc
        if _is_attempt(obj):
            attempts[obj["index"]] = obj
            continue
        record = _record_from_line(obj)
        if record is not None:
            records.append(record)
    if attempts:  # a run journal: its attempts define the order
        records = [r for index in sorted(attempts) for r in _records_from_attempt(attempts[index], attempts)]
    if not records:
        raise BackendError(
            f"replay file {path} holds no responses (expected JSONL lines with \"text\" "
            f"or {{\"completion\": {{\"text\": ...}}}})"
        )
    return records


class ReplayBackend(Backend):
    """Returns the responses recorded in a JSONL file, in order; running out is an LLMError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._records = load_recorded(self.path)
        self._next = 0
        self.model_id = f"replay:{self.path}"

    @property
    def remaining(self) -> int:
        return len(self._records) - self._next

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        if self._next >= len(self._records):
            raise LLMError(
                f"replay file {self.path} is exhausted: it recorded {len(self._records)} response(s), "
                f"call {self._next + 1} asked for another"
            )
        record = self._records[self._next]
        self._next += 1
        text = record["text"]

        def _opt_int(key: str) -> int | None:
            value = record.get(key)
            return int(value) if isinstance(value, (int, float)) else None

        prompt_tokens = _opt_int("prompt_tokens")
        completion_tokens = _opt_int("completion_tokens")
        seconds = record.get("seconds")
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens if prompt_tokens is not None else sum(
                _approx_tokens(str(m.get("content", ""))) for m in messages
            ),
            completion_tokens=completion_tokens if completion_tokens is not None else _approx_tokens(text),
            seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
            model=str(record.get("model") or self.model_id),
            prompt_seconds=record.get("prompt_seconds"),
            cached_prompt_tokens=_opt_int("cached_prompt_tokens"),
            finish_reason=record.get("finish_reason") or "stop",
        )


@register("replay", forms=("replay:<file.jsonl>",))
def _replay_factory(rest: str, settings: dict[str, Any]) -> Backend:
    if not rest:
        raise BackendError("replay needs a file: replay:<file.jsonl>")
    path = Path(rest).expanduser()
    if not path.is_file():
        raise BackendError(f"replay file not found: {path} (from model string 'replay:{rest}')")
    return ReplayBackend(path)


@register_status
def _replay_status() -> list[ModelStatus]:
    return [ModelStatus("replay:<file.jsonl>", True, "replays recorded responses (or a run's journal) in order")]


Response = Union[str, BaseException, Callable[[Messages], str]]


class RecordedCall(list):
    """The messages of one call to a ScriptedBackend (a list of message dicts) plus `.options`."""

    options: dict[str, Any]

    def __init__(self, messages: Iterable[dict[str, str]], options: dict[str, Any]) -> None:
        super().__init__(dict(m) for m in messages)
        self.options = options


class ScriptedBackend(Backend):
    """In-memory fake for tests. Each call pops the next queued response: a text is returned, an
    exception is raised, a callable is called with the messages. `history` holds one RecordedCall
    per call (the messages, with the options in `.options`). Token counts are word counts."""

    model_id = "scripted"

    def __init__(self, responses: Iterable[Response] | None = None) -> None:
        self._queue: deque[Response] = deque(responses or ())
        self._lock = threading.Lock()
        self.history: list[RecordedCall] = []

    def enqueue(self, *responses: Response) -> ScriptedBackend:
        with self._lock:
            self._queue.extend(responses)
        return self

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        t0 = time.perf_counter()
        with self._lock:
            self.history.append(RecordedCall(messages, settings.options()))
            if not self._queue:
                raise LLMError(f"ScriptedBackend has no response queued for call {len(self.history)}")
            response = self._queue.popleft()
        if isinstance(response, BaseException):
            raise response
        text = response(messages) if callable(response) else response
        return Completion(
            text=text,
            prompt_tokens=sum(_approx_tokens(str(m.get("content", ""))) for m in messages),
            completion_tokens=_approx_tokens(text),
            seconds=time.perf_counter() - t0,
            model=self.model_id,
            finish_reason="stop",
        )
