"""A compact, truthful description of a task's data for the model: columns, dtypes as pandas sees them,
missing rates, cardinalities, ranges, the target's distribution and a few sample rows.

The profile is computed once per run from the rows the model will be given (the fit part of the split),
so every prompt of a run starts with the same text and llama.cpp can reuse it from its prefix cache.
Cell values and column names are cut (`clip`) wherever they are shown, so one huge cell cannot flood it.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import pandas as pd

from tabcoder.task import Task

#: Packages generated code may import, in the order shown to the model. Only installed ones are listed.
SANDBOX_PACKAGES = ("pandas", "numpy", "scikit-learn", "scipy", "lightgbm", "xgboost", "catboost")

MAX_LISTED_LEVELS = 8
#: Longest value shown in a listing of levels or classes (the feature table, the target summary).
MAX_VALUE_CHARS = 24
#: Longest cell shown in the sample rows or as a class label of the submission contract.
MAX_CELL_CHARS = 120
#: Longest column name shown.
MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    kind: str  # "numeric" | "categorical" | "boolean" | "text"
    missing: float
    distinct: int
    summary: str


@dataclass(frozen=True)
class DataProfile:
    n_train: int
    n_test: int
    columns: list[ColumnProfile]
    target_summary: str
    sample_rows: str
    target_min: float | None = None  # regression: the smallest target value
    target_skew: float | None = None  # regression: the target's sample skewness

    def table(self) -> str:
        """One line per feature column: name, dtype, kind, missing rate, distinct count, summary."""
        lines = []
        for c in self.columns:
            missing = f"{c.missing:.0%} missing" if c.missing else "no missing"
            name = clip(c.name, MAX_NAME_CHARS)
            lines.append(f"- {name} ({c.dtype}, {c.kind}; {missing}; {c.distinct} distinct): {c.summary}")
        return "\n".join(lines)


def installed_packages(names: tuple[str, ...] = SANDBOX_PACKAGES) -> list[str]:
    """`name version` for each of `names` installed in this environment (the sandbox uses the same one)."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """`text` when it has at most `limit` characters, else its first `limit` characters, an ellipsis and how many
    more there were: 'abc… (+49,999,880 chars)'. Slices before anything else, so a 50 MB cell costs nothing."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit:,} chars)"


def clip_repr(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """repr(value) for the prompt; a long string as the repr of its cut start and how many more characters there
    were: 'abc…' (+49,999,880 chars)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit] + '…'!r} (+{len(value) - limit:,} chars)"
    return clip(repr(value), limit)


def _short(value: object) -> str:
    return clip(str(value), MAX_VALUE_CHARS)


def _clip_cell(value: object) -> object:
    """A cell as the sample rows show it: text (or a container) cut to MAX_CELL_CHARS, anything else as is."""
    if isinstance(value, str):
        return clip(value, MAX_CELL_CHARS)
    if isinstance(value, (bytes, list, tuple, dict, set)):
        return clip(str(value), MAX_CELL_CHARS)
    return value


def sample_rows_text(sample: pd.DataFrame) -> str:
    """`sample` as CSV text for the prompt, its long cells and column names cut (`clip`); numbers, booleans and
    dates keep their columns' dtypes, so they print as in the full table."""
    shown = pd.DataFrame({i: _clip_column(sample.iloc[:, i]) for i in range(sample.shape[1])})
    shown.columns = [clip(str(c), MAX_NAME_CHARS) for c in sample.columns]
    return shown.to_csv(index=False).strip()


def _clip_column(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return series  # includes booleans
    return series.map(_clip_cell)


def _fmt_num(x: float) -> str:
    if pd.isna(x):
        return "nan"
    if float(x).is_integer() and abs(x) < 1e12:
        return str(int(x))
    return f"{x:.4g}"


def _profile_column(name: str, series: pd.Series) -> ColumnProfile:
    missing = float(series.isna().mean())
    distinct = int(series.nunique(dropna=True))
    dtype = str(series.dtype)
    if pd.api.types.is_bool_dtype(series):
        kind, summary = "boolean", f"true rate {series.mean():.2f}"
    elif pd.api.types.is_numeric_dtype(series):
        kind = "numeric"
        s = series.dropna()
        if s.empty:
            summary = "all missing"
        else:
            summary = (
                f"min {_fmt_num(s.min())}, median {_fmt_num(s.median())}, max {_fmt_num(s.max())}"
            )
    else:
        counts = series.value_counts(dropna=True)
        avg_len = series.dropna().astype(str).str.len().mean() if distinct else 0
        kind = "text" if distinct > 50 and avg_len > 30 else "categorical"
        if kind == "categorical" and distinct > 1 and _looks_like_dates(series):
            kind = "date"
        top = ", ".join(f"{_short(v)} ({n})" for v, n in counts.head(MAX_LISTED_LEVELS).items())
        more = f", … {distinct - MAX_LISTED_LEVELS} more" if distinct > MAX_LISTED_LEVELS else ""
        summary = f"values {top}{more}"
    return ColumnProfile(name, dtype, kind, missing, distinct, summary)


_DATE_SHAPE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$"


def _looks_like_dates(series: pd.Series, sample: int = 200) -> bool:
    """True when (nearly) every one of up to `sample` non-missing values is a date such as 2021-03-04 or
    04/03/2021 10:30 (numbers with separators, and pandas can read them)."""
    values = series.dropna().astype(str)
    values = values.sample(n=min(sample, len(values)), random_state=0) if len(values) else values
    if values.empty or values.str.match(_DATE_SHAPE).mean() < 0.95:
        return False
    return bool(pd.to_datetime(values, errors="coerce", format="mixed").notna().mean() >= 0.95)


def _target_summary(task: Task, y: pd.Series) -> str:
    if task.task_type == "regression":
        s = y.dropna()
        return (
            f"numeric: min {_fmt_num(s.min())}, mean {_fmt_num(s.mean())}, median {_fmt_num(s.median())}, "
            f"max {_fmt_num(s.max())}, std {_fmt_num(s.std())}"
        )
    counts = y.value_counts()
    shares = ", ".join(f"{_short(v)}: {n} ({n / len(y):.0%})" for v, n in counts.items())
    return f"{len(counts)} classes: {shares}"


def profile_task(task: Task, train: pd.DataFrame, test: pd.DataFrame | None, *, sample_rows: int = 3,
                 seed: int = 0) -> DataProfile:
    """Profile `train` (the rows the model's code will see as input/train.csv) for `task`."""
    features = [c for c in train.columns if c not in (task.target, task.id_column)]
    columns = [_profile_column(c, train[c]) for c in features]
    sample = train.sample(n=min(sample_rows, len(train)), random_state=seed)
    rows = sample_rows_text(sample)
    target_min = target_skew = None
    if task.task_type == "regression":
        y = pd.to_numeric(train[task.target], errors="coerce").dropna()
        if len(y) > 2:
            target_min, target_skew = float(y.min()), float(y.skew())
    return DataProfile(
        n_train=len(train),
        n_test=0 if test is None else len(test),
        columns=columns,
        target_summary=_target_summary(task, train[task.target]),
        sample_rows=rows,
        target_min=target_min,
        target_skew=None if target_skew is None or pd.isna(target_skew) else target_skew,
    )


def describe_submission(task: Task) -> str:
    """What `submission.csv` must hold, in words a small model can follow exactly (names and labels cut by
    `clip` when they are absurdly long)."""
    cols = ", ".join(clip(str(c), MAX_NAME_CHARS) for c in task.submission_columns)
    target, id_column = clip(task.target, MAX_NAME_CHARS), clip(task.id_column, MAX_NAME_CHARS)
    spec = task.metric_spec
    if task.task_type == "regression":
        what = f"`{target}` holds the predicted number for each row"
    elif spec.needs_proba and task.task_type == "binary":
        what = (f"`{target}` holds the predicted PROBABILITY (a float between 0 and 1) that "
                f"`{target}` is {clip_repr(task.positive_label)} (use predict_proba and the column of that class)")
    elif spec.needs_proba:
        what = ("one column per class, named exactly as the class labels, holding predicted probabilities "
                "(predict_proba; each row sums to 1)")
    else:
        labels = ", ".join(clip_repr(c) for c in (task.classes or [])[:MAX_LISTED_LEVELS])
        what = f"`{target}` holds a predicted class label, one of: {labels}"
    return (f"columns exactly: {cols}; one row per row of input/test.csv (same `{id_column}` values); "
            f"{what}")
