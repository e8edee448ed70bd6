"""Model faults never lose work: `tabcoder run` against a fake OpenAI-compatible server that fails in every
way a real one does (429, 5xx, hangs, invalid JSON, odd but legal replies), through the real CLI and sandbox."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tabcoder.prompting import fence

from support import WINE, good_script, journal_lines, latest, tabcoder

FAST_RETRIES = {"TABCODER_LLM_RETRIES": "1"}


def variant(n: int) -> str:
    return fence(good_script().replace("import pandas as pd", f"import pandas as pd\nVARIANT = {n}", 1))


def run_cli(*args: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return tabcoder(*args, env={**FAST_RETRIES, **(env or {})}, timeout=timeout)


def run_against(fake, tmp_path: Path, *extra: object, iterations: int = 3, env: dict | None = None):
    done = run_cli("run", WINE, "--model", "openai:fake", "--base-url", fake.base_url, "--no-baseline", "--iterations", iterations,
                   "--strategy", "reflexion", "--timeout", "60", "--confirm-folds", "0", "--out", tmp_path / "runs", "--json", *extra, env=env)
    summary = json.loads(done.stdout) if done.stdout.strip() else None
    return done, summary


def test_429_then_success_is_retried_and_the_run_succeeds(fake_openai, tmp_path):
    fake_openai.reply("status", (429, {"Retry-After": "0"}))
    fake_openai.reply("text", variant(1))
    done, summary = run_against(fake_openai, tmp_path, iterations=1)
    assert done.returncode == 0, done.stderr
    assert summary["final_valid"] and summary["cut_short"] is None
    assert len(fake_openai.requests) == 2


def test_5xx_after_a_valid_attempt_finalises_it_and_resume_continues(fake_openai, tmp_path):
    fake_openai.reply("text", variant(1))
    fake_openai.always("status", 500)
    done, summary = run_against(fake_openai, tmp_path, iterations=3)
    assert done.returncode == 3, done.stderr
    run_dir = Path(summary["run_dir"])
    # the valid attempt is not lost: refit, submission, report, and a run.json that says what happened
    assert summary["final_valid"] and summary["attempts"] == 1 and summary["best_attempt"] == 1
    assert (run_dir / "submission.csv").is_file() and (run_dir / "report.html").is_file()
    assert "HTTP 500" in summary["cut_short"] and summary["stop_reason"] == "the model failed"
    assert json.loads((run_dir / "run.json").read_text())["result"]["cut_short"] == summary["cut_short"]
    assert "The search was cut short" in (run_dir / "report.html").read_text()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the search was cut short") and f"tabcoder resume {run_dir}" in last
    assert "the best attempt so far was finalised" in last and "Traceback" not in done.stderr

    fake_openai.always("ok")
    fake_openai.script[:] = []
    for n in (2, 3):
        fake_openai.reply("text", "Nothing failed; try more trees.")  # the reflection on the previous attempt
        fake_openai.reply("text", variant(n))
    resumed = run_cli("resume", run_dir, "--json", "--base-url", fake_openai.base_url)
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads(resumed.stdout)
    assert again["attempts"] == 3 and again["cut_short"] is None and again["final_valid"]
    records = latest(run_dir)
    assert sorted(records) == [1, 2, 3]
    assert {r["code"] for r in journal_lines(run_dir) if r["index"] == 1} == {records[1]["code"]}
    assert records[1]["code"] in variant(1)  # attempt 1 kept as it was, not written again


def test_5xx_from_the_start_exits_3_with_no_valid_attempt(fake_openai, tmp_path):
    fake_openai.always("status", 503)
    done, summary = run_against(fake_openai, tmp_path)
    assert done.returncode == 3
    assert not summary["final_valid"] and summary["attempts"] == 0
    assert "HTTP 503" in done.stderr and "failed after 2 attempt(s)" in done.stderr
    assert "no valid attempt so far" in done.stderr and "Traceback" not in done.stderr
    assert len(fake_openai.requests) == 2  # TABCODER_LLM_RETRIES=1: one try and one retry


def test_a_hang_ends_at_llm_timeout_with_a_clear_error(fake_openai, tmp_path):
    fake_openai.reply("text", variant(1))
    fake_openai.always("hang", 60)
    started = time.monotonic()
    done, summary = run_against(fake_openai, tmp_path, "--llm-timeout", "2")
    assert time.monotonic() - started < 45
    assert done.returncode == 3
    assert "within 2 s (--llm-timeout)" in summary["cut_short"]
    assert summary["final_valid"] and summary["attempts"] == 1
    assert len(fake_openai.requests) == 2  # a timeout is not retried


def test_a_long_wait_is_shown_while_it_lasts(fake_openai, tmp_path):
    fake_openai.reply("hang", 11.5)  # dropped after 11.5 s: no answer, the retry answers
    fake_openai.reply("text", variant(1))
    done, summary = run_against(fake_openai, tmp_path, "--llm-timeout", "30", iterations=1)
    assert "code: waiting for the model, 10 s (limit 30 s)" in done.stderr
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("bad, message", [
    (("raw", b"{\"choices\": [ truncated"), "not valid JSON"),
    (("ok", {"object": "chat.completion", "choices": []}), "no choices"),
])
def test_unreadable_replies_cut_the_search_short_with_the_reason(fake_openai, tmp_path, bad, message):
    fake_openai.reply("text", variant(1))
    fake_openai.always(*bad)
    done, summary = run_against(fake_openai, tmp_path)
    assert done.returncode == 3 and message in summary["cut_short"] and summary["final_valid"]
    assert "Traceback" not in done.stderr


def test_legal_odd_replies_and_replies_without_code_are_read(fake_openai, tmp_path):
    parts = fake_openai.default_reply({})
    parts["choices"][0]["message"]["content"] = [{"type": "text", "text": variant(1)}]
    parts["usage"] = {"prompt_tokens": "900", "completion_tokens": "120"}
    fake_openai.reply("ok", parts)
    fake_openai.reply("text", "The script worked.")  # reflection
    fake_openai.reply("text", "I would use more trees next time.")  # an answer with no code block
    fake_openai.reply("text", "There was no code.")  # reflection on that
    fake_openai.reply("text", variant(3))
    done, summary = run_against(fake_openai, tmp_path, iterations=3)
    assert done.returncode == 0, done.stderr
    records = latest(Path(summary["run_dir"]))
    assert records[1]["valid"] and records[1]["calls"][0]["prompt_tokens"] == 900
    assert records[2]["code"] is None and "no Python code block" in records[2]["feedback"]
    assert records[3]["valid"]
    assert "no code in the answer" in done.stderr
