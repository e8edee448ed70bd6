"""Metric values checked by hand, name resolution, metric detection in text, and Score ordering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabcoder.errors import ConfigError
from tabcoder.metrics import (
    METRICS,
    TASK_TYPES,
    Score,
    default_metric,
    get_metric,
    metric_from_text,
    metrics_for,
)

from support import SHARED_TASKS


def score(name, y_true, y_pred, **kw):
    return get_metric(name).score(y_true, y_pred, **kw)


# --------------------------------------------------------------------------- values


def test_accuracy_three_of_four():
    assert score("accuracy", ["a", "b", "a", "c"], ["a", "b", "b", "c"]) == pytest.approx(0.75)


def test_balanced_accuracy_is_mean_recall():
    # recall of class 0: 2/3, of class 1: 1/1 -> 5/6
    assert score("balanced_accuracy", [0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(5 / 6)


def test_f1_of_the_positive_label():
    y_true = ["Yes", "Yes", "No", "No", "No"]
    y_pred = ["Yes", "No", "Yes", "No", "No"]
    # Yes: tp=1 fp=1 fn=1 -> 2/4 ; No: tp=2 fp=1 fn=1 -> 4/6
    assert score("f1", y_true, y_pred, positive_label="Yes") == pytest.approx(0.5)
    assert score("f1", y_true, y_pred, positive_label="No") == pytest.approx(4 / 6)
    assert score("f1", y_true, ["No"] * 5, positive_label="Yes") == 0.0


def test_f1_defaults_to_last_sorted_class():
    assert score("f1", [0, 1, 1], [0, 1, 0], classes=[0, 1]) == pytest.approx(2 / 3)


def test_macro_f1_averages_classes():
    y_true = ["Yes", "Yes", "No", "No", "No"]
    y_pred = ["Yes", "No", "Yes", "No", "No"]
    assert score("macro_f1", y_true, y_pred, classes=["No", "Yes"]) == pytest.approx((0.5 + 4 / 6) / 2)


def test_roc_auc_binary_perfect_and_reversed():
    y = ["No", "Yes", "No", "Yes"]
    assert score("roc_auc", y, [0.1, 0.9, 0.2, 0.8], positive_label="Yes") == 1.0
    assert score("roc_auc", y, [0.9, 0.1, 0.8, 0.2], positive_label="Yes") == 0.0
    # one of four positive/negative pairs mis-ordered
    assert score("roc_auc", y, [0.1, 0.9, 0.85, 0.8], positive_label="Yes") == pytest.approx(0.75)


def test_roc_auc_multiclass_one_vs_rest():
    classes = ["a", "b", "c"]
    y = ["a", "b", "c", "a"]
    perfect = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    assert score("roc_auc", y, perfect, classes=classes) == 1.0
    # unnormalised rows are normalised first
    assert score("roc_auc", y, perfect * 3, classes=classes) == 1.0


def test_roc_auc_single_class_is_an_error():
    with pytest.raises(ValueError, match="undefined"):
        score("roc_auc", [1, 1], [0.2, 0.3], positive_label=1)


def test_log_loss_binary_and_multiclass():
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert score("log_loss", [1, 0], [0.8, 0.4], positive_label=1) == pytest.approx(expected)
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    expected = -(math.log(0.5) + math.log(0.8)) / 2
    assert score("log_loss", ["a", "c"], probs, classes=["a", "b", "c"]) == pytest.approx(expected)


def test_log_loss_clips_certain_mistakes():
    assert math.isfinite(score("log_loss", [1, 0], [0.0, 1.0], positive_label=1))


def test_regression_metrics():
    y_true, y_pred = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0]  # errors 0 0 0 2
    assert score("mse", y_true, y_pred) == pytest.approx(1.0)
    assert score("rmse", y_true, y_pred) == pytest.approx(1.0)
    assert score("mae", y_true, y_pred) == pytest.approx(0.5)
    # r2 = 1 - 4 / 5
    assert score("r2", y_true, y_pred) == pytest.approx(0.2)
    assert score("rmse", [0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))


def test_rmsle_value_and_negative_error():
    e = math.e - 1
    assert score("rmsle", [0.0, e], [0.0, 0.0]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="negative"):
        score("rmsle", [1.0, 2.0], [1.0, -0.5])
    with pytest.raises(ValueError, match="targets are negative"):
        score("rmsle", [-1.0, 2.0], [1.0, 0.5])


# --------------------------------------------------------------------------- specs and names


def test_spec_fields():
    assert set(METRICS) == {"accuracy", "balanced_accuracy", "f1", "macro_f1", "roc_auc", "log_loss",
                            "rmse", "mse", "mae", "rmsle", "r2"}
    assert {n for n, s in METRICS.items() if s.needs_proba} == {"roc_auc", "log_loss"}
    assert {n for n, s in METRICS.items() if not s.greater_is_better} == {"log_loss", "rmse", "mse", "mae", "rmsle"}
    assert METRICS["f1"].task_types == frozenset({"binary"})
    assert all(s.task_types <= set(TASK_TYPES) and s.label for s in METRICS.values())


@pytest.mark.parametrize("alias, name", [
    ("AUC", "roc_auc"), ("roc-auc", "roc_auc"), ("ROC_AUC", "roc_auc"), ("logloss", "log_loss"),
    ("f1_macro", "macro_f1"), ("macro-f1", "macro_f1"), ("F1", "f1"), ("RMSLE", "rmsle"), ("r2_score", "r2"),
    ("Accuracy", "accuracy"), ("neg_root_mean_squared_error", "rmse"), ("mean absolute error", "mae"),
])
def test_get_metric_aliases(alias, name):
    assert get_metric(alias).name == name


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        get_metric("acuracy")
    message = str(info.value)
    assert "acuracy" in message and "rmse" in message and "macro_f1" in message
    assert "Did you mean 'accuracy'" in message


def test_default_metric_and_metrics_for():
    assert default_metric("binary") == "roc_auc"
    assert default_metric("multiclass") == "accuracy"
    assert default_metric("regression") == "rmse"
    assert "f1" not in metrics_for("multiclass") and "f1" in metrics_for("binary")
    with pytest.raises(ConfigError, match="binary, multiclass, regression"):
        default_metric("ranking")


# --------------------------------------------------------------------------- metric_from_text


@pytest.mark.parametrize("task, task_type, expected", [
    ("penguins", "multiclass", "accuracy"),
    ("telco_churn", "binary", "roc_auc"),
    ("concrete", "regression", "rmse"),
    ("diamonds", "regression", "rmsle"),
    ("attrition", "binary", "f1"),
])
def test_metric_from_shared_descriptions(task, task_type, expected):
    text = (SHARED_TASKS / task / "description.md").read_text()
    assert metric_from_text(text, task_type) == expected


@pytest.mark.parametrize("text, task_type, expected", [
    ("Evaluation: F1 score of the class Yes", "binary", "f1"),
    ("Scored by root mean squared logarithmic error.", "regression", "rmsle"),
    ("Submissions are scored on RMSE.", "regression", "rmse"),
    ("root mean square error", "regression", "rmse"),
    ("mean squared error", "regression", "mse"),
    ("Evaluation: ROC AUC", "binary", "roc_auc"),
    ("area under the ROC curve", "binary", "roc_auc"),
    ("Evaluation metric: log loss", "multiclass", "log_loss"),
    ("multi-class logarithmic loss", "multiclass", "log_loss"),
    ("mean absolute error", "regression", "mae"),
    ("We use accuracy.", "multiclass", "accuracy"),
    ("R² of the predictions", "regression", "r2"),
    ("the R2 score", "regression", "r2"),
    ("balanced accuracy", "binary", "balanced_accuracy"),
    ("macro F1", "multiclass", "macro_f1"),
    ("macro-averaged F1 score", "binary", "macro_f1"),
    ("F1 score", "multiclass", "macro_f1"),  # a plain F1 on a multiclass task is macro F1
    ("PR AUC", "binary", None),  # not ROC AUC
    ("mean squared logarithmic error", "regression", None),  # MSLE is not offered, and not MSE
    ("accuracy and macro F1 are reported", "multiclass", None),  # two metrics: ambiguous
    ("Predict the price of a house.", "regression", None),
    ("", "binary", None),
])
def test_metric_from_text_phrases(text, task_type, expected):
    assert metric_from_text(text, task_type) == expected


def test_metric_from_text_filters_by_task_type():
    assert metric_from_text("We report accuracy. Lower RMSE is better.", "regression") == "rmse"
    assert metric_from_text("Evaluation: RMSE", "binary") is None


def test_metric_from_text_prefers_the_evaluation_line():
    text = "Earlier work reached 90% accuracy.\nEvaluation: ROC AUC of P(yes)."
    assert metric_from_text(text, "binary") == "roc_auc"


# --------------------------------------------------------------------------- Score


def test_score_ordering_greater_is_better():
    a, b = Score(0.9, "accuracy", True), Score(0.8, "accuracy", True)
    failed = Score.worst("accuracy")
    assert a > b and b < a and b > failed and failed < b
    assert max([b, failed, a]) == a
    assert sorted([a, failed, b]) == [failed, b, a]


def test_score_ordering_lower_is_better():
    a, b = Score.of("rmse", 1.5), Score.of("rmse", 2.5)
    failed = Score.worst("rmse")
    assert a > b and b > failed
    assert max([failed, b, a]) == a
    assert Score.worst("rmse") == failed and not failed > Score.worst("rmse")


def test_failed_scores_and_nan():
    assert Score(float("nan"), "rmse", False).value is None
    assert Score.worst("auc").metric == "roc_auc"
    assert Score.worst("mae").failed and not Score.of("mae", 0.0).failed


def test_score_str():
    assert str(Score(0.97701, "accuracy", True)) == "accuracy 0.9770"
    assert str(Score.worst("accuracy")) == "failed"


def test_scores_of_different_metrics_do_not_compare():
    with pytest.raises(TypeError):
        _ = Score.of("rmse", 1.0) < Score.of("mae", 2.0)
