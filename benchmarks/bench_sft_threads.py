"""Seconds per LoRA training step with 1, 2, ... CPU threads, measured side by side on the same examples.

Each setting trains `--steps` optimizer steps in its own process (`tabcoder sft train`, same data, seed and
base), one after the other, and the script prints seconds per step and the ratio to the first setting.

    python benchmarks/bench_sft_threads.py --data sft-data --base local:qwen2.5-coder-0.5b --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with train.jsonl, or a .jsonl file")
    parser.add_argument("--base", default="local:smollm2-135m")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=4096)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in [int(t) for t in args.threads.split(",")]:
            out = Path(tmp) / f"t{threads}"
            command = [sys.executable, "-m", "tabcoder.cli", "sft", "train", args.data, "--base", args.base,
                       "--out", str(out), "--max-steps", str(args.steps), "--grad-accum", "1",
                       "--eval-examples", "0", "--max-length", str(args.max_length), "--threads", str(threads), "-q"]
            subprocess.run(command, check=True, capture_output=True, start_new_session=True)
            summary = json.loads((out / "summary.json").read_text())
            rows.append((threads, summary["seconds_per_step"], summary["tokens_per_step"], summary["peak_memory_mb"]))
    print(f"`python {' '.join(sys.argv)}`\n")
    print("| threads | s/step | tokens/step | peak MB | time vs first |")
    print("|---|---|---|---|---|")
    for threads, seconds, tokens, peak in rows:
        print(f"| {threads} | {seconds:.1f} | {tokens:.0f} | {peak:.0f} | {seconds / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
