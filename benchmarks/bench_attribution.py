"""Who did the work: `tabcoder run` variants side by side on the same tasks and wall time, read back from
their journals.

Each variant is `LABEL=SRC::ARGS`: SRC a tabcoder source folder to run (empty: the installed one; another
checkout's `src` compares versions), ARGS extra `tabcoder run` options. Cells (variant x task) run
interleaved, `--jobs` at a time, so every variant sees the same machine load. Per variant it prints: valid
final submissions, mean normalised test score ((s - dummy) / (hgb - dummy), the benchmark's baselines
graded by the same grader), the valid-attempt rate, the repeat rate (model replies that repeated an earlier
script), the share of edits that applied, and the share of runs whose chosen solution is a model attempt
that beats the harness's baseline on the confirmation folds.

    python benchmarks/bench_attribution.py --suite ../shared --time-budget 3m --jobs 2 \\
        --variant 'new=::' --variant 'old=/path/to/old/src::' --variant 'functions=::--edit-format functions'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tabcoder.bench.baselines import run_baseline
from tabcoder.rundir import load_answers
from tabcoder.task import load_task


def references(task_dir: Path, answers: Path) -> tuple[float | None, float | None]:
    """Test scores of the dummy and default HistGradientBoosting baselines."""
    task = load_task(task_dir)
    labels = load_answers(answers, task)
    scores = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("dummy", "hgb"):
            result = run_baseline(name, task, run_dir=Path(scratch) / name, seed=0, valid_fraction=0.2, answers=labels)
            scores.append(None if result.test_score is None else result.test_score.value)
    return scores[0], scores[1]


def run_cell(label: str, src: str, extra: list[str], task_dir: Path, answers: Path, args) -> dict:
    out = args.out / label
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(task_dir), "--answers", str(answers), "--json", "-q",
               "--out", str(out), "--model", args.model, "--time-budget", args.time_budget,
               "--iterations", str(args.iterations), *extra]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    row: dict = {"variant": label, "task": task_dir.name, "minutes": (time.monotonic() - started) / 60,
                 "exit_code": done.returncode}
    try:
        row.update(json.loads(done.stdout))
    except json.JSONDecodeError:
        row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return row
    row.update(journal_counts(Path(row["run_dir"])))
    meta = json.loads((Path(row["run_dir"]) / "run.json").read_text())
    row["attribution_text"] = (meta.get("attribution") or {}).get("text")
    row["beat_baseline"] = (meta.get("attribution") or {}).get("beat_baseline")
    return row


def journal_counts(run_dir: Path) -> dict:
    records: dict[int, dict] = {}
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["index"]] = record
    model = [r for r in records.values() if r.get("kind") != "baseline" and not r.get("pending")]
    edits = [r for r in model if r.get("parent") is not None and r.get("edit_format") in ("search-replace", "functions")]
    return {"model_attempts": len(model), "model_valid": sum(bool(r.get("valid")) for r in model),
            "repeats": sum(r.get("duplicate_of") is not None for r in model), "edits": len(edits),
            "edits_applied": sum(r.get("edit_error") is None for r in edits)}


def share(numerator: int, denominator: int) -> str:
    return "-" if not denominator else f"{numerator / denominator:.0%} ({numerator}/{denominator})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="folder with tasks/ and answers/<task>.csv")
    parser.add_argument("--tasks", help="comma-separated subset of task names")
    parser.add_argument("--variant", action="append", required=True, help="LABEL=SRC::ARGS (see above)")
    parser.add_argument("--model", default="local")
    parser.add_argument("--time-budget", default="3m")
    parser.add_argument("--iterations", type=int, default=100, help="attempt cap (the time budget decides)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-attribution"))
    args = parser.parse_args()
    variants = []
    for spec in args.variant:
        label, _, rest = spec.partition("=")
        src, _, extra = rest.partition("::")
        variants.append((label, src, extra.split()))
    names = args.tasks.split(",") if args.tasks else sorted(p.name for p in (args.suite / "tasks").iterdir())
    tasks = [(args.suite / "tasks" / n, args.suite / "answers" / f"{n}.csv") for n in names]
    refs = {t.name: references(t, a) for t, a in tasks}
    cells = [(v, t) for t in tasks for v in variants]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda c: run_cell(c[0][0], c[0][1], c[0][2], c[1][0], c[1][1], args), cells))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"model {args.model}, time budget {args.time_budget} per task, {len(tasks)} tasks, jobs {args.jobs}")
    print("| variant | valid final | mean normalised test | valid attempts | repeats | edits applied | "
          "model beat baseline (folds) | mean minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _, _ in variants:
        mine = [r for r in rows if r["variant"] == label]
        normalised = []
        for r in mine:
            dummy, hgb = refs[r["task"]]
            if r.get("final_valid") and r.get("test_score") is not None and None not in (dummy, hgb) and hgb != dummy:
                normalised.append((r["test_score"] - dummy) / (hgb - dummy))

        def total(key: str, mine: list[dict] = mine) -> int:
            return sum(r.get(key) or 0 for r in mine)

        beat = [r["beat_baseline"] for r in mine if "beat_baseline" in r]
        print(f"| {label} | {sum(bool(r.get('final_valid')) for r in mine)}/{len(mine)} | "
              f"{statistics.fmean(normalised) if normalised else float('nan'):.3f} | "
              f"{share(total('model_valid'), total('model_attempts'))} | {share(total('repeats'), total('model_attempts'))} | "
              f"{share(total('edits_applied'), total('edits'))} | {share(sum(b is True for b in beat), len(beat))} | "
              f"{statistics.fmean(r['minutes'] for r in mine):.1f} |")
    for r in rows:
        print(f"{r['variant']:>10} {r['task']:<12} test {r.get('test_score')} attempts {r.get('model_attempts')} "
              f"repeats {r.get('repeats')} edits {r.get('edits_applied')}/{r.get('edits')}  "
              f"{r.get('attribution_text') or r.get('error') or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
