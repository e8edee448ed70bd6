"""Read one table file into a DataFrame: delimited text (optionally compressed), Parquet, Excel or ARFF.

Scope: `read_table` and the file-name helpers the folder layouts use to find tables (`split_suffix`,
`table_stem`). A missing, unknown, unreadable or empty file raises `TaskError` saying what to do. Nothing here
knows which table is train or test, or what its columns mean (see `layouts` and `inference`).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import Any

import pandas as pd

from tabcoder.errors import TaskError
from tabcoder.task.wording import listed

TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls", ".arff")
_COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": None}


def split_suffix(path: Path) -> tuple[str, str | None]:
    """(table suffix, compression suffix or None), e.g. 'train.csv.gz' -> ('.csv', '.gz')."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSIONS:
        return suffixes[-2], suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def table_stem(path: Path) -> str:
    """The file name without its table and compression suffixes: 'train.csv.gz' -> 'train'."""
    suffix, compression = split_suffix(path)
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
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _read_text_table(path: Path, suffix: str, compression: str | None) -> pd.DataFrame:
    sep = "\t" if suffix == ".tsv" else _sniff_delimiter(path, suffix, compression)
    return pd.read_csv(path, sep=sep)


def read_cells(path: Path) -> tuple[pd.DataFrame, str] | None:
    """The cells of a delimited text table exactly as written (strings, nothing read as missing) and its line
    ending ("\\n" or "\\r\\n"); None for a table of another kind, which has no spelling to keep."""
    path = Path(path)
    suffix, compression = split_suffix(path)
    if suffix not in (".csv", ".tsv", ".txt"):
        return None
    sep = "\t" if suffix == ".tsv" else _sniff_delimiter(path, suffix, compression)
    try:
        cells = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - read_table already read this file; a second reading is only a nicety
        return None
    line_end = "\n"
    if compression is None:
        with open(path, "rb") as handle:
            line_end = "\r\n" if handle.readline().endswith(b"\r\n") else "\n"
    cells.columns = [str(c) for c in cells.columns]
    return cells, line_end


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
    suffix, compression = split_suffix(path)
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
        raise TaskError(f"{path.name} has no data rows (columns: {listed(table.columns)}); it needs at least one row")
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
