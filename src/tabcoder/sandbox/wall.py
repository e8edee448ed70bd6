"""The wall around an attempt: which one this machine can build, and the bubblewrap command line that builds it.

Three walls, strongest first:

* `bwrap` (strict): bubblewrap puts the script in its own user, mount, PID, network, IPC and UTS namespaces.
  Its filesystem view is an empty tmpfs holding the workspace (read-write, at its own path), the system
  folders (`/usr`, `/lib*`, a few files of `/etc`) and the Python installation read-only, a private
  size-capped `/tmp` and `/dev/shm`, a minimal `/dev` and a `/proc` of its own processes. A seccomp filter
  closes every socket family but AF_UNIX (and io_uring, ptrace, process_vm_*). When the PID namespace's
  init ends, the kernel kills every process left in it.
* `landlock` (reduced): no bubblewrap. The bootstrap enters user and network namespaces, restricts itself
  with Landlock (reads: the Python installation and system folders; writes: the workspace), scopes
  signals and abstract sockets to itself, and loads the same seccomp filter. No PID namespace: a process
  that leaves the group is found by its uid or as a descendant and killed after the run.
* `process` (reduced): resource limits, a network namespace where the machine allows one, and the audit hook.

This module decides and describes; `local` runs. Nothing here runs untrusted code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tabcoder import _sandbox_confine as confine
from tabcoder.config import ISOLATIONS
from tabcoder.errors import ConfigError, SandboxError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent   # holds the bootstrap and the confinement module
BWRAP_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; "
              "Arch: pacman -S bubblewrap)")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/alternatives", "/etc/fonts", "/sys/devices/system/cpu")


class IsolationUnavailable(ConfigError):
    """`--isolation strict` was asked for and this machine cannot build the strict wall."""


@dataclass(frozen=True)
class Layout:
    """What the sandbox interpreter needs to see, read-only: its own folders and its import path."""
    executable: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Wall:
    kind: str                 # "bwrap", "landlock" or "process"
    why: str | None = None    # for a reduced wall: what is missing and how to get the strict one
    bwrap: str | None = None
    landlock_abi: int = 0
    as_root: bool = False     # reduced walls under root whose interpreter the sandbox uid cannot read

    @property
    def level(self) -> str:
        return "strict" if self.kind == "bwrap" else "reduced"


# --- choosing the wall ---------------------------------------------------------------------------

_walls: dict[tuple[str, str], Wall] = {}
_walls_lock = threading.Lock()


def choose_wall(isolation: str, python: str) -> Wall:
    """The wall for `isolation` ("auto": the strongest that works here, "strict": bwrap or an
    `IsolationUnavailable` naming what is missing, "reduced": never bwrap). Probed once per interpreter."""
    if isolation not in ISOLATIONS:
        raise ConfigError(f"isolation must be one of {', '.join(ISOLATIONS)} (got {isolation!r}).")
    with _walls_lock:
        key = (isolation, python)
        if key not in _walls:
            _walls[key] = _choose(isolation, python)
            logger.debug("sandbox: wall for %s (%s): %s", python, isolation, _walls[key])
        wall = _walls[key]
    if isolation == "strict" and wall.kind != "bwrap":
        raise IsolationUnavailable(f"--isolation strict needs the bubblewrap wall, and {wall.why}")
    return wall


def _choose(isolation: str, python: str) -> Wall:
    why = "isolation 'reduced' was asked for"
    if isolation != "reduced":
        bwrap = os.environ.get("TABCODER_BWRAP") or shutil.which("bwrap")
        if not bwrap or not os.access(bwrap, os.X_OK):
            why = f"bubblewrap (bwrap) is not installed: {BWRAP_HINT}"
        else:
            failure = _probe_bwrap(bwrap, python)
            if failure is None:
                return Wall("bwrap", bwrap=bwrap)
            why = f"bubblewrap could not start a sandbox here ({failure})"
            if isolation == "strict":
                return Wall("process", why=why)
    abi = confine.landlock_abi()
    as_root = os.geteuid() == 0 and not _uid_can_run(python)
    if as_root:
        why += (f"; the sandbox uid cannot read the interpreter {python} (a folder above it is private), so "
                "scripts run as root without capabilities")
    if abi >= 1:
        return Wall("landlock", why=why, landlock_abi=abi, as_root=as_root)
    return Wall("process", why=f"{why}; Landlock is not enabled in this kernel (Linux 5.13 or later, lsm=landlock)",
                as_root=as_root)


def _uid_can_run(python: str) -> bool:
    """Whether the unprivileged sandbox uid can start `python` and import its standard library (without a
    mount namespace it sees the real folders, and a 0700 home above a Python stops it)."""
    from tabcoder.sandbox.identity import SandboxUser

    with SandboxUser.acquire() as user:
        try:
            done = subprocess.run([python, "-c", "import encodings, runpy, pkgutil, json"], cwd="/",
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                  env={"PATH": os.defpath}, **user.popen_kwargs())
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _probe_bwrap(bwrap: str, python: str) -> str | None:
    """None when bwrap runs `python` walled in here (as the unprivileged sandbox user when we are root), else
    what went wrong, in a few words from its own error."""
    from tabcoder.sandbox.identity import SandboxUser

    layout = interpreter_layout(python)
    with SandboxUser.acquire() as user, Binds() as binds:
        probe_dir = binds.scratch_dir(user)
        command = bwrap_command(bwrap, layout, binds=binds, workdir=probe_dir, tmp_mb=16, user=user)
        config = {"workspace": probe_dir, "wall": "bwrap", "drop_to": [user.uid, user.gid] if user.privileged else None}
        command += [layout.executable, str(PACKAGE_DIR / "_sandbox_boot.py"), json.dumps(config), "-c",
                    "import encodings, json"]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                  pass_fds=binds.fds, env={"PATH": os.defpath})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode == 0:
        return None
    message = done.stderr.decode(errors="replace").strip().splitlines()
    return (message[-1] if message else f"exit status {done.returncode}")[:300]


# --- the interpreter's folders -------------------------------------------------------------------

_layouts: dict[str, Layout] = {}


def interpreter_layout(python: str) -> Layout:
    """The folders `python` reads: prefixes, import path, the real executable. Asked of it once, then cached."""
    if python not in _layouts:
        code = ("import json, os, sys; print(json.dumps({'executable': os.path.realpath(sys.executable), "
                "'paths': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "
                "os.path.dirname(os.path.realpath(sys.executable)), *sys.path]}))")
        try:
            done = subprocess.run([python, "-I", "-c", code], capture_output=True, timeout=60, check=True,
                                  stdin=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", os.defpath)})
            found = json.loads(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise SandboxError(f"Could not ask the sandbox interpreter {python!r} for its folders: {exc}. "
                              "Check that it exists and runs.") from exc
        paths = {os.path.realpath(p) for p in found["paths"] if p and os.path.exists(p)}
        paths.add(os.path.dirname(os.path.abspath(python)))  # a venv's bin/ (python is a link into it)
        _layouts[python] = Layout(executable=os.path.abspath(python), paths=_outermost(paths))
    return _layouts[python]


def _outermost(paths: set[str]) -> tuple[str, ...]:
    """Paths not inside a system folder or another path of the set (binding a folder binds its contents)."""
    roots = sorted(paths, key=len)
    kept: list[str] = []
    for path in roots:
        covered = [*kept, *SYSTEM_DIRS]
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in covered):
            kept.append(path)
    return tuple(kept)


# --- bubblewrap's command line -------------------------------------------------------------------

class Binds:
    """File descriptors handed to bwrap (folders to bind, generated files, the seccomp program); closed on exit.

    Binding an open descriptor instead of a path lets the unprivileged sandbox user mount a folder whose
    parents it may not enter (a run folder under a 0700 home, pytest's temporary folders)."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self._dirs: list[str] = []

    def __enter__(self) -> Binds:
        return self

    def __exit__(self, *exc) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)

    def path(self, path: str) -> int:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def data(self, content: bytes) -> int:
        fd = os.memfd_create("tabcoder-bind", 0)
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
        self.fds.append(fd)
        return fd

    def scratch_dir(self, user) -> str:
        import tempfile

        path = tempfile.mkdtemp(prefix="tabcoder-probe-")
        user.own(Path(path))
        self._dirs.append(path)
        return path


def bwrap_command(bwrap: str, layout: Layout, *, binds: Binds, workdir: str, tmp_mb: int, user,
                  network: bool = False) -> list[str]:
    """bwrap's arguments up to and including `--`; the command to run follows. `network` keeps the host's
    network namespace and loads no seccomp filter (for `allow_network`, never the default)."""
    if user.privileged:
        # tabcoder is root: bwrap builds the view with root's rights (so a Python under /root can be bound),
        # and the bootstrap inside drops to the attempt's uid before anything untrusted runs; it keeps only
        # the two capabilities that needs, and setresuid clears them.
        command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                   "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    command += ["--die-with-parent", "--hostname", "sandbox"]
    if network:
        command.remove("--unshare-net") if user.privileged else command.append("--share-net")
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            command += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            command += ["--ro-bind", folder, folder]
    made: set[str] = set()
    for path in SYSTEM_FILES:
        if os.path.exists(path):
            command += [*_parents(path, made), "--ro-bind", path, path]
    account = f"sandbox:x:{user.uid}:{user.gid}:sandbox:{workdir}:/bin/false\n".encode()
    command += [*_parents("/etc/passwd", made), "--perms", "0444", "--ro-bind-data", str(binds.data(account)),
                "/etc/passwd", "--perms", "0444",
                "--ro-bind-data", str(binds.data(f"sandbox:x:{user.gid}:\n".encode())), "/etc/group"]
    for path in _outermost({*layout.paths, str(PACKAGE_DIR)}):
        command += [*_parents(path, made), "--ro-bind-fd", str(binds.path(path)), path]
    size = str(tmp_mb * 1024 * 1024)
    command += ["--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    made = {p for p in made if not p.startswith("/tmp/")}  # the tmpfs hides what was made there
    command += [*_parents(workdir, made), "--bind-fd", str(binds.path(workdir)), workdir]  # entered by the bootstrap
    program = None if network else confine.seccomp_program()
    if program is not None:
        command += ["--seccomp", str(binds.data(program))]
    return [*command, "--"]


def landlock_rules(python: str, workdir: Path) -> dict[str, list[str]]:
    """What the "landlock" wall lets the bootstrap read (the system folders, the interpreter's, tabcoder's
    package, a few devices) and write (the workspace, /dev/null, the host's /dev/shm that joblib needs)."""
    read_only = [*SYSTEM_DIRS, *SYSTEM_FILES, "/etc/passwd", "/etc/group", "/dev/urandom", "/dev/random",
                 "/dev/zero", *interpreter_layout(python).paths, str(PACKAGE_DIR)]
    return {"read_only": read_only, "read_write": [str(workdir), "/dev/null", "/dev/shm"]}


def _parents(path: str, made: set[str]) -> list[str]:
    """`--dir` operations for the folders above `path` in the view, world-traversable (bwrap would make them
    0700, which the attempt's uid could not enter); each folder once."""
    ops: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder not in made and not any(folder == d or folder.startswith(d + "/") for d in SYSTEM_DIRS):
            made.add(folder)
            ops += ["--perms", "0755", "--dir", folder]
    return ops


def describe(wall: Wall, *, netns: str, memory_mb: int, pids: int, disk_mb: int, tmp_mb: int, file_size_mb: int,
             root: bool, network_allowed: bool, cpu_margin_s: int, threads: int) -> dict:
    """The isolation report for run.json and the first progress line."""
    if wall.kind == "bwrap":
        walls = f"bwrap: mount+pid+net+ipc{'' if root else '+user'} namespaces, seccomp (AF_UNIX only)"
    elif wall.kind == "landlock":
        walls = f"Landlock ABI {wall.landlock_abi}, network namespace: {netns}, seccomp (AF_UNIX only)"
    else:
        walls = f"process limits, network namespace: {netns}, audit hook"
    if network_allowed:
        walls += "; network ALLOWED"
    pid_cap = "no process cap (root)" if wall.as_root else f"{pids} pids"
    limits = (f"memory {memory_mb / 1024:g} GiB for all processes; {pid_cap}; {disk_mb / 1024:g} GiB disk; "
              f"{tmp_mb} MiB /tmp; files up to {file_size_mb} MiB")
    who = ("root without capabilities" if wall.as_root else "unprivileged uid") if root else "tabcoder's own uid"
    summary = f"{wall.level} ({walls}; {limits}; {who})"
    if wall.why:
        summary += f"; reduced because {wall.why}"
    return {
        "level": wall.level, "wall": wall.kind, "summary": summary, "why": wall.why,
        "network": "allowed" if network_allowed else ("namespace+seccomp" if wall.kind != "process" else
                                                      ("namespace+audit-hook" if netns != "none" else "audit-hook")),
        "memory_mb": memory_mb, "pids": pids, "disk_mb": disk_mb, "tmp_mb": tmp_mb, "file_size_mb": file_size_mb,
        "uid": ("root-without-capabilities" if wall.as_root else "unprivileged") if root else "own", "env": "allow-list", "process_group": True,
        "cpu_seconds": f"timeout+{cpu_margin_s}", "threads": threads,
        "python": sys.version.split()[0],
    }
