"""How the final submission file is written: the sample submission's header, id order and spelling, and the
spelling of class labels, so that the file a run delivers is the file a competition accepts.

Scope: `SubmissionFormat` (a value: columns, id texts, label spellings, line ending, where it came from) and
`submission_format`, which reads it from a task's sample submission as written (its cells as text) or, without
a usable sample, makes the harness's own (the test table's order, labels spelled as pandas reads them from
train). Nothing here writes or checks a file (see `grading.formatting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabcoder.task.ids import id_keys, text_key

#: The spellings of a boolean label a sample may use, by style: the one for True, the one for False.
_BOOL_STYLES = (("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("1", "0"), ("1.0", "0.0"))


@dataclass(frozen=True)
class SubmissionFormat:
    """The final file's layout. `ids` are the id texts in the sample's row order (None: the test table's order,
    each id as its text); `labels` maps a class (as `text_key` gives it) to how the file spells it."""

    columns: list[str]
    ids: list[str] | None = field(default=None, repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    line_end: str = "\n"
    source: str = "the harness"

    def spell(self, label: Any) -> str:
        """How a class label is written in the file."""
        key = text_key(label)
        return self.labels.get(str(key), str(key))

    def to_dict(self) -> dict:
        """For run.json: everything but the ids (the test table's; a run folder keeps it in best/input)."""
        return {"columns": list(self.columns), "labels": dict(self.labels), "line_end": self.line_end,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> SubmissionFormat:
        return cls(columns=[str(c) for c in data["columns"]], labels={str(k): str(v) for k, v in
                                                                      data.get("labels", {}).items()},
                   line_end=str(data.get("line_end", "\n")), source=str(data.get("source", "the harness")))


def submission_format(*, columns: list[str], id_column: str, classes: list | None, test: pd.DataFrame | None,
                      sample: pd.DataFrame | None, cells: pd.DataFrame | None, line_end: str,
                      sample_name: str) -> SubmissionFormat:
    """The format of the final file. `sample` is the sample submission the task uses (None when it has none or
    it did not fit), `cells` the same table as written (None for a non-text file)."""
    usable = sample is not None and cells is not None and list(cells.columns) == list(sample.columns) \
        and len(cells) == len(sample) and test is not None
    if not usable:
        return SubmissionFormat(columns=list(columns), labels=_label_spellings(classes, None))
    assert test is not None and cells is not None  # for the type checker: `usable` says so
    return SubmissionFormat(
        columns=list(cells.columns),
        ids=_sample_ids(cells[id_column], test[id_column]),
        labels=_label_spellings(classes, cells[[c for c in cells.columns if c != id_column]]),
        line_end=line_end, source=sample_name)


def _sample_ids(written: pd.Series, test_ids: pd.Series) -> list[str] | None:
    """The sample's id texts when each names one test id (the task's checks made sure it does)."""
    keys = id_keys(written, test_ids)
    return written.str.strip().tolist() if keys.notna().all() and keys.is_unique else None


def _label_spellings(classes: list | None, cells: pd.DataFrame | None) -> dict[str, str]:
    """class key -> spelling: a boolean in the sample's style (True/False, true/false, TRUE/FALSE, 1/0), any other
    class as pandas reads it from train (which is how the sample and the grader write it)."""
    if not classes:
        return {}
    style = None
    if all(isinstance(c, (bool, np.bool_)) for c in classes) and cells is not None:
        written = (v.strip() for column in cells.columns for v in cells[column].unique() if isinstance(v, str))
        style = next((pair for w in written for pair in _BOOL_STYLES if w in pair), None)
    spellings = {}
    for label in classes:
        key = str(text_key(label))
        spellings[key] = key if style is None else style[0] if bool(label) else style[1]
    return spellings
