"""`tabcoder caafe`: a real process with a replayed model writes its outputs; bad input exits 2 with `error:`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tabcoder.caafe import read_result

from caafe_helpers import NOISE, RATIO, make_task
from support import tabcoder as run_tabcoder, write_replay


def tabcoder(*args) -> subprocess.CompletedProcess:
    """`tabcoder ARGS` in a real process, with a 300 s limit."""
    return run_tabcoder(*args, timeout=300)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "ratio"
    make_task(folder, "binary", rows=300)
    return folder


def test_caafe_command_writes_code_table_and_transformed_data(task_dir, tmp_path):
    replay = write_replay(tmp_path / "replay.jsonl", (RATIO, NOISE))
    done = tabcoder("caafe", task_dir, "--model", f"replay:{replay}", "--features", "2", "--folds", "3",
                    "--repeats", "2", "--out", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    assert "proposal 1: +a_over_b: kept" in done.stderr and "proposal 2: +wobble: discarded" in done.stderr
    assert "1 kept (a_over_b)" in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.endswith("-ratio-caafe")
    assert "def add_features(df" in (run_dir / "features.py").read_text()
    table = pd.read_csv(run_dir / "proposals.csv")
    assert list(table["kept"]) == [True, False] and table["score_with"].notna().all()
    assert {"code", "reason", "score_without", "score_with", "kept", "error"} <= set(table.columns)
    assert "| 1 | yes | +a_over_b |" in (run_dir / "proposals.md").read_text()
    saved = read_result(run_dir)
    assert saved.metric == "accuracy" and saved.kept[0].added == ["a_over_b"] and "a_over_b" in saved.feature_code
    train, test = pd.read_csv(run_dir / "train.csv"), pd.read_csv(run_dir / "test.csv")
    assert list(train.columns) == ["id", "a", "b", "c", "a_over_b", "y"] and len(train) == 300
    assert list(test.columns) == ["id", "a", "b", "c", "a_over_b"] and len(test) == 100


@pytest.mark.parametrize("args, expected", [
    (["/nonexistent/task"], "nonexistent"),
    (["{task}", "--features", "0"], "--features"),
    (["{task}", "--folds", "1"], "folds"),
    (["{task}", "--model", "nope:x"], "local"),
    (["{task}", "--target", "nope"], "nope"),
])
def test_bad_input_exits_2_with_an_error_line(task_dir, tmp_path, args, expected):
    done = tabcoder("caafe", *[a.format(task=task_dir) for a in args], "--out", tmp_path / "runs")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and expected in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()
