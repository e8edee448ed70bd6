"""Choosing the final attempt: the best few by validation score are re-scored on K folds of all labelled
rows, and the one with the best mean fold score comes first, so a lucky split cannot decide alone. The
harness's baseline (attempt 0) is second in line, after the best, so that whenever the folds run, what a
run says about beating it is measured on them. With the ensemble on, the attempts that a blend fitted on the
validation rows picks come next (`_candidates`), so that the places on the folds go to what a blend can use
rather than to near-copies of the best.

Scope: `Selection` (the order in which attempts are tried for the final refit, and why) and `select`.
Confirmation runs as many candidates as the time plan leaves room for (`TimePlan.affordable`); with fewer
than two valid attempts, or `--confirm-folds 0`, the validation order stands. The refit is `tabcoder.final`'s.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass, field
from typing import cast

from tabcoder.ensemble import pick_members
from tabcoder.evaluation import copy_inputs, evaluate, prepare_workspace
from tabcoder.events import ConfirmStart, emit_event
from tabcoder.grading import make_folds
from tabcoder.journal import Attempt
from tabcoder.metrics import Score
from tabcoder.state import RunState


@dataclass
class Selection:
    """The order in which attempts are tried for the final refit, and why."""

    order: list[Attempt]
    method: str  # "folds" | "validation" | "none"
    note: str = ""
    folds: int = 0
    candidates: list[dict] = field(default_factory=list)
    confirmed: dict[int, Score] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": self.method, "note": self.note, "folds": self.folds, "candidates": self.candidates,
                "order": [a.index for a in self.order]}


def select(state: RunState) -> Selection:
    """Rank the valid attempts; confirm the best few on folds when there is time and something to choose."""
    ranked = state.journal.ranked()
    config = state.config
    if not ranked:
        return Selection([], "none", "no valid attempt")
    if config.confirm_folds == 0:
        return Selection(ranked, "validation", "confirmation is off (--confirm-folds 0)")
    if len(ranked) == 1:
        return Selection(ranked, "validation", "one valid attempt: nothing to choose between")
    order, picked = _candidates(state, ranked)
    top = state.plan.affordable(order)
    if len(top) < 2:
        return Selection(ranked, "validation", "not enough time left in the budget to confirm on folds")
    emit_event(state.emit, ConfirmStart(candidates=[a.index for a in top], folds=config.confirm_folds))
    scores = _score_on_folds(state, top)
    selection = _rank_confirmed(ranked, top, scores, config.confirm_folds)
    picked = [a for a in picked if a in top]
    if picked:
        selection.note += (f"; confirmed after the best and the baseline: attempt{'s' if len(picked) > 1 else ''} "
                           f"{', '.join(str(a.index) for a in picked)}, picked by a blend on the validation rows")
    return selection


def _candidates(state: RunState, ranked: list[Attempt]) -> tuple[list[Attempt], list[Attempt]]:
    """The order in which attempts are confirmed: the best, the baseline, then (with `--ensemble`) the
    attempts that a blend fitted on the validation rows picks, heaviest first, then the rest by validation.
    Without this, the few places go to the next best by validation, which after a search are often small
    edits of the best script and add nothing to a blend, while an attempt of another family that would is
    never confirmed and so never a member. The folds still decide: a member is only confirmed here.
    Returns the order and the attempts it moved forward."""
    order = _baseline_second(ranked)
    if not state.config.ensemble or len(order) <= 2:
        return order, []
    picked = pick_members(state.task, state.run_dir, validation_labels=state.split.labels, attempts=ranked,
                          size=state.config.ensemble_size)
    lead = order[:2] if order[1].kind == "baseline" else order[:1]
    by_index = {a.index: a for a in order}
    extra = [by_index[i] for i in picked if i in by_index and by_index[i] not in lead]
    if not extra or extra == order[len(lead):len(lead) + len(extra)]:
        return order, []
    rest = [a for a in order[len(lead):] if a not in extra]
    return lead + extra + rest, extra


def _baseline_second(ranked: list[Attempt]) -> list[Attempt]:
    """`ranked` with the harness's baseline moved to second place (after the best attempt), so that the
    baseline is confirmed on the same folds as the best model attempt and the two can be compared."""
    baseline = next((a for a in ranked if a.kind == "baseline"), None)
    if baseline is None or ranked[0] is baseline:
        return ranked
    rest = [a for a in ranked[1:] if a is not baseline]
    return [ranked[0], baseline] + rest


def _score_on_folds(state: RunState, top: list[Attempt]) -> dict[int, list[Score]]:
    """Run each candidate on every fold (in the pool); its fold scores, worst score for a failed fold."""
    folds = make_folds(state.task, k=state.config.confirm_folds, seed=state.config.seed)
    root = state.run_dir / "confirm"
    shutil.rmtree(root, ignore_errors=True)
    bases = [prepare_workspace(root / "folds" / str(number), train=fold.fit, test=fold.valid,
                               sample_submission=fold.sample_submission, description=state.task.description)
             for number, fold in enumerate(folds, 1)]
    futures = {}
    for attempt in top:
        for number, (fold, base) in enumerate(zip(folds, bases), 1):
            workspace = copy_inputs(base, root / f"{attempt.index:03d}-fold{number}")
            futures[attempt.index, number] = state.pool.submit(
                evaluate, state.script(cast(str, attempt.code)), workspace, task=state.task, labels=fold.labels,
                sandbox=state.sandbox, timeout=state.config.timeout)
    scores: dict[int, list[Score]] = {a.index: [] for a in top}
    worst = Score.worst(state.task.metric)
    for (index, _), future in futures.items():
        grade = future.result().grade
        scores[index].append(grade.score if grade is not None and grade.valid else worst)
    shutil.rmtree(root / "folds", ignore_errors=True)
    return scores


def _rank_confirmed(ranked: list[Attempt], top: list[Attempt], scores: dict[int, list[Score]],
                    folds: int) -> Selection:
    confirmed: dict[int, Score] = {}
    candidates = []
    for attempt in top:
        values = [s.value for s in scores[attempt.index]]
        numbers = [v for v in values if v is not None]
        ok = len(numbers) == len(values)  # every fold scored
        mean = Score(statistics.fmean(numbers) if ok else None, attempt.metric, attempt.greater_is_better)
        if ok:
            confirmed[attempt.index] = mean
        candidates.append({"attempt": attempt.index, "validation": attempt.score, "folds": values,
                           "mean": mean.value, "std": statistics.pstdev(numbers) if ok else None, "ok": ok})
    baseline = confirmed.get(next((a.index for a in top if a.kind == "baseline"), -1))
    for attempt, candidate in zip(top, candidates):  # each candidate's gain over the baseline on the same folds
        own = confirmed.get(attempt.index)
        candidate["gain_over_baseline"] = None if own is None or baseline is None else own.gain_over(baseline)
    good = sorted((a for a in top if a.index in confirmed), key=lambda a: confirmed[a.index], reverse=True)
    failed = [a for a in top if a.index not in confirmed]
    order = good + [a for a in ranked if a not in top] + failed
    note = (f"attempt {good[0].index} has the best mean over {folds} folds" if good
            else "every candidate failed on a fold: kept the validation order")
    if good and good[0] is not ranked[0]:
        note += f" (attempt {ranked[0].index} had the best validation score)"
    return Selection(order, "folds", note, folds, candidates, confirmed)
