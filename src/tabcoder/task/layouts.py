"""The three task layouts, read into `Sources`: the tables, the description and the explicit settings of a
task, before anything is inferred.

Scope: a Kaggle-style folder (train / test / sample submission tables, description.md, task.toml), an ML-hw
folder whose `columns.py` is parsed, never executed (`parse_columns_py`, bounded in size and nesting), and a
single table file; `description_for_prompt` cuts a long description for prompts. Bad input raises `TaskError`.
Nothing here decides the target, id, task type or metric (see `inference`).
"""

from __future__ import annotations

import ast
import logging
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tabcoder.errors import TaskError
from tabcoder.task.tables import TABLE_SUFFIXES, read_cells, read_table, split_suffix, table_stem
from tabcoder.task.wording import MAX_LISTED

log = logging.getLogger(__name__)

_DESCRIPTION_NAMES = ("description.md", "description.txt", "readme.md", "readme.txt")
_TOML_KEYS = {"target", "id", "id_column", "task_type", "metric", "positive_label"}
#: Longest description (in characters) a prompt shows; the rest is cut with a note (`description_for_prompt`).
MAX_DESCRIPTION_CHARS = 6_000
#: Largest columns.py read, in bytes: it holds a few assignments, never data.
MAX_COLUMNS_PY_BYTES = 1_000_000
#: Deepest nesting (lists in lists, ...) of a value assigned in columns.py.
MAX_COLUMNS_PY_DEPTH = 50


@dataclass
class Sources:
    """What a layout provides before inference: tables, text and explicit settings with their origin."""

    name: str
    source: Path
    train: pd.DataFrame
    train_name: str
    test: pd.DataFrame | None = None
    test_name: str = "test.csv"
    sample_submission: pd.DataFrame | None = None
    sample_name: str = "sample_submission.csv"
    sample_cells: pd.DataFrame | None = None  # the sample's cells as written (text), when it is a text table
    sample_line_end: str = "\n"
    description: str = ""
    description_name: str = ""
    settings: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key -> (value, where from)
    notes: list[str] = field(default_factory=list)


def _table_files(folder: Path, stem: str) -> list[Path]:
    """Files in `folder` named `<stem>.<table suffix>[.<compression>]` (case-insensitive), preferred first."""
    found = [
        file for file in folder.iterdir()
        if file.is_file() and split_suffix(file)[0] in TABLE_SUFFIXES and _normalise_stem(table_stem(file)) == stem
    ]
    return sorted(found, key=lambda f: (TABLE_SUFFIXES.index(split_suffix(f)[0]), f.name))


def _normalise_stem(stem: str) -> str:
    return re.sub(r"[\s_\-]", "", stem.lower())


def _pick_table(folder: Path, stem: str, notes: list[str]) -> Path | None:
    files = _table_files(folder, stem)
    if len(files) > 1:
        notes.append(f"several {stem} files ({', '.join(f.name for f in files)}): using {files[0].name}")
    return files[0] if files else None


def _folder_listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:MAX_LISTED]) if names else "(nothing)"


def _read_description(folder: Path) -> tuple[str, str]:
    by_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for name in _DESCRIPTION_NAMES:
        if name in by_name:
            return by_name[name].read_text(encoding="utf-8", errors="replace"), by_name[name].name
    return "", ""


def description_for_prompt(text: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """The task description as a prompt shows it: stripped, and when longer than `limit` characters cut there
    with a visible line saying so (the task and its workspace keep the whole text)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return (f"{text[:limit].rstrip()}\n[The description is cut here: only its first {limit:,} of "
            f"{len(text):,} characters are shown.]")


def _note_long_description(sources: Sources) -> None:
    length = len(sources.description.strip())
    if length > MAX_DESCRIPTION_CHARS:
        where = sources.description_name or "the description"
        sources.notes.append(f"the description ({where}) has {length:,} characters: prompts show only its first "
                             f"{MAX_DESCRIPTION_CHARS:,}, with a line saying it was cut")


def _read_task_toml(path: Path, notes: list[str]) -> dict[str, tuple[Any, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot parse {path.name}: {exc}. Fix the TOML syntax (e.g. target = \"price\")") from exc
    unknown = sorted(set(data) - _TOML_KEYS)
    if unknown:
        notes.append(f"task.toml: ignored unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_TOML_KEYS))})")
        log.warning("task.toml: ignored unknown keys %s", unknown)
    settings: dict[str, tuple[Any, str]] = {}
    for key in ("target", "id", "id_column", "task_type", "metric", "positive_label"):
        if key in data:
            settings["id" if key == "id_column" else key] = (data[key], "task.toml")
    for key in ("target", "id", "task_type", "metric"):
        if key in settings and not isinstance(settings[key][0], str):
            raise TaskError(f"task.toml: {key} must be a string, got {settings[key][0]!r}; write {key} = \"...\"")
    return settings


def _read_sample(sources: Sources, path: Path) -> None:
    """The sample submission, typed (as every table) and as its cells are written (for the final file's spelling)."""
    sources.sample_submission, sources.sample_name = read_table(path), path.name
    cells = read_cells(path)
    if cells is not None:
        sources.sample_cells, sources.sample_line_end = cells


def _load_kaggle_folder(folder: Path, test_path: Path | None) -> Sources:
    notes: list[str] = []
    train_file = _pick_table(folder, "train", notes)
    if train_file is None:
        raise TaskError(
            f"no train file in {folder}: expected train.csv (or train.parquet/.xlsx/.arff/...). "
            f"The folder holds: {_folder_listing(folder)}"
        )
    sources = Sources(name=folder.name, source=folder, train=read_table(train_file), train_name=train_file.name,
                      notes=notes)
    test_file = Path(test_path) if test_path is not None else _pick_table(folder, "test", notes)
    if test_file is not None:
        sources.test, sources.test_name = read_table(test_file), test_file.name
    sample = _pick_table(folder, "samplesubmission", notes)
    if sample is not None:
        _read_sample(sources, sample)
    sources.description, sources.description_name = _read_description(folder)
    toml = folder / "task.toml"
    if toml.is_file():
        sources.settings = _read_task_toml(toml, notes)
    return sources


# --------------------------------------------------------------------------- ML-hw layout (columns.py)


def parse_columns_py(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Top-level literal assignments of an ML-hw `columns.py`, read with `ast` (the file is NEVER executed).

    Returns (values, notes); non-literal assignments and other statements are ignored with a note. A file over
    MAX_COLUMNS_PY_BYTES, one Python cannot parse, or a value nested deeper than MAX_COLUMNS_PY_DEPTH raises
    TaskError."""
    tree = _parse_python_file(path)
    values: dict[str, Any] = {}
    notes: list[str] = []
    skipped = 0
    for node in tree.body:
        targets, value = _assignment_parts(node)
        if not targets or value is None:  # one is empty exactly when the other is
            skipped += not _is_docstring(node)
            continue
        _check_depth(path, targets, node.lineno, value)
        try:
            literal = ast.literal_eval(value)
        except (RecursionError, MemoryError) as exc:
            raise _too_deep(path, targets, node.lineno) from exc
        except (ValueError, TypeError, SyntaxError):
            notes.append(f"columns.py: ignored {', '.join(targets)} (line {node.lineno}): not a literal value; "
                         "the file is read, never executed")
            continue
        for name in targets:
            values[name] = literal
    if skipped:
        notes.append(f"columns.py: ignored {skipped} statement(s) that are not assignments (never executed)")
    return values, notes


def _parse_python_file(path: Path) -> ast.Module:
    """The syntax tree of the Python file `path`, at most MAX_COLUMNS_PY_BYTES long; TaskError for anything else."""
    size = path.stat().st_size
    if size > MAX_COLUMNS_PY_BYTES:
        raise TaskError(f"{path} is {size:,} bytes, more than the {MAX_COLUMNS_PY_BYTES:,} a columns.py may have; "
                        "it should hold only a few assignments like predict_goal = \"y\": shorten it")
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise TaskError(f"cannot parse {path.name}: {exc}. It must be Python with assignments "
                        "like predict_goal = \"y\"") from exc
    except (RecursionError, MemoryError) as exc:
        raise TaskError(f"cannot parse {path}: an expression in it is nested too deeply or too long for Python's "
                        f"parser ({type(exc).__name__}); it must hold only simple assignments like "
                        "predict_goal = \"y\" (strings, numbers, short lists)") from exc


def _check_depth(path: Path, targets: list[str], line: int, value: ast.AST) -> None:
    """TaskError when `value` nests more than MAX_COLUMNS_PY_DEPTH levels (walked without recursion)."""
    stack: list[tuple[ast.AST, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_COLUMNS_PY_DEPTH:
            raise _too_deep(path, targets, line)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _too_deep(path: Path, targets: list[str], line: int) -> TaskError:
    return TaskError(f"cannot read {path}: the value of {', '.join(targets)} (line {line}) is nested more than "
                     f"{MAX_COLUMNS_PY_DEPTH} levels deep; columns.py values must be plain strings, numbers or "
                     "short lists: simplify it")


def _assignment_parts(node: ast.stmt) -> tuple[list[str], ast.expr | None]:
    if isinstance(node, ast.Assign):
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        return (names, node.value) if len(names) == len(node.targets) else ([], None)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return [node.target.id], node.value
    return [], None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _load_mlhw_folder(folder: Path, test_path: Path | None) -> Sources:
    values, notes = parse_columns_py(folder / "columns.py")
    for key in ("predict_goal", "train_file", "test_file", "task_description", "example_columns"):
        if key in values and not isinstance(values[key], str):
            raise TaskError(f"columns.py: {key} must be a string, got {values[key]!r}")
    train_file = folder / values.get("train_file", "train.csv")
    if not train_file.is_file():
        raise TaskError(
            f"columns.py names the train file {train_file.name!r} but {train_file} does not exist; "
            f"set train_file in columns.py. The folder holds: {_folder_listing(folder)}"
        )
    sources = Sources(name=folder.name, source=folder, train=read_table(train_file), train_name=train_file.name,
                      notes=notes)
    test_file = Path(test_path) if test_path is not None else folder / values.get("test_file", "test.csv")
    if test_file.is_file() or test_path is not None or "test_file" in values:
        sources.test, sources.test_name = read_table(test_file), test_file.name
    sample = _pick_table(folder, "samplesubmission", notes)
    if sample is not None:
        _read_sample(sources, sample)
    sources.description = _mlhw_description(values)
    sources.description_name = "columns.py"
    if "predict_goal" in values:
        sources.settings["target"] = (values["predict_goal"], "columns.py (predict_goal)")
    return sources


def _mlhw_description(values: dict[str, Any]) -> str:
    text = values.get("task_description", "").strip()
    examples = values.get("example_columns", "").strip()
    if text or not examples:
        return text
    return f"Example rows of the training data:\n{examples}"


def _load_single_file(file: Path, test_path: Path | None) -> Sources:
    sources = Sources(name=table_stem(file), source=file, train=read_table(file),
                      train_name=file.name)
    if test_path is not None:
        sources.test, sources.test_name = read_table(Path(test_path)), Path(test_path).name
    return sources


def load_sources(path: Path, test_path: Path | None) -> Sources:
    """The sources of the task at `path`: a single table file, an ML-hw folder (a `columns.py` and no
    task.toml) or a Kaggle-style folder; `test_path` replaces the layout's test table. A description longer
    than prompts show is noted."""
    sources = _read_layout(path, test_path)
    _note_long_description(sources)
    return sources


def _read_layout(path: Path, test_path: Path | None) -> Sources:
    if not path.exists():
        raise TaskError(
            f"task path {path} does not exist; pass a folder with train.csv (and optionally test.csv, "
            "sample_submission.csv, description.md, task.toml) or a single table file"
        )
    if test_path is not None and not Path(test_path).is_file():
        raise TaskError(f"test file {test_path} does not exist; check --test")
    if path.is_file():
        return _load_single_file(path, test_path)
    if not (path / "task.toml").is_file() and (path / "columns.py").is_file():
        return _load_mlhw_folder(path, test_path)
    return _load_kaggle_folder(path, test_path)
