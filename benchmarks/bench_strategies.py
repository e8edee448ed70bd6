"""`reflexion` vs `tree` on every task of a suite, with the same time budget per task.

Each task runs both strategies (at the same time by default, so both see the same machine load) through
`tabcoder run`, as `bench_tasks.py` does. Prints, per task and strategy: valid final submission, valid
attempts, test score, the score normalised as (score - dummy) / (reference - dummy) with the
HistGradientBoosting reference of design.md and the dummy score of a constant submission (majority class,
class priors / 0.5, or the metric's best constant: mean, median, or geometric mean for RMSLE), the
validation -> test gap, and wall time; then the means per strategy.

    python benchmarks/bench_strategies.py --model local:qwen2.5-coder-0.5b --time-budget 3m \\
        --out bench-out/strategies --markdown docs/bench-strategies.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tasks import REFERENCE, SHARED, run_task  # noqa: E402

from tabcoder.grading import grade_submission, make_sample_submission  # noqa: E402
from tabcoder.journal import Journal  # noqa: E402
from tabcoder.runner import load_answers  # noqa: E402
from tabcoder.task import load_task  # noqa: E402

STRATEGIES = ("reflexion", "tree")


def dummy_score(task_dir: Path, answers: Path) -> float:
    """The test score of the constant submission the harness writes as a sample."""
    task = load_task(task_dir)
    sample = make_sample_submission(task, task.test[task.id_column])
    return grade_submission(sample, task=task, labels=load_answers(answers, task)).score.value


def normalised(score: float | None, dummy: float, reference: float) -> float | None:
    return None if score is None else (score - dummy) / (reference - dummy)


def run_cell(task: str, strategy: str, args, extra: list[str]) -> dict:
    cell_args = argparse.Namespace(out=args.out / strategy, model=args.model, iterations=args.iterations)
    cell_args.out.mkdir(parents=True, exist_ok=True)
    flags = ["--strategy", strategy, "--time-budget", args.time_budget, "--seed", str(args.seed), *extra]
    row = run_task(args.suite / "tasks" / task, args.suite / "answers" / f"{task}.csv", cell_args, flags)
    row["strategy"] = strategy
    return row


def repeats(row: dict) -> int | None:
    """Attempts whose script repeated an earlier one (the model answered with an unchanged script)."""
    journal = Path(row.get("run_dir", "")) / "journal.jsonl"
    if not journal.is_file():
        return None
    return sum(1 for a in Journal.load(journal).attempts if a.duplicate_of is not None)


def table(rows: list[dict], dummies: dict[str, float], header: str) -> str:
    lines = [header, "",
             "| task | strategy | valid final | attempts (valid, repeats) | validation | test | dummy | reference | normalised | test − validation | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["strategy"])):
        ref, dummy = REFERENCE[r["task"]], dummies[r["task"]]
        norm = normalised(r.get("test_score"), dummy, ref)
        gap = (r.get("gap") or {}).get("test_minus_validation")
        lines.append("| {t} | {s} | {v} | {a} ({va}, {rep}) | {val} | {test} | {d:.4g} | {ref} | {n} | {g} | {m:.1f} |".format(
            t=r["task"], s=r["strategy"], v="yes" if r.get("final_valid") else "no", a=r.get("attempts", "-"),
            va=r.get("valid_attempts", "-"), rep=_fmt(repeats(r)), val=_fmt(r.get("validation_score")),
            test=_fmt(r.get("test_score")), d=dummy, ref=ref, n=_fmt(norm, 3), g=_fmt(gap), m=r["minutes"]))
    lines += ["", "| strategy | valid finals | valid attempts | mean normalised | mean minutes |", "|---|---|---|---|---|"]
    for strategy in STRATEGIES:
        mine = [r for r in rows if r["strategy"] == strategy]
        norms = [normalised(r.get("test_score"), dummies[r["task"]], REFERENCE[r["task"]]) for r in mine]
        scored = [n if n is not None else 0.0 for n in norms]  # no valid submission counts as the dummy
        attempts = sum(r.get("attempts") or 0 for r in mine)
        valid = sum(r.get("valid_attempts") or 0 for r in mine)
        lines.append(f"| {strategy} | {sum(bool(r.get('final_valid')) for r in mine)}/{len(mine)} | "
                     f"{valid}/{attempts} | {statistics.fmean(scored):.3f} | "
                     f"{statistics.fmean(r['minutes'] for r in mine):.1f} |")
    return "\n".join(lines)


def _fmt(value: float | int | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=SHARED, help="folder with tasks/ and answers/<task>.csv")
    parser.add_argument("--tasks", help="comma-separated subset of task names")
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--time-budget", default="3m", help="the same for every run")
    parser.add_argument("--iterations", type=int, default=100, help="high, so that the time budget decides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (2: both strategies of a task together)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/strategies"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--from-results", type=Path, help="print the table of an earlier results.json, run nothing")
    args, extra = parser.parse_known_args()
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        print(table(saved["rows"], saved["dummies"], f"`{saved.get('command', args.from_results)}`"))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.tasks.split(",") if args.tasks else sorted(p.name for p in (args.suite / "tasks").iterdir())
    dummies = {n: dummy_score(args.suite / "tasks" / n, args.suite / "answers" / f"{n}.csv") for n in names}
    cells = [(n, s) for n in names for s in STRATEGIES]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda cell: run_cell(*cell, args, extra), cells))
    command = " ".join(["python", *sys.argv])
    text = table(rows, dummies, f"`{command}` ({(time.monotonic() - started) / 60:.0f} min in all)")
    print(text)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "dummies": dummies, "command": command}, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
