"""An ensemble of verified solutions: greedy ensemble selection (Caruana et al., 2004: forward selection with
replacement) over the predictions the attempts wrote for the harness's held-out rows.

Scope: `blend` (the weighted mean of probabilities or numbers, or a weighted vote of labels), `greedy_weights`
(the selection on one set of rows), and `build_ensemble`, which fits the weights on the validation rows only,
with the attempts confirmed on the folds as candidates (the baseline among them), and scores the blend on each
confirmation fold exactly like a single attempt, from the predictions the members already wrote there. The
ensemble is chosen only when its mean fold score beats the best single attempt's; `Ensemble` records both.
The refit of the members and the entry point that blends them are `tabcoder.final`'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tabcoder.evaluation import SUBMISSION_NAME
from tabcoder.grading import check_submission, make_folds
from tabcoder.grading.scoring import prediction_array, true_array
from tabcoder.grading.submission import prediction_kind
from tabcoder.journal import Attempt
from tabcoder.metrics import Score
from tabcoder.task import Task

#: Steps of the forward selection (the members' weights are counts out of this many picks).
DEFAULT_SIZE = 10


@dataclass
class Ensemble:
    """A weighted blend of attempts and how it compares with the best single attempt."""

    weights: dict[int, int]  # attempt index -> times picked (the weight is count / sum of counts)
    metric: str
    validation: float | None  # the blend's score on the validation rows (where the weights were fitted)
    folds: list[float | None] = field(default_factory=list)  # the blend's score on each confirmation fold
    mean_folds: float | None = None
    best_single: int | None = None  # the attempt the selection put first
    best_single_validation: float | None = None
    best_single_folds: float | None = None
    chosen: bool = False
    reason: str = ""

    @property
    def members(self) -> list[int]:
        return list(self.weights)

    def describe(self) -> str:
        total = sum(self.weights.values())
        return ", ".join(f"attempt {index} ({count}/{total})" for index, count in self.weights.items())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["weights"] = {str(k): v for k, v in self.weights.items()}
        return data


def blend(predictions: Sequence[np.ndarray], weights: Sequence[float], kind: str) -> np.ndarray:
    """The weighted blend: the mean of probabilities (a column or a matrix) or numbers; for labels a weighted
    vote, ties going to the label of the member with the largest weight (the first such member)."""
    w = np.asarray(weights, dtype=float)
    if kind != "label":
        stacked = np.stack([np.asarray(p, dtype=float) for p in predictions])
        return np.tensordot(w / w.sum(), stacked, axes=1)
    n = len(predictions[0])
    labels = pd.unique(np.concatenate([np.asarray(p, dtype=object) for p in predictions]))
    votes = np.zeros((n, len(labels)))
    lead = int(np.argmax(w))
    for j, label in enumerate(labels):
        for weight, p in zip(w, predictions):
            votes[:, j] += weight * (np.asarray(p, dtype=object) == label)
        votes[:, j] += 1e-9 * (np.asarray(predictions[lead], dtype=object) == label)  # ties: the lead member
    return labels[np.argmax(votes, axis=1)]


def _score(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> Score:
    spec = task.metric_spec
    try:
        value = spec.score(y_true, y_pred, classes=task.classes, positive_label=task.positive_label)
    except ValueError:
        return Score.worst(task.metric)
    return Score(value, spec.name, spec.greater_is_better)


def greedy_weights(predictions: dict[int, np.ndarray], y_true: np.ndarray, task: Task,
                   size: int = DEFAULT_SIZE) -> tuple[dict[int, int], Score]:
    """Forward selection with replacement: `size` times add the member whose addition scores best (earlier
    members win ties); keep the best-scoring prefix. Returns (counts by attempt index, that prefix's score)."""
    kind = prediction_kind(task)
    order = list(predictions)
    counts: dict[int, int] = {}
    best_counts: dict[int, int] = {}
    best_score = Score.worst(task.metric)
    for _ in range(size):
        step_best: tuple[int, Score] | None = None
        for index in order:
            trial = {**counts, index: counts.get(index, 0) + 1}
            members = list(trial)
            score = _score(task, y_true, blend([predictions[i] for i in members], [trial[i] for i in members], kind))
            if step_best is None or score > step_best[1]:
                step_best = (index, score)
        assert step_best is not None  # `order` is not empty
        counts[step_best[0]] = counts.get(step_best[0], 0) + 1
        if step_best[1] > best_score:
            best_counts, best_score = dict(counts), step_best[1]
    ranked = sorted(best_counts, key=lambda i: (-best_counts[i], order.index(i)))
    return {i: best_counts[i] for i in ranked}, best_score


def read_predictions(path: Path, task: Task, labels: pd.Series) -> np.ndarray | None:
    """The predictions of the submission at `path` for the ids of `labels`, in their order (None if invalid)."""
    aligned, problems = check_submission(path, task=task, expected_ids=labels.index)
    return None if aligned is None or problems else prediction_array(aligned, task)


def build_ensemble(task: Task, run_dir: Path, *, validation_labels: pd.Series, confirmed: dict[int, Score],
                   order: list[Attempt], folds: int, seed: int, size: int = DEFAULT_SIZE) -> Ensemble | None:
    """The ensemble of the confirmed attempts (weights fitted on the validation rows, scored on the folds), or
    None when fewer than two attempts were confirmed or the weights pick one attempt only."""
    candidates = [a for a in order if a.index in confirmed]
    if len(candidates) < 2 or folds < 2:
        return None
    y_valid = true_array(validation_labels, task)
    predictions = {}
    for attempt in candidates:
        found = read_predictions(run_dir / "attempts" / f"{attempt.index:03d}" / SUBMISSION_NAME, task,
                                 validation_labels)
        if found is not None:
            predictions[attempt.index] = found
    if len(predictions) < 2:
        return None
    weights, valid_score = greedy_weights(predictions, y_valid, task, size)
    best = candidates[0]
    ensemble = Ensemble(weights, task.metric, valid_score.value, best_single=best.index,
                        best_single_validation=best.score, best_single_folds=confirmed[best.index].value)
    if len(weights) < 2:
        ensemble.reason = f"the selection kept attempt {next(iter(weights))} alone: no blend beat it on the validation rows"
        return ensemble
    ensemble.folds = _fold_scores(task, run_dir, weights, folds, seed)
    if any(v is None for v in ensemble.folds):
        ensemble.reason = "a member's predictions on a confirmation fold could not be read"
        return ensemble
    ensemble.mean_folds = statistics.fmean(v for v in ensemble.folds if v is not None)
    spec = task.metric_spec
    mean = Score(ensemble.mean_folds, spec.name, spec.greater_is_better)
    ensemble.chosen = mean > confirmed[best.index]
    verb = "beats" if ensemble.chosen else "does not beat"
    ensemble.reason = (f"the ensemble {verb} attempt {best.index} on the {folds} confirmation folds "
                       f"({mean.value:.5g} vs {confirmed[best.index].value:.5g} {spec.name})")
    return ensemble


def _fold_scores(task: Task, run_dir: Path, weights: dict[int, int], folds: int, seed: int) -> list[float | None]:
    """The blend's score on each confirmation fold, from the members' fold submissions (`confirm/NNN-foldK`)."""
    kind = prediction_kind(task)
    scores: list[float | None] = []
    for number, fold in enumerate(make_folds(task, k=folds, seed=seed), 1):
        arrays = [read_predictions(run_dir / "confirm" / f"{index:03d}-fold{number}" / SUBMISSION_NAME, task,
                                   fold.labels) for index in weights]
        if any(a is None for a in arrays):
            scores.append(None)
            continue
        blended = blend([a for a in arrays if a is not None], list(weights.values()), kind)
        scores.append(_score(task, true_array(fold.labels, task), blended).value)
    return scores
