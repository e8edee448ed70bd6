"""The delivered solution of a finished run, applied to new rows: `tabcoder.load(RUN_DIR).predict(df)`,
`Result.predict(df)` and `tabcoder predict RUN_DIR NEW.csv`.

    solution = tabcoder.load("runs/20261201-120000-titanic")
    predictions = solution.predict(new_rows)          # a DataFrame: the id column and the predictions
    solution.predict_file("new.parquet", "predictions.csv")   # in the submission's format

Scope: `load` reads the run's `run.json` and `best/` (the task is read back from `best/input/` with the settings
the run used); `Solution.predict` checks the new rows (`task.new_rows`), then in a fresh workspace runs in the
sandbox either `best/predict.py` with the fitted model the solution saved (nothing is trained again) or, when
it saved none, the solution itself with the new rows as its test set; the predictions are checked like a
submission (`grading`) and returned typed; `predict_file` writes them in the task's submission format.
Nothing here chooses or changes the solution.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tabcoder.deliverable import PREDICT_NAME, SAVED_MODEL, prediction_mode
from tabcoder.errors import RunDirError, SandboxError, TaskError
from tabcoder.evaluation import MODEL_FILE, SCRIPT_NAME, SUBMISSION_NAME, feedback_for, Evaluation, prepare_workspace
from tabcoder.grading import check_submission, make_sample_submission
from tabcoder.grading.formatting import render_submission
from tabcoder.rundir import read_meta
from tabcoder.sandbox import LocalSandbox, Sandbox
from tabcoder.task import SubmissionFormat, Task, load_task, read_table
from tabcoder.task.new_rows import check_new_rows
from tabcoder.task.ids import text_key

PREDICTIONS_NAME = "predictions.csv"
NEW_NAME = "new.csv"


@dataclass
class Prediction:
    """Predictions for new rows: the typed table (id column first, one row per new row, in their order), the
    CSV bytes in the submission's format, how they were made, and the notes on the input."""

    table: pd.DataFrame
    data: bytes
    mode: str  # "saved model" or "re-run"
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class Solution:
    """The chosen solution of a finished run (see the module docstring)."""

    run_dir: Path
    task: Task
    meta: dict

    @property
    def folder(self) -> Path:
        return self.run_dir / "best"

    @property
    def mode(self) -> str:
        return prediction_mode((self.folder / SCRIPT_NAME).read_text(encoding="utf-8"), self.folder).mode

    def predict(self, data: pd.DataFrame | str | Path, **options: Any) -> pd.DataFrame:
        """The predictions for `data` (a DataFrame, or the path of any table tabcoder reads): the id column and
        the submission's prediction columns, typed (class labels as in train, probabilities, numbers)."""
        return self.run(data, **options).table

    def predict_file(self, data: pd.DataFrame | str | Path, out: str | Path, *, overwrite: bool = False,
                     **options: Any) -> Prediction:
        """Predict `data` and write the predictions to `out` in the submission's format (never over an existing
        file unless `overwrite`)."""
        out = Path(out)
        if out.exists() and not overwrite:
            raise RunDirError(f"{out} exists; choose another --out, or pass --force (overwrite=True) to replace it")
        prediction = self.run(data, **options)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(prediction.data)
        return prediction

    def run(self, data: pd.DataFrame | str | Path, *, sandbox: Sandbox | None = None,
            timeout: float | None = None) -> Prediction:
        """Check `data`, predict it in the sandbox, check the predictions; see `Prediction`."""
        name = "the new rows"
        if not isinstance(data, pd.DataFrame):
            name = Path(data).name
            data = read_table(Path(data))
        rows = check_new_rows(data, self.task, name)
        config = self.meta.get("config", {})
        sandbox = sandbox or LocalSandbox(memory_mb=int(config.get("memory_mb", 4096)),
                                          disk_mb=int(config.get("disk_mb", 2048)),
                                          threads=int(config.get("threads", 1)),
                                          isolation=str(config.get("isolation", "auto")))
        limit = float(timeout if timeout is not None else 2 * float(config.get("timeout", 600)))
        started = time.monotonic()
        mode = self.mode
        with tempfile.TemporaryDirectory(prefix="tabcoder-predict-") as scratch:
            Path(scratch).chmod(0o711)  # the sandbox's user must reach its workspace inside
            workspace = Path(scratch) / "work"
            if mode == SAVED_MODEL:
                written = self._predict_saved(rows.table, workspace, sandbox, limit)
            else:
                written = self._predict_rerun(rows.table, workspace, sandbox, limit)
            ids = rows.table[self.task.id_column]
            aligned, problems = check_submission(written, task=self.task, expected_ids=ids)
        if aligned is None:
            raise SandboxError(f"the solution's predictions for {name} are not valid: {'; '.join(problems)}")
        data_bytes = render_submission(aligned, self.task, ids=[str(text_key(v)) for v in ids.tolist()])
        return Prediction(aligned, data_bytes, mode, time.monotonic() - started, rows.notes)

    def _predict_saved(self, rows: pd.DataFrame, workspace: Path, sandbox: Sandbox, timeout: float) -> Path:
        (workspace / "input").mkdir(parents=True)
        for name in (SCRIPT_NAME, PREDICT_NAME, MODEL_FILE):
            shutil.copyfile(self.folder / name, workspace / name)
        shutil.copyfile(self.folder / "input" / "train.csv", workspace / "input" / "train.csv")
        rows.to_csv(workspace / "input" / NEW_NAME, index=False)
        result = sandbox.run(workspace / PREDICT_NAME, workspace, timeout=timeout)
        self._raise_for(result, timeout, PREDICT_NAME)
        return workspace / PREDICTIONS_NAME

    def _predict_rerun(self, rows: pd.DataFrame, workspace: Path, sandbox: Sandbox, timeout: float) -> Path:
        train = pd.read_csv(self.folder / "input" / "train.csv")
        description_file = self.folder / "input" / "description.md"
        description = description_file.read_text(encoding="utf-8") if description_file.is_file() else ""
        prepare_workspace(workspace, train=train, test=rows, description=description,
                          sample_submission=make_sample_submission(self.task, rows[self.task.id_column]))
        script = workspace / SCRIPT_NAME
        shutil.copyfile(self.folder / SCRIPT_NAME, script)
        for member in sorted((self.folder / "members").glob(f"*/{SCRIPT_NAME}")):  # an ensemble's members
            (workspace / "members" / member.parent.name).mkdir(parents=True)
            shutil.copyfile(member, workspace / "members" / member.parent.name / SCRIPT_NAME)
        result = sandbox.run(script, workspace, timeout=timeout)
        self._raise_for(result, timeout, SCRIPT_NAME)
        return workspace / SUBMISSION_NAME

    def _raise_for(self, result, timeout: float, script: str) -> None:
        if not result.ok:
            memory = int(self.meta.get("config", {}).get("memory_mb", 4096))
            why = feedback_for(Evaluation(result, None), timeout=timeout, memory_mb=memory)
            raise SandboxError(f"best/{script} failed on the new rows: {why} (give more time with --timeout when "
                               "it was stopped)")


def load(run_dir: str | Path) -> Solution:
    """The delivered solution of the finished run in `run_dir` (RunDirError when it has none)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    folder = run_dir / "best"
    if not (folder / SCRIPT_NAME).is_file() or not (folder / "input" / "train.csv").is_file():
        raise RunDirError(f"{run_dir} has no delivered solution (best/{SCRIPT_NAME} and best/input/): the run did not "
                          "finish with a valid submission; finish it with `tabcoder resume`")
    recorded = meta.get("task", {})
    try:
        task = load_task(folder / "input", target=recorded.get("target"), id_column=recorded.get("id"),
                         task_type=recorded.get("task_type"), metric=recorded.get("metric"),
                         positive_label=recorded.get("positive_label"))
    except TaskError as exc:
        raise RunDirError(f"cannot read the task back from {folder / 'input'}: {exc}") from exc
    task.name = str(recorded.get("name", task.name))
    if "submission_format" in recorded:
        fmt = SubmissionFormat.from_dict(recorded["submission_format"])
        if fmt.columns == task.submission_columns:
            task.submission_format = fmt
    return Solution(run_dir, task, meta)
