"""Run one generated Python script walled in by the operating system, with limits for the attempt as a whole.

`LocalSandbox.run`:

* takes a uid of its own for the attempt when tabcoder is root (`identity`), and hands it the workspace;
* starts `python _sandbox_boot.py CONFIG SCRIPT` behind the strongest wall this machine allows (`wall`:
  bubblewrap namespaces + seccomp; else Landlock + namespaces + seccomp; else process limits), with cwd =
  the workspace, in a new session, an environment built from an allow-list and thread counts pinned;
* has the bootstrap apply per-process rlimits (address space, file size, CPU seconds, processes, no core
  files) and install an audit hook that turns blocked calls into friendly messages;
* watches the attempt while it runs (`watch`): the memory of all its processes together and the bytes
  written in the workspace; past a limit, or past the timeout, it stops every process of the attempt
  (SIGINT, SIGTERM, SIGKILL), and every one is dead before `run` returns;
* removes links, FIFOs and other special files from the workspace, gives it back to tabcoder's uid, and
  reads the captured output: trimmed to head + tail, the last traceback cleaned (`output`).

Failures of the script are results (`ExecutionResult`); only failures of the harness itself raise
`SandboxError`, and a wall that `--isolation strict` asked for but the machine lacks raises
`IsolationUnavailable` when the sandbox is made.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabcoder.errors import ConfigError, SandboxError
from tabcoder.sandbox import output
from tabcoder.sandbox import wall as walls
from tabcoder.sandbox.identity import SandboxUser, folder_bytes, remove_specials, set_non_dumpable
from tabcoder.sandbox.process import Child
from tabcoder.sandbox.watch import Watch

logger = logging.getLogger(__name__)

BOOT_SCRIPT = walls.PACKAGE_DIR / output.BOOT_NAME
CPU_MARGIN_S = 10            # RLIMIT_CPU = ceil(timeout) + this
_MIB = 1024 * 1024

PASS_THROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_SIGNALLED = {int(s) for s in (signal.SIGKILL, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGSEGV, signal.SIGABRT,
                               signal.SIGBUS, signal.SIGILL, signal.SIGTERM, signal.SIGINT, signal.SIGFPE)}


@dataclass
class ExecutionResult:
    exit_code: int | None         # None if killed (by a signal, or stopped on timeout)
    timed_out: bool
    duration: float               # wall seconds
    stdout: str                   # trimmed: head + tail with a "... [N characters cut] ..." line
    stderr: str                   # trimmed the same way
    killed_by: str | None         # None, "timeout", "memory", "cpu", "file-size", "disk", "signal N"
    traceback: str | None         # last traceback of the script, cleaned, or None
    peak_memory_mb: float | None  # the most memory seen in use: all processes together, or the largest one

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Sandbox(abc.ABC):
    """Runs a script; the script's failures are returned as results, never raised."""

    @abc.abstractmethod
    def run(self, script: Path, workdir: Path, *, timeout: float) -> ExecutionResult: ...

    @property
    @abc.abstractmethod
    def isolation(self) -> dict:
        """JSON-serialisable report of the isolation actually obtained (`level`, `wall`, `summary`, ...)."""


class LocalSandbox(Sandbox):
    """A child process of this machine's Python, walled in as described in the module docstring."""

    def __init__(self, *, memory_mb: int = 4096, file_size_mb: int = 512, disk_mb: int = 2048, tmp_mb: int = 512,
                 pids: int = 256, threads: int = 1, allow_network: bool = False, python: str = sys.executable,
                 extra_env: dict[str, str] | None = None, max_output_chars: int = 8000, isolation: str = "auto"):
        for name, value in (("memory_mb", memory_mb), ("file_size_mb", file_size_mb), ("disk_mb", disk_mb),
                            ("tmp_mb", tmp_mb), ("pids", pids)):
            _require(value > 0, f"{name} must be positive (got {value}).")
        _require(threads >= 1, f"threads must be at least 1 (got {threads}).")
        _require(max_output_chars >= 0, f"max_output_chars must not be negative (got {max_output_chars}).")
        _require(bool(python), "python must name an interpreter (got an empty string).")
        _require(isolation in walls.ISOLATIONS,
                 f"isolation must be one of {', '.join(walls.ISOLATIONS)} (got {isolation!r}).")
        extra_env = dict(extra_env or {})
        _require(all(isinstance(k, str) and isinstance(v, str) for k, v in extra_env.items()),
                 "extra_env must map strings to strings.")
        self.memory_mb, self.file_size_mb, self.disk_mb, self.tmp_mb = memory_mb, file_size_mb, disk_mb, tmp_mb
        self.pids = pids
        self.threads = threads
        self.allow_network = allow_network
        self.python = python
        self.extra_env = extra_env
        self.max_output_chars = max_output_chars
        self.isolation_setting = isolation
        self._wall: walls.Wall | None = None
        if isolation == "strict":
            self.wall  # noqa: B018 - refuse now, before any run, when the strict wall cannot be built

    @property
    def wall(self) -> walls.Wall:
        if self._wall is None:
            self._wall = walls.choose_wall(self.isolation_setting, self.python)
        return self._wall

    @property
    def isolation(self) -> dict:
        netns = "none" if self.wall.kind == "bwrap" or self.allow_network else _network_namespace_mode(self.python)
        return walls.describe(self.wall, netns=netns, memory_mb=self.memory_mb, pids=self.pids, disk_mb=self.disk_mb,
                             tmp_mb=self.tmp_mb, file_size_mb=self.file_size_mb, root=os.geteuid() == 0,
                             network_allowed=self.allow_network, cpu_margin_s=CPU_MARGIN_S, threads=self.threads)

    def run(self, script: Path, workdir: Path, *, timeout: float) -> ExecutionResult:
        script, workdir = Path(script).absolute(), Path(workdir).absolute()
        _require(isinstance(timeout, (int, float)) and 0 < timeout < math.inf,
                 f"timeout must be a positive number of seconds (got {timeout!r}).")
        if not workdir.is_dir():
            raise SandboxError(f"Workspace {workdir} is not a directory; create it before running a script.")
        if not script.is_file():
            raise SandboxError(f"Script {script} does not exist; write it before running it.")
        set_non_dumpable()
        scratch = workdir / "tmp"
        owns_scratch = not scratch.exists()
        scratch.mkdir(exist_ok=True)
        owner = workdir.stat()
        try:
            with SandboxUser.acquire() as user:
                hand_over = not self.wall.as_root  # a capability-less root cannot write into another uid's folder
                if hand_over:
                    user.own(workdir)
                try:
                    return self._run(script, workdir, timeout, user)
                finally:
                    remove_specials(workdir)
                    if hand_over:
                        user.give_back(workdir, owner.st_uid, owner.st_gid)
        finally:
            if owns_scratch:  # scratch files (joblib memory maps, caches) are not results: drop them
                shutil.rmtree(scratch, ignore_errors=True)

    # --- steps of run ----------------------------------------------------------------------------

    def child_env(self, workdir: Path) -> dict[str, str]:
        """The child's whole environment: allow-listed variables, sandbox settings, then `extra_env`."""
        env = {name: os.environ[name] for name in PASS_THROUGH_ENV if name in os.environ}
        env.setdefault("PATH", os.defpath)
        tmp = str(Path(workdir) / "tmp")
        env.update({
            "HOME": str(workdir), "TMPDIR": tmp, "MPLCONFIGDIR": tmp, "JOBLIB_TEMP_FOLDER": tmp,
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0",
            "OMP_WAIT_POLICY": "PASSIVE",
        })
        env.update({name: str(self.threads) for name in THREAD_ENV})
        env.update(self.extra_env)
        return env

    def _run(self, script: Path, workdir: Path, timeout: float, user: SandboxUser) -> ExecutionResult:
        chosen = self.wall
        netns = "none" if self.allow_network or chosen.kind == "bwrap" else _network_namespace_mode(self.python)
        cpu_seconds = math.ceil(timeout) + CPU_MARGIN_S
        with tempfile.TemporaryDirectory(prefix="tabcoder-sandbox-") as capture_dir:
            capture = Path(capture_dir)
            config = {
                "workspace": str(workdir),
                "wall": chosen.kind,
                "block_network": not self.allow_network,
                "netns": netns,
                "limits": {"as": self.memory_mb * _MIB, "fsize": self.file_size_mb * _MIB, "cpu": cpu_seconds,
                           "nproc": self.pids},
            }
            if chosen.kind == "landlock":
                config["landlock"] = walls.landlock_rules(self.python, workdir)
                config["seccomp"] = "" if self.allow_network else (walls.confine.seccomp_program() or b"").hex()
            logger.debug("sandbox: running %s in %s (timeout %.1fs, wall %s)", script.name, workdir, timeout,
                         chosen.kind)
            started = time.monotonic()
            returncode, rusage, timed_out, watch = self._execute(config, script, workdir, capture, timeout, user)
            duration = time.monotonic() - started
            if chosen.kind != "bwrap":
                self._check_boot_report(watch.report, netns)
            elif returncode > 128 and returncode - 128 in _SIGNALLED:
                returncode = 128 - returncode  # bwrap reports a signal N as exit status 128 + N
            return self._result(capture, workdir, returncode=returncode, rusage=rusage, timed_out=timed_out,
                                duration=duration, cpu_seconds=cpu_seconds, watch=watch)

    def _command(self, config: dict, script: Path, workdir: Path, user: SandboxUser,
                 binds: walls.Binds) -> list[str]:
        boot = [self.python, str(BOOT_SCRIPT), json.dumps(config), str(script)]
        if self.wall.kind != "bwrap":
            return boot  # as the attempt's uid already (see _start_as)
        layout = walls.interpreter_layout(self.python)
        assert self.wall.bwrap is not None
        return walls.bwrap_command(self.wall.bwrap, layout, binds=binds, workdir=str(workdir), tmp_mb=self.tmp_mb,
                                  user=user, network=self.allow_network) + boot

    def _start_as(self, user: SandboxUser) -> dict:
        """Popen's user arguments: bwrap starts as tabcoder's user (the bootstrap drops inside), the reduced
        walls start as the attempt's uid unless that uid cannot read the interpreter."""
        if self.wall.kind == "bwrap" or self.wall.as_root:
            return {}
        return user.popen_kwargs()

    def _execute(self, config: dict, script: Path, workdir: Path, capture: Path, timeout: float,
                 user: SandboxUser) -> tuple[int, resource.struct_rusage, bool, Watch]:
        """Start the child, watch it (stopping the attempt on timeout or past a limit), reap it; leaves no
        process of the attempt behind.

        The child also gets the read end of a pipe whose write end only this process holds (it is
        close-on-exec, so no other child inherits it): when this process dies, even by SIGKILL, the kernel
        closes it and the child's bootstrap kills its own process group (the "lifeline"); bubblewrap's
        --die-with-parent does the same for the whole namespace."""
        lifeline, keep = os.pipe()
        report, report_end = os.pipe()  # the bootstrap's one-line note on what it obtained (reduced walls)
        config = {**config, "lifeline": lifeline, "report_fd": report_end,
                  "own_uid": user.privileged and not self.wall.as_root}
        if user.privileged and self.wall.kind == "bwrap":
            config["drop_to"] = [user.uid, user.gid]  # bwrap starts as root here; the bootstrap drops
        with walls.Binds() as binds:
            command = self._command(config, script, workdir, user, binds)
            try:
                with open(capture / "stdout", "wb") as out, open(capture / "stderr", "wb") as err:
                    try:
                        process = subprocess.Popen(command, cwd=workdir, env=self.child_env(workdir),
                                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                                   start_new_session=True, close_fds=True,
                                                   pass_fds=(lifeline, report_end, *binds.fds),
                                                   **self._start_as(user))
                    except OSError as exc:
                        os.close(keep)
                        os.close(report)
                        raise SandboxError(f"Could not start the sandbox interpreter {self.python!r}: {exc}. "
                                           "Check that it exists and is executable.") from exc
            finally:
                os.close(lifeline)
                os.close(report_end)
        child = Child(process, lifeline=keep)
        watch = Watch(child.pid, workdir, memory_mb=self.memory_mb, disk_mb=self.disk_mb,
                      start_bytes=folder_bytes(workdir), private_tmpfs=self.wall.kind == "bwrap",
                      captures=(capture / "stdout", capture / "stderr"))
        spare_root = self.wall.kind == "bwrap"
        try:
            exited = watch.run_until(child, timeout)
            timed_out = not exited and watch.exceeded is None
            if not exited:
                logger.debug("sandbox: stopping %d (%s)", child.pid, watch.exceeded or f"timeout {timeout:.1f}s")
                if watch.exceeded:
                    child.kill_all()
                else:
                    child.stop(spare_root=spare_root)
            child.kill_all()  # leftovers: background processes, pool workers, daemons
            returncode, rusage = child.reap()
            watch.report = _read_available(report)
            if user.privileged and not self.wall.as_root:
                _kill_matching(lambda entry: entry.stat().st_uid == user.uid)
            namespace = _reported_netns(watch.report)
            if namespace:
                _kill_matching(lambda entry: os.readlink(f"{entry.path}/ns/net") == namespace)
        finally:
            child.close()
            os.close(report)
        return returncode, rusage, timed_out, watch

    def _result(self, capture: Path, workdir: Path, *, returncode: int, rusage: resource.struct_rusage,
                timed_out: bool, duration: float, cpu_seconds: int, watch: Watch) -> ExecutionResult:
        stderr_tail = output.read_tail(capture / "stderr", output.TRACEBACK_SCAN_BYTES)
        cleaned = output.clean_traceback(stderr_tail, workdir)
        killed_by = watch.exceeded or output.killed_by(returncode, timed_out=timed_out, traceback=cleaned,
                                                       stderr_tail=stderr_tail, rusage=rusage,
                                                       cpu_seconds=cpu_seconds)
        peaks = [value for value in (output.peak_memory_mb(rusage), watch.peak_memory_mb) if value]
        return ExecutionResult(
            exit_code=None if timed_out or returncode < 0 or watch.exceeded else returncode,
            timed_out=timed_out,
            duration=duration,
            stdout=output.read_trimmed(capture / "stdout", self.max_output_chars),
            stderr=output.read_trimmed(capture / "stderr", self.max_output_chars),
            killed_by=killed_by,
            traceback=cleaned,
            peak_memory_mb=round(max(peaks), 1) if peaks else None,
        )

    @staticmethod
    def _check_boot_report(report: bytes, expected_netns: str) -> None:
        try:
            obtained = json.loads(report).get("netns")
        except (ValueError, AttributeError):
            return  # the script never got past the bootstrap's limits (or the interpreter did not start)
        if obtained != expected_netns:
            logger.warning("sandbox: expected network namespace %r but got %r; only the audit hook blocks "
                           "the network for this run", expected_netns, obtained)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _read_available(fd: int, limit: int = 4096) -> bytes:
    """What is in a pipe now (its writers are gone: every process of the attempt is dead), at most `limit` bytes."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, limit)
    except BlockingIOError:
        return b""


def _reported_netns(report: bytes) -> str | None:
    """The network namespace the bootstrap entered ("net:[INODE]"), from its note; None without one."""
    try:
        inode = json.loads(report).get("netns_inode")
    except (ValueError, AttributeError):
        return None
    return f"net:[{int(inode)}]" if inode else None


def _kill_matching(belongs) -> None:
    """SIGKILL every process for which `belongs(proc_entry)` holds (the finished attempt's uid, or its network
    namespace: leftovers of a reduced wall that left the process group), until none is left."""
    for _ in range(5):
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if belongs(entry):
                        found.append(int(entry.name))
                except OSError:
                    continue
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


# --- network namespace probe (the reduced walls) -------------------------------------------------

_netns_cache: dict[str, str] = {}
_netns_lock = threading.Lock()


def _network_namespace_mode(python: str) -> str:
    """How a child of `python` gets its own network namespace here: "net", "user+net" or "none".
    Probed once per interpreter with a tiny child, then cached."""
    with _netns_lock:
        if python not in _netns_cache:
            _netns_cache[python] = _probe_network_namespace(python)
            logger.debug("sandbox: network namespace mode for %s: %s", python, _netns_cache[python])
        return _netns_cache[python]


def _probe_network_namespace(python: str) -> str:
    """Probed as the user the scripts run as: an unprivileged one when tabcoder is root, or root itself
    when that user cannot start `python` (see `walls.Wall.as_root`)."""
    for mode in ("net", "user+net"):
        command = [python, "-I", "-S", str(BOOT_SCRIPT), "--probe", mode]
        options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "capture_output": True, "timeout": 30, "cwd": "/",
                   "env": {"PATH": os.environ.get("PATH", os.defpath)}}
        try:
            with SandboxUser.acquire() as user:
                try:
                    probe = subprocess.run(command, **options, **user.popen_kwargs())
                except PermissionError:
                    probe = subprocess.run(command, **options)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("sandbox: could not probe network namespaces with %s: %s", python, exc)
            return "none"
        if probe.returncode == 0:
            return mode
    logger.warning("sandbox: no network namespace available; only the audit hook blocks the network")
    return "none"
