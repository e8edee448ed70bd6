"""What the sample submission and the description ask a submission to hold (labels, probabilities, one column
per class), the metric that follows when nothing names one, the one note that says so, and the submission
columns of a per-class probability sample. Every task is a Kaggle-style folder written here with pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.task import load_task
from tabcoder.task.layouts import Sources
from tabcoder.task.output_kind import MAX_QUOTED, OutputKind, description_kind, sample_kind

N_TRAIN, N_TEST = 40, 10
TEST_IDS = list(range(N_TRAIN, N_TRAIN + N_TEST))


def write_task(folder: Path, train: pd.DataFrame, test: pd.DataFrame | None, *, sample: pd.DataFrame | None = None,
               description: str | None = None, toml: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    if test is not None:
        test.to_csv(folder / "test.csv", index=False)
    if sample is not None:
        sample.to_csv(folder / "sample_submission.csv", index=False)
    if description is not None:
        (folder / "description.md").write_text(description)
    if toml is not None:
        (folder / "task.toml").write_text(toml)
    return folder


def frames(target: str, labels: list, id_column: str = "id") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (id, two features, the target cycling through `labels`) and test (the next ids, no target)."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        id_column: range(N_TRAIN),
        "x": rng.normal(size=N_TRAIN).round(3),
        "colour": rng.choice(["red", "blue"], size=N_TRAIN),
        target: [labels[i % len(labels)] for i in range(N_TRAIN)],
    })
    test = pd.DataFrame({id_column: TEST_IDS, "x": rng.normal(size=N_TEST).round(3),
                         "colour": rng.choice(["red", "blue"], size=N_TEST)})
    return train, test


def metric_note(task) -> str:
    notes = [n for n in task.notes if n.startswith("metric ")]
    assert len(notes) == 1, task.notes  # one decision, one note
    return notes[0]


# =========================================================================== True/False labels (pandas: bool)


def transported(tmp_path: Path, *, description: str | None = None, toml: str | None = None,
                sample: bool = True) -> Path:
    train, test = frames("Transported", [True, False, False], id_column="PassengerId")
    table = pd.DataFrame({"PassengerId": TEST_IDS, "Transported": [True, False] * (N_TEST // 2)}) if sample else None
    return write_task(tmp_path / "spaceship", train, test, sample=table, description=description, toml=toml)


def test_bool_labels_and_predict_either_give_accuracy(tmp_path):
    task = load_task(transported(tmp_path, description="# Spaceship\nFor each passenger, predict either True or "
                                                       "False.\n"))
    assert task.train["Transported"].dtype == bool and task.classes == [False, True]
    assert task.metric == "accuracy"
    assert metric_note(task) == ("metric 'accuracy': sample_submission.csv holds class labels (False, True) and "
                                 "description.md asks for labels (\"predict either True or False\"); "
                                 "the description names no metric")
    assert task.submission_columns == ["PassengerId", "Transported"]
    assert task.sample_submission is not None  # the sample fits the label submission


def test_bool_labels_without_description(tmp_path):
    task = load_task(transported(tmp_path))
    assert task.metric == "accuracy"
    assert metric_note(task) == ("metric 'accuracy': sample_submission.csv holds class labels (False, True); "
                                 "there is no description")


def test_bool_labels_with_a_metric_in_the_description(tmp_path):
    task = load_task(transported(tmp_path, description="Predict whether a passenger was transported.\n"
                                                       "Evaluation: F1 score of True.\n"))
    assert task.metric == "f1"
    assert metric_note(task) == "metric 'f1' from description.md; sample_submission.csv holds class labels " \
                                "(False, True), which fits"


def test_bool_labels_with_a_description_metric_that_disagrees(tmp_path):
    task = load_task(transported(tmp_path, description="For each passenger, predict either True or False.\n"
                                                       "Submissions are evaluated on ROC AUC.\n"))
    assert task.metric == "roc_auc"
    assert metric_note(task) == (
        "metric 'roc_auc' from description.md; sample_submission.csv holds class labels (False, True) and "
        "description.md asks for labels (\"predict either True or False\"), which would fit a label metric such "
        "as accuracy: the submission follows the metric")


def test_bool_labels_with_a_toml_metric_that_disagrees(tmp_path):
    task = load_task(transported(tmp_path, toml='metric = "roc_auc"\n'))
    assert task.metric == "roc_auc"
    assert metric_note(task) == ("metric 'roc_auc' from task.toml; sample_submission.csv holds class labels "
                                 "(False, True), which would fit a label metric such as accuracy: the submission "
                                 "follows the metric")
    assert task.submission_columns == ["PassengerId", "Transported"]


def test_an_argument_beats_the_sample(tmp_path):
    task = load_task(transported(tmp_path), metric="log_loss")
    assert task.metric == "log_loss"
    assert metric_note(task).startswith("metric 'log_loss' from the arguments; sample_submission.csv holds class "
                                        "labels (False, True), which would fit a label metric such as accuracy")


def test_the_sample_beats_the_description_phrases(tmp_path):
    task = load_task(transported(tmp_path, description="Submit the probability that a passenger was "
                                                       "transported.\n"))
    assert task.metric == "accuracy"
    assert metric_note(task) == (
        "metric 'accuracy': sample_submission.csv holds class labels (False, True); description.md asks for "
        "probabilities (\"Submit the probability that a passenger was transported.\"), but "
        "sample_submission.csv decides; the description names no metric")


def test_predict_either_without_a_sample(tmp_path):
    task = load_task(transported(tmp_path, sample=False,
                                 description="For each passenger, predict either True or False."))
    assert task.metric == "accuracy" and task.sample_submission is None
    assert metric_note(task) == ("metric 'accuracy': description.md asks for labels (\"predict either True or "
                                 "False\"); the description names no metric")


def test_no_sample_and_no_phrase_keeps_the_default(tmp_path):
    task = load_task(transported(tmp_path, sample=False, description="Passengers of the spaceship."))
    assert task.metric == "roc_auc"
    assert metric_note(task) == "metric 'roc_auc': the default for binary tasks"


# =========================================================================== 0/1 labels (pandas: int64 / float64)


def zero_one(tmp_path: Path, values: list, **kwargs) -> Path:
    train, test = frames("y", [0, 1, 1])
    sample = pd.DataFrame({"id": TEST_IDS, "y": [values[i % len(values)] for i in range(N_TEST)]})
    return write_task(tmp_path / "t", train, test, sample=sample, **kwargs)


def test_zero_one_integers_are_labels(tmp_path):
    task = load_task(zero_one(tmp_path, [0, 1]))
    assert task.metric == "accuracy"
    assert metric_note(task) == "metric 'accuracy': sample_submission.csv holds class labels (0, 1); there is no " \
                                "description"


def test_zero_written_with_a_decimal_point_is_a_probability(tmp_path):
    task = load_task(zero_one(tmp_path, [0.0]))
    assert task.metric == "roc_auc"
    assert metric_note(task) == "metric 'roc_auc': sample_submission.csv holds probabilities (0.0); there is no " \
                                "description"


def test_zero_one_labels_with_a_metric_in_the_description(tmp_path):
    task = load_task(zero_one(tmp_path, [0, 1], description="The score is the macro F1."))
    assert task.metric == "macro_f1"
    assert metric_note(task) == ("metric 'macro_f1' from description.md; sample_submission.csv holds class labels "
                                 "(0, 1), which fits")


# =========================================================================== text labels


def test_yes_no_labels(tmp_path):
    train, test = frames("Attrition", ["No", "No", "Yes"])
    sample = pd.DataFrame({"id": TEST_IDS, "Attrition": "No"})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample))
    assert task.metric == "accuracy"
    assert metric_note(task) == "metric 'accuracy': sample_submission.csv holds class labels (No); there is no " \
                                "description"


def test_labels_spelled_in_another_case_are_labels(tmp_path):
    train, test = frames("Attrition", ["No", "No", "Yes"])
    sample = pd.DataFrame({"id": TEST_IDS, "Attrition": [" yes", "NO"] * (N_TEST // 2)})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample))
    assert task.metric == "accuracy"


def test_values_that_are_no_class_say_nothing(tmp_path):
    train, test = frames("Attrition", ["No", "No", "Yes"])
    sample = pd.DataFrame({"id": TEST_IDS, "Attrition": "maybe"})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample))
    assert task.metric == "roc_auc"
    assert metric_note(task) == "metric 'roc_auc': the default for binary tasks"


def species(tmp_path: Path, sample: pd.DataFrame | None, **kwargs) -> Path:
    train, test = frames("species", ["Adelie", "Gentoo", "Chinstrap", "Adelie"])
    return write_task(tmp_path / "penguins", train, test, sample=sample, **kwargs)


def test_three_species_labels(tmp_path):
    sample = pd.DataFrame({"id": TEST_IDS, "species": ["Adelie", "Gentoo"] * (N_TEST // 2)})
    task = load_task(species(tmp_path, sample, description="Predict the species of each penguin."))
    assert task.task_type == "multiclass" and task.metric == "accuracy"
    assert metric_note(task) == ("metric 'accuracy': sample_submission.csv holds class labels (Adelie, Gentoo); "
                                 "the description names no metric")
    assert task.submission_columns == ["id", "species"]


def test_species_labels_with_a_toml_probability_metric(tmp_path):
    sample = pd.DataFrame({"id": TEST_IDS, "species": "Adelie"})
    task = load_task(species(tmp_path, sample, toml='metric = "log_loss"\n'))
    assert task.metric == "log_loss"
    assert metric_note(task) == ("metric 'log_loss' from task.toml; sample_submission.csv holds class labels "
                                 "(Adelie), which would fit a label metric such as accuracy: the submission follows "
                                 "the metric")
    assert task.submission_columns == ["id", "Adelie", "Chinstrap", "Gentoo"]
    assert task.sample_submission is None  # a label sample does not fit a per-class submission
    assert any(n.startswith("sample_submission.csv ignored: its columns (id, species)") for n in task.notes)


# =========================================================================== binary probabilities


def churn(tmp_path: Path, **kwargs) -> Path:
    train, test = frames("churn", ["No", "No", "Yes"])
    sample = pd.DataFrame({"id": TEST_IDS, "churn": 0.5})
    return write_task(tmp_path / "churn", train, test, sample=sample, **kwargs)


def test_half_is_a_probability(tmp_path):
    task = load_task(churn(tmp_path, description="Predict whether each customer churns."))
    assert task.metric == "roc_auc"
    assert metric_note(task) == ("metric 'roc_auc': sample_submission.csv holds probabilities (0.5); the "
                                 "description names no metric")
    assert task.submission_columns == ["id", "churn"] and task.sample_submission is not None


def test_probabilities_with_a_label_metric_in_the_description(tmp_path):
    task = load_task(churn(tmp_path, description="Evaluation: accuracy."))
    assert task.metric == "accuracy"
    assert metric_note(task) == ("metric 'accuracy' from description.md; sample_submission.csv holds probabilities "
                                 "(0.5), which would fit a probability metric such as roc_auc: the submission "
                                 "follows the metric")


def test_probabilities_with_a_toml_metric(tmp_path):
    task = load_task(churn(tmp_path, toml='metric = "log_loss"\n'))
    assert metric_note(task) == "metric 'log_loss' from task.toml; sample_submission.csv holds probabilities " \
                                "(0.5), which fits"
    task = load_task(churn(tmp_path / "b", toml='metric = "f1"\n'))
    assert task.metric == "f1"
    assert metric_note(task).endswith("which would fit a probability metric such as roc_auc: the submission "
                                      "follows the metric")


# =========================================================================== one probability column per class


PER_CLASS = ["Gentoo", "Adelie", "Chinstrap"]  # not sorted


def per_class_sample() -> pd.DataFrame:
    return pd.DataFrame({"id": TEST_IDS, **{c: 1 / 3 for c in PER_CLASS}})


def test_per_class_probabilities_keep_the_sample_order(tmp_path):
    task = load_task(species(tmp_path, per_class_sample()))
    assert task.metric == "log_loss"
    assert metric_note(task) == ("metric 'log_loss': sample_submission.csv holds one probability column per class "
                                 "(Gentoo, Adelie, Chinstrap); there is no description")
    assert task.submission_columns == ["id", *PER_CLASS]
    assert task.classes == ["Adelie", "Chinstrap", "Gentoo"]  # the classes stay sorted
    assert task.sample_submission is not None and list(task.sample_submission.columns) == ["id", *PER_CLASS]
    assert not any("ignored" in n for n in task.notes)


def test_per_class_probabilities_with_a_label_metric_in_the_description(tmp_path):
    task = load_task(species(tmp_path, per_class_sample(), description="Evaluation: accuracy of the species."))
    assert task.metric == "accuracy"
    assert metric_note(task) == ("metric 'accuracy' from description.md; sample_submission.csv holds one "
                                 "probability column per class (Gentoo, Adelie, Chinstrap), which would fit a "
                                 "probability metric such as log_loss: the submission follows the metric")
    assert task.submission_columns == ["id", "species"] and task.sample_submission is None


def test_per_class_probabilities_with_a_toml_metric(tmp_path):
    task = load_task(species(tmp_path, per_class_sample(), toml='metric = "roc_auc"\n'))
    assert task.metric == "roc_auc"
    assert metric_note(task) == ("metric 'roc_auc' from task.toml; sample_submission.csv holds one probability "
                                 "column per class (Gentoo, Adelie, Chinstrap), which fits")
    assert task.submission_columns == ["id", *PER_CLASS] and task.sample_submission is not None


def test_sorted_class_columns_without_a_sample(tmp_path):
    task = load_task(species(tmp_path, None, toml='metric = "log_loss"\n'))
    assert task.submission_columns == ["id", "Adelie", "Chinstrap", "Gentoo"]


def test_a_perfect_submission_in_the_sample_order_scores_perfectly(tmp_path):
    from tabcoder.grading.scoring import grade_submission

    task = load_task(species(tmp_path, per_class_sample()))
    truth = ["Adelie", "Gentoo"] * (N_TEST // 2)
    submission = pd.DataFrame({"id": TEST_IDS, **{c: [float(t == c) for t in truth] for c in PER_CLASS}})
    grade = grade_submission(submission, task=task, labels=pd.Series(truth, index=TEST_IDS))
    assert grade.valid and grade.score.value < 1e-6


# =========================================================================== regression: nothing changes


def houses(tmp_path: Path, **kwargs) -> Path:
    train, test = frames("price", [float(v) for v in np.linspace(10.5, 99.5, 37)])
    sample = pd.DataFrame({"id": TEST_IDS, "price": 0.5})
    return write_task(tmp_path / "houses", train, test, sample=sample, **kwargs)


def test_regression_sample_changes_nothing(tmp_path):
    task = load_task(houses(tmp_path, description="Predict the probability-weighted price."))
    assert task.task_type == "regression" and task.metric == "rmse"
    assert metric_note(task) == "metric 'rmse': the default for regression tasks"
    assert load_task(houses(tmp_path / "b", description="Evaluation: mean absolute error.")).notes.count(
        "metric 'mae' from description.md") == 1
    assert "metric 'r2' from task.toml" in load_task(houses(tmp_path / "c", toml='metric = "r2"\n')).notes


# =========================================================================== the description's phrases


def description_task(tmp_path: Path, description: str, labels: list | None = None) -> Path:
    train, test = frames("y", labels or ["Yes", "No", "No"])
    return write_task(tmp_path / "t", train, test, description=description)


@pytest.mark.parametrize("description, quote", [
    ("Predict either 'YES' or \"no\" for every row.", "Predict either 'YES' or \"no\""),
    ("Your job: predict, for each row, either **Yes** or **No**.", "predict, for each row, either **Yes** or **No**"),
    ("Submit the predicted label for each id.", "Submit the predicted label for each id."),
    ("Output one class label per row.", "Output one class label per row."),
])
def test_label_phrases(tmp_path, description, quote):
    task = load_task(description_task(tmp_path, description))
    assert task.metric == "accuracy"
    assert metric_note(task) == f"metric 'accuracy': description.md asks for labels (\"{quote}\"); the " \
                                "description names no metric"


def test_probability_phrase_binary_and_multiclass(tmp_path):
    task = load_task(description_task(tmp_path / "a", "Submissions hold the probability of Yes."))
    assert task.metric == "roc_auc"
    assert metric_note(task) == ("metric 'roc_auc': description.md asks for probabilities (\"Submissions hold the "
                                 "probability of Yes.\"); the description names no metric")
    task = load_task(description_task(tmp_path / "b", "Predict the probabilities of each class.", ["a", "b", "c"]))
    assert task.metric == "log_loss"


@pytest.mark.parametrize("description", [
    "Predict either A or B.",  # not classes of the target
    "The data has class labels Yes and No.",  # asks nothing
    "Do not submit probabilities.",  # a negation
    "Predict either Yes or No. Submit the probability of Yes.",  # both kinds
    "Predict the class label and its probability.",  # both in one sentence
])
def test_phrases_that_say_nothing_keep_the_default(tmp_path, description):
    task = load_task(description_task(tmp_path, description))
    assert task.metric == "roc_auc"
    assert metric_note(task) == "metric 'roc_auc': the default for binary tasks"


def test_a_long_sentence_is_quoted_short(tmp_path):
    sentence = ("For every one of the many customers listed in the test file you must predict the probability "
                "that the customer leaves the company within the next twelve months of the contract.")
    task = load_task(description_task(tmp_path, sentence))
    quoted = metric_note(task).split('("')[1].split('")')[0]
    assert "probability" in quoted and quoted.startswith("…") and quoted.endswith("…")
    assert len(quoted) <= MAX_QUOTED + 2


def test_a_sentence_broken_over_lines_is_one_sentence(tmp_path):
    task = load_task(description_task(tmp_path, "Evaluation is done on the held-out rows.\nSubmit a probability "
                                                "in the\n`y` column of the submission.\n"))
    assert metric_note(task) == ("metric 'roc_auc': description.md asks for probabilities (\"Submit a probability "
                                 "in the `y` column of the submission.\"); the description names no metric")


def test_markdown_items_headings_and_abbreviations(tmp_path):
    description = ("# Submission\n- Output probabilities, e.g. 0.73, for each\n  test row.\n"
                   "## Data\nThe class labels are Yes and No.\n")
    task = load_task(description_task(tmp_path, description))
    assert metric_note(task) == ("metric 'roc_auc': description.md asks for probabilities (\"Output probabilities, "
                                 "e.g. 0.73, for each test row.\"); the description names no metric")


# =========================================================================== samples that are not read


def test_sample_without_the_id_column_first_is_not_read(tmp_path):
    train, test = frames("y", ["Yes", "No", "No"])
    sample = pd.DataFrame({"y": "No", "id": TEST_IDS})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample), id_column="id")
    assert task.metric == "roc_auc" and task.sample_submission is None
    assert metric_note(task) == "metric 'roc_auc': the default for binary tasks"


def test_sample_is_not_read_when_the_id_is_generated(tmp_path):
    train, test = frames("y", ["Yes", "No", "No"])
    train, test = train.drop(columns="id"), test.drop(columns="id")
    sample = pd.DataFrame({"id": TEST_IDS, "y": "No"})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample), target="y")
    assert task.id_generated and task.metric == "roc_auc"
    assert any("sample_submission.csv ignored" in n for n in task.notes)


def test_sample_kind_value():
    train, test = frames("y", ["Yes", "No", "No"])
    sources = Sources(name="t", source=Path("t"), train=train, train_name="train.csv", test=test,
                      sample_submission=pd.DataFrame({"id": TEST_IDS, "y": "Yes"}))
    kind = sample_kind(sources, id_column="id", target="y", task_type="binary", classes=["No", "Yes"])
    assert kind == OutputKind("label", "sample_submission.csv", "holds class labels (Yes)")
    assert str(kind) == "sample_submission.csv holds class labels (Yes)"
    assert sample_kind(sources, id_column=None, target="y", task_type="binary", classes=["No", "Yes"]) is None
    sources.test = None
    assert sample_kind(sources, id_column="id", target="y", task_type="binary", classes=["No", "Yes"]) is None
    assert description_kind("Predict either Yes or No.", task_type="regression", classes=None, source="d") is None
