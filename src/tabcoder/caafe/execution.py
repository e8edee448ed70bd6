"""Run feature code on a frame in tabcoder's sandbox (a child process), never in this process.

`apply_in_sandbox` writes a workspace (`input/features.parquet`, `features.py`, `job.json`,
`run_features.py`), runs it with a `Sandbox` under a timeout, and reads the transformed frame back from
Parquet (never pickle: nothing the child writes is executed here). With `check_rows`, the code also runs
on a fixed half of the rows; a feature whose values on those rows change when the other rows are absent
depends on the other rows (a column mean, a rank, a count), so train and test would not get the same
feature: it is reported as a problem for the model.

Failures of the code are results (`FeatureRun.error`, written for the model); only a sandbox that cannot
run at all raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from tabcoder.caafe.code import FUNCTION_NAME
from tabcoder.errors import TabcoderError
from tabcoder.sandbox import ExecutionResult, Sandbox, exception_text
from tabcoder.task import Task

CHILD_SCRIPT = "run_features.py"
MODULE_NAME = "features"
_ERROR_CHARS = 800
_MODULE_FRAME = re.compile(rf'^\s*File "(?:[^"]*/)?{MODULE_NAME}\.py", line \d+')


class FeatureCodeError(TabcoderError):
    """Accepted feature code failed on data it was applied to (e.g. the test rows)."""

    exit_code = 1


@dataclass
class FeatureRun:
    """The outcome of one sandbox run: the transformed frame, or an error for the model."""

    frame: pd.DataFrame | None
    error: str | None
    seconds: float
    execution: ExecutionResult | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def apply_in_sandbox(module_code: str, features: pd.DataFrame, *, sandbox: Sandbox, workspace: Path,
                     timeout: float, check_rows: bool = False, seed: int = 0) -> FeatureRun:
    """Run `add_features` from `module_code` on `features` (feature columns only) in a fresh `workspace`."""
    workspace = Path(workspace)
    subset = _half(len(features), seed) if check_rows and len(features) >= 4 else None
    _prepare(workspace, module_code, features, subset)
    result = sandbox.run(workspace / CHILD_SCRIPT, workspace, timeout=timeout)
    if not result.ok:
        return FeatureRun(None, describe_failure(result, timeout), result.duration, result)
    try:
        frame = _read_output(workspace / "output" / "full.parquet", features.index)
        subset_output = workspace / "output" / "subset.parquet"
        problem = _row_dependence(frame, subset_output, subset) if subset is not None else None
    except (OSError, ValueError) as exc:
        return FeatureRun(None, f"the transformed data could not be read back: {exc}", result.duration, result)
    if problem:
        return FeatureRun(None, problem, result.duration, result)
    return FeatureRun(frame, None, result.duration, result)


def transform_table(module_code: str, table: pd.DataFrame, *, task: Task, sandbox: Sandbox, workspace: Path,
                    timeout: float) -> pd.DataFrame:
    """`table` (a task's train or test) with its feature columns replaced by the output of the feature code:
    the id column first, then the features, then the target when `table` has it. Runs in the sandbox."""
    run = apply_in_sandbox(module_code, table[task.feature_columns], sandbox=sandbox, workspace=workspace,
                           timeout=timeout)
    if not run.ok:
        raise FeatureCodeError(f"the accepted feature code failed on {len(table)} rows: {run.error}")
    parts = [table[[task.id_column]], run.frame]
    if task.target in table.columns:
        parts.append(table[[task.target]])
    return pd.concat(parts, axis=1)


def _half(rows: int, seed: int) -> list[int]:
    """A fixed half of the row positions, sorted."""
    picked = np.random.default_rng(seed).permutation(rows)[: rows // 2]
    return sorted(int(i) for i in picked)


def _prepare(workspace: Path, module_code: str, features: pd.DataFrame, subset: list[int] | None) -> None:
    (workspace / "input").mkdir(parents=True)
    features.reset_index(drop=True).to_parquet(workspace / "input" / "features.parquet", index=False)
    (workspace / f"{MODULE_NAME}.py").write_text(module_code, encoding="utf-8")
    child = resources.files("tabcoder.caafe").joinpath("_child.py").read_text(encoding="utf-8")
    (workspace / CHILD_SCRIPT).write_text(child, encoding="utf-8")
    job = {"input": "input/features.parquet", "output": "output", "module": MODULE_NAME,
           "function": FUNCTION_NAME, "subset": subset}
    (workspace / "job.json").write_text(json.dumps(job), encoding="utf-8")


def _read_output(path: Path, index: pd.Index) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame.index = index
    return frame


def _row_dependence(full: pd.DataFrame, subset_path: Path, subset: list[int]) -> str | None:
    """A problem line when the code's output on `subset` alone differs from its output on all rows."""
    part = pd.read_parquet(subset_path)
    whole = full.iloc[subset].reset_index(drop=True)
    if list(part.columns) != list(whole.columns):
        return ("the columns the code makes depend on which rows are in df; make the same columns for any rows "
                "(test rows included)")
    changed = [c for c in whole.columns if not _same_values(whole[c], part[c])]
    if not changed:
        return None
    return (f"column(s) {', '.join(changed[:5])} depend on the other rows of df (e.g. a column mean, max, rank, "
            "count or a groupby over rows), so the test rows would get different values; compute each row's "
            "value from that row's own columns, or use fixed constants")


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float, na_value=np.nan), b.to_numpy(dtype=float, na_value=np.nan)
        return bool(np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(a.astype(str).reset_index(drop=True).equals(b.astype(str).reset_index(drop=True)))


def describe_failure(result: ExecutionResult, timeout: float) -> str:
    """What the model is told when its feature code failed: timeouts, limits, or the exception and the line."""
    if result.timed_out:
        return (f"the code ran longer than {timeout:.0f} seconds and was stopped; use vectorised pandas "
                "operations (no Python loops over rows)")
    if result.killed_by is not None:
        return f"the code was stopped ({result.killed_by} limit); use less memory and time"
    if not result.traceback:
        tail = (result.stderr or result.stdout or "").strip()[-_ERROR_CHARS:]
        return f"the code failed with exit code {result.exit_code}" + (f": {tail}" if tail else "")
    return _summarise_traceback(result.traceback)


def _summarise_traceback(traceback: str) -> str:
    """The exception and the failing line of the feature code (the child's own frames left out)."""
    lines = traceback.splitlines()
    source = None
    for number, line in enumerate(lines):
        if _MODULE_FRAME.match(line) and number + 1 < len(lines):
            source = lines[number + 1].strip()
    error = exception_text(traceback).strip() or lines[-1].strip()
    text = f"{error}" + (f" (in the line `{source}`)" if source else "")
    return text[:_ERROR_CHARS]

