"""The ensemble of verified solutions: greedy selection with replacement on the validation rows, scored on
the confirmation folds like a single attempt, chosen only when it beats the best one there, refit member by
member, and a best/solution.py that re-runs them and blends. Real runs in the sandbox; the model is scripted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.backends import ScriptedBackend
from tabcoder.ensemble import blend, greedy_weights
from tabcoder.errors import ConfigError
from tabcoder.prompting import fence
from tabcoder.runner import run
from tabcoder.task import load_task

from support import tabcoder as tabcoder_cli

REFLECTION = "The model sees one feature only.\nChange: use another feature."


def two_signal_task(root: Path, n: int = 700) -> Path:
    """A binary task whose target depends on two independent features: a model of either alone is half right,
    their blend is better than both."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({"id": np.arange(n), "a": a.round(4), "b": b.round(4),
                          "y": np.where(a + b + rng.normal(scale=0.3, size=n) > 0, "yes", "no")})
    root.mkdir(parents=True)
    frame.iloc[:550].to_csv(root / "train.csv", index=False)
    frame.iloc[550:].drop(columns=["y"]).to_csv(root / "test.csv", index=False)
    frame.iloc[550:][["id"]].assign(y=0.5).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("Predict y. Submissions are evaluated on ROC AUC of the probability of yes.\n")
    return root


def one_feature_script(feature: str) -> str:
    return f"""
import pandas as pd
from sklearn.linear_model import LogisticRegression
train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
model = LogisticRegression().fit(train[["{feature}"]], train["y"])
out = pd.DataFrame({{"id": test["id"], "y": model.predict_proba(test[["{feature}"]])[:, 1]}})
out.to_csv("submission.csv", index=False)
"""


def responder(scripts: list[str]):
    queue = list(scripts)

    def answer(messages):
        if "Reflect in two to four short sentences" in messages[-1]["content"]:
            return REFLECTION
        return fence(queue.pop(0))
    return answer


def test_blend_votes_and_averages():
    votes = blend([np.array(["a", "b", "b"], dtype=object), np.array(["a", "a", "c"], dtype=object),
                   np.array(["b", "a", "c"], dtype=object)], [3, 2, 2], "label")
    assert votes.tolist() == ["a", "a", "c"]
    tie = blend([np.array(["x"], dtype=object), np.array(["y"], dtype=object)], [1, 1], "label")
    assert tie.tolist() == ["x"], "a tie goes to the heaviest (then first) member"
    mean = blend([np.array([0.2, 1.0]), np.array([0.6, 0.0])], [1, 3], "proba")
    assert np.allclose(mean, [0.5, 0.25])
    matrix = blend([np.eye(2), np.ones((2, 2)) / 2], [1, 1], "proba")
    assert np.allclose(matrix, [[0.75, 0.25], [0.25, 0.75]])


def test_greedy_selection_with_replacement_keeps_the_best_prefix(tmp_path):
    task = load_task(two_signal_task(tmp_path / "t"), metric="roc_auc")
    rng = np.random.default_rng(0)
    y = np.array(["yes", "no"] * 50, dtype=object)
    signal = (y == "yes").astype(float)
    good = signal + rng.normal(scale=0.8, size=100)
    other = signal + rng.normal(scale=0.8, size=100)
    noise = rng.normal(size=100)
    weights, score = greedy_weights({1: good, 2: other, 3: noise}, y, task, size=10)
    assert set(weights) == {1, 2}, "the noise is never picked"
    single = task.metric_spec.score(y, good, classes=task.classes, positive_label="yes")
    assert score.value > single
    weights, _ = greedy_weights({1: good, 2: good.copy()}, y, task, size=5)
    assert weights == {1: 1}, "an identical second member adds nothing: the first pick alone is the best prefix"


def test_an_ensemble_that_beats_the_best_attempt_on_the_folds_is_chosen_and_reproducible(tmp_path):
    folder = two_signal_task(tmp_path / "t")
    backend = ScriptedBackend([responder([one_feature_script("a"), one_feature_script("b")])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, ensemble=True, confirm_folds=3,
                 out_dir=tmp_path / "runs")
    assert result.final_valid, result.final_problems
    ensemble = result.ensemble
    assert ensemble is not None and ensemble["chosen"], ensemble
    assert set(ensemble["weights"]) == {"1", "2"}
    assert ensemble["mean_folds"] > ensemble["best_single_folds"]
    assert result.attribution.written_by == "ensemble"
    assert result.attribution.text.startswith("chosen: an ensemble of attempt ")
    assert "over the best single attempt" in result.attribution.text
    best = result.run_dir / "best"
    assert sorted(p.name for p in (best / "members").iterdir()) == ["001", "002"]
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["ensemble"]["chosen"] and meta["result"]["ensemble"]["weights"] == ensemble["weights"]
    # the deliverable re-runs its members and blends them: the same bytes as the run's refit
    written = (best / "submission.csv").read_bytes()
    (best / "submission.csv").unlink()
    done = subprocess.run([sys.executable, "solution.py"], cwd=best, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (best / "submission.csv").read_bytes() == written
    # new rows: the members are re-run with them as their test set
    assert result.prediction_mode == "re-run"
    new = pd.read_csv(folder / "test.csv").head(9)
    predicted = result.predict(new)
    submitted = pd.read_csv(result.run_dir / "submission.csv").set_index("id")["y"]
    assert np.allclose(predicted["y"].to_numpy(dtype=float), submitted.loc[new["id"]].to_numpy())
    assert "Solution: An ensemble of attempt" in (best / "README.md").read_text()


def test_an_ensemble_that_does_not_beat_the_best_attempt_is_recorded_not_used(tmp_path):
    folder = two_signal_task(tmp_path / "t")
    both = one_feature_script("a").replace('[["a"]]', '[["a", "b"]]')
    weak = one_feature_script("a")
    backend = ScriptedBackend([responder([both, weak])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, ensemble=True, confirm_folds=3,
                 out_dir=tmp_path / "runs")
    assert result.final_valid and result.best.index == 1
    ensemble = result.ensemble
    assert ensemble is not None and not ensemble["chosen"]
    assert ensemble["reason"], ensemble
    assert not (result.run_dir / "best" / "members").exists()
    assert result.attribution.written_by == "model"


def test_the_ensemble_is_off_unless_asked_and_its_size_is_checked(tmp_path):
    folder = two_signal_task(tmp_path / "t")
    backend = ScriptedBackend([responder([one_feature_script("a"), one_feature_script("b")])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, confirm_folds=3, out_dir=tmp_path / "runs")
    assert result.ensemble is None and not (result.run_dir / "best" / "members").exists()
    with pytest.raises(ConfigError, match="--ensemble-size must be at least 2"):
        run(folder, backend=ScriptedBackend([]), ensemble_size=1, out_dir=tmp_path / "runs")
    done = tabcoder_cli("run", "--help")
    assert "--ensemble / --no-ensemble" in done.stdout and "--ensemble-size" in done.stdout


def test_under_a_time_budget_the_plan_keeps_every_confirmed_members_refit_in_hand():
    from tabcoder.budget import TimePlan
    from tabcoder.config import RunConfig
    from tabcoder.journal import Attempt

    attempts = [Attempt(index=i, parent=None, kind="draft", messages=[], response="", code="x", valid=True,
                        score=0.9 - i / 10, metric="accuracy", run_seconds=10.0 * (i + 1)) for i in range(3)]

    class Ranked:
        def ranked(self):
            return attempts

    def reserve(ensemble: bool) -> float:
        config = RunConfig(ensemble=ensemble, time_budget=3600)
        return TimePlan(config, growth=1.0, workers=1, seconds_left=lambda: 3600.0).finish_estimate(Ranked())

    single, blended = reserve(False), reserve(True)
    assert blended - single == pytest.approx(20.0 + 1.0 + 30.0 + 1.0), "the other two members' refits"
