"""Repeated cross-validation of a fast base model on a feature frame, scored with the task's own metric.

The folds come from `grading.make_folds` (stratified for classification when every class allows it),
once per repeat with seeds `seed, seed + 1, ...`, and are fixed for the whole CAAFE run, so a frame with
and a frame without a feature are compared on the same rows. The base model runs in this process on
one thread (HistGradientBoosting ran 4-25x slower with two OpenMP threads on 2-vCPU machines); the
frames it sees were made by feature code in the sandbox and hold no target.

Simplifications on purpose: text columns become integer codes (declared categorical to
HistGradientBoosting when they have at most 255 values), infinities become missing values, and large
tasks are cross-validated on a stratified sample of `max_rows` rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from tabcoder.errors import ConfigError
from tabcoder.grading import make_folds, make_split
from tabcoder.metrics import Score, gain
from tabcoder.task import Task

log = logging.getLogger(__name__)

BASE_MODELS = ("hgb", "rf")
_MAX_CATEGORIES = 255


@dataclass(frozen=True)
class CvScore:
    """The metric on each fold (NaN where it could not be computed) and their mean, direction-aware."""

    metric: str
    greater_is_better: bool
    folds: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        values = [v for v in self.folds if math.isfinite(v)]
        return float(np.mean(values)) if values else None

    @property
    def score(self) -> Score:
        return Score(self.mean, self.metric, self.greater_is_better)

    def gain_over(self, other: CvScore) -> float | None:
        """How much better self is than `other`, relative to |other| (positive = better); None if either failed."""
        return self.score.relative_gain_over(other.score)

    def paired_t(self, other: CvScore) -> float | None:
        """The paired t statistic of the per-fold differences (positive = self better); None if undefined.
        Equal, nonzero differences on every fold give +-inf; no difference at all gives 0.

        A consistency check, not a significance test: folds of different repeats share rows, so the
        statistic runs larger than a t distribution would say (noise features reached 2.9 on the shared
        tasks with 5 x 5 folds; see docs/caafe.md)."""
        pairs = [(a, b) for a, b in zip(self.folds, other.folds) if math.isfinite(a) and math.isfinite(b)]
        if len(pairs) < 2:
            return None
        diffs = np.array([gain(a, b, self.greater_is_better) for a, b in pairs])
        spread = diffs.std(ddof=1)
        if spread <= 1e-15:
            return 0.0 if abs(diffs.mean()) <= 1e-15 else math.copysign(math.inf, diffs.mean())
        return float(diffs.mean() / (spread / math.sqrt(len(diffs))))


def encode(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A float matrix for the base model and a mask of the columns to treat as categorical."""
    columns, categorical = [], []
    for name in frame.columns:
        values, is_category = _encode_column(frame[name])
        columns.append(values)
        categorical.append(is_category)
    matrix = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix, np.asarray(categorical, dtype=bool)


def _encode_column(series: pd.Series) -> tuple[np.ndarray, bool]:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan), False
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.astype("int64").to_numpy(dtype=float)
        stamps[series.isna().to_numpy()] = np.nan
        return stamps, False
    codes, uniques = pd.factorize(series.map(str, na_action="ignore"), sort=True)
    values = codes.astype(float)
    values[codes < 0] = np.nan
    return values, len(uniques) <= _MAX_CATEGORIES


class CrossValidator:
    """Scores feature frames of one task's fit rows by repeated K-fold CV with the task's metric."""

    def __init__(self, task: Task, fit: pd.DataFrame, *, folds: int = 5, repeats: int = 2, seed: int = 0,
                 base_model: str = "hgb", max_rows: int | None = 10_000) -> None:
        if base_model not in BASE_MODELS:
            raise ConfigError(f"unknown CAAFE base model {base_model!r}; use one of {', '.join(BASE_MODELS)}")
        if repeats < 1:
            raise ConfigError(f"CAAFE needs at least one cross-validation repeat (got {repeats})")
        self.task, self.seed, self.base_model = task, seed, base_model
        self.spec = task.metric_spec
        self.data = _sample(task, fit.reset_index(drop=True), max_rows, seed)
        self.y = self._target(self.data[task.target])
        sub_task = replace(task, train=self.data)
        self.splits = [split for r in range(repeats) for split in _fold_positions(sub_task, folds, seed + r)]

    @property
    def features(self) -> pd.DataFrame:
        """The feature columns of the rows used for CV: what feature code receives (no target, no id)."""
        return self.data[self.task.feature_columns]

    def score(self, frame: pd.DataFrame) -> CvScore:
        """The CV score of the base model on `frame` (one row per row of `features`, same order)."""
        if len(frame) != len(self.data):
            raise ValueError(f"expected {len(self.data)} rows, got {len(frame)}")
        matrix, categorical = encode(frame)
        with threadpool_limits(limits=1):
            values = tuple(self._fold_score(matrix, categorical, fit, valid) for fit, valid in self.splits)
        return CvScore(self.spec.name, self.spec.greater_is_better, values)

    # -- one fold ------------------------------------------------------------------------------------
    def _fold_score(self, matrix: np.ndarray, categorical: np.ndarray, fit: np.ndarray, valid: np.ndarray) -> float:
        model = make_base_model(self.task, categorical, kind=self.base_model, seed=self.seed)
        model.fit(matrix[fit], self.y[fit])
        predictions = predict_for_metric(model, matrix[valid], self.task)
        try:
            return self.spec.score(self.y[valid], predictions, classes=self.task.classes,
                                   positive_label=self.task.positive_label)
        except ValueError as exc:
            log.debug("CAAFE CV: %s undefined on a fold: %s", self.spec.name, exc)
            return math.nan

    def _target(self, y: pd.Series) -> np.ndarray:
        if self.task.task_type == "regression":
            return y.to_numpy(dtype=float)
        return y.to_numpy(dtype=object)


def make_base_model(task: Task, categorical: np.ndarray, *, kind: str = "hgb", seed: int = 0):
    """The fast base model: HistGradientBoosting (100 iterations, the categorical mask) or a 50-tree forest."""
    regression = task.task_type == "regression"
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestRegressor if regression else RandomForestClassifier
        return forest(n_estimators=50, min_samples_leaf=2, n_jobs=1, random_state=seed)
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    boosting = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    mask = categorical if categorical.any() else None
    return boosting(max_iter=100, early_stopping=False, categorical_features=mask, random_state=seed)


def predict_for_metric(model, matrix: np.ndarray, task: Task) -> np.ndarray:
    """Predictions in the form the task's metric scores: labels, P(positive class), a probability matrix in
    `task.classes` order, or numbers (clipped at 0 for rmsle)."""
    spec = task.metric_spec
    if task.task_type == "regression":
        predictions = model.predict(matrix)
        return np.clip(predictions, 0, None) if spec.name == "rmsle" else predictions
    if not spec.needs_proba:
        return model.predict(matrix)
    proba = model.predict_proba(matrix)
    index = {c: j for j, c in enumerate(model.classes_.tolist())}
    classes = task.classes or []  # a classification task has classes
    if task.task_type == "binary":
        positive = task.positive_label if task.positive_label is not None else classes[-1]
        return proba[:, index[positive]] if positive in index else np.zeros(len(matrix))
    aligned = np.zeros((len(matrix), len(classes)))
    for j, c in enumerate(classes):
        if c in index:
            aligned[:, j] = proba[:, index[c]]
    return aligned


def _positions(ids: pd.Series, frame_ids: pd.Index) -> np.ndarray:
    return np.sort(frame_ids.get_indexer(ids.to_numpy()))


def _fold_positions(task: Task, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit positions, valid positions) of `task.train` for each of `make_folds`' folds."""
    ids = pd.Index(task.train[task.id_column])
    return [(_positions(split.fit[task.id_column], ids), _positions(split.valid[task.id_column], ids))
            for split in make_folds(task, k=k, seed=seed)]


def _sample(task: Task, fit: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows of `fit` (stratified like the validation split), in their original order."""
    if max_rows is None or len(fit) <= max_rows:
        return fit
    kept = make_split(replace(task, train=fit), seed=seed, valid_fraction=1 - max_rows / len(fit)).fit
    log.info("CAAFE cross-validates on %d of the %d rows (max_rows)", len(kept), len(fit))
    return fit.iloc[_positions(kept[task.id_column], pd.Index(fit[task.id_column]))].reset_index(drop=True)
