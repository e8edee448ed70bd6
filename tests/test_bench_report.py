"""Benchmark aggregation on hand-checkable toy results: normalised scores, ranks, summaries, tables."""

from __future__ import annotations

import pytest

from tabcoder.bench.report import average_ranks, build_report, format_report, normalised_score

from bench_helpers import toy_row, toy_rows


def by_system(report):
    return {s.system: s for s in report.systems}


def test_normalised_score_higher_is_better():
    assert normalised_score(0.9, 0.5, 0.8, True) == pytest.approx(4 / 3)
    assert normalised_score(0.5, 0.5, 0.8, True) == 0.0
    assert normalised_score(0.8, 0.5, 0.8, True) == 1.0
    assert normalised_score(0.4, 0.5, 0.8, True) == pytest.approx(-1 / 3)


def test_normalised_score_lower_is_better():
    assert normalised_score(6.0, 10.0, 5.0, False) == pytest.approx(0.8)
    assert normalised_score(4.0, 10.0, 5.0, False) == pytest.approx(1.2)
    assert normalised_score(12.0, 10.0, 5.0, False) == pytest.approx(-0.4)


def test_normalised_score_undefined_cases():
    assert normalised_score(0.9, 0.5, 0.5, True) is None  # reference == dummy
    assert normalised_score(0.9, 0.5, 0.4, True) is None  # reference worse than dummy
    assert normalised_score(3.0, 10.0, 12.0, False) is None  # same, lower is better
    assert normalised_score(0.9, None, 0.8, True) is None  # a baseline is missing
    assert normalised_score(None, 0.5, 0.8, True) == 0.0  # no valid submission counts as the dummy


def test_average_ranks_with_ties_and_failures():
    assert average_ranks([0.9, None, 0.9, 0.5], True) == [1.5, 4.0, 1.5, 3.0]
    assert average_ranks([3.0, 1.0, 2.0], False) == [3.0, 1.0, 2.0]
    assert average_ranks([None, None, 1.0], False) == [2.5, 2.5, 1.0]


def test_report_per_system_by_hand():
    report = build_report(toy_rows())
    systems = by_system(report)
    a, b = systems["model-a/reflexion"], systems["model-b/reflexion"]
    assert a.normalised == pytest.approx((4 / 3 + 0.8) / 2)
    assert b.normalised == pytest.approx((0.0 + 1.2) / 2)
    assert systems["hgb"].normalised == 1.0 and systems["dummy"].normalised == 0.0
    # acc ranks: a 1, hgb 2, dummy 3, b 4; err ranks: b 1, hgb 2, a 3, dummy 4
    assert a.rank == 2.0 and b.rank == 2.5 and systems["hgb"].rank == 2.0 and systems["dummy"].rank == 3.5
    assert b.valid_rate == 0.5 and a.valid_rate == 1.0
    assert a.tokens == 1000 and systems["hgb"].tokens == 0
    assert report.system_names == ["hgb", "model-a/reflexion", "model-b/reflexion", "dummy"]


def test_report_per_task_and_text():
    report = build_report(toy_rows())
    err_b = next(s for s in report.tasks if s.task == "err" and s.system == "model-b/reflexion")
    assert err_b.test == 4.0 and err_b.rank == 1.0 and err_b.normalised == pytest.approx(1.2)
    acc_b = next(s for s in report.tasks if s.task == "acc" and s.system == "model-b/reflexion")
    assert acc_b.test is None and acc_b.valid_rate == 0.0 and acc_b.normalised == 0.0
    text = format_report(report)
    assert "| model-a/reflexion | 2 | 100% | 1.07 | 2.00 |" in text
    assert "| err | rmse | model-b/reflexion | 100% | 4 |" in text


def test_seeds_are_grouped_separately():
    report = build_report(toy_rows(seeds=2))
    a = by_system(report)["model-a/reflexion"]
    assert a.cells == 4 and a.rank == 2.0
    assert a.seconds == pytest.approx((5 + 5 + 10 + 10) / 4)


def test_undefined_reference_is_noted_and_not_averaged():
    rows = [toy_row("flat", s, v, metric="accuracy", greater=True)
            for s, v in (("dummy", 0.5), ("hgb", 0.5), ("model-a", 0.9))]
    report = build_report(rows + toy_rows())
    assert by_system(report)["model-a/reflexion"].normalised == pytest.approx((4 / 3 + 0.8) / 2)
    assert any("undefined" in note and "flat" in note for note in report.notes)


def test_one_system_with_two_configs_gets_two_labels():
    rows = toy_rows() + [toy_row("acc", "model-a", 0.7, metric="accuracy", greater=True, config_hash="h2xxxx")]
    names = build_report(rows).system_names
    assert "model-a/reflexion@h1" in names and "model-a/reflexion@h2xxxx" in names


def test_several_suites_keep_their_tasks_apart():
    other = [toy_row("acc", s, v, metric="accuracy", greater=True) for s, v in (("dummy", 0.1), ("hgb", 0.2))]
    for row in other:
        row.suite, row.key = "other", "other/" + row.key
    report = build_report(toy_rows() + other)
    assert report.task_names == ["other/acc", "toy/acc", "toy/err"]


def test_unfinished_cells_are_counted_not_scored():
    rows = toy_rows()
    rows[0].status, rows[1].status = "error", "running"
    report = build_report(rows)
    assert "1 cell(s) running" in report.notes and "1 cell(s) error" in report.notes
    assert len(report.cells) == len(rows) - 2
