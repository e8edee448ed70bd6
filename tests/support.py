"""Shared pieces of the test modules (not a test module itself): the example task's paths, a correct script
and its variants, a scripted tree-search model, the `tabcoder` command line in a subprocess, replay files,
journal readers and headless Chromium. Fixtures live in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tabcoder import load_task
from tabcoder.backends import ScriptedBackend
from tabcoder.grading import make_split
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder, fence

REPO = Path(__file__).resolve().parents[1]
WINE = REPO / "examples" / "wine"
WINE_ANSWERS = REPO / "examples" / "answers" / "wine.csv"
#: The shared tasks and answers beside the checkout (they may be absent: tests that need them skip).
SHARED = REPO.parent / "shared"
SHARED_TASKS = SHARED / "tasks"


# --------------------------------------------------------------------------- scripts and scripted models


def good_script(task_dir: Path = WINE) -> str:
    """A correct solution for any task: the baseline script the prompt shows the model."""
    task = load_task(task_dir)
    split = make_split(task)
    return PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=60).example()


def slow_script(n: int, seconds: float) -> str:
    """The same predictions every time (so the search path is fixed), a distinct script, and slow."""
    return good_script().replace("import pandas as pd", f"import time\ntime.sleep({seconds})\nVARIANT = {n}\n"
                                 "import pandas as pd", 1)


DIAGNOSIS = "The target column name is misspelled; use 'cultivar'."


def variant(n: int, broken: bool = False, sleep: float = 0.0, same_score: bool = False) -> str:
    """A distinct correct script (n sets the boosting iterations, or with `same_score` only a constant), or one
    that fails with a KeyError."""
    code = good_script()
    if same_score:
        code = code.replace("import pandas as pd", f"import pandas as pd\nVARIANT = {n}", 1)
    else:
        code = code.replace("categorical_features=categorical, random_state=0)",
                            f"categorical_features=categorical, max_iter={10 + n}, random_state=0)")
    if sleep:
        code = code.replace("import pandas as pd", f"import time\ntime.sleep({sleep})\nimport pandas as pd", 1)
    if broken:
        code = code.replace("TARGET = 'cultivar'", "TARGET = 'cultivarr'", 1)
    return code


class Responder:
    """A scripted model: answers each kind of request (draft, repair, improvement, reflection) from the prompt.
    `broken` lists the numbers of the code answers (1-based) that fail; `sleep` makes every script slower."""

    def __init__(self, broken: tuple[int, ...] = (), sleep: float = 0.0, sleeps: dict[int, float] | None = None,
                 same_score: bool = False):
        self.broken, self.sleep, self.sleeps, self.same_score = set(broken), sleep, sleeps or {}, same_score
        self.code_answers = 0

    def __call__(self, messages: list[dict]) -> str:
        ask = messages[-1]["content"]
        if "Reflect in two to four short sentences" in ask:
            return DIAGNOSIS
        self.code_answers += 1
        n = self.code_answers
        code = variant(n, broken=n in self.broken, sleep=self.sleeps.get(n, self.sleep), same_score=self.same_score)
        return f"Plan {n}: a forest of {10 + n} trees.\n" + fence(code)

    def backend(self, calls: int = 200) -> ScriptedBackend:
        return ScriptedBackend([self] * calls)


# --------------------------------------------------------------------------- the command line and replay files


def tabcoder(*args: object, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """`tabcoder ARGS` in a real process (`python -m tabcoder.cli`), its output captured as text; `env` is
    added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "tabcoder.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def write_replay(path: Path, texts: Iterable[str]) -> Path:
    """A replay file at `path` (for `--model replay:PATH`) that answers with `texts`, in order."""
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


#: A reflection and an edit (functions format) that any baseline script takes: add_features copies its frame.
COPY_EDIT = ("Reflection: the baseline ran; copying the frame first keeps the input untouched.",
             "```python\ndef add_features(df):\n    \"\"\"New columns computed from the existing ones (none yet).\"\"\"\n"
             "    df = df.copy()\n    return df\n```")


def copy_edit_replay(tmp_path: Path) -> Path:
    """A replay file for one reflexion improvement step of any baseline (`COPY_EDIT`)."""
    return write_replay(tmp_path / "copy-edit.jsonl", COPY_EDIT)


def replay_file(tmp_path: Path, *texts: str) -> Path:
    return write_replay(tmp_path / "replay.jsonl", texts)


# --------------------------------------------------------------------------- run folders


def journal_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line.strip()]


def journal_records(run_dir: Path) -> list[dict]:
    records = {}
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["index"]] = record
    return [records[i] for i in sorted(records)]


def latest(run_dir: Path) -> dict[int, dict]:
    """The last complete record of each attempt (a journal appends updates, e.g. a reflection, as new lines)."""
    return {r["index"]: r for r in journal_lines(run_dir) if not r["pending"]}


# --------------------------------------------------------------------------- a headless browser


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
