"""The baseline: a careful generic pipeline the harness writes for every task and runs itself as attempt 0.

Scope: `BaselinePlan`, what the data profile decides for the baseline script (`prompts/example.py.j2`):
which text columns to drop because they hold a different value in nearly every row (names, ticket or cabin
codes: as categories they teach a model nothing, one-hot encoded they make thousands of columns), which
text columns hold dates (expanded to year, month, day and weekday), and whether a regression target is
fitted on a log scale (positive and skewed, or an rmsle metric). Everything else the script decides from
the data when it runs: text columns with few levels become native categories of a HistGradientBoosting
model, text with many levels becomes the share of rows holding each value.

The same script is the example the prompt shows and the first script an improvement step edits, so what
the harness contributed is one attempt with one score, never mixed into the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tabcoder.profile import DataProfile
from tabcoder.task import Task

#: A text column with more distinct values than this share of its non-missing rows is near-unique.
NEAR_UNIQUE_SHARE = 0.5
#: ... and at least this many distinct values (a 10-row table of 8 names is not the case to guard).
NEAR_UNIQUE_MIN = 20
#: Text columns with more levels than this are encoded by frequency (HistGradientBoosting takes at most
#: 255 categories per feature).
MAX_CATEGORIES = 250
#: A positive regression target with a larger sample skewness is fitted on log1p.
SKEWED = 1.0
#: The baseline's model: HistGradientBoosting{kind}(...), also the "gradient boosting" draft approach.
BASELINE_ESTIMATOR = "HistGradientBoosting{kind}(random_state=0)"


@dataclass(frozen=True)
class BaselinePlan:
    """What the profile decides for the baseline script; `reasons` say why, in words for the report."""

    drop: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    log_target: bool = False
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def from_profile(cls, task: Task, profile: DataProfile) -> BaselinePlan:
        drop, dates, reasons = [], [], []
        for column in profile.columns:
            present = round(profile.n_train * (1.0 - column.missing))
            if column.kind == "date":
                dates.append(column.name)
            elif column.kind in ("categorical", "text") and column.distinct >= NEAR_UNIQUE_MIN and \
                    column.distinct > NEAR_UNIQUE_SHARE * present:
                drop.append(column.name)
                reasons.append(f"dropped {column.name!r}: {column.distinct} distinct values in {present} rows")
            elif present == 0:
                drop.append(column.name)
                reasons.append(f"dropped {column.name!r}: no value in any row")
        if dates:
            reasons.append("dates expanded to year, month, day and weekday: " + ", ".join(map(repr, dates)))
        log_target = False
        if task.task_type == "regression" and profile.target_min is not None and profile.target_min >= 0:
            skew = profile.target_skew or 0.0
            if task.metric == "rmsle":
                log_target = True
                reasons.append("target fitted on log1p: the metric is on a log scale")
            elif skew > SKEWED:
                log_target = True
                reasons.append(f"target fitted on log1p: positive and skewed (skewness {skew:.2f})")
        return cls(drop, dates, log_target, reasons)

    def estimator(self, task: Task) -> str:
        """The constructor call of the baseline's model."""
        return BASELINE_ESTIMATOR.format(kind="Regressor" if task.task_type == "regression" else "Classifier")
