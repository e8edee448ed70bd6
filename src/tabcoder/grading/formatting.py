"""The final file, written in the task's submission format and checked against it.

Scope: `render_submission` turns a checked, aligned submission (`check_submission`'s table: typed predictions,
one row per expected id) into the bytes of a CSV file in the task's `SubmissionFormat` (the sample's header,
its id order and spelling, labels spelled as it spells them, its line ending); `format_problems` checks a
written file against that format, line by line. Nothing here runs code or scores predictions.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tabcoder.grading.submission import MAX_EXAMPLES, prediction_kind
from tabcoder.task import Task
from tabcoder.task.ids import id_keys, text_key


def _number(value: float) -> str:
    """A float as the shortest text that reads back as the same number."""
    value = float(value)
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _rows(aligned: pd.DataFrame, task: Task, ids: Sequence[str] | None) -> tuple[list[str], pd.DataFrame]:
    """(the id texts in output order, the aligned rows in that order)."""
    expected = aligned[task.id_column]
    if ids is None:
        return [str(text_key(v)) for v in expected.tolist()], aligned
    order = pd.Index(id_keys(expected, expected).to_numpy()).get_indexer(
        id_keys(pd.Series(list(ids), dtype=object), expected).to_numpy())
    if (order < 0).any() or len(order) != len(aligned):
        raise ValueError("the format's ids are not the submission's ids")  # the task's checks rule this out
    return list(ids), aligned.iloc[order].reset_index(drop=True)


def render_submission(aligned: pd.DataFrame, task: Task, *, ids: Sequence[str] | None = None) -> bytes:
    """The CSV bytes of `aligned` in the task's format. `ids`: the id texts in output order (default: the
    format's, i.e. the sample's; for rows without a sample, each id as its text in the order of `aligned`)."""
    fmt = task.output_format
    texts, rows = _rows(aligned, task, ids if ids is not None else fmt.ids)
    kind = prediction_kind(task)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=fmt.line_end)
    writer.writerow(fmt.columns)
    columns = [rows[c].tolist() for c in fmt.columns[1:]]
    for i, id_text in enumerate(texts):
        values = [fmt.spell(column[i]) if kind == "label" else _number(column[i]) for column in columns]
        writer.writerow([id_text, *values])
    return buffer.getvalue().encode("utf-8")


def format_problems(path: Path, task: Task, *, ids: Sequence[str] | None = None) -> list[str]:
    """What in the file at `path` departs from the task's format: header, id order and spelling, label spelling,
    numbers that are not numbers, line endings. Empty when the file is in the format."""
    fmt = task.output_format
    data = Path(path).read_bytes().decode("utf-8")
    lines = data.split(fmt.line_end)
    if lines and lines[-1] == "":
        lines.pop()
    other_end = "\r\n" if fmt.line_end == "\n" else "\n"
    problems = []
    if fmt.line_end == "\n" and "\r" in data or fmt.line_end == "\r\n" and other_end in data.replace("\r\n", ""):
        problems.append(f"line endings differ from {fmt.source}'s")
    cells = list(csv.reader(lines))
    if not cells or cells[0] != fmt.columns:
        problems.append(f"the header is {cells[0] if cells else '(none)'}, not {fmt.columns} as in {fmt.source}")
        return problems
    body = cells[1:]
    want_ids = list(ids) if ids is not None else fmt.ids
    got_ids = [row[0] if row else "" for row in body]
    if want_ids is not None and got_ids != want_ids:
        wrong = [i for i, (a, b) in enumerate(zip(got_ids, want_ids)) if a != b][:MAX_EXAMPLES]
        problems.append(f"the ids are not those of {fmt.source} in its order ({len(got_ids)} rows, "
                        f"{len(want_ids)} expected; first differences at rows {wrong})")
    kind = prediction_kind(task)
    allowed = set(fmt.labels.values())
    for j, column in enumerate(fmt.columns[1:], start=1):
        values = [row[j] if len(row) > j else "" for row in body]
        if kind == "label":
            bad = [v for v in values if v not in allowed]
            what = f"labels spelled as {fmt.source} spells them ({', '.join(sorted(allowed))})"
        else:
            bad = [v for v in values if not _is_finite_number(v)]
            what = "finite numbers"
        if bad:
            problems.append(f"column {column!r} holds {len(bad)} values that are not {what}, e.g. {bad[:MAX_EXAMPLES]}")
    return problems


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
