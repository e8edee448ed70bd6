"""One function per reply: with a backend that continues a reply, a draft, an improvement or a repair that asks
for one function gets the start of that function (the fence, the import the harness named, the `def` line)
as the reply's start, and the journal keeps what the harness wrote; a script that uses a well-known name
without importing it gets the import, with a note. The real sandbox, the wine task, a scripted model."""

from __future__ import annotations

import pytest

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.imports import add_missing_imports, missing_imports, with_imports
from tabcoder.journal import Attempt, Journal
from tabcoder.prompting import failing_function, function_header, reply_start
from tabcoder.strategies.common import changed_functions, repair_target

from support import DIAGNOSIS, WINE, journal_records


class ContinuingBackend(ScriptedBackend):
    """A scripted model that continues a reply's start, as llama.cpp does."""

    continues_prefill = True


def run_wine(tmp_path, backend, **options):
    options.setdefault("timeout", 60)
    options.setdefault("confirm_folds", 0)
    return run(WINE, config=RunConfig(out_dir=tmp_path / "runs", strategy="tree", **options), backend=backend)


def test_a_draft_continues_the_make_model_start_the_harness_wrote(tmp_path):
    backend = ContinuingBackend(["    return RandomForestClassifier(n_estimators=40, random_state=0)\n"])
    result = run_wine(tmp_path, backend, iterations=1)
    messages = backend.history[0]
    start = messages[-1]
    assert start["role"] == "assistant"
    assert start["content"] == ("```python\nfrom sklearn.ensemble import RandomForestClassifier\n\n\n"
                                "def make_model(categorical):\n")
    assert "\n```" in backend.history[0].options["stop"]
    assert backend.history[0].options["max_tokens"] == 512, "a reply that writes one function is capped"
    draft = {r["index"]: r for r in journal_records(result.run_dir)}[1]
    assert draft["valid"] and draft["edit_format"] == "functions"
    assert draft["response"].startswith(start["content"]) and draft["response"].endswith("random_state=0)\n")
    assert draft["calls"][0]["prefill"] == start["content"]
    assert draft["messages"][-1]["role"] == "user", "the journal's messages are the prompt; the start is on the call"
    assert "RandomForestClassifier(n_estimators=40" in draft["code"] and "def make_features" in draft["code"]


def test_a_backend_that_cannot_continue_gets_the_prompt_alone(tmp_path):
    forest = ("```python\ndef make_model(categorical):\n"
              "    return ExtraTreesClassifier(n_estimators=40, random_state=0)\n```")
    backend = ScriptedBackend([forest])
    result = run_wine(tmp_path, backend, iterations=1)
    assert backend.history[0][-1]["role"] == "user"
    draft = {r["index"]: r for r in journal_records(result.run_dir)}[1]
    # the reply used ExtraTreesClassifier without importing it: the harness added the line, and says so
    assert draft["valid"], draft["feedback"]
    assert "from sklearn.ensemble import ExtraTreesClassifier\n" in draft["code"]
    assert draft["note"] == ("the harness added the missing import(s) "
                             "`from sklearn.ensemble import ExtraTreesClassifier`")
    assert draft["calls"][0]["prefill"] is None


def test_a_repair_of_a_draft_that_failed_in_make_model_asks_for_make_model(tmp_path):
    backend = ContinuingBackend([
        "    return RandomForestClassifier(n_estimators=40, categorical_features=categorical)\n",
        DIAGNOSIS,
        "    return RandomForestClassifier(n_estimators=40, random_state=0)\n",
    ])
    result = run_wine(tmp_path, backend, iterations=2, drafts=2, breadth=1)
    records = {r["index"]: r for r in journal_records(result.run_dir)}
    assert not records[1]["valid"] and "categorical_features" in records[1]["traceback"]
    assert records[2]["kind"] == "repair" and records[2]["parent"] == 1 and records[2]["valid"]
    repair_call = backend.history[2]
    assert repair_call[-1] == {"role": "assistant", "content": "```python\ndef make_model(categorical):\n"}
    assert "only the complete new version of the function `make_model`" in repair_call[-2]["content"]


# --------------------------------------------------------------------------- the pieces

SCRIPT = '''"""A script."""
import pandas as pd


def make_model(categorical,
               seed=0):
    return RandomForestClassifier(random_state=seed)


def fit(train):
    """Fit."""
    X = np.asarray(train)
    return make_model([]).fit(X, train["y"])
'''


def test_function_header_and_reply_start_keep_the_def_lines_as_written():
    assert function_header(SCRIPT, "make_model") == "def make_model(categorical,\n               seed=0):"
    assert function_header(SCRIPT, "fit") == "def fit(train):"
    assert function_header(SCRIPT, "predict") is None and function_header("def (", "fit") is None
    assert reply_start(SCRIPT, "fit") == "```python\ndef fit(train):\n"
    assert reply_start(SCRIPT, "fit", ["import numpy as np"]) == "```python\nimport numpy as np\n\n\ndef fit(train):\n"
    assert reply_start(SCRIPT, "predict") is None


def test_failing_function_is_the_last_frame_in_the_script_that_is_one_of_its_functions():
    tb = ('Traceback (most recent call last):\n  File "./solution.py", line 20, in <module>\n'
          '  File "./solution.py", line 13, in fit\n  File "./solution.py", line 7, in make_model\n'
          '  File "/usr/lib/python3/site-packages/sklearn/base.py", line 9, in __init__\nTypeError: bad')
    assert failing_function(SCRIPT, tb) == "make_model"
    assert failing_function(SCRIPT, tb.split("  File \"./solution.py\", line 13")[0]) is None  # module level
    assert failing_function(SCRIPT, None) is None


def test_missing_imports_are_added_for_well_known_names_only():
    assert missing_imports(SCRIPT) == ["from sklearn.ensemble import RandomForestClassifier", "import numpy as np"]
    code, added = add_missing_imports(SCRIPT)
    assert added == missing_imports(SCRIPT)
    assert code.splitlines()[1:5] == ["import pandas as pd", "from sklearn.ensemble import RandomForestClassifier",
                                      "import numpy as np", ""]
    assert missing_imports(code) == []
    # a name the script binds is not touched; an unknown name is left to fail; a broken script is left alone
    assert missing_imports("np = 3\nprint(np)") == []
    assert missing_imports("print(some_helper_of_mine(1))") == []
    assert missing_imports("def f(:\n  np") == []
    assert with_imports('"""Doc."""\nx = np.ones(2)\n', ["import numpy as np"]) == \
        '"""Doc."""\nimport numpy as np\nx = np.ones(2)\n'


def _attempt(index, parent, code, traceback=None, kind="draft"):
    return Attempt(index=index, parent=parent, kind=kind, messages=[], response="", code=code,
                   traceback=traceback, metric="accuracy", greater_is_better=True)


@pytest.mark.parametrize(("failing_in", "target"), [("make_model", "make_model"), ("fit", "make_model")])
def test_a_repair_targets_the_function_the_failed_attempt_changed(tmp_path, failing_in, target):
    base = SCRIPT
    changed = SCRIPT.replace("random_state=seed", "n_estimators=5, random_state=seed")
    assert changed_functions(base, changed) == ["make_model"]
    tb = f'  File "./solution.py", line 20, in <module>\n  File "./solution.py", line 9, in {failing_in}\n'
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(_attempt(0, None, base, kind="baseline"))
    journal.append(_attempt(1, 0, changed, traceback=tb))
    assert repair_target(journal.get(1), journal) == target
    # a whole new script (no parent): the function it failed in
    journal.append(_attempt(2, None, SCRIPT, traceback=tb))
    assert repair_target(journal.get(2), journal) == failing_in


def test_the_linear_draft_returns_its_whole_pipeline_and_runs(tmp_path):
    def continue_draft(messages):
        start = messages[-1]["content"]
        if "RandomForestClassifier" in start:
            return "    return RandomForestClassifier(n_estimators=40, random_state=0)\n"
        assert "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n" in start
        ask = messages[-2]["content"]
        call = ask.split("make make_model return ", 1)[1].split(" (it needs", 1)[0]
        assert call.startswith("make_pipeline(make_column_transformer((OneHotEncoder(")
        return f"    return {call}\n"

    backend = ContinuingBackend([continue_draft, continue_draft])
    result = run_wine(tmp_path, backend, iterations=2, drafts=3)
    records = {r["index"]: r for r in journal_records(result.run_dir)}
    assert records[2]["idea"].startswith("a linear model") and records[2]["valid"], records[2]["feedback"]
    assert "LogisticRegression(max_iter=2000))" in records[2]["code"] and records[2]["note"] is None


def test_the_log_target_idea_is_skipped_for_a_script_that_decides_it_already():
    from tabcoder.ideas import METRIC_IDEAS

    idea = METRIC_IDEAS["rmse"]
    assert not idea.applies_to("TARGET = 'y'\nLOG_TARGET = False  # fit log1p\n")
    assert idea.applies_to("import pandas as pd\n")
