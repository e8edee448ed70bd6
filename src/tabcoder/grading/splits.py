"""Hold-out splits and sample submissions: the harness cuts a task's labelled rows into what the generated
code gets and what the harness keeps.

Scope: `make_split` (one seeded, stratified hold-out) and `make_folds` (K folds) return `Split`s: the fit
rows with labels and the validation rows without (given to the code as train.csv / test.csv), the
validation labels (never written to a workspace), and a sample submission for the validation ids
(`make_sample_submission`, also used for the real test set). Nothing here reads a submission, scores,
runs code or writes files (see `grading.submission` and `grading.scoring`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from tabcoder.errors import ConfigError, TaskError
from tabcoder.task import Task

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- sample submissions


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
        for c in task.classes or []:
            sample[str(c)] = float(priors.get(c, 0.0))
    else:
        sample[task.target] = _constant_prediction(task, y)
    return sample
