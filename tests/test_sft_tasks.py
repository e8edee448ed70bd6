"""The training-task generator: every layout and metric tabcoder reads, tasks that load as they were made,
the troubles real data has, the same files for the same seed, and the harness's own baseline solving them."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest

from tabcoder.bench.suite import load_suite
from tabcoder.errors import ConfigError
from tabcoder.sft.tasks import LAYOUTS, METRICS, generate_tasks, plan_tasks
from tabcoder.task import load_task

from support import copy_edit_replay, tabcoder


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gen") / "tasks"
    return root, generate_tasks(root, 12, seed=3)


def test_a_dozen_tasks_cover_every_layout_task_type_and_many_metrics(generated):
    root, manifest = generated
    entries = manifest["tasks"]
    assert len(entries) == 12
    assert {e["layout"] for e in entries} == set(LAYOUTS)
    assert {e["task_type"] for e in entries} == {"binary", "multiclass", "regression"}
    assert len({e["metric"] for e in entries}) >= 8
    for entry in entries:
        assert entry["metric"] in METRICS[entry["task_type"]]
    files = {p.suffix for p in (root / "tasks").rglob("*") if p.is_file()}
    assert {".csv", ".xlsx", ".arff", ".md", ".toml", ".py"} <= files


def test_every_task_loads_as_it_was_made_and_its_answers_match_its_test_ids(generated):
    root, manifest = generated
    for entry in manifest["tasks"]:
        folder = root / "tasks" / entry["name"]
        task = load_task(folder)
        settings = entry["settings"]
        assert (task.target, task.id_column, task.task_type, task.metric) == (
            settings["target"], settings["id"], settings["task_type"], settings["metric"]), entry["name"]
        answers = pd.read_csv(root / "answers" / f"{entry['name']}.csv")
        assert list(answers.columns) == [settings["id"], settings["target"]]
        assert sorted(answers[settings["id"]]) == sorted(task.test[settings["id"]])
        assert settings["target"] not in task.test.columns
        if entry["layout"] == "columns-py":
            assert (folder / "columns.py").is_file() or entry["fallback"]
        if entry["layout"] == "kaggle-sample" and not entry["fallback"]:
            assert not (folder / "task.toml").exists()
            assert "evaluated" not in (folder / "description.md").read_text()


def test_the_tables_have_the_troubles_of_real_data(generated):
    root, manifest = generated
    seen = set()
    for entry in manifest["tasks"]:
        task = load_task(root / "tasks" / entry["name"])
        kinds = entry["columns"]
        seen.update(kinds.values())
        for name, kind in kinds.items():
            if kind in ("category", "text", "date", "code"):
                assert not pd.api.types.is_numeric_dtype(task.train[name]), (entry["name"], name)
        if "rare_classes" in entry["troubles"]:
            shares = task.train[task.target].value_counts(normalize=True)
            assert shares.min() < 0.15
    assert {"number", "category", "text", "date", "code"} <= seen
    with_holes = [e for e in manifest["tasks"] if "missing" in e["troubles"]]
    assert with_holes and any(load_task(root / "tasks" / e["name"]).train.isna().to_numpy().any() for e in with_holes)


def test_the_same_seed_writes_the_same_files_and_another_seed_other_tasks(tmp_path):
    one, two = tmp_path / "a", tmp_path / "b"
    generate_tasks(one, 4, seed=7)
    generate_tasks(two, 4, seed=7)
    names = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    same = [n for n in names if not n.endswith(".xlsx")]  # xlsx files carry a timestamp
    match, mismatch, errors = filecmp.cmpfiles(one, two, same, shallow=False)
    assert not mismatch and not errors
    assert [s.name for s in plan_tasks(4, seed=8)] != [s.name for s in plan_tasks(4, seed=7)]


def test_the_folder_reads_as_a_suite_and_a_used_folder_is_refused(generated, tmp_path):
    root, manifest = generated
    suite = load_suite(root)
    assert [t.name for t in suite.tasks] == sorted(e["name"] for e in manifest["tasks"])
    meta = json.loads((root / "answers" / "meta.json").read_text())
    assert set(meta) == {e["name"] for e in manifest["tasks"]}
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        generate_tasks(tmp_path / "used", 2)
    assert (tmp_path / "used" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="at least 1"):
        plan_tasks(0)


@pytest.mark.slow
def test_the_harness_baseline_solves_generated_tasks_in_the_sandbox(generated, tmp_path):
    """The tasks are learnable and the scaffold reads every layout: the baseline (no model call) gets a valid
    submission that beats a constant on the test answers."""
    root, manifest = generated
    for entry in manifest["tasks"][:6]:  # one of each layout
        done = tabcoder("run", root / "tasks" / entry["name"], "--model", f"replay:{copy_edit_replay(tmp_path)}",
                        "--strategy", "reflexion", "--iterations", "1", "--time-budget", "none", "--no-ensemble",
                        "--confirm-folds", "0",
                        "--answers", root / "answers" / f"{entry['name']}.csv", "--json", "--out", tmp_path / "runs")
        assert done.returncode == 0, (entry["name"], entry["layout"], done.stderr[-2000:])
        summary = json.loads(done.stdout)
        assert summary["final_valid"] and summary["valid_attempts"] == 2, (entry["name"], entry["layout"])
        assert summary["test_score"] is not None
