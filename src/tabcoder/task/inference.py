"""Settle a task's target, id column, task type, classes, positive label and metric: each as the arguments
or the layout's settings give it, checked, else inferred from the tables and the description (the metric
also from the kind of value the sample submission holds, see `output_kind`).

Scope: every decision is recorded in `Sources.notes`; a given value that cannot be right raises `TaskError`
(or `ConfigError` for an unknown task type or a metric that does not fit). Settling the id may add a
numbering column, and settling a class target may turn whole floats into ints; nothing else in the tables
changes here (see `checks` for rows and columns dropped or refused).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from tabcoder.errors import ConfigError, TaskError
from tabcoder.metrics import TASK_TYPES, default_metric, get_metric, metric_from_text, metrics_for
from tabcoder.task.ids import NUMBER
from tabcoder.task.layouts import Sources
from tabcoder.task.output_kind import (
    OutputKind,
    description_kind,
    fits,
    metric_for_kind,
    metric_suggestion,
    sample_kind,
)
from tabcoder.task.wording import did_you_mean, listed

_ID_NAMES = ("id", "ID", "Id", "index")
_ID_SUFFIX = re.compile(r"^(?:id|ID|Id)$|_(?:id|ID|Id)$|[a-z0-9](?:Id|ID)$")
_POSITIVE_WORDS = {"1", "1.0", "true", "yes", "y", "positive", "pos"}
_MAX_CLASSES_INFERRED = 20


def setting(explicit: Any, sources: Sources, key: str) -> tuple[Any, str] | None:
    """(value, where from) of a setting: the explicit argument first, then the layout's; None when neither gives it."""
    if explicit is not None:
        return explicit, "the arguments"
    return sources.settings.get(key)


def resolve_target(sources: Sources, given: tuple[Any, str] | None) -> str:
    """The target column: as given, else the one the sample submission predicts, else the only train column
    the test table lacks."""
    train, test, notes = sources.train, sources.test, sources.notes
    if given is not None:
        target, origin = given
        if target not in train.columns:
            raise TaskError(
                f"target {target!r} ({origin}) is not a column of {sources.train_name}."
                f"{did_you_mean(target, train.columns)} "
                f"Columns: {listed(train.columns)}"
            )
        notes.append(f"target {target!r} from {origin}")
        return target
    candidates = _sample_submission_targets(sources)
    if len(candidates) == 1:
        notes.append(f"target {candidates[0]!r} from {sources.sample_name}")
        return candidates[0]
    if test is not None:
        missing = [c for c in train.columns if c not in test.columns]
        if len(missing) == 1:
            notes.append(f"target {missing[0]!r}: the only {sources.train_name} column missing "
                         f"from {sources.test_name}")
            return missing[0]
        candidates = candidates or missing
    hint = f" Candidates: {listed(candidates)}." if candidates else ""
    raise TaskError(
        f"cannot tell which column of {sources.train_name} is the target.{hint} "
        f"Pass --target NAME (or set target in task.toml). Columns: {listed(train.columns)}"
    )


def _sample_submission_targets(sources: Sources) -> list[str]:
    sample, test = sources.sample_submission, sources.test
    if sample is None:
        return []
    return [c for c in sample.columns[1:] if c in sources.train.columns and (test is None or c not in test.columns)]


def settle_id(sources: Sources, given: tuple[Any, str] | None, target: str) -> tuple[str, bool]:
    """(id column, whether it was generated), checked to be complete and unique in train and test."""
    resolved = _resolve_id(sources, given, target)
    generated = resolved is None
    name = _generate_id(sources) if resolved is None else resolved
    _check_ids(sources.train, name, sources.train_name)
    if sources.test is not None:
        _check_ids(sources.test, name, sources.test_name)
    return name, generated


def _resolve_id(sources: Sources, given: tuple[Any, str] | None, target: str) -> str | None:
    """The id column, or None when one must be generated."""
    train, test, notes = sources.train, sources.test, sources.notes
    if given is not None:
        column, origin = given
        _check_given_id(sources, column, origin, target)
        notes.append(f"id column {column!r} from {origin}")
        return column
    sample = sources.sample_submission
    if sample is not None and test is not None:
        first = sample.columns[0]
        if first != target and first in test.columns and first in train.columns:
            notes.append(f"id column {first!r}: first column of {sources.sample_name}")
            return first
    candidates = [c for c in train.columns if c != target and _looks_like_id(c, train, test)]
    named = [c for c in candidates if c in _ID_NAMES] or [c for c in candidates if _ID_SUFFIX.search(c)]
    if len(named) == 1:
        notes.append(f"id column {named[0]!r}: named like an id and unique in every table")
        return named[0]
    return None


def _check_given_id(sources: Sources, column: Any, origin: str, target: str) -> None:
    for frame, name in ((sources.train, sources.train_name), (sources.test, sources.test_name)):
        if frame is not None and column not in frame.columns:
            raise TaskError(
                f"id column {column!r} ({origin}) is not a column of {name}.{did_you_mean(column, frame.columns)} "
                f"Columns: {listed(frame.columns)}. Pass an existing column, or none to number the rows"
            )
    if column == target:
        raise TaskError(f"id column {column!r} ({origin}) is also the target; the id must be a different column")


def _looks_like_id(column: str, train: pd.DataFrame, test: pd.DataFrame | None) -> bool:
    if column not in _ID_NAMES and not _ID_SUFFIX.search(column):
        return False
    frames = [train] + ([test] if test is not None else [])
    if any(column not in f.columns for f in frames):
        return False
    return all(f[column].notna().all() and f[column].is_unique and not pd.api.types.is_float_dtype(f[column])
               for f in frames)


def _generate_id(sources: Sources) -> str:
    taken = set(sources.train.columns) | (set(sources.test.columns) if sources.test is not None else set())
    name = "id" if "id" not in taken else "row_id"
    while name in taken:
        name += "_"
    n_train = len(sources.train)
    sources.train.insert(0, name, np.arange(n_train))
    if sources.test is not None:
        sources.test.insert(0, name, np.arange(n_train, n_train + len(sources.test)))
    sources.notes.append(f"no id column: added {name!r} numbering the rows (train 0..{n_train - 1}, test continuing)")
    return name


def _check_ids(frame: pd.DataFrame, column: str, file_name: str) -> None:
    ids = frame[column]
    n_missing = int(ids.isna().sum())
    if n_missing:
        raise TaskError(f"{n_missing} rows of {file_name} have no id in column {column!r}; every row needs an id "
                        "(fill them, or pass another --id)")
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        examples = listed(pd.unique(duplicated)[:5])
        raise TaskError(
            f"column {column!r} of {file_name} has {duplicated.nunique()} duplicated id value(s) (e.g. {examples}); "
            "ids must be unique: pass another --id, or remove it so that rows are numbered"
        )


def settle_task_type(sources: Sources, given: tuple[Any, str] | None, target: str) -> tuple[str, list | None]:
    """(task type, sorted classes or None for regression)."""
    y = sources.train[target]
    if given is not None:
        kind = _check_task_type(y, *given, target)
        sources.notes.append(f"task type {kind!r} from {given[1]}")
    else:
        kind = _infer_task_type(y, sources.notes)
    if kind == "regression":
        return kind, None
    _normalise_class_dtype(sources, target)
    classes = _sorted_labels(sources.train[target])
    if len(classes) < 2:
        raise TaskError(f"the target {target!r} has a single class ({classes[0]!r}) in "
                        f"{sources.train_name}: there is nothing to learn; check the target column")
    return kind, classes


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _integer_valued(series: pd.Series) -> bool:
    values = series.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _infer_task_type(y: pd.Series, notes: list[str]) -> str:
    n_distinct = y.nunique()
    if not _is_numeric(y):
        why = f"target is {y.dtype}"
    elif _integer_valued(y) and (n_distinct == 2 or (n_distinct <= _MAX_CLASSES_INFERRED and n_distinct * 4 <= len(y))):
        why = f"integer target with {n_distinct} distinct values"
    else:
        notes.append(f"task type 'regression': numeric target with {n_distinct} distinct values")
        return "regression"
    task_type = "binary" if n_distinct == 2 else "multiclass"
    notes.append(f"task type {task_type!r}: {why}, {n_distinct} classes")
    return task_type


def _check_task_type(y: pd.Series, task_type: Any, origin: str, target: str) -> str:
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task type {task_type!r} ({origin}); use one of: {', '.join(TASK_TYPES)}")
    if task_type == "regression" and not _is_numeric(y):
        example = y.dropna().iloc[0]
        raise TaskError(
            f"task type 'regression' ({origin}) needs a numeric target, but {target!r} holds {y.dtype} values "
            f"such as {example!r}; use task type binary or multiclass, or another target"
        )
    if task_type != "regression" and _is_numeric(y) and not _integer_valued(y):
        raise TaskError(
            f"task type {task_type!r} ({origin}) needs class labels, but {target!r} holds non-integer numbers "
            f"({y.nunique()} distinct values); use task type regression"
        )
    n_distinct = y.nunique()
    if task_type == "binary" and n_distinct != 2:
        raise TaskError(
            f"task type 'binary' ({origin}) needs exactly 2 classes, but {target!r} has {n_distinct}: "
            f"{listed(_sorted_labels(y), 10)}; use task type {'multiclass' if n_distinct > 2 else 'a different target'}"
        )
    return task_type


def _sorted_labels(y: pd.Series) -> list:
    values = pd.unique(y.dropna()).tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _normalise_class_dtype(sources: Sources, target: str) -> None:
    """Float class labels that are whole numbers (e.g. after missing targets were dropped) become ints."""
    y = sources.train[target]
    if pd.api.types.is_float_dtype(y) and _integer_valued(y):
        sources.train[target] = y.astype("int64")
        sources.notes.append(f"target {target!r} holds whole numbers stored as floats: converted to integers")


def settle_positive_label(sources: Sources, given: tuple[Any, str] | None, target: str, kind: str,
                          classes: list | None) -> Any:
    """The positive class of a binary task (None for any other, where a given label is ignored with a note)."""
    if kind == "binary":
        return _resolve_positive_label(sources.train[target], classes or [], given, sources)  # a binary task has classes
    if given is not None:
        sources.notes.append(f"positive label {given[0]!r} ({given[1]}) ignored: the task is {kind}")
    return None


def _resolve_positive_label(y: pd.Series, classes: list, given: tuple[Any, str] | None, sources: Sources) -> Any:
    notes = sources.notes
    if given is not None:
        value, origin = given
        label = _match_label(value, classes)
        if label is None:
            raise TaskError(f"positive label {value!r} ({origin}) is not a class of the target; "
                            f"the classes are {listed(map(repr, classes))}")
        notes.append(f"positive label {label!r} from {origin}")
        return label
    named = _labels_named_in(sources.description, classes)
    if len(named) == 1:
        notes.append(f"positive label {named[0]!r} from {sources.description_name or 'the description'}")
        return named[0]
    conventional = [c for c in classes if str(c).strip().lower() in _POSITIVE_WORDS]
    if len(conventional) == 1:
        notes.append(f"positive label {conventional[0]!r} (conventional positive value)")
        return conventional[0]
    counts = y.value_counts()
    minority = min(classes, key=lambda c: (counts.get(c, 0), -classes.index(c)))
    notes.append(f"positive label {minority!r}: the minority class")
    return minority


def _match_label(value: Any, classes: list) -> Any:
    """The class equal to `value`: exactly, else as numbers, else as stripped text (then case-insensitive)."""
    tests = (
        lambda v, c: v == c and isinstance(v, bool) == isinstance(c, bool),
        lambda v, c: _as_number(v) is not None and _as_number(v) == _as_number(c),
        lambda v, c: str(v).strip() == str(c).strip(),
        lambda v, c: str(v).strip().lower() == str(c).strip().lower(),
    )
    for same in tests:
        matches = [c for c in classes if same(value, c)]
        if len(matches) == 1:
            return matches[0]
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or (isinstance(value, str) and not NUMBER.match(value.strip())):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _labels_named_in(text: str, classes: list) -> list:
    """Classes named as "class X" or "= X" in the text."""
    named = []
    for c in classes:
        label = re.escape(str(c))
        pattern = rf"(?:\bclass\s+|={{1,2}}\s*)[`'\"]?{label}(?![\w])"
        if re.search(pattern, text or "", flags=re.IGNORECASE):
            named.append(c)
    return named


def resolve_metric(given: tuple[Any, str] | None, task_type: str, y: pd.Series, sources: Sources, *,
                   classes: list | None = None, target: str | None = None, id_column: str | None = None) -> str:
    """The metric: as given (checked to fit the task), else the one the description names, else the one the
    kind of value the sample submission holds calls for (labels, probabilities, one column per class), else
    the one the description's phrases about the output call for, else the default. One note says which
    source decided and what the others (sample, phrases) said; `id_column` is None when the id was generated
    (the sample is then not read), and regression tasks read neither."""
    notes = sources.notes
    kinds = _output_kinds(task_type, sources, classes, target, id_column)
    if given is not None:
        value, origin = given
        spec = get_metric(value)
        if task_type not in spec.task_types:
            raise ConfigError(
                f"metric {spec.name!r} ({origin}) does not apply to a {task_type} task; "
                f"use one of: {', '.join(metrics_for(task_type))}"
            )
        _check_rmsle_targets(spec.name, y, origin)
        notes.append(f"metric {spec.name!r} from {origin}{_others_said(spec.name, task_type, kinds)}")
        return spec.name
    found = metric_from_text(sources.description, task_type)
    if found == "rmsle" and (y < 0).any():
        notes.append("the description names rmsle but the target has negative values: not using it")
        found = None
    if found is not None:
        where = sources.description_name or "the description"
        notes.append(f"metric {found!r} from {where}{_others_said(found, task_type, kinds)}")
        return found
    if kinds:
        decider, others = kinds[0], kinds[1:]
        metric = metric_for_kind(decider, task_type) or default_metric(task_type)
        said = str(decider)
        for other in others:
            if (other.kind == "label") == (decider.kind == "label"):
                said += f" and {other}"
            else:
                said += f"; {other}, but {decider.source} decides"
        no_metric = "the description names no metric" if sources.description.strip() else "there is no description"
        notes.append(f"metric {metric!r}: {said}; {no_metric}")
        return metric
    metric = default_metric(task_type)
    notes.append(f"metric {metric!r}: the default for {task_type} tasks")
    return metric


def _output_kinds(task_type: str, sources: Sources, classes: list | None, target: str | None,
                  id_column: str | None) -> list[OutputKind]:
    """What the sample submission, then the description's phrases, ask a submission to hold (classification)."""
    if task_type == "regression":
        return []
    kinds = []
    if target is not None:
        kinds.append(sample_kind(sources, id_column=id_column, target=target, task_type=task_type, classes=classes))
    kinds.append(description_kind(sources.description, task_type=task_type, classes=classes,
                                  source=sources.description_name))
    return [k for k in kinds if k is not None]


def _others_said(metric: str, task_type: str, kinds: list[OutputKind]) -> str:
    """'; <sample and phrases that fit>, which fit(s)' and '; <those that do not>, which would fit a ... metric
    such as ...: the submission follows the metric', for a metric that a setting or the description named."""
    spec = get_metric(metric)
    agree = [k for k in kinds if fits(k, spec)]
    disagree = [k for k in kinds if not fits(k, spec)]
    text = ""
    if agree:
        text += f"; {' and '.join(map(str, agree))}, which {'fits' if len(agree) == 1 else 'fit'}"
    if disagree:
        text += (f"; {' and '.join(map(str, disagree))}, which would fit "
                 f"{metric_suggestion(disagree[0], task_type)}: the submission follows the metric")
    return text


def _check_rmsle_targets(metric: str, y: pd.Series, origin: str) -> None:
    if metric == "rmsle" and (y < 0).any():
        raise ConfigError(
            f"metric 'rmsle' ({origin}) needs non-negative targets, but {int((y < 0).sum())} train targets are "
            "negative; use rmse or mae"
        )
