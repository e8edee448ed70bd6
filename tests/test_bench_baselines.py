"""Baselines: written as real submissions and graded like a solution, on the harness's split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tabcoder import load_task
from tabcoder.bench.baselines import run_baseline, unavailable_reason
from tabcoder.errors import ConfigError
from tabcoder.grading import grade_submission, make_split


def make_task(folder, *, metric: str, task_type: str, target_values):
    """A small task with a text column holding missing values, a numeric column and the given target."""
    rng = np.random.default_rng(0)
    n = 160
    size = rng.uniform(1, 10, n)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[::7] = None
    frame = pd.DataFrame({"id": np.arange(n), "size": size, "colour": colour, "y": target_values(size, colour)})
    folder.mkdir()
    frame.iloc[:120].to_csv(folder / "train.csv", index=False)
    frame.iloc[120:].drop(columns="y").to_csv(folder / "test.csv", index=False)
    (folder / "task.toml").write_text(f'target = "y"\nid = "id"\ntask_type = "{task_type}"\nmetric = "{metric}"\n')
    task = load_task(folder)
    answers = frame.iloc[120:].set_index("id")["y"]
    return task, answers


def regression_target(size, colour):
    return np.round(size ** 2 * np.where(colour == "red", 2.0, 1.0), 3)


def binary_target(size, colour):
    return np.where(size > 5, "yes", "no")


@pytest.mark.parametrize("metric, task_type, target", [
    ("rmsle", "regression", regression_target),
    ("mae", "regression", regression_target),
    ("roc_auc", "binary", binary_target),
    ("f1", "binary", binary_target),
])
def test_dummy_and_hgb_submissions_are_valid_and_ordered(tmp_path, metric, task_type, target):
    task, answers = make_task(tmp_path / "task", metric=metric, task_type=task_type, target_values=target)
    results = {}
    for name in ("dummy", "hgb"):
        result = run_baseline(name, task, run_dir=tmp_path / name, seed=0, valid_fraction=0.25, answers=answers)
        assert result.valid and result.validation.valid, (result.validation.problems, result.test.problems)
        # the stored test score is the grader's verdict on the written file
        regraded = grade_submission(tmp_path / name / "submission.csv", task=task, labels=answers)
        assert regraded.score == result.test_score
        split = make_split(task, seed=0, valid_fraction=0.25)
        written = pd.read_csv(tmp_path / name / "validation" / "submission.csv")
        assert sorted(written["id"]) == sorted(split.labels.index)  # validation rows of the harness split
        results[name] = result
    assert results["hgb"].test_score > results["dummy"].test_score  # Score compares by "better"
    summary = json.loads((tmp_path / "hgb" / "run.json").read_text())
    assert summary["baseline"] == "hgb" and summary["test_score"] == results["hgb"].test_score.value


def test_unknown_baseline():
    with pytest.raises(ConfigError, match="unknown baseline"):
        unavailable_reason("autosklearn")


@pytest.mark.skipif(unavailable_reason("flaml") is not None,
                    reason="FLAML is not installed (pip install 'tabcoder[flaml]')")
def test_flaml_searches_then_refits_the_best_configuration(tmp_path):
    task, answers = make_task(tmp_path / "task", metric="accuracy", task_type="binary", target_values=binary_target)
    result = run_baseline("flaml", task, run_dir=tmp_path / "flaml", seed=0, valid_fraction=0.25, answers=answers,
                          seconds=2)
    assert result.valid and result.test_score.value > 0.8
    details = json.loads((tmp_path / "flaml" / "run.json").read_text())["details"]
    assert details["best_estimator"] and isinstance(details["best_config"], dict)


def multiclass_target(size, colour):
    return np.where(size > 7, "big", np.where(size > 4, "mid", "small"))


AUTOGLUON_MISSING = unavailable_reason("autogluon")


@pytest.mark.skipif(AUTOGLUON_MISSING is not None, reason=str(AUTOGLUON_MISSING))
@pytest.mark.parametrize("metric, task_type, target", [
    ("roc_auc", "binary", binary_target),
    ("log_loss", "multiclass", multiclass_target),
    ("rmsle", "regression", regression_target),
])
def test_autogluon_searches_then_refits_graded_like_a_solution(tmp_path, metric, task_type, target):
    task, answers = make_task(tmp_path / "task", metric=metric, task_type=task_type, target_values=target)
    run_dir = tmp_path / "autogluon"
    result = run_baseline("autogluon", task, run_dir=run_dir, seed=0, valid_fraction=0.25, answers=answers, seconds=5)
    assert result.valid and result.validation.valid, (result.validation.problems, result.test.problems)
    regraded = grade_submission(run_dir / "submission.csv", task=task, labels=answers)
    assert regraded.score == result.test_score  # the stored score is the grader's verdict on the written file
    split = make_split(task, seed=0, valid_fraction=0.25)
    written = pd.read_csv(run_dir / "validation" / "submission.csv")
    assert sorted(written["id"]) == sorted(split.labels.index)  # validation rows of the harness split
    hgb = run_baseline("hgb", task, run_dir=tmp_path / "hgb", seed=0, valid_fraction=0.25, answers=answers)
    dummy = run_baseline("dummy", task, run_dir=tmp_path / "dummy", seed=0, valid_fraction=0.25, answers=answers)
    assert result.test_score > dummy.test_score and hgb.test_score > dummy.test_score  # Score compares by "better"
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["baseline"] == "autogluon" and summary["time_budget"] == 5
    details = summary["details"]
    assert details["presets"] == "medium_quality" and details["time_limit"] == 5
    for fit in ("search", "refit"):  # the models are saved in the cell's run folder
        assert details[fit]["best_model"] in details[fit]["models"]
        assert (run_dir / "autogluon" / fit / "predictor.pkl").is_file() and (run_dir / "autogluon" / f"{fit}.log").is_file()


def test_autogluon_unavailable_says_why_and_how_to_fix_it():
    if AUTOGLUON_MISSING is None:
        pytest.skip("AutoGluon is installed and usable here")
    assert "pip install 'tabcoder[autogluon]'" in AUTOGLUON_MISSING
