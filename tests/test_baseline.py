"""The harness's baseline (attempt 0), edits of the current script, the model's own ideas, repeats, and who
is credited with the chosen solution: real runs on real files, the model scripted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.backends import ScriptedBackend
from tabcoder.baseline import BaselinePlan
from tabcoder.config import RunConfig
from tabcoder.errors import ConfigError
from tabcoder.evaluation import evaluate, prepare_workspace
from tabcoder.grading import make_split
from tabcoder.profile import profile_task
from tabcoder.ideas import proposed_change
from tabcoder.prompting import PromptBuilder, fence
from tabcoder.runner import run
from tabcoder.sandbox import LocalSandbox
from tabcoder.strategies.common import MAX_HEAT
from tabcoder.task import load_task

from support import WINE, good_script, journal_records, tabcoder

REFLECTION = "The model could use more iterations.\nChange: raise max_iter of the model to 50."
BASELINE_MAKE_MODEL = "categorical_features=categorical, random_state=0)"


def messy_task(root: Path, kind: str = "binary", rows: int = 1500) -> Path:
    """A Kaggle folder with the troubles real data has: a near-unique name, a high-cardinality code with
    missing values, a date, a boolean with gaps, text categories; a skewed positive target for regression."""
    rng = np.random.default_rng(0)
    n = rows + 300
    x = rng.normal(size=n)
    group = rng.choice(["north", "south", "east", "west"], size=n)
    frame = pd.DataFrame({
        "id": np.arange(n),
        "name": [f"Person {i} {rng.integers(1e6)}" for i in range(n)],
        "code": np.where(rng.random(n) < 0.2, None, [f"C{v}" for v in rng.integers(0, 400, size=n)]),
        "joined": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "member": np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.5),
        "group": group,
        "x": x,
    })
    signal = x + (group == "north") * 1.5
    if kind == "regression":
        frame["y"] = np.exp(1.0 + signal + rng.normal(scale=0.3, size=n)).round(3)
    else:
        frame["y"] = np.where(signal + rng.normal(scale=0.5, size=n) > 0.5, "yes", "no")
    root.mkdir(parents=True)
    frame.iloc[:rows].to_csv(root / "train.csv", index=False)
    frame.iloc[rows:].drop(columns=["y"]).to_csv(root / "test.csv", index=False)
    sample = frame.iloc[rows:][["id"]].assign(y=0.5 if kind != "regression" else 1.0)
    sample.to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Predict y.\n")
    return root


def builder_for(task_dir: Path) -> tuple[PromptBuilder, object]:
    task = load_task(task_dir)
    split = make_split(task)
    return PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=60), split


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_the_baseline_uses_what_the_profile_knows_and_runs_fast_in_the_sandbox(tmp_path, kind):
    builder, split = builder_for(messy_task(tmp_path / "task", kind))
    plan = builder.plan
    assert plan.drop == ["name"], "the near-unique name is dropped; the 400-level code is not near-unique"
    assert plan.dates == ["joined"]
    assert plan.log_target is (kind == "regression"), "a positive skewed target is fitted on log1p"
    script = builder.example()
    assert "OneHotEncoder" not in script and "categorical_features=categorical" in script
    workspace = prepare_workspace(tmp_path / "ws", train=split.fit, test=split.valid,
                                  sample_submission=split.sample_submission, description="")
    started = time.monotonic()
    evaluation = evaluate(script, workspace, task=builder.task, labels=split.labels,
                          sandbox=LocalSandbox(threads=1), timeout=120)
    assert evaluation.result.ok, evaluation.result.traceback
    assert evaluation.grade is not None and evaluation.grade.valid, evaluation.grade
    assert time.monotonic() - started < 60
    dummy_like = 0.5 if kind == "binary" else None
    if dummy_like is not None:
        assert evaluation.grade.score.value > 0.8, "the signal in x and group is found"


def test_a_plan_leaves_ordinary_columns_alone(tmp_path):
    builder, _ = builder_for(WINE)
    assert builder.plan == BaselinePlan([], [], False, [])


def test_attempt_0_is_the_baseline_and_an_edit_of_it_is_credited_to_the_model(tmp_path):
    edit = ("Raising the iterations.\n<<<<<<< SEARCH\n"
            f"    return HistGradientBoostingClassifier({BASELINE_MAKE_MODEL}\n=======\n"
            "    return HistGradientBoostingClassifier(categorical_features=categorical, max_iter=50, "
            "learning_rate=0.3, random_state=0)\n>>>>>>> REPLACE\n")
    backend = ScriptedBackend([REFLECTION, edit])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, confirm_folds=2,
                                        edit_format="search-replace"), backend=backend)
    records = journal_records(result.run_dir)
    baseline, model = records[0], records[1]
    assert baseline["index"] == 0 and baseline["kind"] == "baseline" and baseline["calls"] == []
    assert baseline["code"] == good_script() and baseline["valid"]
    assert len(backend.history) == 2, "a reflection on the baseline and one code call: none for attempt 0"
    assert model["kind"] == "improve" and model["parent"] == 0 and model["edit_format"] == "search-replace"
    assert "max_iter=50, learning_rate=0.3" in model["code"] and model["edit_error"] is None
    assert model["idea"] == "raise max_iter of the model to 50." and model["idea_source"] == "model"
    assert model["gain"] == pytest.approx(model["score"] - baseline["score"])
    ask = backend.history[1][-1]["content"]
    assert "<<<<<<< SEARCH" in ask and "raise max_iter of the model to 50." in ask
    meta = json.loads((result.run_dir / "run.json").read_text())
    attribution = meta["attribution"]
    assert meta["selection"]["method"] == "folds" and {c["attempt"] for c in meta["selection"]["candidates"]} == {0, 1}
    assert attribution == result.attribution.to_dict()
    assert attribution["baseline_validation"] == baseline["score"] and attribution["baseline_folds"] is not None
    by_attempt = {c["attempt"]: c for c in meta["selection"]["candidates"]}
    assert by_attempt[0]["gain_over_baseline"] == 0
    assert by_attempt[1]["gain_over_baseline"] == pytest.approx(by_attempt[1]["mean"] - by_attempt[0]["mean"])
    if attribution["written_by"] == "model":
        assert attribution["text"].startswith("chosen: attempt 1, written by the model")
        assert "over the baseline on the confirmation folds" in attribution["text"]
        assert attribution["beat_baseline"] == (attribution["gain_folds"] > 0)
    else:
        assert attribution["text"].startswith("chosen: the baseline (attempt 0, written by the harness); "
                                              "no model attempt beat it on the confirmation folds")
    assert attribution["text"] in (result.run_dir / "report.html").read_text()


def test_the_baseline_is_chosen_and_said_so_when_no_model_attempt_beats_it(tmp_path):
    worse = good_script().replace(BASELINE_MAKE_MODEL, "max_iter=1, learning_rate=0.01, random_state=0)")
    backend = ScriptedBackend([REFLECTION, fence(worse)])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, confirm_folds=2),
                 backend=backend)
    records = journal_records(result.run_dir)
    assert records[1]["edit_format"] == "whole" and records[1]["gain"] < 0
    assert result.best.index == 0 and result.final_valid
    assert result.attribution.written_by == "baseline" and result.attribution.beat_baseline is False
    assert result.attribution.text == ("chosen: the baseline (attempt 0, written by the harness); no model attempt "
                                       "beat it on the confirmation folds")
    assert (result.run_dir / "best" / "solution.py").read_text() == good_script()


def test_an_edit_that_does_not_apply_is_precise_feedback_and_the_repair_edits_the_same_script(tmp_path):
    missing = "<<<<<<< SEARCH\nmodel = RandomForestClassifier()\n=======\nmodel = None\n>>>>>>> REPLACE\n"
    fixed = ("<<<<<<< SEARCH\n    return HistGradientBoostingClassifier(" + BASELINE_MAKE_MODEL + "\n=======\n"
             "    return HistGradientBoostingClassifier(categorical_features=categorical, max_iter=20, random_state=0)\n"
             ">>>>>>> REPLACE\n")
    backend = ScriptedBackend([REFLECTION, missing, "Copy the SEARCH lines exactly.", fixed])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=2, timeout=60, confirm_folds=0),
                 backend=backend)
    records = journal_records(result.run_dir)
    failed, repair = records[1], records[2]
    assert failed["code"] is None and failed["edit_error"] and "block 1" in failed["edit_error"]
    assert failed["feedback"].startswith("Your edit could not be applied, so the script above is unchanged")
    assert not (result.run_dir / "attempts" / "001").exists(), "nothing to run"
    assert repair["kind"] == "repair" and repair["parent"] == 1 and repair["valid"]
    assert "max_iter=20" in repair["code"] and repair["code"].startswith("import joblib\nimport numpy as np")
    repair_prompt = backend.history[3]
    assert [m["role"] for m in repair_prompt] == ["system", "user"], "an edit is asked for with the script in the user's turn"
    shown = repair_prompt[1]["content"].split("# The current script", 1)[1]
    assert "HistGradientBoostingClassifier(" + BASELINE_MAKE_MODEL in shown, "the repair is shown the unchanged script"


def test_a_repeated_script_raises_the_temperature_of_the_next_call_and_the_journal_says_so(tmp_path):
    variant = good_script().replace(BASELINE_MAKE_MODEL, "categorical_features=categorical, max_iter=30, random_state=0)")
    backend = ScriptedBackend([REFLECTION, fence(good_script()), fence(good_script()), fence(variant)])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=3, timeout=60, confirm_folds=0,
                                        temperature=0.2), backend=backend)
    records = journal_records(result.run_dir)
    assert [r["duplicate_of"] for r in records] == [None, 0, 0, None]
    temperatures = [call.options.get("temperature") for call in backend.history[1:]]
    assert temperatures[0] == pytest.approx(0.2)
    assert temperatures[1] == pytest.approx(0.5) and temperatures[2] == pytest.approx(0.8)
    assert records[2]["note"] == "attempt 1 repeated attempt 0: this step samples at temperature 0.50 (configured 0.2)"
    assert records[3]["temperature"] == pytest.approx(min(MAX_HEAT, 0.8)) and records[3]["valid"]
    ideas = [r["idea"] for r in records[1:]]
    assert len(set(ideas)) == 3, "a repeated change is not asked for again"


def test_the_model_idea_is_read_from_its_reflection():
    assert proposed_change("It underfits.\n**Change:** use `max_iter=500`.") == "use `max_iter=500`."
    assert proposed_change("change: parse the Name column for titles") == "parse the Name column for titles"
    assert proposed_change("No idea line here.") is None and proposed_change("Change: ok") is None


def test_no_baseline_runs_no_attempt_0_and_says_there_is_nothing_to_compare(tmp_path):
    backend = ScriptedBackend([fence(good_script())])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, baseline=False), backend=backend)
    records = journal_records(result.run_dir)
    assert [r["index"] for r in records] == [1] and records[0]["gain"] is None
    assert result.attribution.text == ("chosen: attempt 1, written by the model (a draft); no baseline to compare "
                                       "with: it was turned off (--no-baseline)")


def test_the_cli_takes_the_baseline_and_edit_options_and_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="--edit-format must be one of search-replace, functions, whole"):
        RunConfig(edit_format="diff")
    done = tabcoder("run", WINE, "--edit-format", "diff", cwd=tmp_path)
    assert done.returncode == 2 and "diff" in done.stderr and "Traceback" not in done.stderr
    done = tabcoder("run", "--help", cwd=tmp_path)
    assert "--no-baseline" in done.stdout and "--edit-format" in done.stdout


def test_a_functions_edit_asks_for_the_scaffold_function_the_idea_changes(tmp_path):
    builder, _ = builder_for(WINE)
    script = builder.example()
    by_kind = {idea.kind: idea.text for idea in builder.ideas()}
    assert builder.edit_target(by_kind["tuning"], script) == "make_model"
    assert builder.edit_target(by_kind["features"], script) == "add_features"
    assert builder.edit_target("use a neural network", script) is None, "an idea of the model's own names no function"
    assert builder.edit_target(by_kind["tuning"], "import pandas as pd\nmodel = 1\n") is None, "a script without it"
    ask = builder.improve(script, "ok", idea=by_kind["tuning"], memory="", edit_format="functions")[-1]["content"]
    assert "only the complete new version of the function `make_model`" in ask
    ask = builder.improve(script, "ok", idea=by_kind["tuning"], memory="", edit_format="search-replace")[-1]["content"]
    assert "<<<<<<< SEARCH" in ask and "make_model`" not in ask


def test_the_baseline_is_confirmed_beside_the_best_even_when_it_ranks_lower():
    from tabcoder.journal import Attempt
    from tabcoder.selection import _baseline_second

    def attempt(index, score, kind="improve"):
        return Attempt(index=index, parent=None, kind=kind, messages=[], response="", code="x", valid=True,
                       score=score, metric="accuracy")

    ranked = [attempt(3, 0.9), attempt(2, 0.8), attempt(1, 0.7), attempt(0, 0.6, "baseline")]
    assert [a.index for a in _baseline_second(ranked)] == [3, 0, 2, 1]
    top_baseline = [attempt(0, 0.95, "baseline"), attempt(1, 0.9)]
    assert [a.index for a in _baseline_second(top_baseline)] == [0, 1]
    assert [a.index for a in _baseline_second(ranked[:3])] == [3, 2, 1], "without a baseline the order stands"


def test_without_the_example_the_model_drafts_from_scratch_and_is_still_measured_against_the_baseline(tmp_path):
    variant = good_script().replace(BASELINE_MAKE_MODEL, "categorical_features=categorical, max_iter=30, random_state=0)")
    backend = ScriptedBackend([fence(variant)])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, show_example=False,
                                        confirm_folds=0), backend=backend)
    records = journal_records(result.run_dir)
    assert [r["kind"] for r in records] == ["baseline", "draft"]
    prompt = "\n".join(m["content"] for m in backend.history[0])
    assert "def make_features" not in prompt, "the model is shown neither the example nor the baseline's code"
    assert records[1]["gain"] == pytest.approx(records[1]["score"] - records[0]["score"])


def test_the_default_asks_for_the_function_an_idea_changes_and_takes_it_back_into_the_script(tmp_path):
    reply = ("```python\ndef make_model(categorical):\n    return HistGradientBoostingClassifier(categorical_features="
             "categorical, max_iter=40, random_state=0)\n```")
    backend = ScriptedBackend(["It looks fine.", reply])
    result = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, confirm_folds=0), backend=backend)
    records = journal_records(result.run_dir)
    assert RunConfig().edit_format == "functions"
    ask = backend.history[1][-1]["content"]
    assert records[1]["idea_source"] == "harness" and "only the complete new version of the function `make_model`" in ask
    assert records[1]["edit_format"] == "functions" and records[1]["valid"]
    assert records[1]["code"] == good_script().replace(BASELINE_MAKE_MODEL, "categorical_features=categorical, "
                                                       "max_iter=40, random_state=0)")


def test_a_run_recorded_before_the_baseline_existed_resumes_without_one(tmp_path):
    from tabcoder.runner import resume

    first = run(WINE, config=RunConfig(out_dir=tmp_path, strategy="reflexion", iterations=1, timeout=60, baseline=False, confirm_folds=0),
                backend=ScriptedBackend([fence(good_script())]))
    meta_path = first.run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["baseline"], meta["config"]["edit_format"]  # as such a run.json was written
    meta_path.write_text(json.dumps(meta))
    variant = good_script().replace(BASELINE_MAKE_MODEL, "categorical_features=categorical, max_iter=30, random_state=0)")
    result = resume(first.run_dir, backend=ScriptedBackend(["Fine.", fence(variant)]), iterations=2)
    assert [r["index"] for r in journal_records(result.run_dir)] == [1, 2], "no attempt 0 was added"
