"""Load a tabular task: read its tables, infer what was not given, validate, and describe it as a `Task`.

    task = load_task("data/titanic")              # a folder: Kaggle layout or ML-hw columns.py
    task = load_task("houses.parquet", target="price")   # a single table file
    task.target, task.id_column, task.task_type, task.metric, task.notes

Modules, along the way a task is loaded: `tables` (one file to a DataFrame, `read_table`), `layouts` (the
three input layouts to `Sources`, `parse_columns_py`, `description_for_prompt`), `inference` (target, id,
task type, classes, positive label, metric), `output_kind` (what the sample submission and the description
ask a submission to hold: labels, probabilities, one column per class), `checks` (the tables against the
settled target and id), `ids` (when two ids are the same, shared with `grading`), `model` (`Task`) and
`wording` (message text).
Every inference is recorded in `Task.notes`. Bad input raises `TaskError` (or `ConfigError` for a bad
option) whose message says what is wrong and how to fix it. Nothing here splits or grades data (see
`grading`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tabcoder.task.checks import (
    check_sample_submission,
    check_test_columns,
    drop_empty_target_from_test,
    drop_missing_target,
    submission_columns_for,
)
from tabcoder.task.inference import (
    resolve_metric,
    resolve_target,
    setting,
    settle_id,
    settle_positive_label,
    settle_task_type,
)
from tabcoder.task.layouts import (
    MAX_COLUMNS_PY_BYTES,
    MAX_COLUMNS_PY_DEPTH,
    MAX_DESCRIPTION_CHARS,
    description_for_prompt,
    load_sources,
    parse_columns_py,
)
from tabcoder.task.model import Task
from tabcoder.task.output_kind import usable_sample
from tabcoder.task.submission_format import SubmissionFormat, submission_format
from tabcoder.task.tables import TABLE_SUFFIXES, read_table

__all__ = [
    "MAX_COLUMNS_PY_BYTES", "MAX_COLUMNS_PY_DEPTH", "MAX_DESCRIPTION_CHARS", "TABLE_SUFFIXES", "SubmissionFormat", "Task",
    "description_for_prompt", "load_task", "parse_columns_py", "read_table",
]

log = logging.getLogger(__name__)


def load_task(path: str | Path, *, target: str | None = None, id_column: str | None = None,
              task_type: str | None = None, metric: str | None = None, positive_label: Any = None,
              test_path: str | Path | None = None) -> Task:
    """Load a task from a folder (Kaggle layout or ML-hw `columns.py`) or a single table file.

    Keyword arguments override task.toml / columns.py; anything not given is inferred and noted."""
    path = Path(path)
    sources = load_sources(path, None if test_path is None else Path(test_path))
    target_name = resolve_target(sources, setting(target, sources, "target"))
    drop_empty_target_from_test(sources, target_name)
    id_name, id_generated = settle_id(sources, setting(id_column, sources, "id"), target_name)
    check_test_columns(sources, id_name, target_name)
    drop_missing_target(sources, target_name)
    kind, classes = settle_task_type(sources, setting(task_type, sources, "task_type"), target_name)
    positive = settle_positive_label(sources, setting(positive_label, sources, "positive_label"), target_name,
                                     kind, classes)
    kind_id = None if id_generated else id_name  # a generated id is in no sample submission
    metric_name = resolve_metric(setting(metric, sources, "metric"), kind, sources.train[target_name], sources,
                                 classes=classes, target=target_name, id_column=kind_id)
    submission_columns = submission_columns_for(id_name, target_name, kind, metric_name, classes,
                                                usable_sample(sources, kind_id))
    sample = check_sample_submission(sources, id_name, id_generated, submission_columns)
    for note in sources.notes:
        log.info("task %s: %s", sources.name, note)
    return Task(
        name=sources.name, train=sources.train, test=sources.test, target=target_name, id_column=id_name,
        id_generated=id_generated, task_type=kind, metric=metric_name, positive_label=positive,
        classes=classes, description=sources.description, sample_submission=sample,
        submission_columns=submission_columns, source=path, notes=sources.notes,
        submission_format=submission_format(
            columns=submission_columns, id_column=id_name, classes=classes, test=sources.test, sample=sample,
            cells=sources.sample_cells if sample is not None else None, line_end=sources.sample_line_end,
            sample_name=sources.sample_name),
    )
