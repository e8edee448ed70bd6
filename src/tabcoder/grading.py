"""The harness side of evaluation: hold-out splits, sample submissions, and the checking and grading of
a submission against labels that the generated code never sees.

Scope: `make_split` / `make_folds` cut a task's labelled rows into what the code gets (fit rows with
labels, validation rows without) and what the harness keeps (the validation labels).
`check_submission` turns every defect of a submission into one precise line a small model can act on;
`grade_submission` scores a valid submission with the task's metric. Nothing here runs code or writes
files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from tabcoder.errors import ConfigError, TaskError
from tabcoder.metrics import Score
from tabcoder.task import Task
from tabcoder.task.ids import id_keys, text_key

log = logging.getLogger(__name__)

SUBMISSION_NAME = "submission.csv"
TEST_NAME = "test.csv"
MAX_EXAMPLES = 5
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}


# =========================================================================== splits


@dataclass
class Split:
    """One hold-out split. `fit` and `valid` are what the code sees; `labels` stays with the harness."""

    fit: pd.DataFrame  # labelled rows given to the code as train.csv (id, features, target)
    valid: pd.DataFrame  # validation rows WITHOUT the target (id + features), given as test.csv
    labels: pd.Series  # validation labels, indexed by id value (never written to a workspace)
    sample_submission: pd.DataFrame  # rows for the valid ids, columns task.submission_columns


def _stratify_on(task: Task) -> pd.Series | None:
    return None if task.task_type == "regression" else task.train[task.target]


def _check_rows(task: Task, needed: int) -> None:
    if len(task.train) < needed:
        raise TaskError(f"task {task.name!r} has only {len(task.train)} labelled rows; at least {needed} are needed "
                        "to hold some out for validation")


def make_split(task: Task, *, seed: int = 0, valid_fraction: float = 0.2) -> Split:
    """Hold out `valid_fraction` of the train rows; stratified by class for classification (plain when a
    class is too small to stratify). Reproducible for a given seed; rows keep their file order."""
    if not isinstance(valid_fraction, (int, float)) or not 0 < valid_fraction < 1:
        raise ConfigError(f"valid_fraction must be a number between 0 and 1 (exclusive), got {valid_fraction!r}; "
                          "e.g. 0.2 holds out a fifth of the rows")
    _check_rows(task, 2)
    rows = np.arange(len(task.train))
    stratify = _stratify_on(task)
    try:
        fit_rows, valid_rows = train_test_split(rows, test_size=valid_fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        if stratify is None:
            raise ConfigError(f"cannot hold out {valid_fraction} of {len(rows)} rows: {exc}") from exc
        log.info("stratified split impossible (%s): using a plain random split", exc)
        fit_rows, valid_rows = train_test_split(rows, test_size=valid_fraction, random_state=seed)
    return _build_split(task, np.sort(fit_rows), np.sort(valid_rows))


def make_folds(task: Task, *, k: int = 5, seed: int = 0) -> list[Split]:
    """k cross-validation splits (StratifiedKFold for classification when every class has k rows, else
    KFold); every train row is in exactly one fold's `valid`."""
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"the number of folds must be an integer >= 2, got {k!r}")
    _check_rows(task, k)
    stratify = _stratify_on(task)
    if stratify is not None and stratify.value_counts().min() >= k:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        if stratify is not None:
            log.info("a class has fewer than %d rows: using plain KFold", k)
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    rows = np.arange(len(task.train))
    labels = stratify if stratify is not None else rows
    return [_build_split(task, np.sort(f), np.sort(v)) for f, v in splitter.split(rows, labels)]


def _build_split(task: Task, fit_rows: np.ndarray, valid_rows: np.ndarray) -> Split:
    fit = task.train.iloc[fit_rows].reset_index(drop=True)
    held_out = task.train.iloc[valid_rows]
    valid = held_out.drop(columns=[task.target]).reset_index(drop=True)
    labels = held_out.set_index(task.id_column)[task.target]
    sample = make_sample_submission(task, valid[task.id_column], reference=fit)
    return Split(fit=fit, valid=valid, labels=labels, sample_submission=sample)


# =========================================================================== sample submissions


def _constant_prediction(task: Task, y: pd.Series) -> Any:
    """A plausible constant: the metric-optimal constant for regression, else the majority class."""
    if task.task_type == "regression":
        values = y.astype(float)
        if task.metric == "mae":
            return float(values.median())
        if task.metric == "rmsle" and (values >= 0).all():
            return float(np.expm1(np.log1p(values).mean()))
        return float(values.mean())
    counts = y.value_counts()
    classes = task.classes or list(counts.index)
    return max(classes, key=lambda c: (counts.get(c, 0), -classes.index(c)))


def make_sample_submission(task: Task, ids: Iterable, *, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """A submission for `ids` in the task's format, filled with a constant computed from `reference`
    (default: all train rows): majority class, 0.5, per-class priors, or the mean (median for mae)."""
    reference = task.train if reference is None else reference
    y = reference[task.target]
    id_values = pd.Series(ids).reset_index(drop=True) if not isinstance(ids, pd.Series) else ids.reset_index(drop=True)
    sample = pd.DataFrame({task.id_column: id_values})
    spec = task.metric_spec
    if spec.needs_proba and task.task_type == "binary":
        sample[task.target] = 0.5
    elif spec.needs_proba:
        priors = y.value_counts(normalize=True)
        for c in task.classes:
            sample[str(c)] = float(priors.get(c, 0.0))
    else:
        sample[task.target] = _constant_prediction(task, y)
    return sample


# =========================================================================== checking submissions


@dataclass
class Grade:
    valid: bool
    score: Score  # Score.worst(...) when invalid
    problems: list[str]  # precise, actionable messages for the model, empty when valid
    n_rows: int  # rows in the submission (0 when it could not be read)


@dataclass
class _Checked:
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


def _to_classes(values: pd.Series, classes: list) -> pd.Series:
    """Map submitted labels to the task's class values (1.0 -> 1, " Yes" -> "Yes", "true" -> True); values
    that match no class become NaN."""
    kind, mapping = _class_label_map(classes)
    if kind == "number":
        keys = _numbers(values)
    elif kind == "bool":
        keys = values.map(lambda v: text_key(v).lower() if isinstance(text_key(v), str) else np.nan)
    else:
        keys = values.map(text_key)
    return keys.map(lambda k: mapping.get(k, np.nan) if k == k else np.nan).astype(object)


def _label_problems(values: pd.Series, task: Task, column: str) -> list[str]:
    mapped = _to_classes(values, task.classes)
    unseen = values[mapped.isna() & ~_is_missing(values)]
    if not len(unseen):
        return []
    distinct = list(pd.unique(unseen))
    allowed = _examples(task.classes, limit=20)
    hint = _label_hint(distinct, task)
    return [f"column `{column}` has {len(unseen)} values that are not class labels seen in training: "
            f"{_examples(distinct)} (allowed labels: {allowed}).{hint}"]


def _label_hint(distinct: list, task: Task) -> str:
    numbers = pd.to_numeric(pd.Series(distinct), errors="coerce")
    if numbers.notna().all() and ((numbers >= 0) & (numbers <= 1)).all() and not numbers.isin([0, 1]).all():
        return (f" These look like probabilities, but the metric {task.metric} needs class labels: "
                "use model.predict(), not predict_proba().")
    lowered = {str(c).strip().lower() for c in task.classes}
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


def _prediction_kind(task: Task) -> str:
    if task.task_type == "regression":
        return "number"
    if task.metric_spec.needs_proba:
        return "proba"
    return "label"


def _value_problems(table: pd.DataFrame, task: Task, ids: pd.Series | None) -> list[str]:
    kind = _prediction_kind(task)
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
    kind = _prediction_kind(task)
    columns = task.submission_columns[1:]
    for column in columns:
        values = rows[column]
        if kind == "label":
            aligned[column] = _to_classes(values, task.classes)
        else:
            aligned[column] = _numbers(values)
    if kind == "proba" and task.task_type == "multiclass":
        aligned[columns] = aligned[columns].div(aligned[columns].sum(axis=1), axis=0)
    return aligned


def _check(submission: Any, task: Task, expected_ids: Iterable) -> _Checked:
    expected = pd.Series(list(expected_ids) if not isinstance(expected_ids, (pd.Series, pd.Index)) else expected_ids)
    expected = expected.reset_index(drop=True)
    table, problems = _read_submission(submission)
    if table is None:
        return _Checked(None, problems, 0)
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
        return _Checked(None, problems, len(table))
    return _Checked(_aligned_table(table, keys, expected, task), [], len(table))


def check_submission(submission: Any, *, task: Task, expected_ids: Iterable) -> tuple[pd.DataFrame | None, list[str]]:
    """Validate a submission (a CSV path or a DataFrame) for `expected_ids`.

    Returns (aligned, problems): `aligned` has the task's submission columns, one row per expected id in
    that order, predictions typed (class values, or floats with multiclass rows normalised to sum 1); it is
    None when there are problems, each one line saying what is wrong and what to do."""
    checked = _check(submission, task, expected_ids)
    return checked.table, checked.problems


def _y_true(labels: pd.Series, task: Task) -> np.ndarray:
    if task.task_type == "regression":
        return labels.to_numpy(dtype=float)
    mapped = _to_classes(labels.reset_index(drop=True), task.classes)
    raw = labels.reset_index(drop=True).astype(object)
    return mapped.where(mapped.notna(), raw).to_numpy(dtype=object)


def _y_pred(aligned: pd.DataFrame, task: Task) -> np.ndarray:
    columns = task.submission_columns[1:]
    kind = _prediction_kind(task)
    if kind == "label":
        return aligned[columns[0]].to_numpy(dtype=object)
    if len(columns) > 1:
        return aligned[columns].to_numpy(dtype=float)
    return aligned[columns[0]].to_numpy(dtype=float)


def grade_submission(submission: Any, *, task: Task, labels: pd.Series) -> Grade:
    """Check a submission against the ids of `labels` (indexed by id) and score it with the task's metric."""
    checked = _check(submission, task, labels.index)
    if checked.problems:
        return Grade(False, Score.worst(task.metric), checked.problems, checked.n_rows)
    spec = task.metric_spec
    try:
        value = spec.score(_y_true(labels, task), _y_pred(checked.table, task), classes=task.classes,
                           positive_label=task.positive_label)
    except ValueError as exc:
        log.warning("cannot compute %s: %s", spec.name, exc)
        return Grade(False, Score.worst(task.metric), [f"the {spec.name} could not be computed: {exc}"], checked.n_rows)
    return Grade(True, Score(value, spec.name, spec.greater_is_better), [], checked.n_rows)
