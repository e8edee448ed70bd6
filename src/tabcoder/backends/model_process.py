"""Starting, sharing and supervising the local model's process (`tabcoder.backends.llama_server`).

Scope: `ServerSpec` (what is loaded, and how), `ModelServer` (one child process: start, wait until the
model is loaded, tell whether it is alive and how it ended, stop), and a per-process registry so that one
loaded model serves every backend of the same spec: all workers of a run, all cells of a bench. A process
started with `share_servers()` in effect (a bench's worker pool) inherits the servers of its parent through
the environment (`TABCODER_MODEL_SERVERS`) instead of loading its own copy.

How a model process ended is turned into words a user can act on (`describe_exit`): a SIGSEGV or SIGILL
is a native fault in llama.cpp (`tabcoder models --check`, `TABCODER_EXTRA_BUFTS=off`), a SIGKILL is most
often the out-of-memory killer, a SIGABRT an assertion in llama.cpp.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any, cast

from tabcoder.errors import BackendError

log = logging.getLogger(__name__)

SERVERS_ENV = "TABCODER_MODEL_SERVERS"
DEFAULT_LOAD_TIMEOUT = 600.0  # assembling is done before; loading 1 GB of weights takes seconds
STDERR_LINES = 40
CHECK_FIX = "run `tabcoder models --check` to test the local models on this machine"


@dataclass(frozen=True)
class ServerSpec:
    """A model as one server process loads it; two equal specs share one process."""

    path: str
    model_id: str
    threads: int = 1
    n_ctx: int = 8192
    n_batch: int = 512
    extra_bufts: bool = False
    verbose: bool = False

    @property
    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tabcoder.backends.llama_server", "--path", self.path,
                "--model-id", self.model_id, "--threads", str(self.threads), "--n-ctx", str(self.n_ctx),
                "--n-batch", str(self.n_batch),
                "--extra-bufts", "on" if self.extra_bufts else "off", *(["--verbose"] if self.verbose else [])]


def describe_exit(returncode: int | None) -> str:
    """How a model process ended, and what to do about it."""
    if returncode is None:
        return "is still running"
    if returncode >= 0:
        return f"exited with status {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number in (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE):
        return (f"crashed ({name}, a native fault in llama.cpp); {CHECK_FIX}, and try TABCODER_EXTRA_BUFTS=off "
                f"(no repacked/AMX weights) or another model")
    if number == signal.SIGKILL:
        return ("was killed (SIGKILL; most often the kernel's out-of-memory killer: see `dmesg`, free memory, "
                "or use a smaller model or a smaller --n-ctx)")
    if number == signal.SIGABRT:
        return f"aborted (SIGABRT, an assertion in llama.cpp); {CHECK_FIX}"
    return f"was ended by {name}"


class ModelServer:
    """One model process. `owned` servers were started here and are stopped by `stop()`; others were
    inherited from a parent process and are only used."""

    def __init__(self, spec: ServerSpec, url: str, token: str, pid: int,
                 process: subprocess.Popen | None = None, load_seconds: float | None = None) -> None:
        self.spec = spec
        self.url = url
        self.token = token
        self.pid = pid
        self.process = process
        self.load_seconds = load_seconds
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._ready: dict[str, Any] | None = None
        self._loaded = threading.Event()

    @property
    def owned(self) -> bool:
        return self.process is not None

    @classmethod
    def start(cls, spec: ServerSpec, *, load_timeout: float = DEFAULT_LOAD_TIMEOUT) -> ModelServer:
        """Start the process and wait until the model is loaded; a load failure is a BackendError.

        The bearer token goes to the child on its stdin (not in its environment, which /proc shows)."""
        token = secrets.token_hex(16)
        env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads)}
        env.pop(SERVERS_ENV, None)
        try:
            process = subprocess.Popen(spec.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=env, text=True, encoding="utf-8",
                                       errors="replace", start_new_session=True)
            stdin = cast(IO[str], process.stdin)  # stdin=PIPE
            stdin.write(token + "\n")
            stdin.close()
        except OSError as exc:
            raise BackendError(f"cannot start the local model process for {spec.model_id}: {exc}") from exc
        server = cls(spec, "", token, process.pid, process)
        threading.Thread(target=server._drain, args=(process.stderr, server._stderr), daemon=True).start()
        threading.Thread(target=server._drain, args=(process.stdout, None), daemon=True).start()
        ready = server._wait_ready(load_timeout)
        server.url = f"http://127.0.0.1:{ready['port']}"
        server.load_seconds = ready.get("load_seconds")
        log.info("model process %d serves %s at %s (loaded in %s s)", server.pid, spec.model_id, server.url,
                 server.load_seconds)
        return server

    def _drain(self, stream: Any, keep: collections.deque[str] | None) -> None:
        """Read a pipe of the child to its end (so the child never blocks on a full pipe): stdout's first
        ready line is the readiness report; stderr's last lines are kept for error messages."""
        for line in stream:
            line = line.rstrip()
            if keep is not None:
                if line:
                    keep.append(line)
            elif self._ready is None:
                self._ready = _ready_line(line)
                if self._ready is not None:
                    self._loaded.set()
        if keep is None:
            self._loaded.set()  # stdout closed: the child is gone (or closed it)

    def _wait_ready(self, load_timeout: float) -> dict[str, Any]:
        assert self.process is not None
        if not self._loaded.wait(load_timeout):
            self.stop()
            raise BackendError(f"the local model process for {self.spec.model_id} did not finish loading within "
                               f"{load_timeout:.0f} s; {CHECK_FIX}")
        if self._ready is not None:
            return self._ready
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.stop()
        raise BackendError(f"the local model process could not load {self.spec.model_id}: it "
                           f"{describe_exit(self.process.returncode)}{self._said()}")

    def _said(self) -> str:
        time.sleep(0.05)  # let the stderr reader take the last lines
        errors = [line for line in self._stderr if line.startswith("error:")]
        shown = errors[-1][len("error:"):].strip() if errors else " | ".join(list(self._stderr)[-3:])
        return f" ({shown[:600]})" if shown else ""

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def failure(self) -> str | None:
        """None while the process runs; otherwise a sentence on how it ended and what to do."""
        if self.alive():
            return None
        if self.process is None:
            return f"the local model process {self.pid} (started by a parent process) is gone"
        return f"the local model process {self.pid} {describe_exit(self.process.returncode)}{self._said()}"

    def healthy(self, timeout: float = 5.0) -> bool:
        request = urllib.request.Request(self.url + "/health", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self, grace: float = 5.0) -> None:
        """Stop an owned process (SIGTERM, then SIGKILL); an inherited one is left to its owner."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)

    def to_env(self) -> dict[str, Any]:
        return {"spec": asdict(self.spec), "url": self.url, "token": self.token, "pid": self.pid}


def _ready_line(line: str) -> dict[str, Any] | None:
    """The server's readiness report (`{"ready": true, "port": N, ...}`), or None for any other line."""
    try:
        ready = json.loads(line)
        return ready if ready.get("ready") and int(ready["port"]) > 0 else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------- sharing one process per spec

_lock = threading.Lock()
_servers: dict[str, tuple[ModelServer, int]] = {}  # spec key -> (server, users)


def _inherited(spec: ServerSpec) -> ModelServer | None:
    raw = os.environ.get(SERVERS_ENV)
    if not raw:
        return None
    try:
        entries = json.loads(raw)
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        try:
            if ServerSpec(**entry["spec"]) == spec:
                server = ModelServer(spec, entry["url"], entry["token"], int(entry["pid"]))
                return server if server.healthy() else None
        except (KeyError, TypeError, ValueError):
            continue
    return None


def acquire(spec: ServerSpec, *, load_timeout: float = DEFAULT_LOAD_TIMEOUT) -> ModelServer:
    """The running server for `spec` (inherited, or started here once), counted as one more user."""
    with _lock:
        entry = _servers.get(spec.key)
        if entry is not None and entry[0].alive():
            _servers[spec.key] = (entry[0], entry[1] + 1)
            return entry[0]
        if entry is not None:
            entry[0].stop()
        server = _inherited(spec) or ModelServer.start(spec, load_timeout=load_timeout)
        _servers[spec.key] = (server, 1)
        return server


def release(server: ModelServer) -> None:
    """One user fewer; the last one stops a process started here."""
    with _lock:
        entry = _servers.get(server.spec.key)
        if entry is None or entry[0] is not server:
            server.stop()
            return
        users = entry[1] - 1
        if users > 0:
            _servers[server.spec.key] = (server, users)
            return
        del _servers[server.spec.key]
    server.stop()


def running() -> list[ModelServer]:
    with _lock:
        return [server for server, _ in _servers.values()]


@contextlib.contextmanager
def share_servers(specs: list[ServerSpec]) -> Iterator[list[ModelServer]]:
    """Start (or reuse) a server per spec and export them, so that child processes started meanwhile use
    these instead of loading their own copies; stopped (when started here) at the end."""
    servers = [acquire(spec) for spec in specs]
    before = os.environ.get(SERVERS_ENV)
    os.environ[SERVERS_ENV] = json.dumps([s.to_env() for s in servers])
    try:
        yield servers
    finally:
        if before is None:
            os.environ.pop(SERVERS_ENV, None)
        else:
            os.environ[SERVERS_ENV] = before
        for server in servers:
            release(server)
