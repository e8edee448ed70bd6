"""Self-training: from-scratch examples rebuilt exactly as a `--no-example` run words its first prompt, the
evaluation ledger that a second call goes on from, and the whole loop (`tabcoder sft self-train`) on a
generated task with a replayed teacher and the packaged SmolLM2-135M as the model that is tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import copy_edit_replay, tabcoder, write_replay

from tabcoder.errors import ConfigError
from tabcoder.journal import Journal
from tabcoder.sft.distill import distill
from tabcoder.sft.evaluate import RunSpec, figures, read_ledger, run_all, table
from tabcoder.sft.selftrain import SelfTrainConfig, self_train
from tabcoder.sft.tasks import generate_tasks

TEACHER = ["--example", "--baseline", "--strategy", "reflexion", "--iterations", "1", "--time-budget", "none",
           "--no-ensemble", "--confirm-folds", "0"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("st") / "tasks"
    generate_tasks(root, 2, seed=5)
    return root


def _run(task: Path, replay: Path, out: Path, *options: str) -> Path:
    done = tabcoder("run", task, "--model", f"replay:{replay}", "--json", "--out", out, *options)
    assert done.stdout, done.stderr[-2000:]
    return Path(json.loads(done.stdout)["run_dir"])


def test_a_from_scratch_example_is_the_no_example_first_prompt_with_the_verified_script(tasks, tmp_path):
    task = next((tasks / "tasks").iterdir())
    teacher = _run(task, copy_edit_replay(tmp_path), tmp_path / "teacher", *TEACHER)
    scratch = _run(task, write_replay(tmp_path / "junk.jsonl", ["```python\nprint(1)\n```"]), tmp_path / "scratch",
                   "--no-example", "--no-baseline", "--strategy", "reflexion", "--iterations", "1",
                   "--time-budget", "none", "--no-ensemble", "--confirm-folds", "0")
    first = Journal.load(scratch / "journal.jsonl").attempts[0]
    verified = Journal.load(teacher / "journal.jsonl").attempts[1]
    assert verified.valid and verified.kind == "improve" and verified.edit_format == "functions"

    result = distill([tmp_path / "teacher"], from_scratch=True)
    by_kind = {e.meta["kind"]: e for e in result.train}
    assert set(by_kind) == {"improve", "from-scratch"}
    made = by_kind["from-scratch"]
    assert made.messages[:-1] == first.messages  # exactly what a --no-example --no-baseline run asks first
    assert made.messages[-1] == {"role": "assistant", "content": f"```python\n{verified.code.strip()}\n```"}
    assert "def add_features(df):" in by_kind["improve"].messages[-1]["content"]  # the edit, not the script
    assert "import pandas" not in by_kind["improve"].messages[-1]["content"]

    # without from_scratch nothing is rebuilt; an improvement that is a near copy of its parent is dropped
    assert [e.meta["kind"] for e in distill([tmp_path / "teacher"]).train] == ["improve"]


def test_near_copies_of_the_parent_are_left_out_when_asked(tasks, tmp_path):
    task = next((tasks / "tasks").iterdir())
    baseline = Journal.load(_run(task, copy_edit_replay(tmp_path), tmp_path / "first", *TEACHER)
                            / "journal.jsonl").attempts[0].code
    nearly = baseline.replace("MAX_CATEGORIES = 250", "MAX_CATEGORIES = 200")
    assert nearly != baseline
    replay = write_replay(tmp_path / "whole.jsonl", ["Fewer categories.", f"```python\n{nearly}\n```"])
    _run(task, replay, tmp_path / "runs", *TEACHER, "--edit-format", "whole")
    kept = distill([tmp_path / "runs"])
    assert [e.meta["kind"] for e in kept.train] == ["improve"]
    dropped = distill([tmp_path / "runs"], near_copy=0.97)
    assert dropped.train == [] and dropped.summary["dropped"]["near_copy"] == 1
    with pytest.raises(ConfigError, match="near_copy"):
        distill([tmp_path / "runs"], near_copy=1.5)


def test_a_whole_script_sent_for_an_edit_is_learnt_as_the_edit_and_a_docstring_change_not_at_all(tasks, tmp_path):
    task = next((tasks / "tasks").iterdir())
    baseline = Journal.load(_run(task, copy_edit_replay(tmp_path), tmp_path / "first", *TEACHER)
                            / "journal.jsonl").attempts[0].code
    tuned = baseline.replace("MAX_CATEGORIES = 250", "MAX_CATEGORIES = 200")
    _run(task, write_replay(tmp_path / "w.jsonl", ["Fewer categories.", f"```python\n{tuned}\n```"]),
         tmp_path / "edit", *TEACHER)  # the prompt asks for functions; the reply is the whole script
    found = distill([tmp_path / "edit"], near_copy=0.97)
    [example] = found.train
    assert example.meta["converted"] == "whole script -> functions edit"
    assert example.messages[-1]["content"] == "```python\nMAX_CATEGORIES = 200\n```"
    assert distill([tmp_path / "edit"]).train[0].messages[-1]["content"].startswith("```python\nimport joblib")

    respelled = baseline.replace('"""The model, fitted on all rows of train."""', '"""Fit the model."""')
    assert respelled != baseline
    _run(task, write_replay(tmp_path / "d.jsonl", ["A docstring.", f"```python\n{respelled}\n```"]),
         tmp_path / "doc", *TEACHER)
    found = distill([tmp_path / "doc"], near_copy=0.97, from_scratch=True)
    assert found.summary["dropped"]["no_change"] == 1
    assert [e.meta["kind"] for e in found.train] == ["from-scratch"]  # the working script is still learnt


def test_the_evaluation_ledger_is_what_a_second_call_goes_on_from(tasks, tmp_path):
    names = sorted(p.name for p in (tasks / "tasks").iterdir())
    replay = copy_edit_replay(tmp_path)
    specs = [RunSpec(model=f"replay:{replay}", task=name, task_dir=tasks / "tasks" / name,
                     answers=tasks / "answers" / f"{name}.csv", seed=0, prompt="teacher", iterations=1)
             for name in names]
    events: list[tuple[str, dict]] = []
    rows = run_all(specs[:1], tmp_path / "eval", jobs=1, threads=1, say=lambda k, d: events.append((k, d)),
                   stage="evaluate")
    assert rows[0]["attempts"] == 1 and rows[0]["valid_attempts"] == 1 and rows[0]["final_valid"]
    assert rows[0]["first_attempt_valid"] and rows[0]["test_score"] is not None
    events.clear()
    rows = run_all(specs, tmp_path / "eval", jobs=2, threads=1, say=lambda k, d: events.append((k, d)),
                   stage="evaluate")
    kind, start = events[0]
    assert kind == "stage_start" and (start["total"], start["done"]) == (2, 1)
    assert [k for k, _ in events].count("stage_item") == 1  # only the run not done before
    assert len(read_ledger(tmp_path / "eval")) == 2 and [r["task"] for r in rows] == names
    found = figures(rows, {f"replay:{replay}": "teacher"})
    assert found["teacher / teacher"]["runs"] == 2 and found["teacher / teacher"]["valid_attempts"] == 2
    lines = table(rows, {f"replay:{replay}": "teacher"})
    assert lines[2].startswith("| teacher | teacher | 2 |")


def test_settings_are_checked_and_a_folder_of_something_else_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--tasks"):
        self_train(SelfTrainConfig(out=str(tmp_path / "a"), tasks=1))
    with pytest.raises(ConfigError, match="eval prompts"):
        self_train(SelfTrainConfig(out=str(tmp_path / "a"), eval_prompts=["clever"]))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a self-training folder"):
        self_train(SelfTrainConfig(out=str(mine)))
    assert (mine / "notes.txt").read_text() == "keep"



def test_the_teacher_strategy_sets_its_runs_options_and_is_a_defining_setting(tmp_path):
    spec = RunSpec(model="local", task="t", task_dir=tmp_path, answers=None, seed=0, prompt="teacher-tree",
                   iterations=3)
    command = spec.command(tmp_path / "runs", threads=1)
    assert command[command.index("--strategy") + 1] == "tree" and "--example" in command
    assert command[command.index("--iterations") + 1] == "3"
    with pytest.raises(ConfigError, match="--teacher-strategy must be one of reflexion, tree"):
        self_train(SelfTrainConfig(out=str(tmp_path / "a"), teacher_strategy="beam"))
    out = tmp_path / "st"
    self_train(SelfTrainConfig(out=str(out), tasks=2, teacher_strategy="tree", stop_after="tasks"))
    (out / "teacher").mkdir()
    (out / "teacher" / "ledger.jsonl").write_text('{"key": "a run"}\n')  # the teacher's runs have begun
    with pytest.raises(ConfigError, match="teacher_strategy: 'tree' then, 'reflexion' now"):
        self_train(SelfTrainConfig(out=str(out), tasks=2, teacher_strategy="reflexion", stop_after="tasks"))
    self_train(SelfTrainConfig(out=str(out), tasks=2, stop_after="tasks"))  # tree is the default
    # a folder made before the setting existed was made with the default of that time, reflexion
    state = json.loads((out / "selftrain.json").read_text())
    del state["settings"]["teacher_strategy"]
    (out / "selftrain.json").write_text(json.dumps(state))
    self_train(SelfTrainConfig(out=str(out), tasks=2, teacher_strategy="reflexion", stop_after="tasks"))
    with pytest.raises(ConfigError, match="teacher_strategy: 'reflexion' then, 'tree' now"):
        self_train(SelfTrainConfig(out=str(out), tasks=2, stop_after="tasks"))
    done = tabcoder("sft", "self-train", "--help")
    assert "--teacher-strategy [reflexion|tree]" in done.stdout


def test_a_setting_may_change_until_the_stage_it_shapes_has_begun(tmp_path):
    from tabcoder.sft.selftrain import FIRST_STAGE, FREE, STAGES

    assert set(FIRST_STAGE) == set(SelfTrainConfig.__dataclass_fields__) - set(FREE) - {"out"}
    assert set(FIRST_STAGE.values()) <= set(STAGES)
    out = tmp_path / "st"
    self_train(SelfTrainConfig(out=str(out), tasks=3, stop_after="tasks"))
    self_train(SelfTrainConfig(out=str(out), tasks=3, max_steps=4, eval_iterations=2, teacher_iterations=5,
                               stop_after="tasks"))  # nothing after the tasks has begun
    settings = json.loads((out / "selftrain.json").read_text())["settings"]
    assert (settings["max_steps"], settings["eval_iterations"], settings["teacher_iterations"]) == (4, 2, 5)
    with pytest.raises(ConfigError, match="task_seed: 0 then, 1 now"):
        self_train(SelfTrainConfig(out=str(out), tasks=3, task_seed=1, stop_after="tasks"))
    (out / "teacher").mkdir()
    (out / "teacher" / "ledger.jsonl").write_text('{"key": "a run"}\n')  # the teacher stage has begun
    with pytest.raises(ConfigError, match="teacher_iterations: 5 then, 3 now"):
        self_train(SelfTrainConfig(out=str(out), tasks=3, max_steps=4, eval_iterations=2, stop_after="tasks"))


def _made_by_later_stages(out: Path) -> str:
    """What the stages after `tasks` leave, made by hand (the stages themselves are tested above and below);
    returns the tuned model's name."""
    tuned = f"llamacpp:{out / 'tuned.q4_k_m.gguf'}"
    state = json.loads((out / "selftrain.json").read_text())
    state["done"].update({stage: {} for stage in ("teacher", "distill", "train")})
    state["done"].update(export={"model": tuned}, evaluate={})
    (out / "selftrain.json").write_text(json.dumps(state))
    (out / "teacher").mkdir()
    (out / "teacher" / "ledger.jsonl").write_text('{"key": "teacher-run"}\n')
    for name in ("data/train.jsonl", "train/adapter.bin", "tuned.gguf", "tuned.q4_k_m.gguf"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    rows = []
    for model, folder in (("local", "local-no-example"), (tuned, "tuned-no-example")):
        run_dir = out / "eval" / "runs" / folder / "20261208-gen"
        run_dir.mkdir(parents=True)
        rows.append({"key": f"{model}|no-example|t|0", "model": model, "run_dir": str(run_dir)})
    (out / "eval" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "eval" / "summary.md").write_text("| table |")
    return tuned


def test_a_longer_training_keeps_the_examples_and_sets_aside_the_shorter_ones_adapter(tmp_path):
    out = tmp_path / "st"
    self_train(SelfTrainConfig(out=str(out), tasks=3, max_steps=8, stop_after="tasks"))
    tuned = _made_by_later_stages(out)
    with pytest.raises(ConfigError, match="max_steps: 8 then, 4 now.*may grow, never shrink"):
        self_train(SelfTrainConfig(out=str(out), tasks=3, max_steps=4, stop_after="distill"))
    self_train(SelfTrainConfig(out=str(out), tasks=3, max_steps=24, stop_after="distill"))
    state = json.loads((out / "selftrain.json").read_text())
    assert list(state["done"]) == ["tasks", "teacher", "distill"] and state["settings"]["max_steps"] == 24
    assert (out / "data" / "train.jsonl").read_text() == "data/train.jsonl"  # the examples stay
    earlier = out / "earlier" / "1"
    assert (earlier / "train" / "adapter.bin").is_file() and not (out / "train").exists()
    assert (earlier / "tuned.q4_k_m.gguf").is_file() and not (earlier / "data").exists()
    assert [r["model"] for r in read_ledger(out / "eval")] == ["local"]
    assert [r["model"] for r in read_ledger(earlier / "eval")] == [tuned]


def test_more_tasks_or_teacher_seeds_keep_the_teachers_runs_and_set_aside_what_the_smaller_data_made(tmp_path):
    out = tmp_path / "st"
    self_train(SelfTrainConfig(out=str(out), tasks=3, stop_after="tasks"))
    first_task = sorted((out / "tasks" / "tasks").iterdir())[0]
    before = {p.relative_to(first_task): p.read_bytes() for p in first_task.rglob("*") if p.is_file()}
    tuned = _made_by_later_stages(out)

    with pytest.raises(ConfigError, match="tasks: 3 then, 2 now.*may grow, never shrink"):
        self_train(SelfTrainConfig(out=str(out), tasks=2, stop_after="tasks"))
    events: list[tuple[str, dict]] = []
    self_train(SelfTrainConfig(out=str(out), tasks=4, stop_after="tasks"), progress=lambda k, d: events.append((k, d)))
    state = json.loads((out / "selftrain.json").read_text())
    assert list(state["done"]) == ["tasks"] and state["settings"]["tasks"] == 4
    assert state["grown"][0]["changed"] == {"tasks": [3, 4]}
    assert any(k == "stage_end" and d["stage"] == "grow" and "tasks 3 -> 4" in d["text"] for k, d in events)
    assert len(list((out / "tasks" / "tasks").iterdir())) == 4
    assert {p.relative_to(first_task): p.read_bytes() for p in first_task.rglob("*") if p.is_file()} == before
    assert (out / "teacher" / "ledger.jsonl").read_text() == '{"key": "teacher-run"}\n'  # its runs are kept
    earlier = out / "earlier" / "1"
    for name in ("data/train.jsonl", "train/adapter.bin", "tuned.gguf", "tuned.q4_k_m.gguf"):
        assert (earlier / name).read_text() == name and not (out / name).exists()
    assert [r["model"] for r in read_ledger(out / "eval")] == ["local"]  # the base's runs stay valid
    assert (out / "eval" / "runs" / "local-no-example" / "20261208-gen").is_dir()
    assert [r["model"] for r in read_ledger(earlier / "eval")] == [tuned]
    assert (earlier / "eval" / "runs" / "tuned-no-example" / "20261208-gen").is_dir()
    assert (earlier / "eval" / "summary.md").read_text() == "| table |"

    # more teacher seeds: the tasks stay done; nothing was made since, so nothing is set aside
    self_train(SelfTrainConfig(out=str(out), tasks=4, teacher_seeds=3, stop_after="tasks"))
    state = json.loads((out / "selftrain.json").read_text())
    assert list(state["done"]) == ["tasks"] and state["settings"]["teacher_seeds"] == 3
    assert state["grown"][1]["set_aside"] is None and not (out / "earlier" / "2").exists()


@pytest.mark.slow
def test_the_whole_loop_stops_resumes_and_reports_base_against_tuned(tmp_path):
    pytest.importorskip("peft")
    replay = copy_edit_replay(tmp_path)
    out = tmp_path / "st"
    args = ["sft", "self-train", "--out", out, "--tasks", "2", "--task-seed", "1", "--teacher", f"replay:{replay}",
            "--teacher-seeds", "1", "--teacher-iterations", "1", "--teacher-strategy", "reflexion", "--base", "local:smollm2-135m", "--max-steps", "1",
            "--grad-accum", "1",
            "--max-length", "4096", "--eval-suite", "builtin", "--eval-tasks", "iris", "--eval-iterations", "1",
            "--jobs", "2", "--eval-jobs", "2", "--quantize", "q8_0"]
    first = tabcoder(*args, "--stop-after", "distill")
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((out / "selftrain.json").read_text())
    assert list(state["done"]) == ["tasks", "teacher", "distill"]
    assert state["done"]["teacher"]["valid_attempts"] == 2
    assert state["done"]["distill"]["by_kind"]["from-scratch"] >= 1
    assert "stopped after" in first.stdout

    at = args.index("--teacher-iterations") + 1
    changed = tabcoder(*args[:at], "2", *args[at + 1:])  # the teacher stage is done: its settings are fixed
    assert changed.returncode == 2 and "other settings" in changed.stderr and "teacher_iterations" in changed.stderr

    done = tabcoder(*args, timeout=1800)  # about 3 minutes alone on 2 cores
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "selftrain.json").read_text())
    assert list(state["done"]) == ["tasks", "teacher", "distill", "train", "export", "evaluate"]
    assert state["done"]["train"]["steps"] == 1 and state["done"]["train"]["peak_memory_mb"] > 0
    assert (out / "tuned.q8_0.gguf").is_file()
    ledger = read_ledger(out / "eval")
    assert sorted(r["model"] for r in ledger) == sorted(["local:smollm2-135m", f"llamacpp:{out / 'tuned.q8_0.gguf'}"])
    assert all(r["prompt"] == "no-example" and "error" not in r for r in ledger)
    assert "| base | no-example | 1 |" in done.stdout and "| tuned | no-example | 1 |" in done.stdout
    assert (out / "eval" / "summary.md").read_text().splitlines()[0] in done.stdout

    again = tabcoder(*args)  # everything done: nothing is run again, the same table is printed
    assert again.returncode == 0 and len(read_ledger(out / "eval")) == 2
    assert "| base | no-example | 1 |" in again.stdout
