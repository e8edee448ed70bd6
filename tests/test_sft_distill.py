"""Self-distillation from run folders written here (journal.jsonl + run.json shaped like real runs), and the
`data distill` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tabcoder.cli_sft_data import data_group
from tabcoder.errors import ConfigError
from tabcoder.journal import Attempt
from tabcoder.sft.data import read_examples
from tabcoder.sft.distill import distill

SYSTEM = {"role": "system", "content": "You write one complete script. Answer with a single ```python code block."}
METRICS = {"reg": ("rmse", False), "cls": ("accuracy", True), "other": ("f1", True)}


def prompt(task: str, kind: str, parent_code: str | None = None) -> list[dict]:
    messages = [SYSTEM, {"role": "user", "content": f"# Task {task}\nPredict the target."}]
    if kind != "draft":
        messages += [{"role": "assistant", "content": f"```python\n{parent_code}\n```"},
                     {"role": "user", "content": f"Result of running the script above: ...\n{kind} it."}]
    return messages


def attempt(index: int, task: str, score: float | None, kind: str = "draft", code: str | None = None,
            **fields) -> Attempt:
    metric, greater = METRICS[task]
    code = code if code is not None else f"import pandas as pd\nprint({index})  # {task}\n"
    defaults = {"valid": score is not None, "score": score}
    return Attempt(index=index, parent=None if kind == "draft" else index - 1, kind=kind,
                   messages=prompt(task, kind, "print('old')"), response=f"```python\n{code}```", code=code,
                   metric=metric, greater_is_better=greater, **{**defaults, **fields})


def make_run(parent: Path, name: str, task: str, attempts: list[Attempt | dict], model: str = "local:m-0.5b") -> Path:
    """A run folder with the key set of a real run.json and one journal line per record."""
    folder = parent / name
    folder.mkdir(parents=True)
    metric = METRICS[task][0]
    run = {"config": {"model": model, "strategy": "reflexion", "iterations": 4, "seed": 0},
           "task": {"name": task, "source": f"/tasks/{task}", "target": "y", "id": "id", "id_generated": False,
                    "task_type": "regression", "metric": metric, "positive_label": None, "classes": None,
                    "n_train": 100, "n_test": 20, "notes": []},
           "model": model, "versions": {"python": "3.11"}, "isolation": {"network": "namespace"},
           "command": ["tabcoder", "run"], "started": "2026-11-25T22:46:41+00:00",
           "result": {"task": task, "metric": metric}, "finished": "2026-11-25T22:47:28+00:00"}
    (folder / "run.json").write_text(json.dumps(run))
    lines = [a if isinstance(a, dict) else a.to_dict() for a in attempts]
    (folder / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_run(root / "a", "20261125-000001-reg", "reg", [
        attempt(1, "reg", 10.0),                      # within 9.5 + 0.1 * 9.5
        attempt(2, "reg", 20.0, "improve"),           # far worse (rmse is lower-better)
        attempt(3, "reg", None, "improve", traceback="boom"),
        attempt(4, "reg", 9.8, "repair"),
        attempt(5, "reg", None, "improve", duplicate_of=1),
    ])
    make_run(root / "b", "20261125-000002-reg", "reg", [
        attempt(1, "reg", 9.5, code="import pandas as pd\nprint('best')\n"),
        attempt(2, "reg", 9.6, code="import pandas as pd\n\nprint(1)  #  reg\n"),  # attempt 1 of run a, respaced
        attempt(3, "reg", 9.5, pending=True),
    ])
    make_run(root / "c", "20261125-000003-cls", "cls", [
        attempt(1, "cls", 0.80),                      # below 0.9 - 0.1 * 0.9 = 0.81 (accuracy is higher-better)
        attempt(2, "cls", 0.71, "improve"),
        attempt(3, "cls", 0.9, "improve"),
        attempt(4, "cls", 0.5, pending=True),         # superseded by the complete line below
        attempt(4, "cls", 0.85, "improve"),
    ])
    make_run(root / "d", "20261125-000004-other", "other", [attempt(1, "other", 0.5)], model="local:m-1.5b")
    return root


def test_threshold_in_both_directions_and_what_each_example_holds(runs):
    result = distill([runs])
    got = {(e.meta["task"], e.meta["run"], e.meta["attempt"]) for e in result.train}
    assert got == {("reg", "20261125-000001-reg", 1), ("reg", "20261125-000001-reg", 4),
                   ("reg", "20261125-000002-reg", 1), ("cls", "20261125-000003-cls", 3),
                   ("cls", "20261125-000003-cls", 4), ("other", "20261125-000004-other", 1)}
    summary = result.summary
    assert summary["dropped"] == {"model_filtered": 0, "pending": 1, "baseline": 0, "duplicate_of": 1, "invalid": 1,
                                  "repair_excluded": 0, "below_threshold": 3, "duplicate": 1, "near_copy": 0, "no_change": 0}
    assert summary["attempts_seen"] == 13 and summary["kept"] == 6 and summary["runs_read"] == 4
    assert summary["per_task"]["reg"]["best_score"] == 9.5 and summary["per_task"]["reg"]["metric"] == "rmse"
    assert summary["per_task"]["cls"]["best_score"] == 0.9
    example = next(e for e in result.train if e.meta["task"] == "cls" and e.meta["attempt"] == 4)
    source = attempt(4, "cls", 0.85, "improve")
    assert example.messages[:-1] == source.messages
    assert example.messages[-1] == {"role": "assistant", "content": "```python\n" + source.code.strip() + "\n```"}
    assert example.meta == {"task": "cls", "kind": "improve", "run": "20261125-000003-cls", "attempt": 4,
                            "score": 0.85, "metric": "accuracy", "model": "local:m-0.5b"}
    assert not result.eval


def test_within_none_keeps_every_valid_attempt_and_a_tight_margin_keeps_the_best(runs):
    everything = distill([runs], within=None)
    assert everything.summary["dropped"]["below_threshold"] == 0 and everything.summary["kept"] == 9
    tight = distill([runs], within=0.0)
    assert {(e.meta["task"], e.meta["score"]) for e in tight.train} == {("reg", 9.5), ("cls", 0.9), ("other", 0.5)}


def test_repairs_excluded_and_model_filter(runs):
    result = distill([runs], include_repairs=False)
    assert all(e.meta["kind"] != "repair" for e in result.train)
    assert result.summary["dropped"]["repair_excluded"] == 1 and result.summary["kept"] == 5
    result = distill([runs / "a", runs / "b", runs / "d"], models=["local:m-1.5b"])
    assert [e.meta["task"] for e in result.train] == ["other"]
    assert result.summary["dropped"]["model_filtered"] == 8


def test_split_by_task(runs):
    result = distill([runs], eval_tasks=["reg"])
    assert {e.meta["task"] for e in result.eval} == {"reg"}
    assert "reg" not in {e.meta["task"] for e in result.train} and result.train
    assert result.summary["tasks"] == {"train": ["cls", "other"], "eval": ["reg"]}
    assert result.summary["per_task"]["reg"]["split"] == "eval"
    by_fraction = distill([runs], eval_fraction=0.5, seed=7)
    held_out = set(by_fraction.summary["tasks"]["eval"])
    assert len(held_out) == 2 and held_out == {e.meta["task"] for e in by_fraction.eval}
    assert not held_out & {e.meta["task"] for e in by_fraction.train}
    assert distill([runs], eval_fraction=0.5, seed=7).summary["tasks"] == by_fraction.summary["tasks"]
    for fraction in (0.01, 0.99):
        assert 1 <= len(distill([runs], eval_fraction=fraction).summary["tasks"]["eval"]) <= 2
    with pytest.raises(ConfigError, match="eval task.* nope not found in the runs; tasks found: cls, other, reg"):
        distill([runs], eval_tasks=["reg", "nope"])
    with pytest.raises(ConfigError, match="cannot hold out a fraction of the tasks"):
        distill([runs / "a"], eval_fraction=0.5)


def test_unreadable_runs_are_skipped_and_no_runs_is_an_error(runs, tmp_path):
    make_run(runs / "e", "broken", "reg", [attempt(1, "reg", 1.0)])
    (runs / "e" / "broken" / "run.json").write_text("{not json")
    make_run(runs / "e", "orphan", "reg", [attempt(1, "reg", 1.0)])
    (runs / "e" / "orphan" / "run.json").unlink()
    with (runs / "a" / "20261125-000001-reg" / "journal.jsonl").open("a") as journal:
        journal.write('{"index": 9, "truncat')
    result = distill([runs])
    assert result.summary["runs_read"] == 4 and result.summary["kept"] == 6
    assert {(Path(s["run"]).name, s["reason"].split(" (")[0]) for s in result.summary["runs_skipped"]} == {
        ("broken", "run.json is not valid JSON"), ("orphan", "no run.json next to journal.jsonl")}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no tabcoder runs .* under .*empty"):
        distill([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no readable tabcoder runs"):
        distill([runs / "e"])
    with pytest.raises(ConfigError, match="no such file or folder"):
        distill([tmp_path / "nowhere"])


def test_cli_distill(runs, tmp_path):
    out = tmp_path / "data"
    result = CliRunner().invoke(data_group, ["distill", str(runs), "--out", str(out), "--eval-tasks", "cls",
                                             "--no-repairs"])
    assert result.exit_code == 0, result.output
    assert "4 runs read (0 skipped), 13 attempts, 5 kept: train 3, eval 2" in result.output
    assert "cls [eval]: 2 kept (improve 2); best accuracy 0.9" in result.output
    assert "repair excluded 1" in result.output
    train, evaluation = read_examples(out / "train.jsonl"), read_examples(out / "eval.jsonl")
    assert {e.meta["task"] for e in evaluation} == {"cls"} and "cls" not in {e.meta["task"] for e in train}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"]["eval"] == ["cls"] and manifest["settings"]["include_repairs"] is False
    assert set(json.loads((out / "dataset_info.json").read_text())) == {"tabcoder_train", "tabcoder_eval"}
    again = CliRunner().invoke(data_group, ["distill", str(runs), "--out", str(out)])
    assert again.exit_code == 2 and "already exists and is not empty; choose a new --out" in again.output
    unknown = CliRunner().invoke(data_group, ["distill", str(runs), "--out", str(tmp_path / "x"), "--eval-tasks", "zzz"])
    assert unknown.exit_code == 2 and "error: eval task(s) zzz not found" in unknown.output
    assert "Traceback" not in unknown.output
    both = CliRunner().invoke(data_group, ["distill", str(runs), "--out", str(tmp_path / "y"), "--within", "0.2",
                                           "--all-valid"])
    assert both.exit_code == 2 and "not both" in both.output


def test_the_harness_baseline_is_not_training_data_and_an_applied_edit_is_learnt_as_the_edit(tmp_path):
    baseline = attempt(0, "reg", 9.0, kind="baseline", code="import pandas as pd\nprint('baseline')\n")
    baseline.messages, baseline.response, baseline.parent = [], "", None
    edit_text = "<<<<<<< SEARCH\nprint('old')\n=======\nprint('new')\n>>>>>>> REPLACE"
    edited = attempt(1, "reg", 9.5, kind="improve", code="import pandas as pd\nprint('new')\n",
                     edit_format="search-replace")
    edited.response = edit_text
    make_run(tmp_path / "runs", "20261201-000001-reg", "reg", [baseline, edited])
    make_run(tmp_path / "runs", "20261201-000002-cls", "cls", [attempt(1, "cls", 0.9)])
    result = distill([tmp_path / "runs"], within=None)
    assert result.summary["dropped"]["baseline"] == 1
    kept = {(e.meta["task"], e.meta["attempt"]): e for e in result.train}
    assert ("reg", 0) not in kept
    assert kept[("reg", 1)].messages[-1]["content"] == edit_text, "the answer is the edit the prompt asked for"
    assert kept[("cls", 1)].messages[-1]["content"].startswith("```python"), "a whole script stays a whole script"
