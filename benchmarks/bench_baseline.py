"""The harness's baseline script (attempt 0 of every run) against a default HistGradientBoosting.

For each task: the baseline script as a run writes it (profiled on the seeded fit split), run in the
sandbox on all training rows and the real test set, graded with the answers; and the benchmark's `hgb`
baseline (scikit-learn defaults, text ordinal encoded) on the same rows, graded by the same grader. Prints
test scores, the normalised score of the baseline ((s - dummy) / (hgb - dummy)) and seconds; no LLM.

    python benchmarks/bench_baseline.py ../shared/tasks/* --answers ../shared/answers
    python benchmarks/bench_baseline.py --builtin
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tabcoder.bench.baselines import run_baseline
from tabcoder.bench.builtin import ensure_builtin_suite
from tabcoder.evaluation import evaluate, prepare_workspace
from tabcoder.grading import grade_submission, make_sample_submission, make_split
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.rundir import load_answers
from tabcoder.sandbox import LocalSandbox
from tabcoder.task import load_task


def measure(task_dir: Path, answers: Path, sandbox: LocalSandbox, scratch: Path) -> dict:
    task = load_task(task_dir)
    labels = load_answers(answers, task)
    split = make_split(task, seed=0)
    builder = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=600)
    assert task.test is not None
    workspace = prepare_workspace(scratch / task.name / "baseline", train=task.train, test=task.test,
                                  sample_submission=task.sample_submission if task.sample_submission is not None
                                  else make_sample_submission(task, task.test[task.id_column]),
                                  description=task.description)
    started = time.monotonic()
    evaluation = evaluate(builder.example(), workspace, task=task, labels=None, sandbox=sandbox, timeout=600)
    seconds = time.monotonic() - started
    score = None
    if evaluation.result.ok:
        score = grade_submission(workspace / "submission.csv", task=task, labels=labels).score.value
    others = {}
    for name in ("dummy", "hgb"):
        started = time.monotonic()
        result = run_baseline(name, task, run_dir=scratch / task.name / name, seed=0, valid_fraction=0.2,
                              answers=labels)
        others[name] = (None if result.test_score is None else result.test_score.value, time.monotonic() - started)
    dummy, hgb = others["dummy"][0], others["hgb"][0]
    normalised = None
    if None not in (score, dummy, hgb) and hgb != dummy:
        normalised = (score - dummy) / (hgb - dummy)
    return {"task": task.name, "metric": task.metric, "baseline": score, "hgb": hgb, "dummy": dummy,
            "normalised": normalised, "seconds": seconds, "hgb_seconds": others["hgb"][1],
            "plan": builder.plan.reasons, "error": None if evaluation.result.ok else evaluation.result.traceback}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", nargs="*", type=Path, help="task folders")
    parser.add_argument("--answers", type=Path, help="folder of <task>.csv answer files")
    parser.add_argument("--builtin", action="store_true", help="also the built-in suite (its answers beside it)")
    args = parser.parse_args()
    pairs = [(t, args.answers / f"{t.name}.csv") for t in args.tasks]
    if args.builtin:
        root = ensure_builtin_suite()
        pairs += [(t, root / "answers" / f"{t.name}.csv") for t in sorted((root / "tasks").iterdir())]
    if not pairs:
        parser.error("give task folders (with --answers) or --builtin")
    sandbox = LocalSandbox(threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for task_dir, answers in pairs:
            row = measure(task_dir, answers, sandbox, Path(scratch))
            rows.append(row)
            fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
            print(f"{row['task']:<16} {row['metric']:<9} baseline {fmt(row['baseline']):>8}  hgb {fmt(row['hgb']):>8}  "
                  f"dummy {fmt(row['dummy']):>8}  normalised {fmt(row['normalised']):>6}  "
                  f"{row['seconds']:.1f} s (hgb {row['hgb_seconds']:.1f} s)  {'; '.join(row['plan'])}", flush=True)
            if row["error"]:
                print(row["error"], file=sys.stderr)
    scored = [r["normalised"] for r in rows if r["normalised"] is not None]
    if scored:
        print(f"mean normalised score of the baseline: {statistics.fmean(scored):.3f} over {len(scored)} tasks "
              f"(1.0 = default HistGradientBoosting); {sum(r['baseline'] is None for r in rows)} failed")
    return 0 if all(r["baseline"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
