"""`tabcoder resume`: a run killed with SIGKILL (or stopped with Ctrl-C) continues from its journal with
nothing lost and no attempt repeated; the journal survives a crash in the middle of a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.backends.replay import load_recorded
from tabcoder.errors import ConfigError
from tabcoder.journal import Journal
from tabcoder.prompting import fence
from tabcoder.runner import resume

from support import WINE, good_script, journal_lines, slow_script, tabcoder, write_replay

REFLECTION = "Keep the model; nothing failed."
ATTEMPTS = 5


def replay_file(tmp_path: Path, strategy: str, seconds: float = 2.0) -> Path:
    """Exactly the answers a whole run needs: any answer asked for twice would exhaust the file."""
    texts = [fence(slow_script(1, seconds))]
    for n in range(2, ATTEMPTS + 1):
        if strategy == "reflexion":  # reflexion reflects on each attempt before the next
            texts.append(REFLECTION)
        texts.append(fence(slow_script(n, seconds)))
    return write_replay(tmp_path / "answers.jsonl", texts)


def start_run(tmp_path: Path, strategy: str, seconds: float = 2.0) -> subprocess.Popen:
    replay = replay_file(tmp_path, strategy, seconds)
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(WINE), "--model", f"replay:{replay}", "--no-baseline",
               "--strategy", strategy, "--iterations", str(ATTEMPTS), "--timeout", "60", "--workers", "2",
               "--confirm-folds", "0", "--out", str(tmp_path / "runs"), "-q"]
    if strategy == "tree":
        command += ["--drafts", "3"]  # a first round of 3 drafts, so the run is stopped with attempts still to write
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)


def _default_signals() -> None:
    """The run gets SIGINT as from a terminal, whatever an earlier test left ignored or blocked in pytest."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_pending(tmp_path: Path, process: subprocess.Popen, timeout: float = 240) -> Path:
    """Wait until the run has completed at least one attempt, has one written but not yet graded, and has
    attempts still to write (on a loaded machine the poll can see the journal late: a later state is no use)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for journal in (tmp_path / "runs").glob("*/journal.jsonl"):
            try:
                lines = journal_lines(journal.parent)
            except json.JSONDecodeError:
                continue
            done = {r["index"] for r in lines if not r["pending"]}
            pending = {r["index"] for r in lines if r["pending"]} - done
            if done and pending and len(done | pending) < ATTEMPTS:
                return journal.parent
        time.sleep(0.1)
    raise AssertionError("the run never had a pending attempt")


def check_complete(run_dir: Path, pending_at_kill: dict[int, str]) -> None:
    lines = journal_lines(run_dir)
    complete = [r for r in lines if not r["pending"]]
    assert sorted({r["index"] for r in complete}) == list(range(1, ATTEMPTS + 1))
    for index in range(1, ATTEMPTS + 1):
        codes = {r["code"] for r in lines if r["index"] == index}
        assert len(codes) == 1, f"attempt {index} was written twice"
    finished = {r["index"]: r for r in complete}
    for index, code in pending_at_kill.items():  # what was in flight was graded, not written again
        assert finished[index]["code"] == code and finished[index]["valid"]
    assert all(r["valid"] for r in complete)


@pytest.mark.parametrize("strategy", ["tree", "reflexion"])
def test_a_run_killed_with_sigkill_resumes_without_losing_or_repeating_attempts(tmp_path, strategy):
    process = start_run(tmp_path, strategy)
    try:
        run_dir = wait_for_pending(tmp_path, process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.communicate()
    lines = journal_lines(run_dir)
    done = {r["index"] for r in lines if not r["pending"]}
    pending_at_kill = {r["index"]: r["code"] for r in lines if r["pending"] and r["index"] not in done}
    assert pending_at_kill and len(done) < ATTEMPTS
    assert not (run_dir / "submission.csv").exists()

    resumed = tabcoder("resume", run_dir, "--json")
    assert resumed.returncode == 0, resumed.stderr  # the replay file holds no answer to spare
    summary = json.loads(resumed.stdout)
    assert summary["attempts"] == ATTEMPTS and summary["final_valid"]
    check_complete(run_dir, pending_at_kill)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["resumed"][0]["pending"] == len(pending_at_kill)
    assert (run_dir / "submission.csv").is_file() and (run_dir / "report.html").is_file()


def test_ctrl_c_refits_the_best_so_far_and_resume_finishes_the_run(tmp_path):
    process = start_run(tmp_path, "tree", seconds=4.0)  # time for the signal to land before the search ends
    run_dir = wait_for_pending(tmp_path, process)
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["result"]["stop_reason"] == "interrupted" and meta["result"]["final_valid"]
    assert meta["result"]["attempts"] < ATTEMPTS
    resumed = tabcoder("resume", run_dir, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["attempts"] == ATTEMPTS
    check_complete(run_dir, {})


def test_a_finished_run_can_be_extended_and_seeds_continue(tmp_path):
    script = good_script()
    answers = [fence(script.replace("import pandas as pd", f"import pandas as pd\nVARIANT = {n}", 1))
               for n in (101, 102, 103, 104)]
    first_backend = ScriptedBackend(answers[:2] + ["reflection 1"])
    first = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, strategy="reflexion", iterations=2, timeout=60, seed=5, confirm_folds=0),
                backend=first_backend)
    # the first run made 3 calls (code, reflection, code): the resumed one goes on with seeds 5+4, 5+5, ...
    backend = ScriptedBackend(["reflection 2", answers[2], "reflection 3", answers[3]])
    result = resume(first.run_dir, backend=backend, iterations=4)
    assert result.attempts == 4 and result.final_valid
    assert [call.options["seed"] for call in first_backend.history] == [6, 7, 8]
    assert [call.options["seed"] for call in backend.history] == [9, 10, 11, 12]
    indices = [r["index"] for r in journal_lines(first.run_dir) if not r["pending"]]
    assert sorted(set(indices)) == [1, 2, 3, 4]


def test_resume_refuses_options_that_define_the_run_and_folders_that_are_not_runs(tmp_path):
    first = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, iterations=1, timeout=60),
                backend=ScriptedBackend([fence(good_script())]))
    with pytest.raises(ConfigError, match="seed"):
        resume(first.run_dir, backend=ScriptedBackend([]), seed=3)
    done = tabcoder("resume", tmp_path / "nothing-here")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "run.json" in done.stderr


def test_a_truncated_last_line_is_cut_off_before_the_journal_grows(tmp_path):
    first = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, iterations=1, timeout=60),
                backend=ScriptedBackend([fence(good_script())]))
    path = first.run_dir / "journal.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"index": 2, "parent": 1, "kind": "impr')  # a crash in the middle of a write
    journal = Journal.load(path, repair=True)
    assert [a.index for a in journal.attempts] == [1] and path.read_bytes() == whole
    journal.append(journal.attempts[0])
    assert len(load_recorded(path)) == 1  # every line parses again (the replay loader is strict)
