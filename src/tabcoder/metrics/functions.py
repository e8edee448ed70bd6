"""The metric functions: pure computation on arrays of labels, probabilities or numbers.

Scope: one function per metric, each `(y_true, y_pred, classes, positive_label) -> float`, and their
helpers (positive class, probability matrices). A function raises ValueError when its metric is undefined
for the input. Nothing here knows metric names, directions or tasks (`metrics.specs` does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

_PROBA_EPS = 1e-15


def accuracy(y_true, y_pred, classes, positive_label) -> float:
    return float(np.mean(_as_1d(y_true) == _as_1d(y_pred)))


def balanced_accuracy(y_true, y_pred, classes, positive_label) -> float:
    y_true, y_pred = _as_1d(y_true), _as_1d(y_pred)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in _unique(y_true)]
    return float(np.mean(recalls))


def f1(y_true, y_pred, classes, positive_label) -> float:
    pos = _resolve_positive(positive_label, classes)
    return _binary_f1(_as_1d(y_true) == pos, _as_1d(y_pred) == pos)


def macro_f1(y_true, y_pred, classes, positive_label) -> float:
    y_true, y_pred = _as_1d(y_true), _as_1d(y_pred)
    labels = list(classes) if classes is not None else _unique(np.concatenate([y_true, y_pred]))
    return float(np.mean([_binary_f1(y_true == c, y_pred == c) for c in labels]))


def roc_auc(y_true, y_pred, classes, positive_label) -> float:
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


def log_loss(y_true, y_pred, classes, positive_label) -> float:
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


def rmse(y_true, y_pred, classes, positive_label) -> float:
    return math.sqrt(mse(y_true, y_pred, classes, positive_label))


def mse(y_true, y_pred, classes, positive_label) -> float:
    diff = _as_float(y_true) - _as_float(y_pred)
    return float(np.mean(diff**2))


def mae(y_true, y_pred, classes, positive_label) -> float:
    return float(np.mean(np.abs(_as_float(y_true) - _as_float(y_pred))))


def rmsle(y_true, y_pred, classes, positive_label) -> float:
    t, p = _as_float(y_true), _as_float(y_pred)
    for what, values in (("targets", t), ("predictions", p)):
        n_neg = int(np.sum(values < 0))
        if n_neg:
            raise ValueError(
                f"rmsle is undefined for negative values: {n_neg} {what} are negative; "
                "rmsle needs values >= 0 (clip predictions at 0, or use rmse/mae)"
            )
    return float(math.sqrt(np.mean((np.log1p(t) - np.log1p(p)) ** 2)))


def r2(y_true, y_pred, classes, positive_label) -> float:
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
