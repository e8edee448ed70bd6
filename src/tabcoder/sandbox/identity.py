"""Who the script runs as, and the workspace's files before and after it.

Run as root, tabcoder never runs generated code as root: each attempt gets a uid of its own from a reserved
range (a lock file per uid, so parallel attempts never share one), the workspace is handed to that uid for
the run and back afterwards. Run as anyone else, the script keeps that user's uid (the namespaces are the
wall then). After every run, whatever the script left that is not a plain file or folder (symlinks, FIFOs,
sockets, device nodes) is removed before the harness reads a byte: a `submission.csv` that is a link to a
label file, or a FIFO that would block the reader, never reaches grading.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tabcoder.errors import SandboxError

UID_BASE = int(os.environ.get("TABCODER_SANDBOX_UID_BASE", "1900000000"))
UID_SLOTS = 4096


@dataclass
class SandboxUser:
    uid: int
    gid: int
    privileged: bool  # True when tabcoder is root and `uid` is a reserved unprivileged one
    _lock: int | None = None

    @classmethod
    @contextlib.contextmanager
    def acquire(cls) -> Iterator[SandboxUser]:
        """The user an attempt runs as, held until the block ends."""
        if os.geteuid() != 0:
            yield cls(os.getuid(), os.getgid(), privileged=False)
            return
        folder = Path(tempfile.gettempdir()) / "tabcoder-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        start = os.getpid() % UID_SLOTS  # spread concurrent runs over the range
        for step in range(UID_SLOTS):
            slot = (start + step) % UID_SLOTS
            fd = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            user = cls(UID_BASE + slot, UID_BASE + slot, privileged=True, _lock=fd)
            try:
                yield user
            finally:
                os.close(fd)
            return
        raise SandboxError(f"All {UID_SLOTS} sandbox uids are in use; wait for running attempts to finish.")

    def popen_kwargs(self) -> dict:
        """Arguments that make `subprocess.Popen` start the child as this user (no supplementary groups)."""
        if not self.privileged:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, folder: Path) -> None:
        """Hand `folder` and everything in it to this user (nothing to do unless tabcoder is root)."""
        if self.privileged:
            _chown_tree(folder, self.uid, self.gid, only_uid=None)

    def give_back(self, folder: Path, uid: int, gid: int) -> None:
        """Return what this user owns in `folder` to `uid`:`gid`."""
        if self.privileged:
            _chown_tree(folder, uid, gid, only_uid=self.uid)


def walk(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under `folder` (the folder itself first) with its lstat, links never followed. Iterative:
    a script may leave a tree deeper than Python's recursion limit."""
    try:
        yield str(folder), os.lstat(folder)
    except FileNotFoundError:
        return
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield entry.path, info
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)


def _chown_tree(folder: Path, uid: int, gid: int, *, only_uid: int | None) -> None:
    for path, info in walk(folder):
        if only_uid is None or info.st_uid == only_uid:
            try:
                os.lchown(path, uid, gid)
            except FileNotFoundError:
                continue


def remove_specials(folder: Path) -> list[str]:
    """Delete every entry under `folder` that is not a regular file or a folder, and clear set-uid and set-gid
    bits; the removed paths, relative."""
    removed: list[str] = []
    for path, info in walk(folder):
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            if mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
            continue
        if stat.S_ISREG(mode):
            if mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID), follow_symlinks=False)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(os.path.relpath(path, folder))
    return removed


def folder_bytes(folder: Path) -> int:
    """Disk space used by `folder`'s files (allocated blocks), links not followed."""
    return sum(info.st_blocks * 512 for _path, info in walk(folder) if not stat.S_ISDIR(info.st_mode))


@functools.cache
def set_non_dumpable() -> None:
    """Make this (the harness) process non-dumpable: no core file, and its /proc files (environ, mem) are
    root's, not readable by a process of the same uid. Once per process: the flag stays set."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
