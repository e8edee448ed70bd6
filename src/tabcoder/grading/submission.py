"""Reading and checking a submission: every defect becomes one precise line a small model can act on.

Scope: `check_submission` reads a `submission.csv` (or takes a DataFrame), checks its columns, its ids
against the expected ones (`task.ids` says when two ids are the same) and every prediction value (class
labels, probabilities, numbers) for the task's metric, and returns the submission aligned to the expected
ids with typed predictions. It does not score (`grading.scoring`), and it never sees labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabcoder.task import Task
from tabcoder.task.ids import id_keys, text_key

SUBMISSION_NAME = "submission.csv"
TEST_NAME = "test.csv"
MAX_EXAMPLES = 5
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}


@dataclass
class Checked:
    """A read and checked submission: the aligned table (None when there are problems), the problems, and
    how many rows it had (0 when it could not be read)."""

    table: pd.DataFrame | None
    problems: list[str]
    n_rows: int


def _examples(values: Iterable, limit: int = MAX_EXAMPLES, *, quote: bool = True) -> str:
    """Up to `limit` values, comma-separated; text quoted unless `quote` is False (ids are shown as in a CSV)."""
    values = list(values)
    shown = ", ".join(repr(v) if quote and isinstance(v, str) else str(v) for v in values[:limit])
    return shown + (", …" if len(values) > limit else "")


def _read_submission(submission: Any) -> tuple[pd.DataFrame | None, list[str]]:
    if isinstance(submission, pd.DataFrame):
        if submission.empty:
            return None, [f"the submission has no rows: write one row per row of {TEST_NAME}"]
        return submission.copy(), []
    path = Path(submission)
    name = path.name
    if not path.is_file():
        return None, [f"{name} was not written to the working directory: save the predictions with "
                      f"submission.to_csv(\"{name}\", index=False) in the current directory"]
    try:
        table = pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        return None, [f"{name} is empty: write a header line and one row per row of {TEST_NAME}"]
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, [f"{name} could not be read as CSV ({first_line}): write it with pandas "
                      f"DataFrame.to_csv(\"{name}\", index=False)"]
    if table.empty:
        return None, [f"{name} has a header ({', '.join(map(str, table.columns))}) but no rows: "
                      f"write one row per row of {TEST_NAME}"]
    return table, []


def _column_problems(table: pd.DataFrame, task: Task) -> list[str]:
    expected = task.submission_columns
    found = [str(c) for c in table.columns]
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    problems = []
    if missing:
        hints = [_missing_column_hint(c, found) for c in missing]
        hint = "".join(h for h in hints if h)
        if task.task_type == "multiclass" and len(missing) > 1 and task.target in found:
            hint += (f" The metric {task.metric} needs one probability column per class named exactly "
                     f"{', '.join(expected[1:])} (from predict_proba), not a single `{task.target}` label column.")
        problems.append(f"missing column(s) {', '.join(missing)}; expected columns exactly: {', '.join(expected)}; "
                        f"found: {', '.join(found)}.{hint}")
    if extra:
        hint = ""
        if any(c.startswith("Unnamed") for c in extra):
            hint = " A column named 'Unnamed: …' is the DataFrame index: write the file with index=False."
        problems.append(f"unexpected extra column(s) {', '.join(extra)}; write exactly the columns "
                        f"{', '.join(expected)}.{hint}")
    return problems


def _missing_column_hint(column: str, found: list[str]) -> str:
    near = [f for f in found if f.strip().lower() == column.lower() and f != column]
    return f" Found {near[0]!r} instead of {column!r}: column names are case- and space-sensitive." if near else ""


def _numbers(values: pd.Series) -> pd.Series:
    """Floats; text is stripped first; whatever is not a number becomes NaN."""
    stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    return pd.to_numeric(stripped, errors="coerce").astype(float)


def _id_problems(ids: pd.Series, expected: pd.Series, column: str) -> tuple[list[str], pd.Series]:
    """Problems with the submitted ids, and the submitted id keys (`task.ids` says when two ids are the same)."""
    keys = id_keys(ids, expected)
    expected_keys = id_keys(expected, expected)
    expected_set = set(expected_keys)
    problems = []
    if len(ids) != len(expected):
        problems.append(f"{SUBMISSION_NAME} has {len(ids)} rows but {TEST_NAME} has {len(expected)}: "
                        f"write exactly one row per row of {TEST_NAME}")
    empty = _is_missing(ids)
    if empty.any():
        problems.append(f"{int(empty.sum())} rows have an empty `{column}`: copy the `{column}` column of {TEST_NAME}")
    missing = expected[~expected_keys.isin(set(keys.dropna()))]
    if len(missing):
        problems.append(f"{len(missing)} of the {len(expected)} ids of {TEST_NAME} have no row (e.g. "
                        f"{_examples(missing, quote=False)}): predict every row of {TEST_NAME}")
    unreadable = keys.isna() & ~empty  # e.g. text where numeric ids are expected
    unknown = ids[unreadable | (keys.notna() & ~keys.isin(expected_set))]
    if len(unknown):
        problems.append(f"{len(unknown)} `{column}` values are not ids of {TEST_NAME} "
                        f"(e.g. {_examples(unknown, quote=False)}): "
                        f"copy the `{column}` column of {TEST_NAME} unchanged")
    duplicated = ids[keys.notna() & keys.duplicated(keep=False)]
    if len(duplicated):
        problems.append(f"{duplicated.nunique()} ids appear more than once (e.g. "
                        f"{_examples(pd.unique(duplicated), quote=False)}): write exactly one row per id")
    return problems, keys


# --------------------------------------------------------------------------- prediction values


def _is_missing(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def _empty_problem(values: pd.Series, ids: pd.Series | None, column: str) -> str | None:
    empty = _is_missing(values)
    if not empty.any():
        return None
    where = f" (e.g. ids {_examples(ids[empty], quote=False)})" if ids is not None else ""
    return (f"column `{column}` has {int(empty.sum())} empty (NaN) predictions{where}: every row needs a "
            "prediction; fill missing feature values before predicting")


def _to_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(numbers, the non-empty values that are not numbers)."""
    numbers = _numbers(values)
    bad = values[numbers.isna() & ~_is_missing(values)]
    return numbers, bad


def _class_label_map(classes: list) -> tuple[str, dict]:
    """How submitted values are matched to classes: ("number", {float: class}), ("bool", {...}) or
    ("text", {stripped text: class})."""
    if all(isinstance(c, (bool, np.bool_)) for c in classes):
        return "bool", {**_BOOL_WORDS}
    if all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool) for c in classes):
        return "number", {float(c): c for c in classes}
    return "text", {text_key(c): c for c in classes}


def to_classes(values: pd.Series, classes: list | None) -> pd.Series:
    """Map submitted labels to the task's class values (1.0 -> 1, " Yes" -> "Yes", "true" -> True); values
    that match no class become NaN."""
    kind, mapping = _class_label_map(classes or [])
    if kind == "number":
        keys = _numbers(values)
    elif kind == "bool":
        keys = values.map(lambda v: text_key(v).lower() if isinstance(text_key(v), str) else np.nan)
    else:
        keys = values.map(text_key)
    return keys.map(lambda k: mapping.get(k, np.nan) if k == k else np.nan).astype(object)


def _label_problems(values: pd.Series, task: Task, column: str) -> list[str]:
    mapped = to_classes(values, task.classes)
    unseen = values[mapped.isna() & ~_is_missing(values)]
    if not len(unseen):
        return []
    distinct = list(pd.unique(unseen))
    allowed = _examples(task.classes or [], limit=20)
    hint = _label_hint(distinct, task)
    return [f"column `{column}` has {len(unseen)} values that are not class labels seen in training: "
            f"{_examples(distinct)} (allowed labels: {allowed}).{hint}"]


def _label_hint(distinct: list, task: Task) -> str:
    numbers = pd.to_numeric(pd.Series(distinct), errors="coerce")
    if numbers.notna().all() and ((numbers >= 0) & (numbers <= 1)).all() and not numbers.isin([0, 1]).all():
        return (f" These look like probabilities, but the metric {task.metric} needs class labels: "
                "use model.predict(), not predict_proba().")
    lowered = {str(c).strip().lower() for c in task.classes or []}
    if any(str(v).strip().lower() in lowered for v in distinct):
        return " Labels are case-sensitive: write them exactly as in train.csv."
    return ""


def _probability_problems(values: pd.Series, task: Task, column: str) -> list[str]:
    numbers, bad = _to_numbers(values)
    problems = []
    if len(bad):
        what = (f"the probability that `{task.target}` is {task.positive_label!r}"
                if task.task_type == "binary" else f"the probability of class {column!r}")
        problems.append(f"column `{column}` must hold {what} (a number between 0 and 1), but {len(bad)} values are "
                        f"not numbers (e.g. {_examples(pd.unique(bad))}): use predict_proba(), not predict()")
    outside = numbers[(numbers < 0) | (numbers > 1)]
    if len(outside):
        problems.append(f"column `{column}` has {len(outside)} values outside [0, 1] (e.g. "
                        f"{_examples(outside.round(4))}): probabilities must be between 0 and 1")
    return problems


def _number_problems(values: pd.Series, task: Task, column: str) -> list[str]:
    numbers, bad = _to_numbers(values)
    problems = []
    if len(bad):
        problems.append(f"column `{column}` must hold numbers, but {len(bad)} values are not "
                        f"(e.g. {_examples(pd.unique(bad))})")
    infinite = numbers[np.isinf(numbers)]
    if len(infinite):
        problems.append(f"column `{column}` has {len(infinite)} infinite values: predict finite numbers")
    negative = numbers[numbers < 0]
    if task.metric == "rmsle" and len(negative):
        problems.append(f"column `{column}` has {len(negative)} negative predictions (e.g. "
                        f"{_examples(negative.round(4))}) but rmsle needs predictions >= 0: clip them at 0 "
                        "(e.g. numpy.clip(pred, 0, None))")
    return problems


def prediction_kind(task: Task) -> str:
    if task.task_type == "regression":
        return "number"
    if task.metric_spec.needs_proba:
        return "proba"
    return "label"


def _value_problems(table: pd.DataFrame, task: Task, ids: pd.Series | None) -> list[str]:
    kind = prediction_kind(task)
    problems = []
    for column in task.submission_columns[1:]:
        if column not in table.columns:
            continue
        values = table[column]
        empty = _empty_problem(values, ids, column)
        if empty:
            problems.append(empty)
        if kind == "label":
            problems += _label_problems(values, task, column)
        elif kind == "proba":
            problems += _probability_problems(values, task, column)
        else:
            problems += _number_problems(values, task, column)
    complete = all(c in table.columns for c in task.submission_columns[1:])
    if kind == "proba" and task.task_type == "multiclass" and complete and not problems:
        problems += _row_sum_problems(table, task)
    return problems


def _row_sum_problems(table: pd.DataFrame, task: Task) -> list[str]:
    sums = table[task.submission_columns[1:]].apply(_numbers).sum(axis=1)
    zero = int((sums <= 0).sum())
    if zero:
        return [f"{zero} rows have class probabilities that are all 0: each row must sum to 1 (predict_proba)"]
    return []


# --------------------------------------------------------------------------- aligned table


def _aligned_table(table: pd.DataFrame, keys: pd.Series, expected: pd.Series, task: Task) -> pd.DataFrame:
    """The submission in the order of `expected`, with typed predictions (classes / floats, rows normalised)."""
    order = pd.Index(keys.to_numpy()).get_indexer(id_keys(expected, expected).to_numpy())
    rows = table.iloc[order].reset_index(drop=True)
    aligned = pd.DataFrame({task.id_column: expected.reset_index(drop=True)})
    kind = prediction_kind(task)
    columns = task.submission_columns[1:]
    for column in columns:
        values = rows[column]
        if kind == "label":
            aligned[column] = to_classes(values, task.classes)
        else:
            aligned[column] = _numbers(values)
    if kind == "proba" and task.task_type == "multiclass":
        aligned[columns] = aligned[columns].div(aligned[columns].sum(axis=1), axis=0)
    return aligned


def read_and_check(submission: Any, task: Task, expected_ids: Iterable) -> Checked:
    expected = pd.Series(list(expected_ids) if not isinstance(expected_ids, (pd.Series, pd.Index)) else expected_ids)
    expected = expected.reset_index(drop=True)
    table, problems = _read_submission(submission)
    if table is None:
        return Checked(None, problems, 0)
    table = table.reset_index(drop=True)
    table.columns = [str(c) for c in table.columns]
    problems = _column_problems(table, task)
    ids, keys = None, None
    if task.id_column in table.columns:
        ids = table[task.id_column]
        id_problems, keys = _id_problems(ids, expected, task.id_column)
        problems = id_problems + problems if len(ids) != len(expected) else problems + id_problems
    problems += _value_problems(table, task, ids)
    if problems:
        return Checked(None, problems, len(table))
    return Checked(_aligned_table(table, keys, expected, task), [], len(table))


def check_submission(submission: Any, *, task: Task, expected_ids: Iterable) -> tuple[pd.DataFrame | None, list[str]]:
    """Validate a submission (a CSV path or a DataFrame) for `expected_ids`.

    Returns (aligned, problems): `aligned` has the task's submission columns, one row per expected id in
    that order, predictions typed (class values, or floats with multiclass rows normalised to sum 1); it is
    None when there are problems, each one line saying what is wrong and what to do."""
    checked = read_and_check(submission, task, expected_ids)
    return checked.table, checked.problems
