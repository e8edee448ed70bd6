"""Load a tabular task: read its tables, infer what was not given, validate, and describe it as a `Task`.

Scope: three input layouts (a Kaggle-style folder, an ML-hw folder with a `columns.py`, or a single
table file), table reading (`read_table`), and the inference of target, id, task type, metric and
positive label. Every inference is recorded in `Task.notes`. Bad input raises `TaskError` (or
`ConfigError` for a bad option) whose message says what is wrong and how to fix it. Nothing here
splits or grades data (see `grading`).
"""

from __future__ import annotations

import ast
import bz2
import difflib
import gzip
import logging
import lzma
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabcoder.errors import ConfigError, TaskError
from tabcoder.metrics import TASK_TYPES, MetricSpec, default_metric, get_metric, metric_from_text, metrics_for

log = logging.getLogger(__name__)

TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls", ".arff")
_COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": None}
_DESCRIPTION_NAMES = ("description.md", "description.txt", "readme.md", "readme.txt")
_TOML_KEYS = {"target", "id", "id_column", "task_type", "metric", "positive_label"}
_ID_NAMES = ("id", "ID", "Id", "index")
_ID_SUFFIX = re.compile(r"^(?:id|ID|Id)$|_(?:id|ID|Id)$|[a-z0-9](?:Id|ID)$")
_POSITIVE_WORDS = {"1", "1.0", "true", "yes", "y", "positive", "pos"}
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_MAX_CLASSES_INFERRED = 20
_MAX_LISTED = 30
#: Longest description (in characters) a prompt shows; the rest is cut with a note (`description_for_prompt`).
MAX_DESCRIPTION_CHARS = 6_000
#: Largest columns.py read, in bytes: it holds a few assignments, never data.
MAX_COLUMNS_PY_BYTES = 1_000_000
#: Deepest nesting (lists in lists, ...) of a value assigned in columns.py.
MAX_COLUMNS_PY_DEPTH = 50


@dataclass
class Task:
    """A loaded, validated task. `train` holds the id, features and target; `test` has no target."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame | None
    target: str
    id_column: str
    id_generated: bool
    task_type: str
    metric: str
    positive_label: Any
    classes: list | None
    description: str
    sample_submission: pd.DataFrame | None
    submission_columns: list[str]
    source: Path
    notes: list[str] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.train.columns if c not in (self.target, self.id_column)]

    @property
    def metric_spec(self) -> MetricSpec:
        return get_metric(self.metric)


# =========================================================================== reading tables


def _split_suffix(path: Path) -> tuple[str, str | None]:
    """(table suffix, compression suffix or None), e.g. 'train.csv.gz' -> ('.csv', '.gz')."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSIONS:
        return suffixes[-2], suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def _table_stem(path: Path) -> str:
    """The file name without its table and compression suffixes: 'train.csv.gz' -> 'train'."""
    suffix, compression = _split_suffix(path)
    name = path.name
    for extra in (compression, suffix):
        if extra and name.lower().endswith(extra):
            name = name[: -len(extra)]
    return name


def _sniff_delimiter(path: Path, suffix: str, compression: str | None) -> str:
    """The delimiter of a text table: ',' for .csv unless the header has no comma; else the most frequent
    of , tab ; | in the first line."""
    opener = _COMPRESSIONS.get(compression) if compression else open
    if opener is None:
        return ","
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            first_line = handle.readline()
    except OSError:
        return ","
    counts = {d: first_line.count(d) for d in (",", "\t", ";", "|")}
    if suffix == ".csv" and counts[","]:
        return ","
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _read_text_table(path: Path, suffix: str, compression: str | None) -> pd.DataFrame:
    sep = "\t" if suffix == ".tsv" else _sniff_delimiter(path, suffix, compression)
    return pd.read_csv(path, sep=sep)


def _read_excel(path: Path, suffix: str) -> pd.DataFrame:
    if suffix == ".xls":
        try:
            import xlrd  # noqa: F401
        except ImportError as exc:
            raise TaskError(
                f"cannot read {path.name}: old-style .xls files need the package xlrd (pip install xlrd); "
                "or save the sheet as .xlsx or .csv"
            ) from exc
        return pd.read_excel(path)
    return pd.read_excel(path, engine="openpyxl")


def _read_arff(path: Path) -> pd.DataFrame:
    import arff

    with open(path, encoding="utf-8") as handle:
        decoded = arff.load(handle)
    rows = decoded["data"]
    columns = {}
    for j, (name, kind) in enumerate(decoded["attributes"]):
        values = [row[j] for row in rows]
        columns[name] = _arff_column(values, kind)
    return pd.DataFrame(columns)


def _arff_column(values: list, kind: Any) -> pd.Series:
    """Nominal and string attributes become string columns; numeric ones numbers (int when INTEGER)."""
    if isinstance(kind, list) or str(kind).upper() == "STRING":
        return pd.Series([None if v is None else str(v) for v in values], dtype="str")
    numbers = pd.to_numeric(pd.Series(values, dtype="float64"))
    if str(kind).upper() == "INTEGER" and numbers.notna().all():
        return numbers.astype("int64")
    return numbers


def read_table(path: Path) -> pd.DataFrame:
    """Read a table file: .csv .tsv .txt (delimited text, optionally .gz/.bz2/.xz/.zip compressed),
    .parquet .pq .xlsx .xlsm .xls (first sheet) or .arff. Column names become strings.
    Raises TaskError when the file is missing, of an unknown kind, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"table file {path} does not exist (or is not a file); check the path")
    suffix, compression = _split_suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise TaskError(
            f"cannot read {path.name}: unknown table format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(TABLE_SUFFIXES)} (csv files may be gzip-compressed)"
        )
    try:
        table = _read_any(path, suffix, compression)
    except TaskError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise TaskError(f"{path.name} is empty: it holds no header and no rows; put the data in it") from exc
    except Exception as exc:  # parsers raise many kinds of errors; all mean "unreadable"
        raise TaskError(
            f"cannot read {path.name} as a {suffix.lstrip('.')} table: {type(exc).__name__}: {str(exc).rstrip('. ')}. "
            "Check that the file is a valid, uncorrupted table of that kind"
        ) from exc
    if table.shape[1] == 0 or len(table) == 0:
        raise TaskError(f"{path.name} has no data rows (columns: {_list(table.columns)}); it needs at least one row")
    table.columns = [str(c) for c in table.columns]
    return table


def _read_any(path: Path, suffix: str, compression: str | None) -> pd.DataFrame:
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_text_table(path, suffix, compression)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".xlsx", ".xlsm", ".xls"):
        return _read_excel(path, suffix)
    return _read_arff(path)


# =========================================================================== task sources


@dataclass
class _Sources:
    """What a layout provides before inference: tables, text and explicit settings with their origin."""

    name: str
    source: Path
    train: pd.DataFrame
    train_name: str
    test: pd.DataFrame | None = None
    test_name: str = "test.csv"
    sample_submission: pd.DataFrame | None = None
    sample_name: str = "sample_submission.csv"
    description: str = ""
    description_name: str = ""
    settings: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key -> (value, where from)
    notes: list[str] = field(default_factory=list)


def _table_files(folder: Path, stem: str) -> list[Path]:
    """Files in `folder` named `<stem>.<table suffix>[.<compression>]` (case-insensitive), preferred first."""
    found = [
        file for file in folder.iterdir()
        if file.is_file() and _split_suffix(file)[0] in TABLE_SUFFIXES and _normalise_stem(_table_stem(file)) == stem
    ]
    return sorted(found, key=lambda f: (TABLE_SUFFIXES.index(_split_suffix(f)[0]), f.name))


def _normalise_stem(stem: str) -> str:
    return re.sub(r"[\s_\-]", "", stem.lower())


def _pick_table(folder: Path, stem: str, notes: list[str]) -> Path | None:
    files = _table_files(folder, stem)
    if len(files) > 1:
        notes.append(f"several {stem} files ({', '.join(f.name for f in files)}): using {files[0].name}")
    return files[0] if files else None


def _folder_listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:_MAX_LISTED]) if names else "(nothing)"


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


def _note_long_description(sources: _Sources) -> None:
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
    settings = {}
    for key in ("target", "id", "id_column", "task_type", "metric", "positive_label"):
        if key in data:
            settings["id" if key == "id_column" else key] = (data[key], "task.toml")
    for key in ("target", "id", "task_type", "metric"):
        if key in settings and not isinstance(settings[key][0], str):
            raise TaskError(f"task.toml: {key} must be a string, got {settings[key][0]!r}; write {key} = \"...\"")
    return settings


def _load_kaggle_folder(folder: Path, test_path: Path | None) -> _Sources:
    notes: list[str] = []
    train_file = _pick_table(folder, "train", notes)
    if train_file is None:
        raise TaskError(
            f"no train file in {folder}: expected train.csv (or train.parquet/.xlsx/.arff/...). "
            f"The folder holds: {_folder_listing(folder)}"
        )
    sources = _Sources(name=folder.name, source=folder, train=read_table(train_file), train_name=train_file.name,
                       notes=notes)
    test_file = Path(test_path) if test_path is not None else _pick_table(folder, "test", notes)
    if test_file is not None:
        sources.test, sources.test_name = read_table(test_file), test_file.name
    sample = _pick_table(folder, "samplesubmission", notes)
    if sample is not None:
        sources.sample_submission, sources.sample_name = read_table(sample), sample.name
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
        if not targets:
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


def _check_depth(path: Path, targets: list[str], line: int, value: ast.expr) -> None:
    """TaskError when `value` nests more than MAX_COLUMNS_PY_DEPTH levels (walked without recursion)."""
    stack = [(value, 1)]
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


def _load_mlhw_folder(folder: Path, test_path: Path | None) -> _Sources:
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
    sources = _Sources(name=folder.name, source=folder, train=read_table(train_file), train_name=train_file.name,
                       notes=notes)
    test_file = Path(test_path) if test_path is not None else folder / values.get("test_file", "test.csv")
    if test_file.is_file() or test_path is not None or "test_file" in values:
        sources.test, sources.test_name = read_table(test_file), test_file.name
    sample = _pick_table(folder, "samplesubmission", notes)
    if sample is not None:
        sources.sample_submission, sources.sample_name = read_table(sample), sample.name
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


def _load_single_file(file: Path, test_path: Path | None) -> _Sources:
    sources = _Sources(name=_table_stem(file), source=file, train=read_table(file),
                       train_name=file.name)
    if test_path is not None:
        sources.test, sources.test_name = read_table(Path(test_path)), Path(test_path).name
    return sources


def _load_sources(path: Path, test_path: Path | None) -> _Sources:
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


# =========================================================================== inference and validation


def _list(columns, limit: int = _MAX_LISTED) -> str:
    items = [str(c) for c in columns]
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _did_you_mean(name: str, options) -> str:
    guess = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {guess[0]!r}?" if guess else ""


def _setting(explicit: Any, sources: _Sources, key: str) -> tuple[Any, str] | None:
    if explicit is not None:
        return explicit, "the arguments"
    return sources.settings.get(key)


def _resolve_target(sources: _Sources, given: tuple[Any, str] | None) -> str:
    train, test, notes = sources.train, sources.test, sources.notes
    if given is not None:
        target, origin = given
        if target not in train.columns:
            raise TaskError(
                f"target {target!r} ({origin}) is not a column of {sources.train_name}."
                f"{_did_you_mean(target, train.columns)} "
                f"Columns: {_list(train.columns)}"
            )
        notes.append(f"target {target!r} from {origin}")
        return target
    candidates = _sample_submission_targets(sources)
    if len(candidates) == 1:
        notes.append(f"target {candidates[0]!r} from {sources.sample_name}")
        return candidates[0]
    if test is not None:
        missing = [c for c in train.columns if c not in test.columns]
        if len(missing) == 1:
            notes.append(f"target {missing[0]!r}: the only {sources.train_name} column missing "
                         f"from {sources.test_name}")
            return missing[0]
        candidates = candidates or missing
    hint = f" Candidates: {_list(candidates)}." if candidates else ""
    raise TaskError(
        f"cannot tell which column of {sources.train_name} is the target.{hint} "
        f"Pass --target NAME (or set target in task.toml). Columns: {_list(train.columns)}"
    )


def _sample_submission_targets(sources: _Sources) -> list[str]:
    sample, test = sources.sample_submission, sources.test
    if sample is None:
        return []
    return [c for c in sample.columns[1:] if c in sources.train.columns and (test is None or c not in test.columns)]


def _resolve_id(sources: _Sources, given: tuple[Any, str] | None, target: str) -> str | None:
    """The id column, or None when one must be generated."""
    train, test, notes = sources.train, sources.test, sources.notes
    if given is not None:
        column, origin = given
        _check_given_id(sources, column, origin, target)
        notes.append(f"id column {column!r} from {origin}")
        return column
    sample = sources.sample_submission
    if sample is not None and test is not None:
        first = sample.columns[0]
        if first != target and first in test.columns and first in train.columns:
            notes.append(f"id column {first!r}: first column of {sources.sample_name}")
            return first
    candidates = [c for c in train.columns if c != target and _looks_like_id(c, train, test)]
    named = [c for c in candidates if c in _ID_NAMES] or [c for c in candidates if _ID_SUFFIX.search(c)]
    if len(named) == 1:
        notes.append(f"id column {named[0]!r}: named like an id and unique in every table")
        return named[0]
    return None


def _check_given_id(sources: _Sources, column: Any, origin: str, target: str) -> None:
    for frame, name in ((sources.train, sources.train_name), (sources.test, sources.test_name)):
        if frame is not None and column not in frame.columns:
            raise TaskError(
                f"id column {column!r} ({origin}) is not a column of {name}.{_did_you_mean(column, frame.columns)} "
                f"Columns: {_list(frame.columns)}. Pass an existing column, or none to number the rows"
            )
    if column == target:
        raise TaskError(f"id column {column!r} ({origin}) is also the target; the id must be a different column")


def _looks_like_id(column: str, train: pd.DataFrame, test: pd.DataFrame | None) -> bool:
    if column not in _ID_NAMES and not _ID_SUFFIX.search(column):
        return False
    frames = [train] + ([test] if test is not None else [])
    if any(column not in f.columns for f in frames):
        return False
    return all(f[column].notna().all() and f[column].is_unique and not pd.api.types.is_float_dtype(f[column])
               for f in frames)


def _generate_id(sources: _Sources) -> str:
    taken = set(sources.train.columns) | (set(sources.test.columns) if sources.test is not None else set())
    name = "id" if "id" not in taken else "row_id"
    while name in taken:
        name += "_"
    n_train = len(sources.train)
    sources.train.insert(0, name, np.arange(n_train))
    if sources.test is not None:
        sources.test.insert(0, name, np.arange(n_train, n_train + len(sources.test)))
    sources.notes.append(f"no id column: added {name!r} numbering the rows (train 0..{n_train - 1}, test continuing)")
    return name


def _check_ids(frame: pd.DataFrame, column: str, file_name: str) -> None:
    ids = frame[column]
    n_missing = int(ids.isna().sum())
    if n_missing:
        raise TaskError(f"{n_missing} rows of {file_name} have no id in column {column!r}; every row needs an id "
                        "(fill them, or pass another --id)")
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        examples = _list(pd.unique(duplicated)[:5])
        raise TaskError(
            f"column {column!r} of {file_name} has {duplicated.nunique()} duplicated id value(s) (e.g. {examples}); "
            "ids must be unique: pass another --id, or remove it so that rows are numbered"
        )


def _drop_missing_target(sources: _Sources, target: str) -> None:
    missing = sources.train[target].isna()
    if missing.all():
        raise TaskError(f"the target {target!r} is empty in every row of {sources.train_name}; "
                        "fill it, or pass the right column with --target")
    if missing.any():
        sources.train = sources.train.loc[~missing].reset_index(drop=True)
        sources.notes.append(f"dropped {int(missing.sum())} {sources.train_name} rows with a missing target")


def _drop_empty_target_from_test(sources: _Sources, target: str) -> None:
    test = sources.test
    if test is None or target not in test.columns:
        return
    if test[target].notna().any():
        raise TaskError(f"{sources.test_name} contains the target column {target!r} with values; "
                        "remove it from the test file (the test set must not hold the answers)")
    sources.test = test.drop(columns=[target])
    sources.notes.append(f"dropped the empty target column {target!r} from {sources.test_name}")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _integer_valued(series: pd.Series) -> bool:
    values = series.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _infer_task_type(y: pd.Series, notes: list[str]) -> str:
    n_distinct = y.nunique()
    if not _is_numeric(y):
        why = f"target is {y.dtype}"
    elif _integer_valued(y) and (n_distinct == 2 or (n_distinct <= _MAX_CLASSES_INFERRED and n_distinct * 4 <= len(y))):
        why = f"integer target with {n_distinct} distinct values"
    else:
        notes.append(f"task type 'regression': numeric target with {n_distinct} distinct values")
        return "regression"
    task_type = "binary" if n_distinct == 2 else "multiclass"
    notes.append(f"task type {task_type!r}: {why}, {n_distinct} classes")
    return task_type


def _check_task_type(y: pd.Series, task_type: Any, origin: str, target: str) -> str:
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task type {task_type!r} ({origin}); use one of: {', '.join(TASK_TYPES)}")
    if task_type == "regression" and not _is_numeric(y):
        example = y.dropna().iloc[0]
        raise TaskError(
            f"task type 'regression' ({origin}) needs a numeric target, but {target!r} holds {y.dtype} values "
            f"such as {example!r}; use task type binary or multiclass, or another target"
        )
    if task_type != "regression" and _is_numeric(y) and not _integer_valued(y):
        raise TaskError(
            f"task type {task_type!r} ({origin}) needs class labels, but {target!r} holds non-integer numbers "
            f"({y.nunique()} distinct values); use task type regression"
        )
    n_distinct = y.nunique()
    if task_type == "binary" and n_distinct != 2:
        raise TaskError(
            f"task type 'binary' ({origin}) needs exactly 2 classes, but {target!r} has {n_distinct}: "
            f"{_list(_sorted_labels(y), 10)}; use task type {'multiclass' if n_distinct > 2 else 'a different target'}"
        )
    return task_type


def _sorted_labels(y: pd.Series) -> list:
    values = pd.unique(y.dropna()).tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _normalise_class_dtype(sources: _Sources, target: str) -> None:
    """Float class labels that are whole numbers (e.g. after missing targets were dropped) become ints."""
    y = sources.train[target]
    if pd.api.types.is_float_dtype(y) and _integer_valued(y):
        sources.train[target] = y.astype("int64")
        sources.notes.append(f"target {target!r} holds whole numbers stored as floats: converted to integers")


def _match_label(value: Any, classes: list) -> Any:
    """The class equal to `value`: exactly, else as numbers, else as stripped text (then case-insensitive)."""
    tests = (
        lambda v, c: v == c and isinstance(v, bool) == isinstance(c, bool),
        lambda v, c: _as_number(v) is not None and _as_number(v) == _as_number(c),
        lambda v, c: str(v).strip() == str(c).strip(),
        lambda v, c: str(v).strip().lower() == str(c).strip().lower(),
    )
    for same in tests:
        matches = [c for c in classes if same(value, c)]
        if len(matches) == 1:
            return matches[0]
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or (isinstance(value, str) and not _NUMBER.match(value.strip())):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _resolve_positive_label(y: pd.Series, classes: list, given: tuple[Any, str] | None, sources: _Sources) -> Any:
    notes = sources.notes
    if given is not None:
        value, origin = given
        label = _match_label(value, classes)
        if label is None:
            raise TaskError(f"positive label {value!r} ({origin}) is not a class of the target; "
                            f"the classes are {_list(map(repr, classes))}")
        notes.append(f"positive label {label!r} from {origin}")
        return label
    named = _labels_named_in(sources.description, classes)
    if len(named) == 1:
        notes.append(f"positive label {named[0]!r} from {sources.description_name or 'the description'}")
        return named[0]
    conventional = [c for c in classes if str(c).strip().lower() in _POSITIVE_WORDS]
    if len(conventional) == 1:
        notes.append(f"positive label {conventional[0]!r} (conventional positive value)")
        return conventional[0]
    counts = y.value_counts()
    minority = min(classes, key=lambda c: (counts.get(c, 0), -classes.index(c)))
    notes.append(f"positive label {minority!r}: the minority class")
    return minority


def _labels_named_in(text: str, classes: list) -> list:
    """Classes named as "class X" or "= X" in the text."""
    named = []
    for c in classes:
        label = re.escape(str(c))
        pattern = rf"(?:\bclass\s+|={{1,2}}\s*)[`'\"]?{label}(?![\w])"
        if re.search(pattern, text or "", flags=re.IGNORECASE):
            named.append(c)
    return named


def _resolve_metric(given: tuple[Any, str] | None, task_type: str, y: pd.Series, sources: _Sources) -> str:
    notes = sources.notes
    if given is not None:
        value, origin = given
        spec = get_metric(value)
        if task_type not in spec.task_types:
            raise ConfigError(
                f"metric {spec.name!r} ({origin}) does not apply to a {task_type} task; "
                f"use one of: {', '.join(metrics_for(task_type))}"
            )
        _check_rmsle_targets(spec.name, y, origin)
        notes.append(f"metric {spec.name!r} from {origin}")
        return spec.name
    found = metric_from_text(sources.description, task_type)
    if found == "rmsle" and (y < 0).any():
        notes.append("the description names rmsle but the target has negative values: not using it")
        found = None
    if found is not None:
        notes.append(f"metric {found!r} from {sources.description_name or 'the description'}")
        return found
    metric = default_metric(task_type)
    notes.append(f"metric {metric!r}: the default for {task_type} tasks")
    return metric


def _check_rmsle_targets(metric: str, y: pd.Series, origin: str) -> None:
    if metric == "rmsle" and (y < 0).any():
        raise ConfigError(
            f"metric 'rmsle' ({origin}) needs non-negative targets, but {int((y < 0).sum())} train targets are "
            "negative; use rmse or mae"
        )


def _check_test_columns(sources: _Sources, id_column: str, target: str) -> None:
    test = sources.test
    if test is None:
        return
    expected = [c for c in sources.train.columns if c != target]
    missing = [c for c in expected if c not in test.columns]
    extra = [c for c in test.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from {sources.test_name}: {_list(missing)}")
        if extra:
            parts.append(f"in {sources.test_name} but not in {sources.train_name}: {_list(extra)}")
        raise TaskError(
            f"the columns of {sources.test_name} do not match the feature columns of {sources.train_name} "
            f"({'; '.join(parts)}). The test file must hold the id column {id_column!r} and the same features"
        )


def _submission_columns(id_column: str, target: str, task_type: str, metric: str, classes: list | None) -> list[str]:
    if task_type == "multiclass" and get_metric(metric).needs_proba:
        return [id_column, *(str(c) for c in classes)]
    return [id_column, target]


def _id_keys(ids: pd.Series) -> pd.Series:
    """Comparable id values: numbers numerically, anything else as stripped text."""
    numeric = pd.to_numeric(ids, errors="coerce")
    if numeric.notna().all():
        return numeric.astype(float).map(repr)
    return ids.astype(str).str.strip()


def _check_sample_submission(sources: _Sources, id_column: str, id_generated: bool,
                             submission_columns: list[str]) -> pd.DataFrame | None:
    """The sample submission when it fits the task; None (with a note) when it cannot be used as is."""
    sample, test, name = sources.sample_submission, sources.test, sources.sample_name
    if sample is None:
        return None
    if test is None or id_generated or id_column not in sample.columns:
        sources.notes.append(f"{name} ignored: it has no {id_column!r} column matching a test file")
        return None
    _check_sample_ids(sample, test, id_column, name, sources.test_name)
    if list(sample.columns) != submission_columns:
        sources.notes.append(f"{name} ignored: its columns ({_list(sample.columns)}) differ from the "
                             f"submission columns ({_list(submission_columns)})")
        return None
    return sample


def _check_sample_ids(sample: pd.DataFrame, test: pd.DataFrame, id_column: str, name: str, test_name: str) -> None:
    sample_keys = _id_keys(sample[id_column])
    test_keys = _id_keys(test[id_column])
    missing = test[id_column][~test_keys.isin(set(sample_keys))]
    extra = sample[id_column][~sample_keys.isin(set(test_keys))]
    duplicated = sample[id_column][sample_keys.duplicated()]
    if len(missing) or len(extra) or len(duplicated):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} {test_name} ids are missing from it (e.g. {_list(missing.head(5))})")
        if len(extra):
            parts.append(f"{len(extra)} of its ids are not in {test_name} (e.g. {_list(extra.head(5))})")
        if len(duplicated):
            parts.append(f"{len(duplicated)} ids appear twice (e.g. {_list(duplicated.head(5))})")
        raise TaskError(
            f"the ids of {name} do not match {test_name}: {'; '.join(parts)}. "
            f"Fix {name} so that it has exactly one row per test id, or delete it"
        )


def _settle_id(sources: _Sources, given: tuple[Any, str] | None, target: str) -> tuple[str, bool]:
    """(id column, whether it was generated), checked to be complete and unique in train and test."""
    name = _resolve_id(sources, given, target)
    generated = name is None
    if generated:
        name = _generate_id(sources)
    _check_ids(sources.train, name, sources.train_name)
    if sources.test is not None:
        _check_ids(sources.test, name, sources.test_name)
    return name, generated


def _settle_task_type(sources: _Sources, given: tuple[Any, str] | None, target: str) -> tuple[str, list | None]:
    """(task type, sorted classes or None for regression)."""
    y = sources.train[target]
    if given is not None:
        kind = _check_task_type(y, *given, target)
        sources.notes.append(f"task type {kind!r} from {given[1]}")
    else:
        kind = _infer_task_type(y, sources.notes)
    if kind == "regression":
        return kind, None
    _normalise_class_dtype(sources, target)
    classes = _sorted_labels(sources.train[target])
    if len(classes) < 2:
        raise TaskError(f"the target {target!r} has a single class ({classes[0]!r}) in "
                        f"{sources.train_name}: there is nothing to learn; check the target column")
    return kind, classes


def _settle_positive_label(sources: _Sources, given: tuple[Any, str] | None, target: str, kind: str,
                           classes: list | None) -> Any:
    if kind == "binary":
        return _resolve_positive_label(sources.train[target], classes, given, sources)
    if given is not None:
        sources.notes.append(f"positive label {given[0]!r} ({given[1]}) ignored: the task is {kind}")
    return None


def load_task(path, *, target=None, id_column=None, task_type=None, metric=None, positive_label=None,
              test_path=None) -> Task:
    """Load a task from a folder (Kaggle layout or ML-hw `columns.py`) or a single table file.

    Keyword arguments override task.toml / columns.py; anything not given is inferred and noted."""
    path = Path(path)
    sources = _load_sources(path, None if test_path is None else Path(test_path))
    _note_long_description(sources)
    target_name = _resolve_target(sources, _setting(target, sources, "target"))
    _drop_empty_target_from_test(sources, target_name)
    id_name, id_generated = _settle_id(sources, _setting(id_column, sources, "id"), target_name)
    _check_test_columns(sources, id_name, target_name)
    _drop_missing_target(sources, target_name)
    kind, classes = _settle_task_type(sources, _setting(task_type, sources, "task_type"), target_name)
    positive = _settle_positive_label(sources, _setting(positive_label, sources, "positive_label"), target_name,
                                      kind, classes)
    metric_name = _resolve_metric(_setting(metric, sources, "metric"), kind, sources.train[target_name], sources)
    submission_columns = _submission_columns(id_name, target_name, kind, metric_name, classes)
    sample = _check_sample_submission(sources, id_name, id_generated, submission_columns)
    for note in sources.notes:
        log.info("task %s: %s", sources.name, note)
    return Task(
        name=sources.name, train=sources.train, test=sources.test, target=target_name, id_column=id_name,
        id_generated=id_generated, task_type=kind, metric=metric_name, positive_label=positive,
        classes=classes, description=sources.description, sample_submission=sample,
        submission_columns=submission_columns, source=path, notes=sources.notes,
    )
