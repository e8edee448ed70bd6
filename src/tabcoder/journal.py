"""The journal: one JSON-serialisable record per attempt, appended to `journal.jsonl` as it happens.

Each record is a complete line written with a single `write` and fsynced, so an interrupted run leaves
at worst a truncated last line, which `Journal.load` skips.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tabcoder.metrics import Score

log = logging.getLogger(__name__)


@dataclass
class LLMCall:
    """One call to the model: what it was for, and its cost."""

    purpose: str  # "code" | "reflection"
    about: int  # index of the attempt the call wrote (code) or reflected on (reflection)
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    prompt_seconds: float | None = None
    cached_prompt_tokens: int | None = None
    finish_reason: str | None = None


@dataclass
class Attempt:
    """One node of the search: a script, how it ran, how it graded, and what the model made of it."""

    index: int
    parent: int | None
    kind: str  # "draft" | "repair" | "improve"
    messages: list[dict[str, str]]
    response: str
    code: str | None
    exit_code: int | None = None
    timed_out: bool = False
    killed_by: str | None = None
    run_seconds: float = 0.0
    peak_memory_mb: float | None = None
    stdout: str = ""
    stderr: str = ""
    traceback: str | None = None
    valid: bool = False
    score: float | None = None
    metric: str = ""
    greater_is_better: bool = True
    problems: list[str] = field(default_factory=list)
    feedback: str = ""
    reflection: str | None = None
    idea: str | None = None  # the single change an improvement step asked for
    duplicate_of: int | None = None  # set when the script repeats an earlier attempt (then it is not run)
    calls: list[LLMCall] = field(default_factory=list)
    started_at: float = 0.0

    @property
    def score_value(self) -> Score:
        return Score(self.score if self.valid else None, self.metric, self.greater_is_better)

    @property
    def tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    @property
    def llm_seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Attempt":
        data = dict(data)
        data["calls"] = [LLMCall(**c) for c in data.get("calls", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Journal:
    """Attempts of one run, in order, mirrored to an append-only JSONL file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.attempts: list[Attempt] = []

    def append(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        if self.path is not None:
            self._write_line(attempt.to_dict())

    def update(self, attempt: Attempt) -> None:
        """Record a later change to an attempt (its reflection) as a new line; `load` keeps the last."""
        if self.path is not None:
            self._write_line(attempt.to_dict())

    def _write_line(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path) -> "Journal":
        journal = cls(path)
        by_index: dict[int, Attempt] = {}
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                attempt = Attempt.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as exc:
                log.warning("skipping unreadable journal line %d of %s: %s", number, path, exc)
                continue
            by_index[attempt.index] = attempt
        journal.attempts = [by_index[i] for i in sorted(by_index)]
        return journal

    def best(self) -> Attempt | None:
        """The valid attempt with the best score (earliest on ties), or None."""
        valid = [a for a in self.attempts if a.valid]
        if not valid:
            return None
        best = valid[0]
        for attempt in valid[1:]:
            if attempt.score_value > best.score_value:
                best = attempt
        return best

    @property
    def tokens(self) -> int:
        return sum(a.tokens for a in self.attempts)
