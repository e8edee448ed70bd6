"""Applies feature code inside the sandbox: `python run_features.py` in a workspace that holds `job.json`.

Standalone on purpose (copied into each workspace, run by `LocalSandbox`, which already blocks the
network and writes outside the workspace): it imports no tabcoder module. In order, it

1. reads `job.json` and the feature frame (`input/features.parquet`: feature columns only, never the
   target or the id);
2. installs a second audit hook on top of the sandbox's: reading files outside the workspace and the
   Python installation, listing folders there, starting processes (`os.system`, `subprocess`, `exec`,
   `fork`, `posix_spawn`), signalling other processes and loading C libraries through ctypes all raise
   PermissionError. An audit hook cannot be removed once installed, so code that reaches a built-in
   indirectly (`getattr(__import__('os'), 'system')`, `df.apply(eval)`, ...) meets the same wall;
3. imports the feature module and calls its function on the whole frame, and (when `subset` is given)
   on those rows alone, and writes each result as Parquet under `output/`.

The harness reads nothing back from this process but the Parquet files and the exit status.
"""

import json
import os
import sys

import numpy  # noqa: F401  (loaded before the guard: the feature code gets it without file reads)
import pandas as pd
import pyarrow.parquet  # noqa: F401

_SPAWN_EVENTS = {
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym", "pty.spawn",
}
_LISTING_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "os.chdir"}
_MESSAGE = "not allowed in the feature sandbox ({event}{detail})"


class _FeatureGuard:
    """The audit hook: only reads inside `roots`, no new processes, no signals, no ctypes libraries."""

    def __init__(self, roots):
        self.roots = tuple(sorted({os.path.realpath(r) for r in roots if r}))

    def __call__(self, event, args):
        if event in _SPAWN_EVENTS:
            raise PermissionError(_MESSAGE.format(event=event, detail=""))
        if event == "open" or event in _LISTING_EVENTS:
            target = args[0] if args else None
            if target is None or isinstance(target, int):
                return  # an already opened file descriptor
            try:
                path = os.path.realpath(os.fsdecode(target))
            except TypeError:
                return
            if not self._inside(path):
                raise PermissionError(_MESSAGE.format(event=event, detail=": " + repr(os.fsdecode(target))))

    def _inside(self, path):
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return True
        return path in ("/dev/null", "/dev/urandom") or path.startswith("/proc/self/")


def _readable_roots(workspace):
    """The workspace and the Python installation (stdlib, site-packages), so lazy imports still work."""
    roots = [workspace, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    roots += [p for p in sys.path if p and os.path.isdir(p) and p not in ("/", os.sep)]
    return roots


def _check_output(frame, given):
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("the feature code must leave `df` a pandas DataFrame, but it is a %s" % type(frame).__name__)
    if len(frame) != len(given):
        raise ValueError("the feature code must keep every row of df (it had %d rows, now %d): "
                         "add or drop columns, never rows" % (len(given), len(frame)))
    if not frame.index.equals(given.index):
        raise ValueError("the feature code changed the order or the index of the rows of df (sorting, "
                         "reset_index, ...): keep the rows as they are and only add or drop columns")
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise TypeError("column names must be strings, got %r: name new columns like df['ratio'] = ..." % bad[:3])
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise ValueError("the feature code left duplicate column names %r" % duplicated[:3])
    if frame.shape[1] == 0:
        raise ValueError("the feature code dropped every column; keep at least one feature")


def _write(frame, path):
    try:
        frame.reset_index(drop=True).to_parquet(path, index=False)
    except Exception as exc:  # noqa: BLE001 - report which column could not be stored, in the model's terms
        raise TypeError("a column holds values that are not numbers, text or booleans (%s: %s); "
                        "make every new column numeric or text" % (type(exc).__name__, exc)) from None


def main():
    with open("job.json") as handle:
        job = json.load(handle)
    features = pd.read_parquet(job["input"])
    subset = job.get("subset")
    os.makedirs(job["output"], exist_ok=True)
    workspace = os.getcwd()
    sys.addaudithook(_FeatureGuard(_readable_roots(workspace)))
    sys.path.insert(0, workspace)
    module = __import__(job["module"])
    function = getattr(module, job["function"])
    full = function(features.copy())
    _check_output(full, features)
    _write(full, os.path.join(job["output"], "full.parquet"))
    if subset is not None:
        part = features.iloc[subset]
        partial = function(part.copy())
        _check_output(partial, part)
        _write(partial, os.path.join(job["output"], "subset.parquet"))


if __name__ == "__main__":
    main()
