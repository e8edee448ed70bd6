"""Splits and folds, sample submissions, and the checking and grading of submissions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.errors import ConfigError, TaskError
from tabcoder.grading import Grade, check_submission, grade_submission, make_folds, make_sample_submission, make_split
from tabcoder.metrics import Score
from tabcoder.task import Task, load_task

from support import SHARED_TASKS


def make_task(tmp_path: Path, frame: pd.DataFrame, **options) -> Task:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return load_task(path, **options)


@pytest.fixture
def binary_task(tmp_path) -> Task:
    """100 rows, ids 100..199, label 'yes' for every 4th row (25 yes / 75 no); accuracy."""
    n = 100
    frame = pd.DataFrame({"id": np.arange(100, 100 + n), "x": np.arange(n) % 7,
                          "label": np.where(np.arange(n) % 4 == 0, "yes", "no")})
    return make_task(tmp_path, frame, target="label", metric="accuracy")


@pytest.fixture
def proba_task(tmp_path) -> Task:
    n = 60
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n), "churn": np.where(np.arange(n) % 3 == 0, "Yes", "No")})
    return make_task(tmp_path, frame, target="churn", metric="roc_auc")


@pytest.fixture
def multiclass_task(tmp_path) -> Task:
    n = 60
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n), "y": np.arange(n) % 3 + 1})
    return make_task(tmp_path, frame, target="y", metric="log_loss")


@pytest.fixture
def regression_task(tmp_path) -> Task:
    n = 50
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n), "price": np.arange(n) * 10.0 + 5})
    return make_task(tmp_path, frame, target="price", metric="rmsle")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text(text)
    return path


def labels_frame(split, column: str) -> pd.DataFrame:
    return pd.DataFrame({split.labels.index.name: split.labels.index, column: split.labels.to_numpy()})


# =========================================================================== splits


def test_split_is_disjoint_complete_and_hides_labels(binary_task):
    split = make_split(binary_task, seed=0, valid_fraction=0.2)
    fit_ids, valid_ids = set(split.fit["id"]), set(split.valid["id"])
    assert len(split.valid) == 20 and len(split.fit) == 80
    assert not fit_ids & valid_ids and fit_ids | valid_ids == set(binary_task.train["id"])
    assert "label" not in split.valid.columns and "label" in split.fit.columns
    assert list(split.valid.columns) == ["id", "x"]
    assert list(split.labels.index) == list(split.valid["id"]) and split.labels.index.name == "id"
    truth = binary_task.train.set_index("id")["label"]
    assert (split.labels == truth.loc[split.labels.index]).all()


def test_split_is_stratified(binary_task):
    split = make_split(binary_task, seed=3)
    assert (split.labels == "yes").sum() == 5 and (split.fit["label"] == "yes").sum() == 20


def test_split_is_reproducible_and_seeded(binary_task):
    a, b = make_split(binary_task, seed=1), make_split(binary_task, seed=1)
    c = make_split(binary_task, seed=2)
    pd.testing.assert_frame_equal(a.fit, b.fit)
    pd.testing.assert_series_equal(a.labels, b.labels)
    assert list(a.valid["id"]) != list(c.valid["id"])


def test_split_falls_back_when_a_class_is_tiny(tmp_path):
    frame = pd.DataFrame({"x": range(20), "y": ["a"] * 10 + ["b"] * 9 + ["c"]})
    task = make_task(tmp_path, frame, target="y")
    split = make_split(task)
    assert len(split.valid) + len(split.fit) == 20


def test_split_of_regression_task(regression_task):
    split = make_split(regression_task, valid_fraction=0.3)
    assert len(split.valid) == 15 and split.labels.dtype == float


def test_split_options_are_checked(binary_task):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        make_split(binary_task, valid_fraction=1.5)
    with pytest.raises(ConfigError, match=">= 2"):
        make_folds(binary_task, k=1)


def test_too_few_rows(tmp_path):
    task = make_task(tmp_path, pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.5, 2.5]}), target="y")
    with pytest.raises(TaskError, match="only 3 labelled rows"):
        make_folds(task, k=5)


def test_folds_cover_every_row_once(binary_task):
    folds = make_folds(binary_task, k=5, seed=0)
    assert len(folds) == 5
    valid_ids = [i for fold in folds for i in fold.valid["id"]]
    assert sorted(valid_ids) == sorted(binary_task.train["id"])
    for fold in folds:
        assert not set(fold.fit["id"]) & set(fold.valid["id"])
        assert (fold.labels == "yes").sum() == 5  # stratified
        assert "label" not in fold.valid.columns


def test_folds_for_regression(regression_task):
    folds = make_folds(regression_task, k=4)
    assert sorted(i for f in folds for i in f.valid["id"]) == list(range(50))


# =========================================================================== sample submissions


def test_sample_submission_label_task(binary_task):
    split = make_split(binary_task)
    sample = split.sample_submission
    assert list(sample.columns) == ["id", "label"]
    assert list(sample["id"]) == list(split.valid["id"]) and set(sample["label"]) == {"no"}


def test_sample_submission_probabilities(proba_task, multiclass_task):
    sample = make_sample_submission(proba_task, [7, 8])
    assert sample.to_dict("list") == {"id": [7, 8], "churn": [0.5, 0.5]}
    sample = make_sample_submission(multiclass_task, pd.Series([1, 2]))
    assert list(sample.columns) == ["id", "1", "2", "3"]
    assert sample[["1", "2", "3"]].iloc[0].tolist() == pytest.approx([1 / 3] * 3)


def test_sample_submission_regression(tmp_path, regression_task):
    task = make_task(tmp_path, pd.DataFrame({"x": range(4), "y": [1.0, 2.0, 3.0, 10.0]}), target="y",
                     metric="rmse")
    assert make_sample_submission(task, [0])["y"].tolist() == [4.0]
    task.metric = "mae"
    assert make_sample_submission(task, [0])["y"].tolist() == [2.5]


def test_sample_submission_is_a_valid_submission(binary_task, proba_task, multiclass_task, regression_task):
    for task in (binary_task, proba_task, multiclass_task, regression_task):
        split = make_split(task)
        grade = grade_submission(split.sample_submission, task=task, labels=split.labels)
        assert grade.valid, grade.problems


# =========================================================================== check_submission


def problems_for(tmp_path, task, text, expected_ids):
    aligned, problems = check_submission(write(tmp_path, text), task=task, expected_ids=expected_ids)
    assert (aligned is None) == bool(problems)
    return problems


IDS = [100, 101, 102]


def test_missing_file(tmp_path, binary_task):
    _, problems = check_submission(tmp_path / "submission.csv", task=binary_task, expected_ids=IDS)
    assert len(problems) == 1 and problems[0].startswith("submission.csv was not written to the working directory")


def test_empty_and_header_only_files(tmp_path, binary_task):
    assert "submission.csv is empty" in problems_for(tmp_path, binary_task, "", IDS)[0]
    assert "has a header (id, label) but no rows" in problems_for(tmp_path, binary_task, "id,label\n", IDS)[0]


def test_unparseable_csv(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,no\n101,no,extra,more\n", IDS)
    assert problems[0].startswith("submission.csv could not be read as CSV") and "index=False" in problems[0]


def test_missing_and_extra_columns(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "Unnamed: 0,id,Label\n0,100,no\n1,101,no\n2,102,no\n", IDS)
    assert problems[0].startswith("missing column(s) label; expected columns exactly: id, label; "
                                  "found: Unnamed: 0, id, Label.")
    assert "Found 'Label' instead of 'label'" in problems[0]
    assert problems[1].startswith("unexpected extra column(s) Unnamed: 0") and "index=False" in problems[1]


def test_missing_unknown_and_duplicate_ids(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,no\n100,no\n999,no\n", IDS)
    assert problems == [
        "2 of the 3 ids of test.csv have no row (e.g. 101, 102): predict every row of test.csv",
        "1 `id` values are not ids of test.csv (e.g. 999): copy the `id` column of test.csv unchanged",
        "1 ids appear more than once (e.g. 100): write exactly one row per id",
    ]


def test_wrong_row_count_comes_first(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,no\n101,no\n", IDS)
    assert problems[0] == "submission.csv has 2 rows but test.csv has 3: write exactly one row per row of test.csv"
    assert "1 of the 3 ids of test.csv have no row (e.g. 102)" in problems[1]


def test_empty_predictions(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,no\n101,\n102,\n", IDS)
    assert problems == ["column `label` has 2 empty (NaN) predictions (e.g. ids 101, 102): every row needs a "
                        "prediction; fill missing feature values before predicting"]


def test_unseen_labels(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,maybe\n101,Yes\n102,no\n", IDS)
    assert len(problems) == 1
    assert problems[0].startswith("column `label` has 2 values that are not class labels seen in training: "
                                  "'maybe', 'Yes' (allowed labels: 'no', 'yes').")
    assert "case-sensitive" in problems[0]


def test_probabilities_given_for_a_label_metric(tmp_path, binary_task):
    problems = problems_for(tmp_path, binary_task, "id,label\n100,0.2\n101,0.7\n102,0.1\n", IDS)
    assert "look like probabilities" in problems[0] and "predict()" in problems[0]


def test_labels_are_matched_robustly(tmp_path):
    frame = pd.DataFrame({"id": range(20), "x": range(20), "y": [0, 1] * 10})
    task = make_task(tmp_path, frame, target="y", metric="accuracy")
    aligned, problems = check_submission(write(tmp_path, "id,y\n2.0,1.0\n1, 0\n0,1\n"), task=task,
                                         expected_ids=[0, 1, 2])
    assert problems == []
    assert aligned["id"].tolist() == [0, 1, 2] and aligned["y"].tolist() == [1, 0, 1]
    text_task = make_task(tmp_path, pd.DataFrame({"x": range(8), "y": ["a", "b"] * 4}), target="y",
                          metric="accuracy")
    aligned, problems = check_submission(pd.DataFrame({"id": ["0", "1"], "y": [" a", "b "]}), task=text_task,
                                         expected_ids=[0, 1])
    assert problems == [] and aligned["y"].tolist() == ["a", "b"]


def test_string_ids(tmp_path):
    frame = pd.DataFrame({"key": [f"k{i:03d}" for i in range(20)], "x": range(20), "y": ["a", "b"] * 10})
    task = make_task(tmp_path, frame, target="y", id_column="key", metric="accuracy")
    aligned, problems = check_submission(write(tmp_path, "key,y\nk001,a\n k000 ,b\n"), task=task,
                                         expected_ids=["k000", "k001"])
    assert problems == [] and aligned["key"].tolist() == ["k000", "k001"] and aligned["y"].tolist() == ["b", "a"]


def test_binary_probabilities(tmp_path, proba_task):
    ids = [0, 1, 2, 3]
    problems = problems_for(tmp_path, proba_task, "id,churn\n0,Yes\n1,No\n2,1.5\n3,-0.1\n", ids)
    assert problems[0].startswith("column `churn` must hold the probability that `churn` is 'Yes' (a number between "
                                  "0 and 1), but 2 values are not numbers (e.g. 'Yes', 'No')")
    assert problems[1] == ("column `churn` has 2 values outside [0, 1] (e.g. 1.5, -0.1): probabilities must be "
                           "between 0 and 1")


def test_multiclass_probabilities(tmp_path, multiclass_task):
    problems = problems_for(tmp_path, multiclass_task, "id,y\n0,1\n1,2\n", [0, 1])
    assert "missing column(s) 1, 2, 3" in problems[0] and "one probability column per class" in problems[0]
    aligned, problems = check_submission(write(tmp_path, "id,1,2,3\n0,0.4,0.2,0.2\n1,0,0,0.5\n"), task=multiclass_task,
                                         expected_ids=[0, 1])
    assert problems == []
    assert aligned[["1", "2", "3"]].to_numpy().tolist() == [[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]
    problems = problems_for(tmp_path, multiclass_task, "id,1,2,3\n0,0,0,0\n1,0.2,0.3,0.5\n", [0, 1])
    assert problems == ["1 rows have class probabilities that are all 0: each row must sum to 1 (predict_proba)"]


def test_regression_values(tmp_path, regression_task):
    problems = problems_for(tmp_path, regression_task, "id,price\n0,abc\n1,-3\n2,inf\n", [0, 1, 2])
    assert problems[0] == "column `price` must hold numbers, but 1 values are not (e.g. 'abc')"
    assert problems[1] == "column `price` has 1 infinite values: predict finite numbers"
    assert problems[2].startswith("column `price` has 1 negative predictions (e.g. -3.0) but rmsle needs "
                                  "predictions >= 0: clip them at 0")


def test_dataframe_submission(binary_task):
    aligned, problems = check_submission(pd.DataFrame({"id": [102, 100, 101], "label": ["yes", "no", "no"]}),
                                         task=binary_task, expected_ids=pd.Index(IDS))
    assert problems == [] and aligned["label"].tolist() == ["no", "no", "yes"]


# =========================================================================== grading


def test_grade_accuracy_by_hand(tmp_path, binary_task):
    split = make_split(binary_task)
    submission = labels_frame(split, "label")
    submission.loc[:4, "label"] = np.where(submission.loc[:4, "label"] == "yes", "no", "yes")  # 5 of 20 wrong
    grade = grade_submission(submission, task=binary_task, labels=split.labels)
    assert grade == Grade(True, Score(0.75, "accuracy", True), [], 20)
    path = tmp_path / "submission.csv"
    submission.sample(frac=1, random_state=4).to_csv(path, index=False)
    assert grade_submission(path, task=binary_task, labels=split.labels).score == grade.score


def test_grade_roc_auc_perfect_and_shuffled(tmp_path, proba_task):
    split = make_split(proba_task)
    submission = pd.DataFrame({"id": split.labels.index, "churn": np.where(split.labels == "Yes", 0.9, 0.2)})
    submission.iloc[::-1].to_csv(tmp_path / "submission.csv", index=False)
    grade = grade_submission(tmp_path / "submission.csv", task=proba_task, labels=split.labels)
    assert grade.valid and grade.score.value == 1.0 and str(grade.score) == "roc_auc 1.0000"


def test_grade_log_loss_by_hand(multiclass_task):
    labels = pd.Series([1, 2, 3], index=pd.Index([0, 1, 2], name="id"), name="y")
    submission = pd.DataFrame({"id": [2, 0, 1], "1": [0.1, 0.5, 0.3], "2": [0.1, 0.25, 0.4], "3": [0.8, 0.25, 0.3]})
    grade = grade_submission(submission, task=multiclass_task, labels=labels)
    assert grade.valid
    assert grade.score.value == pytest.approx(-(math.log(0.5) + math.log(0.4) + math.log(0.8)) / 3)


def test_grade_rmsle_by_hand(regression_task):
    labels = pd.Series([0.0, math.e - 1], index=pd.Index([0, 1], name="id"), name="price")
    grade = grade_submission(pd.DataFrame({"id": [1, 0], "price": [0.0, 0.0]}), task=regression_task, labels=labels)
    assert grade.score.value == pytest.approx(math.sqrt(0.5))


def test_grade_f1_with_numeric_strings(tmp_path):
    frame = pd.DataFrame({"id": range(40), "x": range(40), "y": [0, 1, 0, 0] * 10})
    task = make_task(tmp_path, frame, target="y", metric="f1")
    assert task.positive_label == 1
    labels = pd.Series([1, 1, 0, 0], index=pd.Index([10, 11, 12, 13], name="id"), name="y")
    path = write(tmp_path, "id,y\n10,1.0\n11,0\n12,1\n13,0\n")  # tp=1 fp=1 fn=1
    assert grade_submission(path, task=task, labels=labels).score.value == pytest.approx(0.5)


def test_invalid_submission_grades_worst(tmp_path, binary_task):
    split = make_split(binary_task)
    grade = grade_submission(write(tmp_path, "id,label\n1,no\n"), task=binary_task, labels=split.labels)
    assert not grade.valid and grade.score == Score.worst("accuracy") and grade.n_rows == 1
    assert grade.problems and str(grade.score) == "failed"
    grade = grade_submission(tmp_path / "missing.csv", task=binary_task, labels=split.labels)
    assert grade.n_rows == 0 and "missing.csv was not written" in grade.problems[0]


def test_shared_task_round_trip():
    folder = SHARED_TASKS / "telco_churn"
    if not folder.is_dir():
        pytest.skip("shared tasks not available")
    task = load_task(folder)
    split = make_split(task, seed=0)
    assert set(split.valid.columns) == set(task.test.columns)
    grade = grade_submission(split.sample_submission, task=task, labels=split.labels)
    assert grade.valid and grade.score.value == pytest.approx(0.5)
