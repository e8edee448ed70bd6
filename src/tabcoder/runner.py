"""A whole run: task -> split -> search -> choose (confirmed on folds) -> final refit on all train ->
run directory and report. Also `resume`: the same run continued from its journal.

`run()` is the Python API; the CLI calls it with the same `RunConfig`. Collaborators (backend, sandbox,
clock, event handler) are passed in, so tests can use a scripted backend and a fake clock.

Time: under `--time-budget`, the search stops early enough to keep the estimated time of choosing and
refitting the final solution in hand (`_finish_estimate`), attempts started late get a shorter timeout,
and confirmation is cut down or skipped when there is no time left for it. The final refit always runs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd

from tabcoder.backends import Backend, ReplayBackend, get_backend
from tabcoder.caafe import (CaafeResult, include_feature_code, read_result, run_caafe, solution_guidance,
                            write_outputs)
from tabcoder.config import RunConfig
from tabcoder.errors import ConfigError, LLMError, RunDirError, TaskError
from tabcoder.evaluation import (
    SCRIPT_NAME,
    SUBMISSION_NAME,
    Evaluation,
    EvaluationPool,
    copy_inputs,
    evaluate,
    feedback_for,
    prepare_workspace,
)
from tabcoder.grading import Split, check_submission, grade_submission, make_folds, make_sample_submission, make_split
from tabcoder.journal import Attempt, Journal
from tabcoder.metrics import Score
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.sandbox import LocalSandbox, Sandbox
from tabcoder.strategies.common import Budget, SearchStrategy
from tabcoder.strategies.policy import make_policy
from tabcoder.strategies.reflexion import Reflexion
from tabcoder.strategies.tree import TreeSearch
from tabcoder.task import Task, load_task, read_table

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict], None]
FINAL_CANDIDATES = 3
MIN_ATTEMPT_SECONDS = 10.0  # the shortest timeout an attempt gets when the time budget is nearly spent
CONFIRM_SHARE = 0.15  # under a time budget, fold confirmation may use at most this share of it
SETUP_SECONDS = 1.0  # preparing a workspace, per final step (run_seconds already include starting Python)
#: Options `resume` may change; the others define the run (its split, prompts, search) and stay as they were.
RESUMABLE = ("iterations", "time_budget", "token_budget", "workers", "answers", "model", "base_url", "threads",
             "n_ctx", "timeout", "memory_mb", "llm_timeout")
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
            "attempts": self.attempts,
            "valid_attempts": self.valid_attempts,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 1),
        }


def resolve_task(task: str | Path | Task, config: RunConfig) -> Task:
    if isinstance(task, Task):
        return task
    return load_task(Path(task), target=config.target, id_column=config.id_column, task_type=config.task_type,
                     metric=config.metric, positive_label=config.positive_label, test_path=config.test_path)


def load_answers(path: Path, task: Task) -> pd.Series:
    """True test labels from a CSV with the id column and the target; indexed by id, checked against the test ids."""
    if task.test is None:
        raise TaskError(f"--answers was given but the task {task.name!r} has no test set to score.")
    table = read_table(Path(path))
    missing = [c for c in (task.id_column, task.target) if c not in table.columns]
    if missing:
        raise TaskError(f"The answers file {path} lacks the column(s) {', '.join(missing)}; it needs the id "
                        f"column {task.id_column!r} and the target {task.target!r} (found: {', '.join(map(str, table.columns))}).")
    labels = table.set_index(task.id_column)[task.target]
    test_ids = set(task.test[task.id_column].astype(str))
    answer_ids = set(labels.index.astype(str))
    if test_ids != answer_ids:
        raise TaskError(f"The ids of the answers file {path} do not match the test set: "
                        f"{len(test_ids - answer_ids)} test ids have no answer, {len(answer_ids - test_ids)} answers have no test row.")
    return labels


def new_run_dir(out_dir: Path, task_name: str, now: datetime | None = None) -> Path:
    """A fresh `out_dir/<time>-<task>` folder; never reuses an existing one."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", task_name).strip("-") or "task"
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"Cannot create the output folder {out_dir}: {exc}. Choose another with --out.") from exc
    for n in range(1000):
        candidate = out_dir / (f"{stamp}-{slug}" + (f"-{n}" if n else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunDirError(f"Could not find a free run folder name in {out_dir}.")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("tabcoder", "pandas", "numpy", "scikit-learn", "scipy", "llama-cpp-python"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def task_summary(task: Task) -> dict:
    return {"name": task.name, "source": str(task.source), "source_path": str(Path(task.source).resolve()),
            "target": task.target, "id": task.id_column,
            "id_generated": task.id_generated, "task_type": task.task_type, "metric": task.metric,
            "positive_label": None if task.positive_label is None else str(task.positive_label),
            "classes": None if task.classes is None else [str(c) for c in task.classes],
            "n_train": len(task.train), "n_test": 0 if task.test is None else len(task.test), "notes": task.notes}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, default=str))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


# =========================================================================== the state of a run


@dataclass
class RunState:
    """Everything one run (or one resumed session of it) works with."""

    task: Task
    config: RunConfig
    backend: Backend
    sandbox: Sandbox
    emit: EventHandler
    clock: Callable[[], float]
    answers: pd.Series | None
    run_dir: Path
    journal: Journal
    meta: dict
    started: float  # clock value at which the run's time began (earlier sessions included)
    pool: EvaluationPool
    split: Split = field(init=False)
    builder: PromptBuilder = field(init=False)
    caafe: CaafeResult | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        config, task = self.config, self.task
        self.split = make_split(task, seed=config.seed, valid_fraction=config.valid_fraction)
        profile = profile_task(task, self.split.fit, self.split.valid, seed=config.seed)
        self.caafe = self._caafe() if config.caafe else None
        uses_features = bool(self.caafe and self.caafe.kept and config.caafe_prompt == "usage")
        self.builder = PromptBuilder(task, profile, timeout=config.timeout, style=config.prompt_style,
                                     use_description=config.use_description, show_example=config.show_example,
                                     guidance=solution_guidance(self.caafe, config.caafe_prompt),
                                     uses_features=uses_features)

    def _caafe(self) -> CaafeResult:
        """The CAAFE stage, on the fit rows only (never the validation rows); a resumed run reads it back."""
        folder = self.run_dir / "caafe"
        if (folder / "caafe.json").is_file():
            return read_result(folder)
        result = run_caafe(self.task, self.split.fit, backend=self.backend, sandbox=self.sandbox,
                           n_features=self.config.caafe, seed=self.config.seed, workdir=folder / "proposals",
                           on_event=self.emit)
        write_outputs(result, folder)
        return result

    def script(self, code: str) -> str:
        """The script as it runs: with the accepted CAAFE function on top when it calls add_features."""
        return include_feature_code(self.caafe, code)

    def seconds_left(self) -> float | None:
        budget = self.config.time_budget
        return None if budget is None else self.started + budget - self.clock()


class _Collaborators:
    """Builds the backend and sandbox a caller did not pass in, and closes the backend it built."""

    def __init__(self, config: RunConfig, backend: Backend | None, sandbox: Sandbox | None) -> None:
        self.own_backend = backend is None
        self.backend = backend if backend is not None else get_backend(
            config.model, threads=config.threads, n_ctx=config.n_ctx, base_url=config.base_url, seed=config.seed,
            llm_timeout=config.llm_timeout)
        self.sandbox = sandbox or LocalSandbox(memory_mb=config.memory_mb, threads=config.threads)

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
        emit("run_start", {"run_dir": run_dir, "task": task, "config": config, "model": backend.model_id,
                           "isolation": sandbox.isolation})
        meta = {"config": config.to_dict(), "task": task_summary(task), "model": backend.model_id,
                "versions": versions(), "isolation": sandbox.isolation, "command": sys.argv,
                "started": datetime.now(timezone.utc).isoformat()}
        state = RunState(task, config, backend, sandbox, emit, clock, answers, run_dir,
                         Journal(run_dir / "journal.jsonl"), meta, started, pool)
        _write_json(run_dir / "run.json", meta)
        return _execute(state)


def resume(run_dir: str | Path, *, backend: Backend | None = None, sandbox: Sandbox | None = None,
           on_event: EventHandler | None = None, clock: Callable[[], float] = time.monotonic, **overrides) -> Result:
    """Continue an interrupted (or finished) run from its journal: attempts left pending are evaluated, none
    is written again, and the search goes on until the budgets (which `overrides` may raise) are spent."""
    run_dir = Path(run_dir)
    meta = _read_meta(run_dir)
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
        emit("run_start", {"run_dir": run_dir, "task": task, "config": config, "model": backend.model_id,
                           "isolation": sandbox.isolation})
        emit("resume", {"attempts": len(journal.attempts), "pending": sorted(journal.pending)})
        meta["config"] = config.to_dict()
        meta.setdefault("resumed", []).append({"at": datetime.now(timezone.utc).isoformat(), "command": sys.argv,
                                               "attempts": len(journal.attempts), "pending": len(journal.pending)})
        meta.pop("result", None)
        _clear_outputs(run_dir)
        state = RunState(task, config, backend, sandbox, emit, clock, answers, run_dir, journal, meta, started, pool)
        _write_json(run_dir / "run.json", meta)
        return _execute(state)


def _read_meta(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run folder (no run.json): give the folder that `tabcoder run` "
                          "created, e.g. runs/20250101-120000-penguins.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunDirError(f"{path} is not readable JSON ({exc}); the run cannot be resumed.") from exc


def _resumed_config(meta: dict, overrides: dict) -> RunConfig:
    changed = {k: v for k, v in overrides.items() if v is not None}
    fixed = sorted(set(changed) - set(RESUMABLE))
    if fixed:
        raise ConfigError(f"resume cannot change {', '.join(fixed)}: they define the run. It can change "
                          f"{', '.join(RESUMABLE)}; start a new run to change the others.")
    return replace(RunConfig.from_dict(meta["config"]), **changed)


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


def _clear_outputs(run_dir: Path) -> None:
    """Remove the outputs of an earlier session (final workspaces, submission, confirmation folds, report)."""
    for path in [*run_dir.glob("best"), *run_dir.glob("best-*"), run_dir / "confirm"]:
        shutil.rmtree(path, ignore_errors=True)
    for name in (SUBMISSION_NAME, "report.html"):
        (run_dir / name).unlink(missing_ok=True)


# =========================================================================== search


def _execute(state: RunState) -> Result:
    """Search, then choose and refit. A model that fails for good (retries spent, its process gone) stops
    the search but not the run: what was found is confirmed, refit and written like any other end."""
    strategy = _make_strategy(state)
    cut_short = None
    try:
        stop_reason = strategy.run(state.journal)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        state.emit("interrupted", {"attempts": len(state.journal.attempts)})
        strategy.settle()
    except LLMError as exc:
        cut_short = str(exc)
        stop_reason = "the model failed"
        strategy.settle()
        state.emit("search_cut", {"error": cut_short, "attempts": len(state.journal.attempts),
                                  "valid": sum(a.valid for a in state.journal.attempts)})
    selection = _select(state)
    final = _finalize(state, selection.order)
    return _conclude(state, stop_reason, selection, final, cut_short)


def _make_strategy(state: RunState) -> SearchStrategy:
    config = state.config
    budget = Budget(config.iterations, config.time_budget, config.token_budget, started=state.started,
                    finish_reserve=lambda journal: _finish_estimate(state, journal))

    def run_attempt(index: int, code: str) -> Evaluation:
        directory = state.run_dir / "attempts" / f"{index:03d}"
        shutil.rmtree(directory, ignore_errors=True)  # left by an interrupted session
        workspace = prepare_workspace(directory, train=state.split.fit, test=state.split.valid,
                                      sample_submission=state.split.sample_submission,
                                      description=state.task.description)
        return evaluate(state.script(code), workspace, task=state.task, labels=state.split.labels, sandbox=state.sandbox,
                        timeout=_attempt_timeout(state))

    def describe(evaluation: Evaluation, journal: Journal) -> str:
        best = journal.best()
        return feedback_for(evaluation, timeout=config.timeout, memory_mb=config.memory_mb,
                            best=None if best is None else f"{best.score_value} (attempt {best.index})")

    common = dict(backend=state.backend, builder=state.builder, evaluate=run_attempt, describe=describe,
                  budget=budget, generation={"temperature": config.temperature, "top_p": config.top_p,
                                             "max_tokens": config.max_tokens, "seed": config.seed},
                  clock=state.clock, on_event=state.emit)
    if config.strategy == "tree":
        return TreeSearch(**common, pool=state.pool, policy=make_policy(config.policy), drafts=config.drafts,
                          debug_depth=config.debug_depth, breadth=config.breadth)
    return Reflexion(**common)


def _attempt_timeout(state: RunState) -> float:
    """The configured timeout, shortened near the end of a time budget (but never below a floor)."""
    left = state.seconds_left()
    if left is None:
        return state.config.timeout
    left -= _finish_estimate(state, state.journal)
    return min(state.config.timeout, max(MIN_ATTEMPT_SECONDS, left))


def _ranked(journal: Journal) -> list[Attempt]:
    """Valid attempts, best validation score first (earliest first on ties)."""
    return sorted((a for a in journal.attempts if a.valid), key=lambda a: a.score_value, reverse=True)


def _growth(state: RunState) -> float:
    """How much larger the full train is than the fit part of the split (scripts take about that much longer)."""
    return len(state.task.train) / max(1, len(state.split.fit))


def _confirm_estimate(state: RunState, candidates: list[Attempt]) -> float:
    k = state.config.confirm_folds
    fold_share = (k - 1) / k * _growth(state)
    runs = sum(a.run_seconds * fold_share + SETUP_SECONDS for a in candidates) * k
    return runs / state.pool.workers


def _confirmable(state: RunState, candidates: list[Attempt], seconds: float | None) -> list[Attempt]:
    """The best candidates whose confirmation fits in `seconds` (all when None); fewer than two: none."""
    top = candidates[:state.config.confirm_top]
    while seconds is not None and len(top) >= 2 and _confirm_estimate(state, top) > seconds:
        top = top[:-1]
    return top if len(top) >= 2 and state.config.confirm_folds else []


def _finish_estimate(state: RunState, journal: Journal) -> float:
    """Seconds to keep for confirming the best candidates on folds and refitting the final one. Under a
    time budget, confirmation is planned within `CONFIRM_SHARE` of it (fewer candidates, or none)."""
    ranked = _ranked(journal)
    if not ranked:
        return 0.0
    refit = ranked[0].run_seconds * _growth(state) + SETUP_SECONDS
    budget = state.config.time_budget
    confirmed = _confirmable(state, ranked, None if budget is None else CONFIRM_SHARE * budget)
    return refit + (_confirm_estimate(state, confirmed) if confirmed else 0.0)


# =========================================================================== choosing the final attempt


@dataclass
class Selection:
    """The order in which attempts are tried for the final refit, and why."""

    order: list[Attempt]
    method: str  # "folds" | "validation" | "none"
    note: str = ""
    folds: int = 0
    candidates: list[dict] = field(default_factory=list)
    confirmed: dict[int, Score] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": self.method, "note": self.note, "folds": self.folds, "candidates": self.candidates,
                "order": [a.index for a in self.order]}


def _select(state: RunState) -> Selection:
    """Rank the valid attempts. The best few by validation score are re-scored on K folds of all labelled
    rows; the one with the best mean fold score is chosen, so a lucky split cannot decide alone."""
    ranked = _ranked(state.journal)
    config = state.config
    if not ranked:
        return Selection([], "none", "no valid attempt")
    if config.confirm_folds == 0:
        return Selection(ranked, "validation", "confirmation is off (--confirm-folds 0)")
    if len(ranked) == 1:
        return Selection(ranked, "validation", "one valid attempt: nothing to choose between")
    top = _affordable(state, ranked)
    if len(top) < 2:
        return Selection(ranked, "validation", "not enough time left in the budget to confirm on folds")
    state.emit("confirm_start", {"candidates": [a.index for a in top], "folds": config.confirm_folds})
    scores = _score_on_folds(state, top)
    return _rank_confirmed(ranked, top, scores, config.confirm_folds)


def _affordable(state: RunState, ranked: list[Attempt]) -> list[Attempt]:
    """As many candidates (best first) as the time left leaves room for, next to the final refit."""
    left = state.seconds_left()
    if left is not None:
        left -= ranked[0].run_seconds * _growth(state) + SETUP_SECONDS
    return _confirmable(state, ranked, left)


def _score_on_folds(state: RunState, top: list[Attempt]) -> dict[int, list[Score]]:
    """Run each candidate on every fold (in the pool); its fold scores, worst score for a failed fold."""
    folds = make_folds(state.task, k=state.config.confirm_folds, seed=state.config.seed)
    root = state.run_dir / "confirm"
    shutil.rmtree(root, ignore_errors=True)
    bases = [prepare_workspace(root / "folds" / str(number), train=fold.fit, test=fold.valid,
                               sample_submission=fold.sample_submission, description=state.task.description)
             for number, fold in enumerate(folds, 1)]
    futures = {}
    for attempt in top:
        for number, (fold, base) in enumerate(zip(folds, bases), 1):
            workspace = copy_inputs(base, root / f"{attempt.index:03d}-fold{number}")
            futures[attempt.index, number] = state.pool.submit(
                evaluate, state.script(attempt.code), workspace, task=state.task, labels=fold.labels, sandbox=state.sandbox,
                timeout=state.config.timeout)
    scores: dict[int, list[Score]] = {a.index: [] for a in top}
    worst = Score.worst(state.task.metric)
    for (index, _), future in futures.items():
        grade = future.result().grade
        scores[index].append(grade.score if grade is not None and grade.valid else worst)
    shutil.rmtree(root / "folds", ignore_errors=True)
    return scores


def _rank_confirmed(ranked: list[Attempt], top: list[Attempt], scores: dict[int, list[Score]],
                    folds: int) -> Selection:
    confirmed: dict[int, Score] = {}
    candidates = []
    for attempt in top:
        values = [s.value for s in scores[attempt.index]]
        ok = all(v is not None for v in values)
        mean = Score(statistics.fmean(values) if ok else None, attempt.metric, attempt.greater_is_better)
        if ok:
            confirmed[attempt.index] = mean
        candidates.append({"attempt": attempt.index, "validation": attempt.score, "folds": values,
                           "mean": mean.value, "std": statistics.pstdev(values) if ok else None, "ok": ok})
    good = sorted((a for a in top if a.index in confirmed), key=lambda a: confirmed[a.index], reverse=True)
    failed = [a for a in top if a.index not in confirmed]
    order = good + ranked[len(top):] + failed
    note = (f"attempt {good[0].index} has the best mean over {folds} folds" if good
            else "every candidate failed on a fold: kept the validation order")
    if good and good[0] is not ranked[0]:
        note += f" (attempt {ranked[0].index} had the best validation score)"
    return Selection(order, "folds", note, folds, candidates, confirmed)


# =========================================================================== final refit and outputs


def _refit_timeout(state: RunState, attempt: Attempt) -> float:
    """Twice the attempt timeout (more rows); under a time budget the time left, but enough for this script."""
    timeout = state.config.timeout * 2
    left = state.seconds_left()
    if left is None:
        return timeout
    needed = 3 * attempt.run_seconds * _growth(state) + MIN_ATTEMPT_SECONDS
    return min(timeout, max(left, needed))


def _finalize(state: RunState, candidates: list[Attempt]) -> dict:
    """Re-run the candidates (in the given order) on all train + the real test; keep the first valid submission."""
    task, run_dir = state.task, state.run_dir
    if not candidates:
        return {"valid": False, "problems": ["no attempt produced a valid submission"]}
    if task.test is None:
        best = candidates[0]
        solution = run_dir / "best" / SCRIPT_NAME
        solution.parent.mkdir()
        solution.write_text(state.script(best.code), encoding="utf-8")
        return {"valid": False, "problems": ["the task has no test set: solution written, nothing to predict"],
                "attempt": best, "solution": solution}
    sample = task.sample_submission if task.sample_submission is not None else make_sample_submission(task, task.test[task.id_column])
    problems: list[str] = []
    for number, attempt in enumerate(candidates[:FINAL_CANDIDATES]):
        workspace = run_dir / ("best" if number == 0 else f"best-{number}")
        prepare_workspace(workspace, train=task.train, test=task.test, sample_submission=sample,
                          description=task.description)
        state.emit("final_start", {"attempt": attempt, "workspace": workspace})
        timeout = _refit_timeout(state, attempt)
        evaluation = evaluate(state.script(attempt.code), workspace, task=task, labels=None, sandbox=state.sandbox, timeout=timeout)
        if evaluation.result.ok:
            _, problems = check_submission(workspace / SUBMISSION_NAME, task=task, expected_ids=task.test[task.id_column])
        else:
            problems = [feedback_for(evaluation, timeout=timeout, memory_mb=state.config.memory_mb)]
        state.emit("final_end", {"attempt": attempt, "ok": not problems, "problems": problems,
                                 "seconds": evaluation.result.duration})
        if problems:
            continue
        if number:
            shutil.rmtree(run_dir / "best", ignore_errors=True)
            workspace.rename(run_dir / "best")
            workspace = run_dir / "best"
        submission = run_dir / SUBMISSION_NAME
        shutil.copyfile(workspace / SUBMISSION_NAME, submission)
        out = {"valid": True, "problems": [], "attempt": attempt, "submission": submission,
               "solution": workspace / SCRIPT_NAME}
        if state.answers is not None:
            out["test_score"] = grade_submission(submission, task=task, labels=state.answers).score
        return out
    return {"valid": False, "problems": problems, "attempt": candidates[0]}


def _conclude(state: RunState, stop_reason: str, selection: Selection, final: dict,
              cut_short: str | None = None) -> Result:
    journal = state.journal
    chosen = final.get("attempt") or journal.best()
    result = Result(
        run_dir=state.run_dir, task=state.task, best=chosen,
        validation_score=chosen.score_value if chosen else Score.worst(state.task.metric),
        final_valid=final["valid"], final_problems=final["problems"], test_score=final.get("test_score"),
        submission=final.get("submission"), solution=final.get("solution"), stop_reason=stop_reason,
        attempts=len(journal.attempts), valid_attempts=sum(a.valid for a in journal.attempts),
        tokens=journal.tokens, seconds=state.clock() - state.started,
        confirmed_score=selection.confirmed.get(chosen.index) if chosen else None,
        selection=selection.to_dict(), cut_short=cut_short)
    state.meta["result"] = result.summary()
    state.meta["selection"] = selection.to_dict()
    state.meta["finished"] = datetime.now(timezone.utc).isoformat()
    _write_json(state.run_dir / "run.json", state.meta)
    _write_report(state)
    state.emit("run_end", {"result": result})
    return result


def _write_report(state: RunState) -> None:
    """Every run writes report.html; a failure to render it is logged, never loses the run's results."""
    from tabcoder.report import ReportError, write_report

    try:
        path = write_report(state.run_dir)
    except ReportError as exc:
        log.warning("report.html not written: %s", exc)
        return
    state.emit("report", {"path": path})
