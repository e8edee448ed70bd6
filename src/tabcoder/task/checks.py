"""Make a task's tables agree with its settled target and id: no answers in the test table, no rows without
a target, the same feature columns in train and test, and a sample submission that fits.

Scope: `submission_columns` (the columns a submission must have), and the checks and drops `load_task` runs
once target and id are known; each drop is noted, each mismatch raises `TaskError` saying how to fix it.
Nothing here infers a setting (see `inference`).
"""

from __future__ import annotations

import pandas as pd

from tabcoder.errors import TaskError
from tabcoder.metrics import get_metric
from tabcoder.task.ids import id_keys
from tabcoder.task.layouts import Sources
from tabcoder.task.output_kind import class_columns
from tabcoder.task.wording import listed


def drop_empty_target_from_test(sources: Sources, target: str) -> None:
    """Drop a target column left empty in the test table; refuse one that holds values."""
    test = sources.test
    if test is None or target not in test.columns:
        return
    if test[target].notna().any():
        raise TaskError(f"{sources.test_name} contains the target column {target!r} with values; "
                        "remove it from the test file (the test set must not hold the answers)")
    sources.test = test.drop(columns=[target])
    sources.notes.append(f"dropped the empty target column {target!r} from {sources.test_name}")


def check_test_columns(sources: Sources, id_column: str, target: str) -> None:
    """TaskError unless the test table has exactly the columns of train but the target."""
    test = sources.test
    if test is None:
        return
    expected = [c for c in sources.train.columns if c != target]
    missing = [c for c in expected if c not in test.columns]
    extra = [c for c in test.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from {sources.test_name}: {listed(missing)}")
        if extra:
            parts.append(f"in {sources.test_name} but not in {sources.train_name}: {listed(extra)}")
        raise TaskError(
            f"the columns of {sources.test_name} do not match the feature columns of {sources.train_name} "
            f"({'; '.join(parts)}). The test file must hold the id column {id_column!r} and the same features"
        )


def drop_missing_target(sources: Sources, target: str) -> None:
    """Drop the train rows without a target; refuse a target that is empty everywhere."""
    missing = sources.train[target].isna()
    if missing.all():
        raise TaskError(f"the target {target!r} is empty in every row of {sources.train_name}; "
                        "fill it, or pass the right column with --target")
    if missing.any():
        sources.train = sources.train.loc[~missing].reset_index(drop=True)
        sources.notes.append(f"dropped {int(missing.sum())} {sources.train_name} rows with a missing target")


def submission_columns_for(id_column: str, target: str, task_type: str, metric: str, classes: list | None,
                           sample: pd.DataFrame | None = None) -> list[str]:
    """The id, then one probability column per class for a multiclass metric on probabilities, else the target.

    The class columns follow `sample` (the raw sample submission, when it can be used) where its columns are
    the id and the class names in another order, so that a submission can match it exactly; else sorted."""
    if task_type == "multiclass" and get_metric(metric).needs_proba:
        ordered = class_columns(sample, id_column, classes)
        return [id_column, *(ordered or (str(c) for c in classes or []))]  # a multiclass task has classes
    return [id_column, target]


def check_sample_submission(sources: Sources, id_column: str, id_generated: bool,
                            submission_columns: list[str]) -> pd.DataFrame | None:
    """The sample submission when it fits the task; None (with a note) when it cannot be used as is."""
    sample, test, name = sources.sample_submission, sources.test, sources.sample_name
    if sample is None:
        return None
    if test is None or id_generated or id_column not in sample.columns:
        sources.notes.append(f"{name} ignored: it has no {id_column!r} column matching a test file")
        return None
    _check_sample_ids(sample, test, id_column, name, sources.test_name)
    names = [str(c) for c in sample.columns]  # a spreadsheet may name class columns 1, 2, 3 as numbers
    if names != submission_columns:
        sources.notes.append(f"{name} ignored: its columns ({listed(sample.columns)}) differ from the "
                             f"submission columns ({listed(submission_columns)})")
        return None
    return sample if list(sample.columns) == names else sample.set_axis(names, axis=1)


def _check_sample_ids(sample: pd.DataFrame, test: pd.DataFrame, id_column: str, name: str, test_name: str) -> None:
    test_ids = test[id_column]
    sample_keys = id_keys(sample[id_column], test_ids)
    test_keys = id_keys(test_ids, test_ids)
    missing = test_ids[~test_keys.isin(set(sample_keys))]
    extra = sample[id_column][~sample_keys.isin(set(test_keys))]
    duplicated = sample[id_column][sample_keys.duplicated()]
    if len(missing) or len(extra) or len(duplicated):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} {test_name} ids are missing from it (e.g. {listed(missing.head(5))})")
        if len(extra):
            parts.append(f"{len(extra)} of its ids are not in {test_name} (e.g. {listed(extra.head(5))})")
        if len(duplicated):
            parts.append(f"{len(duplicated)} ids appear twice (e.g. {listed(duplicated.head(5))})")
        raise TaskError(
            f"the ids of {name} do not match {test_name}: {'; '.join(parts)}. "
            f"Fix {name} so that it has exactly one row per test id, or delete it"
        )
