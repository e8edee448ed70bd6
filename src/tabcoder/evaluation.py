"""Run one script in a fresh workspace and grade what it wrote; turn the outcome into feedback for the model.

A workspace is a folder holding `input/train.csv`, `input/test.csv`, `input/sample_submission.csv`,
`input/description.md` and `solution.py`; the script must write `submission.csv` there.
Failures caused by the script are results (feedback for the model); failures of the harness raise.

`EvaluationPool` runs several evaluations at once (`--workers`): each evaluation is already its own
sandboxed child process, so the pool's workers are threads that supervise those processes; nothing
(task tables, sandbox) has to be pickled, and the model keeps generating in the main thread meanwhile.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import pandas as pd

from tabcoder.grading import Grade, grade_submission
from tabcoder.sandbox import ExecutionResult, Sandbox
from tabcoder.task import Task

SCRIPT_NAME = "solution.py"
SUBMISSION_NAME = "submission.csv"
#: The fitted model a solution may save beside its submission (the baseline's scaffold does).
MODEL_FILE = "model.joblib"

T = TypeVar("T")


def prepare_workspace(directory: Path, *, train: pd.DataFrame, test: pd.DataFrame,
                      sample_submission: pd.DataFrame, description: str) -> Path:
    """Create `directory/input/` with the CSV files the script reads. `directory` must not exist yet."""
    directory = Path(directory)
    inputs = directory / "input"
    inputs.mkdir(parents=True)
    train.to_csv(inputs / "train.csv", index=False)
    test.to_csv(inputs / "test.csv", index=False)
    sample_submission.to_csv(inputs / "sample_submission.csv", index=False)
    (inputs / "description.md").write_text(description or "", encoding="utf-8")
    return directory


def copy_inputs(source: Path, directory: Path) -> Path:
    """A new workspace with a copy of `source`'s input files (copies: a script may rewrite its inputs)."""
    inputs = Path(directory) / "input"
    inputs.mkdir(parents=True)
    for file in sorted((Path(source) / "input").iterdir()):
        shutil.copyfile(file, inputs / file.name)
    return Path(directory)


@dataclass
class Evaluation:
    result: ExecutionResult
    grade: Grade | None  # None when the script failed before a submission could be graded


def evaluate(code: str, workspace: Path, *, task: Task, labels: pd.Series | None, sandbox: Sandbox,
             timeout: float, keep_model: bool = False) -> Evaluation:
    """Write `code` into `workspace`, run it, and grade `submission.csv` against `labels` (if given). The
    fitted model a script saves (`model.joblib`) is deleted unless `keep_model` (the final refit keeps it)."""
    script = Path(workspace) / SCRIPT_NAME
    script.write_text(code, encoding="utf-8")
    result = sandbox.run(script, Path(workspace), timeout=timeout)
    if not keep_model:
        (Path(workspace) / MODEL_FILE).unlink(missing_ok=True)
    if not result.ok:
        return Evaluation(result, None)
    if labels is None:
        return Evaluation(result, None)
    return Evaluation(result, grade_submission(Path(workspace) / SUBMISSION_NAME, task=task, labels=labels))


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def feedback_for(evaluation: Evaluation, *, timeout: float, memory_mb: int, best: str | None = None) -> str:
    """What the model is told about an attempt: the precise failure, or the validation score."""
    result, grade = evaluation.result, evaluation.grade
    if result.timed_out:
        return (f"The script was stopped because it ran longer than the time limit of {timeout:.0f} seconds. "
                "Make it faster: fewer or smaller models, fewer iterations, no grid search, "
                "no cross-validation loops over many settings.")
    if result.killed_by == "memory":
        return (f"The script ran out of memory (limit {memory_mb} MB). Use less memory: smaller models, "
                "sparse one-hot encoding, no huge intermediate tables.")
    if result.killed_by is not None and result.killed_by != "timeout":
        return f"The script was killed ({result.killed_by})."
    if result.exit_code != 0:
        error = result.traceback or _tail(result.stderr) or _tail(result.stdout) or "(no output)"
        return f"The script failed with exit code {result.exit_code}:\n{error}"
    if grade is None:
        return "The script ran."
    if not grade.valid:
        problems = "\n".join(f"- {p}" for p in grade.problems)
        return f"The script ran, but submission.csv is not valid:\n{problems}"
    text = f"The script ran and submission.csv is valid. Validation {grade.score}."
    if best:
        text += f" Best so far: {best}."
    return text


class EvaluationPool:
    """Runs evaluations up to `workers` at a time. With one worker, `submit` runs the call at once in the
    caller's thread (a serial run), and returns an already finished future, so callers never branch."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._executor = (ThreadPoolExecutor(self.workers, thread_name_prefix="tabcoder-eval")
                          if self.workers > 1 else None)

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> Future:
        if self._executor is not None:
            return self._executor.submit(fn, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to whoever reads the future, as a pool would
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Wait for running evaluations and stop the workers. Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "EvaluationPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
