"""The `Task` value: a loaded, validated task as the rest of tabcoder sees it.

Scope: the fields and the two derived views (feature columns, metric spec). Nothing here reads files or
infers anything (see `load_task`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tabcoder.metrics import MetricSpec, get_metric
from tabcoder.task.submission_format import SubmissionFormat


@dataclass
class Task:
    """A loaded, validated task. `train` holds the id, features and target; `test` has no target."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame | None
    target: str
    id_column: str
    id_generated: bool
    task_type: str
    metric: str
    positive_label: Any
    classes: list | None
    description: str
    sample_submission: pd.DataFrame | None
    submission_columns: list[str]
    source: Path
    notes: list[str] = field(default_factory=list)
    submission_format: SubmissionFormat | None = None  # how the final file is written (None: the harness's own)

    @property
    def output_format(self) -> SubmissionFormat:
        """The final file's format: the sample's when the task has one, else the submission columns as they are."""
        return self.submission_format or SubmissionFormat(columns=list(self.submission_columns))

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.train.columns if c not in (self.target, self.id_column)]

    @property
    def metric_spec(self) -> MetricSpec:
        return get_metric(self.metric)
