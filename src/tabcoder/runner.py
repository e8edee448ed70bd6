"""A whole run: task -> split -> search -> choose (confirmed on folds) -> final refit on all train ->
run directory and report. Also `resume`: the same run continued from its journal.

`run()` is the Python API; the CLI calls it with the same `RunConfig`. Collaborators (backend, sandbox,
clock, event handler) are passed in, so tests can use a scripted backend and a fake clock.

The steps live beside this module: `rundir` (the run folder and run.json), `state` (what a run works with,
and the profile / CAAFE / prompt steps before the search), `budget` (budgets and time estimates: under
`--time-budget` the search stops early enough to keep the estimated time of choosing and refitting in hand,
late attempts get a shorter timeout, confirmation is cut down or skipped), `selection` (fold
confirmation) and `final` (the refit). A model that fails for good stops the search, not the run.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from typing import Callable

from tabcoder.attribution import Attribution, attribute, ensemble_attribution
from tabcoder.backends import Backend, ReplayBackend, get_backend
from tabcoder.budget import Budget
from tabcoder.config import RunConfig
from tabcoder.ensemble import Ensemble, build_ensemble
from tabcoder.deliverable import Scores, prediction_mode, write_predict_entry, write_readme
from tabcoder.errors import ConfigError, LLMError, RunDirError
from tabcoder.evaluation import Evaluation, EvaluationPool, evaluate, feedback_for, prepare_workspace
from tabcoder.events import EnsembleEnd, Interrupted, Report, Resume, RunEnd, RunStart, SearchCut, emit_event
from tabcoder.final import FinalOutcome, finalize
from tabcoder.journal import Attempt, Journal
from tabcoder.metrics import Score
from tabcoder.prompting import PromptBuilder
from tabcoder.rundir import (RUN_FILE, clear_outputs, load_answers, new_run_dir, read_meta, task_summary, versions,
                             write_json)
from tabcoder.sandbox import LocalSandbox, Sandbox
from tabcoder.selection import Selection, select
from tabcoder.state import EventHandler, RunState
from tabcoder.strategies.common import SearchStrategy
from tabcoder.strategies.policy import make_policy
from tabcoder.strategies.reflexion import Reflexion
from tabcoder.strategies.tree import TreeSearch
from tabcoder.task import Task, load_task

__all__ = ["EXIT_CUT_SHORT", "RESUMABLE", "Result", "load_answers", "new_run_dir", "resolve_task", "resume", "run",
           "versions"]

log = logging.getLogger(__name__)

#: Options `resume` may change; the others define the run (its split, prompts, search) and stay as they were.
RESUMABLE = ("iterations", "time_budget", "token_budget", "workers", "answers", "model", "base_url", "threads",
             "n_ctx", "timeout", "memory_mb", "llm_timeout", "disk_mb", "isolation")
#: The exit status of a run whose search the model cut short (see `Result.cut_short`).
EXIT_CUT_SHORT = 3


@dataclass
class Result:
    """What a run produced. Scores: validation (harness split, used for selection) and test (answers, never used)."""

    run_dir: Path
    task: Task
    best: Attempt | None
    validation_score: Score
    final_valid: bool
    final_problems: list[str]
    test_score: Score | None
    submission: Path | None
    solution: Path | None
    stop_reason: str
    attempts: int
    valid_attempts: int
    tokens: int
    seconds: float
    confirmed_score: Score | None = None  # mean score of the chosen attempt on the confirmation folds
    selection: dict | None = None  # how the final attempt was chosen (see `Selection.to_dict`)
    cut_short: str | None = None  # why the model stopped the search early (retries spent, process died)
    attribution: Attribution | None = None  # who wrote the chosen solution, and its gain over the baseline
    formatting: str | None = None  # what the harness changed when it wrote submission.csv in the task's format
    prediction_mode: str | None = None  # how best/predict.py predicts new rows: "saved model" or "re-run"
    ensemble: dict | None = None  # the ensemble built from the confirmed attempts (chosen or not), see `Ensemble`
    #: wall seconds of each stage: search (from the run's start, earlier sessions included), confirmation
    #: (the folds), ensemble (choosing the blend and scoring it on the folds, from the members' fold
    #: predictions), final (the refits on all rows: every member of a chosen ensemble)
    phases: dict[str, float] | None = None

    def predict(self, data: Any, **options: Any) -> Any:
        """Predictions of the delivered solution for new rows (a DataFrame or a table file); see
        `tabcoder.prediction.Solution.predict`."""
        from tabcoder.prediction import load

        return load(self.run_dir).predict(data, **options)

    @property
    def exit_code(self) -> int:
        """0: a valid final submission; 1: none; 3: the model failed mid-search (what was found is finalised;
        `tabcoder resume` continues the search)."""
        if self.cut_short:
            return EXIT_CUT_SHORT
        return 0 if self.final_valid else 1

    @property
    def gap(self) -> dict[str, float] | None:
        """test - validation and test - confirmed (metric units), when answers were given."""
        if self.test_score is None or self.test_score.value is None or self.validation_score.value is None:
            return None
        gap = {"test_minus_validation": self.test_score.value - self.validation_score.value}
        if self.confirmed_score is not None and self.confirmed_score.value is not None:
            gap["test_minus_confirmed"] = self.test_score.value - self.confirmed_score.value
        return gap

    def summary(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "task": self.task.name,
            "metric": self.task.metric,
            "best_attempt": self.best.index if self.best else None,
            "validation_score": self.validation_score.value,
            "confirmed_score": None if self.confirmed_score is None else self.confirmed_score.value,
            "final_valid": self.final_valid,
            "final_problems": self.final_problems,
            "test_score": None if self.test_score is None else self.test_score.value,
            "gap": self.gap,
            "submission": None if self.submission is None else str(self.submission),
            "solution": None if self.solution is None else str(self.solution),
            "stop_reason": self.stop_reason,
            "cut_short": self.cut_short,
            "attribution": None if self.attribution is None else self.attribution.to_dict(),
            "formatting": self.formatting,
            "prediction_mode": self.prediction_mode,
            "ensemble": self.ensemble,
            "attempts": self.attempts,
            "valid_attempts": self.valid_attempts,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 1),
            "phases": self.phases,
        }


def resolve_task(task: str | Path | Task, config: RunConfig) -> Task:
    if isinstance(task, Task):
        return task
    return load_task(Path(task), target=config.target, id_column=config.id_column, task_type=config.task_type,
                     metric=config.metric, positive_label=config.positive_label, test_path=config.test_path)


class _Collaborators:
    """Builds the backend and sandbox a caller did not pass in, and closes the backend it built."""

    def __init__(self, config: RunConfig, backend: Backend | None, sandbox: Sandbox | None) -> None:
        # The sandbox first: `--isolation strict` refuses before a model is loaded or a run folder made.
        self.sandbox = sandbox or LocalSandbox(memory_mb=config.memory_mb, disk_mb=config.disk_mb,
                                               threads=config.threads, isolation=config.isolation)
        self.own_backend = backend is None
        self.backend = backend if backend is not None else get_backend(
            config.model, threads=config.threads, n_ctx=config.n_ctx, base_url=config.base_url, seed=config.seed,
            llm_timeout=config.llm_timeout)

    def __enter__(self) -> tuple[Backend, Sandbox]:
        return self.backend, self.sandbox

    def __exit__(self, *exc: object) -> None:
        if self.own_backend:
            self.backend.close()


def run(task: str | Path | Task, *, config: RunConfig | None = None, backend: Backend | None = None,
        sandbox: Sandbox | None = None, on_event: EventHandler | None = None,
        clock: Callable[[], float] = time.monotonic, **options) -> Result:
    """Run the search on `task` and write the run directory. Options are `RunConfig` fields."""
    config = replace(config, **options) if config is not None else RunConfig(**options)
    emit = on_event or (lambda kind, data: None)
    task = resolve_task(task, config)
    answers = load_answers(config.answers, task) if config.answers is not None else None
    with _Collaborators(config, backend, sandbox) as (backend, sandbox), EvaluationPool(config.workers) as pool:
        started = clock()
        run_dir = new_run_dir(config.out_dir, task.name)
        emit_event(emit, RunStart(run_dir=run_dir, task=task, config=config, model=backend.model_id,
                                  isolation=sandbox.isolation))
        meta = {"config": config.to_dict(), "task": task_summary(task), "model": backend.model_id,
                "versions": versions(), "isolation": sandbox.isolation, "command": sys.argv,
                "started": datetime.now(timezone.utc).isoformat()}
        state = RunState(task, config, backend, sandbox, emit, clock, answers, run_dir,
                         Journal(run_dir / "journal.jsonl"), meta, started, pool)
        write_json(run_dir / RUN_FILE, meta)
        return _execute(state)


def resume(run_dir: str | Path, *, backend: Backend | None = None, sandbox: Sandbox | None = None,
           on_event: EventHandler | None = None, clock: Callable[[], float] = time.monotonic, **overrides) -> Result:
    """Continue an interrupted (or finished) run from its journal: attempts left pending are evaluated, none
    is written again, and the search goes on until the budgets (which `overrides` may raise) are spent."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    config = _resumed_config(meta, overrides)
    task = _resumed_task(meta, config)
    emit = on_event or (lambda kind, data: None)
    answers = load_answers(config.answers, task) if config.answers is not None else None
    path = run_dir / "journal.jsonl"
    journal = Journal.load(path, repair=True) if path.is_file() else Journal(path)
    with _Collaborators(config, backend, sandbox) as (backend, sandbox), EvaluationPool(config.workers) as pool:
        started = clock() - journal.elapsed
        if isinstance(backend, ReplayBackend):
            _skip_replayed(backend, journal.calls_made())
        emit_event(emit, RunStart(run_dir=run_dir, task=task, config=config, model=backend.model_id,
                                  isolation=sandbox.isolation))
        emit_event(emit, Resume(attempts=len(journal.attempts), pending=sorted(journal.pending)))
        meta["config"] = config.to_dict()
        meta.setdefault("resumed", []).append({"at": datetime.now(timezone.utc).isoformat(), "command": sys.argv,
                                               "attempts": len(journal.attempts), "pending": len(journal.pending)})
        meta.pop("result", None)
        clear_outputs(run_dir)
        state = RunState(task, config, backend, sandbox, emit, clock, answers, run_dir, journal, meta, started, pool)
        write_json(run_dir / RUN_FILE, meta)
        return _execute(state)


def _resumed_config(meta: dict, overrides: dict) -> RunConfig:
    changed = {k: v for k, v in overrides.items() if v is not None}
    fixed = sorted(set(changed) - set(RESUMABLE))
    if fixed:
        raise ConfigError(f"resume cannot change {', '.join(fixed)}: they define the run. It can change "
                          f"{', '.join(RESUMABLE)}; start a new run to change the others.")
    recorded = dict(meta["config"])
    recorded.setdefault("baseline", False)  # a run from before attempt 0 existed goes on without one
    recorded.setdefault("edit_format", "whole")  # ... and with the whole scripts it asked for
    return replace(RunConfig.from_dict(recorded), **changed)


def _resumed_task(meta: dict, config: RunConfig) -> Task:
    recorded = meta.get("task", {})
    source = Path(recorded.get("source_path") or recorded.get("source", ""))
    if not source.exists():
        raise RunDirError(f"The task of this run ({source}) is not there any more; resume needs the same task files.")
    task = resolve_task(source, config)
    if len(task.train) != recorded.get("n_train") or task.target != recorded.get("target"):
        raise RunDirError(f"The task at {source} changed since the run started ({len(task.train)} train rows, "
                          f"target {task.target!r}; the run had {recorded.get('n_train')} rows, target "
                          f"{recorded.get('target')!r}); start a new run instead.")
    return task


def _skip_replayed(backend: ReplayBackend, calls: int) -> None:
    """A replayed run resumes where the recorded responses left off: drop the ones already used."""
    for _ in range(min(calls, backend.remaining)):
        backend.complete([])


# =========================================================================== search


def _execute(state: RunState) -> Result:
    """Search, then choose and refit. A model that fails for good (retries spent, its process gone) stops
    the search but not the run: what was found is confirmed, refit and written like any other end."""
    strategy: SearchStrategy | None = None
    cut_short = None
    try:
        strategy = _make_strategy(state, state.prepare())
        stop_reason = strategy.run(state.journal)
    except KeyboardInterrupt:
        if strategy is None:  # before the search (CAAFE): nothing to finalise; resume starts the stage again
            raise
        stop_reason = "interrupted"
        emit_event(state.emit, Interrupted(attempts=len(state.journal.attempts)))
        strategy.settle()
    except LLMError as exc:
        cut_short = str(exc)
        stop_reason = "the model failed"
        if strategy is not None:
            strategy.settle()
        emit_event(state.emit, SearchCut(error=cut_short, attempts=len(state.journal.attempts),
                                         valid=sum(a.valid for a in state.journal.attempts)))
    marks = [state.started, state.clock()]
    selection = select(state)
    marks.append(state.clock())
    ensemble = _ensemble(state, selection) if state.config.ensemble else None
    marks.append(state.clock())
    final = finalize(state, selection.order, ensemble)
    marks.append(state.clock())
    phases = {name: round(end - start, 2) for name, start, end in
              zip(("search", "confirmation", "ensemble", "final"), marks, marks[1:])}
    return _conclude(state, stop_reason, selection, final, cut_short, ensemble, phases)


def _ensemble(state: RunState, selection: Selection) -> Ensemble | None:
    """The ensemble of the attempts confirmed on folds, scored there against the best single one."""
    if selection.method != "folds":
        return None
    ensemble = build_ensemble(state.task, state.run_dir, validation_labels=state.split.labels,
                              confirmed=selection.confirmed, order=selection.order, folds=selection.folds,
                              seed=state.config.seed, size=state.config.ensemble_size)
    if ensemble is not None:
        emit_event(state.emit, EnsembleEnd(members=ensemble.describe(), chosen=ensemble.chosen,
                                           reason=ensemble.reason))
    return ensemble


def _make_strategy(state: RunState, builder: PromptBuilder) -> SearchStrategy:
    config = state.config
    budget = Budget(config.iterations, config.time_budget, config.token_budget, started=state.started,
                    finish_reserve=state.plan.finish_estimate)

    def run_attempt(index: int, code: str) -> Evaluation:
        directory = state.run_dir / "attempts" / f"{index:03d}"
        shutil.rmtree(directory, ignore_errors=True)  # left by an interrupted session
        workspace = prepare_workspace(directory, train=state.split.fit, test=state.split.valid,
                                      sample_submission=state.split.sample_submission,
                                      description=state.task.description)
        return evaluate(state.script(code), workspace, task=state.task, labels=state.split.labels, sandbox=state.sandbox,
                        timeout=state.plan.attempt_timeout(state.journal))

    def describe(evaluation: Evaluation, journal: Journal) -> str:
        best = journal.best()
        return feedback_for(evaluation, timeout=config.timeout, memory_mb=config.memory_mb,
                            best=None if best is None else f"{best.score_value} (attempt {best.index})")

    common: dict[str, Any] = dict(backend=state.backend, builder=builder, evaluate=run_attempt, describe=describe,
                  budget=budget, generation={"temperature": config.temperature, "top_p": config.top_p,
                                             "max_tokens": config.max_tokens, "seed": config.seed},
                  clock=state.clock, on_event=state.emit, baseline=config.baseline, edit_format=config.edit_format)
    if config.strategy == "tree":
        return TreeSearch(**common, pool=state.pool, policy=make_policy(config.policy), drafts=config.drafts,
                          debug_depth=config.debug_depth, breadth=config.breadth)
    return Reflexion(**common)


# =========================================================================== the end of a run


def _conclude(state: RunState, stop_reason: str, selection: Selection, final: FinalOutcome,
              cut_short: str | None = None, ensemble: Ensemble | None = None,
              phases: dict[str, float] | None = None) -> Result:
    journal = state.journal
    chosen = final.attempt or journal.best()
    result = Result(
        run_dir=state.run_dir, task=state.task, best=chosen,
        validation_score=chosen.score_value if chosen else Score.worst(state.task.metric),
        final_valid=final.valid, final_problems=final.problems, test_score=final.test_score,
        submission=final.submission, solution=final.solution, stop_reason=stop_reason,
        attempts=len(journal.attempts), valid_attempts=sum(a.valid for a in journal.attempts),
        tokens=journal.tokens, seconds=state.clock() - state.started,
        confirmed_score=selection.confirmed.get(chosen.index) if chosen else None,
        selection=selection.to_dict(), cut_short=cut_short,
        attribution=attribute(chosen, journal, selection.confirmed, baseline_enabled=state.config.baseline),
        formatting=final.formatting, ensemble=None if ensemble is None else ensemble.to_dict(), phases=phases)
    if final.ensemble and ensemble is not None and result.attribution is not None:
        result.validation_score = Score(ensemble.validation, chosen.metric if chosen else state.task.metric,
                                        state.task.metric_spec.greater_is_better)
        result.confirmed_score = Score(ensemble.mean_folds, result.validation_score.metric,
                                       result.validation_score.greater_is_better)
        result.attribution = ensemble_attribution(ensemble, state.journal, result.attribution,
                                                  greater_is_better=state.task.metric_spec.greater_is_better)
    if final.valid and final.solution is not None:
        result.prediction_mode = _write_deliverable(state, result, final.solution.parent)
    state.meta["result"] = result.summary()
    state.meta["selection"] = selection.to_dict()
    state.meta["attribution"] = result.attribution.to_dict() if result.attribution else None
    state.meta["ensemble"] = result.ensemble
    state.meta["finished"] = datetime.now(timezone.utc).isoformat()
    write_json(state.run_dir / RUN_FILE, state.meta)
    _write_report(state)
    emit_event(state.emit, RunEnd(result=result))
    return result


def _write_deliverable(state: RunState, result: Result, folder: Path) -> str:
    """best/predict.py and best/README.md beside the refit solution; returns how predict.py works."""
    code = (folder / "solution.py").read_text(encoding="utf-8")
    mode = prediction_mode(code, folder)
    write_predict_entry(folder, state.task, mode)
    attribution = result.attribution.text if result.attribution else "the chosen attempt"
    scores = Scores(result.validation_score, len(state.split.valid), result.confirmed_score,
                    state.config.confirm_folds, result.test_score)
    members = "".join(f"\n{m.read_text(encoding='utf-8')}" for m in sorted(folder.glob("members/*/solution.py")))
    write_readme(folder, task=state.task, run_dir=state.run_dir, attribution=attribution, scores=scores, mode=mode,
                 formatting=result.formatting, code=code + members)
    return mode.mode


def _write_report(state: RunState) -> None:
    """Every run writes report.html; a failure to render it is logged, never loses the run's results."""
    from tabcoder.report import ReportError, write_report

    try:
        path = write_report(state.run_dir)
    except ReportError as exc:
        log.warning("report.html not written: %s", exc)
        return
    emit_event(state.emit, Report(path=path))
