"""LocalSandbox with real child processes: limits, isolation, output capture, tracebacks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tabcoder import sandbox as sandbox_module
from tabcoder.sandbox import local as sandbox_local
from tabcoder.sandbox import wall as sandbox_wall
from tabcoder.errors import ConfigError, SandboxError
from tabcoder.sandbox import (
    BOOT_SCRIPT, ExecutionResult, LocalSandbox, Sandbox, clean_traceback, exception_text, trim_text,
)


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


@pytest.fixture
def process_wall(monkeypatch) -> LocalSandbox:
    """The weakest wall (what a machine without bubblewrap and Landlock gets): limits, a network namespace
    where allowed, and the audit hook, whose friendly messages these tests read."""
    monkeypatch.setattr(sandbox_wall.confine, "landlock_abi", lambda: 0)
    monkeypatch.setattr(sandbox_wall, "_walls", {})
    return LocalSandbox(isolation="reduced")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    directory = tmp_path / "ws"
    directory.mkdir()
    return directory


def run_code(sandbox: Sandbox, workspace: Path, code: str, *, timeout: float = 30) -> ExecutionResult:
    script = workspace / "solution.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return sandbox.run(script, workspace, timeout=timeout)


def sleeper_gone(seconds: str, wait: float = 3.0) -> bool:
    """True once no process on this machine runs `sleep SECONDS` (a unique duration marks a test's own child:
    behind the strict wall the script sees only its namespace's pids, so its own pid numbers say nothing here)."""
    deadline = time.monotonic() + wait
    while True:
        running = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep",
                                                                                                  seconds.encode()]:
                    running.append(entry.name)
            except OSError:
                continue
        if not running or time.monotonic() > deadline:
            return not running
        time.sleep(0.05)


def process_gone(pid: int, wait: float = 3.0) -> bool:
    """True once `pid` no longer runs (a zombie waiting for an init that does not reap counts as gone)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def namespace_available(sandbox: LocalSandbox) -> bool:
    return sandbox.isolation["network"] in ("namespace+audit-hook", "namespace+seccomp")


# --- basics --------------------------------------------------------------------------------------

def test_success_captures_stdout(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        import os, sys
        print("hello from the sandbox")
        print("cwd", os.getcwd())
        print("argv0", sys.argv[0])
        print("oops", file=sys.stderr)
    """)
    assert result.ok
    assert result.exit_code == 0 and not result.timed_out and result.killed_by is None
    assert "hello from the sandbox" in result.stdout
    assert f"cwd {workspace}" in result.stdout
    assert f"argv0 {workspace / 'solution.py'}" in result.stdout
    assert result.stderr == "oops\n"
    assert result.traceback is None
    assert 0 < result.duration < 10
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 1


def test_script_dir_first_on_sys_path_and_main_name(sandbox, workspace):
    (workspace / "helper.py").write_text("VALUE = 42\n")
    result = run_code(sandbox, workspace, """
        import sys
        import helper
        assert __name__ == "__main__"
        print(sys.path[0], helper.VALUE)
    """)
    assert result.ok, result.stderr
    assert result.stdout.strip() == f"{workspace} 42"


def test_exit_code_is_reported(sandbox, workspace):
    result = run_code(sandbox, workspace, "import sys\nsys.exit(3)\n")
    assert result.exit_code == 3 and not result.ok and result.killed_by is None


def test_exception_gives_clean_traceback(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        def load():
            return {"a": 1}["missing"]

        load()
    """)
    assert result.exit_code == 1 and not result.ok and result.killed_by is None
    tb = result.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert 'File "./solution.py", line 5, in <module>' in tb
    assert 'File "./solution.py", line 3, in load' in tb
    assert tb.rstrip().endswith("KeyError: 'missing'")
    assert BOOT_SCRIPT.name not in tb and "runpy" not in tb
    assert str(workspace) not in tb
    assert BOOT_SCRIPT.name not in result.stderr and "runpy" not in result.stderr


def test_syntax_error_gives_clean_traceback(sandbox, workspace):
    result = run_code(sandbox, workspace, "x = 1\ny = (2,\nprint(x)\n")
    assert result.exit_code == 1 and not result.ok
    tb = result.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert 'File "./solution.py", line 2' in tb
    assert "SyntaxError" in exception_text(tb)
    assert BOOT_SCRIPT.name not in tb and "runpy" not in tb and str(workspace) not in tb


def test_invalid_arguments_raise(sandbox, workspace):
    with pytest.raises(ConfigError):
        LocalSandbox(memory_mb=0)
    with pytest.raises(ConfigError):
        LocalSandbox(threads=0)
    with pytest.raises(SandboxError):
        sandbox.run(workspace / "missing.py", workspace, timeout=5)
    (workspace / "solution.py").write_text("pass\n")
    with pytest.raises(ConfigError):
        sandbox.run(workspace / "solution.py", workspace, timeout=0)
    with pytest.raises(SandboxError):
        sandbox.run(workspace / "solution.py", workspace / "nope", timeout=5)
    with pytest.raises(SandboxError):
        LocalSandbox(python="/nonexistent/python", allow_network=True).run(
            workspace / "solution.py", workspace, timeout=5)


def test_concurrent_runs_are_independent(sandbox, tmp_path):
    workspaces = []
    for index in range(3):
        workspaces.append(tmp_path / f"ws{index}")
        workspaces[-1].mkdir()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(
            lambda pair: run_code(sandbox, pair[1], f"import time\ntime.sleep(0.3)\nprint({pair[0]})\n"),
            enumerate(workspaces)))
    assert [r.stdout.strip() for r in results] == ["0", "1", "2"]
    assert all(r.ok for r in results)


def test_isolation_report_is_json(sandbox):
    report = sandbox.isolation
    json.dumps(report)
    assert report["network"] in ("namespace+seccomp", "namespace+audit-hook", "audit-hook")
    assert report["level"] in ("strict", "reduced") and report["summary"].startswith(report["level"])
    assert report["process_group"] is True and report["env"] == "allow-list"
    assert report["memory_mb"] == 4096 and report["cpu_seconds"].startswith("timeout+")
    assert LocalSandbox(allow_network=True).isolation["network"] == "allowed"


# --- limits --------------------------------------------------------------------------------------

def test_timeout_kills_the_whole_process_group(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        import subprocess, time
        child = subprocess.Popen(["sleep", "60.25"])
        print("started", flush=True)
        time.sleep(60)
    """, timeout=2)
    assert result.timed_out and result.killed_by == "timeout"
    assert result.exit_code is None and not result.ok
    assert result.duration < 2 + 5
    assert "started" in result.stdout
    # The traceback shows where the script was when it was stopped.
    assert re.search(r'File "\./solution\.py", line [45]', result.traceback)
    assert exception_text(result.traceback) == "KeyboardInterrupt"
    assert sleeper_gone("60.25")


def test_a_harness_that_ignores_or_blocks_sigint_still_gives_the_script_its_keyboardinterrupt(sandbox, workspace):
    import signal

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a shell has it
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        result = run_code(sandbox, workspace, """
            import time
            print("started", flush=True)
            time.sleep(60)
        """, timeout=2)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        signal.signal(signal.SIGINT, before)
    assert result.timed_out and "started" in result.stdout
    assert exception_text(result.traceback) == "KeyboardInterrupt"


def test_timeout_escalates_when_sigint_and_sigterm_are_ignored(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
    """, timeout=0.5)
    assert result.timed_out and result.killed_by == "timeout" and result.exit_code is None
    assert result.duration < 0.5 + 5


def test_background_processes_do_not_outlive_a_successful_run(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        import subprocess
        child = subprocess.Popen(["sleep", "60.5"], start_new_session=True)
    """)
    assert result.ok, result.stderr
    assert sleeper_gone("60.5")


def test_cpu_limit(workspace, monkeypatch):
    monkeypatch.setattr(sandbox_local, "CPU_MARGIN_S", -9)  # RLIMIT_CPU = ceil(10) - 9 = 1 s
    result = run_code(LocalSandbox(), workspace, "while True:\n    pass\n", timeout=10)
    assert not result.timed_out and result.killed_by == "cpu" and result.exit_code is None
    assert result.duration < 10


def test_death_by_signal_is_reported(sandbox, workspace):
    result = run_code(sandbox, workspace, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert result.exit_code is None and not result.timed_out
    assert result.killed_by == f"signal {signal.SIGTERM.value}"


def test_memory_limit(workspace):
    result = run_code(LocalSandbox(memory_mb=512), workspace, """
        big = bytearray(2 * 1024 ** 3)
        print("allocated", len(big))
    """)
    assert not result.ok
    assert "allocated" not in result.stdout
    assert result.killed_by == "memory"
    assert "MemoryError" in exception_text(result.traceback)


def test_memory_limit_with_numpy(workspace):
    result = run_code(LocalSandbox(memory_mb=512), workspace, """
        import numpy as np
        big = np.ones((2 * 1024 ** 3) // 8)
        print("allocated", big.nbytes)
    """)
    assert not result.ok and result.killed_by == "memory"


def test_file_size_limit(workspace):
    result = run_code(LocalSandbox(file_size_mb=1), workspace, """
        with open("big.bin", "wb") as handle:
            handle.write(b"x" * (3 * 1024 * 1024))
        print("written")
    """)
    assert not result.ok and result.killed_by == "file-size"
    assert "written" not in result.stdout
    assert (workspace / "big.bin").stat().st_size <= 1024 * 1024


# --- network -------------------------------------------------------------------------------------

NETWORK_PROBE = """
    import json, socket, subprocess, sys
    PORT = {port}
    attempts = {{
        "connect": lambda: socket.socket().connect(("127.0.0.1", PORT)),
        "connect_ex": lambda: socket.socket().connect_ex(("127.0.0.1", PORT)),
        "create_connection": lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"hi"),
        "dns": lambda: socket.getaddrinfo("example.com", 80),
        "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", PORT)),
    }}
    results = {{}}
    for name, attempt in attempts.items():
        try:
            results[name] = "ok: " + repr(attempt())
        except OSError as exc:
            results[name] = type(exc).__name__ + ": " + str(exc)
    code = "import socket; socket.create_connection(('127.0.0.1', %d), timeout=2)" % PORT
    results["subprocess"] = subprocess.run([sys.executable, "-c", code], capture_output=True).returncode
    left, right = socket.socketpair()  # AF_UNIX stays available (multiprocessing, loky)
    left.sendall(b"unix")
    results["socketpair"] = right.recv(4).decode()
    with open("net.json", "w") as handle:
        json.dump(results, handle)
"""


def test_network_is_blocked(sandbox, workspace, tcp_server):
    port = tcp_server.getsockname()[1]
    result = run_code(sandbox, workspace, NETWORK_PROBE.format(port=port))
    assert result.ok, result.stderr
    results = json.loads((workspace / "net.json").read_text())
    for name in ("connect", "connect_ex", "create_connection", "dns", "udp"):
        assert results[name].startswith("PermissionError: network access is disabled"), (name, results[name])
    assert results["socketpair"] == "unix"
    if namespace_available(sandbox):  # a subprocess has no audit hook: the namespace must stop it
        assert results["subprocess"] != 0
    with pytest.raises(BlockingIOError):
        tcp_server.accept()


@pytest.mark.parametrize("mode", ["net", "user+net", "none"])
def test_each_network_namespace_mode(workspace, tcp_server, monkeypatch, mode, process_wall):
    """Force what the probe would find on other machines: each mode still blocks, files stay ours."""
    sandbox = process_wall
    probe = [sandbox.python, "-I", "-S", str(BOOT_SCRIPT), "--probe", mode]
    if mode != "none" and subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip(f"network namespace mode {mode!r} is not available on this machine")
    monkeypatch.setitem(sandbox_module._netns_cache, sandbox.python, mode)
    expected = "audit-hook" if mode == "none" else "namespace+audit-hook"
    assert sandbox.isolation["network"] == expected
    result = run_code(sandbox, workspace, NETWORK_PROBE.format(port=tcp_server.getsockname()[1]))
    assert result.ok, result.stderr
    results = json.loads((workspace / "net.json").read_text())
    assert results["connect"].startswith("PermissionError")
    if mode != "none":
        assert results["subprocess"] != 0
    assert (workspace / "net.json").stat().st_uid == os.getuid()
    if mode != "none":
        with pytest.raises(BlockingIOError):
            tcp_server.accept()


def test_network_allowed_when_asked(workspace, tcp_server):
    port = tcp_server.getsockname()[1]
    result = run_code(LocalSandbox(allow_network=True), workspace, NETWORK_PROBE.format(port=port))
    assert result.ok, result.stderr
    results = json.loads((workspace / "net.json").read_text())
    assert results["create_connection"] == "ok: None"
    assert results["subprocess"] == 0
    connection, _ = tcp_server.accept()
    connection.close()


# --- environment ---------------------------------------------------------------------------------

def test_environment_is_allow_listed(workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    sandbox = LocalSandbox(threads=2, extra_env={"TABCODER_SEED": "7"})
    result = run_code(sandbox, workspace, """
        import json, os
        with open("env.json", "w") as handle:
            json.dump(dict(os.environ), handle)
    """)
    assert result.ok, result.stderr
    env = json.loads((workspace / "env.json").read_text())
    for secret in ("OPENAI_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "PYTHONPATH"):
        assert secret not in env
    assert "sk-secret" not in json.dumps(env)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        assert env[name] == "2"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["HOME"] == str(workspace)
    assert env["TMPDIR"] == env["MPLCONFIGDIR"] == env["JOBLIB_TEMP_FOLDER"] == str(workspace / "tmp")
    assert not (workspace / "tmp").exists()  # scratch space, created for the run and dropped after it
    assert env["PYTHONHASHSEED"] == "0" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    assert env["TABCODER_SEED"] == "7"
    assert set(env) <= {
        "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
        "HOME", "TMPDIR", "MPLCONFIGDIR", "JOBLIB_TEMP_FOLDER",
        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONHASHSEED",
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY",
        "TABCODER_SEED",
    }


def test_default_threads_is_one(sandbox, workspace):
    result = run_code(sandbox, workspace, "import os\nprint(os.environ['OMP_NUM_THREADS'])\n")
    assert result.stdout.strip() == "1"


# --- filesystem ----------------------------------------------------------------------------------

@pytest.mark.parametrize("wall", ["auto", "process"])
def test_writes_outside_the_workspace_fail(wall, workspace, tmp_path, request):
    """Behind the process wall the audit hook refuses each write with a friendly PermissionError; behind
    bubblewrap the folder is not even there (FileNotFoundError), and Landlock refuses with EACCES."""
    sandbox = request.getfixturevalue("process_wall") if wall == "process" else LocalSandbox()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    result = run_code(sandbox, workspace, f"""
        import json, os, pathlib, shutil, tempfile
        OUT = {str(outside)!r}
        attempts = {{
            "open_w": lambda: open(OUT + "/new.txt", "w"),
            "open_a": lambda: open(OUT + "/keep.txt", "a"),
            "open_r_plus": lambda: open(OUT + "/keep.txt", "r+"),
            "os_open": lambda: os.open(OUT + "/new2.txt", os.O_WRONLY | os.O_CREAT),
            "write_text": lambda: pathlib.Path(OUT, "new3.txt").write_text("x"),
            "remove": lambda: os.remove(OUT + "/keep.txt"),
            "rename_out": lambda: os.rename(OUT + "/keep.txt", "stolen.txt"),
            "mkdir": lambda: os.mkdir(OUT + "/d"),
            "makedirs": lambda: os.makedirs(OUT + "/a/b"),
            "rmtree": lambda: shutil.rmtree(OUT),
            "chmod": lambda: os.chmod(OUT + "/keep.txt", 0o777),
            "truncate": lambda: os.truncate(OUT + "/keep.txt", 0),
            "symlink": lambda: os.symlink("/etc", OUT + "/link"),
            "copy": lambda: shutil.copy(__file__, OUT),
            "via_symlink": lambda: (os.symlink(OUT, "escape"), open("escape/x.txt", "w")),
            "parent_dir": lambda: open("../outside/y.txt", "w"),
        }}
        results = {{}}
        for name, attempt in attempts.items():
            try:
                attempt()
                results[name] = "allowed"
            except (PermissionError, FileNotFoundError) as exc:
                results[name] = str(exc)
        # Reading anywhere (where the folder is in view), and writing in the workspace, work.
        results["read_outside"] = open(OUT + "/keep.txt").read() if os.path.exists(OUT) else "keep"
        with open("inside.txt", "w") as handle:
            handle.write("inside")
        os.makedirs("sub/dir", exist_ok=True)
        os.rename("inside.txt", "sub/dir/moved.txt")
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write("tmp")
        results["tempfile_dir"] = os.path.dirname(handle.name)
        os.remove(handle.name)
        with open(os.devnull, "w") as handle:
            handle.write("nothing")
        shutil.rmtree("sub/dir")
        with open("fs.json", "w") as handle:
            json.dump(results, handle)
    """)
    assert result.ok, result.stderr
    results = json.loads((workspace / "fs.json").read_text())
    for name, outcome in results.items():
        if name not in ("read_outside", "tempfile_dir"):
            refused = ("writing outside the workspace is not allowed",) if wall == "process" else (
                "writing outside the workspace is not allowed", "[Errno 2] No such file", "[Errno 13]")
            assert outcome.startswith(refused), (name, outcome)
    assert results["read_outside"] == "keep"
    assert results["tempfile_dir"] == str(workspace / "tmp")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "keep"
    assert (workspace / "sub").is_dir() and not (workspace / "sub" / "dir").exists()


# --- output --------------------------------------------------------------------------------------

def test_long_output_is_trimmed(workspace):
    sandbox = LocalSandbox(max_output_chars=1000)
    result = run_code(sandbox, workspace, """
        import sys
        print("FIRST LINE")
        for i in range(20000):
            print(f"line {i:05d}")
        print("LAST LINE")
        sys.stderr.write("e" * 50000)
    """)
    assert result.ok
    assert len(result.stdout) <= 1000 and len(result.stderr) <= 1000
    assert result.stdout.startswith("FIRST LINE")
    assert result.stdout.rstrip().endswith("LAST LINE")
    assert "characters cut] ..." in result.stdout and "characters cut] ..." in result.stderr


def test_huge_output_is_trimmed_from_its_ends(workspace):
    result = run_code(LocalSandbox(max_output_chars=500), workspace, """
        import sys
        sys.stdout.write("HEAD" + "x" * 5_000_000 + "TAIL\\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(b"bad bytes: \\xff\\xfe\\n")
    """)
    assert result.ok, result.stderr
    assert len(result.stdout) <= 500
    assert result.stdout.startswith("HEAD") and "TAIL" in result.stdout
    assert "bad bytes: \ufffd\ufffd" in result.stdout
    cut = int(re.search(r"\[(\d+) characters cut\]", result.stdout).group(1))
    assert 4_999_000 < cut < 5_000_100


def test_trim_text():
    assert trim_text("short", 100) == "short"
    text = "a" * 300 + "b" * 300
    trimmed = trim_text(text, 200)
    assert len(trimmed) <= 200
    assert trimmed.startswith("a") and trimmed.endswith("b")
    start, marker, end = trimmed.split("\n")
    assert marker == f"... [{600 - len(start) - len(end)} characters cut] ..."
    assert set(start) == {"a"} and set(end) == {"b"} and len(end) > len(start)


def test_clean_traceback_trims_old_frames_and_keeps_the_exception(tmp_path):
    frames = "".join(f'  File "{tmp_path}/solution.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(300))
    stderr = ("noise\nTraceback (most recent call last):\n"
              f'  File "/x/{BOOT_SCRIPT.name}", line 1, in <module>\n    main()\n'
              '  File "<frozen runpy>", line 291, in run_path\n'
              + frames + "RecursionError: maximum recursion depth exceeded\n"
              "/usr/lib/python3/x.py:1: UserWarning: at exit\n")
    cleaned = clean_traceback(stderr, tmp_path)
    assert len(cleaned) <= 3000
    assert cleaned.startswith("Traceback (most recent call last):")
    assert "earlier frames cut" in cleaned
    assert 'File "./solution.py", line 299, in f299' in cleaned
    assert cleaned.endswith("RecursionError: maximum recursion depth exceeded")
    assert BOOT_SCRIPT.name not in cleaned and "runpy" not in cleaned and str(tmp_path) not in cleaned
    assert clean_traceback("all good\n", tmp_path) is None


# --- real ML workloads ---------------------------------------------------------------------------

def test_sklearn_script_writes_submission(sandbox, workspace):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    (workspace / "input").mkdir()
    features = rng.normal(size=(300, 3))
    frame = pd.DataFrame(features, columns=["a", "b", "c"])
    frame["target"] = (features[:, 0] + features[:, 1] > 0).astype(int)
    frame.iloc[:200].to_csv(workspace / "input" / "train.csv", index=False)
    frame.iloc[200:].drop(columns="target").to_csv(workspace / "input" / "test.csv", index=False)
    result = run_code(sandbox, workspace, """
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier

        train = pd.read_csv("input/train.csv")
        test = pd.read_csv("input/test.csv")
        model = HistGradientBoostingClassifier(max_iter=50, random_state=0)
        model.fit(train.drop(columns="target"), train["target"])
        pd.DataFrame({"target": model.predict(test)}).to_csv("submission.csv", index=False)
        print("accuracy on train", model.score(train.drop(columns="target"), train["target"]))
    """, timeout=120)
    assert result.ok, result.stderr
    submission = pd.read_csv(workspace / "submission.csv")
    assert len(submission) == 100 and set(submission["target"]) <= {0, 1}


def test_joblib_loky_runs_in_parallel_workers(sandbox, workspace):
    result = run_code(sandbox, workspace, """
        import os
        import numpy as np
        from joblib import Parallel, delayed

        def work(i, array):  # a 4 MB argument: joblib memory-maps it into a temporary folder
            return i * i, float(array.sum()), os.getpid()

        array = np.ones(512 * 1024)
        out = Parallel(n_jobs=2, backend="loky")(delayed(work)(i, array) for i in range(8))
        worker_pids = {pid for _, _, pid in out}
        print(sum(v for v, _, _ in out), out[0][1], os.getpid() in worker_pids, len(worker_pids))
    """, timeout=120)
    assert result.ok, result.stderr
    total, array_sum, main_did_work, _workers = result.stdout.split()
    assert total == "140" and array_sum == "524288.0"
    assert main_did_work == "False"  # really ran in loky workers, not sequentially
