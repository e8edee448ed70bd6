"""The command line: a real `tabcoder` process for the main paths, exit codes and messages for bad input."""

from __future__ import annotations

import json

import pytest

from tabcoder.prompting import fence

from support import WINE, WINE_ANSWERS, good_script, replay_file, tabcoder


def test_run_with_replay_backend_prints_progress_and_result(tmp_path):
    replay = replay_file(tmp_path, fence(good_script()))
    done = tabcoder("run", WINE, "--model", f"replay:{replay}", "--no-baseline", "--iterations", "1", "--out", tmp_path / "runs",
                    "--answers", WINE_ANSWERS)
    assert done.returncode == 0, done.stderr
    assert "attempt 1: draft" in done.stderr and "valid, accuracy" in done.stderr
    assert "validation score:" in done.stdout and "test score:" in done.stdout
    assert "reproduce:" in done.stdout
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "best" / "solution.py").is_file()


def test_json_output(tmp_path):
    replay = replay_file(tmp_path, fence(good_script()))
    done = tabcoder("run", WINE, "--model", f"replay:{replay}", "--no-baseline", "--iterations", "1", "--out", tmp_path, "--json", "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["final_valid"] is True and summary["metric"] == "accuracy"
    assert done.stderr == ""


def test_no_valid_submission_exits_1(tmp_path):
    replay = replay_file(tmp_path, fence("import sys\nsys.exit(1)\n"))
    done = tabcoder("run", WINE, "--model", f"replay:{replay}", "--no-baseline", "--iterations", "1", "--out", tmp_path)
    assert done.returncode == 1
    assert "no valid final submission" in done.stdout


@pytest.mark.parametrize("args, expected", [
    (["run", "/nonexistent/task"], "nonexistent"),
    (["run", str(WINE), "--target", "nope"], "cultivar"),            # lists the columns
    (["run", str(WINE), "--metric", "nope"], "accuracy"),            # lists the metrics
    (["run", str(WINE), "--model", "nope:x"], "local"),              # lists the model forms
    (["run", str(WINE), "--model", "llamacpp:/missing.gguf"], "missing.gguf"),
    (["run", str(WINE), "--model", "replay:/missing.jsonl"], "missing.jsonl"),
    (["run", str(WINE), "--iterations", "0"], "iterations"),
    (["run", str(WINE), "--time-budget", "soon"], "duration"),
    (["run", str(WINE), "--metric", "rmse"], "metric"),              # incompatible with classification
])
def test_bad_input_is_a_clear_error_with_exit_2(tmp_path, args, expected):
    done = tabcoder(*args, "--out", tmp_path / "runs")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder for bad input"


def test_empty_table_and_one_class_target(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b,y\n")
    done = tabcoder("run", empty, "--target", "y", "--out", tmp_path / "runs")
    assert done.returncode == 2 and "empty" in done.stderr.lower() and "Traceback" not in done.stderr
    one = tmp_path / "one.csv"
    one.write_text("a,y\n1,x\n2,x\n3,x\n")
    done = tabcoder("run", one, "--target", "y", "--out", tmp_path / "runs")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_mismatched_test_columns(tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.csv").write_text("id,a,b,y\n1,1,2,0\n2,2,3,1\n3,3,4,0\n4,4,5,1\n")
    (task / "test.csv").write_text("id,a,c\n5,1,2\n")
    done = tabcoder("run", task, "--target", "y", "--out", tmp_path / "runs")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "b" in done.stderr and "c" in done.stderr


def test_answers_with_wrong_ids_are_refused(tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text("id,cultivar\n99999,cultivar_1\n")
    done = tabcoder("run", WINE, "--answers", answers, "--model", "replay:/x.jsonl", "--out", tmp_path / "runs")
    assert done.returncode == 2 and "answers" in done.stderr and "Traceback" not in done.stderr


def test_help_texts():
    done = tabcoder("run", "--help")
    assert done.returncode == 0
    for option in ("--model", "--iterations", "--time-budget", "--timeout", "--prompt-style", "--answers"):
        assert option in done.stdout
    assert tabcoder("--help").returncode == 0


def test_models_lists_backends():
    done = tabcoder("models")
    assert done.returncode == 0
    assert "local:qwen2.5-coder-0.5b" in done.stdout and "openai" in done.stdout
