"""The journal: one JSON-serialisable record per attempt, appended to `journal.jsonl` as it happens.

Each record is a complete line written with one `write` loop and fsynced, so a crash (kill -9, power
loss) leaves at worst a truncated last line. `Journal.load` skips unreadable lines, and with
`repair=True` (what `resume` uses) cuts a truncated tail off the file before new lines are appended.

An attempt is written twice: once *pending*, as soon as the model has written its script (so an
interrupted run never loses an LLM reply), and once complete, after it was run and graded. A later
line for the same index replaces an earlier one; a pending record without a complete one is an
attempt to evaluate again on resume, never to generate again.
"""

from __future__ import annotations

import bisect
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
    prefill: str | None = None  # the start of the reply, written by the harness (the model continued it)


@dataclass(frozen=True)
class Status:
    """What became of an attempt. `kind`: pending | valid | nocode (no code block) | repeat (the script of an
    earlier attempt, not run) | timeout | error (the script failed) | invalid (ran, but the submission did not
    pass the checks) | edit (the reply's edit did not apply to the parent's script). `detail`: the score
    (valid), the earlier attempt's index (repeat), the error's last line (error), the first problem
    (invalid), the first line of why the edit did not apply (edit)."""

    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind not in ("valid", "pending")


@dataclass
class Attempt:
    """One node of the search: a script, how it ran, how it graded, and what the model made of it."""

    index: int
    parent: int | None
    kind: str  # "baseline" (the harness's script, no model call) | "draft" | "repair" | "improve"
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
    idea: str | None = None  # the approach a draft was asked for, or the single change an improvement made
    idea_source: str | None = None  # who named the idea: "harness" (its fixed list) | "model" (its reflection)
    edit_format: str | None = None  # what the reply was: "search-replace" | "functions" | "whole" | "none"
    edit_error: str | None = None  # why the reply's edit did not apply to the parent's script (then code is None)
    gain: float | None = None  # validation score minus the baseline's, signed so that positive is better
    note: str | None = None  # what the harness changed for this step (after a repeated script, for example)
    temperature: float | None = None  # the sampling temperature of the call that wrote the script
    duplicate_of: int | None = None  # set when the script repeats an earlier attempt (then it is not run)
    calls: list[LLMCall] = field(default_factory=list)
    started_at: float = 0.0  # seconds since the run started (a resumed run keeps counting)
    finished_at: float | None = None  # seconds since the run started, when the record was completed
    round: int | None = None  # tree search: the round whose plan made this attempt
    pending: bool = False  # written before evaluation; a complete record follows

    @property
    def score_value(self) -> Score:
        return Score(self.score if self.valid else None, self.metric, self.greater_is_better)

    @property
    def tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    def status(self) -> Status:
        """What became of this attempt: the one place that decides it (prompts, progress and report render it)."""
        if self.pending:
            return Status("pending")
        if self.valid:
            return Status("valid", str(self.score_value))
        if self.edit_error is not None:
            return Status("edit", self.edit_error.splitlines()[0][:120])
        if self.code is None:
            return Status("nocode")
        if self.duplicate_of is not None:
            return Status("repeat", str(self.duplicate_of))
        if self.timed_out:
            return Status("timeout")
        if self.exit_code not in (0, None):
            lines = (self.traceback or self.stderr or "").strip().splitlines()
            return Status("error", lines[-1][:120] if lines else f"exit {self.exit_code}")
        return Status("invalid", self.problems[0][:120] if self.problems else "")

    @property
    def llm_seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Attempt":
        data = dict(data)
        call_fields = {f.name for f in dataclasses.fields(LLMCall)}
        # journals written before calls named their attempt (`about`) default to the attempt's own index
        data["calls"] = [LLMCall(**{"about": data.get("index", 0), **{k: v for k, v in c.items() if k in call_fields}})
                         for c in data.get("calls", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Journal:
    """Attempts of one run, in index order, mirrored to an append-only JSONL file.

    `attempts` holds complete attempts; `pending` those whose script is written but not yet graded.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.attempts: list[Attempt] = []
        self.pending: dict[int, Attempt] = {}

    def begin(self, attempt: Attempt) -> None:
        """Record an attempt whose script exists but has not been run and graded yet."""
        attempt.pending = True
        self.pending[attempt.index] = attempt
        self._write_line(attempt)

    def append(self, attempt: Attempt) -> None:
        """Record a complete attempt (kept in index order, whatever order attempts complete in)."""
        attempt.pending = False
        self.pending.pop(attempt.index, None)
        bisect.insort(self.attempts, attempt, key=lambda a: a.index)
        self._write_line(attempt)

    def update(self, attempt: Attempt) -> None:
        """Record a later change to an attempt (its reflection) as a new line; `load` keeps the last."""
        self._write_line(attempt)

    def _write_line(self, attempt: Attempt) -> None:
        """Append the attempt's record as one fsynced line, when the journal has a file."""
        if self.path is None:
            return
        data = (json.dumps(attempt.to_dict(), ensure_ascii=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path, *, repair: bool = False) -> "Journal":
        """Read a journal; the last line per index wins. `repair=True` first cuts an unfinished last line
        off the file (a crash mid-write), so lines appended afterwards start on a line of their own."""
        path = Path(path)
        if repair:
            cut_unfinished_line(path)
        journal = cls(path)
        by_index: dict[int, Attempt] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                attempt = Attempt.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                log.warning("skipping unreadable journal line %d of %s: %s", number, path, exc)
                continue
            by_index[attempt.index] = attempt
        for index in sorted(by_index):
            attempt = by_index[index]
            if attempt.pending:
                journal.pending[index] = attempt
            else:
                journal.attempts.append(attempt)
        return journal

    def ranked(self) -> list[Attempt]:
        """Valid attempts, best validation score first (earliest first on ties)."""
        return sorted((a for a in self.attempts if a.valid), key=lambda a: a.score_value, reverse=True)

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

    def get(self, index: int) -> Attempt | None:
        for attempt in self.attempts:
            if attempt.index == index:
                return attempt
        return self.pending.get(index)

    @property
    def started(self) -> int:
        """Model attempts begun so far, complete plus pending (the harness's baseline is not one)."""
        return sum(a.kind != "baseline" for a in self.attempts) + sum(a.kind != "baseline" for a in self.pending.values())

    def baseline(self) -> Attempt | None:
        """The harness's baseline attempt (index 0), when the run has one."""
        found = self.get(0)
        return found if found is not None and found.kind == "baseline" else None

    @property
    def next_index(self) -> int:
        return max([a.index for a in self.attempts] + list(self.pending) + [0]) + 1

    @property
    def tokens(self) -> int:
        return sum(a.tokens for a in self.attempts) + sum(a.tokens for a in self.pending.values())

    @property
    def elapsed(self) -> float:
        """Seconds of the run that the journal accounts for (the latest start or finish it records)."""
        times = [a.finished_at or 0.0 for a in self.attempts] + [a.started_at for a in self.attempts]
        times += [a.started_at for a in self.pending.values()]
        return max(times + [0.0])

    def calls_made(self) -> int:
        """LLM calls the run has made, as far as the journal knows: every recorded call, plus reflections
        stored on an attempt whose call record was lost with an interrupted step."""
        everything = self.attempts + list(self.pending.values())
        recorded = sum(len(a.calls) for a in everything)
        reflected_on = {c.about for a in everything for c in a.calls if c.purpose == "reflection"}
        orphans = sum(1 for a in self.attempts if a.reflection is not None and a.index not in reflected_on)
        return recorded + orphans


def cut_unfinished_line(path: Path) -> int:
    """Truncate `path` after its last newline; returns the number of bytes cut (0 for a clean file)."""
    path = Path(path)
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    log.warning("journal %s ends with an unfinished line (%d bytes): cutting it off", path, len(data) - keep)
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return len(data) - keep
