"""The final step of a run: the chosen attempt (or ensemble) re-run on all training rows and the real test set.

Scope: `finalize` tries a chosen ensemble first (its members in `best/members/`, blended by the entry point
`best/solution.py`, see `write_ensemble`), then the candidates in the order the selection gave (at most
`FINAL_CANDIDATES`), and keeps the first whose submission passes the harness's checks as `best/`; the run's
`submission.csv` is then written from the checked predictions in the task's submission format (the sample's
header, ids, spelling) and checked against it, and scored on the answers when they were given (never used to
choose). A task without a test set gets its solution written and nothing predicted. The outcome is a
`FinalOutcome`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import cast
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd

from tabcoder.ensemble import AGREEMENT, Ensemble
from tabcoder.evaluation import SCRIPT_NAME, SUBMISSION_NAME, evaluate, feedback_for, prepare_workspace
from tabcoder.events import FinalEnd, FinalStart, emit_event
from tabcoder.grading import check_submission, grade_submission, make_sample_submission
from tabcoder.grading.formatting import format_problems, render_submission
from tabcoder.grading.submission import prediction_kind
from tabcoder.journal import Attempt
from tabcoder.metrics import Score
from tabcoder.state import RunState
from tabcoder.task import Task

FINAL_CANDIDATES = 3


@dataclass
class FinalOutcome:
    """What the final step produced: a valid submission (and its test score), or the problems it met."""

    valid: bool
    problems: list[str] = field(default_factory=list)
    attempt: Attempt | None = None  # the attempt refit last (the chosen one when valid)
    submission: Path | None = None
    solution: Path | None = None
    test_score: Score | None = None
    formatting: str | None = None  # what the harness changed when it wrote the final file in the task's format
    ensemble: bool = False  # the submission is the chosen ensemble's (its members refit and blended)


def finalize(state: RunState, candidates: list[Attempt], ensemble: Ensemble | None = None) -> FinalOutcome:
    """Re-run the candidates (in the given order) on all train + the real test; keep the first valid submission.
    A chosen `ensemble` is tried first: each member refit, blended by `best/solution.py` (see `write_ensemble`)."""
    task, run_dir = state.task, state.run_dir
    if not candidates:
        return FinalOutcome(False, ["no attempt produced a valid submission"])
    if task.test is None:
        best = candidates[0]
        solution = run_dir / "best" / SCRIPT_NAME
        solution.parent.mkdir()
        solution.write_text(state.script(cast(str, best.code)), encoding="utf-8")  # a candidate has code
        return FinalOutcome(False, ["the task has no test set: solution written, nothing to predict"], best,
                            solution=solution)
    sample = (task.sample_submission if task.sample_submission is not None
              else make_sample_submission(task, task.test[task.id_column]))
    problems: list[str] = []
    if ensemble is not None and ensemble.chosen:
        by_index = {a.index: a for a in state.journal.attempts}
        members = [by_index[i] for i in ensemble.members]
        workspace = prepare_workspace(run_dir / "best", train=task.train, test=task.test, sample_submission=sample,
                                      description=task.description)
        code = write_ensemble(workspace, state, members, ensemble)
        timeout = sum(state.plan.refit_timeout(member) for member in members)
        outcome = _refit(state, members[0], code, workspace, timeout, label=f"the ensemble of {ensemble.describe()}")
        if outcome.valid:
            outcome.ensemble = True
            return outcome
        ensemble.chosen = False
        ensemble.reason += f"; its refit failed ({'; '.join(outcome.problems)[:300]}), so the best single attempt is used"
        shutil.rmtree(workspace, ignore_errors=True)
    for number, attempt in enumerate(candidates[:FINAL_CANDIDATES]):
        workspace = prepare_workspace(run_dir / ("best" if number == 0 else f"best-{number}"), train=task.train,
                                      test=task.test, sample_submission=sample, description=task.description)
        outcome = _refit(state, attempt, state.script(cast(str, attempt.code)), workspace,
                         state.plan.refit_timeout(attempt))
        problems = outcome.problems
        if outcome.valid or outcome.submission is not None:  # valid, or written but not in the format
            return outcome
    return FinalOutcome(False, problems, candidates[0])


def _refit(state: RunState, attempt: Attempt, code: str, workspace: Path, timeout: float,
           label: str | None = None) -> FinalOutcome:
    """Run `code` in `workspace` on all train rows and the test set; check, format and grade what it wrote.
    A valid outcome's workspace becomes `best/`."""
    task, run_dir = state.task, state.run_dir
    assert task.test is not None  # finalize returns before a refit when there is no test set
    emit_event(state.emit, FinalStart(attempt=attempt, workspace=workspace, label=label))
    evaluation = evaluate(code, workspace, task=task, labels=None, sandbox=state.sandbox, timeout=timeout,
                          keep_model=True)
    aligned = None
    if evaluation.result.ok:
        aligned, problems = check_submission(workspace / SUBMISSION_NAME, task=task,
                                             expected_ids=task.test[task.id_column])
    else:
        problems = [feedback_for(evaluation, timeout=timeout, memory_mb=state.config.memory_mb)]
    emit_event(state.emit, FinalEnd(attempt=attempt, ok=not problems, problems=problems,
                                    seconds=evaluation.result.duration))
    if problems:
        return FinalOutcome(False, problems, attempt)
    if workspace != run_dir / "best":
        shutil.rmtree(run_dir / "best", ignore_errors=True)
        workspace.rename(run_dir / "best")
        workspace = run_dir / "best"
    submission = run_dir / SUBMISSION_NAME
    formatting = _write_formatted(cast(pd.DataFrame, aligned), task, workspace / SUBMISSION_NAME, submission)
    if formatting.problems:
        return FinalOutcome(False, formatting.problems, attempt, submission)
    test_score = (grade_submission(submission, task=task, labels=state.answers).score
                  if state.answers is not None else None)
    return FinalOutcome(True, [], attempt, submission, workspace / SCRIPT_NAME, test_score, formatting.note)


def write_ensemble(workspace: Path, state: RunState, members: list[Attempt], ensemble: Ensemble) -> str:
    """Each member's script in `workspace/members/NNN/solution.py`; returns the entry point that runs them and
    blends their predictions with the ensemble's weights (`templates/ensemble.py.j2`)."""
    task = state.task
    for member in members:
        folder = workspace / "members" / f"{member.index:03d}"
        folder.mkdir(parents=True)
        (folder / SCRIPT_NAME).write_text(state.script(cast(str, member.code)), encoding="utf-8")
    kind = prediction_kind(task)
    how = {"label": "the likeliest class of the weighted mean of their class probabilities (a member that wrote "
                    "none, or whose probabilities disagree with its labels, counts with its labels: a vote)",
           "proba": "the weighted mean of their probabilities",
           "number": "the weighted mean of their predictions"}[kind]
    text = resources.files("tabcoder").joinpath("templates", "ensemble.py.j2").read_text(encoding="utf-8")
    return jinja2.Environment(keep_trailing_newline=True).from_string(text).render(
        members={f"{i:03d}": count for i, count in ensemble.weights.items()}, id_column=task.id_column,
        target=task.target, columns=task.submission_columns[1:], kind=kind, how=how, agreement=AGREEMENT)


@dataclass
class Formatting:
    note: str | None  # what the harness changed in the script's file, None when nothing
    problems: list[str]  # where the written file departs from the format (a harness fault; never expected)


def _write_formatted(aligned: pd.DataFrame, task: Task, written: Path, submission: Path) -> Formatting:
    """Write the final file in the task's format (`grading.formatting`) and check it; say what changed."""
    data = render_submission(aligned, task)
    submission.write_bytes(data)
    problems = format_problems(submission, task)
    problems += check_submission(submission, task=task, expected_ids=task.test[task.id_column])[1] \
        if task.test is not None else []
    if problems:
        return Formatting(None, [f"the final {SUBMISSION_NAME} does not match the submission format: {p}"
                                 for p in problems])
    if written.read_bytes() == data:
        return Formatting(None, [])
    fmt = task.output_format
    return Formatting(f"{SUBMISSION_NAME} holds the script's predictions written by the harness in the format of "
                      f"{fmt.source} (its columns, id order and spelling, and value spelling); the script's own "
                      f"file is best/{SUBMISSION_NAME}", [])
