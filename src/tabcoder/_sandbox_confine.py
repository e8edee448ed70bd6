"""Kernel-level confinement for the sandbox child: a seccomp filter, Landlock, namespaces.

Standalone on purpose, like `_sandbox_boot.py`: only the standard library (ctypes, os, struct), no tabcoder
import, Python >= 3.8, Linux on x86_64 or aarch64. Every restriction here is irreversible and inherited by
children, so apply them in the process that is about to run the untrusted script, in this order:
`enter_namespaces` (it needs unshare/mount, which the filter forbids), `drop_capabilities`,
`landlock_restrict`, `install_seccomp(seccomp_program())`.

What it does:

* `seccomp_program()` builds a classic-BPF filter (the raw `struct sock_filter` array bubblewrap reads from
  `--seccomp FD`) that: fails syscalls of a foreign arch (i386 / arm32 compat) and x32 with ENOSYS; lets
  `socket`/`socketpair` create AF_UNIX sockets only (any other family: EAFNOSUPPORT); fails io_uring with
  ENOSYS (its ops can create sockets behind the filter's back) and clone3 with ENOSYS (its flags are in
  memory the filter cannot read; glibc then falls back to clone); fails `clone` with a CLONE_NEW* flag and
  the kernel-attack-surface / escape syscalls in `_EPERM` with EPERM. Everything else is allowed.
* `landlock_restrict()` confines the filesystem to read-only and read-write trees, denies TCP bind/connect
  (ABI >= 4), and scopes abstract unix sockets and signals to the domain (ABI >= 6).
* `enter_namespaces()` unshares user (optional), network, mount and optionally pid namespaces;
  `drop_capabilities()` then empties the capability sets a new user namespace grants.

What it does not do: resource limits, the audit hook, the workspace layout (see `_sandbox_boot.py`). Landlock
(up to ABI 7) does not restrict UDP, connect(2) to *pathname* unix sockets, or files opened before the call.
Both seccomp (without TSYNC) and Landlock apply to the calling thread only: call them while the process is
single-threaded (`landlock_restrict` refuses otherwise; `install_seccomp` syncs all threads with TSYNC).
"""

import ctypes
import errno
import os
import platform
import signal
import stat
import struct

# --- seccomp ------------------------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
_X32_SYSCALL_BIT = 0x40000000

# Syscall numbers: name -> (x86_64, aarch64). aarch64 uses the asm-generic table; 424+ are shared by all arches.
_SYSCALLS = {
    "socket": (41, 198), "socketpair": (53, 199), "clone": (56, 220), "clone3": (435, 435),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    # EPERM: debugging other processes, kernel code/keys/bpf, userfaultfd (exploit aid), mounts, namespaces.
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "bpf": (321, 280), "perf_event_open": (298, 241),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218), "userfaultfd": (323, 282),
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "open_by_handle_at": (304, 265),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442), "open_tree_attr": (467, 467),
    "unshare": (272, 97), "setns": (308, 268),
}
_ENOSYS = ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3")
_EPERM = ("ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load", "bpf",
          "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "mount", "umount2", "pivot_root",
          "open_by_handle_at", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
          "mount_setattr", "open_tree_attr", "unshare", "setns")
_AF_UNIX = 1
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (clone's flags are arg0 on both arches).
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|..|K, BPF_RET|K
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low 32 bits (little endian)
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000


def _assemble(items):
    """Resolve labels: items are ("label", name) or (code, k, jt, jf) with jt/jf a label or 0 (next)."""
    labels, position = {}, 0
    for item in items:
        if item[0] == "label":
            labels[item[1]] = position
        else:
            position += 1
    out, position = [], 0
    for item in items:
        if item[0] == "label":
            continue
        code, k, jt, jf = item
        offsets = [0 if target == 0 else labels[target] - position - 1 for target in (jt, jf)]
        if not all(0 <= offset <= 255 for offset in offsets):
            raise ValueError("BPF jump out of range")
        out.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k))
        position += 1
    return b"".join(out)


def seccomp_program(arch=None):
    """The filter for `arch` (default: this machine), as raw sock_filter bytes; None for unsupported arches."""
    arch = arch or platform.machine()
    if arch not in _AUDIT_ARCH:
        return None
    index = 0 if arch == "x86_64" else 1
    nr = {name: numbers[index] for name, numbers in _SYSCALLS.items()}
    items = [(_LD_W_ABS, _OFF_ARCH, 0, 0), (_JEQ_K, _AUDIT_ARCH[arch], 0, "enosys"), (_LD_W_ABS, _OFF_NR, 0, 0)]
    if arch == "x86_64":
        items.append((_JGE_K, _X32_SYSCALL_BIT, "enosys", 0))
    items += [(_JEQ_K, nr["socket"], "socket", 0), (_JEQ_K, nr["socketpair"], "socket", 0),
              (_JEQ_K, nr["clone"], "clone", 0)]
    items += [(_JEQ_K, nr[name], "eperm", 0) for name in _EPERM]
    items += [(_JEQ_K, nr[name], "enosys", 0) for name in _ENOSYS]
    items += [(_RET_K, _RET_ALLOW, 0, 0),
              ("label", "socket"), (_LD_W_ABS, _OFF_ARG0, 0, 0), (_JEQ_K, _AF_UNIX, "allow", 0),
              (_RET_K, _RET_ERRNO | errno.EAFNOSUPPORT, 0, 0),
              ("label", "clone"), (_LD_W_ABS, _OFF_ARG0, 0, 0), (_JSET_K, _CLONE_NS_FLAGS, "eperm", "allow"),
              ("label", "eperm"), (_RET_K, _RET_ERRNO | errno.EPERM, 0, 0),
              ("label", "enosys"), (_RET_K, _RET_ERRNO | errno.ENOSYS, 0, 0),
              ("label", "allow"), (_RET_K, _RET_ALLOW, 0, 0)]
    return _assemble(items)


# --- ctypes plumbing ----------------------------------------------------------------------------

_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 1, 22, 24, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_SECCOMP_MODE_FILTER, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 2, 1, 1
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}
_CAPSET_SYSCALL = {"x86_64": 126, "aarch64": 91}
_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _check(result, what):
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))
    return result


def _syscall(number, *args):
    return _check(_lib().syscall(ctypes.c_long(number), *args), "syscall %d" % number)


def _prctl(option, arg2=0, arg3=0):
    arg3 = ctypes.c_ulong(arg3) if isinstance(arg3, int) else arg3
    return _check(_lib().prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), arg3, ctypes.c_ulong(0),
                               ctypes.c_ulong(0)), "prctl %d" % option)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(program):
    """Set no_new_privs, then load `program` (raw sock_filter bytes) into every thread of the process:
    seccomp(2) with TSYNC, or prctl(PR_SET_SECCOMP) where seccomp(2) is unknown. OSError with errno on failure."""
    if not program or len(program) % 8:
        raise ValueError("a seccomp program is a non-empty array of 8-byte sock_filter entries")
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    buffer = ctypes.create_string_buffer(bytes(program), len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    number = _SECCOMP_SYSCALL.get(platform.machine())
    if number is None:
        _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog))
        return
    failed_tid = _syscall(number, ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
                          ctypes.byref(fprog))
    if failed_tid:  # TSYNC names a thread it could not synchronise (one with an unrelated filter)
        raise OSError(errno.EBUSY, "seccomp: thread %d could not be synchronised" % failed_tid)


# --- Landlock -----------------------------------------------------------------------------------

_LL_CREATE_RULESET, _LL_ADD_RULE, _LL_RESTRICT_SELF = 444, 445, 446  # same on x86_64 and aarch64
_LL_CREATE_RULESET_VERSION, _LL_RULE_PATH_BENEATH = 1, 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


def landlock_abi():
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable (not built, disabled, or no syscall)."""
    try:
        return max(0, _syscall(_LL_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_LL_CREATE_RULESET_VERSION)))
    except OSError:
        return 0


def _thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _add_path_rule(ruleset_fd, path, rights):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # nonexistent paths are skipped
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FS_FILE_RIGHTS  # directory-only rights on a file: EINVAL
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)  # packed path_beneath_attr
        _syscall(_LL_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(_LL_RULE_PATH_BENEATH), attr, ctypes.c_uint32(0))
    finally:
        os.close(fd)


def landlock_restrict(read_only, read_write, *, scope=True):
    """Confine this process (the calling thread and its future children) with Landlock; returns the ABI used.

    Every filesystem right the ABI knows is handled: `read_only` trees get EXECUTE, READ_FILE, READ_DIR,
    `read_write` trees get everything; the rest of the filesystem nothing. ABI >= 4: TCP bind and connect
    are denied (handled, no rule). ABI >= 6 and `scope`: abstract unix sockets and signals cannot reach
    processes outside the domain. ABI 1 (no REFER): renames and links across folders are always denied.
    Must run while the process is single-threaded (RuntimeError otherwise: other threads would stay free).
    OSError when the kernel has no Landlock or a syscall fails."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not available on this kernel")
    if _thread_count() > 1:
        raise RuntimeError("landlock_restrict needs a single-threaded process: it restricts the calling thread only")
    fs = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    fs |= _FS_IOCTL_DEV if abi >= 5 else 0
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 and scope else 0
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # landlock_ruleset_attr: u64 fs, u64 net, u64 scoped
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", fs, net, scoped)[:size], size)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    ruleset_fd = _syscall(_LL_CREATE_RULESET, attr, ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        read_rights = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for paths, rights in ((read_only, read_rights), (read_write, fs)):
            for path in paths:
                _add_path_rule(ruleset_fd, path, rights)
        _syscall(_LL_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)
    return abi


# --- namespaces and capabilities ----------------------------------------------------------------

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18


def _write_proc(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def enter_namespaces(*, user, uid_map=None, pid=False):
    """Unshare network and mount namespaces (and a user namespace when `user`, needed unless root).

    `uid_map` = (uid, gid) to appear as inside the user namespace, mapped onto our own euid/egid (default:
    the same ids); setgroups is denied. Mounts are made private so nothing propagates out. With `pid`, the
    process also enters a new pid namespace: it forks, the parent waits and exits with the child's status
    (SIGTERM/SIGHUP become SIGKILL for the child, which as pid 1 ignores signals it has no handler for),
    and only the child, pid 1 there, with a fresh /proc where the kernel allows, returns. Needs a
    single-threaded process and must come before `install_seccomp`, which forbids unshare and mount.
    Inside a new user namespace the process holds every capability there: call `drop_capabilities` next."""
    libc = _lib()
    uid, gid = os.geteuid(), os.getegid()
    inside_uid, inside_gid = uid_map if uid_map is not None else (uid, gid)
    flags = _CLONE_NEWNET | _CLONE_NEWNS | (_CLONE_NEWUSER if user else 0) | (_CLONE_NEWPID if pid else 0)
    _check(libc.unshare(ctypes.c_int(flags)), "unshare")
    if user:
        _write_proc("/proc/self/setgroups", "deny")
        _write_proc("/proc/self/uid_map", "%d %d 1" % (inside_uid, uid))
        _write_proc("/proc/self/gid_map", "%d %d 1" % (inside_gid, gid))
    _check(libc.mount(b"none", b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None), "mount --make-rprivate /")
    if pid:
        _fork_into_pid_namespace(libc)


def _fork_into_pid_namespace(libc):
    child = os.fork()
    if child == 0:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None)
        return
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda s, _f: os.kill(child, s if s == signal.SIGINT else signal.SIGKILL))
    _pid, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def drop_capabilities():
    """Empty the bounding (where permitted), ambient, effective, permitted and inheritable capability sets."""
    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError:
            break  # past the last capability (EINVAL) or no CAP_SETPCAP (EPERM)
    try:
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set
    header = ctypes.create_string_buffer(struct.pack("=Ii", 0x20080522, 0), 8)  # _LINUX_CAPABILITY_VERSION_3
    data = ctypes.create_string_buffer(24)  # two zeroed {effective, permitted, inheritable}
    _syscall(_CAPSET_SYSCALL[platform.machine()], header, data)
