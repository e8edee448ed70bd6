"""The Reflexion loop and the run directory, driven by a scripted backend and a real sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.prompting import fence

from support import WINE, WINE_ANSWERS, good_script, journal_records

REFLECTION = "The column name was wrong; use the TARGET constant."


def run_scripted(tmp_path: Path, responses: list[str], **options):
    backend = ScriptedBackend([fence(r) if r.startswith("import") else r for r in responses])
    options.setdefault("iterations", len([r for r in responses if r.startswith("import")]) or 1)
    options.setdefault("timeout", 60)
    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "runs", **{"strategy": "reflexion", **options}), backend=backend)
    return result, backend


def test_first_attempt_succeeds_and_run_folder_is_complete(tmp_path):
    result, backend = run_scripted(tmp_path, [good_script()], answers=WINE_ANSWERS)
    assert result.final_valid and result.attempts == 1 and result.valid_attempts == 1
    assert 0.8 <= result.validation_score.value <= 1.0
    run_dir = result.run_dir
    for name in ("journal.jsonl", "run.json", "submission.csv", "best/solution.py", "attempts/001/solution.py"):
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["result"]["final_valid"] is True
    assert meta["config"]["iterations"] == 1
    assert meta["task"]["target"] == "cultivar"
    # the test score is the grade of the final submission against the answers
    answers = pd.read_csv(WINE_ANSWERS).set_index("id")["cultivar"]
    submitted = pd.read_csv(run_dir / "submission.csv").set_index("id")["cultivar"]
    assert result.test_score.value == pytest.approx((submitted.loc[answers.index] == answers).mean())
    # only one LLM call: no reflection after the last attempt
    assert len(backend.history) == 1


def test_validation_labels_never_reach_a_workspace(tmp_path):
    result, _ = run_scripted(tmp_path, [good_script()])
    workspace = result.run_dir / "attempts" / "001" / "input"
    test = pd.read_csv(workspace / "test.csv")
    train = pd.read_csv(workspace / "train.csv")
    assert "cultivar" not in test.columns
    assert set(test["id"]).isdisjoint(set(train["id"]))
    full_train_ids = set(pd.read_csv(WINE / "train.csv")["id"])
    assert set(test["id"]) <= full_train_ids  # validation rows come from the labelled train


def test_broken_code_is_repaired_after_reflection(tmp_path):
    broken = good_script().replace("TARGET = 'cultivar'", "TARGET = 'cultivarr'", 1)
    assert broken != good_script()
    result, backend = run_scripted(tmp_path, [broken, REFLECTION, good_script()])
    assert result.final_valid
    records = journal_records(result.run_dir)
    assert [r["valid"] for r in records] == [False, True]
    assert records[0]["exit_code"] != 0
    assert "cultivarr" in records[0]["feedback"]          # the model is shown the real error
    assert records[0]["reflection"] == REFLECTION
    assert records[1]["kind"] == "repair" and records[1]["parent"] == 1
    revise_prompt = backend.history[2]  # [1] is the reflection call
    messages = revise_prompt["messages"] if isinstance(revise_prompt, dict) else revise_prompt
    last = messages[-1]["content"]
    assert "cultivarr" in last and REFLECTION in last
    assert "TARGET = 'cultivarr'" in "\n".join(m["content"] for m in messages), "the failed script is shown"


def test_malformed_submission_becomes_precise_feedback(tmp_path):
    wrong_column = good_script().replace("submission[TARGET] =", "submission['label'] =")
    result, _ = run_scripted(tmp_path, [wrong_column, REFLECTION, good_script()])
    records = journal_records(result.run_dir)
    assert records[0]["exit_code"] == 0 and records[0]["valid"] is False
    assert records[0]["problems"], "a malformed submission must list its problems"
    assert "not valid" in records[0]["feedback"] and "cultivar" in records[0]["feedback"]
    assert records[1]["valid"] is True


def test_answer_without_code_is_feedback_not_a_crash(tmp_path):
    result, _ = run_scripted(tmp_path, ["I cannot help with that.", REFLECTION, good_script()], iterations=2)
    records = journal_records(result.run_dir)
    assert records[0]["code"] is None and "no Python code block" in records[0]["feedback"]
    assert records[1]["valid"] and result.final_valid


def test_token_budget_stops_the_loop(tmp_path):
    script = good_script()
    result, backend = run_scripted(tmp_path, [script, REFLECTION, script, REFLECTION, script], iterations=3,
                                   token_budget=1)
    assert result.attempts == 1 and "token budget" in result.stop_reason


def test_time_budget_stops_the_loop(tmp_path):
    ticks = iter(range(0, 10_000, 50))
    backend = ScriptedBackend([fence(good_script())] * 3 + [REFLECTION] * 3)
    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, iterations=3, time_budget=60, timeout=60),
                 backend=backend, clock=lambda: next(ticks))
    assert result.attempts == 1 and "time budget" in result.stop_reason
    assert result.final_valid


def test_improvement_starts_from_the_best_attempt(tmp_path):
    script = good_script()
    result, backend = run_scripted(tmp_path, [script, REFLECTION, script], iterations=2)
    records = journal_records(result.run_dir)
    assert records[1]["kind"] == "improve" and records[1]["parent"] == 1


def test_best_solution_reproduces_the_final_submission(tmp_path):
    result, _ = run_scripted(tmp_path, [good_script()])
    best = result.run_dir / "best"
    copy = tmp_path / "reproduce"
    copy.mkdir()
    (copy / "input").mkdir()
    for f in (best / "input").iterdir():
        (copy / "input" / f.name).write_bytes(f.read_bytes())
    (copy / "solution.py").write_bytes((best / "solution.py").read_bytes())
    subprocess.run([sys.executable, "solution.py"], cwd=copy, check=True, capture_output=True, timeout=120)
    assert (copy / "submission.csv").read_text() == (result.run_dir / "submission.csv").read_text()


def test_runs_never_overwrite_each_other(tmp_path):
    first, _ = run_scripted(tmp_path, [good_script()])
    second, _ = run_scripted(tmp_path, [good_script()])
    assert first.run_dir != second.run_dir
    assert (first.run_dir / "journal.jsonl").is_file() and (second.run_dir / "journal.jsonl").is_file()


def test_no_valid_attempt_means_no_submission(tmp_path):
    broken = "import sys\nsys.exit(3)\n"
    result, _ = run_scripted(tmp_path, [broken, REFLECTION, broken], iterations=2)
    assert not result.final_valid and result.submission is None
    assert not (result.run_dir / "submission.csv").exists()
    assert result.validation_score.value is None


def test_single_prompt_style_sends_one_user_message(tmp_path):
    result, backend = run_scripted(tmp_path, [good_script()], prompt_style="single")
    first = backend.history[0]
    messages = first["messages"] if isinstance(first, dict) else first
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert "submission.csv" in messages[0]["content"]


def test_description_can_be_left_out(tmp_path):
    result, backend = run_scripted(tmp_path, [good_script()], use_description=False)
    first = backend.history[0]
    messages = first["messages"] if isinstance(first, dict) else first
    assert "cultivators" not in messages[1]["content"]
    result, backend = run_scripted(tmp_path, [good_script()])
    first = backend.history[0]
    messages = first["messages"] if isinstance(first, dict) else first
    assert "cultivators" in messages[1]["content"]


def test_a_repeated_script_is_not_run_again_and_the_next_idea_is_asked_for(tmp_path):
    script = good_script()
    commented = script.replace("import pandas as pd", "import pandas as pd  # same code, new comment")
    better = script.replace("random_state=0)", "max_iter=50, random_state=0)")
    result, backend = run_scripted(tmp_path, [script, REFLECTION, commented, better], iterations=3)
    records = journal_records(result.run_dir)
    assert records[1]["duplicate_of"] == 1 and not (result.run_dir / "attempts" / "002").exists()
    assert "same as attempt 1" in records[1]["feedback"]
    assert records[2]["kind"] == "improve" and records[2]["parent"] == 1 and records[2]["valid"]
    ideas = [r["idea"] for r in records[1:]]
    assert all(ideas) and ideas[0] != ideas[1], "each improvement step names a different single change"
    last_prompt = backend.history[-1]
    messages = last_prompt["messages"] if isinstance(last_prompt, dict) else last_prompt
    assert ideas[1] in messages[-1]["content"]


def test_every_call_gets_its_own_seed(tmp_path):
    result, backend = run_scripted(tmp_path, [good_script(), REFLECTION, good_script().replace("import pandas as pd", "import pandas as pd\nVARIANT = 2", 1)],
                                   iterations=2)
    seeds = [call.options["seed"] for call in backend.history]
    assert len(set(seeds)) == len(seeds) == 3


def test_a_journal_replays_into_the_same_run(tmp_path):
    broken = good_script().replace("TARGET = 'cultivar'", "TARGET = 'cultivarr'", 1)
    first, _ = run_scripted(tmp_path, [broken, REFLECTION, good_script()])
    replayed = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "again", iterations=2, timeout=60,
                                          strategy="reflexion", model=f"replay:{first.run_dir / 'journal.jsonl'}"))
    a, b = journal_records(first.run_dir), journal_records(replayed.run_dir)
    assert [(r["code"], r["valid"], r["score"], r["reflection"]) for r in a] == \
           [(r["code"], r["valid"], r["score"], r["reflection"]) for r in b]
    assert replayed.test_score is None and replayed.final_valid
