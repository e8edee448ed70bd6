"""Who wrote the chosen solution, and by how much it beats the harness's baseline.

Scope: `Attribution`, built once a run has chosen and refit its final attempt: whether the solution is the
harness's baseline script (attempt 0) or a script the model wrote, who named the change it made (the
harness's list of generic ideas, or the model), and its gain over the baseline on the validation rows and
on the confirmation folds (direction-aware: positive is better). Its `text` is the one sentence the
progress lines, the report and `run.json` show, so a score is never passed off as the model's when the
harness's script earned it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tabcoder.ensemble import Ensemble
from tabcoder.journal import Attempt, Journal
from tabcoder.metrics import Score


@dataclass(frozen=True)
class Attribution:
    chosen: int | None  # the final attempt's index
    written_by: str | None  # "model" | "baseline" | None (nothing chosen)
    idea_source: str | None  # who named the change the chosen attempt made: "harness" | "model" | None
    metric: str
    gain_validation: float | None  # chosen minus baseline on the validation rows (positive: better)
    gain_folds: float | None  # the same on the mean of the confirmation folds, when both were confirmed
    baseline_validation: float | None
    baseline_folds: float | None
    beat_baseline: bool | None  # a model attempt that beats the baseline (folds when confirmed, else validation)
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def attribute(chosen: Attempt | None, journal: Journal, confirmed: dict[int, Score], *,
              baseline_enabled: bool) -> Attribution:
    """The attribution of `chosen` (the final attempt, None when nothing was valid), given the journal and the
    confirmation folds' mean scores by attempt index."""
    baseline = journal.baseline()
    metric = chosen.metric if chosen is not None else (baseline.metric if baseline is not None else "")
    base_valid = baseline.score if baseline is not None and baseline.valid else None
    base_folds = confirmed.get(0) if baseline is not None else None
    base_folds_value = None if base_folds is None else base_folds.value
    if chosen is None:
        return Attribution(None, None, None, metric, None, None, base_valid, base_folds_value, None,
                           "chosen: nothing; no attempt wrote a valid submission")
    if chosen.kind == "baseline":
        others = [a for a in journal.attempts if a.valid and a.kind != "baseline"]
        where = "on the confirmation folds" if len(confirmed) >= 2 else "on the validation rows"
        why = f"no model attempt beat it {where}" if others else "no model attempt wrote a valid submission"
        return Attribution(0, "baseline", "harness", metric, 0.0, 0.0 if base_folds is not None else None,
                           base_valid, base_folds_value, False,
                           f"chosen: the baseline (attempt 0, written by the harness); {why}")
    kind = {"draft": "a draft" if chosen.parent is None else f"a draft made as an edit of attempt {chosen.parent}",
            "repair": f"a repair of attempt {chosen.parent}",
            "improve": f"a change to attempt {chosen.parent}"}.get(chosen.kind, chosen.kind)
    named = {"harness": "the change named by the harness's idea list",
             "model": "the change of its own choice"}.get(chosen.idea_source or "", "")
    written = f"chosen: attempt {chosen.index}, written by the model ({kind}{', ' + named if named else ''})"
    gain_valid = chosen.gain if chosen.gain is not None else (
        None if baseline is None else chosen.score_value.gain_over(baseline.score_value))
    gain_folds = None
    if chosen.index in confirmed and base_folds is not None:
        gain_folds = confirmed[chosen.index].gain_over(base_folds)
    if gain_valid is None:
        reason = "it was turned off (--no-baseline)" if not baseline_enabled else "it did not write a valid submission"
        return Attribution(chosen.index, "model", chosen.idea_source, metric, None, None, base_valid,
                           base_folds_value, None, f"{written}; no baseline to compare with: {reason}")
    if gain_folds is not None:
        measure = f"{_signed(gain_folds)} {metric} over the baseline on the confirmation folds " \
                  f"({_signed(gain_valid)} on the validation rows)"
        beat = gain_folds > 0
    else:
        measure = f"{_signed(gain_valid)} {metric} over the baseline on the validation rows"
        beat = gain_valid > 0
    return Attribution(chosen.index, "model", chosen.idea_source, metric, gain_valid, gain_folds, base_valid,
                       base_folds_value, beat, f"{written}, {measure}")


def ensemble_attribution(ensemble: Ensemble, journal: Journal, single: Attribution, *,
                         greater_is_better: bool) -> Attribution:
    """The attribution of a chosen ensemble: its members, who wrote each, and its gain over the best single
    attempt (and over the baseline) on the confirmation folds. `single` is the best single attempt's."""
    by_index = {a.index: a for a in journal.attempts}
    writers = sorted({"the harness" if by_index[i].kind == "baseline" else "the model" for i in ensemble.members})
    spec_sign = 1.0 if greater_is_better else -1.0
    gain = None if ensemble.mean_folds is None or ensemble.best_single_folds is None else \
        spec_sign * (ensemble.mean_folds - ensemble.best_single_folds)
    over_base = None if ensemble.mean_folds is None or single.baseline_folds is None else \
        spec_sign * (ensemble.mean_folds - single.baseline_folds)
    text = (f"chosen: an ensemble of {ensemble.describe()} (written by {' and '.join(writers)}; weights fitted on "
            f"the validation rows)")
    if gain is not None:
        text += f", {_signed(gain)} {single.metric} over the best single attempt ({ensemble.best_single}) on the " \
                "confirmation folds"
    if over_base is not None:
        text += f", {_signed(over_base)} over the baseline"
    beat = None if over_base is None else over_base > 0
    return Attribution(None, "ensemble", None, single.metric, None, over_base, single.baseline_validation,
                       single.baseline_folds, beat, text)

