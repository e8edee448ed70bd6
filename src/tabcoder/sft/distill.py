"""Self-distillation: the verified scripts of tabcoder runs, as fine-tuning examples.

For every complete, valid attempt with code in the runs' journals, the example is the chat prompt the
model saw (`Attempt.messages`, exactly) followed by one assistant message: the script that ran and
graded, stripped, in the ```python fence the harness expects. Attempts are kept when their score is
within a relative margin of the best valid score of their task across the runs read. Repairs (a prompt
holding the failed script, the harness's feedback and the model's diagnosis) can be left out. The
examples are split by task, so that a task held out for evaluation never appears in training.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from tabcoder.edits import as_edit, same_program
from tabcoder.errors import ConfigError
from tabcoder.journal import Attempt, Journal
from tabcoder.metrics import gain
from tabcoder.prompting import Messages, fence, without_example
from tabcoder.sft.data import Example

log = logging.getLogger(__name__)

DROP_REASONS = ("model_filtered", "pending", "baseline", "duplicate_of", "invalid", "repair_excluded",
                "below_threshold", "duplicate", "near_copy", "no_change")
#: A suggested `near_copy`: an improvement whose whole-script reply is at least this similar (difflib ratio) to
#: its parent's script teaches copying. Edit replies are never near copies: they hold only what changed.
NEAR_COPY = 0.97
#: Reply forms whose verified text is the model's edit of its parent, kept as the answer to learn.
EDIT_FORMS = ("search-replace", "functions")


@dataclass
class DistillResult:
    """Examples per split, and what happened to every attempt (`summary`, JSON-serialisable)."""

    train: list[Example] = field(default_factory=list)
    eval: list[Example] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


@dataclass
class _Run:
    path: Path
    task: str
    model: str
    attempts: list[Attempt]  # complete and pending, in index order
    edit_format: str = "whole"  # what the run's improvement and repair prompts asked for


def find_runs(paths) -> list[Path]:
    """Folders under `paths` (run folders or folders above them) that hold a journal.jsonl.
    Raises ConfigError for a path that does not exist."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder; give run folders or folders that contain them")
        if path.is_file() and path.name in ("journal.jsonl", "run.json"):
            path = path.parent
        found.update(journal.parent for journal in path.rglob("journal.jsonl"))
    return sorted(found)


def _load_run(folder: Path) -> _Run:
    """A run folder's task, model and attempts; ValueError says why it cannot be read."""
    run_json = folder / "run.json"
    if not run_json.is_file():
        raise ValueError("no run.json next to journal.jsonl")
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"run.json is not valid JSON ({exc})") from None
    task = info.get("task") if isinstance(info, dict) else None
    name = task.get("name") if isinstance(task, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError("run.json has no task name (task.name)")
    model = info.get("model") or (info.get("config") or {}).get("model") or ""
    journal = Journal.load(folder / "journal.jsonl")
    attempts = sorted(journal.attempts + list(journal.pending.values()), key=lambda a: a.index)
    config = info.get("config") or {}
    return _Run(folder, name, str(model), attempts, str(config.get("edit_format") or "whole"))


def _normalised(code: str) -> str:
    return re.sub(r"\s+", " ", code).strip()


def _eval_split(tasks: list[str], eval_tasks, eval_fraction: float, seed: int) -> set[str]:
    if eval_tasks:
        missing = sorted(set(eval_tasks) - set(tasks))
        if missing:
            raise ConfigError(f"eval task(s) {', '.join(missing)} not found in the runs; tasks found: "
                              f"{', '.join(tasks) or 'none'}")
        return set(eval_tasks)
    if not eval_fraction:
        return set()
    if len(tasks) < 2:
        raise ConfigError(f"cannot hold out a fraction of the tasks: the runs hold {len(tasks)} task(s) "
                          f"({', '.join(tasks)}); evaluation needs a task that training never sees")
    count = min(max(1, round(eval_fraction * len(tasks))), len(tasks) - 1)
    ranked = sorted(tasks, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    return set(ranked[:count])


def distill(run_dirs, *, within: float | None = 0.10, include_repairs: bool = True, eval_tasks=None,
            eval_fraction: float = 0.0, models=None, seed: int = 0, no_example_copies: bool = False,
            from_scratch: bool = False, near_copy: float | None = None) -> DistillResult:
    """Examples from the verified attempts of the runs under `run_dirs`.

    within: keep attempts whose score is within this fraction of |best| from their task's best valid
    score (None: every valid attempt). include_repairs: keep repair attempts. eval_tasks / eval_fraction:
    the tasks of the "eval" split (named, or a seeded fraction of the tasks found, at least one, never
    all). models: keep only runs of these model strings (run.json's `model`); the best score of a task is
    taken over the runs kept. Exact repeats of a script for the same task and kind are kept once.
    no_example_copies: for each example whose prompt shows the minimal example script, also keep a copy
    with the prompt exactly as a run with `--no-example` words it (`prompting.without_example`), so
    that training also teaches writing a working script with nothing to copy (a draft made as an edit of
    the example has no such copy: without the example there is nothing to edit; see from_scratch).
    from_scratch: for each verified script of a task (once per distinct script), also keep the example
    "first prompt of a run with `--no-example --no-baseline` on that task -> the whole verified script"
    (`scratch_messages`): what the model must learn to write a working script with nothing to copy.
    near_copy: nothing that teaches copying (None: keep every reply as it was). An improvement that changes
    only comments or docstrings is left out ("no_change"); a whole script sent where the prompt asked for an
    edit (functions or search/replace) is learnt as that edit, computed from the two scripts and checked by
    applying it, so that the loss falls on the change; a whole-script improvement that cannot be so put and
    is at least `near_copy` similar (difflib ratio) to its parent is left out ("near_copy").
    """
    if within is not None and not (isinstance(within, (int, float)) and 0 <= within and math.isfinite(within)):
        raise ConfigError(f"within must be a fraction >= 0 (e.g. 0.1), not {within!r}")
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"eval_fraction must be in [0, 1), not {eval_fraction!r}")
    if eval_tasks and eval_fraction:
        raise ConfigError("give eval tasks or an eval fraction, not both")
    if near_copy is not None and not 0 < near_copy <= 1:
        raise ConfigError(f"near_copy must be a similarity in (0, 1] (e.g. 0.97), not {near_copy!r}")
    eval_tasks = [t for t in (eval_tasks or []) if t]
    folders = find_runs(run_dirs)
    searched = [str(p) for p in run_dirs]
    if not folders:
        raise ConfigError(f"no tabcoder runs (folders with journal.jsonl and run.json) under {', '.join(searched)}")

    dropped = dict.fromkeys(DROP_REASONS, 0)
    runs, skipped = [], []
    for folder in folders:
        try:
            runs.append(_load_run(folder))
        except (ValueError, OSError) as exc:
            log.warning("skipping run folder %s: %s", folder, exc)
            skipped.append({"run": str(folder), "reason": str(exc)})
    if not runs:
        raise ConfigError(f"no readable tabcoder runs under {', '.join(searched)} "
                          f"({len(skipped)} run folder(s) skipped: {skipped[0]['reason']} in {skipped[0]['run']}, ...)")
    tasks_found = sorted({run.task for run in runs})
    seen = sum(len(run.attempts) for run in runs)
    if models:
        for run in runs:
            if run.model not in models:
                dropped["model_filtered"] += len(run.attempts)
        runs = [run for run in runs if run.model in models]

    candidates = []  # (run, attempt) of complete, non-repeated, valid attempts with code
    best: dict[str, dict] = {}
    for run in runs:
        for attempt in run.attempts:
            if attempt.pending:
                dropped["pending"] += 1
            elif attempt.kind == "baseline":  # written by the harness: nothing the model said
                dropped["baseline"] += 1
            elif attempt.duplicate_of is not None:
                dropped["duplicate_of"] += 1
            elif not (attempt.valid and attempt.code and attempt.score is not None
                      and math.isfinite(attempt.score)):
                dropped["invalid"] += 1
            else:
                candidates.append((run, attempt))
                top = best.get(run.task)
                if top and (top["metric"], top["greater_is_better"]) != (attempt.metric, attempt.greater_is_better):
                    raise ConfigError(f"task {run.task} was graded with different metrics in these runs "
                                      f"({top['metric']} in {top['run']}, {attempt.metric} in {run.path}); "
                                      f"distill runs of one metric per task")
                if top is None or gain(attempt.score, top["score"], attempt.greater_is_better) > 0:
                    best[run.task] = {"score": attempt.score, "metric": attempt.metric,
                                      "greater_is_better": attempt.greater_is_better, "run": str(run.path),
                                      "attempt": attempt.index}

    held_out = _eval_split(tasks_found, eval_tasks, eval_fraction, seed)
    result = DistillResult()
    keys: set[tuple] = set()
    per_task: dict[str, dict] = {}
    scratch_prompts: dict[Path, Messages | None] = {}
    for run, attempt in candidates:
        code, score = cast(str, attempt.code), cast(float, attempt.score)  # a candidate has both
        top = best[run.task]
        margin = None if within is None else within * abs(top["score"])
        if attempt.kind == "repair" and not include_repairs:
            dropped["repair_excluded"] += 1
            continue
        if margin is not None and gain(score, top["score"], attempt.greater_is_better) < -margin:
            dropped["below_threshold"] += 1
            continue
        key = (run.task, attempt.kind, _normalised(code))
        if key in keys:
            dropped["duplicate"] += 1
            continue
        keys.add(key)
        parent = _parent(run, attempt)
        meta = {"task": run.task, "kind": attempt.kind, "run": run.path.name, "attempt": attempt.index,
                "score": attempt.score, "metric": attempt.metric, "model": run.model}
        variants: list[Example] = []
        answer, why_not, converted = _answer(run, attempt, parent, code, near_copy)
        if why_not is not None:
            dropped[why_not] += 1  # the reply is not learnt; its verified script still is, from scratch
        else:
            if converted:
                meta["converted"] = f"whole script -> {run.edit_format} edit"
            messages = [*(dict(m) for m in attempt.messages), {"role": "assistant", "content": answer}]
            try:
                example = Example.checked(messages, meta, f"{run.path / 'journal.jsonl'} attempt {attempt.index}")
            except ConfigError as exc:
                log.warning("skipping attempt: %s", exc)
                dropped["invalid"] += 1
                continue
            variants.append(example)
            # a draft made as an edit of the example has nothing to edit once the example is gone
            swaps_example = attempt.kind == "draft" and attempt.edit_format in EDIT_FORMS
            stripped = without_example(example.messages) if no_example_copies and not swaps_example else None
            if stripped is not None:
                variants.append(Example(stripped, {**meta, "prompt": "no-example"}))
        split = "eval" if run.task in held_out else "train"
        scratch_key = (run.task, "from-scratch", _normalised(code))
        if from_scratch and scratch_key not in keys:
            if run.path not in scratch_prompts:
                scratch_prompts[run.path] = scratch_messages(run.path)
            prompt = scratch_prompts[run.path]
            if prompt is not None:
                keys.add(scratch_key)
                variants.append(Example([*prompt, {"role": "assistant", "content": fence(code)}],
                                        {**meta, "kind": "from-scratch", "from_kind": attempt.kind,
                                         "prompt": "no-example"}))
        getattr(result, split).extend(variants)
        counts = per_task.setdefault(run.task, {"split": split, "kept": 0, "by_kind": {}})
        counts["kept"] += len(variants)
        for variant in variants:
            kind = variant.meta["kind"]
            counts["by_kind"][kind] = counts["by_kind"].get(kind, 0) + 1

    for task in tasks_found:
        entry = per_task.setdefault(task, {"split": "eval" if task in held_out else "train", "kept": 0, "by_kind": {}})
        if task in best:
            entry.update(best_score=best[task]["score"], metric=best[task]["metric"],
                         greater_is_better=best[task]["greater_is_better"],
                         best_run=Path(best[task]["run"]).name, best_attempt=best[task]["attempt"])
    result.summary = {
        "searched": searched,
        "runs_read": len(folders) - len(skipped),
        "runs_skipped": skipped,
        "attempts_seen": seen,
        "kept": len(result.train) + len(result.eval),
        "examples": {"train": len(result.train), "eval": len(result.eval)},
        "dropped": dropped,
        "tasks": {"train": [t for t in tasks_found if t not in held_out], "eval": sorted(held_out)},
        "per_task": {task: per_task[task] for task in sorted(per_task)},
        "settings": {"within": within, "include_repairs": include_repairs, "eval_tasks": eval_tasks,
                     "eval_fraction": eval_fraction, "models": list(models) if models else None, "seed": seed,
                     "no_example_copies": no_example_copies, "from_scratch": from_scratch, "near_copy": near_copy},
    }
    return result


def _answer(run: _Run, attempt: Attempt, parent: Attempt | None, code: str,
            near_copy: float | None) -> tuple[str, str | None, bool]:
    """The reply to learn for a verified attempt, the drop reason that says why none is (or None), and
    whether the reply was converted from a whole script to an edit.

    An edit that applied is learnt as the edit the prompt asked for, anything else as the whole script;
    with `near_copy`, see `distill`."""
    whole = fence(code)
    if attempt.edit_format in EDIT_FORMS:
        answer = attempt.response.strip()
    else:
        answer = whole
    if near_copy is None or parent is None or not parent.code:
        return answer, None, False
    if attempt.kind == "improve" and same_program(parent.code, code):
        return answer, "no_change", False  # comments or docstrings only: nothing to learn but copying
    if attempt.edit_format not in EDIT_FORMS and run.edit_format in EDIT_FORMS and attempt.kind in ("improve", "repair"):
        edit = as_edit(parent.code, code, run.edit_format)  # the whole script, as the edit the prompt asked for
        if edit is not None:
            return edit, None, True
    if _near_copy(run, attempt, near_copy):
        return answer, "near_copy", False
    return answer, None, False


def _parent(run: _Run, attempt: Attempt) -> Attempt | None:
    if attempt.parent is None:
        return None
    return next((a for a in run.attempts if a.index == attempt.parent), None)


def _near_copy(run: _Run, attempt: Attempt, threshold: float) -> bool:
    """An improvement replied with a whole script that is nearly its parent's."""
    if attempt.kind != "improve" or attempt.edit_format in EDIT_FORMS:
        return False
    parent = _parent(run, attempt)
    if parent is None or not parent.code or not attempt.code:
        return False
    return difflib.SequenceMatcher(None, parent.code, attempt.code, autojunk=False).ratio() >= threshold


def scratch_messages(run_dir: Path) -> Messages | None:
    """The first prompt a run of the same task and settings would send with `--no-example --no-baseline`
    (the reflexion strategy's draft: task and data only), or None when it cannot be rebuilt (the task's
    files are gone or changed, or the run used CAAFE features, whose code the prompt would have to carry)."""
    from dataclasses import replace

    from tabcoder.grading import make_split
    from tabcoder.profile import profile_task
    from tabcoder.prompting import PromptBuilder
    from tabcoder.runner import _resumed_config, _resumed_task

    try:  # the run's settings and task, read back as `tabcoder resume` reads them
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        config = replace(_resumed_config(meta, {}), show_example=False, baseline=False)
        if config.caafe:
            return None
        task = _resumed_task(meta, config)
    except Exception as exc:  # noqa: BLE001 - any unreadable run or task only costs its from-scratch examples
        log.warning("%s: cannot rebuild the from-scratch prompt (%s)", run_dir, exc)
        return None
    split = make_split(task, seed=config.seed, valid_fraction=config.valid_fraction)
    profile = profile_task(task, split.fit, split.valid, seed=config.seed)
    builder = PromptBuilder(task, profile, timeout=config.timeout, style=config.prompt_style,
                            use_description=config.use_description, show_example=False,
                            script_in_user=config.edit_format != "whole")
    return builder.draft()
