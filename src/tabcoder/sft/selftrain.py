"""Self-training, the whole loop in one call: generate tasks -> run the teacher -> distill -> train -> export
-> evaluate base against tuned on tasks training never saw.

Scope: `self_train(config)` does the six stages in order into one folder and can be called again on it to
go on where it stopped (each stage records what it finished: the teacher's and the evaluation's runs in a
ledger line per run, training through its checkpoints). Settings that define the result (the tasks, the
teacher, the base, the training) must stay as they were once the stage they shape has begun (`FIRST_STAGE`;
e.g. the training steps may be chosen after `--stop-after distill`); a changed one is refused with what
differs, except that `tasks` and `teacher_seeds` may grow: the generator's first tasks are the same for any
count, so the teacher's finished runs are kept and only the new ones run; what was made from the smaller
teacher data (the examples, the adapter, the GGUF and the tuned model's evaluation runs) moves to
`OUT/earlier/N/` and is made again, while the base model's evaluation runs stay (the base and the evaluation
did not change). `epochs` and `max_steps` may grow too: a longer training from the same examples, the shorter
one's adapter, GGUF and evaluation set aside the same way.

    OUT/selftrain.json         settings, and each finished stage with its figures
    OUT/tasks/                 generated tasks (`tabcoder.sft.tasks`), suite layout
    OUT/teacher/runs/          the teacher's `tabcoder run` folders; ledger.jsonl: one line per run
    OUT/data/                  distilled examples (`tabcoder.sft.distill`) and their manifest
    OUT/train/                 the LoRA run (`tabcoder.sft.train`)
    OUT/tuned.gguf (+ quantised copy)
    OUT/eval/runs/, ledger.jsonl, summary.md   base vs tuned (`tabcoder.sft.evaluate`)
    OUT/earlier/N/             what an earlier, smaller teacher data made (after `tasks` or `teacher_seeds` grew)

Teacher and evaluation runs are `tabcoder run` processes, `jobs` at a time, each on `threads` threads: a
model fault in one costs that run, never the loop. Nothing here reaches the network.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabcoder.errors import ConfigError
from tabcoder.events import StageEnd, StageItem, StageStart, emit_event
from tabcoder.sft import evaluate as sft_evaluate
from tabcoder.sft.tasks import MANIFEST, generate_tasks

STATE = "selftrain.json"
STAGES = ("tasks", "teacher", "distill", "train", "export", "evaluate")
#: The teacher's strategy -> the run options of its runs (`tabcoder.sft.evaluate`'s prompts).
TEACHER_STRATEGIES = {"reflexion": "teacher", "tree": "teacher-tree"}
#: Settings that do not change what is made; a later call may give other values.
FREE = ("jobs", "threads", "stop_after", "eval_jobs", "gradient_checkpointing")
#: Settings a later call may raise (more teacher data, longer training); the stages from the first one they
#: change are redone.
GROWABLE = {"tasks": "tasks", "teacher_seeds": "teacher", "epochs": "train", "max_steps": "train"}
#: Defaults that changed, as they were before the setting was saved in selftrain.json.
EARLIER_DEFAULTS = {"teacher_strategy": "reflexion"}
#: The first stage each defining setting shapes: a later call may change it while that stage has not begun
#: (e.g. choose the training steps after `--stop-after distill`).
FIRST_STAGE = {
    "tasks": "tasks", "task_seed": "tasks",
    "teacher": "teacher", "teacher_seeds": "teacher", "teacher_iterations": "teacher", "teacher_strategy": "teacher",
    "within": "distill",
    "base": "train", "epochs": "train", "max_steps": "train", "learning_rate": "train", "grad_accum": "train",
    "max_length": "train", "lora_r": "train", "device": "train",
    "quantize": "export",
    "eval_suites": "evaluate", "eval_tasks": "evaluate", "eval_seeds": "evaluate", "eval_iterations": "evaluate",
    "eval_prompts": "evaluate", "eval_time_budget": "evaluate",
}

Progress = Callable[[str, dict], None]


@dataclass
class SelfTrainConfig:
    out: str
    tasks: int = 12  # generated training tasks
    task_seed: int = 0
    teacher: str = "local:qwen2.5-coder-0.5b"  # any --model string; runs with the example script
    teacher_seeds: int = 2  # best of N: runs per task (seeds 0..N-1)
    teacher_iterations: int = 3  # model attempts per teacher run (after the harness's baseline)
    teacher_strategy: str = "tree"  # drafts of other model families first; or "reflexion" (docs/sft.md: measured)
    base: str = "local:qwen2.5-coder-0.5b"  # the model that is tuned (and the "base" of the evaluation)
    within: float | None = 0.10  # distill: keep attempts within this fraction of the task's best score
    epochs: float = 2.0
    max_steps: int | None = None
    learning_rate: float = 3e-4
    grad_accum: int = 2
    max_length: int = 3072
    lora_r: int = 16
    device: str = "auto"
    gradient_checkpointing: bool = False  # less memory, about a third more time per step; same losses
    quantize: str | None = "q4_k_m"  # evaluate the tuned model in the same quantisation as the packaged base
    eval_suites: list[str] = field(default_factory=lambda: ["builtin"])  # suite folders, or "builtin"
    eval_tasks: list[str] | None = None  # only these tasks of the suites
    eval_seeds: int = 1
    eval_iterations: int = 4
    eval_prompts: list[str] = field(default_factory=lambda: ["no-example"])  # and/or "default"
    eval_time_budget: str = "5m"  # the "default" prompt's runs: the default budget
    jobs: int = 2
    eval_jobs: int = 2
    threads: int = 1
    stop_after: str | None = None  # a stage name: stop once it is done

    def check(self) -> None:
        if self.tasks < 2:
            raise ConfigError(f"--tasks must be at least 2 (one is held out for the held-out loss), not {self.tasks}")
        for name in ("teacher_seeds", "teacher_iterations", "eval_seeds", "eval_iterations", "jobs", "eval_jobs",
                     "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        unknown = sorted(set(self.eval_prompts) - set(sft_evaluate.PROMPTS))
        if unknown or not self.eval_prompts:
            raise ConfigError(f"eval prompts must be among {', '.join(sft_evaluate.PROMPTS)}, not "
                              f"{', '.join(unknown) or 'none'}")
        if self.teacher_strategy not in TEACHER_STRATEGIES:
            raise ConfigError(f"--teacher-strategy must be one of {', '.join(TEACHER_STRATEGIES)}, not "
                              f"{self.teacher_strategy!r}")
        if self.stop_after is not None and self.stop_after not in STAGES:
            raise ConfigError(f"--stop-after must be one of {', '.join(STAGES)}, not {self.stop_after!r}")


@dataclass
class SelfTrainResult:
    out: Path
    state: dict
    table: list[str]  # the summary table (markdown lines), empty until the evaluation ran


def self_train(config: SelfTrainConfig, *, progress: Progress | None = None) -> SelfTrainResult:
    """Run (or go on with) every stage not finished yet; see the module docstring."""
    config.check()
    say = progress or (lambda kind, data: None)
    out = Path(config.out).expanduser()
    state = _open_state(out, config, say)
    table: list[str] = []
    for stage in STAGES:
        if stage not in state["done"]:
            started = time.monotonic()
            figures = _STAGE_FUNCTIONS[stage](out, config, say, state)
            state["done"][stage] = {**figures, "seconds": round(time.monotonic() - started, 1)}
            _save_state(out, state)
        if stage == "evaluate":
            table = (out / "eval" / "summary.md").read_text(encoding="utf-8").splitlines()
        if stage == config.stop_after:
            break
    return SelfTrainResult(out, state, table)


# --------------------------------------------------------------------------- state


def _defining(config: SelfTrainConfig) -> dict:
    return {k: v for k, v in asdict(config).items() if k not in FREE and k != "out"}


def _open_state(out: Path, config: SelfTrainConfig, say: Progress) -> dict:
    path = out / STATE
    if path.is_file():
        state = json.loads(path.read_text(encoding="utf-8"))
        # a state written before a setting existed: the default of that time
        defaults = {**_defining(SelfTrainConfig(out="")), **EARLIER_DEFAULTS}
        saved = {k: state["settings"].get(k, defaults.get(k)) for k in _defining(config)}
        differ = {k: (saved[k], v) for k, v in _defining(config).items() if saved[k] != v}
        unbegun = {k: old_new for k, old_new in differ.items() if not _begun(out, state, FIRST_STAGE[k])}
        grown = {k: (old, new) for k, (old, new) in differ.items() if k in GROWABLE and k not in unbegun
                 and isinstance(old, (int, float)) and isinstance(new, (int, float)) and new > old}
        fixed = {k: old_new for k, old_new in differ.items() if k not in grown and k not in unbegun}
        if fixed:
            said = "; ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in fixed.items())
            more = (" (--tasks, --teacher-seeds, --epochs and --max-steps may grow, never shrink)"
                    if any(k in GROWABLE for k in fixed) else "")
            raise ConfigError(f"{out} holds a self-training with other settings ({said}){more}; give the same "
                              "settings to go on with it, or a new --out")
        if unbegun:  # only stages that have not begun see these settings: take the new values
            state["settings"].update({k: new for k, (_, new) in unbegun.items()})
            _save_state(out, state)
        if grown:
            _grow(out, state, config, grown, say)
        return state
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a self-training folder (no {STATE}); give a new --out")
    out.mkdir(parents=True, exist_ok=True)
    state = {"settings": _defining(config), "done": {}}
    _save_state(out, state)
    return state


def _begun(out: Path, state: dict, stage: str) -> bool:
    """Whether `stage` (or a later one) is done or has left anything behind."""
    from tabcoder.sft.evaluate import read_ledger

    if any(STAGES.index(done) >= STAGES.index(stage) for done in state["done"]):
        return True
    made = {"tasks": lambda: (out / "tasks").exists(), "teacher": lambda: bool(read_ledger(out / "teacher")),
            "distill": lambda: (out / "data").exists(), "train": lambda: (out / "train").exists(),
            "export": lambda: any(out.glob("tuned*.gguf")), "evaluate": lambda: bool(read_ledger(out / "eval"))}
    return any(made[later]() for later in STAGES[STAGES.index(stage):])


def _grow(out: Path, state: dict, config: SelfTrainConfig, grown: dict, say: Progress) -> None:
    """More tasks or teacher seeds: redo the stages from the first one that changes (the teacher's ledger
    keeps its finished runs); what the smaller data made moves to OUT/earlier/N/, nothing is deleted."""
    first = min(STAGES.index(GROWABLE[k]) for k in grown)
    tuned = state["done"].get("export", {}).get("model")
    aside = _set_aside(out, tuned, STAGES[first])
    state["done"] = {stage: figures for stage, figures in state["done"].items() if STAGES.index(stage) < first}
    state["settings"].update({k: new for k, (_, new) in grown.items()})
    state.setdefault("grown", []).append({"changed": {k: list(v) for k, v in grown.items()},
                                          "set_aside": None if aside is None else str(aside),
                                          "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    _save_state(out, state)
    said = ", ".join(f"{k.replace('_', '-')} {old} -> {new}" for k, (old, new) in grown.items())
    emit_event(say, StageEnd(stage="grow", text=f"{said}: the teacher's finished runs are kept; the stages from "
                                                f"{STAGES[first]} on are made again"
                                                + (f"; what the earlier data made is in {aside}" if aside else "")))


def _set_aside(out: Path, tuned: str | None, first: str) -> Path | None:
    """Move what the stages from `first` on made (the examples, the adapter, the GGUF files, the tuned model's
    evaluation runs: its ledger rows and run folders) to OUT/earlier/N/; the base model's evaluation runs stay
    in OUT/eval/."""
    from tabcoder.sft.evaluate import LEDGER, read_ledger

    redone = STAGES[STAGES.index(first):]
    made = ([out / "data"] if "distill" in redone else []) + [out / "train"] + sorted(out.glob("tuned*.gguf"))
    rows = read_ledger(out / "eval")
    moved_rows = [row for row in rows if tuned is not None and row.get("model") == tuned]
    kept = [row for row in rows if tuned is None or row.get("model") != tuned]
    if not any(p.exists() for p in made) and not moved_rows and not (out / "eval" / "summary.md").exists():
        return None
    earlier = out / "earlier"
    number = 1 + max((int(p.name) for p in earlier.glob("*") if p.name.isdigit()), default=0)
    target = earlier / str(number)
    target.mkdir(parents=True)
    for path in made:
        if path.exists():
            shutil.move(str(path), str(target / path.name))
    if moved_rows or (out / "eval" / "summary.md").exists():
        (target / "eval" / "runs").mkdir(parents=True)
        folders = {Path(row["run_dir"]).parent for row in moved_rows if row.get("run_dir")}
        for folder in folders:
            if folder.is_dir() and folder.parent.resolve() == (out / "eval" / "runs").resolve():
                shutil.move(str(folder), str(target / "eval" / "runs" / folder.name))
        (target / "eval" / LEDGER).write_text("".join(json.dumps(row) + "\n" for row in moved_rows), encoding="utf-8")
        (out / "eval" / LEDGER).write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        if (out / "eval" / "summary.md").exists():
            shutil.move(str(out / "eval" / "summary.md"), str(target / "eval" / "summary.md"))
    return target


def _save_state(out: Path, state: dict) -> None:
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out / STATE)


# --------------------------------------------------------------------------- stages


def _tasks(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    folder = out / "tasks"
    if folder.exists():  # an interrupted generation: the same seed writes the same files again
        shutil.rmtree(folder)
    emit_event(say, StageStart(stage="tasks", total=config.tasks, done=0,
                               detail=f"generating {config.tasks} tasks (seed {config.task_seed}) in {folder}"))
    manifest = generate_tasks(folder, config.tasks, config.task_seed)
    kinds: dict[str, int] = {}
    for entry in manifest["tasks"]:
        kinds[entry["task_type"]] = kinds.get(entry["task_type"], 0) + 1
    text = f"{len(manifest['tasks'])} tasks (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
    emit_event(say, StageEnd(stage="tasks", text=text))
    return {"tasks": len(manifest["tasks"]), "by_type": kinds,
            "fallbacks": sum(1 for e in manifest["tasks"] if e["fallback"])}


def _teacher(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    tasks_root = out / "tasks"
    names = [e["name"] for e in json.loads((tasks_root / MANIFEST).read_text(encoding="utf-8"))["tasks"]]
    jobs = [sft_evaluate.RunSpec(model=config.teacher, task=name, task_dir=tasks_root / "tasks" / name,
                                 answers=tasks_root / "answers" / f"{name}.csv", seed=seed,
                                 prompt=TEACHER_STRATEGIES[config.teacher_strategy],
                                 iterations=config.teacher_iterations)
            for name in names for seed in range(config.teacher_seeds)]
    rows = sft_evaluate.run_all(jobs, out / "teacher", jobs=config.jobs, threads=config.threads, say=say,
                                stage="teacher")
    valid_runs = sum(1 for r in rows if r.get("valid_attempts"))
    attempts = sum(r.get("attempts", 0) for r in rows)
    valid = sum(r.get("valid_attempts", 0) for r in rows)
    emit_event(say, StageEnd(stage="teacher", text=f"{len(rows)} runs, {valid} of {attempts} model attempts valid, "
                                                   f"{valid_runs} runs with one"))
    return {"runs": len(rows), "attempts": attempts, "valid_attempts": valid,
            "errors": sum(1 for r in rows if "error" in r)}


def _distill(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    from tabcoder.sft.data import write_data
    from tabcoder.sft.distill import NEAR_COPY, distill

    folder = out / "data"
    if folder.exists():
        shutil.rmtree(folder)
    emit_event(say, StageStart(stage="distill", total=0, done=0, detail="verified scripts -> examples"))
    result = distill([out / "teacher" / "runs"], within=config.within, eval_fraction=0.2, seed=config.task_seed,
                     no_example_copies=False, from_scratch=True, near_copy=NEAR_COPY)
    summary = dict(result.summary, command="self-train")
    write_data(folder, {"train": result.train, "eval": result.eval}, summary)
    kinds: dict[str, int] = {}
    for example in result.train:
        kinds[example.meta["kind"]] = kinds.get(example.meta["kind"], 0) + 1
    if not result.train:
        raise ConfigError(f"the teacher's runs gave no training example ({summary['dropped']}); run more teacher "
                          "attempts (--teacher-seeds, --teacher-iterations) or more --tasks, or a stronger --teacher")
    emit_event(say, StageEnd(stage="distill", text=f"{len(result.train)} training examples ("
                             + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                             + f"), {len(result.eval)} held out; dropped: "
                             + ", ".join(f"{k} {n}" for k, n in summary["dropped"].items() if n)))
    return {"train": len(result.train), "eval": len(result.eval), "by_kind": kinds,
            "attempts_seen": summary["attempts_seen"], "dropped": summary["dropped"]}


def _train(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    from tabcoder.sft.checkpoints import TRAIN_MARKER
    from tabcoder.sft.train import TrainConfig, train

    folder = out / "train"
    resume = (folder / TRAIN_MARKER).is_file()
    emit_event(say, StageStart(stage="train", total=0, done=0,
                               detail=("resuming" if resume else "training") + f" a LoRA adapter on {config.base}"))
    result = train(TrainConfig(base=config.base, data=str(out / "data"), out=str(folder), epochs=config.epochs,
                               max_steps=config.max_steps, learning_rate=config.learning_rate,
                               grad_accum=config.grad_accum, max_length=config.max_length, lora_r=config.lora_r,
                               lora_alpha=2 * config.lora_r, device=config.device, threads=0, eval_examples=4,
                               save_every=2, gradient_checkpointing=config.gradient_checkpointing),
                   resume=resume, progress=say)
    s = result.summary
    emit_event(say, StageEnd(stage="train", text=f"{s['steps']} steps, {_seconds(s['seconds_per_step'])} s/step, peak memory "
                                                 f"{s['peak_memory_mb']:.0f} MB"))
    keep = ("steps", "seconds_per_step", "peak_memory_mb", "train_loss_first", "train_loss_last", "eval_loss_before",
            "eval_loss_after", "examples", "too_long")
    return {k: s.get(k) for k in keep}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _export(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    from tabcoder.sft.export import export

    emit_event(say, StageStart(stage="export", total=0, done=0, detail="merging the adapter into a GGUF"))
    result = export(str(out / "train"), out / "tuned.gguf", quantize=config.quantize,
                    progress=lambda text: emit_event(say, StageItem(stage="export", done=0, total=0, text=text)))
    model = result.quantized or result.gguf
    emit_event(say, StageEnd(stage="export", text=f"{model} in {result.seconds:.0f} s"))
    return {"gguf": str(result.gguf), "model": f"llamacpp:{model}", "seconds_export": round(result.seconds, 1)}


def _evaluate(out: Path, config: SelfTrainConfig, say: Progress, state: dict) -> dict:
    tuned = state["done"]["export"]["model"]
    models = [config.base, tuned]
    tasks = sft_evaluate.suite_tasks(config.eval_suites, config.eval_tasks)
    jobs = [sft_evaluate.RunSpec(model=model, task=task.name, task_dir=task.path, answers=task.answers, seed=seed,
                                 prompt=prompt, iterations=config.eval_iterations, time_budget=config.eval_time_budget,
                                 overrides=task.overrides)
            for prompt in config.eval_prompts for task in tasks for seed in range(config.eval_seeds)
            for model in models]  # base and tuned side by side, task after task: a cut-short evaluation compares
    rows = sft_evaluate.run_all(jobs, out / "eval", jobs=config.eval_jobs, threads=config.threads, say=say,
                                stage="evaluate")
    labels = {config.base: "base", tuned: "tuned"}
    table = sft_evaluate.table(rows, labels)
    (out / "eval" / "summary.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    emit_event(say, StageEnd(stage="evaluate", text=f"{len(rows)} runs; table in {out / 'eval' / 'summary.md'}"))
    return {"runs": len(rows), "by_model": sft_evaluate.figures(rows, labels)}


_STAGE_FUNCTIONS = {"tasks": _tasks, "teacher": _teacher, "distill": _distill, "train": _train, "export": _export,
                    "evaluate": _evaluate}
