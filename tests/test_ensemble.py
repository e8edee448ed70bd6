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
from tabcoder.ensemble import PROBABILITIES_NAME, blend, class_probabilities, greedy_weights, read_predictions
from tabcoder.errors import ConfigError
from tabcoder.prompting import fence
from tabcoder.runner import run
from tabcoder.task import load_task

from support import journal_records
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
    # the time of each stage is recorded: the blend's refit runs both members, so it is not free
    phases = meta["result"]["phases"]
    assert list(phases) == ["search", "confirmation", "ensemble", "final"]
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["final"] > 0 and phases["confirmation"] > 0
    assert sum(phases.values()) <= result.seconds + 0.1
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


def test_the_ensemble_is_on_by_default_off_when_asked_and_its_size_is_checked(tmp_path):
    folder = two_signal_task(tmp_path / "t")
    backend = ScriptedBackend([responder([one_feature_script("a"), one_feature_script("b")])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, confirm_folds=3, out_dir=tmp_path / "on")
    assert result.ensemble is not None and result.ensemble["chosen"]
    backend = ScriptedBackend([responder([one_feature_script("a"), one_feature_script("b")])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, confirm_folds=3, ensemble=False,
                 out_dir=tmp_path / "off")
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


# --------------------------------------------------------------------------- label metrics: class probabilities


def label_script(feature: str, probabilities: bool = True) -> str:
    """Labels from one feature; with `probabilities`, the class probabilities beside them."""
    extra = f"""
proba = pd.DataFrame(model.predict_proba(test[["{feature}"]]), columns=[str(c) for c in model.classes_])
proba.insert(0, "id", test["id"].to_numpy())
proba.to_csv("{PROBABILITIES_NAME}", index=False)
""" if probabilities else ""
    return f"""
import pandas as pd
from sklearn.linear_model import LogisticRegression
train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
model = LogisticRegression().fit(train[["{feature}"]], train["y"])
pd.DataFrame({{"id": test["id"], "y": model.predict(test[["{feature}"]])}}).to_csv("submission.csv", index=False)
""" + extra


def label_task(root: Path) -> Path:
    folder = two_signal_task(root)
    sample = pd.read_csv(folder / "sample_submission.csv").assign(y="no")
    sample.to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text("Predict y (yes or no). Submissions are evaluated on accuracy.\n")
    return folder


def test_blend_of_class_probabilities_is_not_a_vote():
    classes = ["no", "yes"]
    sure_no = np.array([[0.9, 0.1]])
    unsure_yes = np.array([[0.45, 0.55]])
    assert blend([unsure_yes, unsure_yes, sure_no], [1, 1, 1], "label", classes).tolist() == ["no"]
    votes = [np.array(["yes"], dtype=object), np.array(["yes"], dtype=object), np.array(["no"], dtype=object)]
    assert blend(votes, [1, 1, 1], "label", classes).tolist() == ["yes"]
    mixed = [unsure_yes, np.array(["no"], dtype=object)]  # a member without probabilities counts by its label
    assert blend(mixed, [1, 1], "label", classes).tolist() == ["no"]


def test_class_probabilities_are_read_only_when_usable_and_agreeing(tmp_path):
    task = load_task(label_task(tmp_path / "t"))
    assert task.metric == "accuracy"
    labels = pd.Series(["yes", "no", "yes"], index=pd.Index([551, 552, 550], name="id"))
    folder = tmp_path / "w"
    folder.mkdir()
    pd.DataFrame({"id": [550, 551, 552], "y": ["yes", "yes", "no"]}).to_csv(folder / "submission.csv", index=False)
    probabilities = folder / PROBABILITIES_NAME
    pd.DataFrame({"id": [552, 550, 551], "yes": [0.2, 0.7, 0.6], "no": [0.8, 0.3, 0.4]}).to_csv(probabilities,
                                                                                            index=False)
    matrix = class_probabilities(probabilities, task, labels.index)
    assert np.allclose(matrix, [[0.4, 0.6], [0.8, 0.2], [0.3, 0.7]]), "rows in the ids' order, columns by class"
    assert read_predictions(folder / "submission.csv", task, labels).shape == (3, 2)
    pd.DataFrame({"id": [550, 551, 552], "yes": [0.7, 0.6, 0.2]}).to_csv(probabilities, index=False)
    assert class_probabilities(probabilities, task, labels.index) is None, "a class is missing"
    pd.DataFrame({"id": [550, 551, 999], "yes": [0.7, 0.6, 0.2], "no": [0.3, 0.4, 0.8]}).to_csv(probabilities,
                                                                                            index=False)
    assert class_probabilities(probabilities, task, labels.index) is None, "an id is missing"
    pd.DataFrame({"id": [550, 551, 552], "yes": [0.7, 1.6, 0.2], "no": [0.3, 0.4, 0.8]}).to_csv(probabilities,
                                                                                            index=False)
    assert class_probabilities(probabilities, task, labels.index) is None, "not a probability"
    pd.DataFrame({"id": [550, 551, 552], "yes": [0.1, 0.6, 0.2], "no": [0.9, 0.4, 0.8]}).to_csv(probabilities,
                                                                                            index=False)
    read = read_predictions(folder / "submission.csv", task, labels)
    assert read.ndim == 1 and read.tolist() == ["yes", "no", "yes"], "probabilities that contradict the labels"


def test_for_a_label_metric_the_blend_of_probabilities_is_chosen_where_a_vote_could_not_be(tmp_path):
    folder = label_task(tmp_path / "t")
    backend = ScriptedBackend([responder([label_script("a"), label_script("b")])] * 3)
    result = run(folder, backend=backend, iterations=2, baseline=False, confirm_folds=3, out_dir=tmp_path / "runs")
    assert result.final_valid, result.final_problems
    ensemble = result.ensemble
    assert ensemble is not None and ensemble["chosen"], ensemble
    assert ensemble["mean_folds"] > ensemble["best_single_folds"]
    best = result.run_dir / "best"
    written = (best / "submission.csv").read_bytes()
    (best / "submission.csv").unlink()
    done = subprocess.run([sys.executable, "solution.py"], cwd=best, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (best / "submission.csv").read_bytes() == written
    assert set(pd.read_csv(best / "submission.csv")["y"]) <= {"yes", "no"}
    # the same two scripts with labels only: a vote of two is the heavier member alone, never chosen
    backend = ScriptedBackend([responder([label_script("a", False), label_script("b", False)])] * 3)
    votes = run(folder, backend=backend, iterations=2, baseline=False, confirm_folds=3, out_dir=tmp_path / "votes")
    assert votes.final_valid and not (votes.ensemble or {}).get("chosen")


def test_confirmation_places_go_to_the_attempts_a_blend_picks_not_to_near_copies_of_the_best(tmp_path):
    """Two places on the folds (`--confirm-top 2`): the next best by validation is a near-copy of the best
    (the same model with another C); the attempt on the other feature is weaker alone but is what a blend
    needs. It is confirmed, and the ensemble of the two is chosen."""
    folder = two_signal_task(tmp_path / "t")
    copy = one_feature_script("a").replace("LogisticRegression()", "LogisticRegression(C=0.5)")
    noisy_b = one_feature_script("b").replace(
        'model = LogisticRegression()',
        'import numpy as np\nfor frame in (train, test):\n'
        '    frame["b"] = frame["b"] + np.random.default_rng(len(frame)).normal(scale=0.7, size=len(frame))\n'
        'model = LogisticRegression()')
    backend = ScriptedBackend([responder([one_feature_script("a"), copy, noisy_b])] * 4)
    result = run(folder, backend=backend, iterations=3, baseline=False, ensemble=True, confirm_folds=3,
                 confirm_top=2, out_dir=tmp_path / "runs")
    assert result.final_valid, result.final_problems
    meta = json.loads((result.run_dir / "run.json").read_text())
    selection = meta["selection"]
    validation = {r["index"]: r["score"] for r in journal_records(result.run_dir) if r.get("valid")}
    assert validation[3] < min(validation[1], validation[2]), "the b attempt is third by validation"
    assert sorted(c["attempt"] for c in selection["candidates"]) == [1, 3]
    assert "picked by a blend on the validation rows" in selection["note"]
    ensemble = result.ensemble
    assert ensemble is not None and ensemble["chosen"], ensemble
    assert set(ensemble["weights"]) == {"1", "3"}
