"""Evaluation metrics: their specs, name resolution, detection in free text, and comparable scores.

Scope: pure computation on arrays of labels / probabilities / numbers. Nothing here reads files or
knows about tasks; `grading` validates submissions before calling `MetricSpec.score`.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm

from tabcoder.errors import ConfigError

TASK_TYPES: tuple[str, ...] = ("binary", "multiclass", "regression")
_CLASSIFICATION = frozenset({"binary", "multiclass"})
_REGRESSION = frozenset({"regression"})
_PROBA_EPS = 1e-15


# --------------------------------------------------------------------------- metric functions
# Each takes (y_true, y_pred, classes, positive_label) as numpy arrays / values and returns a float.


def _accuracy(y_true, y_pred, classes, positive_label) -> float:
    return float(np.mean(_as_1d(y_true) == _as_1d(y_pred)))


def _balanced_accuracy(y_true, y_pred, classes, positive_label) -> float:
    y_true, y_pred = _as_1d(y_true), _as_1d(y_pred)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in _unique(y_true)]
    return float(np.mean(recalls))


def _f1(y_true, y_pred, classes, positive_label) -> float:
    pos = _resolve_positive(positive_label, classes)
    return _binary_f1(_as_1d(y_true) == pos, _as_1d(y_pred) == pos)


def _macro_f1(y_true, y_pred, classes, positive_label) -> float:
    y_true, y_pred = _as_1d(y_true), _as_1d(y_pred)
    labels = list(classes) if classes is not None else _unique(np.concatenate([y_true, y_pred]))
    return float(np.mean([_binary_f1(y_true == c, y_pred == c) for c in labels]))


def _roc_auc(y_true, y_pred, classes, positive_label) -> float:
    y_true = _as_1d(y_true)
    scores = np.asarray(y_pred, dtype=float)
    if scores.ndim == 1:
        pos = _resolve_positive(positive_label, classes)
        return _binary_auc(y_true == pos, scores, pos)
    classes = _require_classes(classes, scores, "roc_auc")
    scores = _normalise_rows(scores)
    per_class = [
        _binary_auc(y_true == c, scores[:, j], c)
        for j, c in enumerate(classes)
        if 0 < np.sum(y_true == c) < len(y_true)
    ]
    if not per_class:
        raise ValueError("roc_auc is undefined: the true labels contain a single class")
    return float(np.mean(per_class))


def _log_loss(y_true, y_pred, classes, positive_label) -> float:
    y_true = _as_1d(y_true)
    probs = np.asarray(y_pred, dtype=float)
    if probs.ndim == 1:
        pos = _resolve_positive(positive_label, classes)
        p = np.clip(probs, _PROBA_EPS, 1 - _PROBA_EPS)
        is_pos = y_true == pos
        return float(-np.mean(np.where(is_pos, np.log(p), np.log(1 - p))))
    classes = _require_classes(classes, probs, "log_loss")
    index = {c: j for j, c in enumerate(classes)}
    unknown = sorted({str(v) for v in y_true if v not in index})
    if unknown:
        raise ValueError(f"log_loss: true labels {unknown[:5]} are not among the classes {list(classes)}")
    cols = np.array([index[v] for v in y_true])
    p = np.clip(_normalise_rows(probs), _PROBA_EPS, 1 - _PROBA_EPS)
    return float(-np.mean(np.log(p[np.arange(len(cols)), cols])))


def _rmse(y_true, y_pred, classes, positive_label) -> float:
    return math.sqrt(_mse(y_true, y_pred, classes, positive_label))


def _mse(y_true, y_pred, classes, positive_label) -> float:
    diff = _as_float(y_true) - _as_float(y_pred)
    return float(np.mean(diff**2))


def _mae(y_true, y_pred, classes, positive_label) -> float:
    return float(np.mean(np.abs(_as_float(y_true) - _as_float(y_pred))))


def _rmsle(y_true, y_pred, classes, positive_label) -> float:
    t, p = _as_float(y_true), _as_float(y_pred)
    for what, values in (("targets", t), ("predictions", p)):
        n_neg = int(np.sum(values < 0))
        if n_neg:
            raise ValueError(
                f"rmsle is undefined for negative values: {n_neg} {what} are negative; "
                "rmsle needs values >= 0 (clip predictions at 0, or use rmse/mae)"
            )
    return float(math.sqrt(np.mean((np.log1p(t) - np.log1p(p)) ** 2)))


def _r2(y_true, y_pred, classes, positive_label) -> float:
    return float(skm.r2_score(_as_float(y_true), _as_float(y_pred)))


# --------------------------------------------------------------------------- helpers


def _as_1d(values) -> np.ndarray:
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    return arr.reshape(-1)


def _as_float(values) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1)


def _unique(values: np.ndarray) -> list:
    seen: dict = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)


def _binary_f1(true_pos: np.ndarray, pred_pos: np.ndarray) -> float:
    tp = int(np.sum(true_pos & pred_pos))
    fp = int(np.sum(~true_pos & pred_pos))
    fn = int(np.sum(true_pos & ~pred_pos))
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def _binary_auc(is_pos: np.ndarray, scores: np.ndarray, label: Any) -> float:
    if is_pos.all() or not is_pos.any():
        raise ValueError(f"roc_auc is undefined: the true labels are all or none of class {label!r}")
    return float(skm.roc_auc_score(is_pos.astype(int), scores))


def _resolve_positive(positive_label, classes) -> Any:
    """The positive class: the given one, else the last of the sorted classes, else 1."""
    if positive_label is not None:
        return positive_label
    if classes is not None and len(classes) == 2:
        return list(classes)[-1]
    return 1


def _require_classes(classes, matrix: np.ndarray, metric: str) -> list:
    if classes is None:
        raise ValueError(f"{metric} with a probability matrix needs `classes` (the column order)")
    classes = list(classes)
    if matrix.ndim != 2 or matrix.shape[1] != len(classes):
        raise ValueError(f"{metric}: expected an (n, {len(classes)}) probability matrix, got shape {matrix.shape}")
    return classes


def _normalise_rows(probs: np.ndarray) -> np.ndarray:
    sums = probs.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1.0
    return probs / sums


# --------------------------------------------------------------------------- specs


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
        _spec("accuracy", True, False, _CLASSIFICATION, "accuracy", _accuracy),
        _spec("balanced_accuracy", True, False, _CLASSIFICATION, "balanced accuracy", _balanced_accuracy),
        _spec("f1", True, False, frozenset({"binary"}), "F1 score of the positive class", _f1),
        _spec("macro_f1", True, False, _CLASSIFICATION, "macro-averaged F1 score", _macro_f1),
        _spec("roc_auc", True, True, _CLASSIFICATION, "ROC AUC", _roc_auc),
        _spec("log_loss", False, True, _CLASSIFICATION, "log loss", _log_loss),
        _spec("rmse", False, False, _REGRESSION, "root mean squared error", _rmse),
        _spec("mse", False, False, _REGRESSION, "mean squared error", _mse),
        _spec("mae", False, False, _REGRESSION, "mean absolute error", _mae),
        _spec("rmsle", False, False, _REGRESSION, "root mean squared logarithmic error", _rmsle),
        _spec("r2", True, False, _REGRESSION, "R² (coefficient of determination)", _r2),
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
    _check_task_type(task_type)
    return [name for name, spec in METRICS.items() if task_type in spec.task_types]


def default_metric(task_type: str) -> str:
    """binary -> roc_auc, multiclass -> accuracy, regression -> rmse."""
    _check_task_type(task_type)
    return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task_type]


def _check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task type {task_type!r}; use one of: {', '.join(TASK_TYPES)}")


# --------------------------------------------------------------------------- metrics named in text

_SEP = r"[\s_\-]*"
# Ordered: longer phrases first; each match is blanked out so that e.g. "root mean squared
# logarithmic error" is not also read as RMSE, nor "macro F1" as F1. Names starting with "_" are
# metrics we do not offer: they are blanked out (so "PR AUC" is not read as ROC AUC) but never reported.
_TEXT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("_pr_auc", rf"\bpr{_SEP}auc\b|precision{_SEP}recall{_SEP}(?:curve{_SEP})?auc|area under the precision"),
    ("rmsle", rf"root{_SEP}mean{_SEP}squared?{_SEP}log(?:arithmic)?{_SEP}errors?|\brmsle\b"),
    ("_msle", rf"mean{_SEP}squared?{_SEP}log(?:arithmic)?{_SEP}errors?|\bmsle\b"),
    ("balanced_accuracy", rf"balanced{_SEP}accuracy"),
    ("macro_f1", rf"macro{_SEP}(?:averaged?{_SEP})?f[\s_\-]?1(?:{_SEP}score)?|\bf1{_SEP}macro\b"),
    ("roc_auc", rf"\broc{_SEP}auc\b|\bauc{_SEP}roc\b|\bauroc\b|\bauc\b|area under the (?:roc )?curve"
                r"|area under the receiver operating characteristic"),
    ("log_loss", rf"\blog(?:arithmic)?{_SEP}loss\b|\bcross{_SEP}entropy\b"),
    ("rmse", rf"root{_SEP}mean{_SEP}squared?{_SEP}errors?|\brmse\b"),
    ("mse", rf"mean{_SEP}squared?{_SEP}errors?|\bmse\b"),
    ("mae", rf"mean{_SEP}absolute{_SEP}errors?|\bmae\b"),
    ("r2", r"(?<![\w^])r(?:2|²|\^2|-squared| squared)(?!\w)|coefficient of determination"),
    ("f1", rf"\bf{_SEP}1(?:{_SEP}score)?\b|\bf{_SEP}(?:score|measure)\b"),
    ("accuracy", r"\baccuracy\b"),
)
_EVALUATION_LINE = re.compile(r"(?im)^.*\b(?:evaluat\w*|metric|scored|scoring)\b.*$")


def _named_metrics(text: str) -> set[str]:
    remaining = text.lower()
    found: set[str] = set()
    for name, pattern in _TEXT_PATTERNS:
        regex = re.compile(pattern)
        if regex.search(remaining):
            if not name.startswith("_"):
                found.add(name)
            remaining = regex.sub(" ", remaining)
    return found


def _pick_compatible(found: set[str], task_type: str | None) -> str | None:
    if task_type == "multiclass" and "f1" in found:
        found = (found - {"f1"}) | {"macro_f1"}  # a plain "F1" on a multiclass task means macro F1
    if task_type is not None:
        found = {name for name in found if task_type in METRICS[name].task_types}
    return next(iter(found)) if len(found) == 1 else None


def metric_from_text(text: str, task_type: str | None) -> str | None:
    """The one metric (compatible with `task_type`) that a free-text description names, else None.

    Lines that talk about evaluation/metric/scoring are searched first; the whole text only when they
    name no usable metric. Plain "F1" on a multiclass task is read as macro F1.
    """
    if not text:
        return None
    if task_type is not None:
        _check_task_type(task_type)
    evaluation_lines = "\n".join(_EVALUATION_LINE.findall(text))
    if evaluation_lines:
        picked = _pick_compatible(_named_metrics(evaluation_lines), task_type)
        if picked is not None:
            return picked
    return _pick_compatible(_named_metrics(text), task_type)


# --------------------------------------------------------------------------- scores


@functools.total_ordering
def gain(value: float, base: float, greater_is_better: bool) -> float:
    """How much better `value` is than `base` (negative when worse), in the metric's units."""
    return value - base if greater_is_better else base - value


@dataclass(frozen=True)
class Score:
    """A metric value that compares by quality: `a > b` means a is better; a failed score (None) is
    worse than any number, so the best attempt is `max(scores)`. NaN/inf count as failed."""

    value: float | None
    metric: str
    greater_is_better: bool

    def __post_init__(self) -> None:
        value = self.value
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                value = None
        object.__setattr__(self, "value", value)

    @classmethod
    def of(cls, metric_name: str, value: float | None) -> Score:
        spec = get_metric(metric_name)
        return cls(value, spec.name, spec.greater_is_better)

    @classmethod
    def worst(cls, metric_name: str) -> Score:
        return cls.of(metric_name, None)

    @property
    def failed(self) -> bool:
        return self.value is None

    @property
    def direction(self) -> float:
        """+1 when greater is better, -1 when smaller is: `direction * (a - b) > 0` means a is better."""
        return 1.0 if self.greater_is_better else -1.0

    def gain_over(self, other: Score) -> float | None:
        """How much better self is than `other` in the metric's units (negative when worse); None if either failed."""
        if self.value is None or other.value is None:
            return None
        return gain(self.value, other.value, self.greater_is_better)

    def relative_gain_over(self, other: Score) -> float | None:
        """`gain_over(other)` relative to |other| (0.01 = 1% better); None if either failed."""
        delta = self.gain_over(other)
        return None if delta is None else delta / max(abs(other.value), 1e-12)

    def __lt__(self, other: object) -> bool:
        """True when self is worse than other."""
        if not isinstance(other, Score):
            return NotImplemented
        if other.metric != self.metric:
            raise TypeError(f"cannot compare a {self.metric} score with a {other.metric} score")
        if other.value is None:
            return False
        if self.value is None:
            return True
        return self.value < other.value if self.greater_is_better else self.value > other.value

    def __str__(self) -> str:
        if self.value is None:
            return "failed"
        v = self.value
        shown = f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.3e}"
        return f"{self.metric} {shown}"
