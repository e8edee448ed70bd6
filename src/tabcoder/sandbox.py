"""Run one generated Python script in a child process with limits, and report what happened.

Scope: process-level isolation on a single (Linux) machine, good against the accidents an LLM's
training script causes (runaway time or memory, huge files, stray network calls, writes in the
wrong place, leaked API keys), not against deliberately hostile code. `LocalSandbox.run`:

* starts `python _sandbox_boot.py CONFIG SCRIPT` with cwd = the workspace, in a new session (so
  the whole process group can be stopped: SIGINT, then SIGTERM, then SIGKILL on timeout);
* gives it an environment built from an allow-list (no API keys, thread counts pinned);
* has the bootstrap apply rlimits (address space, file size, CPU seconds, no core files), enter a
  fresh network namespace where the machine allows it, and install an audit hook that blocks network
  use and writes outside the workspace (main interpreter only: subprocesses it starts are covered by
  the namespace and the rlimits, not by the hook);
* captures stdout/stderr in files outside the workspace, trims them to head + tail, and extracts
  the last traceback with the harness's own frames removed and the workspace shown as `.`.

Failures of the script are results (`ExecutionResult`); only failures of the harness itself raise
`SandboxError`.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tabcoder.errors import ConfigError, SandboxError

logger = logging.getLogger(__name__)

BOOT_SCRIPT = Path(__file__).with_name("_sandbox_boot.py")
CPU_MARGIN_S = 10            # RLIMIT_CPU = ceil(timeout) + this
INTERRUPT_GRACE_S = 2.0      # after SIGINT, before SIGTERM
TERMINATE_GRACE_S = 1.0      # after SIGTERM, before SIGKILL
TRACEBACK_LIMIT = 3000       # characters of cleaned traceback
TRACEBACK_SCAN_BYTES = 256 * 1024  # the traceback is looked for in this much of stderr's end
_MIB = 1024 * 1024

PASS_THROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

TRACEBACK_HEADER = "Traceback (most recent call last):"
_FRAME_RE = re.compile(r'^  File "(?P<file>[^"]*)", line \d+')
_SITE_PACKAGES_RE = re.compile(r'File "[^"]*/(?:site|dist)-packages/')
_TRAILER_RE = re.compile(r"^(Exception ignored in|Error in atexit\._run_exitfuncs|\S+:\d+: \w+Warning: )")
_MEMORY_RE = re.compile(r"MemoryError|std::bad_alloc|Cannot allocate memory|\[Errno 12\]")
_FILE_SIZE_RE = re.compile(r"File too large|\[Errno 27\]")


@dataclass
class ExecutionResult:
    exit_code: int | None         # None if killed (by a signal, or stopped on timeout)
    timed_out: bool
    duration: float               # wall seconds
    stdout: str                   # trimmed: head + tail with a "... [N characters cut] ..." line
    stderr: str                   # trimmed the same way
    killed_by: str | None         # None, "timeout", "memory", "cpu", "file-size", "signal N"
    traceback: str | None         # last traceback of the script, cleaned, or None
    peak_memory_mb: float | None  # max RSS of the child (and the descendants it waited for)

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
        """JSON-serialisable report of the isolation actually obtained."""


class LocalSandbox(Sandbox):
    """A child process of this machine's Python, limited as described in the module docstring."""

    def __init__(self, *, memory_mb: int = 4096, file_size_mb: int = 512, threads: int = 1,
                 allow_network: bool = False, python: str = sys.executable,
                 extra_env: dict[str, str] | None = None, max_output_chars: int = 8000):
        _require(memory_mb > 0, f"memory_mb must be positive (got {memory_mb}).")
        _require(file_size_mb > 0, f"file_size_mb must be positive (got {file_size_mb}).")
        _require(threads >= 1, f"threads must be at least 1 (got {threads}).")
        _require(max_output_chars >= 0, f"max_output_chars must not be negative (got {max_output_chars}).")
        _require(bool(python), "python must name an interpreter (got an empty string).")
        extra_env = dict(extra_env or {})
        _require(all(isinstance(k, str) and isinstance(v, str) for k, v in extra_env.items()),
                 "extra_env must map strings to strings.")
        self.memory_mb = memory_mb
        self.file_size_mb = file_size_mb
        self.threads = threads
        self.allow_network = allow_network
        self.python = python
        self.extra_env = extra_env
        self.max_output_chars = max_output_chars

    @property
    def isolation(self) -> dict:
        if self.allow_network:
            network = "allowed"
        else:
            network = "audit-hook" if _network_namespace_mode(self.python) == "none" else "namespace+audit-hook"
        return {
            "network": network,
            "memory_mb": self.memory_mb,
            "file_size_mb": self.file_size_mb,
            "cpu_seconds": f"timeout+{CPU_MARGIN_S}",
            "threads": self.threads,
            "process_group": True,
            "env": "allow-list",
            "filesystem": "audit-hook: writes only inside the workspace",
        }

    def run(self, script: Path, workdir: Path, *, timeout: float) -> ExecutionResult:
        script, workdir = Path(script).absolute(), Path(workdir).absolute()
        _require(isinstance(timeout, (int, float)) and 0 < timeout < math.inf,
                 f"timeout must be a positive number of seconds (got {timeout!r}).")
        if not workdir.is_dir():
            raise SandboxError(f"Workspace {workdir} is not a directory; create it before running a script.")
        if not script.is_file():
            raise SandboxError(f"Script {script} does not exist; write it before running it.")
        scratch = workdir / "tmp"
        owns_scratch = not scratch.exists()
        scratch.mkdir(exist_ok=True)
        try:
            return self._run(script, workdir, timeout)
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

    def _run(self, script: Path, workdir: Path, timeout: float) -> ExecutionResult:
        netns = "none" if self.allow_network else _network_namespace_mode(self.python)
        cpu_seconds = math.ceil(timeout) + CPU_MARGIN_S
        with tempfile.TemporaryDirectory(prefix="tabcoder-sandbox-") as capture_dir:
            capture = Path(capture_dir)
            config = {
                "workspace": str(workdir),
                "block_network": not self.allow_network,
                "netns": netns,
                "limits": {"as": self.memory_mb * _MIB, "fsize": self.file_size_mb * _MIB, "cpu": cpu_seconds},
                "report": str(capture / "boot.json"),
            }
            logger.debug("sandbox: running %s in %s (timeout %.1fs, network namespace %s)",
                         script.name, workdir, timeout, netns)
            started = time.monotonic()
            returncode, rusage, timed_out = self._execute(config, script, workdir, capture, timeout)
            duration = time.monotonic() - started
            self._check_boot_report(capture / "boot.json", netns)
            return self._result(capture, workdir, returncode=returncode, rusage=rusage,
                                 timed_out=timed_out, duration=duration, cpu_seconds=cpu_seconds)

    def _execute(self, config: dict, script: Path, workdir: Path, capture: Path,
                 timeout: float) -> tuple[int, resource.struct_rusage, bool]:
        """Start the child, wait for it (stopping its group on timeout), reap it; never leaves it behind.

        The child also gets the read end of a pipe whose write end only this process holds (it is
        close-on-exec, so no other child inherits it): when this process dies, even by SIGKILL, the kernel
        closes it and the child's bootstrap kills its own process group (the "lifeline")."""
        lifeline, keep = os.pipe()
        command = [self.python, str(BOOT_SCRIPT), json.dumps({**config, "lifeline": lifeline}), str(script)]
        try:
            with open(capture / "stdout", "wb") as out, open(capture / "stderr", "wb") as err:
                try:
                    process = subprocess.Popen(command, cwd=workdir, env=self.child_env(workdir),
                                               stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                               start_new_session=True, close_fds=True, pass_fds=(lifeline,))
                except OSError as exc:
                    os.close(keep)
                    raise SandboxError(f"Could not start the sandbox interpreter {self.python!r}: {exc}. "
                                       "Check that it exists and is executable.") from exc
        finally:
            os.close(lifeline)
        child = _Child(process, lifeline=keep)
        try:
            timed_out = not child.wait_exit(timeout)
            if timed_out:
                logger.debug("sandbox: timeout after %.1fs, stopping process group %d", timeout, child.pid)
                child.stop()
            child.signal_group(signal.SIGKILL)  # leftovers: background processes, pool workers
            returncode, rusage = child.reap()
        finally:
            child.close()
        return returncode, rusage, timed_out

    def _result(self, capture: Path, workdir: Path, *, returncode: int, rusage: resource.struct_rusage,
                timed_out: bool, duration: float, cpu_seconds: int) -> ExecutionResult:
        stderr_tail = _read_tail(capture / "stderr", TRACEBACK_SCAN_BYTES)
        cleaned = clean_traceback(stderr_tail, workdir)
        killed_by = _killed_by(returncode, timed_out=timed_out, traceback=cleaned, stderr_tail=stderr_tail,
                               rusage=rusage, cpu_seconds=cpu_seconds)
        return ExecutionResult(
            exit_code=None if timed_out or returncode < 0 else returncode,
            timed_out=timed_out,
            duration=duration,
            stdout=_read_trimmed(capture / "stdout", self.max_output_chars),
            stderr=_read_trimmed(capture / "stderr", self.max_output_chars),
            killed_by=killed_by,
            traceback=cleaned,
            peak_memory_mb=_peak_memory_mb(rusage),
        )

    @staticmethod
    def _check_boot_report(path: Path, expected_netns: str) -> None:
        try:
            obtained = json.loads(path.read_text()).get("netns")
        except (OSError, ValueError, AttributeError):
            return  # the script never got past the bootstrap's limits (or the interpreter did not start)
        if obtained != expected_netns:
            logger.warning("sandbox: expected network namespace %r but got %r; only the audit hook blocks "
                           "the network for this run", expected_netns, obtained)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# --- the child process ---------------------------------------------------------------------------

class _Child:
    """A started child: waits for its exit without reaping it (so its pid, and the process group id,
    cannot be reused while we signal the group), then reaps it with its resource usage."""

    def __init__(self, process: subprocess.Popen, lifeline: int | None = None):
        self.process = process
        self.pid = process.pid
        self.reaped = False
        self._pidfd = _open_pidfd(self.pid)
        self._lifeline = lifeline  # write end of the child's lifeline pipe, closed once the child is reaped

    def wait_exit(self, seconds: float) -> bool:
        """True once the child has exited (it stays a zombie until `reap`); False after `seconds`."""
        seconds = max(seconds, 0.0)
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            return bool(poller.poll(math.ceil(seconds * 1000)))
        deadline = time.monotonic() + seconds
        while True:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(0.02, remaining))

    def stop(self) -> None:
        """SIGINT the group, then SIGTERM, then SIGKILL, each after a grace period."""
        for sig, grace in ((signal.SIGINT, INTERRUPT_GRACE_S), (signal.SIGTERM, TERMINATE_GRACE_S)):
            self.signal_group(sig)
            if self.wait_exit(grace):
                return
        self.signal_group(signal.SIGKILL)

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self) -> tuple[int, resource.struct_rusage]:
        try:
            _pid, status, rusage = os.wait4(self.pid, 0)
        except ChildProcessError as exc:
            raise SandboxError(f"Lost track of sandbox process {self.pid} (reaped elsewhere); "
                               "do not wait on child processes from other threads.") from exc
        self.reaped = True
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return self.process.returncode, rusage

    def close(self) -> None:
        if not self.reaped:  # an exception (e.g. KeyboardInterrupt) interrupted run: leave nothing behind
            self.signal_group(signal.SIGKILL)
            try:
                self.reap()
            except SandboxError:
                pass
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None  # old kernel or not Linux: fall back to polling


# --- network namespace probe ---------------------------------------------------------------------

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
    for mode in ("net", "user+net"):
        try:
            probe = subprocess.run([python, "-I", "-S", str(BOOT_SCRIPT), "--probe", mode],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                   env={"PATH": os.environ.get("PATH", os.defpath)})
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("sandbox: could not probe network namespaces with %s: %s", python, exc)
            return "none"
        if probe.returncode == 0:
            return mode
    logger.warning("sandbox: no network namespace available; only the audit hook blocks the network")
    return "none"


# --- outcome -------------------------------------------------------------------------------------

def _killed_by(returncode: int, *, timed_out: bool, traceback: str | None, stderr_tail: str,
               rusage: resource.struct_rusage, cpu_seconds: int) -> str | None:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return None
    exception = exception_text(traceback) if traceback else ""
    if returncode > 0:
        if "MemoryError" in exception or (not exception and _MEMORY_RE.search(stderr_tail[-3000:])):
            return "memory"
        if _FILE_SIZE_RE.search(exception):
            return "file-size"
        return None
    sig = -returncode
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and _cpu_used(rusage) >= cpu_seconds):
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file-size"
    if _MEMORY_RE.search(stderr_tail[-3000:]):  # e.g. abort() after std::bad_alloc
        return "memory"
    return f"signal {sig}"


def _cpu_used(rusage: resource.struct_rusage) -> float:
    return rusage.ru_utime + rusage.ru_stime


def _peak_memory_mb(rusage: resource.struct_rusage) -> float | None:
    if rusage.ru_maxrss <= 0:
        return None
    scale = _MIB if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return round(rusage.ru_maxrss / scale, 1)


# --- output --------------------------------------------------------------------------------------

def trim_text(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else head + marker line + tail within `limit`."""
    return _trim(text, "", 0, limit)


def _trim(head: str, tail: str, hidden: int, limit: int) -> str:
    """Trim the text `head + <hidden characters> + tail`. The tail gets two thirds of the room:
    the end of a log says more about how a run ended."""
    if hidden == 0 and len(head) + len(tail) <= limit:
        return head + tail
    total = len(head) + hidden + len(tail)
    marker_room = len(f"\n... [{total} characters cut] ...\n")
    budget = max(limit - marker_room, 0)
    keep_head = budget // 3
    keep_tail = budget - keep_head
    if hidden == 0:
        head, tail = head + tail, head + tail
    start = head[:keep_head]
    end = tail[len(tail) - keep_tail:] if keep_tail else ""
    cut = total - len(start) - len(end)
    return f"{start}\n... [{cut} characters cut] ...\n{end}"


def _read_trimmed(path: Path, limit: int) -> str:
    """Decode a capture file (errors replaced) and trim it, reading only its ends when it is large."""
    window = 4 * limit + 4096  # bytes: enough for `limit` characters of any UTF-8 text
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size <= 2 * window:
                return trim_text(_decode(handle.read()), limit)
            head = handle.read(window)
            handle.seek(size - window)
            tail = handle.read(window)
    except OSError as exc:
        raise SandboxError(f"Could not read the captured output {path}: {exc}") from exc
    head_text, tail_text = _decode(head), _decode(tail)
    return _trim(head_text, tail_text, size - 2 * window, limit)


def _read_tail(path: Path, nbytes: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(path.stat().st_size - nbytes, 0))
            return _decode(handle.read())
    except OSError as exc:
        raise SandboxError(f"Could not read the captured output {path}: {exc}") from exc


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --- tracebacks ----------------------------------------------------------------------------------

def clean_traceback(stderr: str, workdir: Path, limit: int = TRACEBACK_LIMIT) -> str | None:
    """The last traceback in `stderr`: harness frames (bootstrap, runpy) dropped, the workspace
    shown as `.`, site-packages paths shortened, at most about `limit` characters (older frames go
    first; the exception line always stays). None when `stderr` holds no traceback."""
    start = stderr.rfind(TRACEBACK_HEADER)
    if start < 0:
        return None
    lines = stderr[start:].splitlines()[1:]
    frames: list[list[str]] = []
    index = 0
    while index < len(lines) and lines[index].startswith(" "):
        if _FRAME_RE.match(lines[index]) or not frames:
            frames.append([lines[index]])
        else:
            frames[-1].append(lines[index])  # source line, carets, "[Previous line repeated ...]"
        index += 1
    frames = [frame for frame in frames if not _is_harness_frame(frame[0])]
    exception = _drop_trailer(lines[index:])
    frames_text = [_relative_paths("\n".join(frame), workdir) for frame in frames]
    exception_part = _relative_paths("\n".join(exception), workdir)
    return _fit_traceback(frames_text, exception_part, limit)


def exception_text(traceback: str) -> str:
    """The exception lines of a cleaned traceback (everything not indented, bar the header)."""
    return "\n".join(line for line in traceback.splitlines()[1:] if line and not line[0].isspace())


def _is_harness_frame(line: str) -> bool:
    match = _FRAME_RE.match(line)
    if not match:
        return False
    filename = match.group("file")
    return (filename == "<frozen runpy>" or os.path.basename(filename) in ("runpy.py", BOOT_SCRIPT.name))


def _drop_trailer(lines: list[str]) -> list[str]:
    """Exception lines up to whatever the interpreter printed after the traceback (warnings at exit)."""
    for index, line in enumerate(lines):
        if index > 0 and _TRAILER_RE.match(line):
            lines = lines[:index]
            break
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _relative_paths(text: str, workdir: Path) -> str:
    roots = sorted({str(workdir), os.path.realpath(workdir)}, key=len, reverse=True)
    for root in roots:
        text = text.replace(root.rstrip("/") + "/", "./").replace(root, ".")
    return _SITE_PACKAGES_RE.sub('File "<site-packages>/', text)


def _fit_traceback(frames: list[str], exception: str, limit: int) -> str:
    exception = trim_text(exception, max(limit // 2, 200))
    text = "\n".join([TRACEBACK_HEADER, *frames, exception])
    if len(text) <= limit:
        return text
    marker = "  ... [{} earlier frames cut] ..."
    room = limit - len(TRACEBACK_HEADER) - len(exception) - 2 - len(marker.format(len(frames))) - 1
    kept: list[str] = []
    for frame in reversed(frames):  # the most recent frames matter most
        if len(frame) + 1 > room:
            break
        kept.insert(0, frame)
        room -= len(frame) + 1
    if not kept and frames:  # a single huge frame (a very long source line): keep part of it
        kept = [trim_text(frames[-1], max(room, 200))]
    cut = [marker.format(len(frames) - len(kept))] if len(kept) < len(frames) else []
    return "\n".join([TRACEBACK_HEADER, *cut, *kept, exception])
