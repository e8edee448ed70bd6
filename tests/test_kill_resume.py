"""`kill -9` of the tabcoder process itself at each phase of a run, then `tabcoder resume RUN_DIR`: no
attempt is lost, none is written twice, and nothing of the killed run goes on writing into its folder.

Phases: waiting for the model (a fake OpenAI-compatible server holds the request), confirming the best
attempts on folds (RUN_DIR/confirm/), and refitting the final solution (RUN_DIR/best/). A kill while an
attempt is being evaluated is tests/test_resume.py's. The timing is made controllable with slow scripts
(they sleep) and a replay file holding exactly the answers the run needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tabcoder import load_task
from tabcoder.grading import check_submission
from tabcoder.journal import Journal
from tabcoder.prompting import fence

from support import WINE, good_script, journal_lines, slow_script, tabcoder, write_replay

REFLECTION = "Keep the model; nothing failed."
QUIET_SECONDS = 3.0  # after a kill, how long the run folder must stay unchanged
LIFELINE_SECONDS = 2.0  # how long a sandbox child may take to notice that the harness is gone


class Leftovers(AssertionError):
    """Something of the killed run was still at work after the kill (see `leftovers_after_kill`)."""


def variant(n: int) -> str:
    """A fast correct script, distinct for each n (a repeated script would not be run again)."""
    return good_script().replace("import pandas as pd", f"VARIANT = {n}\nimport pandas as pd", 1)


def start(tmp_path: Path, *args: object) -> subprocess.Popen:
    """`tabcoder run WINE ...` in its own process; its output goes to files (never a pipe a child could hold)."""
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(WINE), "--out", str(tmp_path / "runs"),
               "--timeout", "60", *map(str, args)]
    with open(tmp_path / "run.out", "w") as out, open(tmp_path / "run.err", "w") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)


def output(tmp_path: Path) -> str:
    return (tmp_path / "run.err").read_text()[-3000:]


def wait_until(condition, process: subprocess.Popen, tmp_path: Path, what: str, timeout: float = 90):
    """Poll `condition()` until it returns something true (returned); the run must still be going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}:\n{output(tmp_path)}"
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{output(tmp_path)}")


def the_run_dir(tmp_path: Path) -> Path | None:
    found = [p for p in (tmp_path / "runs").glob("*") if (p / "run.json").is_file()]
    return found[0] if len(found) == 1 else None


def complete_indices(run_dir: Path) -> set[int]:
    try:
        return {r["index"] for r in journal_lines(run_dir) if not r["pending"]}
    except (OSError, json.JSONDecodeError):  # not there yet, or a line being written
        return set()


def processes_in(folder: Path) -> dict[int, str]:
    """Live processes (zombies excluded) working in `folder` or naming it on their command line."""
    root = str(folder.resolve())
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, a zombie, or not ours to read
            continue
        if cwd == root or cwd.startswith(root + os.sep) or root in command:
            found[int(entry.name)] = f"cwd {cwd.replace(root, '<folder>')}, runs {(command.split() or ['?'])[-1]}"
    return found


def files_in(folder: Path) -> dict[str, tuple[int, int]]:
    state = {}
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                info = path.stat()
                state[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
        except OSError:
            continue
    return state


def kill_9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def leftovers_after_kill(run_dir: Path) -> list[str]:
    """What of the killed run is still at work: processes in its folder, files that change in it during the
    next few seconds (RUN_DIR/submission.csv above all). The processes are then stopped, so that the resumed
    run is tested on its own; the caller asserts the list is empty once resume was checked."""
    problems = []
    deadline = time.monotonic() + LIFELINE_SECONDS  # the kernel closes the lifeline; the child then kills its group
    while processes_in(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = processes_in(run_dir)
    problems += [f"process {pid} survived the kill ({what})" for pid, what in survivors.items()]
    before = files_in(run_dir)
    time.sleep(QUIET_SECONDS)
    after = files_in(run_dir)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    problems += [f"{name} was written after the kill" for name in changed]
    if (run_dir / "submission.csv").exists():
        problems.append("submission.csv exists after the kill")
    for pid in processes_in(run_dir):  # a sandbox child leads its own process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while processes_in(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    return problems


def check_journal_after_kill(run_dir: Path) -> tuple[bytes, Journal]:
    """Only whole lines, each a readable record: nothing a resume would have to repair."""
    raw = (run_dir / "journal.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = journal_lines(run_dir)  # every line parses
    journal = Journal.load(run_dir / "journal.jsonl")
    assert {a.index for a in journal.attempts} | set(journal.pending) == {r["index"] for r in lines}
    return raw, journal


def check_resumed(run_dir: Path, before: bytes, attempts: int, pending_at_kill: set[int] = frozenset()) -> list[dict]:
    """Attempts exactly 1..attempts, each with one code; the journal only grew (nothing rewritten). An
    attempt is begun once, except one left pending by the kill: it is begun again (same script) to be graded."""
    after = (run_dir / "journal.jsonl").read_bytes()
    assert after.startswith(before), "resume changed lines of the journal that the killed run had written"
    lines = journal_lines(run_dir)
    complete = [r for r in lines if not r["pending"]]
    assert sorted({r["index"] for r in complete}) == list(range(1, attempts + 1))
    for index in range(1, attempts + 1):
        codes = {r["code"] for r in lines if r["index"] == index}
        assert len(codes) == 1, f"attempt {index} was written with {len(codes)} different scripts"
        begun = [r for r in lines if r["index"] == index and r["pending"]]
        assert len(begun) == 1 + (index in pending_at_kill), f"attempt {index} was begun {len(begun)} times"
    journal = Journal.load(run_dir / "journal.jsonl")
    assert not journal.pending and all(a.valid for a in journal.attempts)
    return lines


def check_outputs(run_dir: Path, summary: dict, attempts: int, pending_at_kill: int = 0) -> dict:
    assert summary["attempts"] == attempts and summary["final_valid"], summary
    task = load_task(WINE)
    _, problems = check_submission(run_dir / "submission.csv", task=task, expected_ids=task.test[task.id_column])
    assert problems == []
    assert (run_dir / "best" / "solution.py").is_file() and (run_dir / "report.html").is_file()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["result"]["final_valid"] and meta["result"]["attempts"] == attempts
    assert len(meta["resumed"]) == 1 and meta["resumed"][0]["pending"] == pending_at_kill
    return meta


# =========================================================================== while the model is writing


# (strategy, answers before the request that hangs); the run has 3 attempts
GENERATION_CASES = {
    "reflexion-reflection": ("reflexion", [fence(variant(1))]),  # hangs on the reflection on attempt 1
    "reflexion-code": ("reflexion", [fence(variant(1)), REFLECTION]),  # hangs on attempt 2's script
    "tree-draft": ("tree", [fence(variant(1))]),  # hangs on the second draft
}
GENERATION_ATTEMPTS = 3


@pytest.mark.parametrize("case", list(GENERATION_CASES))
def test_kill_while_the_model_writes_then_resume(tmp_path, fake_openai, case):
    strategy, answered = GENERATION_CASES[case]
    fake = fake_openai
    for text in answered:
        fake.reply("text", text)
    fake.reply("hang", 120)
    fake.always("status", 400)  # a request nobody expected fails the run instead of hanging it
    process = start(tmp_path, "--model", "openai:m", "--base-url", fake.base_url, "--no-baseline", "--strategy", strategy,
                    "--iterations", GENERATION_ATTEMPTS, "--workers", 2, "--confirm-folds", 0)
    try:
        wait_until(lambda: len(fake.requests) > len(answered), process, tmp_path, "the request that hangs")
        run_dir = wait_until(lambda: the_run_dir(tmp_path), process, tmp_path, "the run folder")
        if strategy == "reflexion":  # it grades attempt 1 before it asks the model anything more
            wait_until(lambda: complete_indices(run_dir) == {1}, process, tmp_path, "attempt 1 to be graded")
        else:  # attempt 1 is evaluated in the pool while the model writes attempt 2
            wait_until(lambda: (run_dir / "attempts" / "001" / "submission.csv").is_file()
                       and not processes_in(run_dir / "attempts"), process, tmp_path, "attempt 1 to be run")
        time.sleep(0.3)  # nothing else is due: the model has not answered
        kill_9(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    fake.release.set()  # the held request's thread may go
    asked_before = list(fake.requests)
    assert len(asked_before) == len(answered) + 1
    before, journal = check_journal_after_kill(run_dir)
    # Reflexion has completed attempt 1. The tree search completes attempts in index order in the thread that
    # is waiting for the model, so attempt 1 may still be pending (its result is not recorded yet): then
    # resume grades it again; either way it is never written again with another script.
    pending_at_kill = set(journal.pending)
    if strategy == "reflexion":
        assert [a.index for a in journal.attempts] == [1] and journal.attempts[0].valid and not pending_at_kill
    assert {a.index for a in journal.attempts} | pending_at_kill == {1}
    first_code = journal.get(1).code
    assert first_code == variant(1).strip()
    if case == "reflexion-code":  # the reflection had been answered and kept, though attempt 2 was lost
        assert journal.attempts[0].reflection == REFLECTION
    leftovers = leftovers_after_kill(run_dir)

    # the resumed run asks for exactly what is still missing, each answer a new script
    if strategy == "reflexion":
        missing = ([REFLECTION] if case == "reflexion-reflection" else []) + [fence(variant(2)), REFLECTION,
                                                                             fence(variant(3))]
    else:
        missing = [fence(variant(2)), fence(variant(3))]
    for text in missing:
        fake.reply("text", text)
    resumed = tabcoder("resume", run_dir, "--json", "--model", "openai:m", "--base-url", fake.base_url)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    check_outputs(run_dir, summary, GENERATION_ATTEMPTS, len(pending_at_kill))
    lines = check_resumed(run_dir, before, GENERATION_ATTEMPTS, pending_at_kill)
    assert {r["code"] for r in lines if r["index"] == 1} == {first_code}

    asked_after = fake.requests[len(asked_before):]
    assert len(asked_after) == len(missing), [r[2]["messages"][-1]["content"][:200] for r in asked_after]
    answered_messages = [body["messages"] for _, _, body in asked_before[:-1]]
    for _, _, body in asked_after:  # nothing that was answered before the kill is asked again
        assert body["messages"] not in answered_messages
    hung = asked_before[-1][2]
    first = asked_after[0][2]
    assert first["messages"] == hung["messages"], "the resumed run must ask again what the killed run lost"
    assert first.get("seed") == hung.get("seed")  # and with the same seed: the call sequence goes on
    seeds = [body.get("seed") for _, _, body in asked_before[:-1] + asked_after]
    assert len(set(seeds)) == len(seeds), seeds
    if leftovers:
        raise Leftovers(leftovers)


# =========================================================================== after the search


FINAL_ATTEMPTS = 3
SLEEP = 3.0  # seconds every script sleeps: the phases last long enough to be caught


def start_slow_run(tmp_path: Path, *args: object) -> subprocess.Popen:
    """A tree search of 3 drafts (evaluated two at a time), from a replay file with exactly 3 answers."""
    replay = write_replay(tmp_path / "answers.jsonl",
                          (fence(slow_script(n, SLEEP)) for n in range(1, FINAL_ATTEMPTS + 1)))
    return start(tmp_path, "--model", f"replay:{replay}", "--no-baseline", "--strategy", "tree", "--drafts", FINAL_ATTEMPTS,
                 "--iterations", FINAL_ATTEMPTS, "--workers", 2, *args)


def kill_when_running_in(tmp_path: Path, process: subprocess.Popen, folder: str) -> tuple[Path, bytes]:
    """Kill the run once a script runs in RUN_DIR/`folder` (the phase has begun and is under way)."""
    try:
        run_dir = wait_until(lambda: the_run_dir(tmp_path), process, tmp_path, "the run folder")
        wait_until(lambda: (run_dir / folder).is_dir(), process, tmp_path, f"RUN_DIR/{folder}", timeout=150)
        # the search is over before this phase: every attempt is in the journal, complete
        assert complete_indices(run_dir) == set(range(1, FINAL_ATTEMPTS + 1))
        wait_until(lambda: processes_in(run_dir / folder), process, tmp_path, f"a script running in {folder}/")
        kill_9(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (run_dir / "submission.csv").exists()
    before, journal = check_journal_after_kill(run_dir)
    assert [a.index for a in journal.attempts] == list(range(1, FINAL_ATTEMPTS + 1)) and not journal.pending
    return run_dir, before


def resume_after_the_search(run_dir: Path, before: bytes) -> dict:
    """Resume; the search is over, so no model call is made (the replay file has no answer to spare) and
    the journal stays exactly as it was."""
    resumed = tabcoder("resume", run_dir, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    meta = check_outputs(run_dir, summary, FINAL_ATTEMPTS)
    assert (run_dir / "journal.jsonl").read_bytes() == before, "resume wrote attempts again"
    check_resumed(run_dir, before, FINAL_ATTEMPTS)
    assert meta["resumed"][0]["attempts"] == FINAL_ATTEMPTS
    return meta


def test_kill_during_fold_confirmation_then_resume(tmp_path):
    process = start_slow_run(tmp_path, "--confirm-folds", 2, "--confirm-top", 2)
    run_dir, before = kill_when_running_in(tmp_path, process, "confirm")
    leftovers = leftovers_after_kill(run_dir)
    meta = resume_after_the_search(run_dir, before)
    selection = meta["selection"]
    assert selection["method"] == "folds" and len(selection["candidates"]) == 2
    assert all(c["ok"] and len(c["folds"]) == 2 for c in selection["candidates"])  # every fold ran again
    if leftovers:
        raise Leftovers(leftovers)


def test_kill_during_the_final_refit_then_resume(tmp_path):
    process = start_slow_run(tmp_path, "--confirm-folds", 0)
    run_dir, before = kill_when_running_in(tmp_path, process, "best")
    leftovers = leftovers_after_kill(run_dir)
    meta = resume_after_the_search(run_dir, before)
    assert meta["selection"]["method"] == "validation"
    if leftovers:
        raise Leftovers(leftovers)
