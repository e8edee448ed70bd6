"""Benchmark runs end to end with the replay backend and a real sandbox: rows, resume, executors, Ray."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tabcoder.bench import BenchSettings, LocalExecutor, ResultStore, ensure_builtin_suite, load_suite, run_bench
from tabcoder.bench.cells import CellOutcome, CellSpec, attempt_counts
from tabcoder.bench.executors import Executor
from tabcoder.errors import ConfigError
from tabcoder.journal import Attempt
from tabcoder.prompting import fence

# A "model" whose script submits the sample submission: valid on any task, fast. The run's first step is the
# harness's baseline script (attempt 0); reflexion then reflects on it (the first reply) and writes its one
# attempt (the second reply), which the baseline beats.
COPY_SAMPLE = 'import shutil\nshutil.copyfile("input/sample_submission.csv", "submission.csv")\n'
COLUMNS = ("key", "status", "metric", "validation_score", "test_score", "valid", "attempts", "valid_attempts",
           "code_sha256")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = ensure_builtin_suite(tmp_path_factory.mktemp("cache"))
    return load_suite(root).select(["iris", "wine"])


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("replay") / "copy.jsonl"
    replies = [{"text": "A constant submission will not beat the baseline.", "prompt_tokens": 10, "completion_tokens": 5},
               {"text": fence(COPY_SAMPLE), "prompt_tokens": 100, "completion_tokens": 20}]
    path.write_text("".join(json.dumps(reply) + "\n" for reply in replies))
    return f"replay:{path}"


def settings(replay: str, out: Path, baselines=("dummy", "hgb")) -> BenchSettings:
    return BenchSettings(models=[replay], strategies=["reflexion"], seeds=1, baselines=list(baselines),
                         run_options={"iterations": 1, "timeout": 60}, out_dir=out)


def table(db: Path) -> dict[str, tuple]:
    with ResultStore(db) as store:
        return {r.key: tuple(getattr(r, c) for c in COLUMNS) for r in store.rows()}


@pytest.fixture(scope="module")
def local_db(suite, replay, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    summary = run_bench(suite, settings(replay, out), out / "bench.sqlite", LocalExecutor(1), command="test")
    assert summary.cells == 6 and summary.ran == 6 and summary.errors == 0
    return out / "bench.sqlite"


def test_local_bench_stores_every_cell(local_db):
    with ResultStore(local_db) as store:
        rows = {(r.task, r.system): r for r in store.rows()}
    assert {r.status for r in rows.values()} == {"done"}
    hgb, dummy = rows[("wine", "hgb")], rows[("wine", "dummy")]
    assert hgb.test_score > 0.8 and dummy.test_score < 0.4 and hgb.metric == "macro_f1"
    llm = next(r for (task, system), r in rows.items() if task == "iris" and system.endswith("/reflexion"))
    assert llm.valid == 1 and llm.attempts == 2 and llm.tokens == 135  # the baseline plus the model's attempt
    # the constant submission scores below the harness's baseline, so the baseline is the chosen solution
    assert llm.chosen_by == "baseline" and llm.code != COPY_SAMPLE.strip() and llm.beat_baseline == 0
    assert llm.gain_validation == 0.0 and llm.baseline_validation == llm.validation_score
    assert (llm.model_attempts, llm.repeats, llm.edits, llm.edits_applied) == (1, 0, 0, 0)  # a whole script
    assert all(r.chosen_by is None and r.model_attempts is None for r in rows.values() if r.kind == "baseline")
    assert json.loads(llm.config_json)["iterations"] == 1 and "python" in json.loads(llm.versions_json)
    for row in rows.values():
        run_dir = Path(row.run_dir)
        assert (run_dir / "submission.csv").is_file() and (run_dir / "run.json").is_file()
    assert (Path(hgb.run_dir) / "validation" / "submission.csv").is_file()


def test_a_finished_bench_runs_nothing_again(local_db, suite, replay):
    before = table(local_db)
    summary = run_bench(suite, settings(replay, local_db.parent), local_db, LocalExecutor(1))
    assert summary.ran == 0 and summary.already_done == 6
    assert table(local_db) == before


def test_resume_reruns_running_and_failed_cells_only(local_db, suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    shutil.copy(local_db, db)
    conn = sqlite3.connect(db)
    keys = [k for (k,) in conn.execute("SELECT key FROM cells ORDER BY key")]
    conn.execute("UPDATE cells SET status='running' WHERE key=?", (keys[0],))  # left behind by a killed bench
    conn.execute("UPDATE cells SET status='error' WHERE key=?", (keys[1],))
    conn.commit()
    finished = dict(conn.execute("SELECT key, finished || run_dir FROM cells"))
    conn.close()
    summary = run_bench(suite, settings(replay, tmp_path), db, LocalExecutor(1))
    assert summary.interrupted == 1 and summary.ran == 2 and summary.already_done == 4
    with ResultStore(db) as store:
        rows = {r.key: r for r in store.rows()}
    assert {r.status for r in rows.values()} == {"done"}
    changed = {k for k, r in rows.items() if (r.finished or "") + (r.run_dir or "") != finished[k]}
    assert changed == {keys[0], keys[1]}
    assert table(db) == table(local_db) | {k: table(db)[k] for k in changed}


def journal_line(index: int, kind: str, parent: int | None = None, **fields) -> str:
    return json.dumps(Attempt(index, parent, kind, [], "", "print(1)", **fields).to_dict()) + "\n"


def test_attempt_counts_from_a_journal(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text("".join([
        journal_line(0, "baseline", edit_format="whole", valid=True),
        journal_line(1, "draft", edit_format="whole"),
        journal_line(2, "improve", 1, edit_format="search-replace", pending=True),
        journal_line(2, "improve", 1, edit_format="search-replace", edit_error="SEARCH block not found"),
        journal_line(3, "repair", 1, edit_format="functions"),
        journal_line(4, "improve", 3, edit_format="whole", duplicate_of=1),  # a whole script is no edit
        journal_line(5, "improve", 3, edit_format="search-replace", duplicate_of=3),
        journal_line(6, "improve", 5, edit_format="search-replace", pending=True),  # never completed
    ]))
    assert attempt_counts(path) == {"model_attempts": 5, "repeats": 2, "edits": 3, "edits_applied": 2}
    assert attempt_counts(tmp_path / "missing.jsonl") == dict.fromkeys(
        ("model_attempts", "repeats", "edits", "edits_applied"))


def test_cell_keys_depend_on_settings_that_change_results_only():
    def key(**config):
        return CellSpec("s", "t", "/t", "/a", {}, "llm", "local", "reflexion", 0, config, "/out").key

    assert key() == key(iterations=None, time_budget=300.0, show_example=True)  # RunConfig's defaults, given or not
    assert key() == key(base_url="http://127.0.0.1:8080/v1", threads=2)  # where and how fast it runs
    assert key(iterations=3) != key() and key(time_budget=120.0) != key()
    assert key().startswith("s/t/local/reflexion/seed=0/")


class KilledDuring(Executor):
    """Runs cells inline and is 'killed' (Ctrl-C) while running cell number `count`."""

    name, workers = "local", 1

    def __init__(self, count: int) -> None:
        self.count = count

    def map_unordered(self, fn, items, on_submit=lambda item: None):
        for number, item in enumerate(items):
            on_submit(item)
            if number == self.count:
                raise KeyboardInterrupt
            yield item, fn(item)


def test_a_killed_bench_continues_where_it_stopped(suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_bench(suite, settings(replay, tmp_path), db, KilledDuring(2))
    with ResultStore(db) as store:
        statuses = sorted(r.status for r in store.rows())
    assert statuses == ["done"] * 2 + ["pending"] * 3 + ["running"]
    summary = run_bench(suite, settings(replay, tmp_path), db, LocalExecutor(1))
    assert summary.interrupted == 1 and summary.ran == 4 and summary.already_done == 2
    with ResultStore(db) as store:
        assert {r.status for r in store.rows()} == {"done"}
        assert [row["interrupted_cells"] for row in store.conn.execute("SELECT * FROM benches")] == [0, 1]


class ReportsInterrupted(Executor):
    name, workers = "local", 1

    def map_unordered(self, fn, items, on_submit=lambda item: None):
        for item in items:
            on_submit(item)
            yield item, CellOutcome(status="interrupted")


def test_a_run_stopped_by_ctrl_c_is_not_recorded_as_done(suite, replay, tmp_path):
    db = tmp_path / "bench.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_bench(suite, settings(replay, tmp_path), db, ReportsInterrupted())
    with ResultStore(db) as store:
        assert {r.status for r in store.rows()} == {"pending"}  # the stopped cell went back, the rest never ran


def test_missing_flaml_is_a_skipped_row(suite, replay, tmp_path, monkeypatch):
    import tabcoder.bench.matrix as matrix

    monkeypatch.setattr(matrix, "unavailable_reason", lambda name: "FLAML is not installed; install it with X"
                        if name == "flaml" else None)
    db = tmp_path / "bench.sqlite"
    summary = run_bench(suite.select(["iris"]), settings(replay, tmp_path, baselines=("dummy", "flaml")), db,
                        LocalExecutor(1))
    assert summary.skipped == {"flaml": "FLAML is not installed; install it with X"}
    with ResultStore(db) as store:
        flaml = next(r for r in store.rows() if r.model == "flaml")
    assert flaml.status == "skipped" and "not installed" in flaml.error


def test_process_pool_yields_results_and_worker_errors():
    submitted = []
    found = dict(LocalExecutor(2).map_unordered(math.sqrt, [4, 9, -1, 16], submitted.append))
    assert found[4] == 2 and found[9] == 3 and found[16] == 4 and isinstance(found[-1], ValueError)
    assert submitted == [4, 9, -1, 16]


def test_core_imports_no_optional_extra():
    code = ("import sys, tabcoder.cli, tabcoder.bench; "
            "print(sorted(m for m in ('ray', 'flaml', 'lightgbm', 'xgboost', 'autogluon') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_ray_missing_is_an_actionable_error(monkeypatch):
    from tabcoder.bench import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'tabcoder\[ray\]'"):
        make_executor("ray")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install 'tabcoder[ray]')")
def test_ray_executor_produces_the_same_rows_as_the_local_one(local_db, suite, replay, tmp_path):
    import ray

    from tabcoder.bench import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        db = tmp_path / "bench.sqlite"
        summary = run_bench(suite, settings(replay, tmp_path), db, RayExecutor(), command="ray")
    finally:
        ray.shutdown()
    assert summary.ran == 6 and summary.errors == 0
    assert table(db) == table(local_db)
    with ResultStore(db) as store:
        assert all(Path(r.run_dir).is_relative_to(tmp_path) for r in store.rows())
        assert store.conn.execute("SELECT executor FROM benches").fetchone()[0] == "ray"
