"""The deliverable: a final submission.csv in the sample submission's exact format, predictions for new rows
(`tabcoder predict`, `Result.predict`, `tabcoder.load`) and best/README.md. Real runs, a real sandbox, real
files; the model is scripted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tabcoder
from tabcoder.backends import ScriptedBackend
from tabcoder.errors import RunDirError, TaskError
from tabcoder.grading import check_submission
from tabcoder.grading.formatting import format_problems, render_submission
from tabcoder.prompting import fence
from tabcoder.runner import run
from tabcoder.task import load_task

from support import tabcoder as tabcoder_cli

N_TRAIN, N_TEST = 240, 60
PER_CLASS = ["Gentoo", "Adelie", "Chinstrap"]


def passenger_task(root: Path, *, kind: str = "bool", sample: str | None = None, description: str = "",
                   toml: str | None = None, line_end: str = "\n") -> Path:
    """A Kaggle folder: text ids like 0001_01, a numeric and a text feature with gaps, and a target of `kind`:
    bool (True/False), int (0/1), text (three species), or regression. `sample` is the sample's value column
    text (default: the first class / a number), written with `line_end`."""
    rng = np.random.default_rng(1)
    n = N_TRAIN + N_TEST
    x = rng.normal(size=n)
    deck = rng.choice(["A", "B", "C"], size=n)
    frame = pd.DataFrame({"PassengerId": [f"{i // 2 + 1:04d}_{i % 2 + 1:02d}" for i in range(n)],
                          "age": np.where(rng.random(n) < 0.1, np.nan, (30 + 10 * x).round(1)),
                          "deck": np.where(rng.random(n) < 0.1, None, deck)})
    signal = x + (deck == "A")
    if kind == "bool":
        frame["Transported"] = signal > 0.3
    elif kind == "int":
        frame["Transported"] = (signal > 0.3).astype(int)
    elif kind == "text":
        frame["Transported"] = np.select([signal < -0.3, signal < 0.8], ["Adelie", "Chinstrap"], "Gentoo")
    else:
        frame["Transported"] = (100 + 20 * signal + rng.normal(size=n)).round(2)
    root.mkdir(parents=True)
    frame.iloc[:N_TRAIN].to_csv(root / "train.csv", index=False)
    test = frame.iloc[N_TRAIN:].drop(columns=["Transported"])
    test.to_csv(root / "test.csv", index=False)
    value = sample if sample is not None else {"bool": "False", "int": "0", "text": "Adelie", "reg": "100.0"}[kind]
    if sample == "per-class":  # one probability column per class, not in sorted order
        lines = ["PassengerId," + ",".join(PER_CLASS)] + [f"{i},0.5,0.25,0.25" for i in test["PassengerId"]]
    else:
        lines = ["PassengerId,Transported"] + [f"{i},{value}" for i in test["PassengerId"]]
    (root / "sample_submission.csv").write_bytes((line_end.join(lines) + line_end).encode())
    (root / "description.md").write_text(description)
    if toml is not None:
        (root / "task.toml").write_text(toml)
    return root


def aligned_for(task, values) -> pd.DataFrame:
    """check_submission's aligned table for a submission the way a careless script writes it: columns swapped,
    rows reversed."""
    ids = task.test[task.id_column]
    table = pd.DataFrame({task.target: values, task.id_column: ids}).iloc[::-1]
    aligned, problems = check_submission(table, task=task, expected_ids=ids)
    assert not problems, problems
    return aligned


# --------------------------------------------------------------------------- the final file's format


@pytest.mark.parametrize("kind, written, spelled", [
    ("bool", [1.0, 0.0], ["True", "False"]),  # a script that wrote floats for a True/False column
    ("bool", ["true", "false"], ["True", "False"]),
    ("int", [1.0, 0.0], ["1", "0"]),
    ("text", [" Gentoo", "Adelie "], ["Gentoo", "Adelie"]),
])
def test_labels_are_written_as_the_sample_spells_them_in_its_id_order(tmp_path, kind, written, spelled):
    task = load_task(passenger_task(tmp_path / "t", kind=kind), metric="accuracy")
    n = len(task.test)
    values = [written[i % 2] for i in range(n)]
    data = render_submission(aligned_for(task, values), task)
    sample = (tmp_path / "t" / "sample_submission.csv").read_bytes().decode().splitlines()
    lines = data.decode().split("\n")
    assert lines[0] == sample[0] == "PassengerId,Transported"
    assert [line.split(",")[0] for line in lines[1:-1]] == [line.split(",")[0] for line in sample[1:]]
    assert lines[1:-1] == [f"{line.split(',')[0]},{spelled[i % 2]}" for i, line in enumerate(sample[1:])]
    assert lines[-1] == "", "the file ends with a line ending, as the sample does"


def test_a_sample_with_lowercase_booleans_and_windows_line_endings_is_followed(tmp_path):
    task = load_task(passenger_task(tmp_path / "t", sample="false", line_end="\r\n"), metric="accuracy")
    data = render_submission(aligned_for(task, [True] * len(task.test)), task)
    assert data.startswith(b"PassengerId,Transported\r\n0121_01,true\r\n")
    assert data.count(b"\r\n") == len(task.test) + 1 and b"\n" not in data.replace(b"\r\n", b"")


def test_probabilities_and_numbers_are_written_exactly_as_numbers(tmp_path):
    task = load_task(passenger_task(tmp_path / "p", sample="0.5"), metric="roc_auc")
    aligned = aligned_for(task, [0.125, 1.0] * (len(task.test) // 2))
    lines = render_submission(aligned, task).decode().splitlines()
    assert lines[1:3] == ["0121_01,0.125", "0121_02,1"]
    reg = load_task(passenger_task(tmp_path / "r", kind="reg"), metric="rmse")
    lines = render_submission(aligned_for(reg, [101.25] * len(reg.test)), reg).decode().splitlines()
    assert lines[1] == "0121_01,101.25"
    assert all(float(line.split(",")[1]) == 101.25 for line in lines[1:])


def test_format_problems_names_each_departure(tmp_path):
    task = load_task(passenger_task(tmp_path / "t"), metric="accuracy")
    good = tmp_path / "good.csv"
    good.write_bytes(render_submission(aligned_for(task, [True] * len(task.test)), task))
    assert format_problems(good, task) == []
    lines = good.read_text().splitlines()
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    assert "ids are not those of sample_submission.csv in its order" in format_problems(swapped, task)[0]
    spelled = tmp_path / "spelled.csv"
    spelled.write_text("\n".join([lines[0], *(line.replace("True", "1.0") for line in lines[1:])]) + "\n")
    assert "not labels spelled as sample_submission.csv spells them" in format_problems(spelled, task)[0]
    header = tmp_path / "header.csv"
    header.write_text("\n".join(["Transported,PassengerId", *lines[1:]]) + "\n")
    assert "the header is" in format_problems(header, task)[0]


SAMPLE_CASES = [  # kind of target, sample value column, description -> the metric inferred
    ("bool", None, "", "accuracy"),
    ("bool", None, "Submissions are evaluated on the F1 score.", "f1"),
    ("int", None, "", "accuracy"),
    ("int", None, "Submissions are scored on balanced accuracy.", "balanced_accuracy"),
    ("text", None, "", "accuracy"),
    ("text", None, "Submissions are evaluated on macro F1.", "macro_f1"),
    ("bool", "0.5", "", "roc_auc"),
    ("bool", "0.5", "Submissions are evaluated on log loss.", "log_loss"),
    ("text", "per-class", "", "log_loss"),
    ("text", "per-class", "Submissions are evaluated on the logarithmic loss.", "log_loss"),
    ("reg", None, "", "rmse"),
    ("reg", None, "Submissions are evaluated on mean absolute error.", "mae"),
]


@pytest.mark.parametrize("kind, sample, description, metric", SAMPLE_CASES)
def test_each_kind_of_sample_decides_the_metric_and_the_final_bytes_follow_it(tmp_path, kind, sample, description,
                                                                                metric):
    folder = passenger_task(tmp_path / "t", kind=kind, sample=sample, description=description)
    task = load_task(folder)
    assert task.metric == metric, task.notes
    note = next(n for n in task.notes if n.startswith(f"metric {metric!r}"))
    assert ("description.md" in note) == bool(description) and ("sample_submission.csv" in note) == (kind != "reg")
    ids = task.test[task.id_column]
    n = len(ids)
    if sample == "per-class":
        table = pd.DataFrame({"PassengerId": ids, "Adelie": 0.2, "Chinstrap": 0.3, "Gentoo": 0.5})
    elif metric in ("roc_auc", "log_loss"):
        table = pd.DataFrame({"PassengerId": ids, "Transported": np.linspace(0, 1, n)})
    elif kind == "reg":
        table = pd.DataFrame({"PassengerId": ids, "Transported": np.linspace(90, 110, n)})
    else:  # labels as a careless script writes them: numbers as floats, text with spaces
        classes = task.classes
        labels = [classes[i % len(classes)] for i in range(n)]
        table = pd.DataFrame({"PassengerId": ids, "Transported": [
            float(v) if kind in ("bool", "int") else f" {v}" for v in labels]})
    aligned, problems = check_submission(table.iloc[::-1], task=task, expected_ids=ids)
    assert not problems, problems
    data = render_submission(aligned, task)
    written = tmp_path / "submission.csv"
    written.write_bytes(data)
    assert format_problems(written, task) == []
    got = data.decode().split("\n")
    want = (folder / "sample_submission.csv").read_text().split("\n")
    assert got[0] == want[0], "the sample's header, columns in its order"
    assert [line.split(",")[0] for line in got] == [line.split(",")[0] for line in want], "its ids, in its order"
    values = {line.split(",", 1)[1] for line in got[1:-1]}
    if kind == "bool" and metric in ("accuracy", "f1"):
        assert values == {"True", "False"}
    elif kind == "int" and metric in ("accuracy", "balanced_accuracy"):
        assert values == {"0", "1"}
    elif kind == "text" and sample is None:
        assert values <= {"Adelie", "Chinstrap", "Gentoo"} and len(values) == 3
    elif sample == "per-class":
        assert values == {"0.5,0.2,0.3"}, "the probabilities under the sample's class columns"
    else:
        assert all(np.isfinite(float(v)) for v in values)


def careless_script(kind: str = "bool") -> str:
    """A correct model whose file departs from the sample: columns swapped, rows reversed, labels as 1.0/0.0."""
    labels = "model.predict(X_test).astype(float)" if kind == "bool" else "model.predict(X_test)"
    return f"""
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
X = train[["age"]]
X_test = test[["age"]]
model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, train["Transported"])
out = pd.DataFrame({{"Transported": {labels}, "PassengerId": test["PassengerId"]}}).iloc[::-1]
out.to_csv("submission.csv", index=False)
"""


def test_the_final_submission_matches_the_sample_byte_for_byte_and_says_the_harness_wrote_it(tmp_path):
    folder = passenger_task(tmp_path / "t")
    result = run(folder, backend=ScriptedBackend([fence(careless_script())]), iterations=1, baseline=False,
                 confirm_folds=0, metric="accuracy", out_dir=tmp_path / "runs")
    assert result.final_valid
    final = (result.run_dir / "submission.csv").read_bytes()
    sample = (folder / "sample_submission.csv").read_bytes()
    final_lines, sample_lines = final.split(b"\n"), sample.split(b"\n")
    assert final_lines[0] == sample_lines[0] and len(final_lines) == len(sample_lines)
    assert [line.split(b",")[0] for line in final_lines] == [line.split(b",")[0] for line in sample_lines]
    assert {line.split(b",")[1] for line in final_lines[1:-1]} <= {b"True", b"False"}
    own = (result.run_dir / "best" / "submission.csv").read_text()
    assert own.startswith("Transported,PassengerId\n") and ",0" not in own.splitlines()[1][:3]
    assert "written by the harness in the format of sample_submission.csv" in result.formatting
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["result"]["formatting"] == result.formatting
    assert meta["task"]["submission_format"]["labels"] == {"False": "False", "True": "True"}
    assert result.test_score is None and result.prediction_mode == "re-run"  # the careless script has no predict()


# --------------------------------------------------------------------------- predictions for new rows


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """A finished run whose solution is the harness's baseline (the model's one reply fails)."""
    root = tmp_path_factory.mktemp("predict")
    folder = passenger_task(root / "t", description="Predict whether each passenger was transported.")
    result = run(folder, backend=ScriptedBackend([fence("raise SystemExit('no')")]), iterations=1,
                 confirm_folds=0, metric="accuracy", out_dir=root / "runs")
    assert result.final_valid and result.best.kind == "baseline"
    return folder, result


def test_predict_with_the_saved_model_equals_the_submission_for_the_same_rows(baseline_run, tmp_path):
    folder, result = baseline_run
    assert result.prediction_mode == "saved model" and (result.run_dir / "best" / "model.joblib").is_file()
    test = pd.read_csv(folder / "test.csv")
    new = test.sample(frac=1.0, random_state=3).head(25)  # shuffled, a subset
    predicted = result.predict(new)
    assert list(predicted.columns) == ["PassengerId", "Transported"]
    assert predicted["PassengerId"].tolist() == new["PassengerId"].tolist(), "in the order of the new rows"
    submitted = pd.read_csv(result.run_dir / "submission.csv").set_index("PassengerId")["Transported"]
    assert predicted["Transported"].tolist() == submitted.loc[new["PassengerId"]].tolist()
    assert all(isinstance(v, (bool, np.bool_)) for v in predicted["Transported"]), "typed as the classes"
    # the same through tabcoder.load, from a Parquet file
    new.to_parquet(tmp_path / "new.parquet")
    again = tabcoder.load(result.run_dir).predict(tmp_path / "new.parquet")
    assert again.equals(predicted)


def test_tabcoder_predict_writes_the_submission_format_and_never_overwrites(baseline_run, tmp_path):
    folder, result = baseline_run
    out = tmp_path / "pred.csv"
    done = tabcoder_cli("predict", result.run_dir, folder / "test.csv", "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (result.run_dir / "submission.csv").read_bytes()
    assert f"{N_TEST} rows predicted (saved model" in done.stderr
    again = tabcoder_cli("predict", result.run_dir, folder / "test.csv", "--out", out)
    assert again.returncode == 2 and "exists; choose another --out, or pass --force" in again.stderr
    assert tabcoder_cli("predict", result.run_dir, folder / "test.csv", "--out", out, "--force").returncode == 0
    default = tabcoder_cli("predict", result.run_dir, folder / "test.csv")
    assert default.returncode == 0 and default.stdout.strip() == str(result.run_dir / "predictions" / "test.csv")


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["deck"]), "missing feature column(s) deck. It needs"),
    (lambda t: t.assign(cabin="B/1"), "column(s) cabin that are not features of the task"),
    (lambda t: t.assign(age="old"), "column 'age' of new.csv must hold numbers, as in the training data"),
    (lambda t: t.assign(PassengerId="x"), "repeats 1 id(s)"),
    (lambda t: t.assign(Transported=True), "holds the target column 'Transported' with values"),
    (lambda t: t.head(0), "new.csv has no data rows"),
])
def test_bad_new_rows_exit_2_with_what_to_fix(baseline_run, tmp_path, change, message):
    folder, result = baseline_run
    change(pd.read_csv(folder / "test.csv")).to_csv(tmp_path / "new.csv", index=False)
    done = tabcoder_cli("predict", result.run_dir, tmp_path / "new.csv", "--out", tmp_path / "out.csv")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_new_rows_without_ids_are_numbered(baseline_run):
    folder, result = baseline_run
    new = pd.read_csv(folder / "test.csv").drop(columns=["PassengerId"]).head(5)
    prediction = tabcoder.load(result.run_dir).run(new)
    assert prediction.table["PassengerId"].tolist() == [0, 1, 2, 3, 4]
    assert "no id column 'PassengerId': rows numbered 0..4" in prediction.notes


def test_the_readme_explains_the_deliverable(baseline_run):
    folder, result = baseline_run
    readme = (result.run_dir / "best" / "README.md").read_text()
    for part in ("Metric: accuracy (`accuracy`, higher is better)",
                 "Solution: The baseline (attempt 0, written by the harness)",
                 f"Validation score: {result.validation_score}",
                 "Test score: not known", "scikit-learn==", "pandas==", "joblib==",
                 f"cd {result.run_dir / 'best'} && python solution.py",
                 f"tabcoder predict {result.run_dir} NEW.csv --out predictions.csv",
                 "python predict.py NEW.csv predictions.csv", "nothing is trained again"):
        assert part in readme, part


def test_a_solution_without_a_saved_model_is_rerun_on_the_new_rows(tmp_path):
    folder = passenger_task(tmp_path / "t")
    result = run(folder, backend=ScriptedBackend([fence(careless_script())]), iterations=1, baseline=False,
                 confirm_folds=0, metric="accuracy", out_dir=tmp_path / "runs")
    assert result.prediction_mode == "re-run"
    assert "re-runs solution.py with the new rows" in (result.run_dir / "best" / "README.md").read_text()
    new = pd.read_csv(folder / "test.csv").tail(7)
    predicted = result.predict(new)
    submitted = pd.read_csv(result.run_dir / "submission.csv").set_index("PassengerId")["Transported"]
    assert predicted["Transported"].tolist() == submitted.loc[new["PassengerId"]].tolist()


def test_load_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(RunDirError, match="not a run folder"):
        tabcoder.load(tmp_path)
    with pytest.raises(TaskError):  # TaskError and RunDirError both exit 2
        raise TaskError("x")
