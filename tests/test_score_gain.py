"""Direction-aware gains live on `Score`: positive means better, whichever way the metric points."""

from __future__ import annotations

import pytest

from tabcoder.metrics import Score, gain


def test_gain_is_positive_when_better_for_both_directions():
    assert gain(0.9, 0.8, True) == pytest.approx(0.1)
    assert gain(3.0, 4.0, False) == pytest.approx(1.0)
    assert Score.of("accuracy", 0.9).gain_over(Score.of("accuracy", 0.8)) == pytest.approx(0.1)
    assert Score.of("rmse", 5.0).gain_over(Score.of("rmse", 4.0)) == pytest.approx(-1.0)
    assert Score.of("rmse", 3.0).relative_gain_over(Score.of("rmse", 4.0)) == pytest.approx(0.25)
    assert Score.of("rmse", 1.0).direction == -1.0 and Score.of("roc_auc", 0.5).direction == 1.0


def test_a_failed_score_has_no_gain():
    assert Score.worst("accuracy").gain_over(Score.of("accuracy", 0.5)) is None
    assert Score.of("accuracy", 0.5).relative_gain_over(Score.worst("accuracy")) is None
