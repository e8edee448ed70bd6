"""Base model vs fine-tuned model on held-out tasks: does the tuned model write code that runs more often?

For every model × prompt × task × seed this runs `tabcoder run` as a user would (`tabcoder.sft.evaluate`,
the module `tabcoder sft self-train` evaluates with) and reads the run's journal: was the model's first
attempt valid, how many of its attempts were, how many repeated an earlier script, was the final submission
valid and who wrote it, and the test score from the answers. Prompts: `no-example` (no example script, no
baseline: every script is the model's) and `default` (tabcoder's defaults within --time-budget). The tasks
default to the held-out (eval) tasks of a `tabcoder sft data distill` folder, so that no task the model was
tuned on judges it. A second call with the same --out runs only what its ledger lacks.

    python benchmarks/bench_sft.py --data sft-data --models local:qwen2.5-coder-0.5b,llamacpp:tuned.gguf \
        --seeds 3 --iterations 4 --prompts no-example --jobs 2 --out bench-out/sft
    python benchmarks/bench_sft.py --suite builtin --models local:qwen2.5-coder-0.5b,llamacpp:tuned.gguf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tabcoder.sft.evaluate import RunSpec, run_all, suite_tasks, table


def _print_item(kind: str, data: dict) -> None:
    if kind == "stage_item":
        print(f"[{data['done']}/{data['total']}] {data['text']}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=str(Path(__file__).resolve().parents[2] / "shared"),
                        help="comma-separated suite folders (tasks/ + answers/), or builtin")
    parser.add_argument("--data", type=Path, help="a `tabcoder sft data distill` folder: use its eval tasks")
    parser.add_argument("--tasks", help="comma-separated tasks of the suites (default: all, or --data's eval tasks)")
    parser.add_argument("--models", required=True, help="comma-separated model strings, base first")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--prompts", default="no-example", help="no-example, default, or both (comma-separated)")
    parser.add_argument("--time-budget", default="5m", help="budget of the default prompt's runs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-out/sft"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    only = args.tasks.split(",") if args.tasks else None
    if only is None and args.data:
        only = json.loads((args.data / "manifest.json").read_text())["tasks"]["eval"]
    tasks = suite_tasks(args.suite.split(","), only)
    models = args.models.split(",")
    specs = [RunSpec(model=m, task=t.name, task_dir=t.path, answers=t.answers, seed=s, prompt=p,
                     iterations=args.iterations, time_budget=args.time_budget, overrides=t.overrides)
             for p in args.prompts.split(",") for m in models for t in tasks for s in range(args.seeds)]
    rows = run_all(specs, args.out, jobs=args.jobs, threads=args.threads, say=_print_item, stage="bench")
    labels = {m: ("base" if i == 0 else f"tuned {i}" if len(models) > 2 else "tuned") for i, m in enumerate(models)}
    text = "\n".join([f"`python {' '.join(sys.argv)}`", "", *table(rows, labels)])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
