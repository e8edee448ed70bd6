"""Shared pieces of the CAAFE tests: synthetic tasks where a known feature (the ratio a / b) helps and
known ones do not, and a fast setting for the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tabcoder import load_task
from tabcoder.caafe import CaafeSettings
from tabcoder.prompting import fence
from tabcoder.task import Task

ROWS = 500
FAST = CaafeSettings(folds=3, repeats=2, timeout=20, retry_wait=0.0)

RATIO = fence("# Feature: a_over_b: a divided by b\n# Usefulness: the target depends on the ratio of a to b\n"
              "df['a_over_b'] = df['a'] / df['b'].replace(0, np.nan)")
NOISE = fence("# Feature: wobble: a fixed pseudo-random number per row\n# Usefulness: none, a control\n"
              "df['wobble'] = np.sin(df['c'] * 1000.0)")
DROP_C = fence("# c is unrelated to the target\ndf = df.drop(columns=['c'])")


def make_task(folder: Path, kind: str, *, rows: int = ROWS, seed: int = 0) -> Task:
    """A task whose target depends on a / b (a tree model only approximates the ratio); c is noise.
    `kind`: "binary" (accuracy), "multiclass" (accuracy) or "regression" (rmse). Has a test set."""
    rng = np.random.default_rng(seed)
    n = rows + 100
    a, b, c = rng.lognormal(0, 0.6, n), rng.lognormal(0, 0.6, n), rng.normal(size=n)
    ratio = a / b
    if kind == "binary":
        y, metric = np.where(ratio > 1, "yes", "no"), "accuracy"
    elif kind == "multiclass":
        y, metric = np.select([ratio < 0.7, ratio < 1.4], ["low", "mid"], "high"), "accuracy"
    else:
        y, metric = ratio + rng.normal(0, 0.05, n), "rmse"
    table = pd.DataFrame({"id": np.arange(n), "a": a.round(4), "b": b.round(4), "c": c.round(4), "y": y})
    folder.mkdir(parents=True, exist_ok=True)
    table.iloc[:rows].to_csv(folder / "train.csv", index=False)
    table.iloc[rows:].drop(columns=["y"]).to_csv(folder / "test.csv", index=False)
    task_type = "regression" if kind == "regression" else kind
    (folder / "task.toml").write_text(f'target = "y"\nid = "id"\ntask_type = "{task_type}"\nmetric = "{metric}"\n')
    (folder / "description.md").write_text("Synthetic data: a, b and c are measurements.\n")
    return load_task(folder)
