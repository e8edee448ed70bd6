"""Benchmark aggregation on hand-checkable toy results: normalised scores, ranks, summaries, tables."""

from __future__ import annotations

import pytest

from tabcoder.bench.html import render_html
from tabcoder.bench.report import average_ranks, build_report, format_report, lift, normalised_score

from bench_helpers import TOY, toy_row, toy_rows


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


def test_lift_is_the_validation_gain_over_the_baseline_in_units_of_hgb_minus_dummy():
    assert lift(0.06, 0.5, 0.8, True) == pytest.approx(0.2)
    assert lift(2.0, 10.0, 5.0, False) == pytest.approx(0.4)  # lower is better: the scale is dummy - hgb
    assert lift(-1.0, 10.0, 5.0, False) == pytest.approx(-0.2)
    assert lift(0.0, 0.5, 0.8, True) == 0.0  # the baseline was kept
    assert lift(None, 0.5, 0.8, True) is None  # no baseline to compare with
    assert lift(0.1, 0.5, 0.5, True) is None and lift(0.1, None, 0.8, True) is None  # undefined scale


LIFT = {  # (task, system): gain_validation, beat_baseline, model_attempts, repeats, edits, edits_applied
    ("acc", "model-a"): (0.06, 1, 4, 1, 3, 2),
    ("err", "model-a"): (2.0, 0, 2, 0, 1, 1),
    ("acc", "model-b"): (None, None, 3, 0, 0, 0),  # no baseline in this run
    ("err", "model-b"): (-1.0, 0, 3, 0, 0, 0),
}


def lift_rows():
    rows = toy_rows()
    for row in rows:
        values = LIFT.get((row.task, row.model))
        if values is not None:
            (row.gain_validation, row.beat_baseline, row.model_attempts, row.repeats, row.edits,
             row.edits_applied) = values
    return rows


def test_report_lift_beat_repeat_and_edit_rates_by_hand():
    report = build_report(lift_rows())
    systems = by_system(report)
    a, b = systems["model-a/reflexion"], systems["model-b/reflexion"]
    # acc: 0.06 / (0.8 - 0.5) = 0.2; err: 2.0 / (10 - 5) = 0.4
    assert a.lift == pytest.approx(0.3) and a.beat_rate == 0.5
    assert a.repeat_rate == pytest.approx(1 / 6) and a.edit_rate == pytest.approx(3 / 4)
    # acc had no baseline: only err counts for lift and beat; no edits at all
    assert b.lift == pytest.approx(-0.2) and b.beat_rate == 0.0 and b.repeat_rate == 0.0 and b.edit_rate is None
    for name in ("dummy", "hgb"):
        s = systems[name]
        assert (s.lift, s.beat_rate, s.repeat_rate, s.edit_rate) == (None, None, None, None)
    acc_a = next(s for s in report.tasks if s.task == "acc" and s.system == "model-a/reflexion")
    assert acc_a.lift == pytest.approx(0.2) and acc_a.beat_rate == 1.0 and acc_a.repeat_rate == 0.25


def test_systems_table_shows_lift_columns_and_dashes_for_baselines():
    text = format_report(build_report(lift_rows()))
    assert "| mean rank | lift | beat baseline | repeats | edits applied |" in text
    assert "| model-a/reflexion | 2 | 100% | 1.07 | 2.00 | 0.3 | 50% | 17% | 75% |" in text
    assert "| model-b/reflexion | 2 | 50% | 0.6 | 2.50 | -0.2 | 0% | 0% | - |" in text
    assert "| hgb | 2 | 100% | 1 | 2.00 | - | - | - | - |" in text
    assert "| dummy | 2 | 100% | 0 | 3.50 | - | - | - | - |" in text
    assert "lift: mean gain of the chosen solution over the harness's baseline on validation" in text
    page = render_html(build_report(lift_rows()))
    assert '>lift</th>' in page and '>edits applied</th>' in page and "units of (hgb - dummy)" in page


def test_baseline_rows_never_get_a_lift_even_with_values_set():
    rows = lift_rows()
    for row in rows:
        if row.kind == "baseline":
            row.gain_validation, row.beat_baseline, row.model_attempts, row.repeats = 0.1, 1, 1, 1
    hgb = by_system(build_report(rows))["hgb"]
    assert (hgb.lift, hgb.beat_rate, hgb.repeat_rate) == (None, None, None)


def test_old_rows_without_lift_fields_show_dashes():
    text = format_report(build_report(toy_rows()))
    assert "| model-a/reflexion | 2 | 100% | 1.07 | 2.00 | - | - | - | - |" in text


def automl_rows():
    """The toy rows plus flaml (same time as tabcoder: 412 s on acc, 400 s on err), autogluon (fixed 60 s) and
    one system whose cells followed both rules."""
    rows = toy_rows()
    for system, acc, err in (("flaml", (0.85, 412.0, "same-as-llm"), (5.5, 400.0, "same-as-llm")),
                             ("autogluon", (0.86, 60.0, "fixed"), (5.4, 60.0, "fixed")),
                             ("h2o", (0.7, 100.0, "fixed"), (7.0, 300.0, "same-as-llm"))):
        for task, (value, given, rule) in (("acc", acc), ("err", err)):
            metric, greater, _ = TOY[task]
            row = toy_row(task, system, value, metric=metric, greater=greater, seconds=given + 5)
            row.time_given, row.time_rule = given, rule
            rows.append(row)
    return rows


def test_automl_baselines_show_the_time_they_were_given():
    report = build_report(automl_rows())
    systems = by_system(report)
    assert systems["flaml"].time_given == 406.0 and systems["flaml"].time_rule == "same-as-llm"
    assert systems["h2o"].time_rule == "mixed" and systems["model-a/reflexion"].time_rule is None
    text = format_report(report)
    assert "| mean s | mean tokens | time given |" in text
    assert text.count("| same as tabcoder (406 s) |") == 1 and "| fixed 60 s |" in text
    assert "| mixed (mean 200 s) |" in text
    assert "| acc | accuracy | flaml | 100% | 0.85 |" in text and "| same as tabcoder (412 s) |" in text
    assert "| err | rmse | flaml | 100% | 5.5 |" in text and "| same as tabcoder (400 s) |" in text
    assert "time given: the seconds an AutoML baseline was given" in text
    llm_line = next(line for line in text.splitlines() if line.startswith("| model-a/reflexion |"))
    assert llm_line.endswith("| - |")
    assert "time given" in render_html(report)


def test_a_report_without_automl_baselines_has_no_time_note():
    assert "time given: the seconds" not in format_report(build_report(toy_rows()))
