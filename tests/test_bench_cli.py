"""`tabcoder bench` / `bench-report` from the command line, and the HTML page in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tabcoder.bench import ResultStore, ensure_builtin_suite
from tabcoder.bench.report import build_report
from tabcoder.cli import main

from bench_helpers import toy_rows
from support import CHROMIUM, chromium


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    ensure_builtin_suite(path)
    return path


def bench(*args, cache: Path | None = None):
    extra = ["--suite-cache", str(cache)] if cache else []
    return CliRunner().invoke(main, ["bench", *map(str, args), *extra])


@pytest.mark.parametrize("make_args, expected", [
    (lambda tmp, root: ["/nonexistent/suite"], "suite folder /nonexistent/suite does not exist"),
    (lambda tmp, root: [tmp / "no-answers"], "no answers folder"),
    (lambda tmp, root: [root, "--models", "gpt9:big"], "unknown model 'gpt9:big'; valid forms"),
    (lambda tmp, root: [root, "--models", "local:qwen-nonexistent"], "unknown local model"),
    (lambda tmp, root: [root, "--models", f"replay:{tmp}/none.jsonl"], "replay file not found"),
    (lambda tmp, root: [root, "--strategies", "mcts"], "unknown strategy mcts; available: reflexion"),
    (lambda tmp, root: [root, "--baselines", "automl"], "unknown baseline 'automl'"),
    (lambda tmp, root: [root, "--tasks", "titanic"], "no task(s) titanic"),
    (lambda tmp, root: [root, "--seeds", "0"], "--seeds must be at least 1"),
    (lambda tmp, root: [root, "--budget", "soon"], "Cannot read the duration 'soon'"),
    (lambda tmp, root: [root, "--address", "auto"], "--address is for --executor ray"),
])
def test_bad_input_is_a_clear_error_and_exit_2(tmp_path, cache, make_args, expected):
    root = cache / "builtin"
    shutil.copytree(root / "tasks", tmp_path / "no-answers" / "tasks")
    done = bench(*make_args(tmp_path, root), "--out", tmp_path / "out")
    assert done.exit_code == 2, done.output
    assert done.output.startswith("error: ") and expected in done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "out" / "bench.sqlite").exists()  # nothing was recorded


def test_report_of_a_missing_file_exits_2(tmp_path):
    done = CliRunner().invoke(main, ["bench-report", str(tmp_path / "none.sqlite")])
    assert done.exit_code == 2 and "does not exist" in done.output


def test_baselines_only_bench_then_report(tmp_path, cache):
    db = tmp_path / "r.sqlite"
    done = bench("builtin", "--tasks", "iris", "--models", "", "--baselines", "dummy,hgb", "--db", db,
                 "--out", tmp_path / "runs", "--no-example", "-q", cache=cache)
    assert done.exit_code == 0, done.output
    with ResultStore(db) as store:
        (command,) = store.commands()
    assert command.startswith("tabcoder bench builtin --tasks iris --models '' --no-example --baselines dummy,hgb")
    assert command.endswith(f"--suite-cache {cache} -q")  # options in the order `bench --help` lists them
    assert "iris hgb seed 0" not in done.output  # -q
    assert re.search(r"\| hgb \| 1 \| 100% \| 1 \| 1\.00 \|", done.output)
    again = bench("builtin", "--tasks", "iris", "--models", "", "--baselines", "dummy,hgb", "--db", db,
                  "--out", tmp_path / "runs", cache=cache)
    assert "2 already done, 0 to run" in again.output
    assert "[2/2] iris hgb seed 0: test balanced_accuracy" not in again.output  # nothing ran again
    report = CliRunner().invoke(main, ["bench-report", str(db), "--markdown", str(tmp_path / "r.md")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "tabcoder bench" in (tmp_path / "r.md").read_text()


def test_a_harness_failure_is_an_error_row_and_exit_1(tmp_path, cache):
    replay = tmp_path / "one.jsonl"
    replay.write_text(json.dumps({"text": "```python\nprint(1)\n```"}) + "\n")  # no answer for a 2nd call
    done = bench("builtin", "--tasks", "iris", "--models", f"replay:{replay}", "--iterations", "2",
                 "--baselines", "dummy", "--out", tmp_path / "runs", cache=cache)
    assert done.exit_code == 1, done.output
    assert "error: LLMError: the search was cut short: replay file" in done.output and "1 cell(s) error" in done.output
    with ResultStore(tmp_path / "runs" / "bench.sqlite") as store:
        assert sorted(r.status for r in store.rows()) == ["done", "error"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                 "(apt-get install -y chromium)")
def test_html_report_renders_in_a_headless_browser(tmp_path):
    from tabcoder.bench import render_html

    report = build_report(toy_rows(seeds=2))
    page = tmp_path / "report.html"
    page.write_text(render_html(report, commands=["tabcoder bench toy"]))
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")

    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    assert dom.count('class="plot"') == len(report.task_names) + 2  # one panel per task, scatter, distribution
    bars = sum(s.test is not None for s in report.tasks)
    assert dom.count('class="bar"') == bars == 7  # model-b has no valid submission on "acc"
    assert dom.count('class="point"') == 2 * len(report.cells)  # every cell in both normalised plots
    assert dom.count('class="box"') == len(report.systems)

    shots = {}
    for name, source in (("report", page), ("blank", blank)):
        shots[name] = tmp_path / f"{name}.png"
        done = chromium(f"--screenshot={shots[name]}", "--window-size=1200,1600", source.as_uri(),
                        profile=tmp_path / f"p-{name}")
        assert shots[name].is_file(), done.stderr[-2000:]
    assert shots["report"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shots["report"].stat().st_size > 5 * shots["blank"].stat().st_size  # something was drawn


def test_report_of_a_real_results_file_has_the_benches_command(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as store:
        store.start_bench(command="tabcoder bench builtin --models x", executor="local", workers=1, host="h",
                          interrupted=0)
    done = CliRunner().invoke(main, ["bench-report", str(db)])
    assert done.exit_code == 0 and "no finished cells yet" in done.output
    assert "tabcoder bench builtin --models x" in (tmp_path / "r.html").read_text()
