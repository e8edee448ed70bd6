"""The results store: one SQLite file per benchmark, with a versioned schema and ordered migrations.

Scope: the `cells` table (one row per task x system x seed x config: its status, config, scores,
costs and the path of its run folder), the `benches` table (one row per `tabcoder bench` invocation),
the `schema_version` table, the migrations that build them, and a lock so that two benches never drive
the same file at once. Only the process that drives a bench writes here; workers return results.
Migrations: v1 the cells, v2 the benches and the chosen code, v3 what an LLM cell's run says about the
harness's baseline (its score, the gain over it, who wrote the chosen solution) and the model's attempts
(how many, repeated, edits and edits that applied), v4 the wall time an AutoML baseline was given (its
seconds, the rule: the same as the task's LLM cells or a fixed budget, and the LLM cells they came from).

Cell status: `pending` (planned) -> `running` (handed to a worker) -> `done` (it produced a result,
valid submission or not) | `error` (the harness failed: server down, crash; or an AutoML baseline whose
task's LLM cells all failed, so that it has no wall time to match) | `skipped` (a baseline whose optional
extra is missing). A new bench re-runs every cell that is not `done`; a `running` cell
left by a killed bench is counted as interrupted and re-run.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO, cast

from tabcoder.errors import ConfigError

STATUSES = ("pending", "running", "done", "error", "skipped")


def _v1_initial(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE cells (
            key TEXT PRIMARY KEY,
            suite TEXT NOT NULL, task TEXT NOT NULL, kind TEXT NOT NULL, model TEXT NOT NULL,
            strategy TEXT NOT NULL, seed INTEGER NOT NULL, config_hash TEXT NOT NULL, config_json TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            metric TEXT, greater_is_better INTEGER, validation_score REAL, test_score REAL, valid INTEGER,
            attempts INTEGER, valid_attempts INTEGER, tokens INTEGER, seconds REAL, stop_reason TEXT,
            run_dir TEXT, error TEXT, versions_json TEXT,
            created TEXT NOT NULL, started TEXT, finished TEXT)""")
    conn.execute("CREATE INDEX cells_by_task ON cells (suite, task, seed)")


def _v2_benches_and_code(conn: sqlite3.Connection) -> None:
    """Which invocation ran each cell, on which host, and the code it chose."""
    conn.execute("""
        CREATE TABLE benches (
            id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT,
            command TEXT, executor TEXT, workers INTEGER, host TEXT, interrupted_cells INTEGER)""")
    for column in ("bench_id INTEGER REFERENCES benches(id)", "host TEXT", "code_sha256 TEXT", "code TEXT"):
        conn.execute(f"ALTER TABLE cells ADD COLUMN {column}")


def _v3_baseline_lift(conn: sqlite3.Connection) -> None:
    """What an LLM cell's run says about the harness's baseline (attempt 0) and the model's attempts."""
    for column in ("baseline_validation REAL", "chosen_by TEXT", "beat_baseline INTEGER", "gain_validation REAL",
                   "gain_folds REAL", "model_attempts INTEGER", "repeats INTEGER", "edits INTEGER",
                   "edits_applied INTEGER"):
        conn.execute(f"ALTER TABLE cells ADD COLUMN {column}")


def _v4_time_given(conn: sqlite3.Connection) -> None:
    """The wall time an AutoML baseline (flaml, autogluon) was given, and why that much."""
    for column in ("time_given REAL", "time_rule TEXT", "time_source TEXT"):
        conn.execute(f"ALTER TABLE cells ADD COLUMN {column}")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1_initial, _v2_benches_and_code, _v3_baseline_lift,
                                                                _v4_time_given)
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the file's version, up to `target`, each in its own transaction."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise ConfigError(f"the results file has schema version {current}, newer than this tabcoder knows "
                          f"({SCHEMA_VERSION}): upgrade tabcoder, or use another --db")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
    for version in range(current + 1, target + 1):
        with conn:
            MIGRATIONS[version - 1](conn)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now()))
    return schema_version(conn)


@dataclass
class CellResult:
    """The result columns of a cell: what a finished cell produced and what it cost."""

    metric: str | None = None
    greater_is_better: bool | None = None
    validation_score: float | None = None
    test_score: float | None = None
    valid: bool | None = None  # a valid final submission for the test set
    attempts: int | None = None
    valid_attempts: int | None = None
    tokens: int | None = None
    seconds: float | None = None
    stop_reason: str | None = None
    run_dir: str | None = None
    error: str | None = None
    versions_json: str | None = None
    host: str | None = None
    code_sha256: str | None = None
    code: str | None = None
    # LLM cells only (None for baselines, and for runs made before the harness ran a baseline script):
    baseline_validation: float | None = None  # the harness's baseline (attempt 0) on the validation rows
    chosen_by: str | None = None  # who wrote the chosen solution: "model" | "baseline"
    beat_baseline: int | None = None  # 1: a model attempt beat the baseline (folds when confirmed), 0: none did
    gain_validation: float | None = None  # chosen minus baseline on validation, positive = better
    gain_folds: float | None = None  # the same on the confirmation folds, when both were confirmed
    model_attempts: int | None = None  # complete attempts the model wrote (attempt 0 excluded)
    repeats: int | None = None  # of those, replies that repeated an earlier script (not run)
    edits: int | None = None  # of those, replies to a parent in an edit format (search-replace, functions)
    edits_applied: int | None = None  # of the edits, those that applied to the parent's script
    # AutoML baselines only (flaml, autogluon; None for every other cell, and for cells run before v4):
    time_given: float | None = None  # the seconds it was given (its search's time budget / time limit)
    time_rule: str | None = None  # "same-as-llm": the mean wall time of its task's LLM cells | "fixed": no LLM cell ran
    time_source: str | None = None  # JSON {LLM cell key: its seconds, or its status when it did not finish}


_RESULT_FIELDS = tuple(f.name for f in fields(CellResult))


@dataclass(kw_only=True)
class CellRow(CellResult):
    """One row of `cells`, as the reports read it: the cell's identity, status and times, plus its result."""

    key: str
    suite: str
    task: str
    kind: str  # "llm" | "baseline"
    model: str  # model string, or the baseline's name
    strategy: str  # "" for baselines
    seed: int
    config_hash: str
    config_json: str
    status: str
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    bench_id: int | None = None

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def system(self) -> str:
        """What is compared: `model/strategy` for LLM cells, the baseline's name otherwise."""
        return f"{self.model}/{self.strategy}" if self.kind == "llm" else self.model


class BenchLock:
    """An exclusive lock on `<db>.lock` for the life of a bench; a second bench on the same file fails."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(str(db_path) + ".lock")
        self._handle: TextIO | None = None

    def __enter__(self) -> BenchLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = handle = open(self.path, "w")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(f"another bench is running on {self.path.with_suffix('')}: wait for it, or use "
                              "another --db") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)  # before unlocking, so that no waiting bench locks a removed file
        handle = cast(TextIO, self._handle)  # set by __enter__
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class ResultStore:
    """The cells of one results file. Opening it applies pending migrations."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(path))
            self.conn.row_factory = sqlite3.Row
            migrate(self.conn)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path} is not a tabcoder results file ({exc}); pass another --db") from exc

    @classmethod
    def open_existing(cls, path: str | Path) -> ResultStore:
        if not Path(path).is_file():
            raise ConfigError(f"results file {path} does not exist; run `tabcoder bench SUITE --db {path}` first")
        return cls(path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return schema_version(self.conn)

    # ------------------------------------------------------------------ planning

    def add_cells(self, cells: Iterable[dict]) -> int:
        """Insert planned cells (dicts with the identity columns) that are not there yet; returns how many."""
        added = 0
        with self.conn:
            for cell in cells:
                cursor = self.conn.execute(
                    "INSERT OR IGNORE INTO cells (key, suite, task, kind, model, strategy, seed, config_hash, "
                    "config_json, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (cell["key"], cell["suite"], cell["task"], cell["kind"], cell["model"], cell["strategy"],
                     cell["seed"], cell["config_hash"], json.dumps(cell["config"], sort_keys=True), now()))
                added += cursor.rowcount
        return added

    def reset_interrupted(self) -> int:
        """Cells left `running` by a bench that was killed go back to `pending`; returns how many."""
        with self.conn:
            return self.conn.execute("UPDATE cells SET status='pending' WHERE status='running'").rowcount

    def status_of(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(keys)
        found = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT key, status FROM cells WHERE key IN ({marks})", chunk):
                found[row["key"]] = row["status"]
        return found

    # ------------------------------------------------------------------ benches

    def start_bench(self, *, command: str, executor: str, workers: int, host: str, interrupted: int) -> int:
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO benches (started, command, executor, workers, host, interrupted_cells) "
                "VALUES (?, ?, ?, ?, ?, ?)", (now(), command, executor, workers, host, interrupted))
        return cast(int, cursor.lastrowid)  # set by the INSERT

    def commands(self) -> list[str]:
        """The distinct command lines of the benches that wrote this file, first run first."""
        found = [row[0] for row in self.conn.execute("SELECT command FROM benches ORDER BY id") if row[0]]
        return list(dict.fromkeys(found))

    def finish_bench(self, bench_id: int) -> None:
        with self.conn:
            self.conn.execute("UPDATE benches SET finished=? WHERE id=?", (now(), bench_id))

    # ------------------------------------------------------------------ cells

    def mark_running(self, key: str, bench_id: int | None) -> None:
        with self.conn:
            self.conn.execute("UPDATE cells SET status='running', started=?, bench_id=?, error=NULL WHERE key=?",
                              (now(), bench_id, key))

    def record(self, key: str, status: str, result: CellResult | dict) -> None:
        """Store a cell's outcome: `status` and its result columns (all of a CellResult, or those in a dict)."""
        if status not in STATUSES:
            raise ValueError(f"unknown cell status {status!r}")
        if isinstance(result, CellResult):
            result = {name: getattr(result, name) for name in _RESULT_FIELDS}
        columns = [c for c in _RESULT_FIELDS if c in result]
        assignments = ", ".join(f"{c}=?" for c in columns)
        with self.conn:
            self.conn.execute(f"UPDATE cells SET status=?, finished=?{', ' if columns else ''}{assignments} "
                              "WHERE key=?", (status, now(), *(result[c] for c in columns), key))

    def rows(self, *, status: str | None = None) -> list[CellRow]:
        query = "SELECT * FROM cells" + (" WHERE status=?" if status else "") + " ORDER BY suite, task, seed, key"
        return [_row(row) for row in self.conn.execute(query, (status,) if status else ())]

    def rows_of(self, keys: Iterable[str]) -> dict[str, CellRow]:
        """The rows of the cells `keys` that the file holds, by key."""
        wanted = list(keys)
        found = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT * FROM cells WHERE key IN ({marks})", chunk):
                found[row["key"]] = _row(row)
        return found


_ROW_FIELDS = frozenset(f.name for f in fields(CellRow))


def _row(row: sqlite3.Row) -> CellRow:
    return CellRow(**{k: row[k] for k in row.keys() if k in _ROW_FIELDS})
