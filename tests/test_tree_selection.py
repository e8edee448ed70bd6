"""Choosing the final attempt: a lucky split does not win (confirmation on folds), the gap between
validation and test is recorded, and a time budget ends the run on time with a refit solution."""

from __future__ import annotations

import json

from tabcoder import RunConfig, load_task, run
from tabcoder.backends import ScriptedBackend
from tabcoder.grading import make_split
from tabcoder.prompting import fence

from support import WINE, WINE_ANSWERS, Responder, variant


def lucky_script() -> str:
    """Scores perfectly on the harness's validation split (it carries those rows' labels, as a model tuned to
    the split's rows would) and guesses the rarest class everywhere else."""
    split = make_split(load_task(WINE), seed=0, valid_fraction=0.2)
    answers = {int(k): v for k, v in split.labels.items()}
    return (
        "import pandas as pd\n"
        f"ANSWERS = {answers!r}\n"
        "train = pd.read_csv('input/train.csv')\n"
        "test = pd.read_csv('input/test.csv')\n"
        "guess = train['cultivar'].value_counts().index[-1]\n"
        "labels = [ANSWERS.get(i, guess) for i in test['id']]\n"
        "pd.DataFrame({'id': test['id'], 'cultivar': labels}).to_csv('submission.csv', index=False)\n"
    )


def run_pair(tmp_path, **options):
    backend = ScriptedBackend([fence(variant(0)), fence(lucky_script())])
    config = RunConfig(baseline=False, out_dir=tmp_path / "runs", strategy="tree", drafts=2, iterations=2, timeout=60,
                       answers=WINE_ANSWERS, **options)
    return run(WINE, config=config, backend=backend)


def test_a_lucky_split_does_not_win(tmp_path):
    result = run_pair(tmp_path, confirm_folds=3)
    honest, lucky = 1, 2
    records = {json.loads(line)["index"]: json.loads(line) for line in (result.run_dir / "journal.jsonl").open()}
    assert records[lucky]["score"] == 1.0 and records[lucky]["score"] > records[honest]["score"]
    assert result.best.index == honest, result.selection
    candidates = {c["attempt"]: c for c in result.selection["candidates"]}
    assert candidates[lucky]["mean"] < 0.7 < 0.9 < candidates[honest]["mean"]
    assert result.confirmed_score.value == candidates[honest]["mean"]
    assert result.test_score.value > 0.9
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["selection"]["method"] == "folds" and meta["selection"]["order"][0] == honest
    gap = meta["result"]["gap"]
    assert gap["test_minus_validation"] == result.test_score.value - result.validation_score.value
    assert "test_minus_confirmed" in gap


def test_without_confirmation_the_lucky_split_wins_and_the_gap_shows_it(tmp_path):
    result = run_pair(tmp_path, confirm_folds=0)
    assert result.best.index == 2 and result.selection["method"] == "validation"
    assert result.validation_score.value == 1.0 and result.test_score.value < 0.6
    assert result.gap["test_minus_validation"] < -0.4


def test_a_time_budget_ends_the_run_on_time_with_a_refit_solution(tmp_path):
    budget = 30.0
    backend = Responder(sleep=1.0).backend()
    config = RunConfig(baseline=False, out_dir=tmp_path / "runs", strategy="tree", iterations=100, time_budget=budget, timeout=60)
    result = run(WINE, config=config, backend=backend)
    assert "time budget" in result.stop_reason
    assert result.final_valid and (result.run_dir / "best" / "solution.py").is_file()
    assert result.attempts >= 2
    assert result.seconds <= budget * 1.15, f"the run took {result.seconds:.1f} s for a {budget:.0f} s budget"
