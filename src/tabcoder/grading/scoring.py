"""Grading: a checked submission scored with the task's metric against the labels the harness kept.

Scope: `grade_submission` -> `Grade` (valid or not, the `Score`, the problems, the row count). The checks
are `grading.submission`'s; this module only turns the aligned predictions and the labels into the
metric's inputs and scores them. Nothing here runs code or writes files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabcoder.grading.submission import prediction_kind, read_and_check, to_classes
from tabcoder.metrics import Score
from tabcoder.task import Task

log = logging.getLogger(__name__)


@dataclass
class Grade:
    """How a submission graded: valid or not, its score, and what is wrong with it."""

    valid: bool
    score: Score  # Score.worst(...) when invalid
    problems: list[str]  # precise, actionable messages for the model, empty when valid
    n_rows: int  # rows in the submission (0 when it could not be read)


def true_array(labels: pd.Series, task: Task) -> np.ndarray:
    """The labels as the metric takes them (class values, or floats), in their order."""
    if task.task_type == "regression":
        return labels.to_numpy(dtype=float)
    mapped = to_classes(labels.reset_index(drop=True), task.classes)
    raw = labels.reset_index(drop=True).astype(object)
    return mapped.where(mapped.notna(), raw).to_numpy(dtype=object)


def prediction_array(aligned: pd.DataFrame, task: Task) -> np.ndarray:
    """A checked, aligned submission as the metric takes it: labels, P(positive), an (n, k) matrix in the order of
    `task.classes`, or numbers."""
    columns = task.submission_columns[1:]
    kind = prediction_kind(task)
    if kind == "label":
        return aligned[columns[0]].to_numpy(dtype=object)
    if len(columns) > 1:  # in the order of the classes the metric is told, whatever the file's column order
        return aligned[[str(c) for c in task.classes or []]].to_numpy(dtype=float)
    return aligned[columns[0]].to_numpy(dtype=float)


def grade_submission(submission: Any, *, task: Task, labels: pd.Series) -> Grade:
    """Check a submission against the ids of `labels` (indexed by id) and score it with the task's metric."""
    checked = read_and_check(submission, task, labels.index)
    if checked.problems:
        return Grade(False, Score.worst(task.metric), checked.problems, checked.n_rows)
    spec = task.metric_spec
    try:
        value = spec.score(true_array(labels, task), prediction_array(checked.table, task), classes=task.classes,
                           positive_label=task.positive_label)
    except ValueError as exc:
        log.warning("cannot compute %s: %s", spec.name, exc)
        return Grade(False, Score.worst(task.metric), [f"the {spec.name} could not be computed: {exc}"], checked.n_rows)
    return Grade(True, Score(value, spec.name, spec.greater_is_better), [], checked.n_rows)
