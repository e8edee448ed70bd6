"""`tabcoder run --caafe N`: the CAAFE stage before code generation, wired into the runner."""

from __future__ import annotations

import json

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.grading import make_split
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder, fence

from caafe_helpers import RATIO, make_task


def test_caafe_stage_feeds_the_solution_and_ships_in_best_solution(tmp_path):
    task = make_task(tmp_path / "task", "regression")
    split = make_split(task)
    # the script the model writes calls add_features without defining it, as the "usage" prompt asks
    script = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=60,
                           uses_features=True).example()
    assert "add_features(train.drop(" in script and "def add_features" not in script
    backend = ScriptedBackend([RATIO, fence(script)])
    result = run(task, backend=backend,
                 config=RunConfig(baseline=False, out_dir=tmp_path / "runs", iterations=1, timeout=60, caafe=1,
                                  confirm_folds=0))
    kept = json.loads((result.run_dir / "caafe" / "caafe.json").read_text())
    assert [p["kept"] for p in kept["proposals"]] == [True]
    # the solution prompt carried the usage notes, and its example calls add_features
    solution_prompt = backend.history[1][1]["content"]
    assert "add_features" in solution_prompt and "a_over_b" in solution_prompt
    # the attempt ran with the accepted function on top, and the deliverable carries it too
    assert result.final_valid
    best = (result.run_dir / "best" / "solution.py").read_text()
    assert "def add_features" in best and "a_over_b" in best
    assert "def add_features" in (result.run_dir / "attempts" / "001" / "solution.py").read_text()


def test_no_caafe_by_default(tmp_path):
    task = make_task(tmp_path / "task", "binary", rows=200)
    split = make_split(task)
    script = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=60).example()
    backend = ScriptedBackend([fence(script)])
    result = run(task, backend=backend, config=RunConfig(baseline=False, out_dir=tmp_path / "runs", iterations=1, timeout=60))
    assert not (result.run_dir / "caafe").exists()
    assert "Engineered features (CAAFE)" not in backend.history[0][1]["content"]
    assert "def add_features(df):" in backend.history[0][1]["content"], "the baseline defines its own, empty"


def test_a_caafe_stage_the_model_cut_short_is_resumed_from_run_json(tmp_path):
    from tabcoder.errors import LLMError
    from tabcoder.runner import resume

    task = make_task(tmp_path / "task", "regression")
    split = make_split(task)
    script = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=60,
                           uses_features=True).example()
    down = [LLMError("the server went away")] * 3  # CAAFE retries a failed call twice
    first = run(task.source, backend=ScriptedBackend(down),
                config=RunConfig(baseline=False, out_dir=tmp_path / "runs", iterations=1, timeout=60, caafe=1, confirm_folds=0))
    # the stage ran after run.json was written: the run folder is a run that resume can continue
    assert first.cut_short and "the server went away" in first.cut_short and first.exit_code == 3
    assert first.attempts == 0 and not (first.run_dir / "caafe" / "caafe.json").exists()
    assert json.loads((first.run_dir / "run.json").read_text())["config"]["caafe"] == 1
    again = resume(first.run_dir, backend=ScriptedBackend([RATIO, fence(script)]))
    assert again.cut_short is None and again.final_valid and again.attempts == 1
    assert [p["kept"] for p in json.loads((first.run_dir / "caafe" / "caafe.json").read_text())["proposals"]] == [True]
