"""A benchmark suite: a folder of tasks plus a folder of their test answers.

Scope: finding the tasks and the answers of a suite folder (the layout of `../shared`: `tasks/<task>/`
in Kaggle layout and `answers/<task>.csv` with the id column and the target, plus an optional
`answers/meta.json` that pins target / id / task type / metric / positive label per task), and checking
that every task has its answers and that no answers file lies inside a task folder. Nothing here loads
the tables or runs anything; `SuiteTask.overrides` are handed to `RunConfig` as task overrides.

Accepted layouts for `load_suite(path)`:
- `path/tasks/<task>/` and `path/answers/<task>.csv` (a suite root);
- `path/<task>/` with the answers in `--answers DIR`, or else in the sibling folder `path/../answers`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from tabcoder.errors import TaskError

ANSWERS_DIR = "answers"
TASKS_DIR = "tasks"
META_NAME = "meta.json"
# meta.json keys -> RunConfig task-override fields
_META_KEYS = {"target": "target", "id": "id_column", "id_column": "id_column", "task_type": "task_type",
              "metric": "metric", "positive_label": "positive_label"}


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: its folder, its answers file, and the settings the suite pins for it."""

    name: str
    path: Path
    answers: Path
    overrides: dict = field(default_factory=dict, compare=False)  # RunConfig field -> value


@dataclass(frozen=True)
class Suite:
    name: str
    tasks_dir: Path
    answers_dir: Path
    tasks: tuple[SuiteTask, ...]

    def select(self, names: list[str] | None) -> Suite:
        """The suite restricted to `names` (in the suite's order); TaskError naming unknown tasks."""
        if not names:
            return self
        known = {t.name for t in self.tasks}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TaskError(f"suite {self.name!r} has no task(s) {', '.join(unknown)}; "
                            f"its tasks are: {', '.join(sorted(known))}")
        return replace(self, tasks=tuple(t for t in self.tasks if t.name in names))


def _is_task_folder(folder: Path) -> bool:
    if not folder.is_dir() or folder.name.startswith("."):
        return False
    return (folder / "columns.py").is_file() or any(
        f.is_file() and f.name.lower().startswith("train.") for f in folder.iterdir())


def _locate(path: Path, answers: Path | None) -> tuple[Path, Path]:
    """(tasks folder, answers folder); the answers folder may not exist."""
    if (path / TASKS_DIR).is_dir():
        return path / TASKS_DIR, answers or path / ANSWERS_DIR
    return path, answers or path.parent / ANSWERS_DIR


def _suite_name(tasks_dir: Path) -> str:
    return tasks_dir.parent.name if tasks_dir.name == TASKS_DIR else tasks_dir.name


def read_meta(answers_dir: Path) -> dict[str, dict]:
    """answers/meta.json as {task: {RunConfig field: value}}; null values are dropped."""
    path = answers_dir / META_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot read {path}: {exc}. It must be JSON: {{\"task\": {{\"target\": ..., "
                        "\"metric\": ...}}}}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise TaskError(f"{path} must map each task name to an object of settings (target, id, task_type, "
                        "metric, positive_label)")
    return {task: {_META_KEYS[k]: v for k, v in settings.items() if k in _META_KEYS and v is not None}
            for task, settings in data.items()}


def load_suite(path: str | Path, *, answers: str | Path | None = None) -> Suite:
    """The suite in `path` (see the module docstring for the layouts). TaskError when the folder does not
    exist, holds no task, or when answers are missing (the bench grades every task on its test labels)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TaskError(f"suite folder {path} does not exist; pass a folder with tasks/<task>/ and "
                        "answers/<task>.csv, or `builtin` for the built-in suite")
    tasks_dir, answers_dir = _locate(path, None if answers is None else Path(answers).expanduser())
    folders = sorted(f for f in tasks_dir.iterdir() if _is_task_folder(f))
    if not folders:
        raise TaskError(f"no task in {tasks_dir}: a task is a folder with a train.* file (Kaggle layout) or a "
                        "columns.py; a suite is a folder of such task folders")
    if not answers_dir.is_dir():
        raise TaskError(f"suite {path} has no answers folder {answers_dir}: the bench grades each task on its "
                        "true test labels. Put them there as <task>.csv (id column + target), or pass --answers DIR")
    return Suite(_suite_name(tasks_dir), tasks_dir, answers_dir, _suite_tasks(folders, answers_dir))


def _suite_tasks(folders: list[Path], answers_dir: Path) -> tuple[SuiteTask, ...]:
    meta = read_meta(answers_dir)
    missing = [f.name for f in folders if not (answers_dir / f"{f.name}.csv").is_file()]
    if missing:
        raise TaskError(f"no answers for the task(s) {', '.join(missing)}: expected "
                        f"{answers_dir}/<task>.csv with the id column and the target of each test row")
    tasks = []
    for folder in folders:
        answer_file = answers_dir / f"{folder.name}.csv"
        if answer_file.resolve().is_relative_to(folder.resolve()):
            raise TaskError(f"the answers {answer_file} lie inside the task folder {folder}: move them out, "
                            "so that test labels can never reach a workspace")
        tasks.append(SuiteTask(folder.name, folder, answer_file, meta.get(folder.name, {})))
    return tuple(tasks)
