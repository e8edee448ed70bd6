"""Run folders and the files a run reads and writes beside its task.

Scope: a fresh `runs/<time>-<task>/` folder (never an existing one), `run.json` (written atomically, read
back for `resume`), the versions and task summary it records, the answers file given with `--answers`
(checked against the test ids), and removing the outputs of an earlier session before a resume. The
journal (`journal.jsonl`) is `tabcoder.journal`'s; the report is `tabcoder.report`'s.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from tabcoder.errors import RunDirError, TaskError
from tabcoder.evaluation import SUBMISSION_NAME
from tabcoder.task import Task, read_table

RUN_FILE = "run.json"


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
            "n_train": len(task.train), "n_test": 0 if task.test is None else len(task.test), "notes": task.notes,
            "submission_columns": list(task.submission_columns), "feature_columns": task.feature_columns,
            "submission_format": task.output_format.to_dict()}


def write_json(path: Path, data: dict) -> None:
    """Write `data` as JSON so that a crash leaves either the old file or the new one, never half of one."""
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, default=str))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_meta(run_dir: Path) -> dict:
    """The `run.json` of a run folder; RunDirError when the folder is not a run's."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run folder (no run.json): give the folder that `tabcoder run` "
                          "created, e.g. runs/20250101-120000-penguins.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunDirError(f"{path} is not readable JSON ({exc}); the run cannot be resumed.") from exc


def clear_outputs(run_dir: Path) -> None:
    """Remove the outputs of an earlier session (final workspaces, submission, confirmation folds, report)."""
    for path in [*run_dir.glob("best"), *run_dir.glob("best-*"), run_dir / "confirm"]:
        shutil.rmtree(path, ignore_errors=True)
    for name in (SUBMISSION_NAME, "report.html"):
        (run_dir / name).unlink(missing_ok=True)


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
