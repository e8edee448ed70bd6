"""When two ids are the same id: the one rule that matches a sample submission's ids to the test table's
(`load_task`) and a submission's ids to the ids the harness expects (`grading`).

The reference ids (the test table's, the expected ones) choose how ids compare. When every reference id is a
number, or text that reads as one, and no two are the same number, ids compare as numbers: 1, 1.0, "1",
" 1 ", "1.0" and "1e0" are one id, and an integer stays exact (two long ids never merge by rounding to one
float). Otherwise they compare as text without surrounding spaces, a whole float written as an integer (1.0
is "1", " k1 " is "k1"). Nothing here says what is wrong with a set of ids (see `grading` and `task.checks`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

#: Text that reads as a decimal number (after stripping), e.g. "1", "-2.5", ".5", "1e3".
NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def id_keys(values: pd.Series, reference: pd.Series) -> pd.Series:
    """Comparable keys of `values` (an object Series with their index), by the rule `reference` chooses;
    `id_keys(reference, reference)` are the reference's own keys. A missing id is NaN, and so is a value
    that is not a number when ids compare as numbers."""
    numbers = _number_keys(reference)
    if not (numbers.notna().all() and numbers.is_unique):
        return pd.Series([text_key(v) for v in values.tolist()], index=values.index, dtype=object)
    return numbers if values is reference else _number_keys(values)


def text_key(value: Any) -> Any:
    """`value` as comparable text: stripped, a whole float as an integer ("1"), NaN when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number_keys(values: pd.Series) -> pd.Series:
    """The values as Python ints and floats in an object Series (which compares 1 and 1.0 as equal, and
    keeps every int exact); NaN for what is not a number."""
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(np.nan, index=values.index, dtype=object)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(object)
    return pd.Series([_number_key(v) for v in values.tolist()], index=values.index, dtype=object)


def _number_key(value: Any) -> int | float:
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.match(text):
            return int(text)
        return float(text) if NUMBER.match(text) else math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    return math.nan
