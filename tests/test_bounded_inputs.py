"""Bounded inputs: a huge cell, column name or description cannot flood the prompt, and a huge or deeply nested
columns.py is a clear TaskError (never a traceback), through the API and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.errors import TaskError
from tabcoder.profile import MAX_CELL_CHARS, clip, clip_repr, describe_submission, profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.task import MAX_COLUMNS_PY_BYTES, MAX_DESCRIPTION_CHARS, load_task, parse_columns_py

from support import tabcoder

BIG = 50_000_000
#: What the prompts of a small task stay under, whatever its cells or description hold.
PROMPT_BOUND = 25_000


def prompt_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(m["content"] for m in messages)


def write_big_cell_task(folder: Path, long_name: str) -> Path:
    """A Kaggle folder whose train.csv has one 50 MB text cell and a feature with a very long name."""
    folder.mkdir()
    with open(folder / "train.csv", "w", encoding="utf-8") as handle:
        handle.write(f"id,text,{long_name},y\n")
        handle.write(f"0,{'a' * BIG},1.5,0\n")
        for i in range(1, 8):
            handle.write(f"{i},short{i % 3},{i}.5,{i % 2}\n")
    return folder


# --------------------------------------------------------------------------- cells and names


def test_clip_keeps_short_text_and_marks_how_much_was_cut():
    assert clip("abc", 5) == "abc"
    assert clip("x" * BIG, 120) == "x" * 120 + "… (+49,999,880 chars)"
    assert clip_repr("x" * BIG, 3) == "'xxx…' (+49,999,997 chars)"
    assert clip_repr("ab") == "'ab'" and clip_repr(3) == "3"


def test_a_50mb_cell_and_a_long_column_name_are_cut_in_the_profile_and_prompt(tmp_path):
    long_name = "feature_" + "n" * 10_000
    task = load_task(write_big_cell_task(tmp_path / "big", long_name), target="y")
    assert len(task.train.loc[0, "text"]) == BIG  # the data itself is untouched
    profile = profile_task(task, task.train, None, sample_rows=len(task.train))
    marker = f"… (+{BIG - MAX_CELL_CHARS:,} chars)"
    assert marker in profile.sample_rows and "a" * (MAX_CELL_CHARS + 1) not in profile.sample_rows
    assert "(+49,999,976 chars)" in profile.table()  # the top levels of `text`, cut to MAX_VALUE_CHARS
    assert long_name not in profile.table() and long_name not in profile.sample_rows
    assert "… (+" in profile.table().splitlines()[1]  # the long name, cut
    assert len(profile.table()) + len(profile.sample_rows) < 5_000
    text = prompt_text(PromptBuilder(task, profile, timeout=60).draft())
    assert marker in text and len(text) < PROMPT_BOUND


def test_default_profile_of_a_50mb_cell_stays_small(tmp_path):
    task = load_task(write_big_cell_task(tmp_path / "big", "x"), target="y")
    profile = profile_task(task, task.train, None)  # 3 sample rows, whichever they are
    for messages in (PromptBuilder(task, profile, timeout=60).draft(),
                     PromptBuilder(task, profile, timeout=60, style="single").draft()):
        assert len(prompt_text(messages)) < PROMPT_BOUND


def test_sample_rows_keep_numbers_and_missing_values_as_they_were(tmp_path):
    task = load_task(write_big_cell_task(tmp_path / "big", "x"), target="y")
    train = task.train.iloc[1:].copy()
    train.loc[2, "x"] = np.nan
    profile = profile_task(task, train, None, sample_rows=len(train))
    assert profile.sample_rows == train.sample(n=len(train), random_state=0).to_csv(index=False).strip()


def test_long_class_labels_are_cut_in_the_submission_contract(tmp_path):
    label = "L" * 100_000
    frame = pd.DataFrame({"id": range(12), "a": range(12), "y": [label, "short"] * 6})
    frame.to_csv(tmp_path / "t.csv", index=False)
    task = load_task(tmp_path / "t.csv", target="y", metric="accuracy")
    contract = describe_submission(task)
    assert len(contract) < 1_000 and f"'{'L' * MAX_CELL_CHARS}…' (+{100_000 - MAX_CELL_CHARS:,} chars)" in contract
    profile = profile_task(task, task.train, None)
    assert len(profile.target_summary) < 200 and len(profile.sample_rows) < 1_000


# --------------------------------------------------------------------------- descriptions


def write_kaggle_task(folder: Path, description: str) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": range(40), "a": rng.normal(size=40), "y": np.arange(40) % 2}).to_csv(
        folder / "train.csv", index=False)
    (folder / "description.md").write_text(description, encoding="utf-8")
    return folder


def test_a_long_description_is_cut_in_the_prompt_with_a_note(tmp_path):
    description = "Predict y from a. " + "More words about the data. " * 4_000
    task = load_task(write_kaggle_task(tmp_path / "long", description), target="y")
    length = len(description.strip())
    assert task.description == description  # the task (and so the workspace's description.md) keeps it all
    notes = [n for n in task.notes if "description" in n]
    assert any("description.md" in n and f"{length:,}" in n and f"{MAX_DESCRIPTION_CHARS:,}" in n for n in notes)
    text = prompt_text(PromptBuilder(task, profile_task(task, task.train, None), timeout=60).draft())
    assert "Predict y from a." in text
    assert f"[The description is cut here: only its first {MAX_DESCRIPTION_CHARS:,} of {length:,} characters" in text
    assert len(text) < MAX_DESCRIPTION_CHARS + PROMPT_BOUND
    without = prompt_text(PromptBuilder(task, profile_task(task, task.train, None), timeout=60,
                                        use_description=False).draft())
    assert "description is cut" not in without and "More words" not in without


def test_a_short_description_is_shown_whole_without_a_note(tmp_path):
    task = load_task(write_kaggle_task(tmp_path / "short", "Predict y from a.\n"), target="y")
    assert not any("characters" in n for n in task.notes)
    text = prompt_text(PromptBuilder(task, profile_task(task, task.train, None), timeout=60).draft())
    assert "Predict y from a." in text and "cut here" not in text


def test_a_long_columns_py_task_description_is_cut_with_a_note(tmp_path):
    folder = write_mlhw(tmp_path / "shop", f'predict_goal = "y"\ntask_description = {"Predict y. " * 2_000!r}\n')
    task = load_task(folder)
    assert any("columns.py" in n and f"{MAX_DESCRIPTION_CHARS:,}" in n for n in task.notes)
    text = prompt_text(PromptBuilder(task, profile_task(task, task.train, None), timeout=60).draft())
    assert "[The description is cut here" in text and len(text) < MAX_DESCRIPTION_CHARS + PROMPT_BOUND


# --------------------------------------------------------------------------- columns.py


def write_mlhw(folder: Path, columns_py: str) -> Path:
    folder.mkdir()
    pd.DataFrame({"a": range(20), "y": np.arange(20) % 2}).to_csv(folder / "train.csv", index=False)
    (folder / "columns.py").write_text(columns_py, encoding="utf-8")
    return folder


BAD_COLUMNS_PY = {
    # Python's parser refuses these (SyntaxError, MemoryError or RecursionError, by version and input)
    "deep parentheses": ("x = " + "(" * 100_000 + "1" + ")" * 100_000, "cannot parse"),
    "deep lists": ("x = " + "[" * 100_000 + "1" + "]" * 100_000, "cannot parse"),
    "deep unary minus": ("x = " + "-" * 100_000 + "1", "cannot parse"),
    "a very long sum": ("x = " + "+".join(["1"] * 100_000), "cannot parse"),
    # parsed, but deeper than MAX_COLUMNS_PY_DEPTH
    "nested lists": ('predict_goal = "y"\nx = ' + "[" * 120 + "1" + "]" * 120, "nested more than"),
    "2 MB": ('predict_goal = "y"\ntask_description = "' + "x" * 2_000_000 + '"\n', f"{MAX_COLUMNS_PY_BYTES:,}"),
}


@pytest.mark.parametrize("name", list(BAD_COLUMNS_PY))
def test_a_huge_or_deep_columns_py_is_a_clear_task_error(tmp_path, name):
    source, expected = BAD_COLUMNS_PY[name]
    folder = write_mlhw(tmp_path / "task", source)
    with pytest.raises(TaskError) as raised:
        parse_columns_py(folder / "columns.py")
    message = str(raised.value)
    assert "columns.py" in message and expected in message and "\n" not in message
    assert any(hint in message for hint in ("shorten", "simplify", "predict_goal = \"y\""))
    with pytest.raises(TaskError):
        load_task(folder)


def test_columns_py_nested_values_within_the_bound_still_load(tmp_path):
    path = tmp_path / "columns.py"
    path.write_text('predict_goal = "y"\nx = ' + "[" * 20 + "1" + "]" * 20 + "\n")
    values, _ = parse_columns_py(path)
    assert values["predict_goal"] == "y" and isinstance(values["x"], list)


@pytest.mark.parametrize("name", ["deep parentheses", "deep unary minus", "2 MB"])
def test_bad_columns_py_on_the_command_line_exits_2_without_a_traceback(tmp_path, name):
    folder = write_mlhw(tmp_path / "task", BAD_COLUMNS_PY[name][0])
    done = tabcoder("run", folder, "--out", tmp_path / "runs")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and "columns.py" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr) < 1_000
