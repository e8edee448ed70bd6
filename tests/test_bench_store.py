"""The SQLite results store: migrations (upgrade from v1, v2 and v3), the bench lock, bad files."""

from __future__ import annotations

import sqlite3

import pytest

from tabcoder.bench.store import SCHEMA_VERSION, BenchLock, CellResult, ResultStore, migrate, schema_version
from tabcoder.errors import ConfigError

CELL = {"key": "s/t/dummy/seed=0/abc", "suite": "s", "task": "t", "kind": "baseline", "model": "dummy",
        "strategy": "", "seed": 0, "config_hash": "abc", "config": {"valid_fraction": 0.2}}


def make_v1_file(path):
    conn = sqlite3.connect(path)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO cells (key, suite, task, kind, model, strategy, seed, config_hash, config_json, status, "
                 "metric, greater_is_better, test_score, valid, created) "
                 "VALUES ('k1', 's', 't', 'baseline', 'hgb', '', 0, 'h', '{}', 'done', 'accuracy', 1, 0.9, 1, 'then')")
    conn.commit()
    conn.close()


def test_upgrade_from_v1_keeps_rows_and_adds_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    make_v1_file(path)
    with ResultStore(path) as store:
        assert store.version == SCHEMA_VERSION == 4
        (row,) = store.rows()
        assert row.key == "k1" and row.test_score == 0.9 and row.status == "done"
        assert row.bench_id is None and row.code_sha256 is None  # columns added by v2
        bench = store.start_bench(command="tabcoder bench x", executor="local", workers=1, host="h", interrupted=0)
        assert store.commands() == ["tabcoder bench x"] and bench == 1
    versions = [v for (v,) in sqlite3.connect(path).execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [1, 2, 3, 4]


LIFT_FIELDS = {"baseline_validation": 0.91, "chosen_by": "model", "beat_baseline": 1, "gain_validation": 0.03,
               "gain_folds": 0.02, "model_attempts": 5, "repeats": 1, "edits": 3, "edits_applied": 2}


def make_v2_file(path):
    conn = sqlite3.connect(path)
    assert migrate(conn, target=2) == 2
    conn.execute("INSERT INTO cells (key, suite, task, kind, model, strategy, seed, config_hash, config_json, status, "
                 "metric, greater_is_better, validation_score, test_score, valid, attempts, created, code) "
                 "VALUES ('k2', 's', 't', 'llm', 'm', 'reflexion', 0, 'h', '{}', 'done', 'accuracy', 1, 0.8, 0.7, 1, "
                 "4, 'then', 'print(1)')")
    conn.commit()
    columns = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
    conn.close()
    assert not columns & set(LIFT_FIELDS)  # a v2 file has none of the v3 columns


def test_upgrade_from_v2_keeps_rows_and_round_trips_the_baseline_lift_columns(tmp_path):
    path = tmp_path / "v2.sqlite"
    make_v2_file(path)
    with ResultStore(path) as store:
        assert store.version == SCHEMA_VERSION
        (row,) = store.rows()
        assert (row.key, row.kind, row.validation_score, row.test_score, row.attempts, row.code) == (
            "k2", "llm", 0.8, 0.7, 4, "print(1)")
        assert all(getattr(row, name) is None for name in LIFT_FIELDS)  # unknown for a cell run before v3
        store.record("k2", "done", CellResult(metric="accuracy", test_score=0.75, **LIFT_FIELDS))
    with ResultStore(path) as store:
        (row,) = store.rows()
        assert {name: getattr(row, name) for name in LIFT_FIELDS} == LIFT_FIELDS and row.test_score == 0.75


TIME_FIELDS = {"time_given": 412.5, "time_rule": "same-as-llm", "time_source": '{"s/t/m/reflexion/seed=0/h": 412.5}'}


def test_upgrade_from_v3_keeps_rows_and_round_trips_the_time_given_columns(tmp_path):
    path = tmp_path / "v3.sqlite"
    conn = sqlite3.connect(path)
    assert migrate(conn, target=3) == 3
    conn.execute("INSERT INTO cells (key, suite, task, kind, model, strategy, seed, config_hash, config_json, status, "
                 "metric, greater_is_better, test_score, valid, seconds, created, gain_validation) "
                 "VALUES ('k3', 's', 't', 'baseline', 'flaml', '', 0, 'h', '{\"time_budget\": 60}', 'done', "
                 "'accuracy', 1, 0.9, 1, 63.0, 'then', NULL)")
    conn.commit()
    conn.close()
    with ResultStore(path) as store:
        assert store.version == SCHEMA_VERSION == 4
        (row,) = store.rows()
        assert (row.key, row.test_score, row.seconds) == ("k3", 0.9, 63.0)
        assert (row.time_given, row.time_rule, row.time_source) == (None, None, None)  # unknown before v4
        store.record("k3", "done", CellResult(metric="accuracy", test_score=0.91, **TIME_FIELDS))
    with ResultStore(path) as store:
        (row,) = store.rows()
        assert {name: getattr(row, name) for name in TIME_FIELDS} == TIME_FIELDS and row.test_score == 0.91
        assert set(store.rows_of(["k3", "missing"])) == {"k3"}


def test_fresh_file_is_at_the_latest_version_and_reopening_changes_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        assert store.add_cells([CELL]) == 1
        assert store.add_cells([CELL]) == 0  # a planned cell is never added twice
    with ResultStore(path) as store:
        assert store.version == SCHEMA_VERSION
        assert [r.status for r in store.rows()] == ["pending"]


def test_cell_lifecycle_and_interrupted_reset(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_cells([CELL])
        store.mark_running(CELL["key"], None)
        assert store.reset_interrupted() == 1
        assert store.status_of([CELL["key"]]) == {CELL["key"]: "pending"}
        store.record(CELL["key"], "done", {"test_score": 0.5, "valid": True, "metric": "accuracy"})
        (row,) = store.rows(status="done")
        assert row.test_score == 0.5 and row.valid == 1 and row.config == {"valid_fraction": 0.2}


def test_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    ResultStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'later')")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        ResultStore(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(ConfigError, match="not a tabcoder results file"):
        ResultStore(path)


def test_missing_file_for_a_report(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ResultStore.open_existing(tmp_path / "nope.sqlite")


def test_two_benches_cannot_share_a_file(tmp_path):
    path = tmp_path / "r.sqlite"
    with BenchLock(path):
        with pytest.raises(ConfigError, match="another bench"):
            with BenchLock(path):
                pass
    with BenchLock(path):  # released
        pass


def test_schema_version_of_an_empty_connection():
    assert schema_version(sqlite3.connect(":memory:")) == 0
