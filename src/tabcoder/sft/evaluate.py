"""Runs of a model on tasks, as a user would start them, and what they say about the model's code.

Scope: `RunSpec` (one `tabcoder run`: model, task, seed, prompt), `run_all` (runs them as processes, `jobs`
at a time, one ledger line each, so that a second call does only the runs not done yet), `measure` (what
one run's journal and summary say: was the model's first attempt valid, how many of its attempts were,
how many repeated an earlier script, was the final submission valid, who wrote it, its test score),
`table` and `figures` (per model and prompt), `suite_tasks` (the tasks of suite folders or the built-in
suite). Used by `tabcoder sft self-train` (teacher and evaluation) and `benchmarks/bench_sft.py`.

The prompts:
- "no-example": `--no-example --no-baseline`, reflexion, `iterations` attempts, no ensemble, no
  confirmation folds: every script is the model's, from nothing; a valid final submission is its work.
- "default": tabcoder's defaults (baseline, example, tree, ensemble) within `time_budget`.
- "teacher": the example and the baseline, reflexion, `iterations` attempts, no ensemble or folds: the
  quickest way to verified scripts of the model's own.
- "teacher-tree": the same with the tree search: its first attempts are drafts of other model families (edits
  of the baseline's model), each one short call, instead of improvements of the baseline with a reflection.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tabcoder.errors import ConfigError
from tabcoder.events import StageItem, StageStart, emit_event
from tabcoder.journal import Journal

PROMPTS = ("no-example", "default")
LEDGER = "ledger.jsonl"
_PROMPT_OPTIONS = {
    "no-example": ["--no-example", "--no-baseline", "--strategy", "reflexion", "--time-budget", "none",
                   "--no-ensemble", "--confirm-folds", "0"],
    "teacher": ["--example", "--baseline", "--strategy", "reflexion", "--time-budget", "none", "--no-ensemble",
                "--confirm-folds", "0"],
    "teacher-tree": ["--example", "--baseline", "--strategy", "tree", "--time-budget", "none", "--no-ensemble",
                     "--confirm-folds", "0"],
    "default": [],
}

_OVERRIDE_FLAGS = {"target": "--target", "id_column": "--id", "task_type": "--task-type", "metric": "--metric",
                   "positive_label": "--positive-label"}


@dataclass(frozen=True)
class RunSpec:
    model: str
    task: str
    task_dir: Path
    answers: Path | None
    seed: int
    prompt: str  # "no-example" | "default" | "teacher" | "teacher-tree"
    iterations: int = 4
    time_budget: str = "5m"  # the "default" prompt's budget
    overrides: tuple[tuple[str, str], ...] = ()  # (RunConfig field, value) a suite pins: target, metric, ...

    @property
    def key(self) -> str:
        return f"{self.model}|{self.prompt}|{self.task}|{self.seed}"

    def command(self, out: Path, threads: int) -> list[str]:
        command = [sys.executable, "-m", "tabcoder.cli", "run", str(self.task_dir), "--json", "--out", str(out),
                   "--model", self.model, "--seed", str(self.seed), "--threads", str(threads),
                   *_PROMPT_OPTIONS[self.prompt]]
        if self.prompt == "default":
            command += ["--time-budget", self.time_budget]
        else:
            command += ["--iterations", str(self.iterations)]
        if self.answers is not None:
            command += ["--answers", str(self.answers)]
        for name, value in self.overrides:
            command += [_OVERRIDE_FLAGS[name], value]
        return command


def measure(run_dir: Path, summary: dict) -> dict:
    """What a finished run says about the model's code (the harness's baseline is not the model's)."""
    attempts = [a for a in Journal.load(run_dir / "journal.jsonl").attempts if a.kind != "baseline"]
    attribution = summary.get("attribution") or {}
    return {"run_dir": str(run_dir), "attempts": len(attempts),
            "first_attempt_valid": bool(attempts and attempts[0].valid),
            "valid_attempts": sum(a.valid for a in attempts),
            "repeated": sum(a.duplicate_of is not None for a in attempts),
            "final_valid": bool(summary.get("final_valid")), "test_score": summary.get("test_score"),
            "metric": summary.get("metric"), "written_by": attribution.get("written_by"),
            "beat_baseline": attribution.get("beat_baseline"), "ensemble": bool(summary.get("ensemble")),
            "seconds": summary.get("seconds")}


def _run_one(spec: RunSpec, folder: Path, threads: int) -> dict:
    out = folder / "runs" / re.sub(r"[^A-Za-z0-9.]+", "_", f"{spec.model[-40:]}-{spec.prompt}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    done = subprocess.run(spec.command(out, threads), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    row = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items() if k != "overrides"},
           "key": spec.key,
           "exit_code": done.returncode, "minutes": round((time.monotonic() - start) / 60, 2)}
    try:
        summary = json.loads(done.stdout)
        row.update(measure(Path(summary["run_dir"]), summary))
    except (json.JSONDecodeError, KeyError, OSError, ValueError) as exc:
        lines = done.stderr.strip().splitlines() or [f"no output ({type(exc).__name__})"]
        row["error"] = lines[-1][:300]
    return row


def read_ledger(folder: Path) -> list[dict]:
    path = folder / LEDGER
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interruption: that run is done again
            continue
    return rows


def run_all(specs: list[RunSpec], folder: Path, *, jobs: int, threads: int,
            say: Callable[[str, dict], None], stage: str) -> list[dict]:
    """Every run of `specs` not yet in `folder`'s ledger, `jobs` at a time; returns the ledger's rows of
    `specs` (earlier ones included), in the order of `specs`."""
    folder.mkdir(parents=True, exist_ok=True)
    done = {row["key"]: row for row in read_ledger(folder)}
    todo = [spec for spec in specs if spec.key not in done]
    total = len(specs)
    emit_event(say, StageStart(stage=stage, total=total, done=total - len(todo),
                               detail=f"{total} runs, {total - len(todo)} done earlier, {len(todo)} to run "
                                      f"({jobs} at a time); runs in {folder / 'runs'}"))
    finished = total - len(todo)
    with ThreadPoolExecutor(max_workers=jobs) as pool, (folder / LEDGER).open("a", encoding="utf-8") as ledger:
        for row in pool.map(lambda spec: _run_one(spec, folder, threads), todo):
            ledger.write(json.dumps(row) + "\n")
            ledger.flush()
            done[row["key"]] = row
            finished += 1
            emit_event(say, StageItem(stage=stage, done=finished, total=total, text=describe(row)))
    return [done[spec.key] for spec in specs]


def describe(row: dict) -> str:
    head = f"{row['task']} seed {row['seed']} ({row['model']}, {row['prompt']})"
    if "error" in row:
        return f"{head}: error: {row['error']}"
    score = "-" if row.get("test_score") is None else f"{row['test_score']:.4g}"
    return (f"{head}: {row['valid_attempts']}/{row['attempts']} attempts valid, first "
            f"{'valid' if row['first_attempt_valid'] else 'invalid'}, {row['repeated']} repeated, final "
            f"{'valid' if row['final_valid'] else 'INVALID'} (by {row.get('written_by') or '-'}), test "
            f"{row.get('metric')} {score}, {row['minutes']:.1f} min")


def figures(rows: list[dict], labels: dict[str, str]) -> dict:
    """Per "label / prompt": runs, tasks, final valid, first attempt valid, repeat rate, ..."""
    out: dict[str, dict] = {}
    for (model, prompt), group in _groups(rows).items():
        good = [r for r in group if "error" not in r]
        attempts = sum(r["attempts"] for r in good)
        tasks = sorted({r["task"] for r in group})
        out[f"{labels.get(model, model)} / {prompt}"] = {
            "model": model, "prompt": prompt, "runs": len(group), "errors": len(group) - len(good),
            "tasks": len(tasks),
            "tasks_final_valid": sum(any(r.get("final_valid") and r.get("written_by") != "baseline"
                                         for r in good if r["task"] == t) for t in tasks),
            "runs_final_valid": sum(bool(r.get("final_valid")) for r in good),
            "runs_model_solution": sum(r.get("written_by") == "model" for r in good),
            "runs_beat_baseline": sum(r.get("beat_baseline") is True for r in good),
            "first_attempt_valid": sum(r["first_attempt_valid"] for r in good),
            "valid_attempts": sum(r["valid_attempts"] for r in good), "attempts": attempts,
            "repeat_rate": None if not attempts else round(sum(r["repeated"] for r in good) / attempts, 3),
            "minutes": round(sum(r.get("minutes", 0) for r in group), 1),
            "test_scores": {t: _mean([r.get("test_score") for r in good if r["task"] == t]) for t in tasks},
        }
    return out


def table(rows: list[dict], labels: dict[str, str]) -> list[str]:
    """The summary table (markdown lines), one row per model and prompt."""
    lines = ["| model | prompt | runs | tasks with a valid final submission by the model | first attempt valid | "
             "valid attempts | repeated | model's solution chosen (beat baseline) | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    found = figures(rows, labels)
    for name, f in found.items():
        errors = f" ({f['errors']} errors)" if f["errors"] else ""
        lines.append(f"| {name.split(' / ')[0]} | {f['prompt']} | {f['runs']}{errors} | "
                     f"{f['tasks_final_valid']}/{f['tasks']} | {f['first_attempt_valid']}/{f['runs']} | "
                     f"{f['valid_attempts']}/{f['attempts']} | {f['repeat_rate'] if f['repeat_rate'] is not None else '-'} | "
                     f"{f['runs_model_solution']} ({f['runs_beat_baseline']}) | {f['minutes']} |")
    tasks = sorted({r["task"] for r in rows})
    if tasks:
        lines += ["", "| model | prompt | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
        for name, f in found.items():
            cells = ["-" if f["test_scores"].get(t) is None else f"{f['test_scores'][t]:.4g}" for t in tasks]
            lines.append(f"| {name.split(' / ')[0]} | {f['prompt']} | " + " | ".join(cells) + " |")
        metrics = {r["task"]: r.get("metric") for r in rows if r.get("metric")}
        lines.append("")
        lines.append("Test scores (mean over seeds, valid runs): " + ", ".join(f"{t} {m}" for t, m in sorted(metrics.items())))
    return lines


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["prompt"]), []).append(row)
    return groups


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    path: Path
    answers: Path
    overrides: tuple[tuple[str, str], ...] = ()


def suite_tasks(suites: list[str], only: list[str] | None = None) -> list[SuiteEntry]:
    """The tasks of the suite folders (`builtin`: the built-in suite, written on first use), optionally only
    the named ones; ConfigError for a suite or task that is not there."""
    from tabcoder.bench import ensure_builtin_suite
    from tabcoder.bench.suite import load_suite

    entries: list[SuiteEntry] = []
    for name in suites:
        root = ensure_builtin_suite() if name == "builtin" else Path(name)
        suite = load_suite(root)
        entries += [SuiteEntry(t.name, t.path, t.answers,
                               tuple((k, str(v)) for k, v in sorted(t.overrides.items()) if k in _OVERRIDE_FLAGS))
                    for t in suite.tasks]
    if only:
        missing = sorted(set(only) - {e.name for e in entries})
        if missing:
            raise ConfigError(f"evaluation task(s) {', '.join(missing)} are not in {', '.join(suites)}; found: "
                              f"{', '.join(e.name for e in entries)}")
        entries = [e for e in entries if e.name in only]
    if not entries:
        raise ConfigError(f"no evaluation tasks in {', '.join(suites)}")
    return entries
