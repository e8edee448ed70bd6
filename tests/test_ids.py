"""One rule for "is this the same id?", shared by task loading and grading."""

from __future__ import annotations

import pandas as pd

from tabcoder.task.ids import id_keys


def keys(values: list, reference: list) -> list:
    ref = pd.Series(reference, dtype=object)
    return id_keys(pd.Series(values, dtype=object), ref).tolist()


def test_numeric_ids_match_however_they_are_written():
    assert keys(["1", " 1 ", "1.0", 1.0, "1e0"], [1, 2]) == [1, 1, 1, 1, 1]
    assert keys(["1.0", "2"], ["1", "2"]) == [1, 2]  # text ids that all read as numbers compare as numbers


def test_long_integer_ids_stay_exact():
    big = 2**53
    assert keys([str(big), str(big + 1)], [big, big + 1]) == [big, big + 1]


def test_text_ids_compare_as_stripped_text():
    assert keys([" k1 ", "k2"], ["k1", "k2"]) == ["k1", "k2"]
    # "1" and "01" would be the same number: such ids stay text
    assert keys(["01", "1"], ["01", "1"]) == ["01", "1"]


def test_one_text_id_among_numbers_is_reported_alone():
    got = keys([1, 2, "x"], [1, 2, 3])
    assert got[:2] == [1, 2] and pd.isna(got[2])
