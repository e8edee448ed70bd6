"""Predicting new rows with a run's delivered solution: the saved fitted model against training again.

For each task: one run whose solution is the harness's baseline (the scripted model's only reply fails, so no
LLM is needed), then, side by side and alternating, `Solution.predict` on N new rows (test rows drawn with
replacement, given fresh ids) with the saved model (`best/predict.py` loads model.joblib) and with the model
file removed (the solution is re-run with the new rows as its test set: it trains again). Prints the run's
final refit time, the median seconds of each way and their ratio; both ways must give the same predictions.

    python benchmarks/bench_predict.py ../shared/tasks/diamonds ../shared/tasks/telco_churn --rows 10000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from tabcoder.backends import ScriptedBackend
from tabcoder.prediction import load
from tabcoder.runner import run


def new_rows(task_dir: Path, rows: int) -> pd.DataFrame:
    test = pd.read_csv(task_dir / "test.csv")
    drawn = test.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    id_column = test.columns[0]
    drawn[id_column] = [f"new-{i}" for i in range(rows)] if drawn[id_column].dtype == object else range(rows)
    return drawn


def measure(task_dir: Path, rows: int, repeats: int, scratch: Path) -> dict:
    refit: list[float] = []

    def on_event(kind: str, data: dict) -> None:
        if kind == "final_end":
            refit.append(float(data.get("seconds") or 0.0))

    started = time.perf_counter()
    result = run(task_dir, backend=ScriptedBackend(["```python\nraise SystemExit(1)\n```"]), iterations=1,
                 confirm_folds=0, out_dir=scratch / "runs", on_event=on_event)
    run_seconds = time.perf_counter() - started
    assert result.final_valid and result.prediction_mode == "saved model", result.final_problems
    rerun_dir = scratch / "rerun" / result.run_dir.name
    shutil.copytree(result.run_dir, rerun_dir)
    (rerun_dir / "best" / "model.joblib").unlink()
    saved, rerun = load(result.run_dir), load(rerun_dir)
    assert saved.mode == "saved model" and rerun.mode == "re-run"
    data = new_rows(task_dir, rows)
    times: dict[str, list[float]] = {"saved model": [], "re-run": []}
    outputs = {}
    for _ in range(repeats):
        for name, solution in (("saved model", saved), ("re-run", rerun)):
            t0 = time.perf_counter()
            outputs[name] = solution.run(data)
            times[name].append(time.perf_counter() - t0)
    same = outputs["saved model"].data == outputs["re-run"].data
    return {"task": task_dir.name, "train rows": len(result.task.train), "run s": run_seconds,
            "refit s": refit[0] if refit else float("nan"),
            "saved s": statistics.median(times["saved model"]), "re-run s": statistics.median(times["re-run"]),
            "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+", type=Path)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"| task | train rows | whole run (s) | final refit (s) | predict {args.rows} rows, saved model (s) | "
          "predict, re-run (s) | re-run / saved | same predictions |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as scratch:
        for task_dir in args.tasks:
            m = measure(task_dir, args.rows, args.repeats, Path(scratch) / task_dir.name)
            print(f"| {m['task']} | {m['train rows']} | {m['run s']:.1f} | {m['refit s']:.1f} | {m['saved s']:.2f} | "
                  f"{m['re-run s']:.2f} | {m['re-run s'] / m['saved s']:.1f} | {m['same']} |", flush=True)


if __name__ == "__main__":
    main()
