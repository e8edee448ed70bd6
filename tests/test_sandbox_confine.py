"""Tests of the standalone confinement module `tabcoder._sandbox_confine` (seccomp filter, Landlock, namespaces).

Every restriction is irreversible, so each runtime check runs in a fresh child interpreter that imports the
module by file path (as the sandbox bootstrap does). The BPF interpreter below checks both arch tables
without the hardware."""

from __future__ import annotations

import errno
import importlib.util
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parents[1] / "src" / "tabcoder" / "_sandbox_confine.py"
_spec = importlib.util.spec_from_file_location("_sandbox_confine_under_test", MODULE_PATH)
confine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(confine)

NATIVE = platform.machine() in ("x86_64", "aarch64")
LANDLOCK_ABI = confine.landlock_abi()

PRELUDE = f"""
import ctypes, errno, importlib.util, os, socket, subprocess, sys, threading
_spec = importlib.util.spec_from_file_location("_sandbox_confine", {str(MODULE_PATH)!r})
c = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(c)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def expect_errno(code, func, *args):
    try:
        func(*args)
    except OSError as exc:
        assert exc.errno == code, (func, args, exc)
    else:
        raise AssertionError("no error from %r%r" % (func, args))

def raw_errno(number, *args):
    result = libc.syscall(ctypes.c_long(number), *args)
    return ctypes.get_errno() if result == -1 else result
"""


def run_child(code: str, *, seccomp: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run PRELUDE (+ the filter) + code in a fresh interpreter; a failing assertion there fails the test."""
    setup = "c.install_seccomp(c.seccomp_program())\n" if seccomp else ""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + setup + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


# --- a tiny classic-BPF interpreter for seccomp programs -----------------------------------------

ALLOW = 0x7FFF0000
ERRNO = 0x00050000
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "i386": 0x40000003, "arm": 0x40000028}


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096
    return [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]


def run_bpf(program: bytes, nr: int, arch: str, args: tuple[int, ...] = ()) -> int:
    """Run the filter on a crafted struct seccomp_data and return its verdict."""
    data = struct.pack("=iIQ6Q", nr, AUDIT_ARCH[arch], 0, *(list(args) + [0] * (6 - len(args))))
    insns, pc, acc = decode(program), 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code == 0x05:  # BPF_JMP | BPF_JA
            pc += 1 + k
        elif code in (0x15, 0x25, 0x35, 0x45):  # JEQ, JGT, JGE, JSET with K
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x} at {pc}")


# Numbers from the kernel's unistd tables, written out independently of the module: (x86_64, aarch64).
SYSCALLS = {
    "read": (0, 63), "write": (1, 64), "openat": (257, 56), "mmap": (9, 222), "execve": (59, 221),
    "getpid": (39, 172), "clone": (56, 220), "clone3": (435, 435), "landlock_create_ruleset": (444, 444),
    "socket": (41, 198), "socketpair": (53, 199), "connect": (42, 203),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kexec_load": (246, 104), "bpf": (321, 280), "perf_event_open": (298, 241), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "userfaultfd": (323, 282), "mount": (165, 40),
    "umount2": (166, 39), "pivot_root": (155, 41), "unshare": (272, 97), "setns": (308, 268),
    "fsopen": (430, 430), "open_tree": (428, 428), "move_mount": (429, 429),
}
EPERM_SYSCALLS = ("ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "bpf", "perf_event_open",
                  "keyctl", "add_key", "request_key", "userfaultfd", "mount", "umount2", "pivot_root", "unshare",
                  "setns", "fsopen", "open_tree", "move_mount")
FOREIGN_FAMILIES = (socket.AF_INET, socket.AF_INET6, 16, 17, 40, 38, 29, 4)  # NETLINK PACKET VSOCK ALG CAN IPX
CLONE_THREAD_FLAGS = 0x003D0F00
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x00020000


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_program_verdicts(arch: str) -> None:
    program = confine.seccomp_program(arch)
    assert isinstance(program, bytes) and len(program) % 8 == 0
    insns = decode(program)
    assert insns[-1][0] == 0x06, "the program must end in a return"
    for pc, (code, jt, jf, _k) in enumerate(insns):  # what the kernel's checker demands of jumps
        if code in (0x15, 0x25, 0x35, 0x45):
            assert pc + 1 + max(jt, jf) < len(insns)
    i = 0 if arch == "x86_64" else 1
    nr = {name: numbers[i] for name, numbers in SYSCALLS.items()}

    def verdict(name: str, *args: int, on: str = arch) -> int:
        return run_bpf(program, nr[name], on, args)

    for family in FOREIGN_FAMILIES:
        assert verdict("socket", family, socket.SOCK_STREAM) == ERRNO | errno.EAFNOSUPPORT, family
        assert verdict("socketpair", family, socket.SOCK_STREAM) == ERRNO | errno.EAFNOSUPPORT, family
    assert verdict("socket", socket.AF_UNIX, socket.SOCK_STREAM) == ALLOW
    assert verdict("socket", (0xFFFFFFFF << 32) | socket.AF_UNIX) == ALLOW  # the kernel reads an int
    assert verdict("socket", (1 << 32) | socket.AF_INET) == ERRNO | errno.EAFNOSUPPORT
    assert verdict("socketpair", socket.AF_UNIX, socket.SOCK_STREAM) == ALLOW
    for name in ("read", "write", "openat", "mmap", "execve", "getpid", "connect", "landlock_create_ruleset"):
        assert verdict(name, 3, 0) == ALLOW, name
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3"):
        assert verdict(name) == ERRNO | errno.ENOSYS, name
    for name in EPERM_SYSCALLS:
        assert verdict(name) == ERRNO | errno.EPERM, name
    assert verdict("clone", CLONE_THREAD_FLAGS) == ALLOW
    assert verdict("clone", 17) == ALLOW  # fork: SIGCHLD
    for flag in (CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS):
        assert verdict("clone", 17 | flag) == ERRNO | errno.EPERM
    # Foreign arches: compat syscalls (i386 int 0x80, arm32) and the other 64-bit table.
    other = "aarch64" if arch == "x86_64" else "x86_64"
    for foreign in ("i386", "arm", other):
        assert verdict("write", on=foreign) == ERRNO | errno.ENOSYS
        assert verdict("socket", socket.AF_UNIX, on=foreign) == ERRNO | errno.ENOSYS
    if arch == "x86_64":  # x32 syscalls carry __X32_SYSCALL_BIT
        assert run_bpf(program, 0x40000000 + 41, arch, (socket.AF_UNIX,)) == ERRNO | errno.ENOSYS
        assert run_bpf(program, 0x40000000 + 1, arch) == ERRNO | errno.ENOSYS


def test_seccomp_program_arch_selection() -> None:
    assert confine.seccomp_program("riscv64") is None
    assert confine.seccomp_program("x86_64") != confine.seccomp_program("aarch64")
    assert confine.seccomp_program() == confine.seccomp_program(platform.machine() if NATIVE else "none")


# --- seccomp in a live process --------------------------------------------------------------------

needs_seccomp = pytest.mark.skipif(not NATIVE or "Seccomp:" not in Path("/proc/self/status").read_text(),
                                   reason="seccomp filters need Linux on x86_64 or aarch64")


@needs_seccomp
def test_seccomp_blocks_non_unix_sockets() -> None:
    run_child(seccomp=True, code="""
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET, socket.AF_VSOCK):
        expect_errno(errno.EAFNOSUPPORT, socket.socket, family, socket.SOCK_STREAM)
    expect_errno(errno.EAFNOSUPPORT, socket.socket, socket.AF_NETLINK, socket.SOCK_RAW)
    expect_errno(errno.EAFNOSUPPORT, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    expect_errno(errno.EAFNOSUPPORT, socket.socketpair, socket.AF_INET)
    left, right = socket.socketpair()
    left.sendall(b"ping")
    assert right.recv(4) == b"ping"
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
    status = open("/proc/self/status").read()
    assert "Seccomp:\\t2" in status, status
    """)


@needs_seccomp
def test_seccomp_blocks_dangerous_syscalls() -> None:
    numbers = {name: pair[0 if platform.machine() == "x86_64" else 1] for name, pair in SYSCALLS.items()}
    run_child(seccomp=True, code=f"""
    nr = {numbers!r}
    assert raw_errno(nr["io_uring_setup"], ctypes.c_uint(8), None) == errno.ENOSYS  # EFAULT without the filter
    assert raw_errno(nr["ptrace"], ctypes.c_long(0), 0, 0, 0) == errno.EPERM  # PTRACE_TRACEME
    assert raw_errno(nr["unshare"], ctypes.c_int({CLONE_NEWUSER})) == errno.EPERM
    assert raw_errno(nr["clone3"], None, ctypes.c_size_t(0)) == errno.ENOSYS
    result = raw_errno(nr["clone"], ctypes.c_ulong({CLONE_NEWUSER} | 17), None, None, None, None)
    if result == 0:  # the filter failed and we are a forked copy: leave quietly
        os._exit(0)
    assert result == errno.EPERM, result
    assert raw_errno(nr["mount"], b"none", b"/", None, ctypes.c_ulong(0x4000 | (1 << 18)), None) == errno.EPERM
    """)


@needs_seccomp
def test_seccomp_keeps_processes_threads_and_libraries_working() -> None:
    proc = run_child(seccomp=True, code="""
    child = subprocess.run([sys.executable, "-c",
                            "import socket\\ntry:\\n socket.socket()\\nexcept OSError as e: print(e.errno)"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(errno.EAFNOSUPPORT), child  # the filter is inherited
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    out = []
    threads = [threading.Thread(target=out.append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(out) == [0, 1, 2, 3]
    import numpy, pandas
    frame = pandas.DataFrame({"a": numpy.arange(5)})
    print(int(frame["a"].sum()))
    """)
    assert proc.stdout.strip() == "10"


@needs_seccomp
def test_seccomp_reaches_threads_started_before() -> None:
    run_child("""
    import time
    started, result = threading.Event(), []
    def late():
        started.set()
        time.sleep(0.3)  # the filter is installed meanwhile
        try:
            socket.socket()
            result.append("open")
        except OSError as exc:
            result.append(exc.errno)
    thread = threading.Thread(target=late)
    thread.start()
    started.wait()
    c.install_seccomp(c.seccomp_program())
    thread.join()
    assert result == [errno.EAFNOSUPPORT], result
    """)


@pytest.mark.skipif(not NATIVE or shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_bubblewrap_loads_the_program(tmp_path: Path) -> None:
    base = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all"]
    if subprocess.run(base + ["true"], capture_output=True).returncode != 0:
        pytest.skip("bubblewrap cannot create its namespaces here")
    program = tmp_path / "filter.bpf"
    program.write_bytes(confine.seccomp_program())
    code = "import socket\nsocket.socket(socket.AF_UNIX).close()\ntry:\n socket.socket()\nexcept OSError as e: print(e.errno)"
    with program.open("rb") as handle:
        proc = subprocess.run(base + ["--seccomp", str(handle.fileno()), sys.executable, "-c", code],
                              pass_fds=(handle.fileno(),), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(errno.EAFNOSUPPORT)


# --- Landlock ----------------------------------------------------------------------------------

needs_landlock = pytest.mark.skipif(LANDLOCK_ABI < 1, reason="the kernel has no Landlock")


def python_read_only() -> list[str]:
    return sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.executable), "/usr", "/lib", "/lib64",
                   "/etc/ld.so.cache", "/etc/localtime", "/nonexistent/skipped"})


@needs_landlock
def test_landlock_confines_the_filesystem(tmp_path: Path) -> None:
    inside, outside, read_only = tmp_path / "inside", tmp_path / "outside", tmp_path / "read-only"
    for folder in (inside, outside, read_only):
        folder.mkdir()
    (read_only / "given.txt").write_text("given")
    (outside / "secret.txt").write_text("secret")
    (inside / "data.txt").write_text("data")
    proc = run_child(f"""
    inside, outside, read_only = {str(inside)!r}, {str(outside)!r}, {str(read_only)!r}
    abi = c.landlock_restrict({python_read_only()!r} + [read_only], [inside, "/dev/null"])
    assert abi == {LANDLOCK_ABI}, abi
    for path in (outside + "/secret.txt", "/etc/shadow", "/etc/passwd"):
        expect_errno(errno.EACCES, open, path)
    expect_errno(errno.EACCES, os.listdir, outside)
    expect_errno(errno.EACCES, open, outside + "/new.txt", "w")
    expect_errno(errno.EACCES, os.mkdir, outside + "/folder")
    assert open(inside + "/data.txt").read() == "data"
    with open(inside + "/new.txt", "w") as handle:
        handle.write("written")
    os.mkdir(inside + "/sub")
    os.rename(inside + "/new.txt", inside + "/sub/moved.txt")
    os.truncate(inside + "/sub/moved.txt", 3)
    assert open(inside + "/sub/moved.txt").read() == "wri"
    assert open(read_only + "/given.txt").read() == "given"
    expect_errno(errno.EACCES, open, read_only + "/given.txt", "a")  # a read-only tree
    expect_errno(errno.EACCES, os.unlink, read_only + "/given.txt")
    assert subprocess.run([sys.executable, "-c", "open({str(outside)!r} + '/secret.txt')"],
                          capture_output=True).returncode == 1  # children inherit the domain
    import pandas
    print(pandas.DataFrame({{"a": [1, 2]}}).shape)
    """)
    assert proc.stdout.strip() == "(2, 1)"
    assert (inside / "sub" / "moved.txt").read_text() == "wri"
    assert not (outside / "new.txt").exists()


@pytest.mark.skipif(LANDLOCK_ABI < 4, reason="Landlock network rules need ABI 4")
def test_landlock_denies_tcp() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        run_child(f"""
        c.landlock_restrict({python_read_only()!r}, [])
        client = socket.socket()
        expect_errno(errno.EACCES, client.connect, ("127.0.0.1", {port}))
        expect_errno(errno.EACCES, socket.socket().bind, ("127.0.0.1", 0))
        left, right = socket.socketpair()  # unix sockets are not network rules
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
        """)


@pytest.mark.skipif(LANDLOCK_ABI < 6, reason="Landlock scopes need ABI 6")
def test_landlock_scopes_signals_and_abstract_sockets() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    name = "\0tabcoder-test-" + uuid.uuid4().hex
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(name)
        listener.listen()
        run_child(f"""
        c.landlock_restrict({python_read_only()!r}, [])
        expect_errno(errno.EPERM, os.kill, {sleeper.pid}, 0)
        expect_errno(errno.EPERM, os.kill, {sleeper.pid}, 15)
        expect_errno(errno.EPERM, socket.socket(socket.AF_UNIX).connect, {name!r})
        own = subprocess.Popen([{shutil.which("sleep")!r}, "60"])  # inside the domain: reachable
        os.kill(own.pid, 15)
        assert own.wait() == -15
        mine = socket.socket(socket.AF_UNIX)
        mine.bind({name + "-own"!r})
        mine.listen()
        socket.socket(socket.AF_UNIX).connect({name + "-own"!r})
        """)
        assert sleeper.poll() is None, "the restricted child must not have reached the sleeper"
    finally:
        listener.close()
        sleeper.kill()
        sleeper.wait()


@needs_landlock
def test_landlock_refuses_a_threaded_process() -> None:
    run_child("""
    event = threading.Event()
    thread = threading.Thread(target=event.wait)
    thread.start()
    try:
        c.landlock_restrict(["/usr"], [])
    except RuntimeError:
        pass
    else:
        raise AssertionError("a second thread would have stayed unrestricted")
    finally:
        event.set()
    """)


# --- the whole fallback wall ---------------------------------------------------------------------

def can_unshare_user() -> bool:
    probe = "import ctypes, sys\nsys.exit(ctypes.CDLL(None).unshare(0x10000000 | 0x40000000 | 0x00020000) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


@pytest.mark.skipif(not NATIVE or LANDLOCK_ABI < 1 or not can_unshare_user(), reason="needs user namespaces and Landlock")
def test_fallback_wall_end_to_end(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(f"""
        uid = os.geteuid()
        c.enter_namespaces(user=True, pid=True)
        assert os.getpid() == 1 and os.geteuid() == uid
        try:  # a fresh network namespace: the host's loopback listener is not there
            socket.create_connection(("127.0.0.1", {port}), timeout=5)
            raise AssertionError("reached the host's listener")
        except OSError as exc:
            assert exc.errno in (errno.ENETUNREACH, errno.ECONNREFUSED), exc
        c.drop_capabilities()
        assert "CapEff:\\t0000000000000000" in open("/proc/self/status").read()
        c.landlock_restrict({python_read_only()!r}, [{str(tmp_path)!r}])
        c.install_seccomp(c.seccomp_program())
        expect_errno(errno.EAFNOSUPPORT, socket.socket)
        unshare_nr = {SYSCALLS["unshare"][0 if platform.machine() == "x86_64" else 1]}
        assert raw_errno(unshare_nr, ctypes.c_int({CLONE_NEWUSER})) == errno.EPERM
        with open({str(tmp_path / "out.txt")!r}, "w") as handle:
            handle.write(str(subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                                            text=True, check=True).stdout.strip()))
        sys.exit(9)
        """)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr  # the pid-namespace parent passes the exit status through
    assert (tmp_path / "out.txt").read_text() == "42"
