"""The isolation a run asks for and gets: strict refuses without bubblewrap, the reduced Landlock wall still
walls reads, writes and the network, the level is said in the first progress line and run.json, and what a
script leaves in its workspace is cleaned before grading."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from support import WINE, good_script, replay_file, tabcoder
from tabcoder.evaluation import evaluate, prepare_workspace
from tabcoder.grading import make_split
from tabcoder.prompting import fence
from tabcoder.sandbox import IsolationUnavailable, LocalSandbox
from tabcoder.sandbox import wall as sandbox_wall
from tabcoder.task import load_task

HAVE_BWRAP = shutil.which("bwrap") is not None
HAVE_LANDLOCK = sandbox_wall.confine.landlock_abi() >= 1


@pytest.fixture
def fresh_walls(monkeypatch):
    """Forget the walls chosen so far, so a changed environment is probed again."""
    monkeypatch.setattr(sandbox_wall, "_walls", {})


def run_code(sandbox: LocalSandbox, workspace: Path, code: str, timeout: float = 60):
    workspace.mkdir(exist_ok=True)
    script = workspace / "solution.py"
    script.write_text(textwrap.dedent(code))
    return sandbox.run(script, workspace, timeout=timeout)


def test_strict_refuses_without_bubblewrap(fresh_walls, monkeypatch):
    monkeypatch.setenv("TABCODER_BWRAP", "/nonexistent/bwrap")
    with pytest.raises(IsolationUnavailable) as caught:
        LocalSandbox(isolation="strict")
    assert "apt-get install bubblewrap" in str(caught.value)
    reduced = LocalSandbox()  # auto: falls back and says why
    assert reduced.isolation["level"] == "reduced"
    assert "bubblewrap (bwrap) is not installed" in reduced.isolation["summary"]


def test_cli_strict_refuses_before_anything_is_made(tmp_path):
    replay = replay_file(tmp_path, fence(good_script()))
    done = tabcoder("run", WINE, "--model", f"replay:{replay}", "--no-baseline", "--iterations", "1", "--isolation", "strict",
                    "--out", tmp_path / "runs", env={"TABCODER_BWRAP": "/nonexistent/bwrap"})
    assert done.returncode == 2, done.stderr
    assert "--isolation strict needs the bubblewrap wall" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_the_isolation_obtained_is_the_first_progress_line_and_in_run_json(tmp_path):
    replay = replay_file(tmp_path, fence(good_script()))
    done = tabcoder("run", WINE, "--model", f"replay:{replay}", "--no-baseline", "--iterations", "1", "--isolation", "strict",
                    "--confirm-folds", "0", "--out", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    isolation_lines = [line for line in lines if "isolation: " in line]
    assert isolation_lines and "isolation: strict (bwrap: mount+pid+net" in isolation_lines[0]
    assert lines[0] == isolation_lines[0]
    run_dir = next((tmp_path / "runs").iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["isolation"]["level"] == "strict" and meta["isolation"]["wall"] == "bwrap"
    assert meta["config"]["isolation"] == "strict"
    assert "sandbox isolation: " in (run_dir / "report.html").read_text()


@pytest.mark.skipif(not HAVE_LANDLOCK, reason="the kernel has no Landlock")
def test_reduced_landlock_wall_still_walls_reads_writes_network_and_processes(fresh_walls, tmp_path):
    sandbox = LocalSandbox(isolation="reduced")
    assert sandbox.wall.kind == "landlock" and sandbox.isolation["level"] == "reduced"
    secret = tmp_path / "secret.csv"
    secret.write_text("SECRET-LABELS\n")
    result = run_code(sandbox, tmp_path / "ws", f"""
        import json, os, socket, subprocess
        out = {{}}
        for name, attempt in {{
            "read": lambda: open({str(secret)!r}).read(),
            "write": lambda: open({str(tmp_path / "planted.txt")!r}, "w").write("x"),
            "tcp": lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
            "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9)),
        }}.items():
            try:
                out[name] = repr(attempt())
            except OSError as exc:
                out[name] = type(exc).__name__
        out["uid"] = os.getuid()
        subprocess.Popen(["sh", "-c", "sleep 2; echo late > late.txt"], start_new_session=True)
        with open("out.json", "w") as handle:
            json.dump(out, handle)
    """)
    assert result.ok, result.stderr
    out = json.loads((tmp_path / "ws" / "out.json").read_text())
    assert out["read"] == out["write"] == out["tcp"] == out["udp"] == "PermissionError", out
    assert "SECRET" not in result.stdout + result.stderr
    assert not (tmp_path / "planted.txt").exists()
    if os.geteuid() == 0 and not sandbox.wall.as_root:
        assert out["uid"] != 0
    time.sleep(2.5)
    assert not (tmp_path / "ws" / "late.txt").exists()  # the daemon died with its attempt


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_as_root_the_script_runs_as_an_unprivileged_uid_and_the_workspace_comes_back(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root hands the attempt a uid of its own")
    sandbox = LocalSandbox(isolation="strict")
    result = run_code(sandbox, tmp_path / "ws", """
        import os
        os.makedirs("models", exist_ok=True)
        open("models/m.txt", "w").write(str(os.getuid()))
    """)
    assert result.ok, result.stderr
    written = tmp_path / "ws" / "models" / "m.txt"
    assert int(written.read_text()) >= 1_000_000
    assert written.stat().st_uid == 0 and (tmp_path / "ws" / "models").stat().st_uid == 0


def test_links_and_fifos_are_removed_before_grading(tmp_path):
    """A submission that is a link to a label file is never read: it is gone, and the attempt has no
    submission."""
    task = load_task(WINE)
    split = make_split(task)
    labels_file = tmp_path / "labels.csv"
    pd_labels = split.labels.rename(task.target)
    pd_labels.to_frame().to_csv(labels_file)
    workspace = prepare_workspace(tmp_path / "ws", train=split.fit, test=split.valid,
                                  sample_submission=split.sample_submission, description=task.description)
    code = (f"import os\nos.symlink({str(labels_file)!r}, 'submission.csv')\nos.mkfifo('fifo')\n"
            "os.symlink('/etc', 'etc-link')\n")
    evaluation = evaluate(code, workspace, task=task, labels=split.labels, sandbox=LocalSandbox(), timeout=60)
    assert evaluation.result.ok, evaluation.result.stderr
    names = sorted(p.name for p in workspace.iterdir())
    assert "submission.csv" not in names and "fifo" not in names and "etc-link" not in names
    assert evaluation.grade is not None and not evaluation.grade.valid
