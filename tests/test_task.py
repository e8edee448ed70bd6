"""Loading tasks: the shared real tasks, every input layout and table format, inference rules, and the
errors raised for unusable input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.errors import ConfigError, TaskError
from tabcoder.task import Task, load_task, parse_columns_py, read_table

from support import SHARED_TASKS


def shared(name: str) -> Path:
    path = SHARED_TASKS / name
    if not path.is_dir():
        pytest.skip(f"shared task {name} not available at {path}")
    return path


def write_task(folder: Path, train: pd.DataFrame, test: pd.DataFrame | None = None, *,
               sample: pd.DataFrame | None = None, description: str | None = None, toml: str | None = None) -> Path:
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


def toy_frames(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A binary task with ids, a numeric and a text feature; the label is 'yes' for a third of the rows."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({
        "id": np.arange(n),
        "x": rng.normal(size=n).round(3),
        "colour": rng.choice(["red", "blue"], size=n),
        "label": np.where(np.arange(n) % 3 == 0, "yes", "no"),
    })
    test = pd.DataFrame({"id": np.arange(n, n + 10), "x": rng.normal(size=10).round(3),
                         "colour": rng.choice(["red", "blue"], size=10)})
    return train, test


# =========================================================================== the shared tasks


def test_penguins():
    task = load_task(shared("penguins"))
    assert (task.target, task.id_column, task.task_type, task.metric) == ("species", "id", "multiclass", "accuracy")
    assert task.positive_label is None and task.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert task.submission_columns == ["id", "species"]
    assert not task.id_generated and task.name == "penguins"
    assert "species" not in task.test.columns and task.sample_submission is not None
    assert task.feature_columns == ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                    "body_mass_g", "sex", "year"]
    assert "Palmer penguins" in task.description


def test_telco_churn_positive_label_from_toml():
    task = load_task(shared("telco_churn"))
    assert (task.target, task.id_column, task.task_type, task.metric) == ("churn", "id", "binary", "roc_auc")
    assert task.positive_label == "Yes" and task.classes == ["No", "Yes"]
    assert any("task.toml" in n and "positive label" in n for n in task.notes)


def test_concrete():
    task = load_task(shared("concrete"))
    assert (task.target, task.id_column, task.task_type, task.metric) == \
        ("compressive_strength", "id", "regression", "rmse")
    assert task.classes is None and task.positive_label is None


def test_diamonds():
    task = load_task(shared("diamonds"))
    assert (task.target, task.id_column, task.task_type, task.metric) == ("price", "id", "regression", "rmsle")
    assert task.metric_spec.name == "rmsle" and not task.metric_spec.greater_is_better


def test_attrition_everything_inferred():
    task = load_task(shared("attrition"))
    assert (task.target, task.id_column, task.task_type) == ("Attrition", "id", "binary")
    assert task.metric == "f1" and task.positive_label == "Yes"
    assert "target 'Attrition' from sample_submission.csv" in task.notes
    assert any(n.startswith("metric 'f1' from description.md") for n in task.notes)
    assert any("positive label 'Yes'" in n for n in task.notes)


def test_shared_task_data_is_not_mangled():
    folder = shared("penguins")
    task = load_task(folder)
    pd.testing.assert_frame_equal(task.train, pd.read_csv(folder / "train.csv"))
    pd.testing.assert_frame_equal(task.test, pd.read_csv(folder / "test.csv"))


def test_arguments_override_toml():
    task = load_task(shared("telco_churn"), metric="log_loss", positive_label="No")
    assert task.metric == "log_loss" and task.positive_label == "No"


# =========================================================================== table formats


def test_read_table_formats(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, 1.5, 2.5]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    frame.to_csv(tmp_path / "t.txt", index=False, sep=";")
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    with gzip.open(tmp_path / "t.csv.gz", "wt") as handle:
        frame.to_csv(handle, index=False)
    for name in ("t.csv", "t.tsv", "t.txt", "t.parquet", "t.xlsx", "t.csv.gz"):
        table = read_table(tmp_path / name)
        assert list(table.columns) == ["a", "b", "c"], name
        assert table["a"].tolist() == [1, 2, 3] and table["b"].isna().tolist() == [False, False, True], name


ARFF = """% weather
@RELATION weather
@ATTRIBUTE outlook {sunny, overcast, rainy}
@ATTRIBUTE temperature NUMERIC
@ATTRIBUTE windy {TRUE, FALSE}
@ATTRIBUTE count INTEGER
@ATTRIBUTE play {yes, no}
@DATA
sunny,85,FALSE,1,no
sunny,80,TRUE,2,no
overcast,83,FALSE,3,yes
rainy,70,FALSE,4,yes
rainy,?,TRUE,5,no
overcast,64,TRUE,6,yes
"""


def test_read_arff_nominal_as_strings(tmp_path):
    (tmp_path / "weather.arff").write_text(ARFF)
    table = read_table(tmp_path / "weather.arff")
    assert list(table.columns) == ["outlook", "temperature", "windy", "count", "play"]
    assert pd.api.types.is_string_dtype(table["outlook"]) and table["windy"].tolist()[:2] == ["FALSE", "TRUE"]
    assert pd.api.types.is_float_dtype(table["temperature"]) and np.isnan(table["temperature"][4])
    assert table["count"].dtype == np.int64


def test_single_arff_table_with_target(tmp_path):
    (tmp_path / "weather.arff").write_text(ARFF)
    task = load_task(tmp_path / "weather.arff", target="play")
    assert task.name == "weather" and task.task_type == "binary" and task.positive_label == "yes"
    assert task.id_generated and task.id_column == "id" and task.train["id"].tolist() == list(range(6))
    assert task.test is None and task.metric == "roc_auc"


def test_single_csv_with_test_path(tmp_path):
    train, test = toy_frames()
    train.to_csv(tmp_path / "data.csv", index=False)
    test.to_csv(tmp_path / "holdout.csv", index=False)
    task = load_task(tmp_path / "data.csv", test_path=tmp_path / "holdout.csv")
    assert task.target == "label" and task.id_column == "id" and len(task.test) == 10
    assert any("only data.csv column missing from holdout.csv" in n for n in task.notes)


def test_single_parquet_and_xlsx(tmp_path):
    train, _ = toy_frames()
    train.to_parquet(tmp_path / "data.parquet", index=False)
    train.to_excel(tmp_path / "sheet.xlsx", index=False)
    for name in ("data.parquet", "sheet.xlsx"):
        task = load_task(tmp_path / name, target="label", metric="accuracy")
        assert task.task_type == "binary" and task.id_column == "id" and not task.id_generated
        assert task.positive_label == "yes" and len(task.train) == 40


def test_single_table_without_target_says_pass_target(tmp_path):
    train, _ = toy_frames()
    train.to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(TaskError) as info:
        load_task(tmp_path / "data.csv")
    assert "Pass --target NAME" in str(info.value)
    assert "id, x, colour, label" in str(info.value)


# =========================================================================== ML-hw layout


COLUMNS_PY = '''
example_columns = """
PassengerId,age,city,bought
a1,34,Paris,True
"""
predict_goal = "bought"
task_description = """Predict whether a customer bought the product."""
test_file = "holdout.csv"
'''


def write_mlhw(folder: Path, columns_py: str, n: int = 30) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"PassengerId": [f"a{i}" for i in range(n + 8)], "age": rng.integers(18, 80, n + 8),
                          "city": rng.choice(["Paris", "Rome"], n + 8),
                          "bought": (np.arange(n + 8) % 2 == 0)})
    frame.iloc[:n].to_csv(folder / "train.csv", index=False)
    frame.iloc[n:].drop(columns="bought").to_csv(folder / "holdout.csv", index=False)
    (folder / "columns.py").write_text(columns_py)
    return folder


def test_mlhw_layout(tmp_path):
    task = load_task(write_mlhw(tmp_path / "shop", COLUMNS_PY))
    assert task.name == "shop" and task.target == "bought" and len(task.test) == 8
    assert task.description == "Predict whether a customer bought the product."
    assert task.task_type == "binary" and task.classes == [False, True] and task.positive_label is True
    assert task.id_column == "PassengerId" and not task.id_generated  # named like an id, unique everywhere
    assert any("columns.py" in n for n in task.notes)


def test_mlhw_columns_py_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = (
        f"import os\nos.system('touch {marker}')\n"
        f"open({str(marker)!r}, 'w').write('x')\n"
        f"predict_goal = 'bought'\n"
        f"test_file = 'holdout' + '.csv'\n"
        f"task_description = __import__('os').system('touch {marker}')\n"
    )
    folder = write_mlhw(tmp_path / "evil", evil)
    task = load_task(folder)
    assert not marker.exists()
    assert task.target == "bought"
    assert task.test is None  # test_file was not a literal: ignored, and test.csv does not exist
    notes = " ".join(task.notes)
    assert "ignored test_file" in notes and "ignored task_description" in notes and "never executed" in notes


def test_parse_columns_py_literals_only(tmp_path):
    path = tmp_path / "columns.py"
    path.write_text("a = 1\nb: str = 'x'\nc = [1, 2]\nd = f(3)\nimport sys\n")
    values, notes = parse_columns_py(path)
    assert values == {"a": 1, "b": "x", "c": [1, 2]}
    assert any("ignored d" in n for n in notes) and any("not assignments" in n for n in notes)


def test_mlhw_description_falls_back_to_example_rows(tmp_path):
    columns_py = 'predict_goal = "bought"\nexample_columns = "PassengerId,age\\na1,3"\ntest_file = "holdout.csv"\n'
    task = load_task(write_mlhw(tmp_path / "shop", columns_py))
    assert "PassengerId,age" in task.description


# =========================================================================== inference rules


def test_generated_id_continues_into_test(tmp_path):
    train, test = toy_frames()
    folder = write_task(tmp_path / "t", train.drop(columns="id"), test.drop(columns="id"))
    task = load_task(folder)
    assert task.id_generated and task.id_column == "id"
    assert task.train["id"].tolist() == list(range(40)) and task.test["id"].tolist() == list(range(40, 50))
    assert task.train.columns[0] == "id" and task.feature_columns == ["x", "colour"]


def test_generated_id_is_row_id_when_id_is_a_feature(tmp_path):
    train, test = toy_frames()
    train["id"] = train["id"] % 5  # not unique: a feature, not an id
    test["id"] = test["id"] % 5
    task = load_task(write_task(tmp_path / "t", train, test))
    assert task.id_column == "row_id" and task.id_generated and "id" in task.feature_columns


def test_task_type_inference(tmp_path):
    n = 100
    frame = pd.DataFrame({"x": np.arange(n)})
    cases = {
        "int_few": (np.arange(n) % 4, "multiclass"),
        "int_two": (np.arange(n) % 2, "binary"),
        "int_many": (np.arange(n) * 7, "regression"),
        "float": (np.linspace(0, 1, n), "regression"),
        "whole_floats": ((np.arange(n) % 3).astype(float), "multiclass"),
        "bool": (np.arange(n) % 2 == 0, "binary"),
        "text": (np.where(np.arange(n) % 3 == 0, "a", "b"), "binary"),
    }
    for name, (values, _) in cases.items():
        frame[name] = values
    frame.to_csv(tmp_path / "d.csv", index=False)
    for name, (_, expected) in cases.items():
        assert load_task(tmp_path / "d.csv", target=name).task_type == expected, name


def test_whole_float_classes_become_ints(tmp_path):
    frame = pd.DataFrame({"x": range(40), "y": [0, 1, 2, None] * 10})
    frame.to_csv(tmp_path / "d.csv", index=False)
    task = load_task(tmp_path / "d.csv", target="y")
    assert task.classes == [0, 1, 2] and task.train["y"].dtype == np.int64
    assert "dropped 10 d.csv rows with a missing target" in task.notes


@pytest.mark.parametrize("labels, expected", [
    ([0, 1], 1), (["No", "Yes"], "Yes"), (["n", "y"], "y"), (["false", "true"], True),
    (["neg", "positive"], "positive"),
])
def test_conventional_positive_label(tmp_path, labels, expected):
    frame = pd.DataFrame({"x": range(20), "y": [labels[i % 2] for i in range(20)]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert load_task(tmp_path / "d.csv", target="y").positive_label == expected


def test_positive_label_minority_and_description(tmp_path):
    train = pd.DataFrame({"x": range(30), "y": ["cat" if i % 5 else "dog" for i in range(30)]})
    folder = write_task(tmp_path / "a", train, train.drop(columns="y"))
    assert load_task(folder, target="y").positive_label == "dog"
    folder = write_task(tmp_path / "b", train, train.drop(columns="y"), description="Score: F1 of `y` = cat.")
    task = load_task(folder)
    assert task.positive_label == "cat" and task.metric == "f1"


def test_positive_label_given_as_text_matches_numeric_class(tmp_path):
    frame = pd.DataFrame({"x": range(20), "y": [0, 1] * 10})
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert load_task(tmp_path / "d.csv", target="y", positive_label="0").positive_label == 0


def test_multiclass_probability_metric_submission_columns(tmp_path):
    train = pd.DataFrame({"id": range(30), "x": range(30), "y": [1, 2, 3] * 10})
    task = load_task(write_task(tmp_path / "t", train, toml='metric = "log_loss"\ntarget = "y"\n'))
    assert task.task_type == "multiclass" and task.submission_columns == ["id", "1", "2", "3"]


def test_sample_submission_with_other_columns_is_ignored(tmp_path):
    train, test = toy_frames()
    sample = pd.DataFrame({"id": test["id"], "label": "no"})
    task = load_task(write_task(tmp_path / "t", train, test, sample=sample), metric="log_loss",
                     task_type="multiclass")
    assert task.sample_submission is None
    assert any("sample_submission.csv ignored" in n for n in task.notes)


def test_target_with_empty_column_in_test_is_dropped(tmp_path):
    train, test = toy_frames()
    test["label"] = np.nan
    task = load_task(write_task(tmp_path / "t", train, test), target="label")
    assert "label" not in task.test.columns


def test_string_dtype_is_kept(tmp_path):
    train, test = toy_frames()
    task = load_task(write_task(tmp_path / "t", train, test))
    expected = pd.read_csv(tmp_path / "t" / "train.csv")
    assert task.train["colour"].dtype == expected["colour"].dtype and pd.api.types.is_string_dtype(task.train["colour"])
    pd.testing.assert_frame_equal(task.train, expected)


# =========================================================================== errors


def test_missing_path(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        load_task(tmp_path / "nope")


def test_folder_without_train_lists_its_files(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.md").write_text("x")
    (tmp_path / "t" / "data.csv").write_text("a\n1\n")
    with pytest.raises(TaskError) as info:
        load_task(tmp_path / "t")
    assert "no train file" in str(info.value) and "data.csv" in str(info.value) and "notes.md" in str(info.value)


def test_unreadable_file_names_the_file_and_parser_error(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "train.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(TaskError) as info:
        load_task(folder)
    assert "cannot read train.parquet as a parquet table: ArrowInvalid" in str(info.value)


def test_unknown_table_format(tmp_path):
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(TaskError, match=r"unknown table format '\.json'.*\.csv"):
        read_table(tmp_path / "d.json")


def test_empty_tables(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TaskError, match="empty.csv is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(TaskError, match="no data rows.*a, b"):
        read_table(tmp_path / "header.csv")


def test_unknown_target_lists_columns(tmp_path):
    train, test = toy_frames()
    with pytest.raises(TaskError) as info:
        load_task(write_task(tmp_path / "t", train, test), target="lable")
    message = str(info.value)
    assert "'lable'" in message and "id, x, colour, label" in message and "Did you mean 'label'" in message


def test_ambiguous_target(tmp_path):
    train, test = toy_frames()
    train["leak"] = 1
    with pytest.raises(TaskError) as info:
        load_task(write_task(tmp_path / "t", train, test))
    assert "Candidates: label, leak" in str(info.value) and "--target" in str(info.value)


def test_target_all_missing(tmp_path):
    train = pd.DataFrame({"x": [1, 2, 3], "y": [np.nan] * 3})
    train.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(TaskError, match="empty in every row"):
        load_task(tmp_path / "d.csv", target="y")


def test_single_class_target(tmp_path):
    train = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "a", "a"]})
    train.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(TaskError, match="single class \\('a'\\)"):
        load_task(tmp_path / "d.csv", target="y")


def test_test_columns_must_match(tmp_path):
    train, test = toy_frames()
    test = test.drop(columns="colour").assign(extra=1)
    with pytest.raises(TaskError) as info:
        load_task(write_task(tmp_path / "t", train, test), target="label")
    message = str(info.value)
    assert "missing from test.csv: colour" in message and "not in train.csv: extra" in message


def test_unknown_metric_lists_names(tmp_path):
    train, test = toy_frames()
    with pytest.raises(ConfigError, match="unknown metric 'precision'.*roc_auc"):
        load_task(write_task(tmp_path / "t", train, test), metric="precision")


def test_metric_incompatible_with_task_type(tmp_path):
    train, test = toy_frames()
    with pytest.raises(ConfigError) as info:
        load_task(write_task(tmp_path / "t", train, test), metric="rmse")
    message = str(info.value)
    assert "does not apply to a binary task" in message and "roc_auc" in message and "f1" in message


def test_rmsle_with_negative_targets(tmp_path):
    train = pd.DataFrame({"x": range(10), "y": np.linspace(-1, 1, 10)})
    train.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ConfigError, match="non-negative"):
        load_task(tmp_path / "d.csv", target="y", metric="rmsle")


def test_explicit_task_type_incompatible_with_target(tmp_path):
    train, test = toy_frames()
    folder = write_task(tmp_path / "t", train, test)
    with pytest.raises(TaskError, match="needs a numeric target.*'label'"):
        load_task(folder, task_type="regression")
    with pytest.raises(TaskError, match="needs class labels.*use task type regression"):
        load_task(folder / "train.csv", target="x", task_type="multiclass")
    with pytest.raises(ConfigError, match="unknown task type 'ranking'"):
        load_task(folder, task_type="ranking")


def test_binary_task_type_with_three_classes(tmp_path):
    train = pd.DataFrame({"x": range(9), "y": ["a", "b", "c"] * 3})
    train.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(TaskError, match="exactly 2 classes.*multiclass"):
        load_task(tmp_path / "d.csv", target="y", task_type="binary")


def test_sample_submission_ids_must_match_test(tmp_path):
    train, test = toy_frames()
    sample = pd.DataFrame({"id": list(test["id"][2:]) + [999, 1000, 1001], "label": "no"})
    with pytest.raises(TaskError) as info:
        load_task(write_task(tmp_path / "t", train, test, sample=sample))
    message = str(info.value)
    assert "2 test.csv ids are missing from it (e.g. 40, 41)" in message
    assert "3 of its ids are not in test.csv (e.g. 999, 1000, 1001)" in message


def test_duplicate_ids(tmp_path):
    train, test = toy_frames()
    train.loc[5, "id"] = 3
    with pytest.raises(TaskError, match="duplicated id value.*e.g. 3"):
        load_task(write_task(tmp_path / "t", train, test), id_column="id")


def test_unknown_id_column(tmp_path):
    train, test = toy_frames()
    with pytest.raises(TaskError, match="id column 'key'.*Columns: id, x, colour, label"):
        load_task(write_task(tmp_path / "t", train, test), id_column="key")


def test_positive_label_not_a_class(tmp_path):
    train, test = toy_frames()
    with pytest.raises(TaskError, match="positive label 'maybe'.*'no', 'yes'"):
        load_task(write_task(tmp_path / "t", train, test), positive_label="maybe")


def test_bad_task_toml(tmp_path):
    train, test = toy_frames()
    with pytest.raises(TaskError, match="cannot parse task.toml"):
        load_task(write_task(tmp_path / "t", train, test, toml="target = \n"))


def test_task_is_a_dataclass_with_properties():
    assert {"feature_columns", "metric_spec"} <= set(dir(Task))
