"""What a finished script left behind, read by the harness: trimmed output, the cleaned traceback, why it
stopped. Reads capture files only; never runs or signals anything."""

from __future__ import annotations

import os
import re
import resource
import signal
import sys
from pathlib import Path

from tabcoder.errors import SandboxError

BOOT_NAME = "_sandbox_boot.py"
TRACEBACK_LIMIT = 3000       # characters of cleaned traceback
TRACEBACK_SCAN_BYTES = 256 * 1024  # the traceback is looked for in this much of stderr's end
_MIB = 1024 * 1024

TRACEBACK_HEADER = "Traceback (most recent call last):"
_FRAME_RE = re.compile(r'^  File "(?P<file>[^"]*)", line \d+')
_SITE_PACKAGES_RE = re.compile(r'File "[^"]*/(?:site|dist)-packages/')
_TRAILER_RE = re.compile(r"^(Exception ignored in|Error in atexit\._run_exitfuncs|\S+:\d+: \w+Warning: )")
_MEMORY_RE = re.compile(r"MemoryError|std::bad_alloc|Cannot allocate memory|\[Errno 12\]")
_FILE_SIZE_RE = re.compile(r"File too large|\[Errno 27\]")


# --- outcome ---------------------------------------------------------------------------------------

def killed_by(returncode: int, *, timed_out: bool, traceback: str | None, stderr_tail: str,
               rusage: resource.struct_rusage, cpu_seconds: int) -> str | None:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return None
    exception = exception_text(traceback) if traceback else ""
    if returncode > 0:
        if "MemoryError" in exception or (not exception and _MEMORY_RE.search(stderr_tail[-3000:])):
            return "memory"
        if _FILE_SIZE_RE.search(exception):
            return "file-size"
        return None
    sig = -returncode
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and _cpu_used(rusage) >= cpu_seconds):
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file-size"
    if _MEMORY_RE.search(stderr_tail[-3000:]):  # e.g. abort() after std::bad_alloc
        return "memory"
    return f"signal {sig}"


def _cpu_used(rusage: resource.struct_rusage) -> float:
    return rusage.ru_utime + rusage.ru_stime


def peak_memory_mb(rusage: resource.struct_rusage) -> float | None:
    if rusage.ru_maxrss <= 0:
        return None
    scale = _MIB if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return round(rusage.ru_maxrss / scale, 1)


# --- output --------------------------------------------------------------------------------------

def trim_text(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else head + marker line + tail within `limit`."""
    return _trim(text, "", 0, limit)


def _trim(head: str, tail: str, hidden: int, limit: int) -> str:
    """Trim the text `head + <hidden characters> + tail`. The tail gets two thirds of the room:
    the end of a log says more about how a run ended."""
    if hidden == 0 and len(head) + len(tail) <= limit:
        return head + tail
    total = len(head) + hidden + len(tail)
    marker_room = len(f"\n... [{total} characters cut] ...\n")
    budget = max(limit - marker_room, 0)
    keep_head = budget // 3
    keep_tail = budget - keep_head
    if hidden == 0:
        head, tail = head + tail, head + tail
    start = head[:keep_head]
    end = tail[len(tail) - keep_tail:] if keep_tail else ""
    cut = total - len(start) - len(end)
    return f"{start}\n... [{cut} characters cut] ...\n{end}"


def read_trimmed(path: Path, limit: int) -> str:
    """Decode a capture file (errors replaced) and trim it, reading only its ends when it is large."""
    window = 4 * limit + 4096  # bytes: enough for `limit` characters of any UTF-8 text
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size <= 2 * window:
                return trim_text(_decode(handle.read()), limit)
            head = handle.read(window)
            handle.seek(size - window)
            tail = handle.read(window)
    except OSError as exc:
        raise SandboxError(f"Could not read the captured output {path}: {exc}") from exc
    head_text, tail_text = _decode(head), _decode(tail)
    return _trim(head_text, tail_text, size - 2 * window, limit)


def read_tail(path: Path, nbytes: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(path.stat().st_size - nbytes, 0))
            return _decode(handle.read())
    except OSError as exc:
        raise SandboxError(f"Could not read the captured output {path}: {exc}") from exc


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --- tracebacks ----------------------------------------------------------------------------------

def clean_traceback(stderr: str, workdir: Path, limit: int = TRACEBACK_LIMIT) -> str | None:
    """The last traceback in `stderr`: harness frames (bootstrap, runpy) dropped, the workspace
    shown as `.`, site-packages paths shortened, at most about `limit` characters (older frames go
    first; the exception line always stays). None when `stderr` holds no traceback."""
    start = stderr.rfind(TRACEBACK_HEADER)
    if start < 0:
        return None
    lines = stderr[start:].splitlines()[1:]
    frames: list[list[str]] = []
    index = 0
    while index < len(lines) and lines[index].startswith(" "):
        if _FRAME_RE.match(lines[index]) or not frames:
            frames.append([lines[index]])
        else:
            frames[-1].append(lines[index])  # source line, carets, "[Previous line repeated ...]"
        index += 1
    frames = [frame for frame in frames if not _is_harness_frame(frame[0])]
    exception = _drop_trailer(lines[index:])
    frames_text = [_relative_paths("\n".join(frame), workdir) for frame in frames]
    exception_part = _relative_paths("\n".join(exception), workdir)
    return _fit_traceback(frames_text, exception_part, limit)


def exception_text(traceback: str) -> str:
    """The exception lines of a cleaned traceback (everything not indented, bar the header)."""
    return "\n".join(line for line in traceback.splitlines()[1:] if line and not line[0].isspace())


def _is_harness_frame(line: str) -> bool:
    match = _FRAME_RE.match(line)
    if not match:
        return False
    filename = match.group("file")
    return (filename == "<frozen runpy>" or os.path.basename(filename) in ("runpy.py", BOOT_NAME))


def _drop_trailer(lines: list[str]) -> list[str]:
    """Exception lines up to whatever the interpreter printed after the traceback (warnings at exit)."""
    for index, line in enumerate(lines):
        if index > 0 and _TRAILER_RE.match(line):
            lines = lines[:index]
            break
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _relative_paths(text: str, workdir: Path) -> str:
    roots = sorted({str(workdir), os.path.realpath(workdir)}, key=len, reverse=True)
    for root in roots:
        text = text.replace(root.rstrip("/") + "/", "./").replace(root, ".")
    return _SITE_PACKAGES_RE.sub('File "<site-packages>/', text)


def _fit_traceback(frames: list[str], exception: str, limit: int) -> str:
    exception = trim_text(exception, max(limit // 2, 200))
    text = "\n".join([TRACEBACK_HEADER, *frames, exception])
    if len(text) <= limit:
        return text
    marker = "  ... [{} earlier frames cut] ..."
    room = limit - len(TRACEBACK_HEADER) - len(exception) - 2 - len(marker.format(len(frames))) - 1
    kept: list[str] = []
    for frame in reversed(frames):  # the most recent frames matter most
        if len(frame) + 1 > room:
            break
        kept.insert(0, frame)
        room -= len(frame) + 1
    if not kept and frames:  # a single huge frame (a very long source line): keep part of it
        kept = [trim_text(frames[-1], max(room, 200))]
    cut = [marker.format(len(frames) - len(kept))] if len(kept) < len(frames) else []
    return "\n".join([TRACEBACK_HEADER, *cut, *kept, exception])
