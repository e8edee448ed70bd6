"""A whole run: task -> split -> search -> final refit on all train -> run directory.

`run()` is the Python API; the CLI calls it with the same `RunConfig`. Collaborators (backend, sandbox,
clock, event handler) are passed in, so tests can use a scripted backend and a fake clock.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd

from tabcoder.backends import Backend, get_backend
from tabcoder.config import RunConfig
from tabcoder.errors import RunDirError, TaskError
from tabcoder.evaluation import SCRIPT_NAME, SUBMISSION_NAME, Evaluation, evaluate, feedback_for, prepare_workspace
from tabcoder.grading import check_submission, grade_submission, make_sample_submission, make_split
from tabcoder.journal import Attempt, Journal
from tabcoder.metrics import Score
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.sandbox import LocalSandbox, Sandbox
from tabcoder.strategies.reflexion import Budget, Reflexion
from tabcoder.task import Task, load_task, read_table

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict], None]
FINAL_CANDIDATES = 3


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

    def summary(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "task": self.task.name,
            "metric": self.task.metric,
            "best_attempt": self.best.index if self.best else None,
            "validation_score": self.validation_score.value,
            "final_valid": self.final_valid,
            "final_problems": self.final_problems,
            "test_score": None if self.test_score is None else self.test_score.value,
            "submission": None if self.submission is None else str(self.submission),
            "solution": None if self.solution is None else str(self.solution),
            "stop_reason": self.stop_reason,
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
    return {"name": task.name, "source": str(task.source), "target": task.target, "id": task.id_column,
            "id_generated": task.id_generated, "task_type": task.task_type, "metric": task.metric,
            "positive_label": None if task.positive_label is None else str(task.positive_label),
            "classes": None if task.classes is None else [str(c) for c in task.classes],
            "n_train": len(task.train), "n_test": 0 if task.test is None else len(task.test), "notes": task.notes}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def run(task: str | Path | Task, *, config: RunConfig | None = None, backend: Backend | None = None,
        sandbox: Sandbox | None = None, on_event: EventHandler | None = None,
        clock: Callable[[], float] = time.monotonic, **options) -> Result:
    """Run the search on `task` and write the run directory. Options are `RunConfig` fields."""
    config = replace(config, **options) if config is not None else RunConfig(**options)
    emit = on_event or (lambda kind, data: None)
    task = resolve_task(task, config)
    answers = load_answers(config.answers, task) if config.answers is not None else None
    own_backend = backend is None
    if backend is None:
        backend = get_backend(config.model, threads=config.threads, n_ctx=config.n_ctx, base_url=config.base_url,
                              seed=config.seed)
    sandbox = sandbox or LocalSandbox(memory_mb=config.memory_mb, threads=config.threads)
    try:
        return _run(task, config, backend, sandbox, emit, clock, answers)
    finally:
        if own_backend:
            backend.close()


def _run(task: Task, config: RunConfig, backend: Backend, sandbox: Sandbox, emit: EventHandler,
         clock: Callable[[], float], answers: pd.Series | None) -> Result:
    started = clock()
    run_dir = new_run_dir(config.out_dir, task.name)
    emit("run_start", {"run_dir": run_dir, "task": task, "config": config, "model": backend.model_id,
                       "isolation": sandbox.isolation})
    split = make_split(task, seed=config.seed, valid_fraction=config.valid_fraction)
    profile = profile_task(task, split.fit, split.valid, seed=config.seed)
    builder = PromptBuilder(task, profile, timeout=config.timeout, style=config.prompt_style,
                            use_description=config.use_description, show_example=config.show_example)
    meta = {"config": config.to_dict(), "task": task_summary(task), "model": backend.model_id,
            "versions": versions(), "isolation": sandbox.isolation, "command": sys.argv,
            "started": datetime.now(timezone.utc).isoformat()}
    _write_json(run_dir / "run.json", meta)
    journal = Journal(run_dir / "journal.jsonl")

    def run_attempt(index: int, code: str) -> Evaluation:
        workspace = prepare_workspace(run_dir / "attempts" / f"{index:03d}", train=split.fit, test=split.valid,
                                      sample_submission=split.sample_submission, description=task.description)
        return evaluate(code, workspace, task=task, labels=split.labels, sandbox=sandbox, timeout=config.timeout)

    def describe(evaluation: Evaluation, journal: Journal) -> str:
        best = journal.best()
        return feedback_for(evaluation, timeout=config.timeout, memory_mb=config.memory_mb,
                            best=None if best is None else f"{best.score_value} (attempt {best.index})")

    strategy = Reflexion(
        backend=backend, builder=builder, evaluate=run_attempt, describe=describe,
        budget=Budget(config.iterations, config.time_budget, config.token_budget, started=started),
        generation={"temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_tokens,
                    "seed": config.seed},
        clock=clock, on_event=emit)
    try:
        stop_reason = strategy.run(journal)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        emit("interrupted", {"attempts": len(journal.attempts)})

    final = _finalize(task, config, journal, run_dir, sandbox, answers, emit)
    chosen = final.get("attempt") or journal.best()
    result = Result(
        run_dir=run_dir, task=task, best=chosen,
        validation_score=chosen.score_value if chosen else Score.worst(task.metric),
        final_valid=final["valid"], final_problems=final["problems"], test_score=final.get("test_score"),
        submission=final.get("submission"), solution=final.get("solution"), stop_reason=stop_reason,
        attempts=len(journal.attempts), valid_attempts=sum(a.valid for a in journal.attempts),
        tokens=journal.tokens, seconds=clock() - started)
    meta["result"] = result.summary()
    meta["finished"] = datetime.now(timezone.utc).isoformat()
    _write_json(run_dir / "run.json", meta)
    emit("run_end", {"result": result})
    return result


def _finalize(task: Task, config: RunConfig, journal: Journal, run_dir: Path, sandbox: Sandbox,
              answers: pd.Series | None, emit: EventHandler) -> dict:
    """Re-run the best attempts (best first) on all train + the real test; keep the first valid submission."""
    candidates = sorted((a for a in journal.attempts if a.valid), key=lambda a: a.score_value, reverse=True)
    if not candidates:
        return {"valid": False, "problems": ["no attempt produced a valid submission"]}
    if task.test is None:
        best = candidates[0]
        solution = run_dir / "best" / SCRIPT_NAME
        solution.parent.mkdir()
        solution.write_text(best.code, encoding="utf-8")
        return {"valid": False, "problems": ["the task has no test set: solution written, nothing to predict"],
                "attempt": best, "solution": solution}
    sample = task.sample_submission if task.sample_submission is not None else make_sample_submission(task, task.test[task.id_column])
    problems: list[str] = []
    for number, attempt in enumerate(candidates[:FINAL_CANDIDATES]):
        workspace = run_dir / ("best" if number == 0 else f"best-{number}")
        prepare_workspace(workspace, train=task.train, test=task.test, sample_submission=sample,
                          description=task.description)
        emit("final_start", {"attempt": attempt, "workspace": workspace})
        # The full train is larger than the fit split: allow proportionally more time.
        evaluation = evaluate(attempt.code, workspace, task=task, labels=None, sandbox=sandbox,
                              timeout=config.timeout * 2)
        if evaluation.result.ok:
            _, problems = check_submission(workspace / SUBMISSION_NAME, task=task, expected_ids=task.test[task.id_column])
        else:
            problems = [feedback_for(evaluation, timeout=config.timeout * 2, memory_mb=config.memory_mb)]
        emit("final_end", {"attempt": attempt, "ok": not problems, "problems": problems,
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
        if answers is not None:
            out["test_score"] = grade_submission(submission, task=task, labels=answers).score
        return out
    return {"valid": False, "problems": problems, "attempt": candidates[0]}
