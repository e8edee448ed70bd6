"""Benchmarks: compare LLMs and strategies on a suite of tasks, against baselines, in a SQLite file.

The data path: a `Suite` (tasks + answers) and `BenchSettings` -> `plan_cells` -> an `Executor` runs
`run_cell` for each cell not yet done -> `ResultStore` -> `build_report` -> text tables and
`render_html`. Modules: `suite` and `builtin` (what is run), `cells` (one cell), `baselines`,
`executors` (local pool, Ray), `matrix` (the resumable bench), `store` (SQLite, migrations),
`report` (normalised scores, ranks, tables) and `html` (the page with inline SVG plots).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tabcoder.bench.builtin import ensure_builtin_suite
from tabcoder.bench.cells import BenchSettings, CellOutcome, CellSpec, plan_cells, run_cell
from tabcoder.bench.executors import LocalExecutor, RayExecutor, make_executor
from tabcoder.bench.html import render_html
from tabcoder.bench.matrix import BenchSummary, check_settings, run_bench
from tabcoder.bench.report import Report, build_report, format_report
from tabcoder.bench.store import ResultStore
from tabcoder.bench.suite import Suite, SuiteTask, load_suite


@dataclass
class LoadedReport:
    report: Report
    commands: list[str]  # the command line of every bench that wrote the file


def load_report(db: str | Path) -> LoadedReport:
    """The report of an existing results file, and the commands that filled it."""
    with ResultStore.open_existing(db) as store:
        rows = store.rows()
        commands = store.commands()
    return LoadedReport(build_report(rows), commands)


__all__ = [
    "BenchSettings", "BenchSummary", "CellOutcome", "CellSpec", "LoadedReport", "LocalExecutor", "RayExecutor",
    "Report", "ResultStore", "Suite", "SuiteTask", "build_report", "check_settings", "ensure_builtin_suite",
    "format_report", "load_report", "load_suite", "make_executor", "plan_cells", "render_html", "run_bench",
    "run_cell",
]
