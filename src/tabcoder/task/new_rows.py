"""New rows to predict, checked against a task's feature columns before any code sees them.

Scope: `check_new_rows` takes a table (any format `read_table` reads, already read) and returns it with the
id column first and the features in train's order, numbers read as numbers where train has numbers, and
rows numbered when it has no id column (noted). What cannot be right raises `TaskError` saying what to do:
no rows, missing or unknown columns, the target's values, ids missing or repeated, text where train has
numbers. Nothing here predicts (see `tabcoder.prediction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tabcoder.errors import TaskError
from tabcoder.task.model import Task
from tabcoder.task.wording import listed


@dataclass
class NewRows:
    table: pd.DataFrame  # the id column, then the features in train's order
    notes: list[str] = field(default_factory=list)


def check_new_rows(table: pd.DataFrame, task: Task, name: str = "the new rows") -> NewRows:
    """`table` checked against `task`'s features (see the module docstring); `name` names it in messages."""
    if len(table) == 0 or table.shape[1] == 0:
        raise TaskError(f"{name} has no rows to predict; give a table with the feature columns and at least one row")
    table = table.copy()
    table.columns = [str(c) for c in table.columns]
    notes: list[str] = []
    if task.target in table.columns:
        if table[task.target].notna().any():
            raise TaskError(f"{name} holds the target column {task.target!r} with values: remove it (the solution "
                            "predicts it; nothing in the new rows may hold it)")
        table = table.drop(columns=[task.target])
        notes.append(f"dropped the empty target column {task.target!r}")
    features = task.feature_columns
    missing = [c for c in features if c not in table.columns]
    extra = [c for c in table.columns if c not in features and c != task.id_column]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing feature column(s) {listed(missing)}")
        if extra:
            parts.append(f"column(s) {listed(extra)} that are not features of the task")
        raise TaskError(f"{name} does not have the task's columns: {'; '.join(parts)}. It needs the id column "
                        f"{task.id_column!r} (optional) and exactly the {len(features)} feature columns of the "
                        f"training data: {listed(features)}")
    if task.id_column not in table.columns:
        table.insert(0, task.id_column, np.arange(len(table)))
        notes.append(f"no id column {task.id_column!r}: rows numbered 0..{len(table) - 1}")
    _check_ids(table[task.id_column], task.id_column, name)
    for column in features:
        table[column] = _typed_like(table[column], task.train[column], column, name)
    return NewRows(table[[task.id_column, *features]].reset_index(drop=True), notes)


def _check_ids(ids: pd.Series, column: str, name: str) -> None:
    missing = int(ids.isna().sum())
    if missing:
        raise TaskError(f"{missing} rows of {name} have no id in column {column!r}: fill them, or drop the column "
                        "to have the rows numbered")
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        raise TaskError(f"column {column!r} of {name} repeats {repeated.nunique()} id(s) (e.g. "
                        f"{listed(pd.unique(repeated)[:5])}): ids must be unique; drop the column to have the rows "
                        "numbered")


def _typed_like(values: pd.Series, trained: pd.Series, column: str, name: str) -> pd.Series:
    """`values` as numbers when train has numbers in `column` (TaskError for text that is not one)."""
    if not pd.api.types.is_numeric_dtype(trained) or pd.api.types.is_bool_dtype(trained):
        return values
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    bad = values[numbers.isna() & text.notna() & (text.astype(str) != "")]
    if len(bad):
        raise TaskError(f"column {column!r} of {name} must hold numbers, as in the training data, but "
                        f"{len(bad)} values are not (e.g. {listed(pd.unique(bad)[:5])}); fix them or leave them "
                        "empty")
    return numbers
