"""The progress events the library emits, one frozen dataclass per kind: what each kind carries, written down.

A run, CAAFE, a bench and a LoRA training report progress to a callback `on_event(kind: str, data: dict)`.
Emitters build the event's dataclass here (`AttemptEnd(attempt=..., best=...)`) and hand it to `emit_event`,
which calls the callback with `event.KIND` and `event_data(event)`: so a misspelt or missing field is a
`TypeError` where the event is made, and the fields of every kind are listed in one place. `EVENTS` maps each
kind to its class; the printer (`tabcoder.cli.progress.Progress`) checks received data against it in strict mode.

What it does not do: the callback contract stays `(kind, data)` with a plain dict (users and tests keep
receiving dicts, never these objects); `event_data` is shallow (the values are the very objects the emitter
passed: a `Task`, an `Attempt`, a list, never copied); nothing here validates the values' types at run time.
The kind is the class attribute `KIND`, not `kind`, because `attempt_start` carries a field named `kind`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from tabcoder.backends.base import Completion
    from tabcoder.bench.cells import CellOutcome, CellSpec
    from tabcoder.bench.matrix import BenchSummary
    from tabcoder.caafe.result import CaafeResult, Proposal
    from tabcoder.config import RunConfig
    from tabcoder.journal import Attempt
    from tabcoder.metrics.score import Score
    from tabcoder.runner import Result
    from tabcoder.sft.model import BaseModel
    from tabcoder.task import Task

EventHandler = Callable[[str, dict], None]


@dataclass(frozen=True)
class Event:
    """The base of every event; `KIND` is the string the callback receives."""

    KIND: ClassVar[str] = ""


# --------------------------------------------------------------------------- a run (run / resume)


@dataclass(frozen=True)
class RunStart(Event):
    KIND: ClassVar[str] = "run_start"
    run_dir: Path
    task: Task
    config: RunConfig
    model: str
    isolation: dict


@dataclass(frozen=True)
class Resume(Event):
    KIND: ClassVar[str] = "resume"
    attempts: int
    pending: list[int]


@dataclass(frozen=True)
class AttemptStart(Event):
    KIND: ClassVar[str] = "attempt_start"
    index: int
    kind: str  # the attempt's kind (draft, debug, improve, ...)
    parent: int | None


@dataclass(frozen=True)
class LlmStart(Event):
    KIND: ClassVar[str] = "llm_start"
    purpose: str
    about: int
    timeout: float | None


@dataclass(frozen=True)
class LlmDone(Event):
    KIND: ClassVar[str] = "llm_done"
    purpose: str


@dataclass(frozen=True)
class Llm(Event):
    KIND: ClassVar[str] = "llm"
    purpose: str
    completion: Completion


@dataclass(frozen=True)
class Reflection(Event):
    KIND: ClassVar[str] = "reflection"
    index: int
    text: str


@dataclass(frozen=True)
class AttemptEnd(Event):
    KIND: ClassVar[str] = "attempt_end"
    attempt: Attempt
    best: Attempt | None


@dataclass(frozen=True)
class RoundStart(Event):
    KIND: ClassVar[str] = "round_start"
    round: int
    actions: list[tuple[str, int | None]]  # (kind, parent) of each planned attempt


@dataclass(frozen=True)
class Interrupted(Event):
    KIND: ClassVar[str] = "interrupted"
    attempts: int


@dataclass(frozen=True)
class SearchCut(Event):
    KIND: ClassVar[str] = "search_cut"
    error: str
    attempts: int
    valid: int


@dataclass(frozen=True)
class ConfirmStart(Event):
    KIND: ClassVar[str] = "confirm_start"
    candidates: list[int]
    folds: int


@dataclass(frozen=True)
class FinalStart(Event):
    KIND: ClassVar[str] = "final_start"
    attempt: Attempt
    workspace: Path
    label: str | None = None  # what is refit when it is not one attempt (an ensemble)


@dataclass(frozen=True)
class FinalEnd(Event):
    KIND: ClassVar[str] = "final_end"
    attempt: Attempt
    ok: bool
    problems: list[str]
    seconds: float


@dataclass(frozen=True)
class EnsembleEnd(Event):
    KIND: ClassVar[str] = "ensemble_end"
    members: str  # e.g. "attempt 2 (6/10), attempt 0 (4/10)"
    chosen: bool
    reason: str


@dataclass(frozen=True)
class RunEnd(Event):
    KIND: ClassVar[str] = "run_end"
    result: Result


@dataclass(frozen=True)
class Report(Event):
    KIND: ClassVar[str] = "report"
    path: Path


# --------------------------------------------------------------------------- CAAFE


@dataclass(frozen=True)
class CaafeStart(Event):
    KIND: ClassVar[str] = "caafe_start"
    task: Task
    n_features: int
    base: Score
    rows: int


@dataclass(frozen=True)
class CaafeProposal(Event):
    KIND: ClassVar[str] = "caafe_proposal"
    proposal: Proposal
    metric: str


@dataclass(frozen=True)
class CaafeEnd(Event):
    KIND: ClassVar[str] = "caafe_end"
    result: CaafeResult


# --------------------------------------------------------------------------- a bench


@dataclass(frozen=True)
class BenchStart(Event):
    KIND: ClassVar[str] = "bench_start"
    summary: BenchSummary
    todo: int


@dataclass(frozen=True)
class CellEnd(Event):
    KIND: ClassVar[str] = "cell_end"
    spec: CellSpec
    outcome: CellOutcome
    finished: int
    todo: int


@dataclass(frozen=True)
class BenchEnd(Event):
    KIND: ClassVar[str] = "bench_end"
    summary: BenchSummary


# --------------------------------------------------------------------------- a LoRA training


@dataclass(frozen=True)
class TrainStart(Event):
    KIND: ClassVar[str] = "train_start"
    out: Path
    base: BaseModel
    device: str
    examples: int
    too_long: int
    eval_examples: int
    steps: int
    resumed_at: int
    trainable: int


@dataclass(frozen=True)
class Eval(Event):
    KIND: ClassVar[str] = "eval"
    when: str  # "before" or "after" training
    loss: float | None


@dataclass(frozen=True)
class Step(Event):
    """One optimizer step: the record of train_log.jsonl (the fields before `total`, in its order) + `total`."""

    KIND: ClassVar[str] = "step"
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    learned_tokens: int
    seconds: float
    total: int


@dataclass(frozen=True)
class TrainEnd(Event):
    KIND: ClassVar[str] = "train_end"
    summary: dict
    adapter_dir: Path


# --------------------------------------------------------------------------- self-training


@dataclass(frozen=True)
class StageStart(Event):
    """A stage of `tabcoder sft self-train` begins: `total` items to do (runs, steps), `done` already done."""

    KIND: ClassVar[str] = "stage_start"
    stage: str
    total: int
    done: int
    detail: str


@dataclass(frozen=True)
class StageItem(Event):
    """One item of a stage is done (a teacher or evaluation run): a line of what came of it."""

    KIND: ClassVar[str] = "stage_item"
    stage: str
    done: int
    total: int
    text: str


@dataclass(frozen=True)
class StageEnd(Event):
    KIND: ClassVar[str] = "stage_end"
    stage: str
    text: str


_ALL: tuple[type[Event], ...] = (
    RunStart, Resume, AttemptStart, LlmStart, LlmDone, Llm, Reflection, AttemptEnd, RoundStart, Interrupted,
    SearchCut, ConfirmStart, EnsembleEnd, FinalStart, FinalEnd, RunEnd, Report,
    CaafeStart, CaafeProposal, CaafeEnd,
    BenchStart, CellEnd, BenchEnd,
    TrainStart, Eval, Step, TrainEnd,
    StageStart, StageItem, StageEnd,
)
EVENTS: dict[str, type[Event]] = {cls.KIND: cls for cls in _ALL}
assert len(EVENTS) == len(_ALL) and "" not in EVENTS, "every event class needs its own KIND"


def field_names(cls: type[Event]) -> tuple[str, ...]:
    """The keys the data of `cls`'s kind carries, in order."""
    return tuple(f.name for f in fields(cls))


def event_data(event: Event) -> dict[str, Any]:
    """The event's fields as a dict, shallow: the values are the event's own objects (never deep-copied,
    unlike `dataclasses.asdict`)."""
    return {f.name: getattr(event, f.name) for f in fields(event)}


def emit_event(handler: EventHandler, event: Event) -> None:
    """Report `event` to a `(kind, data)` callback."""
    handler(event.KIND, event_data(event))
