"""Limits for the attempt as a whole, kept by watching it. Memory: the resident set sizes of all its
processes (past the limit, confirmed with proportional set sizes, which split shared pages), plus the memfd
and deleted-but-open tmpfs files they hold, plus what its private `/tmp` and `/dev/shm` hold (bubblewrap's
tmpfs mounts live in RAM). Disk: the bytes added to its workspace, deleted files still held open, and its
captured stdout/stderr. A shared-memory file that is also mapped is counted twice: the limit errs on the
side of the machine. Polls while the child runs, and checks the disk once more when it has exited (a burst
between two polls); stops nothing itself (it says which limit was passed, and
`local` stops the attempt)."""

from __future__ import annotations

import time
from pathlib import Path

from tabcoder.sandbox.identity import folder_bytes
from tabcoder.sandbox.process import Child, descendants, held_files, memory_mb, tmpfs_bytes

MEMORY_EVERY_S = 0.25
_MIB = 1024 * 1024
DISK_EVERY_S = 1.0


class Watch:
    def __init__(self, root: int, workdir: Path, *, memory_mb: int, disk_mb: int, start_bytes: int,
                 private_tmpfs: bool = False, captures: tuple[Path, ...] = ()):
        self.root = root
        self.workdir = workdir
        self.private_tmpfs = private_tmpfs
        self.disk_device = workdir.stat().st_dev
        self.captures = captures
        self.memory_limit = memory_mb
        self.disk_limit = disk_mb * 1024 * 1024
        self.start_bytes = start_bytes
        self.exceeded: str | None = None     # "memory" or "disk" once a limit was passed
        self.peak_memory_mb: float | None = None
        self.report = b""                    # the bootstrap's note, read once the attempt has ended

    def run_until(self, child: Child, timeout: float) -> bool:
        """Wait for the child to exit, at most `timeout` seconds; False on timeout or once a limit is passed."""
        deadline = time.monotonic() + timeout
        next_disk = time.monotonic() + DISK_EVERY_S
        while True:
            remaining = deadline - time.monotonic()
            if child.wait_exit(min(MEMORY_EVERY_S, max(remaining, 0.0))):
                # a script that fills the disk faster than the polls and exits is caught here
                if self._disk_written(0) > self.disk_limit:
                    self.exceeded = "disk"
                    return False
                return True
            if remaining <= 0:
                return False
            pids = [self.root, *descendants(self.root)]
            held_memory, held_disk = held_files(pids, self.disk_device)
            files = held_memory + (tmpfs_bytes(pids) if self.private_tmpfs else 0)
            used = memory_mb(pids) + files / _MIB
            if used > self.memory_limit:  # resident sizes count shared pages twice: confirm with PSS
                used = memory_mb(pids, shared_once=True) + files / _MIB
            self.peak_memory_mb = max(self.peak_memory_mb or 0.0, used)
            if used > self.memory_limit:
                self.exceeded = "memory"
                return False
            if time.monotonic() >= next_disk:
                next_disk = time.monotonic() + DISK_EVERY_S
                if self._disk_written(held_disk) > self.disk_limit:
                    self.exceeded = "disk"
                    return False

    def _disk_written(self, held_disk: int) -> int:
        """Bytes the attempt added to the disk: its workspace's growth, deleted files it holds open, its output."""
        return folder_bytes(self.workdir) - self.start_bytes + held_disk + self._captured()

    def _captured(self) -> int:
        total = 0
        for path in self.captures:
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total
