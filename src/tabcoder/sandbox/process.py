"""The started child and the processes it left: wait without reaping, stop in steps, find every descendant.

Knows pids and signals only; what the child runs and what walls it is `local`'s and `wall`'s."""

from __future__ import annotations

import math
import os
import resource
import select
import signal
import stat
import subprocess
import time

from tabcoder.errors import SandboxError

INTERRUPT_GRACE_S = 2.0      # after SIGINT, before SIGTERM
TERMINATE_GRACE_S = 1.0      # after SIGTERM, before SIGKILL


class Child:
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

    def stop(self, *, spare_root: bool = False) -> None:
        """SIGINT, then SIGTERM, then SIGKILL, each after a grace period: to the process group, or (with
        `spare_root`, for a wall process such as bwrap that would die at once and take the script with it) to
        every descendant of the child, so the script still gets its KeyboardInterrupt."""
        for sig, grace in ((signal.SIGINT, INTERRUPT_GRACE_S), (signal.SIGTERM, TERMINATE_GRACE_S)):
            if spare_root:
                signal_all(descendants(self.pid), sig)
            else:
                self.signal_group(sig)
            if self.wait_exit(grace):
                return
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL the child, its process group and every descendant (those that left the group too)."""
        signal_all([self.pid, *descendants(self.pid)], signal.SIGKILL)
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




def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren, ...), read from /proc; [] where there is none.
    Orphans of a PID namespace are re-parented to its init, which is below `root`, so none is missed there."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state ppid ...
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def memory_mb(pids: list[int], *, shared_once: bool = False) -> float:
    """The memory these processes use together: resident set sizes (cheap to read), or with `shared_once`
    proportional set sizes (shared pages split between their users, so forked workers are not counted twice;
    the kernel walks every page table for it, several milliseconds for a large process). PSS <= RSS, so a
    caller reads RSS first and PSS only to confirm a limit is passed."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    total_kib = 0
    for pid in pids:
        if shared_once:
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                    for line in handle:
                        if line.startswith(b"Pss:"):
                            total_kib += int(line.split()[1])
                            break
                continue
            except (OSError, ValueError):
                pass
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total_kib += int(handle.read().split()[1]) * page_kib
        except (OSError, ValueError, IndexError):
            continue
    return total_kib / 1024


def held_files(pids: list[int], disk_device: int) -> tuple[int, int]:
    """Bytes the processes hold in files no folder shows: (memory, disk). Disk: deleted files still open on
    `disk_device` (the workspace's filesystem); memory: memfd files and deleted files anywhere else (the only
    other writable places are tmpfs mounts). Each file is counted once, however many processes hold it."""
    seen: set[tuple[int, int]] = set()
    memory = disk = 0
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{folder}/{name}")
                if not (target.startswith("/memfd:") or target.endswith(" (deleted)")):
                    continue
                info = os.stat(f"{folder}/{name}")
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen or not stat.S_ISREG(info.st_mode):
                continue
            seen.add(key)
            size = info.st_blocks * 512
            if info.st_dev == disk_device and not target.startswith("/memfd:"):
                disk += size
            else:
                memory += size
    return memory, disk


def tmpfs_bytes(pids: list[int], mounts: tuple[str, ...] = ("/tmp", "/dev/shm")) -> int:
    """Bytes in use on the private `/tmp` and `/dev/shm` of the views these processes live in (tmpfs: RAM),
    each mount counted once; the host's own mounts are not counted."""
    host = set()
    for mount in mounts:
        try:
            host.add(os.stat(mount).st_dev)
        except OSError:
            continue
    seen: set[int] = set()
    total = 0
    for pid in pids:
        for mount in mounts:
            path = f"/proc/{pid}/root{mount}"
            try:
                device = os.stat(path).st_dev
                if device in host or device in seen:
                    continue
                usage = os.statvfs(path)
            except OSError:
                continue
            seen.add(device)
            total += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
    return total
