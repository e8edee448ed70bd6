"""Metric specs: each metric's direction, whether it scores probabilities, where it applies, and the
resolution of a metric name or alias.

Scope: `MetricSpec` (its `score` calls the metric's function in `metrics.functions`), the registry
`METRICS`, `get_metric` (names and aliases, a ConfigError with a suggestion otherwise), the metrics of a
task type and its default. Nothing here reads files or free text (`metrics.text`) or compares scores
(`metrics.score`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tabcoder.errors import ConfigError
from tabcoder.metrics import functions as fn

TASK_TYPES: tuple[str, ...] = ("binary", "multiclass", "regression")
_CLASSIFICATION = frozenset({"binary", "multiclass"})
_REGRESSION = frozenset({"regression"})


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its direction, whether it scores probabilities, and where it applies."""

    name: str
    greater_is_better: bool
    needs_proba: bool
    task_types: frozenset[str]
    label: str
    func: Callable[..., float] = field(repr=False, compare=False)

    def score(self, y_true, y_pred, *, classes: Sequence | None = None, positive_label: Any = None) -> float:
        """Score predictions. Binary probability metrics take P(positive_label); multiclass ones an
        (n, k) matrix in `classes` order. Raises ValueError when the metric is undefined for the input."""
        if len(np.asarray(y_true, dtype=object).reshape(-1)) == 0:
            raise ValueError(f"{self.name}: no rows to score")
        return self.func(y_true, y_pred, classes, positive_label)


def _spec(name, greater, proba, types, label, func) -> MetricSpec:
    return MetricSpec(name, greater, proba, types, label, func)


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        _spec("accuracy", True, False, _CLASSIFICATION, "accuracy", fn.accuracy),
        _spec("balanced_accuracy", True, False, _CLASSIFICATION, "balanced accuracy", fn.balanced_accuracy),
        _spec("f1", True, False, frozenset({"binary"}), "F1 score of the positive class", fn.f1),
        _spec("macro_f1", True, False, _CLASSIFICATION, "macro-averaged F1 score", fn.macro_f1),
        _spec("roc_auc", True, True, _CLASSIFICATION, "ROC AUC", fn.roc_auc),
        _spec("log_loss", False, True, _CLASSIFICATION, "log loss", fn.log_loss),
        _spec("rmse", False, False, _REGRESSION, "root mean squared error", fn.rmse),
        _spec("mse", False, False, _REGRESSION, "mean squared error", fn.mse),
        _spec("mae", False, False, _REGRESSION, "mean absolute error", fn.mae),
        _spec("rmsle", False, False, _REGRESSION, "root mean squared logarithmic error", fn.rmsle),
        _spec("r2", True, False, _REGRESSION, "R² (coefficient of determination)", fn.r2),
    )
}

# Alternative spellings, after normalisation (lower case, '-'/' ' -> '_').
_ALIASES: dict[str, str] = {
    "acc": "accuracy",
    "accuracy_score": "accuracy",
    "balanced_accuracy_score": "balanced_accuracy",
    "bacc": "balanced_accuracy",
    "f1_score": "f1",
    "f1_binary": "f1",
    "f1_macro": "macro_f1",
    "macro_f1_score": "macro_f1",
    "macro_averaged_f1": "macro_f1",
    "auc": "roc_auc",
    "rocauc": "roc_auc",
    "auroc": "roc_auc",
    "roc_auc_score": "roc_auc",
    "roc_auc_ovr": "roc_auc",
    "logloss": "log_loss",
    "cross_entropy": "log_loss",
    "crossentropy": "log_loss",
    "root_mean_squared_error": "rmse",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "root_mean_squared_log_error": "rmsle",
    "root_mean_squared_logarithmic_error": "rmsle",
    "r2_score": "r2",
    "r_squared": "r2",
    "r^2": "r2",
    "r²": "r2",
}


def _normalise_name(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return key[4:] if key.startswith("neg_") else key


def get_metric(name: str) -> MetricSpec:
    """Resolve a metric name or alias (case-insensitive); ConfigError listing valid names if unknown."""
    if not isinstance(name, str):
        raise ConfigError(f"metric must be a name such as 'accuracy', got {name!r}; "
                          f"valid metrics: {', '.join(METRICS)}")
    key = _normalise_name(name)
    canonical = key if key in METRICS else _ALIASES.get(key)
    if canonical is None:
        guess = difflib.get_close_matches(key, [*METRICS, *_ALIASES], n=1)
        hint = f" Did you mean '{_ALIASES.get(guess[0], guess[0])}'?" if guess else ""
        raise ConfigError(
            f"unknown metric {name!r}.{hint} Valid metrics: {', '.join(METRICS)} "
            "(aliases such as auc, logloss, f1_macro, r2_score are accepted)."
        )
    return METRICS[canonical]


def metrics_for(task_type: str) -> list[str]:
    """Canonical names of the metrics that apply to a task type."""
    check_task_type(task_type)
    return [name for name, spec in METRICS.items() if task_type in spec.task_types]


def default_metric(task_type: str) -> str:
    """binary -> roc_auc, multiclass -> accuracy, regression -> rmse."""
    check_task_type(task_type)
    return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task_type]


def check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task type {task_type!r}; use one of: {', '.join(TASK_TYPES)}")
