"""CAAFE on every shared task: the base model's CV score without and with the accepted features (same seed,
same folds), proposals made / kept / failed, minutes, and, as a check that CV did not fool itself, the base
model's test score without and with the features (trained on all train rows, scored on the answers; never
used to decide anything).

    python benchmarks/bench_caafe.py --model local:qwen2.5-coder-0.5b --features 5 \
        --out bench-out/caafe --markdown docs/caafe-bench.md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from tabcoder import load_task
from tabcoder.backends import get_backend
from tabcoder.caafe import CaafeResult, CaafeSettings, CaafeTransformer, run_caafe
from tabcoder.caafe.cv import encode, make_base_model, predict_for_metric
from tabcoder.caafe.result import fmt_value
from tabcoder.runner import load_answers
from tabcoder.sandbox import LocalSandbox
from tabcoder.task import Task

SHARED = Path(__file__).resolve().parents[2] / "shared"
TASKS = ("penguins", "telco_churn", "concrete", "diamonds", "attrition")


def test_score(task: Task, answers: pd.Series, feature_code: str | None, seed: int) -> float:
    """The base model trained on all train rows (features from `feature_code` when given), scored on the answers."""
    train, test = task.train[task.feature_columns], task.test[task.feature_columns]
    if feature_code is not None:
        transformer = CaafeTransformer(code=feature_code).fit(train)  # vetted: accepted after running in the sandbox
        train, test = transformer.transform(train), transformer.transform(test)
    matrix, categorical = encode(pd.concat([train, test], ignore_index=True))  # same category codes for both
    y = task.train[task.target].to_numpy(dtype=float if task.task_type == "regression" else object)
    with threadpool_limits(limits=1):
        model = make_base_model(task, categorical, seed=seed).fit(matrix[: len(train)], y)
        predictions = predict_for_metric(model, matrix[len(train):], task)
    truth = answers.loc[task.test[task.id_column]].to_numpy()
    return task.metric_spec.score(truth, predictions, classes=task.classes, positive_label=task.positive_label)


def bench_task(name: str, backend, args) -> dict:
    task = load_task(SHARED / "tasks" / name)
    answers = load_answers(SHARED / "answers" / f"{name}.csv", task)
    started = time.monotonic()

    def progress(kind: str, data: dict) -> None:
        if kind == "caafe_proposal":
            p = data["proposal"]
            print(f"  {name} proposal {p.index}: {p.label}: {p.outcome(task.metric)}", file=sys.stderr, flush=True)

    result: CaafeResult = run_caafe(task, task.train, backend=backend, sandbox=LocalSandbox(), n_features=args.features,
                                    seed=args.seed, settings=CaafeSettings(), on_event=progress,
                                    workdir=Path(args.out) / name if args.out else None)
    minutes = (time.monotonic() - started) / 60
    row = {"task": name, "metric": task.metric, "base_cv": result.base_score, "caafe_cv": result.final_score,
           "proposals": len(result.proposals), "kept": len(result.kept),
           "failed": sum(p.error is not None for p in result.proposals), "minutes": minutes,
           "test_without": test_score(task, answers, None, args.seed),
           "test_with": test_score(task, answers, result.feature_code, args.seed) if result.kept else None,
           "features": " ".join(p.label for p in result.kept)}
    if args.out:
        (Path(args.out) / f"{name}.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return row


def table(rows: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| task | metric | base-model CV without | with CAAFE | proposals | kept | failed | kept features | "
             "test without | test with | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        with_test = fmt_value(r["test_with"]) if r["test_with"] is not None else "(= without)"
        lines.append(f"| {r['task']} | {r['metric']} | {fmt_value(r['base_cv'])} | {fmt_value(r['caafe_cv'])} | "
                     f"{r['proposals']} | {r['kept']} | {r['failed']} | {r['features'] or '-'} | "
                     f"{fmt_value(r['test_without'])} | {with_test} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--features", type=int, default=5, help="proposals per task")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="folder for the per-task CAAFE workspaces and results")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with get_backend(args.model, threads=args.threads, seed=args.seed) as backend:
        for name in args.tasks:
            rows.append(bench_task(name, backend, args))
            print(f"{name}: done in {rows[-1]['minutes']:.1f} min", file=sys.stderr, flush=True)
    text = table(rows, "python " + " ".join(sys.argv))
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
