"""Run a benchmark matrix into a results file, resumably.

Scope: `check_settings` (bad input is a typed error before anything runs: unknown strategy, model,
baseline or seed count), `SameTime` (the AutoML baselines' wall-time rule: a flaml / autogluon cell waits
for the LLM cells of its task and seed and is given their mean wall time), and `run_bench`: plan every
cell, add the new ones to the store, put the cells a killed bench left `running` back to `pending`, skip
every `done` cell, and hand the rest to an executor through a `WorkQueue` that holds each AutoML cell back
until its LLM cells are recorded, recording each outcome as it arrives. Only this process writes the
store, under its lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tabcoder import config as run_config
from tabcoder.backends.base import get_backend, valid_forms
from tabcoder.bench.baselines import AUTOML, BASELINES, unavailable_reason
from tabcoder.bench.cells import (BASELINE, LLM, SAME_TIME, BenchSettings, CellOutcome, CellSpec, TimeGiven,
                                  fixed_time, plan_cells, run_cell)
from tabcoder.bench.executors import Executor, WorkQueue
from tabcoder.bench.store import BenchLock, ResultStore
from tabcoder.bench.suite import Suite
from tabcoder.errors import BackendError, ConfigError
from tabcoder.events import BenchEnd, BenchStart, CellEnd, emit_event

EventHandler = Callable[[str, dict], None]


# =========================================================================== validation


def check_model(model: str, base_url: str | None = None) -> None:
    """Raise BackendError when `model` cannot name a backend here, without loading any weights."""
    scheme, _, rest = model.strip().partition(":")
    schemes = {form.partition(":")[0] for form in valid_forms()}
    if scheme not in schemes:
        raise BackendError(f"unknown model {model!r}; valid forms: {', '.join(valid_forms())}")
    if scheme == "local":
        from tabcoder.backends.llamacpp import llama_cpp_status
        from tabcoder.backends.weights import DEFAULT_LOCAL_MODEL, packaged_model

        packaged_model(rest or DEFAULT_LOCAL_MODEL)
        usable, why = llama_cpp_status()
        if not usable:
            raise BackendError(f"model {model!r}: {why}")
    elif scheme == "llamacpp":
        if not rest or not Path(rest).expanduser().is_file():
            raise BackendError(f"model {model!r}: GGUF file not found; write llamacpp:/path/to/model.gguf")
    else:  # replay, openai, ...: building the backend is cheap and checks the string
        get_backend(model, base_url=base_url).close()


def check_settings(settings: BenchSettings) -> None:
    """Typed errors (exit 2 in the CLI) for a matrix that cannot run."""
    strategies = run_config.STRATEGIES  # read now: strategies are added over time
    unknown = [s for s in settings.strategies if s not in strategies]
    if unknown:
        raise ConfigError(f"unknown strategy {', '.join(unknown)}; available: {', '.join(strategies)}")
    for name in settings.baselines:
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}, or none")
    if settings.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1 (got {settings.seeds})")
    if not settings.models and not settings.baselines:
        raise ConfigError("nothing to run: give --models, or keep at least one baseline")
    for model in settings.models:
        check_model(model, settings.run_options.get("base_url"))
    run_config.RunConfig(**settings.run_options)  # bad budgets, timeouts, ... fail here, not in every cell


# =========================================================================== the bench


@dataclass
class BenchSummary:
    db: Path
    bench_id: int
    cells: int
    already_done: int
    interrupted: int
    ran: int = 0
    errors: int = 0
    skipped: dict = field(default_factory=dict)  # baseline -> why it did not run


# =========================================================================== the same-time rule

MIN_SECONDS = 1.0  # an AutoML search needs a positive budget (FLAML reads -1 as "no limit")


def _group(spec: CellSpec) -> tuple[str, str, int]:
    return spec.suite, spec.task, spec.seed


class SameTime:
    """The wall time of the AutoML baselines (flaml, autogluon). Such a cell of a task and seed waits until
    every LLM cell of that task and seed in the plan (every model x strategy) is recorded, in this bench or
    an earlier one, and is then given the mean of their wall seconds (the `seconds` of those that are
    `done`; at least MIN_SECONDS). When the plan has no LLM cell (a bench of baselines only) it gets the
    bench's fixed budget at once. When all of its LLM cells failed it is given nothing and recorded as an
    error, so that the next bench, which re-runs the failed LLM cells, runs it after them."""

    def __init__(self, store: ResultStore, cells: list[CellSpec], runnable: list[CellSpec]) -> None:
        self.store = store
        self.llm: dict[tuple[str, str, int], list[str]] = defaultdict(list)
        for spec in cells:
            if spec.kind == LLM:
                self.llm[_group(spec)].append(spec.key)
        self.unfinished = {spec.key for spec in runnable if spec.kind == LLM}  # the rest are done already

    @staticmethod
    def applies(spec: CellSpec) -> bool:
        return spec.kind == BASELINE and spec.model in AUTOML

    def waits_for(self, spec: CellSpec) -> list[str]:
        """The keys of the LLM cells whose wall time `spec` is given."""
        return self.llm.get(_group(spec), []) if self.applies(spec) else []

    def ready(self, spec: CellSpec) -> bool:
        return not any(key in self.unfinished for key in self.waits_for(spec))

    def finished(self, spec: CellSpec) -> None:
        self.unfinished.discard(spec.key)

    def given(self, spec: CellSpec) -> TimeGiven:
        keys = self.waits_for(spec)
        if not keys:
            return fixed_time(spec.config)
        rows = self.store.rows_of(keys)
        done = {key: row.seconds for key, row in rows.items() if row.status == "done" and row.seconds is not None}
        source = {key: done[key] if key in done else (rows[key].status if key in rows else "missing") for key in keys}
        if not done:
            return TimeGiven(None, SAME_TIME, source)
        return TimeGiven(round(max(statistics.fmean(done.values()), MIN_SECONDS), 2), SAME_TIME, source)

    def prepare(self, spec: CellSpec) -> CellSpec:
        """`spec` as it is handed to a worker: an AutoML cell with the time it is given."""
        return dataclasses.replace(spec, given=self.given(spec)) if self.applies(spec) else spec


def _skip_unavailable(store: ResultStore, todo: list[CellSpec], skipped: dict) -> list[CellSpec]:
    """Record baselines whose extra is missing as `skipped` (re-tried by the next bench); the rest runs."""
    runnable = []
    for spec in todo:
        reason = skipped.get(spec.model) if spec.kind == BASELINE else None
        if reason:
            store.record(spec.key, "skipped", {"error": reason})
        else:
            runnable.append(spec)
    return runnable


def _as_outcome(result) -> CellOutcome:
    if isinstance(result, CellOutcome):
        return result
    return CellOutcome.failure(f"the executor lost the cell: {type(result).__name__}: {result}")


def _start(store: ResultStore, cells: list[CellSpec], skipped: dict, executor: Executor, command: str,
           db: Path) -> tuple[BenchSummary, list[CellSpec]]:
    """Record the plan and this bench; returns the summary so far and the cells to run."""
    store.add_cells(spec.identity() for spec in cells)
    interrupted = store.reset_interrupted()
    status = store.status_of(spec.key for spec in cells)
    todo = [spec for spec in cells if status.get(spec.key) != "done"]
    bench_id = store.start_bench(command=command, executor=executor.name, workers=executor.workers,
                                 host=platform.node(), interrupted=interrupted)
    summary = BenchSummary(Path(db), bench_id, len(cells), len(cells) - len(todo), interrupted, skipped=skipped)
    return summary, _skip_unavailable(store, todo, skipped)


def _drive(store: ResultStore, summary: BenchSummary, runnable: list[CellSpec], same_time: SameTime,
           executor: Executor, emit: EventHandler) -> None:
    """Hand the cells to the executor and record each outcome as it arrives. An AutoML cell is handed out
    only once its LLM cells are recorded (executors take from the queue after each result they yield); an
    executor that takes only once gets the rest in further rounds."""

    def submitted(spec: CellSpec) -> None:
        store.mark_running(spec.key, summary.bench_id)

    queue = WorkQueue(runnable, ready=same_time.ready, prepare=same_time.prepare)
    while len(queue):
        waiting = len(queue)
        for spec, result in executor.map_unordered(run_cell, queue, submitted):
            outcome = _as_outcome(result)
            if outcome.status == "interrupted":
                store.record(spec.key, "pending", {})
                raise KeyboardInterrupt
            store.record(spec.key, outcome.status, outcome)
            same_time.finished(spec)
            summary.ran += 1
            summary.errors += outcome.status == "error"
            emit_event(emit, CellEnd(spec=spec, outcome=outcome, finished=summary.ran, todo=len(runnable)))
        if len(queue) == waiting:  # nothing was handed out: these wait for cells that are not in the queue
            keys = ", ".join(spec.key for spec in queue.waiting())
            raise RuntimeError(f"{waiting} cell(s) wait for cells that never ran: {keys}")


def _shared_models(settings: BenchSettings, executor: Executor, runnable: list[CellSpec]):
    """One process per local model serves every cell of this machine (this process and its worker pool),
    instead of one loaded copy per cell. Ray workers on other machines load their own."""
    if executor.name != "local":
        return contextlib.nullcontext([])
    from tabcoder.backends.llamacpp import local_spec
    from tabcoder.backends.model_process import share_servers

    config = run_config.RunConfig(**settings.run_options)
    wanted = {spec.model for spec in runnable if spec.kind != BASELINE}
    specs = []
    for model in settings.models:
        spec = local_spec(model, {"threads": config.threads, "n_ctx": config.n_ctx}) if model in wanted else None
        if spec is not None and spec not in specs:
            specs.append(spec)
    return share_servers(specs)


def run_bench(suite: Suite, settings: BenchSettings, db: Path, executor: Executor, *, command: str = "",
              on_event: EventHandler | None = None) -> BenchSummary:
    """Run every cell of the matrix that is not `done` in `db`; returns what happened."""
    emit = on_event or (lambda kind, data: None)
    check_settings(settings)
    cells = plan_cells(suite, settings)
    skipped = {name: why for name in settings.baselines if (why := unavailable_reason(name))}
    with BenchLock(db), ResultStore(db) as store:
        summary, runnable = _start(store, cells, skipped, executor, command, db)
        emit_event(emit, BenchStart(summary=summary, todo=len(runnable)))
        try:
            with _shared_models(settings, executor, runnable):
                _drive(store, summary, runnable, SameTime(store, cells, runnable), executor, emit)
        finally:
            store.finish_bench(summary.bench_id)
    emit_event(emit, BenchEnd(summary=summary))
    return summary
