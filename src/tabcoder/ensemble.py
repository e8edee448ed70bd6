"""An ensemble of verified solutions: greedy ensemble selection (Caruana et al., 2004: forward selection with
replacement) over the predictions the attempts wrote for the harness's held-out rows.

Scope: `blend` (the weighted mean of probabilities or numbers; for label metrics the weighted mean of each
member's class probabilities, or of its labels as one-hot rows when it wrote none, then the likeliest class),
`greedy_weights`
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
from tabcoder.grading.submission import prediction_kind, to_classes
from tabcoder.journal import Attempt
from tabcoder.metrics import Score
from tabcoder.task import Task
from tabcoder.task.ids import id_keys

#: Steps of the forward selection (the members' weights are counts out of this many picks).
DEFAULT_SIZE = 10
#: For label metrics a solution may write, beside submission.csv, its class probabilities: the id column and
#: one column per class. Nothing grades them; an ensemble blends them instead of votes.
PROBABILITIES_NAME = "probabilities.csv"
#: Probabilities are used only when their likeliest class is the member's own label on this share of rows
#: (a script that tuned a threshold, or wrote stale probabilities, is blended by its labels).
AGREEMENT = 0.99


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


def one_hot(labels: np.ndarray, classes: Sequence) -> np.ndarray:
    """Labels as rows of 0/1 over `classes` (a label that is no class is a row of zeros)."""
    values = np.asarray(labels, dtype=object)
    return np.stack([values == c for c in classes], axis=1).astype(float)


def blend(predictions: Sequence[np.ndarray], weights: Sequence[float], kind: str,
          classes: Sequence | None = None) -> np.ndarray:
    """The weighted blend: the mean of probabilities (a column or a matrix) or numbers. For labels each member is
    an (n, k) matrix over `classes` (its class probabilities) or an array of labels (one-hot rows: a weighted
    vote); the blend is the class with the largest weighted mean, ties going to the member with the largest
    weight (the first such member). Without `classes`, the labels the members wrote."""
    w = np.asarray(weights, dtype=float)
    if kind != "label":
        stacked = np.stack([np.asarray(p, dtype=float) for p in predictions])
        return np.tensordot(w / w.sum(), stacked, axes=1)
    if classes is None:
        classes = list(pd.unique(np.concatenate([np.asarray(p, dtype=object) for p in predictions])))
    matrices = [np.asarray(p, dtype=float) if np.ndim(p) == 2 else one_hot(p, classes) for p in predictions]
    mean = np.tensordot(w / w.sum(), np.stack(matrices), axes=1)
    mean += 1e-9 * matrices[int(np.argmax(w))]  # ties: the lead member
    return np.asarray(list(classes), dtype=object)[np.argmax(mean, axis=1)]


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
            score = _score(task, y_true, blend([predictions[i] for i in members], [trial[i] for i in members], kind,
                                               task.classes))
            if step_best is None or score > step_best[1]:
                step_best = (index, score)
        assert step_best is not None  # `order` is not empty
        counts[step_best[0]] = counts.get(step_best[0], 0) + 1
        if step_best[1] > best_score:
            best_counts, best_score = dict(counts), step_best[1]
    ranked = sorted(best_counts, key=lambda i: (-best_counts[i], order.index(i)))
    return {i: best_counts[i] for i in ranked}, best_score


def validation_predictions(task: Task, run_dir: Path, validation_labels: pd.Series,
                           attempts: Sequence[Attempt]) -> dict[int, np.ndarray]:
    """Each attempt's readable predictions for the validation rows (`read_predictions`), by attempt index."""
    predictions = {}
    for attempt in attempts:
        found = read_predictions(run_dir / "attempts" / f"{attempt.index:03d}" / SUBMISSION_NAME, task,
                                 validation_labels)
        if found is not None:
            predictions[attempt.index] = found
    return predictions


def pick_members(task: Task, run_dir: Path, *, validation_labels: pd.Series, attempts: Sequence[Attempt],
                 size: int = DEFAULT_SIZE) -> list[int]:
    """The attempts (indices, heaviest first) that forward selection over all of `attempts` picks on the
    validation rows: the candidates worth confirming on folds for a blend. Empty when fewer than two attempts'
    predictions can be read."""
    predictions = validation_predictions(task, run_dir, validation_labels, attempts)
    if len(predictions) < 2:
        return []
    weights, _ = greedy_weights(predictions, true_array(validation_labels, task), task, size)
    return list(weights)


def read_predictions(path: Path, task: Task, labels: pd.Series) -> np.ndarray | None:
    """The predictions of the submission at `path` for the ids of `labels`, in their order (None if invalid).
    For label metrics: the class probabilities written beside it (an (n, k) matrix over `task.classes`) when
    they are usable and agree with the labels, else the labels."""
    aligned, problems = check_submission(path, task=task, expected_ids=labels.index)
    if aligned is None or problems:
        return None
    predicted = prediction_array(aligned, task)
    if prediction_kind(task) != "label" or not task.classes:
        return predicted
    probabilities = class_probabilities(path.with_name(PROBABILITIES_NAME), task, labels.index)
    if probabilities is None:
        return predicted
    likeliest = np.asarray(task.classes, dtype=object)[np.argmax(probabilities, axis=1)]
    return probabilities if np.mean(likeliest == predicted) >= AGREEMENT else predicted


def class_probabilities(path: Path, task: Task, ids: pd.Index) -> np.ndarray | None:
    """The (n, k) class probabilities in `path` for `ids` (in their order), columns in the order of
    `task.classes`, rows normalised; None when the file is absent or not usable (an id or a class missing,
    a value that is not a probability)."""
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if task.id_column not in table.columns or not task.classes:
        return None
    columns = [c for c in table.columns if c != task.id_column]
    named = to_classes(pd.Series(columns, dtype=object), task.classes)
    if named.isna().any() or named.duplicated().any() or len(columns) != len(task.classes):
        return None
    by_class = dict(zip(named.tolist(), columns))
    expected = pd.Series(list(ids), dtype=object)
    keys = id_keys(table[task.id_column].astype(object), expected)
    order = pd.Index(keys.to_numpy()).get_indexer(id_keys(expected, expected).to_numpy())
    if (order < 0).any() or not pd.Index(keys.to_numpy()).is_unique:
        return None
    values = table.iloc[order][[by_class[c] for c in task.classes]].apply(pd.to_numeric, errors="coerce")
    matrix = values.to_numpy(dtype=float)
    sums = matrix.sum(axis=1, keepdims=True)
    if not np.isfinite(matrix).all() or (matrix < 0).any() or (matrix > 1).any() or (sums <= 0).any():
        return None
    return matrix / sums


def build_ensemble(task: Task, run_dir: Path, *, validation_labels: pd.Series, confirmed: dict[int, Score],
                   order: list[Attempt], folds: int, seed: int, size: int = DEFAULT_SIZE) -> Ensemble | None:
    """The ensemble of the confirmed attempts (weights fitted on the validation rows, scored on the folds), or
    None when fewer than two attempts were confirmed or the weights pick one attempt only."""
    candidates = [a for a in order if a.index in confirmed]
    if len(candidates) < 2 or folds < 2:
        return None
    y_valid = true_array(validation_labels, task)
    predictions = validation_predictions(task, run_dir, validation_labels, candidates)
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
        blended = blend([a for a in arrays if a is not None], list(weights.values()), kind, task.classes)
        scores.append(_score(task, true_array(fold.labels, task), blended).value)
    return scores
