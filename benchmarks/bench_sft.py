"""Base model vs fine-tuned model on held-out tasks: does the tuned model write code that runs more often?

For every model × task × seed (× with and without the example script in the prompt) this runs
`tabcoder run` as a user would, then reads the run's journal: was the first attempt's submission valid,
how many attempts until the first valid one, the share of valid attempts, and the final test score from the
answers. The tasks default to the held-out (eval) tasks of a `tabcoder sft data distill` folder, so that no
task the model was tuned on is used to judge it. Runs `--jobs` runs at once (each uses one thread).

    python benchmarks/bench_sft.py --data sft-data --models local:qwen2.5-coder-0.5b,llamacpp:tuned.gguf \
        --seeds 3 --iterations 3 --prompts example,no-example --jobs 2 --out bench-out/sft
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tabcoder.journal import Journal

SHARED = Path(__file__).resolve().parents[2] / "shared"


def run_one(model: str, task: str, seed: int, prompt: str, args) -> dict:
    out = args.out / "runs" / f"{re.sub(r'[^A-Za-z0-9.]+', '_', model)[-48:]}-{prompt}"
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(args.suite / "tasks" / task),
               "--answers", str(args.suite / "answers" / f"{task}.csv"), "--json", "--out", str(out),
               "--model", model, "--iterations", str(args.iterations), "--seed", str(seed), "--threads", "1",
               "--example" if prompt == "example" else "--no-example"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    row = {"model": model, "task": task, "seed": seed, "prompt": prompt, "exit_code": done.returncode,
           "minutes": (time.monotonic() - start) / 60}
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return row
    run_dir = Path(summary["run_dir"])
    ordered = Journal.load(run_dir / "journal.jsonl").attempts  # complete attempts, in index order
    first_valid = next((a.index for a in ordered if a.valid), None)
    row.update(run_dir=str(run_dir), attempts=len(ordered), first_attempt_valid=bool(ordered and ordered[0].valid),
               first_valid_attempt=first_valid, valid_attempts=sum(a.valid for a in ordered),
               repeated=sum(a.duplicate_of is not None for a in ordered),
               test_score=summary.get("test_score"), metric=summary.get("metric"),
               final_valid=summary.get("final_valid"))
    return row


def aggregate(rows: list[dict]) -> list[str]:
    lines = ["| model | prompt | runs | first attempt valid | attempts to first valid (mean) | valid attempts | "
             "repeated scripts | final valid | test score per task (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["prompt"]) for r in rows})
    for model, prompt in keys:
        group = [r for r in rows if r["model"] == model and r["prompt"] == prompt and "error" not in r]
        if not group:
            continue
        firsts = [r["first_valid_attempt"] for r in group if r["first_valid_attempt"] is not None]
        tasks = sorted({r["task"] for r in group})
        scores = []
        for task in tasks:
            values = [r["test_score"] for r in group if r["task"] == task and r["test_score"] is not None]
            metric = next((r["metric"] for r in group if r["task"] == task), "?")
            scores.append(f"{task} {metric} {statistics.mean(values):.4g} ({len(values)})" if values else f"{task} -")
        lines.append(
            f"| {model} | {prompt} | {len(group)} | {sum(r['first_attempt_valid'] for r in group)}/{len(group)} | "
            f"{statistics.mean(firsts):.2f} ({len(firsts)} runs with one) | " if firsts else
            f"| {model} | {prompt} | {len(group)} | {sum(r['first_attempt_valid'] for r in group)}/{len(group)} | - | ")
        lines[-1] += (f"{sum(r['valid_attempts'] for r in group)}/{sum(r['attempts'] for r in group)} | "
                      f"{sum(r['repeated'] for r in group)} | {sum(bool(r['final_valid']) for r in group)}/{len(group)} | "
                      + "; ".join(scores) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=SHARED, help="folder with tasks/ and answers/<task>.csv")
    parser.add_argument("--data", type=Path, help="a `tabcoder sft data distill` folder: use its eval tasks")
    parser.add_argument("--tasks", help="comma-separated tasks (instead of --data)")
    parser.add_argument("--models", required=True, help="comma-separated model strings, base first")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--prompts", default="example,no-example", help="example, no-example or both")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-out/sft"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.tasks:
        tasks = args.tasks.split(",")
    elif args.data:
        tasks = json.loads((args.data / "manifest.json").read_text())["tasks"]["eval"]
    else:
        parser.error("give --data (a distilled folder with eval tasks) or --tasks")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, t, s, p) for m in args.models.split(",") for p in args.prompts.split(",")
            for t in tasks for s in range(args.seeds)]
    results_file = args.out / "results.jsonl"
    with ThreadPoolExecutor(max_workers=args.jobs) as pool, results_file.open("a") as sink:
        rows = []
        for row in pool.map(lambda j: run_one(*j, args), jobs):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            rows.append(row)
    text = "\n".join([f"`python {' '.join(sys.argv)}`", "", *aggregate(rows)])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
