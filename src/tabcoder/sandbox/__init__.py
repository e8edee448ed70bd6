"""The sandbox: run one generated script behind an operating-system wall and report what happened.

`local` runs (`LocalSandbox`), `wall` chooses and builds the wall (bubblewrap, Landlock, process limits),
`identity` says who the script runs as and cleans the workspace after it, `watch` keeps the limits of the
attempt as a whole, `process` finds and stops its processes, `output` reads what it printed. The bootstrap
that runs inside is `tabcoder/_sandbox_boot.py`, the Landlock and seccomp calls `tabcoder/_sandbox_confine.py`
(both standalone: they import nothing of tabcoder).
"""

from tabcoder.sandbox.local import (
    BOOT_SCRIPT, CPU_MARGIN_S, ExecutionResult, LocalSandbox, Sandbox, _netns_cache,
)
from tabcoder.sandbox.output import TRACEBACK_LIMIT, clean_traceback, exception_text, trim_text
from tabcoder.sandbox.wall import ISOLATIONS, IsolationUnavailable

__all__ = [
    "BOOT_SCRIPT", "CPU_MARGIN_S", "ISOLATIONS", "TRACEBACK_LIMIT", "ExecutionResult", "IsolationUnavailable",
    "LocalSandbox", "Sandbox", "_netns_cache", "clean_traceback", "exception_text", "trim_text",
]
