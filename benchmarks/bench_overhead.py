"""Harness overhead per attempt: workspace + sandbox + grading vs the same script run with bare `python`.

For each task, the script is the minimal correct solution the prompt shows the model. Both ways run
side by side in one process, alternating order, `--repeats` times; the ratio of medians is printed.
First, the start-up cost of each sandbox wall this machine can build (an empty script), in milliseconds,
next to bare `python` starting the same empty script.

    python benchmarks/bench_overhead.py [TASK_DIR ...] [--repeats 3] [--isolation auto|strict|reduced]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabcoder.errors import ConfigError
from tabcoder.evaluation import evaluate, prepare_workspace
from tabcoder.grading import make_split
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.sandbox import LocalSandbox
from tabcoder.task import load_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "tasks"


def harness_once(task, split, code, sandbox, root: Path) -> float:
    start = time.perf_counter()
    workspace = prepare_workspace(root / "harness", train=split.fit, test=split.valid,
                                  sample_submission=split.sample_submission, description=task.description)
    evaluation = evaluate(code, workspace, task=task, labels=split.labels, sandbox=sandbox, timeout=600)
    elapsed = time.perf_counter() - start
    assert evaluation.grade is not None and evaluation.grade.valid, evaluation
    shutil.rmtree(workspace)
    return elapsed


def bare_once(task, split, code, root: Path) -> float:
    workspace = prepare_workspace(root / "bare", train=split.fit, test=split.valid,
                                  sample_submission=split.sample_submission, description=task.description)
    (workspace / "solution.py").write_text(code)
    # the same thread settings the sandbox gives generated code, so only the harness differs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMEXPR_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    # its own session too: with the kernel's autogroup scheduling, a new session gets its own CPU share,
    # which on a loaded machine would otherwise favour the sandboxed side
    subprocess.run([sys.executable, "solution.py"], cwd=workspace, check=True, capture_output=True, env=env,
                   start_new_session=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(workspace)
    return elapsed


def startup_ms(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def startup_table(repeats: int) -> None:
    """Median milliseconds to run an empty script: bare python, then each wall, interleaved per round."""
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        workspace.mkdir()
        script = workspace / "empty.py"
        script.write_text("pass\n")
        runners = {"bare python": lambda: subprocess.run([sys.executable, str(script)], check=True, cwd=workspace)}
        for isolation in ("strict", "reduced"):
            try:
                sandbox = LocalSandbox(isolation=isolation)
            except ConfigError as exc:
                print(f"  {isolation}: not available here ({exc})")
                continue
            sandbox.run(script, workspace, timeout=60)  # the wall's one-time probe is not start-up cost
            runners[f"{isolation} ({sandbox.wall.kind})"] = (
                lambda sandbox=sandbox: sandbox.run(script, workspace, timeout=60))
        medians = {name: startup_ms(run, repeats) for name, run in runners.items()}
    base = medians["bare python"]
    print(f"{'start-up (empty script)':28s} {'median ms':>10s} {'extra ms':>9s}")
    for name, value in medians.items():
        print(f"{name:28s} {value:10.0f} {value - base:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", type=Path, help="task folders (default: the shared tasks)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--isolation", default="auto", help="the wall for the per-task table (default: auto)")
    args = parser.parse_args()
    tasks = args.tasks or sorted(p for p in SHARED.iterdir() if p.is_dir())
    startup_table(max(args.repeats * 3, 9))
    sandbox = LocalSandbox(threads=1, isolation=args.isolation)
    print(f"isolation: {sandbox.isolation['summary']}")
    print(f"{'task':14s} {'bare s':>8s} {'harness s':>10s} {'ratio':>6s} {'overhead s':>10s}")
    ratios = []
    for task_dir in tasks:
        task = load_task(task_dir)
        split = make_split(task)
        code = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=600).example()
        bare, harness = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                if i % 2 == 0:
                    bare.append(bare_once(task, split, code, Path(tmp)))
                    harness.append(harness_once(task, split, code, sandbox, Path(tmp)))
                else:
                    harness.append(harness_once(task, split, code, sandbox, Path(tmp)))
                    bare.append(bare_once(task, split, code, Path(tmp)))
        b, h = statistics.median(bare), statistics.median(harness)
        ratios.append(h / b)
        print(f"{task.name:14s} {b:8.2f} {h:10.2f} {h / b:6.2f} {h - b:10.2f}")
    print(f"geometric-mean ratio harness/bare: {statistics.geometric_mean(ratios):.2f}")


if __name__ == "__main__":
    main()
