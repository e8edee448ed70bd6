"""Bootstrap run inside the sandbox child: `python _sandbox_boot.py CONFIG_JSON SCRIPT [ARGS...]`.

Standalone on purpose: it must not import tabcoder or any third-party library (only `_sandbox_confine`
beside it, itself standalone), and it must run on any Python >= 3.8 that might be chosen as the sandbox
interpreter. Behind bubblewrap (wall "bwrap") the namespaces and the seccomp filter are already in place.
In order, it

1. applies resource limits (address space, file size, CPU seconds, no core files);
2. for the reduced walls, moves itself into fresh user and network namespaces (`unshare` through ctypes),
   and for wall "landlock" restricts itself with Landlock and loads the seccomp filter;
3. caps the number of processes (RLIMIT_NPROC, once the count is the attempt's own: inside a user
   namespace, or under a uid of its own);
4. installs an audit hook that turns blocked network use and writes outside the workspace into friendly
   errors (the walls above are what holds; the hook only explains);
5. runs SCRIPT as `__main__` with `runpy.run_path`, and prints an uncaught exception's traceback
   without this file's or runpy's frames.

`python _sandbox_boot.py --probe MODE` only tries to unshare the network namespace the way MODE says
("net" or "user+net") and exits 0 on success, 1 on failure; the parent uses it to learn, once, what
this machine allows.

CONFIG_JSON keys: workspace (str), wall ("bwrap", "landlock" or "process"), block_network (bool), netns
("net", "user+net" or "none"), limits ({"as": bytes, "fsize": bytes, "cpu": seconds, "nproc": count}, each
optional), own_uid (bool: the uid is the attempt's alone), landlock ({"read_only": [...], "read_write": [...]}),
seccomp (hex of the filter program, or ""), report_fd (a pipe where a one-line JSON note about the
isolation obtained is written), lifeline (see `hold_lifeline`).
"""

import json
import os
import resource
import runpy
import signal
import socket
import sys
import threading
import traceback

_BOOT_FILE = os.path.abspath(__file__)
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_NETWORK_MESSAGE = "network access is disabled in this sandbox ({event})"
_WRITE_MESSAGE = "writing outside the workspace is not allowed in this sandbox ({event}: {path!r})"


# --- limits and namespaces ----------------------------------------------------------------------

def _set_limit(which, value):
    """Set soft and hard limit to `value`, never above the current hard limit."""
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def apply_limits(limits):
    _set_limit(resource.RLIMIT_CORE, 0)
    if limits.get("as"):
        _set_limit(resource.RLIMIT_AS, int(limits["as"]))
    if limits.get("fsize"):
        _set_limit(resource.RLIMIT_FSIZE, int(limits["fsize"]))
    if limits.get("cpu"):
        soft = int(limits["cpu"])
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        # Soft limit sends SIGXCPU; the hard limit, 2 s later, sends SIGKILL.
        new_hard = soft + 2 if hard == resource.RLIM_INFINITY else min(soft + 2, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, new_hard), new_hard))


def _write_proc(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def unshare_network(mode):
    """Enter a new network namespace as `mode` says; True on success. Needs a single-threaded process."""
    if mode not in ("net", "user+net"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWNET if mode == "net" else (_CLONE_NEWUSER | _CLONE_NEWNET)
    if libc.unshare(flags) != 0:
        return False
    if mode == "user+net":
        # Map our own ids so files we create keep our owner; without a map, file creation fails.
        try:
            _write_proc("/proc/self/setgroups", "deny")
            _write_proc("/proc/self/uid_map", "%d %d 1" % (uid, uid))
            _write_proc("/proc/self/gid_map", "%d %d 1" % (gid, gid))
        except OSError:
            return False
    return True


# --- audit hook ---------------------------------------------------------------------------------

class _Guard:
    """The audit hook: blocks network use (optionally) and writes outside the workspace."""

    def __init__(self, workspace, block_network, private_tmp=False):
        self.workspace = os.path.realpath(workspace)
        self.block_network = block_network
        self.allowed_roots = (self.workspace, "/dev/shm", "/tmp") if private_tmp else (self.workspace, "/dev/shm")
        self.allowed_files = ("/dev/null", "/dev/stdout", "/dev/stderr")
        self.path_checks = {
            # event: (indices of path arguments, index of dir_fd argument or None, follow symlinks)
            "open": ((0,), None, True),
            "os.truncate": ((0,), None, True),
            "os.chmod": ((0,), 2, True),
            "os.chown": ((0,), 3, True),
            "os.utime": ((0,), 3, True),
            "os.setxattr": ((0,), None, True),
            "os.removexattr": ((0,), None, True),
            "os.remove": ((0,), 1, False),
            "os.rmdir": ((0,), 1, False),
            "os.mkdir": ((0,), 2, False),
            "os.rename": ((0, 1), 2, False),
            "os.symlink": ((1,), 2, False),
            "os.link": ((1,), 3, False),
            "shutil.rmtree": ((0,), 1, False),
        }
        self.network_events = {
            "socket.connect", "socket.connect_ex", "socket.bind", "socket.sendto", "socket.sendmsg",
        }
        self.resolver_events = {
            "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
            "socket.gethostbyaddr", "socket.getnameinfo",
        }

    def __call__(self, event, args):
        # Called for every audit event in the process: return fast on the ones we don't care about.
        # Nothing below raises audit events itself (realpath, readlink, fsdecode are not audited).
        if event in self.path_checks:
            self._check_paths(event, args)
        elif event == "socket.__new__":
            if self.block_network and len(args) > 1 and args[1] not in (socket.AF_UNIX, -1):
                raise PermissionError(_NETWORK_MESSAGE.format(event="socket"))
        elif self.block_network and (event in self.network_events or event in self.resolver_events):
            self._check_network(event, args)

    # network

    def _check_network(self, event, args):
        if event in self.resolver_events:
            raise PermissionError(_NETWORK_MESSAGE.format(event=event))
        sock, address = args[0], args[1] if len(args) > 1 else None
        if getattr(sock, "family", None) != socket.AF_UNIX:
            raise PermissionError(_NETWORK_MESSAGE.format(event=event))
        if not self._unix_address_allowed(address):
            raise PermissionError(_NETWORK_MESSAGE.format(event=event + " to a socket outside the workspace"))

    def _unix_address_allowed(self, address):
        """Unnamed and abstract sockets are allowed (multiprocessing); named ones must be in the workspace."""
        if address is None or isinstance(address, int):
            return True
        try:
            path = os.fsdecode(address)
        except TypeError:
            return True
        if path == "" or path.startswith("\0"):
            return True
        return self._inside(self._resolve(path, None, True))

    # filesystem

    def _check_paths(self, event, args):
        indices, dir_fd_index, follow = self.path_checks[event]
        if event == "open" and not _is_write_open(args):
            return
        dir_fd = args[dir_fd_index] if dir_fd_index is not None and len(args) > dir_fd_index else None
        for index in indices:
            target = args[index] if len(args) > index else None
            if target is None or isinstance(target, int):
                continue  # a file descriptor: already opened, checked then
            try:
                path = os.fsdecode(target)
            except TypeError:
                continue
            if self._is_magic(path):
                continue
            if not self._inside(self._resolve(path, dir_fd, follow)):
                raise PermissionError(_WRITE_MESSAGE.format(event=event, path=path))

    def _is_magic(self, path):
        """Per-process /proc and /dev entries: writing there only touches this process's own files."""
        path = os.path.abspath(path)
        if path in self.allowed_files or path.startswith("/dev/fd/"):
            return True
        for prefix in ("/proc/self/", "/proc/thread-self/", "/proc/%d/" % os.getpid()):
            if path.startswith(prefix):
                return True
        return False

    @staticmethod
    def _resolve(path, dir_fd, follow):
        if not os.path.isabs(path) and isinstance(dir_fd, int) and dir_fd >= 0:
            try:
                path = os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), path)
            except OSError:
                pass
        path = os.path.abspath(path)
        if follow:
            return os.path.realpath(path)
        # The entry itself is changed, not what it points to: resolve only its folder.
        parent, name = os.path.split(path)
        return os.path.join(os.path.realpath(parent), name)

    def _inside(self, path):
        for root in self.allowed_roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return True
        return False


def _is_write_open(args):
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str) and any(letter in mode for letter in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


# --- running the script -------------------------------------------------------------------------

def _is_harness_frame(frame):
    filename = frame.filename
    return (os.path.abspath(filename) == _BOOT_FILE or filename == "<frozen runpy>"
            or os.path.basename(filename) == "runpy.py")


def _drop_harness_frames(exc_info, seen=None):
    """Remove this file's and runpy's frames from a TracebackException and everything it chains to."""
    seen = set() if seen is None else seen
    if exc_info is None or id(exc_info) in seen:
        return
    seen.add(id(exc_info))
    exc_info.stack = traceback.StackSummary.from_list(
        [frame for frame in exc_info.stack if not _is_harness_frame(frame)])
    _drop_harness_frames(exc_info.__cause__, seen)
    _drop_harness_frames(exc_info.__context__, seen)
    for member in getattr(exc_info, "exceptions", None) or ():
        _drop_harness_frames(member, seen)


def format_exception(exc):
    """The usual traceback text, minus harness frames; always headed by 'Traceback (most recent call last):'."""
    exc_info = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _drop_harness_frames(exc_info)
    text = "".join(exc_info.format())
    if not exc_info.stack:  # e.g. a SyntaxError raised while compiling the script: keep the header
        last = "".join(exc_info.format_exception_only())
        text = text[: len(text) - len(last)] + "Traceback (most recent call last):\n" + last
    return text


def run_script(script, argv):
    sys.argv = [script] + list(argv)
    sys.path[0] = os.path.dirname(script)  # as `python script.py` would have it, not this file's folder
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - report like the interpreter would, without our frames
        sys.stdout.flush()
        sys.stderr.write(format_exception(exc))
        sys.stderr.flush()
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def _write_report(fd, note):
    if fd is not None:
        try:
            os.write(fd, json.dumps(note).encode())
        except OSError:
            pass
        os.close(fd)


def _confine_module():
    sys.path.insert(0, os.path.dirname(_BOOT_FILE))
    try:
        import _sandbox_confine
    finally:
        del sys.path[0]
    return _sandbox_confine


def confine(config):
    """Landlock and seccomp for the "landlock" wall (the process must still be single-threaded)."""
    _sandbox_confine = _confine_module()
    rules = config.get("landlock") or {}
    abi = _sandbox_confine.landlock_restrict(rules.get("read_only", []), rules.get("read_write", []))
    if config.get("seccomp"):
        _sandbox_confine.install_seccomp(bytes.fromhex(config["seccomp"]))
    return abi


def drop_privileges(uid, gid):
    """Become `uid`:`gid` for good, with no supplementary group; setresuid away from root clears every
    capability. Checked: a bootstrap that is still root must not run the script."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise SystemExit("tabcoder sandbox: could not drop to uid %d" % uid)
    _confine_module().drop_capabilities()  # setresuid left the inheritable set: empty it too


def hold_lifeline(fd):
    """Kill this process group as soon as the harness is gone: `fd` is the read end of a pipe whose write end
    only the harness holds, so a read returns (EOF) exactly when the harness has died (even by SIGKILL).
    Nothing the script started in this group outlives the harness to write into its run folder."""

    def watch():
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="tabcoder-lifeline", daemon=True).start()


def restore_signals():
    """The script gets the signals of an interpreter started from a shell: none blocked, SIGINT raising
    KeyboardInterrupt, SIGTERM ending it. A harness process that ignores or blocks them (a host that set
    SIG_IGN, a library that masked SIGINT) must not pass that on: the timeout's SIGINT would leave no
    traceback, and the stop would wait for SIGTERM's grace."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv):
    restore_signals()
    if len(argv) >= 2 and argv[0] == "--probe":
        return 0 if unshare_network(argv[1]) else 1
    config = json.loads(argv[0])
    if config.get("drop_to"):
        drop_privileges(*config["drop_to"])
    os.chdir(config["workspace"])
    os.environ.pop("PWD", None)  # bubblewrap sets it; the environment is the harness's allow-list
    if argv[1:2] == ["-c"]:  # the harness's probe of the wall: a line of code, not a script
        exec(compile(argv[2], "<probe>", "exec"), {"__name__": "__main__"})
        return 0
    script, script_args = os.path.abspath(argv[1]), argv[2:]
    limits = config.get("limits") or {}
    apply_limits(limits)
    wall = config.get("wall", "process")
    netns = config.get("netns", "none")
    got_namespace = wall != "bwrap" and config.get("block_network", True) and unshare_network(netns)
    note = {"netns": netns if got_namespace else "none"}
    if got_namespace:  # every process of the attempt shares it (setns is filtered): the harness's way to find them
        note["netns_inode"] = os.stat("/proc/self/ns/net").st_ino
    if wall != "bwrap":
        _confine_module().drop_capabilities()  # a new user namespace grants all of them; root keeps none either
    if wall == "landlock":
        note["landlock"] = confine(config)
    if limits.get("nproc") and (wall == "bwrap" or config.get("own_uid") or (got_namespace and "user" in netns)):
        _set_limit(resource.RLIMIT_NPROC, int(limits["nproc"]))
    if config.get("lifeline") is not None:  # a thread: only after unshare(CLONE_NEWUSER) and Landlock
        hold_lifeline(int(config["lifeline"]))
    _write_report(config.get("report_fd"), note)
    private_tmp = wall == "bwrap"  # bubblewrap's /tmp and /dev/shm are the attempt's own
    sys.addaudithook(_Guard(config["workspace"], bool(config.get("block_network", True)), private_tmp))
    return run_script(script, script_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
