"""End to end with a real packaged LLM: `tabcoder run` on a shared task, llama.cpp on CPU, real sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from support import SHARED, journal_lines, tabcoder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def penguins():
    task = SHARED / "tasks" / "penguins"
    if not task.is_dir():
        pytest.skip(f"the shared tasks are not next to the checkout ({task})")
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
    return task, SHARED / "answers" / "penguins.csv"


def test_packaged_model_writes_graded_code_for_a_shared_task(tmp_path, penguins):
    task, answers = penguins
    done = tabcoder("run", task, "--model", "local:qwen2.5-coder-0.5b", "--iterations", "2", "--timeout", "120",
                    "--answers", answers, "--out", tmp_path, "--json")
    assert done.returncode in (0, 1), done.stderr
    summary = json.loads(done.stdout)
    run_dir = Path(summary["run_dir"])
    records = journal_lines(run_dir)
    assert records, "the journal records every attempt"
    baseline = [r for r in records if r["index"] == 0 and not r["pending"]][-1]
    assert baseline["kind"] == "baseline" and baseline["valid"] and not baseline["calls"]
    first = [r for r in records if r["index"] == 1][-1]
    # a real model was called: real token counts, a prompt that carries the data profile
    code_calls = [c for c in first["calls"] if c["purpose"] == "code"]
    assert code_calls[0]["prompt_tokens"] > 500 and code_calls[0]["completion_tokens"] > 5
    assert "bill_length_mm" in first["messages"][1]["content"]
    assert first["code"] or first["edit_error"], "the model answered with a script or an edit of the baseline"
    # who is credited with the chosen solution is said plainly
    attribution = summary["attribution"]
    assert attribution["written_by"] in ("model", "baseline", "ensemble") and attribution["text"].startswith("chosen: ")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["model"] == "local:qwen2.5-coder-0.5b"
    # the packaged model, given the contract and the example, gets a valid submission on this easy task
    assert summary["final_valid"], done.stderr
    submission = pd.read_csv(run_dir / "submission.csv")
    truth = pd.read_csv(answers)
    assert sorted(submission["id"]) == sorted(truth["id"])
    assert summary["test_score"] > 0.8
