"""Suites: the built-in suite (deterministic, reused, loadable), suite layouts, and bad suites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tabcoder import load_task
from tabcoder.bench.builtin import TASKS, ensure_builtin_suite, write_builtin_suite
from tabcoder.bench.suite import load_suite
from tabcoder.errors import TaskError

from support import SHARED


@pytest.fixture(scope="module")
def builtin(tmp_path_factory) -> Path:
    return ensure_builtin_suite(tmp_path_factory.mktemp("cache"))


def test_builtin_suite_is_complete_and_loadable(builtin):
    suite = load_suite(builtin)
    assert suite.name == "builtin"
    assert sorted(t.name for t in suite.tasks) == sorted(t.name for t in TASKS)
    assert "licence" in (builtin / "SOURCES.md").read_text().lower()
    meta = json.loads((builtin / "answers" / "meta.json").read_text())
    for task in suite.tasks:
        loaded = load_task(task.path)
        assert loaded.metric == meta[task.name]["metric"] == task.overrides["metric"]
        assert loaded.sample_submission is not None  # the written sample submission fits the task
        answers = pd.read_csv(task.answers)
        assert sorted(answers["id"]) == sorted(loaded.test["id"])
        assert loaded.target not in loaded.test.columns
        assert set(answers["id"]).isdisjoint(set(loaded.train["id"]))


def test_builtin_suite_is_deterministic(tmp_path):
    write_builtin_suite(tmp_path / "a")
    write_builtin_suite(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 5 * 5 + 5 + 3  # 5 files per task, 5 answers, meta.json, SOURCES.md, suite.json
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_builtin_suite_is_reused_and_repaired(tmp_path):
    root = ensure_builtin_suite(tmp_path)
    train = root / "tasks" / "iris" / "train.csv"
    stamp = train.stat().st_mtime_ns
    assert ensure_builtin_suite(tmp_path) == root and train.stat().st_mtime_ns == stamp
    train.write_text("tampered\n")
    ensure_builtin_suite(tmp_path)
    assert train.read_text() != "tampered\n"


def test_ids_do_not_leak_the_class_order(builtin):
    """sklearn's iris file is sorted by class; after the shuffle the id says nothing about the species."""
    train = pd.read_csv(builtin / "tasks" / "iris" / "train.csv")
    first_third = train.sort_values("id").head(len(train) // 3)["species"]
    assert first_third.nunique() == 3


def test_a_tasks_folder_with_sibling_answers(builtin):
    suite = load_suite(builtin / "tasks")
    assert suite.name == "builtin" and suite.answers_dir == builtin / "answers"


def test_explicit_answers_folder_and_subset(builtin, tmp_path):
    shutil.copytree(builtin / "answers", tmp_path / "labels")
    suite = load_suite(builtin / "tasks", answers=tmp_path / "labels").select(["wine", "iris"])
    assert [t.name for t in suite.tasks] == ["iris", "wine"]
    assert suite.tasks[0].answers == tmp_path / "labels" / "iris.csv"
    with pytest.raises(TaskError, match="no task.*nope.*its tasks are"):
        suite.select(["nope"])


@pytest.mark.skipif(not (SHARED / "tasks").is_dir(), reason="the shared tasks are not beside this checkout")
def test_the_shared_suite_pins_settings_from_meta_json():
    suite = load_suite(SHARED)
    churn = next(t for t in suite.tasks if t.name == "telco_churn")
    assert churn.overrides == {"target": "churn", "id_column": "id", "task_type": "binary", "metric": "roc_auc",
                               "positive_label": "Yes"}


def test_missing_suite_folder(tmp_path):
    with pytest.raises(TaskError, match="does not exist.*builtin"):
        load_suite(tmp_path / "missing")


def test_suite_without_answers(builtin, tmp_path):
    shutil.copytree(builtin / "tasks", tmp_path / "suite" / "tasks")
    with pytest.raises(TaskError, match="no answers folder.*--answers"):
        load_suite(tmp_path / "suite")


def test_task_without_its_answers_file(builtin, tmp_path):
    shutil.copytree(builtin, tmp_path / "suite")
    (tmp_path / "suite" / "answers" / "wine.csv").unlink()
    with pytest.raises(TaskError, match="no answers for the task.*wine"):
        load_suite(tmp_path / "suite")


def test_answers_inside_a_task_folder_are_refused(builtin, tmp_path):
    tasks = tmp_path / "tasks"
    shutil.copytree(builtin / "tasks" / "iris", tasks / "iris")
    shutil.copytree(builtin / "answers", tasks / "iris" / "answers")
    with pytest.raises(TaskError, match="inside the task folder"):
        load_suite(tasks, answers=tasks / "iris" / "answers")


def test_folder_without_tasks(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="no task in"):
        load_suite(tmp_path / "empty")
