"""Limits for the attempt as a whole, kept by watching it: the memory of all its processes together, and the
bytes written in its workspace. Polls while the child runs; stops nothing itself (it says which limit was
passed, and `local` stops the attempt)."""

from __future__ import annotations

import time
from pathlib import Path

from tabcoder.sandbox.identity import folder_bytes
from tabcoder.sandbox.process import Child, descendants, memory_mb

MEMORY_EVERY_S = 0.25
DISK_EVERY_S = 1.0


class Watch:
    def __init__(self, root: int, workdir: Path, *, memory_mb: int, disk_mb: int, start_bytes: int):
        self.root = root
        self.workdir = workdir
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
                return True
            if remaining <= 0:
                return False
            used = memory_mb([self.root, *descendants(self.root)])
            self.peak_memory_mb = max(self.peak_memory_mb or 0.0, used)
            if used > self.memory_limit:
                self.exceeded = "memory"
                return False
            if time.monotonic() >= next_disk:
                next_disk = time.monotonic() + DISK_EVERY_S
                if folder_bytes(self.workdir) - self.start_bytes > self.disk_limit:
                    self.exceeded = "disk"
                    return False
