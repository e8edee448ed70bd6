"""The ensemble against the best single attempt, on the same runs: `tabcoder run --ensemble` on each task, then
from run.json the blend's and the best single attempt's validation and mean fold scores, whether the blend
was chosen, the final test score, and (when the blend was chosen) the best single attempt's own test score,
its script refit on all training rows in the sandbox and graded by the same grader. Also the seconds the
ensemble step added: choosing and scoring the blend (run.json's `phases.ensemble`), and the final refit
(`phases.final`: every member of a chosen blend) against the best single attempt's own refit, timed here.

    python benchmarks/bench_ensemble.py --suite ../shared --time-budget 4m --jobs 2 -- --strategy tree
    python benchmarks/bench_ensemble.py --from-runs bench-runs --answers ../shared/answers   # a bench's runs
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tabcoder.evaluation import evaluate, prepare_workspace
from tabcoder.grading import grade_submission, make_sample_submission
from tabcoder.journal import Journal
from tabcoder.rundir import load_answers
from tabcoder.sandbox import LocalSandbox
from tabcoder.task import load_task


def run_task(task_dir: Path, answers: Path, out: Path, budget: str, extra: list[str]) -> Path | None:
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(task_dir), "--ensemble", "--answers", str(answers),
               "--out", str(out), "-q", "--json", *(["--time-budget", budget] if budget else []), *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        return Path(json.loads(done.stdout)["run_dir"])
    except (ValueError, KeyError):
        print(f"{task_dir.name}: no result ({done.stderr.strip()[-300:]})", file=sys.stderr)
        return None


def single_test_score(run_dir: Path, task_dir: Path, answers: Path, index: int) -> tuple[float | None, float]:
    """The test score of attempt `index`'s script refit on all training rows (as the final step would), and
    the seconds the refit took."""
    task = load_task(task_dir)
    labels = load_answers(answers, task)
    attempt = next(a for a in Journal.load(run_dir / "journal.jsonl").attempts if a.index == index)
    assert task.test is not None and attempt.code is not None
    with tempfile.TemporaryDirectory() as scratch:
        workspace = prepare_workspace(Path(scratch) / "w", train=task.train, test=task.test,
                                      sample_submission=make_sample_submission(task, task.test[task.id_column]),
                                      description=task.description)
        started = time.monotonic()
        evaluate(attempt.code, workspace, task=task, labels=None, sandbox=LocalSandbox(), timeout=1200)
        seconds = time.monotonic() - started
        grade = grade_submission(workspace / "submission.csv", task=task, labels=labels)
    return (grade.score.value if grade.valid else None), seconds


def row(run_dir: Path | None, task_dir: Path, answers: Path) -> str:
    if run_dir is None:
        return f"| {task_dir.name} | no run | | | | | | | | |"
    meta = json.loads((run_dir / "run.json").read_text())
    result, ensemble = meta["result"], meta.get("ensemble")
    test, phases = result.get("test_score"), result.get("phases") or {}
    if not ensemble:
        why = meta.get("selection", {}).get("note", "")
        return (f"| {task_dir.name} | {result['valid_attempts']}/{result['attempts']} | no ensemble ({why}) | | | "
                f"| {_n(test)} | | | {_n(phases.get('final'))} |")
    single, single_seconds = (single_test_score(run_dir, task_dir, answers, ensemble["best_single"])
                              if ensemble["chosen"] else (test, None))
    return (f"| {task_dir.name} | {result['valid_attempts']}/{result['attempts']} | "
            f"{', '.join(f'{k}:{v}' for k, v in ensemble['weights'].items())} | "
            f"{_n(ensemble['validation'])} / {_n(ensemble['best_single_validation'])} | "
            f"{_n(ensemble['mean_folds'])} / {_n(ensemble['best_single_folds'])} | "
            f"{'yes' if ensemble['chosen'] else 'no'} | {_n(test)} | {_n(single)} | {_n(phases.get('ensemble'))} | "
            f"{_n(phases.get('final'))}{'' if single_seconds is None else f' / {single_seconds:.3g}'} |")


_ESTIMATOR = re.compile(r"\b([A-Z][A-Za-z]*(?:Classifier|Regressor|Regression|Ridge|RidgeCV|Lasso|SVC|SVR))\(")


def families(run_dir: Path, indices: list[int]) -> str:
    """The estimator classes each attempt's script constructs, e.g. `0:HistGradientBoostingClassifier`."""
    attempts = {a.index: a for a in Journal.load(run_dir / "journal.jsonl").attempts}
    found = []
    for index in indices:
        names = sorted(set(_ESTIMATOR.findall(attempts[index].code or ""))) if index in attempts else []
        found.append(f"{index}:{'+'.join(n.replace('Classifier', 'C').replace('Regressor', 'R') for n in names) or '?'}")
    return " ".join(found)


def recorded_runs(folder: Path, answers_dir: Path | None) -> list[tuple[Path, Path, Path]]:
    """(run folder, task folder, answers file) of every finished run below `folder`: its own --answers, else
    `answers_dir/<task>.csv`."""
    found = []
    for meta_path in sorted(folder.rglob("run.json")):
        meta = json.loads(meta_path.read_text())
        config, task = meta.get("config", {}), meta.get("task", {})
        answers = config.get("answers") or (answers_dir and answers_dir / f"{task.get('name')}.csv")
        if meta.get("result") and answers and Path(answers).is_file() and task.get("source_path"):
            found.append((meta_path.parent, Path(task["source_path"]), Path(answers)))
    return found


def _n(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, help="a folder with tasks/ and answers/")
    parser.add_argument("--from-runs", type=Path,
                        help="instead of running: read every finished run (given --answers) below this folder, "
                             "e.g. a `tabcoder bench` output folder")
    parser.add_argument("--answers", type=Path, help="with --from-runs: the folder of <task>.csv test labels")
    parser.add_argument("--time-budget", default="4m", help="per run ('' for none: the attempt budget alone)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-ensemble-runs"))
    parser.add_argument("extra", nargs="*", help="more `tabcoder run` options (after --)")
    args = parser.parse_args()
    if args.from_runs:
        found: list[tuple[Path | None, Path, Path]] = list(recorded_runs(args.from_runs, args.answers))
    elif args.suite:
        tasks = sorted(p for p in (args.suite / "tasks").iterdir() if p.is_dir())
        answers = {t.name: args.suite / "answers" / f"{t.name}.csv" for t in tasks}
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda t: run_task(t, answers[t.name], args.out, args.time_budget, args.extra),
                                 tasks))
        found = [(run_dir, task, answers[task.name]) for run_dir, task in zip(runs, tasks)]
    else:
        parser.error("give --suite (run the tasks) or --from-runs (read finished runs)")
    print("| task | valid/attempts | members (picks) | validation: blend / best | folds: blend / best | chosen "
          "| final test | best single's test | ensemble step s | final refit s (/ best single's) "
          "| families of the confirmed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run_dir, task_dir, answer_file in found:
        line = row(run_dir, task_dir, answer_file)
        confirmed = []
        if run_dir is not None:
            selection = json.loads((run_dir / "run.json").read_text()).get("selection", {})
            confirmed = [int(c["attempt"]) for c in selection.get("candidates", []) if c.get("folds")]
        print(line + (f" {families(run_dir, confirmed)} |" if run_dir is not None else " |"), flush=True)


if __name__ == "__main__":
    main()
