"""Aggregate a results file into per-task and per-system tables.

Scope: the normalised score (score - dummy) / (reference - dummy), where dummy and reference are the
`dummy` and `hgb` baselines of the same suite, task and seed; ranks of all systems within each
task x seed; per-task and per-system summaries; and the plain-text (Markdown) tables. Plots live in
`bench.html`.

Conventions, chosen so that every number has one meaning whatever the metric's direction:
- Differences are taken as *gains*: `score - dummy` when greater is better, `dummy - score` when lower is
  better. normalised = gain(score) / gain(reference): 0 is the dummy, 1 the reference, above 1 better.
- When the reference is not better than the dummy (gain <= 0) the normalised score is undefined (None),
  and so it is when either baseline is missing.
- A cell without a valid final submission counts as normalised 0 (what submitting the dummy gives) and
  ranks last; the valid rate is reported beside it.
- Ranks: 1 is best; ties share their mean rank.
- Lift (LLM cells): the chosen solution's gain over the harness's baseline script (attempt 0) on the
  validation rows, in units of the same task and seed's gain(hgb) over dummy on test; 0 when the baseline was
  kept, None when the run had no baseline or the scale is undefined. A system's lift is the mean over the
  cells where it is defined. Beside it: the share of cells where a model attempt beat the baseline, the share
  of the model's attempts that repeated an earlier script, and the share of edits (search-replace or
  functions replies to a parent) that applied. Baseline systems have none of these (shown as '-').
- Time given (AutoML baselines: flaml, autogluon): the seconds each cell was given, and the rule. "same as
  tabcoder (412 s)": the mean wall time of the LLM cells of the same task and seed (the mean over the cells
  summarised); "fixed 60 s": the bench ran no LLM cell, so the explicit budget (or 60 s); "mixed" when the
  cells summarised followed both rules. Other systems show '-'.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from tabcoder.bench.store import CellRow
from tabcoder.metrics import gain

DUMMY, REFERENCE = "dummy", "hgb"


def normalised_score(score: float | None, dummy: float | None, reference: float | None,
                     greater_is_better: bool) -> float | None:
    """(score - dummy) / (reference - dummy), direction-aware; None when undefined; 0 for a failed cell."""
    if dummy is None or reference is None:
        return None
    scale = gain(reference, dummy, greater_is_better)
    if not scale > 0:
        return None
    if score is None:
        return 0.0
    return gain(score, dummy, greater_is_better) / scale


def average_ranks(scores: list[float | None], greater_is_better: bool) -> list[float]:
    """Rank 1 = best; None (no valid submission) ranks after every number; ties share their mean rank."""
    worst = float("-inf")
    keys = [worst if s is None else (s if greater_is_better else -s) for s in scores]
    order = sorted(range(len(keys)), key=lambda i: keys[i], reverse=True)
    ranks = [0.0] * len(keys)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and keys[order[end + 1]] == keys[order[position]]:
            end += 1
        shared = (position + end) / 2 + 1
        for i in order[position:end + 1]:
            ranks[i] = shared
        position = end + 1
    return ranks


@dataclass
class ScoredCell:
    """A finished cell with the numbers the report needs."""

    row: CellRow
    system: str
    task: str  # the task's name, `suite/task` when the file holds several suites
    test: float | None  # None when there is no valid final submission
    normalised: float | None
    rank: float
    lift: float | None = None  # gain_validation / gain(hgb test over dummy test); LLM cells only

    @property
    def valid(self) -> bool:
        return bool(self.row.valid) and self.test is not None


@dataclass
class Summary:
    """Means over a group of cells (one system, optionally one task)."""

    system: str
    kind: str
    task: str | None
    metric: str | None
    greater_is_better: bool
    cells: int
    valid_rate: float
    test: float | None  # mean test score over valid cells
    validation: float | None  # mean validation score over cells that have one
    normalised: float | None  # mean over cells where it is defined
    rank: float
    seconds: float
    tokens: float
    lift: float | None = None  # mean lift over the cells where it is defined
    beat_rate: float | None = None  # share of cells (with a known outcome) where a model attempt beat the baseline
    repeat_rate: float | None = None  # repeated scripts / model attempts
    edit_rate: float | None = None  # edits that applied / edits (None when no edits)
    time_given: float | None = None  # AutoML baselines: mean seconds given (over the cells that record it)
    time_rule: str | None = None  # "same-as-llm" | "fixed" | "mixed"; None for other systems


@dataclass
class Report:
    cells: list[ScoredCell]
    systems: list[Summary]  # aggregated over every task, best mean rank first
    tasks: list[Summary]  # one per task x system
    notes: list[str]

    @property
    def task_names(self) -> list[str]:
        return sorted({c.task for c in self.cells})

    @property
    def system_names(self) -> list[str]:
        return [s.system for s in self.systems]


def _labels(rows: list[CellRow]) -> dict[str, str]:
    """System label per key: `system`, plus `@<config hash>` when one system was run with several configs."""
    hashes = defaultdict(set)
    for row in rows:
        hashes[row.system].add(row.config_hash)
    return {row.key: row.system if len(hashes[row.system]) == 1 else f"{row.system}@{row.config_hash[:6]}"
            for row in rows}


def _baseline_score(group: list[CellRow], name: str) -> float | None:
    found = [r for r in group if r.kind == "baseline" and r.model == name and r.valid]
    return found[0].test_score if found else None


def lift(gain_validation: float | None, dummy: float | None, reference: float | None,
         greater_is_better: bool) -> float | None:
    """gain_validation / gain(reference, dummy): the gain over the harness's baseline in units of hgb - dummy;
    None when there is no gain (no baseline) or the scale is undefined."""
    if gain_validation is None or dummy is None or reference is None:
        return None
    scale = gain(reference, dummy, greater_is_better)
    return gain_validation / scale if scale > 0 else None


def _score_group(group: list[CellRow], labels: dict[str, str], task: str) -> list[ScoredCell]:
    greater = bool(group[0].greater_is_better)
    dummy, reference = _baseline_score(group, DUMMY), _baseline_score(group, REFERENCE)
    tests = [r.test_score if r.valid else None for r in group]
    ranks = average_ranks(tests, greater)
    return [ScoredCell(row, labels[row.key], task, test, normalised_score(test, dummy, reference, greater), rank,
                       lift(row.gain_validation, dummy, reference, greater) if row.kind == "llm" else None)
            for row, test, rank in zip(group, tests, ranks)]


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _ratio(numerators, denominators) -> float | None:
    """sum(numerators) / sum(denominators) over the pairs where both are known; None when that sum is 0."""
    pairs = [(n, d) for n, d in zip(numerators, denominators) if n is not None and d is not None]
    total = sum(d for _, d in pairs)
    return sum(n for n, _ in pairs) / total if total else None


def _time_rule(rows: list[CellRow]) -> str | None:
    rules = {r.time_rule for r in rows if r.time_rule}
    return None if not rules else rules.pop() if len(rules) == 1 else "mixed"


def _summarise(cells: list[ScoredCell], task: str | None) -> Summary:
    first = cells[0]
    rows = [c.row for c in cells if c.row.kind == "llm"]  # baselines have no baseline script, attempts or edits
    beats = [r.beat_baseline for r in rows if r.beat_baseline is not None]
    timed = [c.row for c in cells if c.row.kind == "baseline" and c.row.time_given is not None]
    return Summary(
        system=first.system, kind=first.row.kind, task=task, metric=first.row.metric if task else None,
        greater_is_better=bool(first.row.greater_is_better),
        cells=len(cells), valid_rate=sum(c.valid for c in cells) / len(cells),
        test=_mean(c.test for c in cells), validation=_mean(c.row.validation_score for c in cells),
        normalised=_mean(c.normalised for c in cells), rank=statistics.fmean(c.rank for c in cells),
        seconds=statistics.fmean(c.row.seconds or 0.0 for c in cells),
        tokens=statistics.fmean(c.row.tokens or 0 for c in cells),
        lift=_mean(c.lift for c in cells),  # None for baseline cells (see _score_group)
        beat_rate=sum(b == 1 for b in beats) / len(beats) if beats else None,
        repeat_rate=_ratio([r.repeats for r in rows], [r.model_attempts for r in rows]),
        edit_rate=_ratio([r.edits_applied for r in rows], [r.edits for r in rows]),
        time_given=_mean(r.time_given for r in timed), time_rule=_time_rule(timed))


def _grouped(cells: list[ScoredCell], key) -> dict:
    groups = defaultdict(list)
    for cell in cells:
        groups[key(cell)].append(cell)
    return groups


def build_report(rows: list[CellRow]) -> Report:
    """Score, rank and summarise the `done` rows (other statuses are counted in `notes`)."""
    done = [r for r in rows if r.status == "done"]
    notes = [f"{sum(r.status == s for r in rows)} cell(s) {s}" for s in ("pending", "running", "error", "skipped")
             if any(r.status == s for r in rows)]
    labels = _labels(done)
    groups = defaultdict(list)
    for row in done:
        groups[(row.suite, row.task, row.seed)].append(row)
    several_suites = len({suite for suite, _, _ in groups}) > 1
    cells = [cell for key in sorted(groups)
             for cell in _score_group(groups[key], labels, f"{key[0]}/{key[1]}" if several_suites else key[1])]
    undefined = sorted({f"{c.task} (seed {c.row.seed})" for c in cells if c.normalised is None})
    if undefined:
        notes.append("normalised score undefined (a baseline is missing, or hgb is not better than dummy) for "
                     + ", ".join(undefined))
    systems = [_summarise(group, None) for group in _grouped(cells, lambda c: c.system).values()]
    systems.sort(key=lambda s: (s.rank, s.system))
    order = {s.system: i for i, s in enumerate(systems)}
    tasks = [_summarise(group, task) for (task, _), group in _grouped(cells, lambda c: (c.task, c.system)).items()]
    tasks.sort(key=lambda s: (s.task, order[s.system]))
    return Report(cells, systems, tasks, notes)


# =========================================================================== text


def fmt_number(value: float | None, digits: int = 4) -> str:
    """A number with `digits` significant digits, or '-' for None."""
    return "-" if value is None else f"{value:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_share(value: float | None) -> str:
    """A share as a whole percentage, or '-' for None."""
    return "-" if value is None else f"{value:.0%}"


LIFT_NOTE = ("lift: mean gain of the chosen solution over the harness's baseline on validation, in units of "
             "(hgb - dummy); beat baseline: share of cells where a model attempt beat it; repeats: share of the "
             "model's attempts that repeated an earlier script; edits applied: share of its edits that applied")


TIME_NOTE = ("time given: the seconds an AutoML baseline was given; same as tabcoder = the mean wall time of the "
             "tabcoder (LLM) cells of the same task and seed, fixed = the bench ran no LLM cell")


def fmt_time_given(summary: Summary) -> str:
    """'same as tabcoder (412 s)', 'fixed 60 s', 'mixed (mean 200 s)', or '-' for a system given no time."""
    if summary.time_given is None:
        return "-"
    seconds = f"{summary.time_given:.3g} s" if summary.time_given < 10 else f"{summary.time_given:.0f} s"
    if summary.time_rule == "same-as-llm":
        return f"same as tabcoder ({seconds})"
    if summary.time_rule == "fixed":
        return f"fixed {seconds}"
    return f"mixed (mean {seconds})"


def systems_table(report: Report) -> str:
    rows = [[s.system, str(s.cells), f"{s.valid_rate:.0%}", fmt_number(s.normalised, 3), f"{s.rank:.2f}",
             fmt_number(s.lift, 3), fmt_share(s.beat_rate), fmt_share(s.repeat_rate), fmt_share(s.edit_rate),
             fmt_number(s.seconds, 3), f"{s.tokens:.0f}", fmt_time_given(s)] for s in report.systems]
    return _table(["system", "cells", "valid", "mean normalised", "mean rank", "lift", "beat baseline", "repeats",
                   "edits applied", "mean s", "mean tokens", "time given"], rows)


def tasks_table(report: Report) -> str:
    rows = [[s.task or "-", s.metric or "-", s.system, f"{s.valid_rate:.0%}", fmt_number(s.test), fmt_number(s.validation),
             fmt_number(s.normalised, 3), f"{s.rank:.2f}", fmt_number(s.seconds, 3), f"{s.tokens:.0f}",
             fmt_time_given(s)] for s in report.tasks]
    header = ["task", "metric", "system", "valid", "test", "validation", "normalised", "rank", "s", "tokens",
              "time given"]
    return _table(header, rows)


def format_report(report: Report) -> str:
    """The aggregated table, then the per-task table, then notes."""
    if not report.cells:
        return "no finished cells yet" + ("".join(f"\nnote: {n}" for n in report.notes))
    timed = any(s.time_given is not None for s in report.systems)
    parts = ["All tasks (normalised: 0 = dummy, 1 = HistGradientBoosting; rank 1 = best)", LIFT_NOTE,
             *([TIME_NOTE] if timed else []), "",
             systems_table(report), "", "Per task (test: mean test score of valid cells)", "", tasks_table(report)]
    parts += [f"note: {n}" for n in report.notes]
    return "\n".join(parts)
