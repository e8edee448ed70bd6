"""The AutoML baselines (flaml, autogluon) get the wall time of their task's LLM cells: the dependency in
the local, pool and Ray executors, the mean over several LLM systems, the fixed budget of a bench of
baselines only, resume, and LLM cells that failed."""

from __future__ import annotations

import importlib.util
import json
import math
import sqlite3
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tabcoder.bench import BenchSettings, LocalExecutor, ResultStore, ensure_builtin_suite, load_suite, run_bench
from tabcoder.bench.baselines import AUTOML, pin_conflicts, unavailable_reason
from tabcoder.bench.cells import BASELINE, FIXED, LLM, SAME_TIME, CellSpec, plan_cells
from tabcoder.bench.executors import Executor, WorkQueue
from tabcoder.bench.matrix import SameTime
from tabcoder.bench.report import build_report, fmt_time_given, format_report
from tabcoder.prompting import fence

COPY_SAMPLE = 'import shutil\nshutil.copyfile("input/sample_submission.csv", "submission.csv")\n'
REPLIES = [{"text": "A constant submission will not beat the baseline.", "prompt_tokens": 10, "completion_tokens": 5},
           {"text": fence(COPY_SAMPLE), "prompt_tokens": 100, "completion_tokens": 20}]
needs_flaml = pytest.mark.skipif(unavailable_reason("flaml") is not None,
                                 reason="FLAML is not installed (pip install 'tabcoder[flaml]')")


def write_replay(path: Path, replies=REPLIES) -> str:
    path.write_text("".join(json.dumps(reply) + "\n" for reply in replies))
    return f"replay:{path}"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return load_suite(ensure_builtin_suite(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> str:
    return write_replay(tmp_path_factory.mktemp("replay") / "copy.jsonl")


def settings(models: list[str], out: Path, baselines=("dummy", "flaml"), **extra) -> BenchSettings:
    # no confirmation folds: an LLM cell takes about 6 s instead of 16 s, and so does the AutoML cell after it
    return BenchSettings(models=models, strategies=["reflexion"], seeds=1, baselines=list(baselines),
                         run_options={"iterations": 1, "timeout": 60, "confirm_folds": 0}, out_dir=out, **extra)


def rows(db: Path) -> dict[tuple[str, str], object]:
    with ResultStore(db) as store:
        return {(r.task, r.system): r for r in store.rows()}


def llm_rows(found: dict, task: str) -> list:
    return [r for (t, _), r in found.items() if t == task and r.kind == "llm"]


@dataclass
class Call:
    task: str
    baseline: str
    seconds: float | None
    llm_status: dict  # the task's LLM cells in the results file when the baseline was built


@dataclass
class Spy:
    """Records the seconds every baseline is built with (and what the results file said about its task's LLM
    cells at that moment); an AutoML baseline is replaced by hgb, so no AutoML library runs."""

    db: Path | None = None
    calls: list[Call] = field(default_factory=list)

    def of(self, baseline: str) -> dict[str, Call]:
        return {c.task: c for c in self.calls if c.baseline == baseline}


@pytest.fixture
def spy(monkeypatch) -> Spy:
    import tabcoder.bench.baselines as baselines
    import tabcoder.bench.matrix as matrix

    found = Spy()
    real = baselines.make_baseline

    def spying(name, task, *, seed, seconds, run_dir=None, threads=1):
        conn = sqlite3.connect(f"file:{found.db}?mode=ro", uri=True)
        status = dict(conn.execute("SELECT key, status FROM cells WHERE kind='llm' AND task=?", (task.name,)))
        conn.close()
        found.calls.append(Call(task.name, name, seconds, status))
        return real("hgb" if name in AUTOML else name, task, seed=seed, seconds=seconds, run_dir=run_dir,
                    threads=threads)

    monkeypatch.setattr(baselines, "make_baseline", spying)
    monkeypatch.setattr(matrix, "unavailable_reason", lambda name: None)  # autogluon too, replaced by hgb
    return found


# =========================================================================== real FLAML, each executor


def check_same_time(found: dict, task: str, baseline: str = "flaml") -> None:
    (llm,) = llm_rows(found, task)
    automl = found[(task, baseline)]
    assert llm.status == "done" and automl.status == "done" and automl.valid == 1
    assert automl.time_rule == SAME_TIME and automl.time_given == llm.seconds > 1
    assert json.loads(automl.time_source) == {llm.key: llm.seconds}
    assert automl.started >= llm.finished  # handed out after its LLM cell was recorded
    assert json.loads((Path(automl.run_dir) / "run.json").read_text())["time_budget"] == automl.time_given


@needs_flaml
def test_flaml_gets_the_wall_time_of_its_tasks_llm_cell(suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path), db, LocalExecutor(1))
    assert summary.ran == 3 and summary.errors == 0
    found = rows(db)
    check_same_time(found, "iris")
    flaml = found[("iris", "flaml")]
    assert flaml.seconds >= 0.8 * flaml.time_given  # FLAML searched for about that long (then refitted)
    assert found[("iris", "dummy")].time_given is None  # dummy and hgb take no time budget
    report = build_report(list(found.values()))
    summary = {s.system: s for s in report.systems}["flaml"]
    assert summary.time_given == flaml.time_given and summary.time_rule == SAME_TIME
    text = format_report(report)
    assert f"| {fmt_time_given(summary)} |" in text and "time given: the seconds" in text
    assert fmt_time_given(summary).startswith("same as tabcoder (")


@needs_flaml
def test_a_process_pool_runs_flaml_after_its_llm_cell(suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    # two workers and two cells: without the dependency both would start at once
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path, baselines=("flaml",)), db,
                        LocalExecutor(2))
    assert summary.ran == 2 and summary.errors == 0
    check_same_time(rows(db), "iris")


@needs_flaml
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'tabcoder[ray]')")
def test_ray_runs_flaml_after_its_llm_cell(suite, replay, tmp_path):
    import ray

    from tabcoder.bench import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        db = tmp_path / "bench.sqlite"
        summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path, baselines=("flaml",)), db,
                            RayExecutor())
    finally:
        ray.shutdown()
    assert summary.ran == 2 and summary.errors == 0
    check_same_time(rows(db), "iris")


@pytest.mark.skipif(unavailable_reason("autogluon") is not None,
                    reason=str(unavailable_reason("autogluon")))
def test_autogluon_gets_the_wall_time_of_its_tasks_llm_cell(suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path, baselines=("autogluon",)), db,
                        LocalExecutor(1))
    assert summary.ran == 2 and summary.errors == 0
    found = rows(db)
    check_same_time(found, "iris", "autogluon")
    details = json.loads((Path(found[("iris", "autogluon")].run_dir) / "run.json").read_text())["details"]
    assert details["time_limit"] == found[("iris", "autogluon")].time_given


# =========================================================================== the rule, with a spy


def test_several_llm_systems_give_the_mean_of_their_wall_times(suite, tmp_path, spy):
    # (that each task and seed gets the mean of its own LLM cells: test_same_time_waits_per_task_and_seed...)
    models = [write_replay(tmp_path / "a.jsonl"), write_replay(tmp_path / "b.jsonl")]
    spy.db = db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings(models, tmp_path, baselines=("hgb", "flaml", "autogluon")),
                        db, LocalExecutor(1))
    assert summary.ran == 5 and summary.errors == 0
    found = rows(db)
    llm = llm_rows(found, "iris")
    assert len(llm) == 2
    mean = round(statistics.fmean(r.seconds for r in llm), 2)
    for name in ("flaml", "autogluon"):
        call, row = spy.of(name)["iris"], found[("iris", name)]
        assert call.seconds == row.time_given == mean and row.time_rule == SAME_TIME
        assert json.loads(row.time_source) == {r.key: r.seconds for r in llm}
        assert set(call.llm_status.values()) == {"done"} and len(call.llm_status) == 2  # both ran before it
    assert spy.of("hgb")["iris"].seconds is None


def test_a_bench_of_baselines_only_gives_the_fixed_budget(suite, tmp_path, spy):
    spy.db = db = tmp_path / "default.sqlite"
    run_bench(suite.select(["iris"]), settings([], tmp_path, baselines=("flaml", "autogluon")), db, LocalExecutor(1))
    found = rows(db)
    for name in ("flaml", "autogluon"):
        assert spy.of(name)["iris"].seconds == found[("iris", name)].time_given == 60.0
        assert found[("iris", name)].time_rule == FIXED and found[("iris", name)].time_source is None
    assert "fixed 60 s" in format_report(build_report(list(found.values())))

    spy.calls.clear()
    spy.db = db = tmp_path / "explicit.sqlite"
    run_bench(suite.select(["iris"]), settings([], tmp_path, baselines=("flaml",), baseline_seconds=7.0), db,
              LocalExecutor(1))
    assert spy.of("flaml")["iris"].seconds == rows(db)[("iris", "flaml")].time_given == 7.0


def test_an_automl_cell_added_later_gets_the_seconds_of_llm_cells_already_done(suite, replay, tmp_path, spy):
    spy.db = db = tmp_path / "bench.sqlite"
    run_bench(suite.select(["iris"]), settings([replay], tmp_path, baselines=("dummy",)), db, LocalExecutor(1))
    (llm,) = llm_rows(rows(db), "iris")
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path), db, LocalExecutor(1))
    assert summary.ran == 1 and summary.already_done == 2  # only flaml ran; the LLM cell was not run again
    flaml = rows(db)[("iris", "flaml")]
    assert spy.of("flaml")["iris"].seconds == flaml.time_given == llm.seconds and flaml.time_rule == SAME_TIME


class KilledAt(Executor):
    """Runs cells inline and is 'killed' (Ctrl-C) when it is handed the cell of baseline `name`."""

    name, workers = "local", 1

    def __init__(self, baseline: str) -> None:
        self.baseline = baseline

    def map_unordered(self, fn, items, on_submit=lambda item: None):
        for item in items:
            on_submit(item)
            if item.model == self.baseline:
                raise KeyboardInterrupt
            yield item, fn(item)


def test_a_killed_bench_resumes_flaml_with_the_llm_cells_seconds(suite, replay, tmp_path, spy):
    spy.db = db = tmp_path / "bench.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_bench(suite.select(["iris"]), settings([replay], tmp_path), db, KilledAt("flaml"))
    found = rows(db)
    (llm,) = llm_rows(found, "iris")
    assert llm.status == "done" and found[("iris", "flaml")].status == "running"
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path), db, LocalExecutor(1))
    assert summary.interrupted == 1 and summary.ran == 1 and summary.already_done == 2
    flaml = rows(db)[("iris", "flaml")]
    assert flaml.status == "done" and spy.of("flaml")["iris"].seconds == flaml.time_given == llm.seconds


def test_failed_llm_cells_hold_flaml_back_until_they_succeed(suite, tmp_path, spy):
    path = tmp_path / "model.jsonl"
    model = write_replay(path, REPLIES[:1])  # no reply for the script: the search is cut short, an error
    spy.db = db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings([model], tmp_path), db, LocalExecutor(1))
    assert summary.errors == 2
    found = rows(db)
    (llm,) = llm_rows(found, "iris")
    flaml = found[("iris", "flaml")]
    assert llm.status == "error" and flaml.status == "error" and "flaml" not in {c.baseline for c in spy.calls}
    assert "no LLM cell of this task and seed finished" in flaml.error and llm.key in flaml.error
    assert flaml.time_given is None and json.loads(flaml.time_source) == {llm.key: "error"}

    write_replay(path)  # the same model string (same keys), now with both replies
    summary = run_bench(suite.select(["iris"]), settings([model], tmp_path), db, LocalExecutor(1))
    assert summary.ran == 2 and summary.errors == 0 and summary.already_done == 1
    found = rows(db)
    (llm,) = llm_rows(found, "iris")
    assert found[("iris", "flaml")].time_given == llm.seconds == spy.of("flaml")["iris"].seconds


class TakesOnce(Executor):
    """An executor that reads all its items before running any (as if it only knew plain lists)."""

    name, workers = "local", 1

    def map_unordered(self, fn, items, on_submit=lambda item: None):
        batch = list(items)
        for item in batch:
            on_submit(item)
        for item in batch:
            yield item, fn(item)


def test_an_executor_that_takes_its_items_once_gets_the_automl_cells_in_a_later_round(suite, replay, tmp_path, spy):
    spy.db = db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings([replay], tmp_path), db, TakesOnce())
    assert summary.ran == 3 and summary.errors == 0
    (llm,) = llm_rows(rows(db), "iris")
    assert spy.of("flaml")["iris"].seconds == llm.seconds


# =========================================================================== units


def test_plan_runs_automl_cells_after_their_llm_cells_and_keys_name_the_systems(suite, replay, tmp_path):
    plan = plan_cells(suite.select(["iris"]), BenchSettings(models=[replay], strategies=["reflexion", "tree"],
                                                            baselines=["flaml", "dummy", "autogluon"], out_dir=tmp_path))
    assert [c.system for c in plan] == ["dummy", f"{replay}/reflexion", f"{replay}/tree", "flaml", "autogluon"]
    llm_hashes = {c.system: c.config_hash for c in plan if c.kind == LLM}
    assert plan[3].config["same_time_as"] == sorted(f"{s}@{h}" for s, h in llm_hashes.items())
    assert "time_budget" not in plan[3].config and plan[3].given is None
    # a bench of baselines only keeps the keys it had before the same-time rule
    alone = plan_cells(suite.select(["iris"]), BenchSettings(models=[], strategies=["reflexion"], baselines=["flaml"],
                                                             baseline_seconds=60.0, out_dir=tmp_path))
    assert alone[0].config == {"valid_fraction": 0.2, "threads": 1, "time_budget": 60.0}


def spec(task: str, kind: str, model: str, seed: int = 0, config=None) -> CellSpec:
    return CellSpec("s", task, "/t", "/a", {}, kind, model, "reflexion" if kind == LLM else "", seed, config or {},
                    "/out")


def test_same_time_waits_per_task_and_seed_and_takes_the_mean_of_the_done_cells(tmp_path):
    cells = [spec(task, kind, model, seed) for task in ("a", "b") for seed in (0, 1)
             for kind, model in ((LLM, "m1"), (LLM, "m2"), (BASELINE, "flaml"), (BASELINE, "hgb"))]
    by = {(c.task, c.model, c.seed): c for c in cells}
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_cells(c.identity() for c in cells)
        store.record(by[("a", "m1", 0)].key, "done", {"seconds": 10.0})  # done in an earlier bench
        runnable = [c for c in cells if c is not by[("a", "m1", 0)]]
        rule = SameTime(store, cells, runnable)
        flaml = by[("a", "flaml", 0)]
        assert not rule.ready(flaml) and rule.ready(by[("a", "hgb", 0)]) and rule.ready(by[("a", "m2", 0)])
        store.record(by[("a", "m2", 0)].key, "done", {"seconds": 31.0})
        rule.finished(by[("a", "m2", 0)])
        assert rule.ready(flaml) and not rule.ready(by[("a", "flaml", 1)]) and not rule.ready(by[("b", "flaml", 0)])
        prepared = rule.prepare(flaml)
        assert prepared.key == flaml.key and prepared.given.seconds == 20.5 and prepared.given.rule == SAME_TIME
        assert rule.prepare(by[("a", "hgb", 0)]).given is None

        store.record(by[("b", "m1", 0)].key, "done", {"seconds": 0.2})  # tiny: held to MIN_SECONDS
        store.record(by[("b", "m2", 0)].key, "error", {"error": "server down"})
        assert rule.given(by[("b", "flaml", 0)]).seconds == 1.0
        assert rule.given(by[("b", "flaml", 0)]).source == {by[("b", "m1", 0)].key: 0.2, by[("b", "m2", 0)].key: "error"}
        store.record(by[("b", "m1", 1)].key, "error", {})
        store.record(by[("b", "m2", 1)].key, "error", {})
        assert rule.given(by[("b", "flaml", 1)]).seconds is None  # nothing to match: the cell becomes an error

        alone = spec("c", BASELINE, "autogluon", config={"time_budget": 5})
        assert SameTime(store, [alone], [alone]).given(alone).seconds == 5.0  # no LLM cell in the plan: fixed


def test_work_queue_hands_out_a_waiting_item_after_what_it_waits_for_was_handled():
    for workers in (1, 2):
        handled: set[float] = set()
        seen_at_prepare: dict[float, set[float]] = {}

        def prepare(item, handled=handled, seen=seen_at_prepare):
            seen[item] = set(handled)
            return item

        queue = WorkQueue([16.0, 4.0, 9.0], ready=lambda item, handled=handled: item != 16.0 or 4.0 in handled,
                          prepare=prepare)
        submitted = []
        for item, result in LocalExecutor(workers).map_unordered(math.sqrt, queue, submitted.append):
            assert result == math.sqrt(item)
            handled.add(item)
        assert sorted(submitted) == [4.0, 9.0, 16.0] and submitted.index(16.0) > submitted.index(4.0)
        assert 4.0 in seen_at_prepare[16.0] and len(queue) == 0


def test_pin_conflicts_name_the_versions_autogluon_refuses():
    installed = {"pandas": "3.1.1", "numpy": "2.4.6", "torch": None}.get
    requirements = ["pandas<2.4.0,>=2.0.0", "numpy<2.6.0,>=1.25.0", 'torch<2.14,>=2.10; extra == "fastai"',
                    "catboost<1.3,>=1.2", "not a requirement !"]
    assert pin_conflicts(requirements, installed) == ["pandas 3.1.1 (needs <2.4.0,>=2.0.0)"]
    reason = unavailable_reason("autogluon")
    assert reason is None or "pip install 'tabcoder[autogluon]'" in reason
