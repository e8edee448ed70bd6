"""`tabcoder run` on every task of a suite, as a user runs it, with the test score from the answers.

Prints, per task: valid final submission, test score, the HistGradientBoosting reference, whether the
score is within 5% of it, attempts, tokens and minutes. Runs `--jobs` tasks at once (each uses one thread).

    python benchmarks/bench_tasks.py --model local:qwen2.5-coder-0.5b --iterations 4 --jobs 2 \
        --out bench-out/0.5b --markdown docs/bench-0.5b.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
#: Test scores of a default HistGradientBoosting (one thread) on the shared tasks.
REFERENCE = {"penguins": 0.977, "telco_churn": 0.831, "concrete": 4.49, "diamonds": 0.091, "attrition": 0.385}
LOWER_IS_BETTER = {"rmse", "mse", "mae", "rmsle", "log_loss"}


def run_task(task_dir: Path, answers: Path, args, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(task_dir), "--answers", str(answers), "--json",
               "--out", str(args.out), "--model", args.model, "--iterations", str(args.iterations), *extra]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    minutes = (time.monotonic() - start) / 60
    log = Path(args.out) / f"{task_dir.name}.log"
    log.write_text(done.stderr)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result.update(task=task_dir.name, minutes=minutes, exit_code=done.returncode)
    return result


def within(score: float | None, reference: float, metric: str, tolerance: float = 0.05) -> bool:
    if score is None:
        return False
    if metric in LOWER_IS_BETTER:
        return score <= reference * (1 + tolerance)
    return score >= reference * (1 - tolerance)


def table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| task | metric | valid final | test score | reference | within 5% | attempts (valid) | tokens | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = REFERENCE.get(r["task"])
        score = r.get("test_score")
        metric = r.get("metric", "?")
        ok = within(score, ref, metric) if ref is not None else None
        lines.append("| {task} | {metric} | {valid} | {score} | {ref} | {ok} | {att} ({va}) | {tok} | {min:.1f} |".format(
            task=r["task"], metric=metric, valid="yes" if r.get("final_valid") else "no",
            score="-" if score is None else f"{score:.4g}", ref="-" if ref is None else ref,
            ok="-" if ok is None else ("yes" if ok else "no"), att=r.get("attempts", "-"),
            va=r.get("valid_attempts", "-"), tok=r.get("tokens", "-"), min=r["minutes"]))
    n_valid = sum(bool(r.get("final_valid")) for r in rows)
    n_within = sum(within(r.get("test_score"), REFERENCE.get(r["task"], float("nan")), r.get("metric", ""))
                   for r in rows if r["task"] in REFERENCE)
    lines += ["", f"valid final submissions: {n_valid}/{len(rows)}; within 5% of the reference: {n_within}/{len(rows)}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=SHARED, help="folder with tasks/ and answers/<task>.csv")
    parser.add_argument("--tasks", help="comma-separated subset of task names")
    parser.add_argument("--model", default="local")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.tasks.split(",") if args.tasks else sorted(p.name for p in (args.suite / "tasks").iterdir())
    jobs = [(args.suite / "tasks" / n, args.suite / "answers" / f"{n}.csv") for n in names]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda j: run_task(*j, args, extra), jobs))
    command = " ".join(["python", *sys.argv])
    text = table(rows, f"`{command}`")
    print(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
